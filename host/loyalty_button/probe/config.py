"""The probe's settings (probe.yaml), checked at start like the
concentrator's: every problem listed with what to write instead."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


from ..settings import BROKER_FIELDS, Checker, Field, SettingsError, read_yaml
from . import cameras, models


class ProbeConfigError(SettingsError):
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
    Field("store", "id", required=True),
    Field("enabled", "bool"),
    Field("models", "path"),
    *BROKER_FIELDS,
    Field("age_gender", "bool"),
    Field("fps", "num", (0.5, 30)),
    Field("buffer_s", "int", (1, 120)),
    Field("max_age_ms", "int", (100, 60000)),
    Field("persist_frames", "int", (1, 30)),
    Field("work_width", "int", (120, 1920)),
    Field("min_face", "int", (16, 400)),
    Field("log_level", "level"),
]  # plus `cameras`, a list checked by _cameras
_CAMERA_FIELDS = [Field("till", "id", required=True), Field("source", "str", required=True)]


def _cameras(items, check: Checker) -> list[Camera]:
    out = []
    if not isinstance(items, list):
        check.fail("cameras", "must be a list of {till, source, roi}")
        return out
    seen = set()
    for i, item in enumerate(items):
        where = f"cameras[{i}]"
        if isinstance(item, dict) and isinstance(item.get("till"), int):
            item = dict(item, till=str(item["till"]))  # till: 1 means till "1"
        before = len(check.problems)
        v = check.fields(item, _CAMERA_FIELDS, where, lists=("roi",))
        if len(check.problems) > before:
            continue
        till, source = v["till"], v["source"]
        if till in seen:
            check.fail(f"{where}.till", f"till {till} has two cameras; give it one")
        seen.add(till)
        problem = cameras.check_spec(source)
        if problem:
            check.fail(f"{where}.source", problem)
            continue
        kind, _, arg = source.partition(":")
        if kind in ("folder", "video"):
            source = f"{kind}:{(check.base / arg).resolve()}"
        roi = item.get("roi", [0.0, 0.0, 1.0, 1.0])
        if (not isinstance(roi, list) or len(roi) != 4
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in roi)
                or not (0 <= roi[0] < roi[2] <= 1 and 0 <= roi[1] < roi[3] <= 1)):
            check.fail(f"{where}.roi", "must be [x0, y0, x1, y1] as fractions of the frame, "
                                       "x0 < x1 and y0 < y1, e.g. [0.3, 0.0, 1.0, 1.0] to leave "
                                       "out the left 30 % where the cashier stands")
            continue
        out.append(Camera(till, source, tuple(float(v) for v in roi)))
    return out


def parse(doc, base: Path, source: str = "<probe config>") -> ProbeConfig:
    check = Checker(base)
    values = check.fields(doc, _FIELDS, lists=("cameras",))
    if not isinstance(doc, dict):
        raise ProbeConfigError([f"{source}: must be a mapping of settings"])
    cams = _cameras(doc.get("cameras", []), check)
    if values.get("enabled") and not cams and not check.problems:
        check.fail("cameras", "the probe is enabled but has no camera; add "
                              "{till: '1', source: 'v4l2:0'} or set enabled: false")
    if check.problems:
        raise ProbeConfigError(check.problems)
    return ProbeConfig(**values, cameras=cams, source=source)


def load(path: Path) -> ProbeConfig:
    path = Path(path)
    return parse(read_yaml(path, ProbeConfigError), path.parent, str(path))
