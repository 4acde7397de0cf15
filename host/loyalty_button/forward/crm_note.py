"""The text a CRM gets on the shopper's timeline, the same for every vendor,
with a marker that finds it again (so a retry updates, never duplicates)."""

from __future__ import annotations

import hashlib

from lbpanel.protocol import nps_class


def marker(record_id: str) -> str:
    # One alphanumeric token: CRMs' text search matches whole tokens.
    return "lbrec" + hashlib.sha256(record_id.encode()).hexdigest()[:20]


def text(p: dict) -> str:
    value = p.get("value")
    if p.get("outcome") != "answered":
        what = f"no rating ({p.get('outcome')})"
    elif p.get("kind") == "nps" and isinstance(value, int):
        what = f"NPS {value} ({nps_class(value)})"
    else:
        what = f"{(p.get('kind') or '').upper()} {value}"
    parts = [f"Loyalty Button: {what}", f"question {p.get('qid')}",
             f"store {p.get('store')} till {p.get('till')}", f"receipt {p.get('receipt')}"]
    if p.get("total") is not None:
        parts.append(f"total {p['total']} {p.get('currency') or ''}".rstrip())
    if p.get("cashier"):
        parts.append(f"cashier {p['cashier']}")
    if p.get("reasons"):
        parts.append("reasons: " + ", ".join(p["reasons"]))
    if p.get("emotion"):
        parts.append(f"emotion {p['emotion']} (C-Value {p.get('c_value')})")
    phone = p.get("phone")
    if isinstance(phone, dict) and isinstance(phone.get("answers"), dict):
        # The shopper's phone survey (docs/phone-survey.md): its answers as
        # the shopper gave them, the comment as plain text.
        said = ", ".join(f"{q} {v}" for q, v in phone["answers"].items())
        parts.append(f"on the phone (response {phone.get('response')}): {said}")
    parts.append(marker(p["id"]))
    return " · ".join(parts)
