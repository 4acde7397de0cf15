"""The concentrator end to end: receipts over the real UDP and HTTP
listeners, questions through a real Mosquitto to panels running the real
firmware under the MicroPython unix port, feedback records in SQLite. And
every kind of bad input the issue lists: each is logged, counted, kept in
`rejects`, and neither loses nor duplicates a record."""

from __future__ import annotations

import json
import logging
import queue
import signal
import sqlite3
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import STORE, TEST_CATALOGUE, Host, receipt_doc, status_counters
from lbpanel import protocol
from loyalty_button.service import receipt as receipt_mod
from lbpanel.protocol import new_id
from loyalty_button.service.records import open_records
from loyalty_button.sim.store import http_post


def test_udp_receipt_of_a_member_asks_the_nps_and_records_answer_and_reasons(host, panels):
    panel = panels.start("till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-1", "7700123", total=812.5, items=4,
                                  cashier="c7", extras={"promo": "autumn"}))
    shown = panel.answer("s1-R-1", 9)
    assert (shown["qid"], shown["kind"], shown["text"]) == ("nps", "nps", "Would you recommend us?")
    panel.wait_screen("why", session="s1-R-1")
    panel.send("reasons queue,staff")
    rec = host.wait_record("s1-R-1")
    assert (rec["outcome"], rec["value"], rec["reasons"]) == ("answered", 9, ["queue", "staff"])
    assert (rec["rule"], rec["qid"], rec["lang"], rec["source"]) == ("members", "nps", "en", "udp")
    assert (rec["loyalty_id"], rec["total"], rec["items"], rec["cashier"]) == \
        ("7700123", 812.5, 4, "c7")
    assert rec["extras"] == {"promo": "autumn"} and rec["panel"] == "till-1"
    assert 0 < rec["answer_ms"] <= rec["shown_ms"] and not rec["late"]
    c = host.counters()
    assert (c["receipts_udp"], c["asked"], c["outcome_answered"]) == (1, 1, 1)


def test_a_burst_of_presses_is_one_answer_and_the_record_keeps_the_flag(host, panels):
    panel = panels.start("till-1", touch={"settle_ms": 1500})
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-1", "7700123"))
    panel.answer("s1-R-1", 0)
    for value in (3, 10, 5):
        time.sleep(0.2)  # past the 150 ms debounce: each press counts
        panel.tap(value)
    panel.wait_screen("why", session="s1-R-1")
    panel.send("reasons ")
    rec = host.wait_record("s1-R-1")
    assert (rec["outcome"], rec["value"], rec["burst"]) == ("answered", 0, 4)
    assert host.counters()["outcome_answered"] == 1


def test_http_202_means_on_disk_and_a_repeat_is_200_duplicate_with_one_record(host, panels):
    panel = panels.start("till-3")
    host.wait_online("till-3")
    doc = receipt_doc("3", "R-2")
    status, body = host.pos.send_http(doc)
    assert (status, body) == (202, {"status": "accepted", "session": "s1-R-2"})
    assert [r["id"] for r in open_records(host.cfg.database)] == ["s1-R-2"]
    shown = panel.wait_screen("question", session="s1-R-2")
    assert (shown["kind"], shown["text"]) == ("csat", "Как вам покупка?")  # till 3 speaks ru
    # The POS retries (HTTP, then UDP with a new message id): nothing new.
    assert host.pos.send_http(doc) == (200, {"status": "duplicate", "session": "s1-R-2"})
    host.pos.send_udp(dict(doc, id=new_id()))
    host.wait_counter("receipt_duplicate", 2)
    panel.answer("s1-R-2", 4)
    rec = host.wait_record("s1-R-2", outcome="answered")
    assert rec["value"] == 4 and rec["source"] == "http"
    assert len(open_records(host.cfg.database)) == 1
    assert host.counters()["asked"] == 1


def test_a_member_asked_recently_is_left_in_peace(host, panels):
    panel = panels.start("till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-3", "7700999"))
    panel.answer("s1-R-3", 10)
    panel.wait_screen("why")
    panel.send("decline")  # skips the "why?" step; the rating stands
    assert host.wait_record("s1-R-3")["value"] == 10
    host.pos.send_udp(receipt_doc("1", "R-4", "7700999"))
    rec = host.wait_record("s1-R-4")
    assert (rec["outcome"], rec["reason"], rec["rule"]) == ("not_asked", "quiet_period", "members")
    host.pos.send_udp(receipt_doc("1", "R-5"))  # a non-member at the same till is asked
    panel.wait_screen("question", session="s1-R-5")


