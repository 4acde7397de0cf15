"""The probe's MQTT messages (docs/protocol.md, "Emotion probe"): the one
place that builds and checks them, for the probe service and the
concentrator alike. Host-only, so it lives here and not in the panel's
protocol module, but it keeps that module's envelope, limits and errors.

  lb/v1/<store>/probe/request   concentrator -> probe, QoS 0
  lb/v1/<store>/probe/estimate  probe -> concentrator, QoS 0
  lb/v1/<store>/probe/status    probe, retained: online / off / offline (will)

QoS 0 on purpose: an answer is only worth anything within the deadline
(300 ms), so a retransmission would arrive too late to be used."""

from __future__ import annotations

import json

from lbpanel import protocol
from lbpanel.protocol import ProtocolError

LEAVES = ("request", "estimate", "status")
# ok: an estimate of a face near the asked time. no_face: the camera was
# working and nobody (persistently) faced it. stale: the nearest estimate is
# too old to be this shopper. no_camera: no working camera at that till.
STATUSES = ("ok", "no_face", "stale", "no_camera")
STATES = ("online", "off", "offline")
EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
GENDERS = ("female", "male")


def topic(store: str, leaf: str) -> str:
    return f"{protocol.ROOT}/{store}/probe/{leaf}"


def parse_topic(store: str, topic_: str) -> str | None:
    prefix = f"{protocol.ROOT}/{store}/probe/"
    if topic_.startswith(prefix) and topic_[len(prefix):] in LEAVES:
        return topic_[len(prefix):]
    return None


def _base(kind: str, msg_id: str, ts: int, store: str) -> dict:
    return {"v": protocol.SCHEMA, "type": kind, "id": msg_id, "ts": ts, "store": store}


def request(msg_id: str, ts: int, store: str, till: str, session: str, at_ms: int) -> dict:
    msg = _base("probe_request", msg_id, ts, store)
    msg.update(till=till, session=session, at_ms=at_ms)
    return msg


def estimate(msg_id: str, ts: int, store: str, req: dict, status: str, **fields) -> dict:
    msg = _base("probe_estimate", msg_id, ts, store)
    msg.update(request=req["id"], till=req["till"], session=req["session"], status=status)
    msg.update({k: v for k, v in fields.items() if v is not None})
    return msg


def status(msg_id: str, ts: int, store: str, state: str, **fields) -> dict:
    msg = _base("probe_status", msg_id, ts, store)
    msg["state"] = state
    msg.update(fields)
    return msg


def _fail(msg, field, why):
    raise ProtocolError("invalid", "%s.%s %s" % (msg.get("type", "?"), field, why))


def _id(msg, field):
    if not protocol.valid_id(msg.get(field)):
        _fail(msg, field, "must be an id (A-Z a-z 0-9 . _ -, 1-64)")


def _int(msg, field, lo, hi, required=True):
    v = msg.get(field)
    if v is None and not required:
        return
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        _fail(msg, field, f"must be an integer {lo}..{hi}, got {v!r}")


def validate(msg) -> dict:
    if not isinstance(msg, dict):
        raise ProtocolError("malformed", "a message is a JSON object")
    if msg.get("v") != protocol.SCHEMA:
        raise ProtocolError("schema", f"unsupported schema version {msg.get('v')!r}; "
                                      f"this side speaks {protocol.SCHEMA}")
    kind = msg.get("type")
    if kind not in ("probe_request", "probe_estimate", "probe_status"):
        raise ProtocolError("invalid", f"unknown message type {kind!r}")
    _id(msg, "id")
    _id(msg, "store")
    _int(msg, "ts", 0, 1 << 40)
    if kind == "probe_status":
        if msg.get("state") not in STATES:
            _fail(msg, "state", f"must be one of {', '.join(STATES)}")
        return msg
    _id(msg, "till")
    _id(msg, "session")
    if kind == "probe_request":
        _int(msg, "at_ms", 0, 1 << 50)
        return msg
    _id(msg, "request")
    st = msg.get("status")
    if st not in STATUSES:
        _fail(msg, "status", f"must be one of {', '.join(STATUSES)}")
    _int(msg, "age_ms", 0, 1 << 40, required=False)
    _int(msg, "faces", 0, 100, required=False)
    if st != "ok":
        if "emotions" in msg:
            _fail(msg, "emotions", f"only goes with status ok, not {st}")
        return msg
    emotions = msg.get("emotions")
    if not isinstance(emotions, dict) or set(emotions) != set(EMOTIONS):
        _fail(msg, "emotions", f"must give a probability for each of {', '.join(EMOTIONS)}")
    for k, p in emotions.items():
        if not isinstance(p, (int, float)) or isinstance(p, bool) or not 0 <= p <= 1:
            _fail(msg, "emotions." + k, f"must be a probability 0..1, got {p!r}")
    if msg.get("emotion") not in EMOTIONS:
        _fail(msg, "emotion", f"must be one of {', '.join(EMOTIONS)}")
    _int(msg, "c_value", -100, 100)
    if msg.get("gender") is not None and msg["gender"] not in GENDERS:
        _fail(msg, "gender", "must be female or male")
    band = msg.get("age_band")
    if band is not None and (not isinstance(band, str) or not 0 < len(band) <= 16):
        _fail(msg, "age_band", "must be a short text such as 25-34")
    return msg


def encode(msg: dict) -> bytes:
    validate(msg)
    data = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    if len(data) > protocol.MAX_PAYLOAD:
        raise ProtocolError("oversized", f"{msg['type']} is {len(data)} bytes, "
                                         f"limit {protocol.MAX_PAYLOAD}")
    return data


def decode(payload: bytes, expect: str) -> dict:
    if len(payload) > protocol.MAX_PAYLOAD:
        raise ProtocolError("oversized", f"payload is {len(payload)} bytes, "
                                         f"limit {protocol.MAX_PAYLOAD}")
    msg = protocol.loads(payload)
    validate(msg)
    if msg["type"] != expect:
        raise ProtocolError("invalid", f"expected a {expect}, got {msg['type']}")
    return msg
