"""central.yaml: the central service's settings, checked at start with every
problem listed (docs/central.md)."""

from __future__ import annotations

import ipaddress
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from ..settings import Checker, Field, SettingsError, read_yaml, warn_if_loose


class CentralConfigError(SettingsError):
    """A central.yaml that cannot be used."""


@dataclass
class CentralConfig:
    dsn: str
    # A read replica of it (PostgreSQL's streaming replication) for the
    # dashboard's and the reports' reads; none: the primary.
    replica_dsn: str | None = None
    bind: str = "127.0.0.1"
    port: int = 8443
    # Its own TLS (a certificate and key in PEM), or none behind a balancer
    # that ends TLS itself.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    timezone: str = "UTC"       # the chain's "today" and the reports' days
    pool_min: int = 2
    pool_max: int = 8
    session_h: int = 12
    # The league table's shrinkage: a store with R answers counts as
    # (chain * W + store * R) / (W + R) (docs/central.md).
    shrinkage_weight: int = 50
    silent_after_h: float = 3.0   # a store not heard of for this long is "silent"
    behind_after_min: float = 30.0  # ...whose outbox holds records older than this, "behind"
    # Ingest: batches in flight at once in one worker (one keeps a dashboard
    # request on the same worker as fast during a flat-out ingest as idle:
    # tools/bench central; more ingest is more workers), and per store.
    ingest_at_once: int = 1
    store_batches_per_s: float = 20.0
    max_batch_records: int = 5000
    max_body_mb: int = 32
    # Scheduled reports: the mail server, and where the dashboard is reached.
    smtp_host: str | None = None
    smtp_port: int = 25
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_starttls: bool = False
    smtp_from: str = "loyalty-button@localhost"
    public_url: str | None = None
    reports_every_s: float = 60.0
    # The shopper's phone survey (docs/phone-survey.md): the address its
    # links open (scheme and host only: the link is upper case), and the
    # secret every store's link key is derived from. No address: no survey.
    phone_base_url: str | None = None
    phone_secret: bytes | None = None
    phone_per_address_per_min: float = 60.0
    phone_per_store_per_s: float = 10.0
    phone_at_once: int = 4
    # Balancers in front of the workers (their addresses or networks): a
    # request from one of them is limited by the shopper's address it
    # gives in X-Forwarded-For, not by the balancer's own.
    trusted_proxies: list = field(default_factory=list)
    log_level: str = "INFO"
    source: str = ""
    tz: zoneinfo.ZoneInfo = field(default=None, repr=False)


_FIELDS = [
    Field("database", "str", attr="dsn"),
    Field("database_file", "secret_file", attr="dsn"),
    Field("replica", "str", attr="replica_dsn"),
    Field("replica_file", "secret_file", attr="replica_dsn"),
    Field("listen.bind", "str", attr="bind"),
    Field("listen.port", "int", (1, 65535), attr="port"),
    Field("listen.tls_cert", "path", attr="tls_cert"),
    Field("listen.tls_key", "path", attr="tls_key"),
    Field("timezone", "tz"),
    Field("pool.min", "int", (1, 100), attr="pool_min"),
    Field("pool.max", "int", (1, 500), attr="pool_max"),
    Field("dashboard.session_h", "int", (1, 720), attr="session_h"),
    Field("dashboard.shrinkage_weight", "int", (0, 100000), attr="shrinkage_weight"),
    Field("dashboard.silent_after_h", "num", (0.01, 720), attr="silent_after_h"),
    Field("dashboard.behind_after_min", "num", (1, 100000), attr="behind_after_min"),
    Field("ingest.at_once", "int", (1, 100), attr="ingest_at_once"),
    Field("ingest.store_batches_per_s", "num", (0.01, 10000), attr="store_batches_per_s"),
    Field("ingest.max_batch_records", "int", (1, 100000), attr="max_batch_records"),
    Field("ingest.max_body_mb", "int", (1, 1024), attr="max_body_mb"),
    Field("smtp.host", "str", attr="smtp_host"),
    Field("smtp.port", "int", (1, 65535), attr="smtp_port"),
    Field("smtp.user", "str", attr="smtp_user"),
    Field("smtp.password", "str", attr="smtp_password"),
    Field("smtp.password_file", "secret_file", attr="smtp_password"),
    Field("smtp.starttls", "bool", attr="smtp_starttls"),
    Field("smtp.from", "str", attr="smtp_from"),
    Field("reports.public_url", "str", attr="public_url"),
    Field("reports.every_s", "num", (1, 86400), attr="reports_every_s"),
    Field("phone.base_url", "str", attr="phone_base_url"),
    Field("phone.secret_file", "secret_file", attr="phone_secret"),
    Field("phone.per_address_per_min", "num", (1, 100000), attr="phone_per_address_per_min"),
    Field("phone.per_store_per_s", "num", (0.1, 100000), attr="phone_per_store_per_s"),
    Field("phone.at_once", "int", (1, 100), attr="phone_at_once"),
    Field("listen.trusted_proxies", "list", attr="trusted_proxies"),
    Field("log_level", "level"),
]


