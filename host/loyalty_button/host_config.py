"""The concentrator's own settings (concentrator.yaml): which store, where the
broker, the catalogue and the database are, and the POS listeners. Checked at
start; every problem is listed with what to write instead. Unlike the
catalogue, these need a restart to change."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from lbpanel import boards, protocol
from lbpanel.config import lookup

from .problems import ProblemsError


class HostConfigError(ProblemsError):
    """A concentrator.yaml that cannot be used."""


@dataclass
class HostConfig:
    store: str
    catalogue: Path
    database: Path
    timezone: str = "UTC"
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    broker_user: str | None = None
    broker_password: str | None = None
    broker_keepalive_s: int = 30
    bind: str = "0.0.0.0"
    udp_port: int = 47800        # 0: no UDP listener
    http_port: int = 8080        # 0: no HTTP listener
    pos_key: bytes | None = None  # shared HMAC key for UDP datagrams
    pos_token: str | None = None  # bearer token for HTTP
    replay_window_s: int = 120
    max_age_s: int = 300          # older receipts are stored but nobody is asked
    answer_grace_s: int = 10      # the host waits timeout_s (+ why) + this for an answer
    catalogue_poll_s: float = 1.0
    log_level: str = "INFO"
    probe_enabled: bool = False   # ask the emotion probe (docs/probe.md)
    probe_deadline_ms: int = 300  # the most a record waits for the probe's estimate
    source: str = ""
    tz: zoneinfo.ZoneInfo = field(default=None, repr=False)
    # Sections with their own modules and checks (docs/forwarding.md,
    # docs/alerts.md, docs/dashboard.md).
    forwarding: object = None
    alerts: object = None
    dashboard_port: int = 0       # 0: no dashboard
    dashboard_bind: str = "0.0.0.0"
    dashboard_users: Path | None = None  # made by `loyalty-button dashboard add-user`
    dashboard_session_h: int = 12
    # The store's adverts (docs/adverts.md): a folder with playlist.yaml.
    adverts_folder: Path | None = None
    adverts_url: str | None = None      # how panels reach pos.http_port
    adverts_cache: Path | None = None   # converted files; beside the database
    adverts_poll_s: float = 5.0


# The store broker's login: the same keys in every service's settings file.
BROKER_FIELDS = [
    ("broker.host", "broker_host", "str", None),
    ("broker.port", "broker_port", "int", (1, 65535)),
    ("broker.user", "broker_user", "str", None),
    ("broker.password", "broker_password", "str", None),
    ("broker.keepalive_s", "broker_keepalive_s", "int", (5, 600)),
]

# name in the file (dotted), attribute, kind, range
_FIELDS = [
    ("store", "store", "id", None),
    ("catalogue", "catalogue", "path", None),
    ("database", "database", "path", None),
    ("timezone", "timezone", "tz", None),
    *BROKER_FIELDS,
    ("pos.bind", "bind", "str", None),
    ("pos.udp_port", "udp_port", "int", (0, 65535)),
    ("pos.http_port", "http_port", "int", (0, 65535)),
    ("pos.key", "pos_key", "secret", None),
    ("pos.key_file", "pos_key", "secret_file", None),
    ("pos.token", "pos_token", "str", None),
    ("pos.replay_window_s", "replay_window_s", "int", (10, 3600)),
    ("pos.max_age_s", "max_age_s", "int", (10, 86400)),
    ("answer_grace_s", "answer_grace_s", "int", (1, 600)),
    ("catalogue_poll_s", "catalogue_poll_s", "num", (0.1, 60)),
    ("log_level", "log_level", "level", None),
    ("probe.enabled", "probe_enabled", "bool", None),
    ("probe.deadline_ms", "probe_deadline_ms", "int", (10, 5000)),
    ("dashboard.port", "dashboard_port", "int", (0, 65535)),
    ("dashboard.bind", "dashboard_bind", "str", None),
    ("dashboard.users_file", "dashboard_users", "path", None),
    ("dashboard.session_hours", "dashboard_session_h", "int", (1, 720)),
    ("adverts.folder", "adverts_folder", "path", None),
    ("adverts.url", "adverts_url", "str", None),
    ("adverts.cache", "adverts_cache", "path", None),
    ("adverts.poll_s", "adverts_poll_s", "num", (0.5, 600)),
]
_REQUIRED = ("store", "catalogue", "database")
_SECTIONS = {"broker", "pos", "probe", "dashboard", "adverts"}


def check_fields(doc, fields, required, sections, base: Path,
                 source: str = "<config>") -> tuple[dict, list[str]]:
    """Check a settings mapping against a field table (name, attribute, kind,
    range): unknown keys, missing required ones, wrong types and ranges.
    Returns (attribute values, problems); a person can act on each problem."""
    problems: list[str] = []
    if not isinstance(doc, dict):
        return {}, [f"{source}: must be a mapping of settings"]
    known = {name.split(".")[0] for name, *_ in fields}
    for key, value in doc.items():
        if key not in known:
            problems.append(f"{key}: unknown setting (known: {', '.join(sorted(known))})")
        elif key in sections:
            if not isinstance(value, dict):
                problems.append(f"{key}: must be a mapping")
                continue
            sub = {name.split(".")[1] for name, *_ in fields if name.startswith(key + ".")}
            for k in value:
                if k not in sub:
                    problems.append(f"{key}.{k}: unknown setting (known: {', '.join(sorted(sub))})")
    values = {}
    for name, attr, kind, limits in fields:
        present, value = lookup(doc, name)
        if not present or value is None:
            if name in required:
                problems.append(f"{name}: is required")
            continue
        if kind == "id":
            if not protocol.valid_id(value):
                problems.append(f"{name}: must be an id (A-Z a-z 0-9 . _ -), got {value!r}")
                continue
        elif kind == "bool":
            if not isinstance(value, bool):
                problems.append(f"{name}: must be true or false, got {value!r}")
                continue
        elif kind in ("str", "secret", "secret_file", "path"):
            if not isinstance(value, str) or not value:
                problems.append(f"{name}: must be a non-empty text")
                continue
            if kind == "path":
                value = (base / value).resolve()
            elif kind == "secret":
                if len(value) < 16:
                    problems.append(f"{name}: a shared key needs at least 16 characters")
                    continue
                value = value.encode()
            elif kind == "secret_file":
                path = base / value
                try:
                    value = path.read_bytes().strip()
                except OSError as e:
                    problems.append(f"{name}: cannot read {path}: {e.strerror}")
                    continue
                if len(value) < 16:
                    problems.append(f"{name}: the key in {path} needs at least 16 characters")
                    continue
        elif kind in ("int", "num"):
            ok = int if kind == "int" else (int, float)
            lo, hi = limits
            if not isinstance(value, ok) or isinstance(value, bool) or not lo <= value <= hi:
                problems.append(f"{name}: must be a number {lo}..{hi}, got {value!r}")
                continue
        elif kind == "tz":
            try:
                values["tz"] = zoneinfo.ZoneInfo(str(value))
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                problems.append(f"{name}: unknown time zone {value!r} (e.g. Europe/Moscow)")
                continue
        elif kind == "level":
            value = str(value).upper()
            if value not in ("DEBUG", "INFO", "WARNING", "ERROR"):
                problems.append(f"{name}: must be DEBUG, INFO, WARNING or ERROR")
                continue
        values[attr] = value
    return values, problems


def read_yaml(path: Path, error=None):
    """A YAML settings file, or `error([problem])` raised saying why not."""
    error = error or HostConfigError
    path = Path(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise error([f"{path}: cannot read: {e.strerror}"]) from None
    except yaml.YAMLError as e:
        raise error([f"{path}: not valid YAML: {e}"]) from None


# Sections with lists and their own checks, parsed by their own modules.
_OWN_SECTIONS = ("forwarding", "alerts")


def parse(doc, base: Path, source: str = "<config>") -> HostConfig:
    from .forward import config as forward_config
    own = {}
    if isinstance(doc, dict):
        own = {k: doc.get(k) for k in _OWN_SECTIONS}
        doc = {k: v for k, v in doc.items() if k not in _OWN_SECTIONS}
    values, problems = check_fields(doc, _FIELDS, _REQUIRED, _SECTIONS, base, source)
    if not isinstance(doc, dict):
        raise HostConfigError(problems)
    from . import alerts
    values["forwarding"], more = forward_config.parse(own["forwarding"], base)
    problems += more
    values["alerts"], more = alerts.parse(own["alerts"], base)
    problems += more
    if values.get("dashboard_port") and not values.get("dashboard_users"):
        problems.append("dashboard.users_file: is required with dashboard.port (make it with "
                        "'loyalty-button dashboard add-user NAME --users FILE')")
    if lookup(doc, "pos.key")[1] and lookup(doc, "pos.key_file")[1]:
        problems.append("pos.key and pos.key_file: give one of them, not both")
    problems += _check_adverts(values)
    if problems:
        raise HostConfigError(problems)
    cfg = HostConfig(**values, source=source)
    if cfg.tz is None:
        cfg.tz = zoneinfo.ZoneInfo(cfg.timezone)
    return cfg


def _check_adverts(values: dict) -> list[str]:
    """The adverts section's cross-checks; fills in the URL and cache
    folder when they can be worked out."""
    folder = values.get("adverts_folder")
    if folder is None:
        extra = [k for k in ("adverts_url", "adverts_cache") if values.get(k)]
        return ["adverts.folder: is required with the other adverts settings (the folder "
                "holding playlist.yaml and the pictures)"] if extra else []
    problems = []
    if not folder.is_dir():
        problems.append(f"adverts.folder: {folder} is not a folder (make it and put "
                        "playlist.yaml and the pictures in it)")
    port = values.get("http_port", HostConfig.http_port)
    if not port:
        problems.append("adverts.folder: needs pos.http_port; the panels fetch the pictures "
                        "from the POS HTTP listener")
    url = values.get("adverts_url")
    bind = values.get("bind", HostConfig.bind)
    if url is None and port:
        if bind in ("0.0.0.0", "::", ""):
            problems.append(f"adverts.url: is required when pos.bind is {bind}: the address "
                            f"the panels reach this host at, e.g. http://192.168.1.10:{port}/")
        else:
            url = f"http://{bind}:{port}/"
    if url is not None:
        url = url if url.endswith("/") else url + "/"
        longest = max(len(b) for b in boards.BOARDS)
        if not url.startswith("http://"):
            problems.append(f"adverts.url: must start with http:// (the panels fetch over plain "
                            f"HTTP on the store LAN), got {url!r}")
        elif len(url) + len("adverts//") + longest > protocol.MAX_URL:
            problems.append(f"adverts.url: at most {protocol.MAX_URL - longest - 9} characters")
        values["adverts_url"] = url
    if values.get("adverts_cache") is None and values.get("database") is not None:
        values["adverts_cache"] = values["database"].parent / "advert-cache"
    return problems


def load(path: Path) -> HostConfig:
    path = Path(path)
    return parse(read_yaml(path), path.parent, str(path))