def test_bad_datagrams_are_refused_counted_logged_kept_and_the_listener_goes_on(host, panels,
                                                                                 caplog):
    caplog.set_level(logging.WARNING)
    panel = panels.start("till-1")
    host.wait_online("till-1")
    pos = host.pos
    good = pos.datagram(receipt_doc("1", "R-ok-1"))
    key = host.cfg.pos_key
    replayed = pos.datagram(receipt_doc("1", "R-6"))
    cases = {
        # Truncated, or signed garbage from someone who has the key.
        "malformed_json": [receipt_mod.sign(b'{"v":1,"type":"rec', key),
                           receipt_mod.sign(b"\x00\xffgarbage", key),
                           receipt_mod.sign(b"[" * 1000, key)],
        "too_large": [good + b" " * 1300],
        "bad_signature": [receipt_mod.sign(json.dumps(receipt_doc("1", "R-7")).encode(),
                                           b"not-the-store-key-000")],
        # With a key set, the signature is checked first: garbage is unsigned.
        "unsigned": [json.dumps(receipt_doc("1", "R-8")).encode(), b"\x00\xffgarbage"],
        "stale": [pos.datagram(receipt_doc("1", "R-9", ts=int(time.time()) - 3600))],
        "unknown_till": [pos.datagram(receipt_doc("99", "R-10"))],
        "invalid_field": [pos.datagram(receipt_doc("1", "R 11"))],
        "replayed": [replayed],
    }
    pos.sock.sendto(replayed, pos.udp_addr)  # the first copy is taken
    host.wait(lambda: host.record("s1-R-6"), "first copy of R-6")
    for datagrams in cases.values():
        for data in datagrams:
            pos.sock.sendto(data, pos.udp_addr)
    pos.sock.sendto(good, pos.udp_addr)
    panel.wait_screen("question", session="s1-R-ok-1")
    host.thread.flush()
    c = host.counters()
    for code, datagrams in cases.items():
        assert c.get("udp_" + code) == len(datagrams), (code, c)
    assert sorted(r["id"] for r in open_records(host.cfg.database)) == ["s1-R-6", "s1-R-ok-1"]
    kept = host.rejects()
    assert sorted({code for _, code, _ in kept}) == sorted(cases)
    assert all(source == "udp:127.0.0.1" for source, _, _ in kept)
    logged = caplog.text
    for code in cases:
        assert f"refused ({code})" in logged


@pytest.mark.parametrize("body, headers, status, code, field", [
    ({"drop": "till"}, None, 400, "invalid_field", "till"),
    ({"total": "a lot"}, None, 400, "invalid_field", "total"),
    ({"items": "3"}, None, 400, "invalid_field", "items"),
    ({"store": "s9"}, None, 400, "invalid_field", "store"),
    ({"till": "77"}, None, 400, "unknown_till", "till"),
    (b"{this is not json", None, 400, "malformed_json", None),
    (b"[1,2,3]", None, 400, "malformed_json", None),
    (b"[" * 1000, None, 400, "malformed_json", None),
    ({}, {"Content-Type": "text/plain"}, 415, "content_type", None),
    (b'{"v":1,' + b" " * 5000 + b"}", None, 413, "too_large", None),
    ({}, {"Authorization": "Bearer wrong"}, 401, "unauthorized", None),
    ({}, {"Authorization": ""}, 401, "unauthorized", None),
])
def test_bad_http_requests_get_a_clear_json_error_and_no_record(host, body, headers, status,
                                                                 code, field):
    if isinstance(body, dict):
        doc = receipt_doc("1", "R-20")
        for k in body.pop("drop", "").split():
            doc.pop(k)
        doc.update(body)
        data = json.dumps(doc).encode()
    else:
        data = body
    hdrs = {"Content-Type": "application/json", "Authorization": f"Bearer {host.pos.token}"}
    hdrs.update(headers or {})
    got_status, got = http_post(host.pos.http_url, data, hdrs)
    assert got_status == status, got
    assert got["error"]["code"] == code and got["error"]["message"]
    assert got["error"].get("field") == field
    assert open_records(host.cfg.database) == []
    assert host.counters()["http_" + code] == 1
    assert [c for _, c, _ in host.rejects()] == [code]
    # what was refused is kept, its first 2 KB, whatever the refusal
    with sqlite3.connect(host.cfg.database) as conn:
        assert conn.execute("SELECT raw FROM rejects").fetchone()[0] == data[:2048]