def parse(doc, base: Path, source: str = "<config>") -> CentralConfig:
    check = Checker(base)
    values = check.fields(doc, _FIELDS)
    if not isinstance(doc, dict):
        raise CentralConfigError([f"{source}: must be a mapping of settings"])
    check.one_of("", doc, ("database", "database_file"))
    if ("listen" in doc and isinstance(doc["listen"], dict)
            and bool(doc["listen"].get("tls_cert")) != bool(doc["listen"].get("tls_key"))):
        check.fail("listen", "give tls_cert and tls_key together (or neither, behind a "
                             "balancer that ends TLS)")
    for key in ("tls_cert", "tls_key"):
        if values.get(key) is not None and not values[key].is_file():
            check.fail(f"listen.{key}", f"{values[key]} is not a file")
    if values.get("pool_min", 1) > values.get("pool_max", CentralConfig.pool_max):
        check.fail("pool.min", "must not be more than pool.max")
    if isinstance(values.get("smtp_password"), bytes):
        values["smtp_password"] = values["smtp_password"].decode()
    for key in ("dsn", "replica_dsn"):
        if isinstance(values.get(key), bytes):
            values[key] = values[key].decode()
    base = values.get("phone_base_url")
    if base is not None:
        parts = urlsplit(base)
        if parts.scheme not in ("https", "http") or not parts.netloc or \
                parts.path not in ("", "/") or parts.query or parts.fragment:
            check.fail("phone.base_url", "must be the survey's public address, scheme and "
                                         "host only, e.g. https://lb.example.ru (the link "
                                         "is upper case, so no path)")
        if not values.get("phone_secret"):
            check.fail("phone.secret_file", "give a file of 32+ random characters with "
                                            "phone.base_url: head -c 48 /dev/urandom | "
                                            "base64 > FILE")
    nets = []
    for net in values.get("trusted_proxies") or ():
        try:
            nets.append(ipaddress.ip_network(net, strict=False))
        except ValueError:
            check.fail("listen.trusted_proxies", f"{net!r} is not an address or network, "
                                                 f"e.g. 10.0.0.5 or 10.0.0.0/24")
    values["trusted_proxies"] = nets
    if values.get("phone_secret") is not None and len(values["phone_secret"]) < 32:
        check.fail("phone.secret_file", "holds fewer than 32 characters: the stores' link "
                                        "keys come from it (head -c 48 /dev/urandom | base64)")
    if check.problems:
        raise CentralConfigError(check.problems)
    cfg = CentralConfig(**values, source=source)
    if cfg.tz is None:
        cfg.tz = zoneinfo.ZoneInfo(cfg.timezone)
    return cfg


def load(path: Path) -> CentralConfig:
    path = Path(path)
    doc = read_yaml(path, CentralConfigError)
    cfg = parse(doc, path.parent, str(path))
    if isinstance(doc, dict) and (doc.get("database") or (doc.get("smtp") or {}).get("password")):
        warn_if_loose(path, f"{path.name} holds a password; the file")
    return cfg
