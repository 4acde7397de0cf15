"""The probe's settings (probe.yaml), checked at start like the
concentrator's: every problem listed with what to write instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lbpanel import protocol

from ..host_config import BROKER_FIELDS, HostConfigError, check_fields, read_yaml
from . import cameras, models


class ProbeConfigError(HostConfigError):
    pass


@dataclass
class Camera:
    till: str
    source: str
    roi: tuple = (0.0, 0.0, 1.0, 1.0)


@dataclass
class ProbeConfig:
    store: str
    # Privacy by design: a probe that nobody switched on opens no camera.
    enabled: bool = False
    models: Path = field(default_factory=models.default_dir)
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_user: str | None = None
    broker_password: str | None = None
    broker_keepalive_s: int = 30
    age_gender: bool = False
    fps: float = 5.0
    buffer_s: int = 10
    max_age_ms: int = 1500
    persist_frames: int = 3
    work_width: int = 320
    min_face: int = 40
    log_level: str = "INFO"
    cameras: list = field(default_factory=list)
    source: str = ""


_FIELDS = [
    ("store", "store", "id", None),
    ("enabled", "enabled", "bool", None),
    ("models", "models", "path", None),
    *BROKER_FIELDS,
    ("age_gender", "age_gender", "bool", None),
    ("fps", "fps", "num", (0.5, 30)),
    ("buffer_s", "buffer_s", "int", (1, 120)),
    ("max_age_ms", "max_age_ms", "int", (100, 60000)),
    ("persist_frames", "persist_frames", "int", (1, 30)),
    ("work_width", "work_width", "int", (120, 1920)),
    ("min_face", "min_face", "int", (16, 400)),
    ("log_level", "log_level", "level", None),
    ("cameras", "cameras", "list", None),
]


def _cameras(items, base: Path, problems: list[str]) -> list[Camera]:
    out = []
    if not isinstance(items, list):
        problems.append("cameras: must be a list of {till, source, roi}")
        return out
    seen = set()
    for i, item in enumerate(items):
        where = f"cameras[{i}]"
        if not isinstance(item, dict):
            problems.append(f"{where}: must be a mapping {{till, source, roi}}")
            continue
        unknown = set(item) - {"till", "source", "roi"}
        if unknown:
            problems.append(f"{where}: unknown keys {sorted(unknown)} (known: till, source, roi)")
        till = str(item.get("till")) if item.get("till") is not None else None
        if not protocol.valid_id(till):
            problems.append(f"{where}.till: must be the till id the POS sends, got {till!r}")
            continue
        if till in seen:
            problems.append(f"{where}.till: till {till} has two cameras; give it one")
        seen.add(till)
        source = item.get("source")
        problem = cameras.check_spec(source)
        if problem:
            problems.append(f"{where}.source: {problem}")
            continue
        kind, _, arg = source.partition(":")
        if kind in ("folder", "video"):
            source = f"{kind}:{(base / arg).resolve()}"
        roi = item.get("roi", [0.0, 0.0, 1.0, 1.0])
        if (not isinstance(roi, list) or len(roi) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in roi)
                or not (0 <= roi[0] < roi[2] <= 1 and 0 <= roi[1] < roi[3] <= 1)):
            problems.append(f"{where}.roi: must be [x0, y0, x1, y1] as fractions of the frame, "
                            f"x0 < x1 and y0 < y1, e.g. [0.3, 0.0, 1.0, 1.0] to leave out "
                            f"the left 30 % where the cashier stands")
            continue
        out.append(Camera(till, source, tuple(float(v) for v in roi)))
    return out


def parse(doc, base: Path, source: str = "<probe config>") -> ProbeConfig:
    # check_fields passes `cameras` through as it is; _cameras checks it.
    values, problems = check_fields(doc, _FIELDS, ("store",), {"broker"}, base, source)
    if not isinstance(doc, dict):
        raise ProbeConfigError(problems)
    values.pop("cameras", None)
    cams = _cameras(doc.get("cameras", []), base, problems)
    if values.get("enabled") and not cams and not problems:
        problems.append("cameras: the probe is enabled but has no camera; add "
                        "{till: '1', source: 'v4l2:0'} or set enabled: false")
    if problems:
        raise ProbeConfigError(problems)
    return ProbeConfig(**values, cameras=cams, source=source)


def load(path: Path) -> ProbeConfig:
    path = Path(path)
    return parse(read_yaml(path, ProbeConfigError), path.parent, str(path))
