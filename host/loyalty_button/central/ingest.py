"""The receiving end of the stores' records (docs/central.md, "Ingest").

A batch is `{"records": [...]}`, JSON, gzip'd or not, with the store's
token. It is checked whole before anything is written: a malformed,
oversized or foreign batch is refused with the reason and nothing of it
is kept. A good one is upserted by record id in one statement and one
transaction, so a re-sent or late record replaces its row (the totals'
trigger takes the old version away and adds the new) and never makes a
second one. A record id another store already has is refused: a store's
token writes only that store's records."""

from __future__ import annotations

import hashlib
import json
import math
import zlib



class BatchError(Exception):
    """A batch refused whole: the HTTP status and the reason the store logs."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


MAX_TEXT = 2000            # characters in a text field
MAX_JSON_DEPTH = 8
_INT_RANGE = {"integer": 2 ** 31, "bigint": 2 ** 63}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def decode(body: bytes, encoding: str | None, max_bytes: int) -> object:
    """The batch's JSON, gunzipped within max_bytes (a small body that
    inflates to gigabytes is refused, not inflated)."""
    enc = (encoding or "identity").strip().lower()
    if enc == "gzip":
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflate.decompress(body, max_bytes + 1)
        except zlib.error as e:
            raise BatchError(400, f"the body is not gzip: {e}") from None
        if len(body) > max_bytes or inflate.unconsumed_tail:
            raise BatchError(413, f"the batch inflates to more than {max_bytes} bytes")
        if not inflate.eof:
            raise BatchError(400, "the gzip body is cut short")
    elif enc != "identity":
        raise BatchError(415, f"Content-Encoding {encoding!r}: send gzip or none")
    elif len(body) > max_bytes:
        raise BatchError(413, f"the batch is more than {max_bytes} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise BatchError(400, f"the body is not JSON: {e}") from None


def _text_problem(value: str) -> str | None:
    """PostgreSQL's text holds neither NUL nor a lone surrogate (JSON's
    "\\ud800" escape makes one)."""
    if "\x00" in value:
        return "holds a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "holds a character that is not valid Unicode (a lone surrogate)"
    return None


def _json_ok(value, depth: int = 0) -> str | None:
    """Why a JSON value cannot go into a jsonb column (None: it can)."""
    if depth > MAX_JSON_DEPTH:
        return "is nested too deep"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "holds a number that is not finite"
    if isinstance(value, list):
        return next((w for v in value if (w := _json_ok(v, depth + 1))), None)
    if isinstance(value, dict):
        return next((w for k, v in value.items()
                     if (w := _json_ok(k, depth + 1) or _json_ok(v, depth + 1))), None)
    return None


def _field_problem(col: str, kind: str, value) -> str | None:
    if value is None:
        return "must be given" if col in ("id", "member") else None
    if kind == "text":
        if not isinstance(value, str):
            return f"must be a text, got {type(value).__name__}"
        if not value and col == "id":
            return "must not be empty"
        if len(value) > MAX_TEXT:
            return f"is longer than {MAX_TEXT} characters"
        return _text_problem(value)
    if kind in _INT_RANGE:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"must be a whole number, got {value!r}"[:120]
        limit = _INT_RANGE[kind]
        return None if -limit <= value < limit else "is out of range"
    if kind == "numeric":
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            return f"must be a number, got {value!r}"[:120]
        return None
    if kind == "boolean":
        return None if isinstance(value, bool) else "must be true or false"
    if kind == "jsonb":
        return _json_ok(value)
    return None


def _shown(value) -> str:
    """A value of the sender's, as a reason may quote it: short, printable."""
    text = str(value)[:64]
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def check(doc, store: str, cols: dict[str, str], max_records: int) -> list[dict]:
    """The batch's records, each checked against lb_records' columns, the
    last of a repeated id kept; BatchError for the first problem found."""
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise BatchError(400, 'the batch must be {"records": [...]}')
    records = doc["records"]
    if not records:
        raise BatchError(400, "the batch has no records")
    if len(records) > max_records:
        raise BatchError(413, f"{len(records)} records in one batch; at most {max_records}")
    out: dict[str, dict] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            raise BatchError(400, f"record {i}: must be an object")
        if rec.get("store", store) != store:
            raise BatchError(403, f"record {i} ({_shown(rec.get('id'))}) is store "
                                  f"{_shown(rec.get('store'))!r}'s; this token is {store!r}'s")
        row = {"store": store}
        for col, kind in cols.items():
            if col == "store":
                continue
            value = rec.get(col)
            problem = _field_problem(col, kind, value)
            if problem:
                raise BatchError(400, f"record {i} ({_shown(rec.get('id'))}): {col} {problem}")
            row[col] = value
        out[row["id"]] = row  # a repeated id: the last version wins, as a re-send would
    return list(out.values())
