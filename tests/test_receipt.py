"""The POS receipt contract: field checks, the datagram signature, the replay
guard (docs/protocol.md, "POS -> host")."""

from __future__ import annotations

import json

import pytest

from loyalty_button.service import receipt as r
from loyalty_button.service.receipt import ReceiptError, ReplayGuard

KEY = b"a-shared-key-of-some-length"


def good(**kw) -> dict:
    doc = {"v": 1, "type": "receipt", "id": "t1-1", "ts": 1795334460, "store": "s1",
           "till": "1", "receipt": "R-1", "loyalty_id": "7700123", "cashier": "c7",
           "total": 1234.5, "currency": "RUB", "items": 3, "extras": {"channel": "self"}}
    doc.update(kw)
    return {k: v for k, v in doc.items() if v is not None}


def test_a_full_receipt_is_taken_with_every_field():
    out = r.validate(good(), "s1")
    assert out["receipt"] == "R-1" and out["loyalty_id"] == "7700123"
    assert out["total"] == 1234.5 and out["items"] == 3 and out["extras"] == {"channel": "self"}


def test_only_the_required_fields_are_needed():
    doc = {"v": 1, "type": "receipt", "id": "x", "ts": 1, "store": "s1", "till": "1",
           "receipt": "9"}
    assert r.validate(doc, "s1")["loyalty_id"] is None


@pytest.mark.parametrize("change, field", [
    ({"till": None}, "till"),
    ({"receipt": None}, "receipt"),
    ({"ts": "yesterday"}, "ts"),
    ({"ts": True}, "ts"),
    ({"v": 2}, "v"),
    ({"type": "refund"}, "type"),
    ({"store": "s2"}, "store"),
    ({"till": "till 1"}, "till"),
    ({"receipt": "R" * 70}, "receipt"),
    ({"receipt": "R" * 62}, "receipt"),  # store + '-' + receipt over 64
    ({"loyalty_id": 7700123}, "loyalty_id"),
    ({"loyalty_id": "x" * 65}, "loyalty_id"),
    ({"total": "12.50"}, "total"),
    ({"total": -1}, "total"),
    ({"items": 2.5}, "items"),
    ({"currency": "rub"}, "currency"),
    ({"extras": ["a"]}, "extras"),
    ({"extras": {f"k{i}": i for i in range(17)}}, "extras"),
    ({"extras": {"nested": {"a": 1}}}, "extras"),
])
def test_a_wrong_or_missing_field_is_named(change, field):
    doc = good()
    for k, v in change.items():
        if v is None:
            doc.pop(k)
        else:
            doc[k] = v
    with pytest.raises(ReceiptError) as e:
        r.validate(doc, "s1")
    assert e.value.code == "invalid_field" and e.value.field == field
    assert e.value.body()["error"]["field"] == field


def test_not_a_json_object_is_malformed():
    for data in (b"\xff\xfe", b"{not json", b""):
        with pytest.raises(ReceiptError) as e:
            r.parse_json(data)
        assert e.value.code == "malformed_json"
    with pytest.raises(ReceiptError) as e:
        r.validate([1, 2], "s1")
    assert e.value.code == "malformed_json"


def test_signed_datagram_opens_with_the_key():
    body = json.dumps(good()).encode()
    data = r.sign(body, KEY)
    assert data.startswith(body + b"\nsig=") and len(data.split(b"sig=")[1]) == 64
    assert r.open_datagram(data, KEY) == good()


@pytest.mark.parametrize("mangle, code", [
    (lambda d: d.rsplit(b"\nsig=", 1)[0], "unsigned"),
    (lambda d: d.replace(b'"R-1"', b'"R-2"'), "bad_signature"),
    (lambda d: d[:-4] + b"0000", "bad_signature"),
    (lambda d: d + b" " * 1200, "too_large"),
])
def test_a_datagram_that_fails_the_signature_or_size_is_refused(mangle, code):
    data = mangle(r.sign(json.dumps(good()).encode(), KEY))
    with pytest.raises(ReceiptError) as e:
        r.open_datagram(data, KEY)
    assert e.value.code == code


def test_another_key_does_not_verify():
    data = r.sign(json.dumps(good()).encode(), b"someone-elses-key-0000")
    with pytest.raises(ReceiptError) as e:
        r.open_datagram(data, KEY)
    assert e.value.code == "bad_signature"


def test_without_a_key_a_signature_line_is_ignored_and_plain_json_taken():
    body = json.dumps(good()).encode()
    assert r.open_datagram(body, None) == good()
    assert r.open_datagram(r.sign(body, KEY), None) == good()


def test_truncated_datagram_is_malformed():
    body = json.dumps(good()).encode()
    with pytest.raises(ReceiptError) as e:
        r.open_datagram(body[:40], None)
    assert e.value.code == "malformed_json"


def test_replay_guard_refuses_the_same_id_and_a_far_clock():
    g = ReplayGuard(window_s=120)
    g.check("1", "a", 1000, now=1000)
    with pytest.raises(ReceiptError) as e:
        g.check("1", "a", 1000, now=1001)
    assert e.value.code == "replayed"
    g.check("2", "a", 1000, now=1001)  # the id is per till
    for ts in (1000 - 121, 1000 + 121):
        with pytest.raises(ReceiptError) as e:
            g.check("1", "b", ts, now=1000)
        assert e.value.code == "stale"


def test_replay_guard_forgets_after_the_window_and_stays_bounded():
    g = ReplayGuard(window_s=120, max_entries=100)
    g.check("1", "a", 1000, now=1000)
    g.check("1", "a", 1130, now=1130)  # 130 s later: the old entry expired
    for i in range(500):
        g.check("1", f"m{i}", 1130, now=1130)
    assert len(g._seen) <= 100
