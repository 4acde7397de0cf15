"""The concentrator's own settings (concentrator.yaml): which store, where the
broker, the catalogue and the database are, and the POS listeners. Checked at
start; every problem is listed with what to write instead. Unlike the
catalogue, these need a restart to change."""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path

from lbpanel import boards, protocol
from lbpanel.config import lookup

from ..forward import alerts, config as forward_config
from ..settings import BROKER_FIELDS, Checker, Field, SettingsError, read_yaml, warn_if_loose


# Where Debian's mosquitto.conf has Mosquitto write its pid: the reload's way in.
DEBIAN_MOSQUITTO_PID = Path("/run/mosquitto/mosquitto.pid")


class HostConfigError(SettingsError):
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
    read_token: str | None = None  # bearer token for the read API (status, records)
    replay_window_s: int = 120
    request_timeout_s: int = 10   # HTTP: for a request's headers, and again for its body
    # Connections the POS HTTP listener holds (conn_cap.py): a POS server
    # for many tills is one address with many connections.
    max_connections: int = 1024
    max_connections_per_address: int = 256
    max_age_s: int = 300          # older receipts are stored but nobody is asked
    answer_grace_s: int = 10      # the host waits timeout_s (+ why) + this for an answer
    catalogue_poll_s: float = 1.0
    log_level: str = "INFO"
    probe_enabled: bool = False   # ask the emotion probe (docs/probe.md)
    probe_deadline_ms: int = 300  # the most a record waits for the probe's estimate
    source: str = ""
    tz: zoneinfo.ZoneInfo = field(default=None, repr=False)
    # Sections with their own modules and checks (docs/forwarding.md,
    # docs/alerts.md, docs/reports.md "Dashboard").
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
    # The store's panels (docs/installer.md): what `loyalty-button panels`
    # writes into each panel.json, and the broker files it keeps in step.
    panels_wifi_ssid: str | None = None
    panels_wifi_password: str | None = None
    panels_broker_host: str | None = None  # the address panels dial (the LAN one)
    panels_broker_port: int | None = None  # default: broker.port
    panels_lang: str = "en"
    # Panels dial the broker's TLS listener (mosquitto.tls_port) and trust
    # the store's CA, which `panels flash` copies beside panel.json.
    panels_tls: bool = False
    # App bundles for updates (docs/ota.md): <board>-<version>/ folders,
    # served to panels at /bundles/ by the POS HTTP listener.
    panels_bundles: Path | None = None  # default: bundles beside the database
    panels_registry: Path | None = None    # default: panels.json beside the database
    panels_password_file: Path | None = None  # Mosquitto's password_file
    panels_acl_file: Path | None = None       # Mosquitto's acl_file
    panels_broker_pid_file: Path | None = None  # Mosquitto's pid_file: reloaded by SIGHUP
    # The store broker, as `loyalty-button broker apply` writes it (docs/broker.md).
    mosquitto_config: Path = Path("/etc/mosquitto/conf.d/loyalty-button.conf")
    # Included by Debian's mosquitto.conf, which sets the pid file and the
    # persistence location itself; false: a whole configuration of its own.
    mosquitto_snippet: bool = True
    mosquitto_bind: str = "0.0.0.0"
    mosquitto_port: int = 1883
    mosquitto_tls_port: int = 8883             # 0: no TLS listener
    mosquitto_tls_dir: Path | None = None      # default: broker-tls beside the database
    mosquitto_tls_names: str | None = None     # default: panels.broker_host
    # The store's CA (ca.key, ca.crt): the appliance keeps it among the
    # store's data, which a store backup carries; default: tls_dir.
    mosquitto_ca_dir: Path | None = None
    mosquitto_persistence_dir: Path = Path("/var/lib/mosquitto")
    mosquitto_autosave_s: int = 10
    mosquitto_run_as: str | None = "mosquitto"
    mosquitto_bridge_address: str | None = None
    mosquitto_bridge_user: str | None = None
    mosquitto_bridge_password: str | None = None
    mosquitto_bridge_cafile: Path | None = None
    # Daily backups of the database (docs/install.md): a folder, or a USB stick's.
    backup_dir: Path | None = None               # default: backups beside the database
    backup_keep: int = 14


