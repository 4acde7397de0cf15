# The Loyalty Button wire protocol between panels and the store host,
# schema version 1. This module is the one source of truth: the panel runs it
# under MicroPython and the host imports it under CPython, so it keeps to the
# subset both share (no dataclasses, no typing, no re, no f-string "=").
# docs/protocol.md describes every message for people; keep the two in step.
import binascii
import json
import os

SCHEMA = 1
ROOT = "lb/v1"
# An ESP32 without PSRAM must be able to hold a message and its parsed form.
MAX_PAYLOAD = 1024

PANEL_LEAVES = ("question", "answer", "ack", "status", "config", "adverts", "cmd")
KINDS = ("nps", "csat", "yesno", "choice")
# "timeout" and "declined" are answers too: no answer is an answer.
OUTCOMES = ("answered", "declined", "timeout", "superseded")
STATES = ("online", "offline")
# update: take a signed app bundle (docs/ota.md); health: the host's check
# of a panel on trial, which confirms the update when answered.
COMMANDS = ("ping", "reboot", "update", "health")
YESNO = ("yes", "no")

_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
MAX_ID = 64
MAX_TEXT = 200
TIMEOUT_RANGE = (3, 300)
MAX_OPTIONS = 6
MAX_REASONS = 8
MAX_URL = 200
MAX_ADVERTS = 6
# The deepest message nests 4 levels (question.why.reasons[i]). A parser
# recursing through a thousand '[' is the attack: CPython's raises
# RecursionError, and on the panel each level is a list in a small heap.
MAX_DEPTH = 8
QR_TO = ("all", "unhappy")


class ProtocolError(ValueError):
    """A message we cannot accept. `code` is one of: oversized, malformed,
    schema, invalid. The text says which field and why, for a log line."""

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def valid_id(value):
    """Ids end up in MQTT topics and database keys: keep them to a small,
    safe alphabet (no '/', '+', '#', spaces)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        return False
    for ch in value:
        if ch not in _ID_CHARS:
            return False
    return True


def new_id():
    """A message id: 64 random bits from the system's (on the ESP32, the
    hardware's) RNG, unique across reboots without a counter on flash."""
    return binascii.hexlify(os.urandom(8)).decode()


# --- what a score means: the one rule for the panel, reports and alerts -----

def nps_class(score):
    """NPS 0-10: 9-10 promoter, 7-8 passive, 0-6 detractor."""
    if score >= 9:
        return "promoter"
    return "passive" if score >= 7 else "detractor"


def unhappy(kind, value):
    """A detractor (NPS 0-6), dissatisfied (CSAT 1-2) or a 'no'. `value` as
    validate() lets it through; None: not answered."""
    if value is None:
        return False
    if kind == "nps":
        return nps_class(value) == "detractor"
    if kind == "csat":
        return value <= 2
    return kind == "yesno" and value == "no"


# --- topics -----------------------------------------------------------------

def panel_topic(store, panel, leaf):
    return ROOT + "/" + store + "/panel/" + panel + "/" + leaf


def parse_panel_topic(topic):
    """'lb/v1/s1/panel/p1/answer' -> ('s1', 'p1', 'answer'), else None."""
    parts = topic.split("/")
    if len(parts) != 6 or parts[0] + "/" + parts[1] != ROOT or parts[3] != "panel":
        return None
    if parts[5] not in PANEL_LEAVES or not valid_id(parts[2]) or not valid_id(parts[4]):
        return None
    return parts[2], parts[4], parts[5]


# --- encoding ---------------------------------------------------------------

def _dumps(obj):
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    except TypeError:
        # MicroPython's json has no ensure_ascii and already writes UTF-8.
        return json.dumps(obj, separators=(",", ":"))


def envelope(msg_type, msg_id, ts, store, panel):
    return {"v": SCHEMA, "type": msg_type, "id": msg_id, "ts": ts,
            "store": store, "panel": panel}


def encode(msg):
    """Validate and serialise a message; returns UTF-8 bytes."""
    validate(msg)
    data = _dumps(msg).encode()
    if len(data) > MAX_PAYLOAD:
        raise ProtocolError("oversized", "%s message is %d bytes, limit %d"
                            % (msg.get("type"), len(data), MAX_PAYLOAD))
    return data


