"""The POS receipt (docs/protocol.md, "POS -> host"): one validation for both
ways in (UDP datagram, HTTP body), the datagram's signature line, and the
replay guard. No I/O here: the listeners pass bytes in and get a receipt or a
ReceiptError out."""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import OrderedDict

from lbpanel import protocol

SCHEMA = 1
MAX_DATAGRAM = 1200
MAX_HTTP_BODY = 4096
MAX_LOYALTY_ID = 64
MAX_EXTRAS = 16
MAX_EXTRA_KEY = 32
MAX_EXTRA_TEXT = 200
MAX_TOTAL = 10**9
MAX_ITEMS = 100000
SIG_PREFIX = b"\nsig="


class ReceiptError(ValueError):
    """A receipt the host refuses. `code` is what the HTTP endpoint returns
    and what the counters are named after: malformed_json, invalid_field,
    unknown_till, too_large, bad_signature, unsigned, replayed, stale."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict:
        err = {"code": self.code, "message": self.message}
        if self.field:
            err["field"] = self.field
        return {"error": err}


def session_id(store: str, receipt: str) -> str:
    """The feedback record's stable id: store + receipt number."""
    return f"{store}-{receipt}"


def _bad(field: str, why: str) -> ReceiptError:
    return ReceiptError("invalid_field", f"{field} {why}", field)


def _ident(doc: dict, field: str, required: bool) -> str | None:
    value = doc.get(field)
    if value is None:
        if required:
            raise _bad(field, "is missing")
        return None
    if not protocol.valid_id(value):
        raise _bad(field, f"must be 1-{protocol.MAX_ID} characters of A-Z a-z 0-9 . _ -, "
                          f"got {value!r}")
    return value


def _int(doc: dict, field: str, lo: int, hi: int, required: bool) -> int | None:
    value = doc.get(field)
    if value is None:
        if required:
            raise _bad(field, "is missing")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        raise _bad(field, f"must be an integer {lo}..{hi}, got {value!r}")
    return value


def validate(doc, store: str) -> dict:
    """Check a parsed receipt for this host's `store`; return the receipt
    with only the known fields (extras kept under `extras`)."""
    if not isinstance(doc, dict):
        raise ReceiptError("malformed_json", "a receipt is a JSON object")
    v = doc.get("v")
    if v != SCHEMA:
        raise _bad("v", f"must be {SCHEMA} (this host speaks receipt schema {SCHEMA}), got {v!r}")
    if doc.get("type") != "receipt":
        raise _bad("type", f"must be 'receipt', got {doc.get('type')!r}")
    out = {
        "id": _ident(doc, "id", True),
        "ts": _int(doc, "ts", 0, 1 << 40, True),
        "store": _ident(doc, "store", True),
        "till": _ident(doc, "till", True),
        "receipt": _ident(doc, "receipt", True),
    }
    if out["store"] != store:
        raise _bad("store", f"is {out['store']!r} but this host is store {store!r}")
    session = session_id(store, out["receipt"])
    if len(session) > protocol.MAX_ID:
        raise _bad("receipt", f"is too long: store id + '-' + receipt must fit in "
                              f"{protocol.MAX_ID} characters (here {len(session)})")
    loyalty = doc.get("loyalty_id")
    if loyalty is not None:
        if not isinstance(loyalty, str) or not 0 < len(loyalty) <= MAX_LOYALTY_ID \
                or not loyalty.isprintable():
            raise _bad("loyalty_id", f"must be text of 1-{MAX_LOYALTY_ID} printable characters")
    out["loyalty_id"] = loyalty
    out["cashier"] = _ident(doc, "cashier", False)
    out["lang"] = _ident(doc, "lang", False)
    total = doc.get("total")
    if total is not None:
        if not isinstance(total, (int, float)) or isinstance(total, bool) \
                or not math.isfinite(total) or not 0 <= total <= MAX_TOTAL:
            raise _bad("total", f"must be a number 0..{MAX_TOTAL}, got {total!r}")
    out["total"] = total
    currency = doc.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3
                                     and currency.isalpha() and currency.isupper()):
        raise _bad("currency", f"must be an ISO 4217 code such as 'RUB', got {currency!r}")
    out["currency"] = currency
    out["items"] = _int(doc, "items", 0, MAX_ITEMS, False)
    extras = doc.get("extras")
    if extras is not None:
        if not isinstance(extras, dict) or len(extras) > MAX_EXTRAS:
            raise _bad("extras", f"must be an object of at most {MAX_EXTRAS} keys")
        for key, value in extras.items():
            if not 0 < len(key) <= MAX_EXTRA_KEY:
                raise _bad("extras", f"keys must be 1-{MAX_EXTRA_KEY} characters, got {key!r}")
            if isinstance(value, str):
                if len(value) > MAX_EXTRA_TEXT:
                    raise _bad("extras", f"{key} is longer than {MAX_EXTRA_TEXT} characters")
            elif value is not None and not isinstance(value, (int, float, bool)):
                raise _bad("extras", f"{key} must be text, a number, true/false or null")
    out["extras"] = extras or None
    return out


