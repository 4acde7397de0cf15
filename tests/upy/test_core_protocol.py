# The shared protocol module; runs under MicroPython and CPython.
import json

from lbpanel import protocol
from lbpanel.protocol import ProtocolError

import support


def _code(fn, *args):
    try:
        fn(*args)
    except ProtocolError as e:
        return e.code
    return None


def test_question_round_trips_through_encode_and_decode():
    q = support.question(why={"text": "Why?", "reasons": [{"id": "queue", "text": "Queue"}]})
    back = protocol.decode(protocol.encode(q), "question")
    assert back == q


def test_cyrillic_text_is_sent_as_utf8_not_escapes():
    q = support.question(text="Порекомендуете ли вы нас другу?", lang="ru")
    data = protocol.encode(q)
    assert "Порекомендуете".encode() in data
    assert protocol.decode(data)["text"] == q["text"]


def test_payload_over_one_kib_is_refused_both_ways():
    q = support.question()
    q["padding"] = "x" * 1100
    assert _code(protocol.encode, q) == "oversized"
    assert _code(protocol.decode, b"{" + b" " * 1100 + b"}") == "oversized"


def test_garbage_and_non_object_json_are_malformed():
    assert _code(protocol.decode, b"{not json") == "malformed"
    assert _code(protocol.decode, b"[1, 2]") == "malformed"
    assert _code(protocol.decode, b"") == "malformed"


def test_unknown_schema_version_is_a_schema_error():
    q = support.question()
    q["v"] = 2
    assert _code(protocol.decode, json.dumps(q), "question") == "schema"
    del q["v"]
    assert _code(protocol.decode, json.dumps(q), "question") == "schema"


def test_a_type_that_is_not_text_is_invalid_not_a_crash():
    for kind in ({"a": 1}, [1], 7, None):
        msg = support.answer()
        msg["type"] = kind
        assert _code(protocol.validate, msg) == "invalid"


def test_message_of_the_wrong_type_for_the_topic_is_invalid():
    data = protocol.encode(support.answer())
    assert _code(protocol.decode, data, "question") == "invalid"


def test_question_fields_are_checked():
    bad = [
        {"kind": "stars"},
        {"timeout_s": 1},
        {"timeout_s": "20"},
        {"session": "has space"},
        {"session": "a/b"},
        {"text": ""},
        {"options": [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}]},  # not a choice question
    ]
    for change in bad:
        q = support.question()
        q.update(change)
        assert _code(protocol.validate, q) == "invalid", change


def test_the_thank_you_qr_takes_an_http_link_in_either_case():
    # The phone survey's links are upper case (a QR's alphanumeric mode).
    for url in ("https://lb.example/S/AEAA", "HTTPS://LB.EXAMPLE/S/AEAA", "Http://x/y"):
        q = support.question(qr={"url": url, "text": "Scan", "to": "all"})
        assert q["qr"]["url"] == url
    for url in ("ftp://x/y", "HTTPSX://x", "lb.example/S/AEAA", "", 5):
        q = support.question()
        q["qr"] = {"url": url, "text": "Scan", "to": "all"}
        assert _code(protocol.validate, q) == "invalid", url


def test_choice_question_needs_two_to_six_distinct_options():
    opts = [{"id": "a", "text": "A"}, {"id": "b", "text": "B"}]
    support.question(kind="choice", options=opts)
    for options in ([opts[0]], opts + opts, [{"id": "a", "text": "A"}] * 7):
        q = support.question()
        q["kind"] = "choice"
        q["options"] = options
        assert _code(protocol.validate, q) == "invalid"


def test_answer_values_are_checked_against_the_kind():
    assert protocol.check_value("nps", 0) is None
    assert protocol.check_value("nps", 10) is None
    assert protocol.check_value("nps", 11) is not None
    assert protocol.check_value("nps", True) is not None
    assert protocol.check_value("csat", 0) is not None
    assert protocol.check_value("csat", 5) is None
    assert protocol.check_value("yesno", "yes") is None
    assert protocol.check_value("yesno", 1) is not None
    assert protocol.check_value("choice", "b", ["a", "b"]) is None
    assert protocol.check_value("choice", "c", ["a", "b"]) is not None


def test_timeout_answer_carries_no_value():
    a = support.answer()
    a["outcome"] = "timeout"
    a["value"] = None
    del a["answer_ms"]
    protocol.validate(a)
    a["value"] = 3
    assert _code(protocol.validate, a) == "invalid"


def test_topics_are_built_and_parsed_one_way():
    t = protocol.panel_topic("s1", "till-3", "answer")
    assert t == "lb/v1/s1/panel/till-3/answer"
    assert protocol.parse_panel_topic(t) == ("s1", "till-3", "answer")
    assert protocol.parse_panel_topic("lb/v1/s1/panel/till-3/bogus") is None
    assert protocol.parse_panel_topic("lb/v2/s1/panel/till-3/answer") is None


def test_message_for_another_panel_is_refused():
    q = support.question()
    protocol.check_addressed(q, support.STORE, support.PANEL)
    assert _code(protocol.check_addressed, q, support.STORE, "p2") == "wrong_panel"


def test_unknown_fields_are_tolerated_within_a_version():
    q = support.question()
    q["new_field_from_a_newer_host"] = 1
    protocol.validate(q)


def test_one_rule_says_what_a_score_means():
    # The panel's QR policy, the host's reports, alerts and CRM notes all
    # ask these two functions.
    assert [protocol.nps_class(v) for v in (0, 6, 7, 8, 9, 10)] == \
        ["detractor", "detractor", "passive", "passive", "promoter", "promoter"]
    assert [protocol.unhappy("nps", v) for v in (6, 7, None)] == [True, False, False]
    assert [protocol.unhappy("csat", v) for v in (1, 2, 3)] == [True, True, False]
    assert protocol.unhappy("yesno", "no") and not protocol.unhappy("yesno", "yes")
    assert not protocol.unhappy("choice", "no") and not protocol.unhappy("csat", None)


def test_message_ids_are_16_hex_digits_and_differ():
    ids = [protocol.new_id() for _ in range(50)]
    assert len(set(ids)) == 50
    assert all(len(i) == 16 and protocol.valid_id(i) for i in ids)
    int(ids[0], 16)


def test_nesting_is_bounded_before_json_is_parsed():
    assert _code(protocol.decode, b"[" * 1000) == "malformed"
    assert _code(protocol.loads, b'{"a":' * 9 + b"1" + b"}" * 9) == "malformed"
    # Brackets inside texts are only text.
    deep_text = json.dumps({"t": "[" * 50 + "{" * 50})
    assert protocol.loads(deep_text)["t"].startswith("[[[")
    # An escaped backslash ends before the closing quote: a real JSON text.
    assert protocol.loads(b'{"a":' * 8 + b'"x\\\\"' + b"}" * 8)