def loads(data):
    """json.loads with the nesting bounded before parsing (ProtocolError
    "malformed" for bad JSON or deeper than MAX_DEPTH). Every JSON the host
    or the panel takes from outside goes through here."""
    if isinstance(data, str):
        data = data.encode()
    depth = 0
    in_text = escaped = False
    for c in data:  # ints on both interpreters
        if in_text:
            if escaped:
                escaped = False
            elif c == 92:    # backslash
                escaped = True
            elif c == 34:    # closing quote
                in_text = False
        elif c == 34:
            in_text = True
        elif c == 91 or c == 123:    # [ {
            depth += 1
            if depth > MAX_DEPTH:
                raise ProtocolError("malformed", "JSON nested deeper than %d levels" % MAX_DEPTH)
        elif c == 93 or c == 125:    # ] }
            depth -= 1
    try:
        value = json.loads(data)
    except (ValueError, RuntimeError):  # RuntimeError: CPython's RecursionError
        raise ProtocolError("malformed", "payload is not valid JSON")
    if b"\\ud" in data or b"\\uD" in data or b"\xed" in data:
        # "\udcff" alone (or its raw bytes ED B3 BF, which CPython's json
        # reads with surrogatepass) is no character: CPython makes it a lone
        # surrogate that no UTF-8 writer (the record store, a reply) can
        # write later. Refused here, where it came in.
        try:
            _dumps(value).encode()
        except UnicodeError:
            raise ProtocolError("malformed", "a text holds a lone surrogate escape "
                                             "(\\udXXX): not valid Unicode")
    return value