def test_unknown_endpoint_is_a_json_404(host):
    status, body = http_post(f"http://127.0.0.1:{host.cfg.http_port}/api/v1/receipt", b"{}",
                             {"Content-Type": "application/json"})
    assert status == 404 and body["error"]["code"] == "not_found"


def test_a_till_whose_panel_is_not_there_is_recorded_as_panel_offline(host, panels):
    host.pos.send_udp(receipt_doc("2", "R-30"))
    rec = host.wait_record("s1-R-30")
    assert (rec["outcome"], rec["reason"], rec["qid"]) == ("panel_offline",
                                                           "panel never connected", None)
    panel = panels.start("till-2")
    host.wait_online("till-2")
    panel.kill()  # pulled the plug: the broker's will says offline
    host.wait_online("till-2", "offline")
    host.pos.send_udp(receipt_doc("2", "R-31"))
    assert host.wait_record("s1-R-31")["reason"] == "panel is offline"


def test_a_panel_that_never_answers_is_no_reply_and_its_late_answer_still_lands(host, panels):
    panel = panels.start("till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-40"))
    panel.wait_screen("question", session="s1-R-40")
    panel.proc.send_signal(signal.SIGSTOP)  # frozen: it will not answer in time
    try:
        rec = host.wait_record("s1-R-40", timeout=15)
        assert (rec["outcome"], rec["value"], rec["late"]) == ("no_reply", None, False)
    finally:
        panel.proc.send_signal(signal.SIGCONT)
    # Thawed, the panel's own timeout closes the question and sends it.
    rec = host.wait_record("s1-R-40", outcome="timeout", timeout=15)
    assert rec["late"] and rec["answer_id"]
    c = host.counters()
    assert (c["outcome_no_reply"], c["answer_late"]) == (1, 1)
    assert len(open_records(host.cfg.database)) == 1


def _as_panel(port: int, panel: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"fake-{panel}")
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def _answer(panel: str, session: str, qid: str, kind: str, value, aid: str | None = None) -> dict:
    msg = protocol.envelope("answer", aid or new_id(), int(time.time()), STORE, panel)
    msg.update(session=session, qid=qid, kind=kind, outcome="answered", value=value,
               answer_ms=500, shown_ms=600)
    return msg


def test_duplicate_conflicting_and_unknown_answers_never_touch_another_record(host, panels,
                                                                              broker):
    panel = panels.start("till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-50"))
    panel.wait_screen("question", session="s1-R-50")
    fake = _as_panel(broker.port, "till-1")
    topic = protocol.panel_topic(STORE, "till-1", "answer")
    first = _answer("till-1", "s1-R-50", "csat", "csat", 2, aid="a0000000000000a1")
    for _ in range(2):  # QoS 1 redelivery: the same answer id twice
        fake.publish(topic, protocol.encode(first), qos=1).wait_for_publish(5)
    rec = host.wait_record("s1-R-50")
    assert (rec["value"], rec["answer_id"]) == (2, "a0000000000000a1")
    host.wait_counter("answer_duplicate")
    # The real panel still answers its question: a second, different answer.
    panel.answer("s1-R-50", 5)
    host.wait_counter("answer_conflict")
    unknown = _answer("till-1", "s1-R-nothing", "csat", "csat", 3)
    fake.publish(topic, protocol.encode(unknown), qos=1).wait_for_publish(5)
    host.wait_counter("answer_unknown_session")
    wrong_qid = dict(_answer("till-1", "s1-R-51", "nps", "nps", 7))
    host.pos.send_udp(receipt_doc("1", "R-51"))
    panel.wait_screen("question", session="s1-R-51")
    fake.publish(topic, protocol.encode(wrong_qid), qos=1).wait_for_publish(5)
    host.wait_counter("answer_mismatch")
    fake.publish(topic, b'{"v":1,"type":"answer"', qos=1).wait_for_publish(5)
    host.wait_counter("rx_malformed")
    fake.loop_stop()
    assert host.record("s1-R-50")["value"] == 2
    assert [r["id"] for r in open_records(host.cfg.database)] == ["s1-R-50", "s1-R-51"]
    codes = [c for _, c, _ in host.rejects()]
    assert codes == ["answer_conflict", "answer_unknown_session", "answer_mismatch",
                     "rx_malformed"]


