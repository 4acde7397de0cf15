"""Bad input reaching a real panel (MicroPython unix port, real Mosquitto):
each is logged, counted in telemetry, survived, and loses no stored answer."""

from __future__ import annotations

import json
import re
import time

import pytest

from conftest import STORE, raw_json, status_counters
from lbpanel import protocol
from loyalty_button.sim.broker import Broker
from loyalty_button.sim.panel_link import PanelLink, question_message


def _question(session="s1-B1", panel="p1", **over) -> dict:
    q = question_message(STORE, panel, session, "nps-main", "nps", "Recommend us?")
    q.update(over)
    return q


def _answer_one(link, panel, session):
    link.ask("p1", session, "nps-main", "nps", "Recommend us?")
    panel.answer(session, 8)
    return link.wait_answer(session)


BAD_QUESTIONS = {
    "malformed": b"{this is not json",
    "oversized": raw_json(_question(padding="x" * 5000)),
    "schema": raw_json(_question(v=2)),
    "wrong_panel": raw_json(_question(panel="p2")),
    "invalid": raw_json(_question(kind="stars")),
}


@pytest.mark.parametrize("code", sorted(BAD_QUESTIONS))
def test_bad_question_is_counted_logged_and_survived(link, panels, code):
    panel = panels.start()
    link.wait_status("p1", "online", timeout=15)
    link.publish("p1", "question", BAD_QUESTIONS[code])
    counters = status_counters(link, "p1")
    assert counters.get("rx_" + code) == 1
    assert "rejected question" in panel.log_tail() or code == "oversized"
    assert panel.alive()
    # ...and the next good question works as usual
    assert _answer_one(link, panel, "s1-B2")["value"] == 8


def test_deeply_nested_json_is_refused_before_it_is_parsed(link, panels):
    # On a 100 KB heap, a thousand nested lists is an allocation storm: the
    # panel refuses the message before parsing and goes on.
    panel = panels.start()
    link.wait_status("p1", "online", timeout=15)
    link.publish("p1", "question", b"[" * 1000)
    link.publish("p1", "config", b'{"a":' * 20 + b"1" + b"}" * 20, retain=False)
    counters = status_counters(link, "p1")
    assert counters.get("rx_malformed") == 2 and panel.alive()
    assert "nested deeper than 8" in panel.log_tail()
    assert _answer_one(link, panel, "s1-B3")["value"] == 8


def test_oversized_message_is_read_past_not_held_in_memory(link, panels, compiled_firmware):
    """The store broker passes nothing over 64 KiB (max_packet_size); 60 KiB,
    over half the 108 KB heap the panel runs in here, is read past in small
    pieces and never held."""
    from loyalty_button.bench.heap import JUNK
    panel = panels.start(heapsize="108K", firmware=compiled_firmware)
    link.wait_status("p1", "online", timeout=15)
    link.publish("p1", "question", JUNK)
    assert status_counters(link, "p1").get("rx_oversized") == 1
    dropped = re.search(r"dropped a (\d+)-byte message", panel.log_tail())
    assert dropped and int(dropped.group(1)) >= len(JUNK)  # the packet: topic and all
    assert _answer_one(link, panel, "s1-B3")["value"] == 8


def test_missing_required_setting_leaves_the_panel_up_on_not_configured(panels):
    cfg = panels.config()
    del cfg["broker"]["host"]
    panel = panels.start(config=cfg)
    screen = panel.wait_screen("problem", problem="not_configured")
    assert "'broker.host' is missing" in screen["text"]
    time.sleep(1.0)
    assert panel.alive()  # no crash loop
    assert "broker.host" in panel.log_tail()


def test_config_that_is_not_json_says_so(panels):
    panel = panels.start(config='{"panel_id": "p1",')
    screen = panel.wait_screen("problem", problem="not_configured")
    assert "not valid JSON" in screen["text"] and panel.alive()


def test_wrong_optional_setting_falls_back_and_is_counted(link, panels):
    panel = panels.start(heartbeat_s="often")
    link.wait_status("p1", "online", timeout=15)
    assert status_counters(link, "p1").get("config_warning") == 1
    assert "heartbeat_s must be a whole number" in panel.log_tail()
    assert link.statuses["p1"]["settings"]["heartbeat_s"] == 30


def test_corrupt_and_partial_outbox_files_are_set_aside_and_the_rest_delivered(link, panels):
    outbox = panels.root / "p1" / "outbox"
    outbox.mkdir(parents=True)
    good = protocol.envelope("answer", "a-good", int(time.time()), STORE, "p1")
    good.update(session="s1-OLD", qid="nps-main", kind="nps", outcome="answered",
                value=6, answer_ms=900)
    (outbox / "0000000001.json").write_bytes(b"\x00garbage")
    (outbox / "0000000002.json").write_bytes(protocol.encode(good))
    (outbox / "0000000003.tmp").write_bytes(b'{"half')
    panel = panels.start()
    answer = link.wait_answer("s1-OLD", timeout=15)
    assert answer["id"] == "a-good" and answer["value"] == 6
    counters = status_counters(link, "p1")
    assert counters.get("outbox_corrupt") == 1
    assert counters.get("outbox_partial_discarded") == 1
    assert panel.outbox_files() == ["0000000001.bad"]  # kept for the installer


def test_wrong_broker_password_is_reported_and_retried(tmp_path, panels):
    broker = Broker(tmp_path / "authbroker", store=STORE,
                    users={"host": "hostpw", "p1": "right"}).start()
    try:
        cfg = panels.config()
        cfg["broker"].update(port=broker.port, user="p1", password="wrong")
        panel = panels.start(config=cfg)
        screen = panel.wait_screen("problem", problem="broker_unreachable")
        assert "not authorised: check broker.user and broker.password" in screen["text"]
        panel.wait_screen("problem", problem="broker_unreachable", timeout=10)  # retried
        assert panel.alive()
    finally:
        broker.stop()


def test_panel_credentials_and_acl_confine_a_panel_to_its_own_topics(tmp_path, panels):
    broker = Broker(tmp_path / "aclbroker", store=STORE,
                    users={"host": "hostpw", "p1": "pw1", "p2": "pw2"}).start()
    link = PanelLink(STORE, port=broker.port, user="host", password="hostpw").start()
    try:
        cfg = panels.config("p1")
        cfg["broker"].update(port=broker.port, user="p1", password="pw1")
        panel = panels.start("p1", config=cfg)
        link.wait_status("p1", "online", timeout=15)
        assert _answer_one(link, panel, "s1-A1")["value"] == 8
        # p2's credentials cannot forge an answer on p1's topic
        import paho.mqtt.client as mqtt
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="intruder")
        intruder.username_pw_set("p2", "pw2")
        intruder.connect("127.0.0.1", broker.port)
        intruder.loop_start()
        forged = json.loads(json.dumps(link.by_session["s1-A1"]))
        forged.update(id="forged1", session="s1-FORGED")
        intruder.publish(protocol.panel_topic(STORE, "p1", "answer"),
                         protocol.encode(forged), qos=1).wait_for_publish(5)
        intruder.disconnect()
        intruder.loop_stop()
        time.sleep(0.5)
        assert "s1-FORGED" not in link.by_session
    finally:
        link.stop()
        broker.stop()
