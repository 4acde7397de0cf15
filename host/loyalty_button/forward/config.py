"""The `forwarding:` section of concentrator.yaml: the pseudonym key,
retention, the destinations (each with its own outbox) and the cloud
reporter. Checked at start with the same field tables as the rest of the
file; every problem is listed (docs/forwarding.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..host_config import check_fields

TYPES = ("webhook", "hubspot", "bitrix24", "postgres")

_COMMON = [
    ("name", "name", "id", None),
    ("type", "type", "str", None),
    ("raw_loyalty_ids", "raw_ids", "bool", None),
    ("max_attempts", "max_attempts", "int", (1, 100000)),
    ("backoff_base_s", "backoff_base_s", "num", (0.01, 3600)),
    ("backoff_max_s", "backoff_max_s", "num", (0.1, 86400)),
    ("timeout_s", "timeout_s", "num", (0.1, 300)),
    ("batch", "batch", "int", (1, 1000)),
]
# Type -> its own fields, and the groups of which exactly one is required.
_BY_TYPE = {
    "webhook": ([("url", "url", "str", None), ("secret", "secret", "secret", None),
                 ("secret_file", "secret", "secret_file", None)],
                [("url",), ("secret", "secret_file")]),
    "hubspot": ([("base_url", "url", "str", None), ("token", "token", "str", None),
                 ("token_file", "token", "secret_file", None),
                 ("id_property", "id_property", "str", None)],
                [("token", "token_file")]),
    "bitrix24": ([("webhook_url", "url", "str", None),
                  ("webhook_url_file", "url", "secret_file", None),
                  ("loyalty_field", "id_property", "str", None)],
                 [("webhook_url", "webhook_url_file")]),
    "postgres": ([("dsn", "dsn", "str", None), ("dsn_file", "dsn", "secret_file", None)],
                 [("dsn", "dsn_file")]),
}
_DEFAULT_URL = {"hubspot": "https://api.hubapi.com"}
_DEFAULT_ID_PROPERTY = {"hubspot": "lb_loyalty_id", "bitrix24": "UF_CRM_LB_LOYALTY_ID"}

_TOP = [
    ("pseudonym_key", "pseudonym_key", "secret", None),
    ("pseudonym_key_file", "pseudonym_key", "secret_file", None),
    ("retention_days", "retention_days", "int", (1, 36500)),
]  # plus `destinations` (a list) and `cloud` (a mapping), checked below
_CLOUD = [
    ("url", "url", "str", None),
    ("token", "token", "str", None),
    ("token_file", "token", "secret_file", None),
    ("every_s", "every_s", "num", (5, 86400)),
    ("timeout_s", "timeout_s", "num", (0.1, 300)),
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


def _one_of(doc: dict, group: tuple, where: str) -> list[str]:
    given = [k for k in group if doc.get(k) is not None]
    if len(given) == 1:
        return []
    if not given:
        return [f"{where}: needs {' or '.join(group)}"]
    return [f"{where}: give one of {', '.join(given)}, not both"]


def parse(doc, base: Path) -> tuple[Forwarding, list[str]]:
    if doc is None:
        return Forwarding(), []
    plain = {k: v for k, v in doc.items() if k not in ("destinations", "cloud")} \
        if isinstance(doc, dict) else doc
    values, problems = check_fields(plain, _TOP, (), set(), base, "forwarding")
    problems = [f"forwarding.{p}" for p in problems]
    if not isinstance(doc, dict):
        return Forwarding(), problems
    fwd = Forwarding(pseudonym_key=values.get("pseudonym_key"),
                     retention_days=values.get("retention_days"))
    if doc.get("pseudonym_key") and doc.get("pseudonym_key_file"):
        problems.append("forwarding: give pseudonym_key or pseudonym_key_file, not both")
    dests = doc.get("destinations") or []
    if not isinstance(dests, list):
        problems.append("forwarding.destinations: must be a list of destinations")
        dests = []
    names = set()
    for i, d in enumerate(dests):
        where = f"forwarding.destinations[{i}]"
        if not isinstance(d, dict):
            problems.append(f"{where}: must be a mapping")
            continue
        kind = d.get("type")
        if kind not in TYPES:
            problems.append(f"{where}.type: must be one of {', '.join(TYPES)}, got {kind!r}")
            continue
        fields, groups = _BY_TYPE[kind]
        v, p = check_fields(d, _COMMON + fields, ("name", "type"), set(), base, where)
        problems += [f"{where}.{x}" if not x.startswith(where) else x for x in p]
        for group in groups:
            problems += _one_of(d, group, where)
        if p or any(_one_of(d, g, where) for g in groups):
            continue
        if v["name"] in names:
            problems.append(f"{where}.name: {v['name']!r} is used twice")
        names.add(v["name"])
        dest = Destination(**{k: v[k] for k in v})
        dest.token = _text(dest.token)
        dest.url = _text(dest.url) or _DEFAULT_URL.get(kind)
        dest.dsn = _text(dest.dsn)
        dest.id_property = dest.id_property or _DEFAULT_ID_PROPERTY.get(kind)
        if dest.url and not dest.url.startswith(("http://", "https://")):
            problems.append(f"{where}: the URL must start with https:// (or http://)")
        if not dest.raw_ids and fwd.pseudonym_key is None:
            problems.append(f"{where}: sends pseudonyms (raw_loyalty_ids is false), so "
                            f"forwarding.pseudonym_key or pseudonym_key_file is required")
        fwd.destinations.append(dest)
    cloud = doc.get("cloud")
    if cloud is not None:
        v, p = check_fields(cloud, _CLOUD, ("url",), set(), base, "forwarding.cloud")
        problems += [f"forwarding.cloud.{x}" for x in p]
        problems += _one_of(cloud, ("token", "token_file"), "forwarding.cloud") \
            if isinstance(cloud, dict) else []
        if not p and isinstance(cloud, dict) and not _one_of(cloud, ("token", "token_file"), ""):
            fwd.cloud = Cloud(url=v["url"], token=_text(v["token"]),
                              every_s=v.get("every_s", 900.0),
                              timeout_s=v.get("timeout_s", 10.0))
    return fwd, problems