def test_a_deeply_nested_message_on_a_panel_topic_is_refused_and_the_link_goes_on(
        host, panels, broker):
    # 1000 '[' from any panel's login once made CPython's json recurse out
    # of its depth inside paho's callback: paho's read state broke and no
    # answer was taken again. Now it is refused before parsing.
    panel = panels.start("till-1")
    host.wait_online("till-1")
    fake = _as_panel(broker.port, "till-1")
    for leaf in ("answer", "status"):
        fake.publish(protocol.panel_topic(STORE, "till-1", leaf), b"[" * 1000,
                     qos=1).wait_for_publish(5)
    host.wait_counter("rx_malformed", 2)
    fake.loop_stop()
    host.pos.send_udp(receipt_doc("1", "R-60"))
    panel.wait_screen("question", session="s1-R-60")
    panel.answer("s1-R-60", 4)  # a non-member: CSAT 1-5
    assert host.wait_record("s1-R-60")["value"] == 4
    kept = [(source, code) for source, code, _ in host.rejects()]
    assert kept == [(f"mqtt:lb/v1/{STORE}/panel/till-1/{leaf}", "rx_malformed")
                    for leaf in ("answer", "status")]


def test_a_message_the_host_fails_on_is_counted_kept_and_the_next_one_taken(host, panels):
    # Whatever goes wrong handling one message (here a fault put into the
    # concentrator's answer path) must not end the broker link.
    panel = panels.start("till-1")
    host.wait_online("till-1")
    conc = host.host.concentrator
    real = conc.on_answer
    failed = []

    def fails_once(msg):
        if not failed:
            failed.append(msg["session"])
            raise KeyError("a bug")
        real(msg)
    host.thread.call(setattr, conc, "on_answer", fails_once)
    for n, value in ((61, 3), (62, 5)):
        host.pos.send_udp(receipt_doc("1", f"R-{n}"))
        panel.wait_screen("question", session=f"s1-R-{n}")
        panel.answer(f"s1-R-{n}", value)
        host.wait_counter("rx_error")
    assert failed == ["s1-R-61"]
    assert host.wait_record("s1-R-62")["value"] == 5
    assert [code for _, code, _ in host.rejects()] == ["rx_error"]


def test_catalogue_edited_into_invalid_yaml_keeps_the_last_good_one(host, panels, caplog):
    caplog.set_level(logging.INFO)
    panel = panels.start("till-1")
    host.wait_online("till-1")
    good_digest = host.thread.status()["catalogue"]["digest"]
    host.catalogue_path.write_text("languages: [en\nquestions: {")
    host.wait_counter("catalogue_rejected")
    status = host.thread.status()
    assert status["catalogue"]["digest"] == good_digest
    assert "not valid YAML at line" in status["catalogue"]["error"]
    assert "keeping the last good one" in caplog.text
    host.pos.send_udp(receipt_doc("1", "R-60"))
    assert panel.wait_screen("question", session="s1-R-60")["text"] == "How was your visit?"
    # Good YAML, wrong shapes: a list where the question id belongs, a lone
    # surrogate in a text. Refused with the place; hot reload goes on.
    odd = json.loads(json.dumps(TEST_CATALOGUE))
    odd["rules"][0]["ask"] = ["nps"]
    host.write_catalogue(odd)
    host.wait_counter("catalogue_rejected", 2)
    assert "rules[0].ask" in host.thread.status()["catalogue"]["error"]
    host.catalogue_path.write_text(host.catalogue_path.read_text().replace(
        "How was your visit?", '"\\uDCFF"'))
    host.wait_counter("catalogue_rejected", 3)
    assert "Unicode" in host.thread.status()["catalogue"]["error"]
    # Fixed (and changed) while running: taken without a restart.
    fixed = json.loads(json.dumps(TEST_CATALOGUE))
    fixed["questions"]["csat"]["text"]["en"] = "Did we do well today?"
    host.write_catalogue(fixed)
    host.wait_counter("catalogue_reloaded")
    assert host.thread.status()["catalogue"]["error"] is None
    host.pos.send_udp(receipt_doc("1", "R-61"))
    assert panel.wait_screen("question", session="s1-R-61")["text"] == "Did we do well today?"
    assert host.counters()["catalogue_rejected"] == 3  # three bad files, a log line each