_FIELDS = [
    Field("store", "id", required=True),
    Field("catalogue", "path", required=True),
    Field("database", "path", required=True),
    Field("timezone", "tz"),
    *BROKER_FIELDS,
    Field("pos.bind", "str", attr="bind"),
    Field("pos.udp_port", "int", (0, 65535), attr="udp_port"),
    Field("pos.http_port", "int", (0, 65535), attr="http_port"),
    Field("pos.key", "secret", attr="pos_key"),
    Field("pos.key_file", "secret_file", attr="pos_key"),
    Field("pos.token", "str", attr="pos_token"),
    Field("pos.read_token", "str", attr="read_token"),
    Field("pos.replay_window_s", "int", (10, 3600), attr="replay_window_s"),
    Field("pos.request_timeout_s", "int", (1, 300), attr="request_timeout_s"),
    Field("pos.max_connections", "int", (8, 60000), attr="max_connections"),
    Field("pos.max_connections_per_address", "int", (1, 60000),
          attr="max_connections_per_address"),
    Field("pos.max_age_s", "int", (10, 86400), attr="max_age_s"),
    Field("answer_grace_s", "int", (1, 600)),
    Field("catalogue_poll_s", "num", (0.1, 60)),
    Field("log_level", "level"),
    Field("probe.enabled", "bool"),
    Field("probe.deadline_ms", "int", (10, 5000)),
    Field("dashboard.port", "int", (0, 65535)),
    Field("dashboard.bind", "str"),
    Field("dashboard.users_file", "path", attr="dashboard_users"),
    Field("dashboard.session_hours", "int", (1, 720), attr="dashboard_session_h"),
    Field("adverts.folder", "path"),
    Field("adverts.url", "str"),
    Field("adverts.cache", "path"),
    Field("adverts.poll_s", "num", (0.5, 600)),
    Field("panels.wifi_ssid", "str"),
    Field("panels.wifi_password", "str"),
    Field("panels.broker_host", "str"),
    Field("panels.broker_port", "int", (1, 65535)),
    Field("panels.lang", "id"),
    Field("panels.tls", "bool"),
    Field("panels.bundles", "path"),
    Field("panels.registry", "path"),
    Field("panels.password_file", "path"),
    Field("panels.acl_file", "path"),
    Field("panels.broker_pid_file", "path"),
    Field("mosquitto.config", "path"),
    Field("mosquitto.snippet", "bool"),
    Field("mosquitto.bind", "str"),
    Field("mosquitto.port", "int", (1, 65535)),
    Field("mosquitto.tls_port", "int", (0, 65535)),
    Field("mosquitto.tls_dir", "path"),
    Field("mosquitto.tls_names", "str"),
    Field("mosquitto.ca_dir", "path"),
    Field("mosquitto.persistence_dir", "path"),
    Field("mosquitto.autosave_s", "int", (1, 3600)),
    Field("mosquitto.run_as", "str"),
    Field("mosquitto.bridge_address", "str"),
    Field("mosquitto.bridge_user", "str"),
    Field("mosquitto.bridge_password", "str"),
    Field("mosquitto.bridge_cafile", "path"),
    Field("backup.dir", "path"),
    Field("backup.keep", "int", (1, 3650)),
]


# Sections with lists and their own checks, parsed by their own modules.
_OWN_SECTIONS = ("forwarding", "alerts")


