"""What a record looks like outside the store, and the keyed hash that
stands for a loyalty id wherever raw ids are not allowed."""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime, timezone

# Fields a destination receives. extras (free-form from the POS) only go
# where raw ids go: they may identify the shopper too.
FIELDS = ("id", "store", "till", "receipt", "panel", "loyalty_id", "cashier", "total",
          "currency", "items", "lang", "sale_ts", "rule", "qid", "kind", "asked_ms",
          "outcome", "reason", "value", "reasons", "answer_ms", "late", "closed_ms",
          "advert", "burst", "probe", "emotion", "emotions", "c_value", "age_band", "gender",
          "utc_offset_s", "phone_ref", "phone")


def pseudonym(key: bytes, loyalty_id: str) -> str:
    """HMAC-SHA256 of the id under the store's key: stable (the same shopper
    is the same pseudonym everywhere, so per-shopper reports still work) and
    not reversible without the key, which never leaves the store host."""
    return "p-" + hmac.new(key, loyalty_id.encode(), hashlib.sha256).hexdigest()[:32]


def utc_offset_s(rec: dict, tz) -> int | None:
    """The store's UTC offset (s) when the record's question was asked (or
    its sale made): which of the store's calendar days it belongs to, as
    the chain counts them (forward/postgres.py)."""
    when = rec.get("asked_ms") or (rec["sale_ts"] * 1000 if rec.get("sale_ts") else None) \
        or rec.get("closed_ms")
    if tz is None or not isinstance(when, (int, float)):
        return None
    moment = datetime.fromtimestamp(when / 1000, timezone.utc)
    return int(moment.astimezone(tz).utcoffset().total_seconds())


def record_payload(rec: dict, raw_ids: bool, key: bytes | None, tz=None) -> dict:
    out = {f: rec.get(f) for f in FIELDS}
    out["utc_offset_s"] = utc_offset_s(rec, tz)
    out["member"] = bool(rec.get("loyalty_id"))
    if rec.get("loyalty_id") and not raw_ids:
        if key is None:  # config makes this impossible; belt and braces
            raise ValueError("no pseudonym key for a destination without raw ids")
        out["loyalty_id"] = pseudonym(key, rec["loyalty_id"])
    if raw_ids:
        out["extras"] = rec.get("extras")
    return out