def _acks_to(fake: mqtt.Client, panel: str) -> queue.Queue:
    """The acks the host sends `panel`, each with whether its record (or
    refusal) was already on disk when the ack arrived."""
    got: queue.Queue = queue.Queue()
    fake.on_message = lambda c, u, m: got.put(protocol.decode(m.payload, "ack")["answer"])
    fake.subscribe(protocol.panel_topic(STORE, panel, "ack"), qos=1)
    online = protocol.envelope("status", new_id(), int(time.time()), STORE, panel)
    online.update(state="online", fw="test", uptime_s=1, outbox=0)
    fake.publish(protocol.panel_topic(STORE, panel, "status"), protocol.encode(online),
                 qos=1, retain=True).wait_for_publish(5)
    return got


def test_the_host_acks_an_answer_once_committed_and_again_after_a_restart(tmp_path, broker):
    host = Host(tmp_path / "host", broker).start()
    fake = _as_panel(broker.port, "till-1")
    acks = _acks_to(fake, "till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-80"))
    host.wait(lambda: host.record("s1-R-80"), "the receipt taken")
    topic = protocol.panel_topic(STORE, "till-1", "answer")
    answer = _answer("till-1", "s1-R-80", "csat", "csat", 4, aid="a0000000000000b1")
    fake.publish(topic, protocol.encode(answer), qos=1).wait_for_publish(5)
    assert acks.get(timeout=10) == "a0000000000000b1"
    # the ack came after the commit: a reader sees the answer on disk now
    [rec] = open_records(host.cfg.database)
    assert (rec["value"], rec["answer_id"]) == (4, "a0000000000000b1")
    # refused answers are acknowledged once they are kept in rejects, even
    # one this host cannot read (a panel on a newer schema): else the panel
    # would resend them for ever
    stray = _answer("till-1", "s1-R-none", "csat", "csat", 3, aid="a0000000000000b2")
    newer = dict(answer, v=2, id="a0000000000000b3")
    for msg in (stray, newer):
        fake.publish(topic, json.dumps(msg).encode(), qos=1).wait_for_publish(5)
    assert {acks.get(timeout=10), acks.get(timeout=10)} == {"a0000000000000b2",
                                                             "a0000000000000b3"}
    assert [c for _, c, _ in host.rejects()] == ["answer_unknown_session", "rx_schema"]
    host.stop()
    # The panel did not get the ack (say) and resends to the next run of
    # the host: acknowledged again, counted once, the record unchanged.
    again = Host(tmp_path / "host", broker).start()
    try:
        fake.publish(topic, protocol.encode(answer), qos=1).wait_for_publish(5)
        assert acks.get(timeout=10) == "a0000000000000b1"
        c = again.counters()
        assert (c["answer_duplicate"], c.get("answers", 0)) == (1, 0)
        assert [r["value"] for r in open_records(again.cfg.database)] == [4]
        assert len(again.rejects()) == 2
    finally:
        fake.loop_stop()
        again.stop()


def test_an_open_transaction_survives_a_concentrator_restart(tmp_path, broker, panels):
    host = Host(tmp_path / "host", broker).start()
    panel = panels.start("till-1")
    host.wait_online("till-1")
    host.pos.send_udp(receipt_doc("1", "R-70"))
    panel.wait_screen("question", session="s1-R-70")
    host.stop()
    panel.answer("s1-R-70", 3)  # answered while the concentrator is down
    again = Host(tmp_path / "host", broker).start()
    try:
        rec = again.wait_record("s1-R-70")
        assert (rec["outcome"], rec["value"], rec["late"]) == ("answered", 3, False)
        assert again.counters()["tx_restored"] == 1
    finally:
        again.stop()