def parse(doc, base: Path, source: str = "<config>") -> HostConfig:
    check = Checker(base)
    values = check.fields(doc, _FIELDS, lists=_OWN_SECTIONS)
    if not isinstance(doc, dict):
        raise HostConfigError([f"{source}: must be a mapping of settings"])
    values["forwarding"] = forward_config.parse(doc.get("forwarding"), check)
    values["alerts"] = alerts.parse(doc.get("alerts"), check)
    if values.get("dashboard_port") and not values.get("dashboard_users"):
        check.fail("dashboard.users_file", "is required with dashboard.port (make it with "
                   "'loyalty-button dashboard add-user NAME --users FILE')")
    if lookup(doc, "pos.key")[1] and lookup(doc, "pos.key_file")[1]:
        check.fail("pos.key and pos.key_file", "give one of them, not both")
    _check_adverts(values, check)
    if values.get("database") is not None:
        for key, name in (("panels_registry", "panels.json"), ("mosquitto_tls_dir", "broker-tls"),
                          ("backup_dir", "backups"), ("panels_bundles", "bundles")):
            if values.get(key) is None:
                values[key] = values["database"].parent / name
    if values.get("mosquitto_ca_dir") is None:
        values["mosquitto_ca_dir"] = values.get("mosquitto_tls_dir")
    if values.get("mosquitto_snippet", True) and values.get("panels_broker_pid_file") is None:
        values["panels_broker_pid_file"] = DEBIAN_MOSQUITTO_PID
    if check.problems:
        raise HostConfigError(check.problems)
    cfg = HostConfig(**values, source=source)
    if cfg.tz is None:
        cfg.tz = zoneinfo.ZoneInfo(cfg.timezone)
    return cfg


def _check_adverts(values: dict, check: Checker) -> None:
    """The adverts section's cross-checks; fills in the URL and cache
    folder when they can be worked out."""
    folder = values.get("adverts_folder")
    if folder is None:
        extra = [k for k in ("adverts_url", "adverts_cache") if values.get(k)]
        if extra:
            check.fail("adverts.folder", "is required with the other adverts settings (the "
                       "folder holding playlist.yaml and the pictures)")
        return
    if not folder.is_dir():
        check.fail("adverts.folder", f"{folder} is not a folder (make it and put "
                                     "playlist.yaml and the pictures in it)")
    port = values.get("http_port", HostConfig.http_port)
    if not port:
        check.fail("adverts.folder", "needs pos.http_port; the panels fetch the pictures "
                                     "from the POS HTTP listener")
    url = values.get("adverts_url")
    bind = values.get("bind", HostConfig.bind)
    if url is None and port:
        if bind in ("0.0.0.0", "::", ""):
            check.fail("adverts.url", f"is required when pos.bind is {bind}: the address the "
                                      f"panels reach this host at, e.g. "
                                      f"http://192.168.1.10:{port}/")
        else:
            url = f"http://{bind}:{port}/"
    if url is not None:
        url = url if url.endswith("/") else url + "/"
        longest = max(len(b) for b in boards.BOARDS)
        if not url.startswith("http://"):
            check.fail("adverts.url", f"must start with http:// (the panels fetch over "
                                      f"plain HTTP on the store LAN), got {url!r}")
        elif len(url) + len("adverts//") + longest > protocol.MAX_URL:
            check.fail("adverts.url", f"at most {protocol.MAX_URL - longest - 9} characters")
        values["adverts_url"] = url
    if values.get("adverts_cache") is None and values.get("database") is not None:
        values["adverts_cache"] = values["database"].parent / "advert-cache"


def load(path: Path) -> HostConfig:
    path = Path(path)
    doc = read_yaml(path, HostConfigError)
    cfg = parse(doc, path.parent, str(path))
    inline = [k for k in ("pos.key", "pos.token", "pos.read_token", "broker.password",
                          "forwarding.pseudonym_key", "panels.wifi_password",
                          "mosquitto.bridge_password")
              if lookup(doc, k)[1]]
    if inline:
        warn_if_loose(path, f"{path.name} holds {', '.join(inline)}; the file")
    return cfg
