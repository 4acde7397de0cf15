"""The `forwarding:` section of concentrator.yaml: the pseudonym key,
retention, the destinations (each with its own outbox) and the cloud
reporter. Checked at start with the same field tables as the rest of the
file; every problem is listed (docs/forwarding.md)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import Checker, Field

TYPES = ("webhook", "hubspot", "bitrix24", "postgres", "central")

_COMMON = [
    Field("name", "id", required=True),
    Field("type", "str", required=True),
    Field("raw_loyalty_ids", "bool", attr="raw_ids"),
    Field("max_attempts", "int", (1, 100000)),
    Field("backoff_base_s", "num", (0.01, 3600)),
    Field("backoff_max_s", "num", (0.1, 86400)),
    Field("timeout_s", "num", (0.1, 300)),
    Field("batch", "int", (1, 1000)),
]
# Type -> its own fields, and the groups of which exactly one is required.
_BY_TYPE = {
    "webhook": ([Field("url", "str"), Field("secret", "secret"),
                 Field("secret_file", "secret_file", attr="secret")],
                [("url",), ("secret", "secret_file")]),
    "hubspot": ([Field("base_url", "str", attr="url"), Field("token", "str"),
                 Field("token_file", "secret_file", attr="token"),
                 Field("id_property", "str")],
                [("token", "token_file")]),
    "bitrix24": ([Field("webhook_url", "str", attr="url"),
                  Field("webhook_url_file", "secret_file", attr="url"),
                  Field("loyalty_field", "str", attr="id_property")],
                 [("webhook_url", "webhook_url_file")]),
    "postgres": ([Field("dsn", "str"), Field("dsn_file", "secret_file", attr="dsn")],
                 [("dsn", "dsn_file")]),
    # The chain's central service (docs/central.md): its address, this
    # store's token from the central admin, and the CA that signed the
    # service's certificate when it is not one the system trusts.
    "central": ([Field("url", "str"), Field("token", "str"),
                 Field("token_file", "secret_file", attr="token"), Field("ca_file", "path"),
                 Field("status_every_s", "num", (0.1, 3600))],
                [("url",), ("token", "token_file")]),
}
_DEFAULT_URL = {"hubspot": "https://api.hubapi.com"}
_DEFAULT_ID_PROPERTY = {"hubspot": "lb_loyalty_id", "bitrix24": "UF_CRM_LB_LOYALTY_ID"}

_TOP = [
    Field("pseudonym_key", "secret"),
    Field("pseudonym_key_file", "secret_file", attr="pseudonym_key"),
    Field("retention_days", "int", (1, 36500)),
]
_CLOUD = [
    Field("url", "str", required=True),
    Field("token", "str"),
    Field("token_file", "secret_file", attr="token"),
    Field("every_s", "num", (5, 86400)),
    Field("timeout_s", "num", (0.1, 300)),
]


@dataclass
class Destination:
    name: str
    type: str
    raw_ids: bool = False
    max_attempts: int = 50
    backoff_base_s: float = 2.0
    backoff_max_s: float = 3600.0
    timeout_s: float = 10.0
    batch: int = 50
    url: str | None = None
    secret: bytes | None = None
    token: str | None = None
    id_property: str | None = None
    dsn: str | None = None
    ca_file: object = None  # a Path
    status_every_s: float = 60.0  # central: the store's health this often


@dataclass
class Cloud:
    url: str
    token: str
    every_s: float = 900.0
    timeout_s: float = 10.0


@dataclass
class Forwarding:
    pseudonym_key: bytes | None = None
    retention_days: int | None = None
    destinations: list[Destination] = field(default_factory=list)
    cloud: Cloud | None = None


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def parse(doc, check: Checker) -> Forwarding:
    """The `forwarding:` section; its problems go to `check`."""
    if doc is None:
        return Forwarding()
    values = check.fields(doc, _TOP, "forwarding", lists=("destinations", "cloud"))
    if not isinstance(doc, dict):
        return Forwarding()
    fwd = Forwarding(pseudonym_key=values.get("pseudonym_key"),
                     retention_days=values.get("retention_days"))
    if doc.get("pseudonym_key") and doc.get("pseudonym_key_file"):
        check.fail("forwarding", "give pseudonym_key or pseudonym_key_file, not both")
    dests = doc.get("destinations") or []
    if not isinstance(dests, list):
        check.fail("forwarding.destinations", "must be a list of destinations")
        dests = []
    names = set()
    for i, d in enumerate(dests):
        where = f"forwarding.destinations[{i}]"
        if not isinstance(d, dict):
            check.fail(where, "must be a mapping")
            continue
        kind = d.get("type")
        if kind not in TYPES:
            check.fail(f"{where}.type", f"must be one of {', '.join(TYPES)}, got {kind!r}")
            continue
        fields, groups = _BY_TYPE[kind]
        before = len(check.problems)
        v = check.fields(d, _COMMON + fields, where)
        for group in groups:
            check.one_of(where, d, group)
        if len(check.problems) > before:
            continue
        if v["name"] in names:
            check.fail(f"{where}.name", f"{v['name']!r} is used twice")
        names.add(v["name"])
        dest = Destination(**v)
        dest.token = _text(dest.token)
        dest.url = _text(dest.url) or _DEFAULT_URL.get(kind)
        dest.dsn = _text(dest.dsn)
        dest.id_property = dest.id_property or _DEFAULT_ID_PROPERTY.get(kind)
        if dest.url and not dest.url.startswith(("http://", "https://")):
            check.fail(where, "the URL must start with https:// (or http://)")
        if dest.ca_file is not None and not dest.ca_file.is_file():
            check.fail(f"{where}.ca_file", f"{dest.ca_file} is not a file (the PEM "
                                           f"certificate of the CA that signed the service's)")
        if not dest.raw_ids and fwd.pseudonym_key is None:
            check.fail(where, "sends pseudonyms (raw_loyalty_ids is false), so "
                              "forwarding.pseudonym_key or pseudonym_key_file is required")
        fwd.destinations.append(dest)
    cloud = doc.get("cloud")
    if cloud is not None:
        before = len(check.problems)
        v = check.fields(cloud, _CLOUD, "forwarding.cloud")
        if isinstance(cloud, dict):
            check.one_of("forwarding.cloud", cloud, ("token", "token_file"))
        if len(check.problems) == before:
            fwd.cloud = Cloud(url=v["url"], token=_text(v["token"]),
                              every_s=v.get("every_s", 900.0),
                              timeout_s=v.get("timeout_s", 10.0))
    return fwd