def test_with_the_broker_down_the_receipt_is_kept_as_panel_offline(host, panels, broker):
    panels.start("till-1")
    host.wait_online("till-1")
    broker.stop()
    host.wait(lambda: host.thread.status()["broker"] == "down", "broker down")
    status, body = host.pos.send_http(receipt_doc("1", "R-80"))
    assert status == 202
    rec = host.record("s1-R-80")
    assert (rec["outcome"], rec["reason"]) == ("panel_offline", "broker_down")
    broker.start()
    host.wait(lambda: host.thread.status()["broker"] == "up", "broker back", timeout=20)


def test_status_and_record_api_and_an_old_receipt_stored_without_asking(host, panels):
    import urllib.request
    panels.start("till-1")
    host.wait_online("till-1")
    base = f"http://127.0.0.1:{host.cfg.http_port}/api/v1"
    old = receipt_doc("1", "R-90", ts=int(time.time()) - 3600)  # the shopper left an hour ago
    assert host.pos.send_http(old)[0] == 202
    import urllib.error

    def get(path: str, token: str | None = host.pos.token):
        req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"}
                                     if token else {})
        try:
            with urllib.request.urlopen(req) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read())
    # a record carries a loyalty id: reading needs a token
    for token in (None, "wrong"):
        for path in ("/records/s1-R-90", "/status"):
            status, body = get(path, token)
            assert (status, body["error"]["code"]) == (401, "unauthorized")
    status, rec = get("/records/s1-R-90")
    assert (rec["outcome"], rec["reason"], rec["qid"]) == ("not_asked", "stale_receipt", None)
    status, st = get("/status")
    assert st["ready"] and st["broker"] == "up"
    assert st["panels"] == {"till-1": "online"}
    c = st["counters"]
    assert c["not_asked_stale_receipt"] == 1 and c["http_read_refused"] == 4
    # every counter the doc lists is there, at 0 when nothing happened
    assert c["answer_conflict"] == 0 and c["outcome_no_reply"] == 0 and c["db_errors"] == 0
    got, body = http_post(f"{base}/records/s1-R-91", b"", {})  # POST: no such endpoint
    assert got == 404
    assert get("/records/s1-R-nope")[0] == 404


def test_a_flood_of_one_problem_is_logged_a_few_times_and_counted_every_time(caplog):
    from loyalty_button.loglimit import LogLimiter
    caplog.set_level(logging.WARNING)
    limit = LogLimiter(burst=5, period_s=60)
    for i in range(50):
        limit("udp_unsigned", logging.WARNING, "refused %d", i)
    limit("udp_stale", logging.WARNING, "another kind")
    assert [r.getMessage() for r in caplog.records] == \
        [f"refused {i}" for i in range(5)] + ["another kind"]