def decode(payload, expect=None):
    """Parse and validate one payload (bytes or str). `expect` is the message
    type the topic implies; a different type is refused."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError("oversized", "payload is %d bytes, limit %d"
                            % (len(payload), MAX_PAYLOAD))
    msg = loads(payload)
    if not isinstance(msg, dict):
        raise ProtocolError("malformed", "payload is JSON but not an object")
    if expect is not None and msg.get("type") != expect:
        if "v" in msg and msg.get("v") != SCHEMA:
            _check_schema(msg)
        raise ProtocolError("invalid", "expected a %s message, got type %r"
                            % (expect, msg.get("type")))
    validate(msg)
    return msg


# --- validation -------------------------------------------------------------

def _fail(msg, field, why):
    raise ProtocolError("invalid", "%s.%s %s" % (msg.get("type", "?"), field, why))


def _int(msg, field, lo, hi, required=True):
    value = msg.get(field)
    if value is None:
        if required:
            _fail(msg, field, "is missing")
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
        _fail(msg, field, "must be an integer %d..%d, got %r" % (lo, hi, value))
    return value


def _ident(msg, field, required=True):
    value = msg.get(field)
    if value is None:
        if required:
            _fail(msg, field, "is missing")
        return None
    if not valid_id(value):
        _fail(msg, field, "must be 1-%d characters of A-Z a-z 0-9 . _ -, got %r"
              % (MAX_ID, value))
    return value


def _text(msg, field, required=True):
    return _text_value(msg, field, msg.get(field), required)


def _text_value(msg, field, value, required=True):
    if value is None:
        if required:
            _fail(msg, field, "is missing")
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_TEXT:
        _fail(msg, field, "must be text of 1-%d characters" % MAX_TEXT)
    return value


def _one_of(msg, field, allowed):
    value = msg.get(field)
    if value not in allowed:
        _fail(msg, field, "must be one of %s, got %r" % (", ".join(allowed), value))
    return value


def _choices(msg, field, items, lo, hi):
    """A list of {"id": ..., "text": ...}; returns the ids."""
    if not isinstance(items, list) or not lo <= len(items) <= hi:
        _fail(msg, field, "must be a list of %d-%d items" % (lo, hi))
    ids = []
    for item in items:
        if not isinstance(item, dict) or not valid_id(item.get("id")):
            _fail(msg, field, "items need an 'id' (a short identifier)")
        _text_value(msg, field + ".text", item.get("text"))
        if item["id"] in ids:
            _fail(msg, field, "has the id %r twice" % item["id"])
        ids.append(item["id"])
    return ids


def _check_schema(msg):
    v = msg.get("v")
    if v is None:
        raise ProtocolError("schema", "message has no schema version 'v'")
    if v != SCHEMA:
        raise ProtocolError("schema", "unsupported schema version %r; this side speaks %d"
                            % (v, SCHEMA))


def validate(msg):
    """Raise ProtocolError unless `msg` is a well-formed message. Fields a
    receiver does not know are allowed and ignored (forward compatible within
    a schema version)."""
    if not isinstance(msg, dict):
        raise ProtocolError("malformed", "a message is a JSON object")
    _check_schema(msg)
    kind = msg.get("type")
    check = _VALIDATORS.get(kind) if isinstance(kind, str) else None  # a dict: unhashable
    if check is None:
        raise ProtocolError("invalid", "unknown message type %r" % (kind,))
    _ident(msg, "id")
    _int(msg, "ts", 0, 1 << 40)
    _ident(msg, "store")
    _ident(msg, "panel")
    check(msg)
    return msg


def _validate_question(msg):
    _ident(msg, "session")
    _ident(msg, "qid")
    kind = _one_of(msg, "kind", KINDS)
    _ident(msg, "lang")
    _text(msg, "text")
    _int(msg, "timeout_s", TIMEOUT_RANGE[0], TIMEOUT_RANGE[1])
    if kind == "choice":
        _choices(msg, "options", msg.get("options"), 2, MAX_OPTIONS)
    elif "options" in msg:
        _fail(msg, "options", "only goes with kind 'choice'")
    labels = msg.get("labels")
    if labels is not None:
        if not isinstance(labels, dict):
            _fail(msg, "labels", "must be an object {low, high}")
        _text_value(msg, "labels.low", labels.get("low"), False)
        _text_value(msg, "labels.high", labels.get("high"), False)
    why = msg.get("why")
    if why is not None:
        if not isinstance(why, dict) or kind == "choice":
            _fail(msg, "why", "is an object {text, reasons} after a rating question")
        _text_value(msg, "why.text", why.get("text"))
        _choices(msg, "why.reasons", why.get("reasons"), 1, MAX_REASONS)
    qr = msg.get("qr")
    if qr is not None:
        # The thank-you screen's QR: a review page or a longer survey, and
        # whom to offer it to (see flow.invitation).
        if not isinstance(qr, dict):
            _fail(msg, "qr", "must be an object {url, text, to}")
        url = qr.get("url")
        # The scheme in any case: the phone survey's links are upper case
        # (a QR's alphanumeric mode holds them).
        scheme = url[:8].lower() if isinstance(url, str) else ""
        if not isinstance(url, str) or not 0 < len(url) <= MAX_URL or \
                not (scheme.startswith("https://") or scheme.startswith("http://")):
            _fail(msg, "qr.url", "must be an http(s) URL of at most %d characters" % MAX_URL)
        _text_value(msg, "qr.text", qr.get("text"), False)
        if qr.get("to", "all") not in QR_TO:
            _fail(msg, "qr.to", "must be one of %s" % ", ".join(QR_TO))


def check_value(kind, value, option_ids=None):
    """Is `value` a possible answer to a question of this kind? Returns an
    error text or None. `option_ids`, when known, narrows a choice."""
    if kind in ("nps", "csat"):
        lo, hi = (0, 10) if kind == "nps" else (1, 5)
        if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
            return "%s answer must be an integer %d..%d, got %r" % (kind, lo, hi, value)
    elif kind == "yesno":
        if value not in YESNO:
            return "yesno answer must be 'yes' or 'no', got %r" % (value,)
    elif kind == "choice":
        if not valid_id(value) or (option_ids is not None and value not in option_ids):
            return "choice answer %r is not one of the options" % (value,)
    else:
        return "unknown question kind %r" % (kind,)
    return None


def _validate_answer(msg):
    _ident(msg, "session")
    _ident(msg, "qid")
    kind = _one_of(msg, "kind", KINDS)
    outcome = _one_of(msg, "outcome", OUTCOMES)
    value = msg.get("value")
    if outcome == "answered":
        err = check_value(kind, value)
        if err:
            _fail(msg, "value", err)
    elif value is not None:
        _fail(msg, "value", "must be null when the outcome is %s" % outcome)
    reasons = msg.get("reasons")
    if reasons is not None:
        if not isinstance(reasons, list) or len(reasons) > MAX_REASONS:
            _fail(msg, "reasons", "must be a list of at most %d reason ids" % MAX_REASONS)
        for r in reasons:
            if not valid_id(r):
                _fail(msg, "reasons", "has an invalid reason id %r" % (r,))
    _int(msg, "answer_ms", 0, 3600000, outcome == "answered")
    # Proof of play: the advert on screen when the question arrived.
    _ident(msg, "advert", required=False)
    # Presses on the question, when so many that a child or a tester is
    # likely: the answer is still one answer.
    _int(msg, "burst", 2, 100000, False)


def _validate_ack(msg):
    # The host committed this answer (or kept it as refused): the panel may
    # forget it. Idempotent: an ack for an answer already gone is ignored.
    _ident(msg, "answer")


def ack_message(store, panel, answer_id, ts):
    msg = envelope("ack", new_id(), ts, store, panel)
    msg["answer"] = answer_id
    return msg


def _validate_status(msg):
    state = _one_of(msg, "state", STATES)
    if state == "online":
        _text(msg, "fw")
        _int(msg, "uptime_s", 0, 1 << 40)
        _int(msg, "outbox", 0, 1 << 20)
        counters = msg.get("counters")
        if counters is not None and not isinstance(counters, dict):
            _fail(msg, "counters", "must be an object of name: count")
        ota = msg.get("ota")
        if ota is not None and not isinstance(ota, dict):
            _fail(msg, "ota", "must be an object {slot, mode, state, ...}")


def _validate_config(msg):
    # The panel's own rules (config.HOST_SETTINGS) decide what each setting
    # may be; here only the envelope and the container shape.
    settings = msg.get("settings")
    if not isinstance(settings, dict):
        _fail(msg, "settings", "must be an object of setting: value")


def _hex64(msg, field, value):
    if not isinstance(value, str) or len(value) != 64 or \
            any([c not in "0123456789abcdef" for c in value]):
        _fail(msg, field, "must be 64 lower-case hex digits")


def _http_url(msg, field, what):
    url = msg.get(field)
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL or not url.startswith("http://"):
        _fail(msg, field, "must be the host's http:// %s URL" % what)
    return url


def _validate_cmd(msg):
    cmd = _one_of(msg, "cmd", COMMANDS)
    if cmd in ("update", "health"):
        # Signed (lbpanel/ota.py); seq: the host's, always growing.
        seq = msg.get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 1 << 53:
            _fail(msg, "seq", "must be a whole number above 0")
        _hex64(msg, "sig", msg.get("sig"))
    if cmd == "update":
        _text(msg, "version")
        if not _http_url(msg, "url", "bundle folder").endswith("/"):
            _fail(msg, "url", "must end with /")
        _hex64(msg, "sha256", msg.get("sha256"))  # the manifest's
        if not isinstance(msg.get("downgrade", False), bool):
            _fail(msg, "downgrade", "must be true or false")


def _validate_adverts(msg):
    # The playlist: files the panel fetches from `url` + <sha256>.bin and
    # checks against the sha256 before it shows them.
    _http_url(msg, "url", "advert folder")
    items = msg.get("items")
    if not isinstance(items, list) or len(items) > MAX_ADVERTS:
        _fail(msg, "items", "must be a list of at most %d adverts" % MAX_ADVERTS)
    for item in items:
        if not isinstance(item, dict):
            _fail(msg, "items", "has an entry that is not an object")
        if not valid_id(item.get("id")):
            _fail(msg, "items.id", "must be an id, got %r" % (item.get("id"),))
        _hex64(msg, "items.sha256", item.get("sha256"))
        for field, lo, hi in (("size", 1, 1 << 26), ("duration_s", 1, 3600),
                              ("w", 1, 4096), ("h", 1, 4096)):
            value = item.get(field)
            if not isinstance(value, int) or isinstance(value, bool) or not lo <= value <= hi:
                _fail(msg, "items." + field, "must be a whole number %d..%d" % (lo, hi))


_VALIDATORS = {
    "question": _validate_question,
    "answer": _validate_answer,
    "ack": _validate_ack,
    "status": _validate_status,
    "config": _validate_config,
    "cmd": _validate_cmd,
    "adverts": _validate_adverts,
}


def check_addressed(msg, store, panel):
    """A message on our topic must also name us inside: a mismatch means a
    misconfigured host or a replayed message, never something to act on."""
    if msg.get("store") != store or msg.get("panel") != panel:
        raise ProtocolError("wrong_panel", "%s %s is for %s/%s, this panel is %s/%s"
                            % (msg.get("type"), msg.get("id"), msg.get("store"),
                               msg.get("panel"), store, panel))