def parse_json(data: bytes) -> object:
    try:
        data.decode("utf-8")
        return protocol.loads(data)
    except UnicodeDecodeError:
        raise ReceiptError("malformed_json", "the body is not UTF-8 JSON") from None
    except protocol.ProtocolError as e:
        raise ReceiptError("malformed_json", f"the body is not usable JSON: {e.message}") \
            from None


# --- the UDP datagram --------------------------------------------------------

def sign(body: bytes, key: bytes) -> bytes:
    """A datagram as a till sends it: JSON, newline, sig=<hex HMAC-SHA256>."""
    return body + SIG_PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest().encode()


def open_datagram(data: bytes, key: bytes | None) -> object:
    """Size and signature checks, then the parsed JSON. With a key, an
    unsigned or wrongly signed datagram is refused; without one, a signature
    line is ignored (the host trusts its LAN: see docs/protocol.md)."""
    if len(data) > MAX_DATAGRAM:
        raise ReceiptError("too_large", f"datagram is {len(data)} bytes, limit {MAX_DATAGRAM}")
    body, sep, sig = data.rpartition(SIG_PREFIX)
    if not sep:
        body, sig = data, b""
    if key is not None:
        if not sep:
            raise ReceiptError("unsigned", "datagram has no sig= line and this host requires one")
        want = hmac.new(key, body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(want, sig.strip().lower()):
            raise ReceiptError("bad_signature", "datagram signature does not match "
                                                "(wrong key, or the JSON was altered)")
    return parse_json(body)


class ReplayGuard:
    """Refuses a datagram whose time is off by more than `window_s`, or whose
    (till, id) was already taken within the window. Memory is bounded: entries
    older than the window are dropped, and at most `max_entries` are kept."""

    def __init__(self, window_s: int = 120, max_entries: int = 200_000):
        self.window_s = window_s
        self.max_entries = max_entries
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def check(self, till: str, msg_id: str, ts: int, now: float) -> None:
        if abs(ts - now) > self.window_s:
            raise ReceiptError("stale", f"datagram time {ts} is {int(ts - now):+d} s from "
                                        f"the host clock (window {self.window_s} s): "
                                        "check the till's clock (NTP)", "ts")
        self._expire(now)
        key = (till, msg_id)
        if key in self._seen:
            raise ReceiptError("replayed", f"datagram id {msg_id!r} from till {till!r} "
                                           "was already taken", "id")
        self._seen[key] = now
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def _expire(self, now: float) -> None:
        cutoff = now - self.window_s
        seen = self._seen
        while seen:
            key, at = next(iter(seen.items()))
            if at >= cutoff:
                break
            seen.popitem(last=False)