def test_read_token_and_request_timeouts_on_the_http_listener(tmp_path, broker):
    import socket
    from conftest import POS_TOKEN
    from loyalty_button.sim.broker import free_port
    from loyalty_button.sim.store import POS_KEY
    host = Host(tmp_path / "host", broker,
                pos={"bind": "127.0.0.1", "udp_port": free_port(), "http_port": free_port(),
                     "key": POS_KEY, "token": POS_TOKEN, "read_token": "reader-token-0123",
                     "request_timeout_s": 1}).start()
    try:
        import urllib.request
        req = urllib.request.Request(f"http://127.0.0.1:{host.cfg.http_port}/api/v1/status",
                                     headers={"Authorization": "Bearer reader-token-0123"})
        with urllib.request.urlopen(req) as resp:
            assert json.loads(resp.read())["store"] == STORE
        # headers that never finish: the connection is closed, not held
        trickle = socket.create_connection(("127.0.0.1", host.cfg.http_port), timeout=20)
        trickle.sendall(b"POST /api/v1/receipts HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 15:
            try:
                trickle.sendall(b"X-Slow: 1\r\n")
                if trickle.recv(1, socket.MSG_DONTWAIT) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except OSError:
                closed = True
                break
            time.sleep(0.2)
        trickle.close()
        assert closed, "a request whose headers never end held its connection"
        # a body that never arrives: 408, kept in rejects
        slow = socket.create_connection(("127.0.0.1", host.cfg.http_port), timeout=20)
        slow.sendall(b"POST /api/v1/receipts HTTP/1.1\r\nHost: x\r\nContent-Type: "
                     b"application/json\r\nAuthorization: Bearer " + POS_TOKEN.encode() +
                     b"\r\nContent-Length: 200\r\n\r\n{\"v\":1,")
        reply = slow.recv(4096)
        slow.close()
        assert reply.startswith(b"HTTP/1.1 408") and b'"timeout"' in reply
        assert [c for _, c, _ in host.rejects()] == ["timeout"]
    finally:
        host.stop()


def test_the_minute_line_counts_refusals_not_receipts_taken(host):
    """32 good UDP receipts and 2 bad ones: 'refused udp 2', not 34; a bad
    HTTP one is 'refused http 1'."""
    from conftest import receipt_doc
    for n in range(32):
        host.pos.send_udp(receipt_doc("1", f"U{n}"))
    host.pos.sock.sendto(b"not a receipt", host.pos.udp_addr)
    host.pos.sock.sendto(b'{"v": 1}', host.pos.udp_addr)
    status, _ = host.pos.send_http({"v": 1, "type": "receipt"})
    assert status == 400
    host.wait_counter("udp_accepted", 32)
    host.wait_counter("udp_refused", 2)
    line = host.thread.call(lambda: host.host.concentrator.counts_line())
    assert "receipts 32" in line and "refused udp 2" in line and "refused http 1" in line


def test_a_panel_going_offline_is_a_warning_and_coming_back_is_news(caplog):
    import logging
    from loyalty_button.service.fleet import Fleet
    fleet = Fleet()
    with caplog.at_level(logging.INFO, logger="loyalty_button.service.fleet"):
        for state in ("online", "offline", "online"):
            fleet.on_status("till-1", {"state": state})
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "panel till-1 is online"), ("WARNING", "panel till-1 is offline"),
        ("INFO", "panel till-1 is online")]


def test_the_host_sets_each_panels_language_from_the_catalogue(host, panels, link):
    """Till 3 is Russian in the catalogue, till 1 takes the store's default
    (en): each panel runs in its language without a `lang` in panel.json,
    and a catalogue edit changes it live."""
    import copy
    panels.start("till-1")
    panels.start("till-3")
    host.wait_online("till-1")
    host.wait_online("till-3")
    status = lambda p: link.statuses.get(p, {}).get("settings", {})  # noqa: E731
    # A fresh status each time: it carries the host settings in force.
    host.wait(lambda: status_counters(link, "till-3") is not None
              and status("till-3").get("lang") == "ru", "till-3 in Russian")
    status_counters(link, "till-1")
    assert status("till-1").get("lang") == "en"
    doc = copy.deepcopy(TEST_CATALOGUE)
    doc["default_lang"] = "ru"
    host.write_catalogue(doc)
    host.wait(lambda: status_counters(link, "till-1") is not None
              and status("till-1").get("lang") == "ru", "till-1 in Russian after the edit")
    assert host.counters()["panel_config_sent"] >= 3


def test_a_review_qr_from_the_catalogue_reaches_the_thank_you_screen(tmp_path, broker, panels):
    """`qr:` in the catalogue: the question carries the review link, and the
    panel offers it on its thank-you screen to every shopper (to: all)."""
    import copy
    doc = copy.deepcopy(TEST_CATALOGUE)
    doc["questions"]["nps"]["qr"] = {"site": "2gis", "place": "70000001012345678"}
    h = Host(tmp_path / "host", broker, doc).start()
    try:
        panel = panels.start("till-1")
        h.wait_online("till-1")
        h.pos.send_udp(receipt_doc("1", "Q-1", "7700999"))
        shown = panel.answer("s1-Q-1", 3)  # a detractor is offered it too
        assert shown["qid"] == "nps"
        panel.wait_screen("why", session="s1-Q-1")
        panel.send("reasons queue")
        thanks = panel.wait_screen("thanks", session="s1-Q-1")
        assert thanks["qr"] == "https://2gis.ru/firm/70000001012345678/tab/reviews"
    finally:
        h.stop()
