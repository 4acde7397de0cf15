"""The panel firmware under the real MicroPython unix port, talking to a real
Mosquitto, driven from the host side as a store would."""

from __future__ import annotations

import signal
import time

from conftest import status_counters
from lbpanel import protocol
from lbpanel.protocol import new_id


def _online(link, panel="p1"):
    return link.wait_status(panel, "online", timeout=15)


def test_panel_announces_itself_with_telemetry(link, panels):
    panels.start()
    st = _online(link)
    assert st["fw"] and st["outbox"] == 0 and st["uptime_s"] >= 0
    assert st["heap_free"] > 0 and 0 < st["heap_min_free"] <= st["heap_free"]
    assert st["screen"] == "adverts"
    assert st["ip"] == "127.0.0.1"


def test_question_is_shown_and_the_tap_comes_back_as_the_answer(link, panels):
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-R1", "nps-main", "nps", "Recommend us?")
    panel.answer("s1-R1", 9)
    answer = link.wait_answer("s1-R1")
    assert (answer["outcome"], answer["value"], answer["panel"]) == ("answered", 9, "p1")
    assert answer["answer_ms"] >= 300
    panel.wait_screen("thanks", session="s1-R1")
    panel.wait_screen("adverts", timeout=6)


def test_no_answer_is_recorded_as_a_timeout(link, panels):
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-R2", "nps-main", "nps", "Recommend us?", timeout_s=3)
    panel.wait_screen("question", session="s1-R2")
    answer = link.wait_answer("s1-R2", timeout=10)
    assert answer["outcome"] == "timeout" and answer["value"] is None
    assert answer["shown_ms"] >= 3000


def test_new_receipt_mid_question_supersedes_the_old_question(link, panels):
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-R3", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="s1-R3")
    link.ask("p1", "s1-R4", "csat-main", "csat", "How was the service?")
    panel.answer("s1-R4", 5)
    assert link.wait_answer("s1-R3")["outcome"] == "superseded"
    answer = link.wait_answer("s1-R4")
    assert (answer["kind"], answer["value"]) == ("csat", 5)


def test_status_flips_to_offline_when_the_panel_process_is_killed(link, panels):
    panel = panels.start()
    _online(link)
    panel.kill()
    st = link.wait_status("p1", "offline", timeout=10)
    assert st["panel"] == "p1" and "fw" not in st


def test_clean_stop_says_offline_too(link, panels):
    panel = panels.start()
    _online(link)
    panel.stop()
    assert panel.proc.returncode == 0
    link.wait_status("p1", "offline", timeout=10)


def test_outbox_survives_a_killed_panel_and_a_broker_outage(link, panels, broker):
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-R5", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="s1-R5")
    broker.stop()
    panel.answer("s1-R5", 3)  # answered while the broker is down: only the outbox has it
    panel.wait_screen("thanks")
    # The outbox writes <seq>.tmp and renames it: wait for the renamed file.
    deadline = time.monotonic() + 5
    while not any(n.endswith(".json") for n in panel.outbox_files()) and time.monotonic() < deadline:
        time.sleep(0.05)
    [name] = panel.outbox_files()  # <seq>.<answer id>.json
    assert name.startswith("0000000001.") and name.endswith(".json")
    panel.kill()  # power cut before the broker came back
    broker.start()
    panel = panels.start()  # reboot, same flash
    answer = link.wait_answer("s1-R5", timeout=20)
    assert (answer["value"], answer["outcome"]) == (3, "answered")
    _online(link)
    deadline = time.monotonic() + 5
    while panel.outbox_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert panel.outbox_files() == []
    time.sleep(0.5)
    assert link.counters["answers"] == 1


def test_a_panel_keeps_an_answer_the_broker_took_until_the_host_acks_it(link, panels, broker):
    # PUBACK is not enough: a broker killed before it saved the answer
    # would lose it. Until the host's ack the answer stays on flash.
    link.ack_answers = False
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-R7", "nps-main", "nps", "Recommend us?")
    panel.answer("s1-R7", 8)
    link.wait_answer("s1-R7")  # the broker took it and passed it on
    time.sleep(1.0)
    assert len(panel.outbox_files()) == 1
    link.ack_answers = True
    broker.restart()  # the panel reconnects and sends what is unacknowledged
    deadline = time.monotonic() + 20
    while panel.outbox_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert panel.outbox_files() == []
    assert link.counters["answers"] == 1 and link.counters["answer_duplicate"] >= 1
    counters = status_counters(link, "p1")
    assert counters["answers_acked"] == 1 and counters["answers_sent"] >= 2


def test_broker_restarts_and_panel_kills_lose_and_double_count_nothing(link, panels, broker):
    """Twelve sales; the broker restarts twice and the panel is killed twice
    right after a pick has settled into an answer (300 ms after the tap,
    at the panel's next 100 ms tick; before that it is not an answer yet),
    before or after its PUBACK."""
    panel = panels.start()
    _online(link)
    expected = {}
    for i in range(12):
        session = f"s1-X{i}"
        link.ask("p1", session, "nps-main", "nps", "Recommend us?")
        value = i % 11
        panel.answer(session, value, timeout=15)
        expected[session] = value
        if i not in (3, 5, 8, 10):  # those are the faults' moments
            # The next sale comes after this shopper's answer, as at a till.
            # Asked at once, its question could reach the panel (MQTT)
            # before the tap did (the console) and supersede an answer
            # never picked: about one run in eight failed so.
            link.wait_answer(session, timeout=15)
        if i in (3, 8):
            broker.restart()
            link.connected.clear()
        if i in (5, 10):
            time.sleep(0.45 + 0.01 * i)
            panel.kill()
            panel = panels.start()
        before = link.statuses.get("p1", {}).get("id")
        if i in (3, 5, 8, 10):
            link.wait_status("p1", "online", timeout=20, newer_than=before)
    for session in expected:
        link.wait_answer(session, timeout=20)
    time.sleep(1.0)  # let any late duplicate delivery arrive
    got = {s: a["value"] for s, a in link.by_session.items()}
    assert got == expected
    assert len(link.answers) == len(expected)  # one answer id per session
    assert link.counters["answers"] == len(expected)
    assert panel.outbox_files() == []


def test_status_counters_survive_in_telemetry(link, panels):
    panels.start()
    _online(link)
    counters = status_counters(link, "p1")
    assert counters.get("connects") == 1


def test_host_config_changes_valid_settings_and_counts_bad_ones(link, panels):
    panel = panels.start()
    _online(link)
    msg = protocol.envelope("config", "c1", int(time.time()), "s1", "p1")
    msg["settings"] = {"thanks_s": 1, "heartbeat_s": -5}
    link.publish("p1", "config", protocol.encode(msg), retain=True)
    counters = status_counters(link, "p1")
    assert counters.get("config_rejected") == 1
    status = link.statuses["p1"]
    assert status["settings"]["thanks_s"] == 1  # applied
    assert status["settings"]["heartbeat_s"] == 30  # refused, default kept


def test_host_clearing_its_retained_config_is_not_an_error(link, panels):
    panels.start()
    _online(link)
    link.publish("p1", "config", b"", retain=True)
    counters = status_counters(link, "p1")
    assert not any(name.startswith("rx_") for name in counters)


def test_console_decline_text_answers_and_service_status(link, panels):
    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-C1", "found-all", "yesno", "Did you find everything?")
    panel.answer("s1-C1", "yes")
    assert link.wait_answer("s1-C1")["value"] == "yes"
    link.ask("p1", "s1-C2", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="s1-C2")
    panel.send("decline")
    answer = link.wait_answer("s1-C2")
    assert (answer["outcome"], answer["value"]) == ("declined", None)
    # The host can hold the answer before the panel has read the broker's
    # PUBACK and emptied its outbox: ask again until it has.
    deadline = time.monotonic() + 5
    while True:
        panel.send("status")
        info = panel.wait_screen("status")
        if info["outbox"] == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert (info["panel"], info["broker"], info["outbox"]) == ("p1", "up", 0)


def test_reboot_command_says_offline_and_restarts_the_panel(link, panels):
    panel = panels.start()
    _online(link)
    cmd = protocol.envelope("cmd", new_id(), int(time.time()), "s1", "p1")
    cmd["cmd"] = "reboot"
    link.publish("p1", "cmd", protocol.encode(cmd))
    link.wait_status("p1", "offline", timeout=10)
    assert panel.proc.wait(10) == 3  # machine.reset() in the unix-port stub


def test_answer_whose_puback_never_came_is_retried_while_the_link_stays_up(link, panels, broker):
    """A frozen broker (SIGSTOP) keeps the TCP link open but acknowledges
    nothing: the publish times out (10 s) before keepalive (15 s) declares the
    link dead. After the broker thaws, the periodic flush retries the answer
    and the outbox empties; the host counts it once."""

    panel = panels.start()
    _online(link)
    link.ask("p1", "s1-P1", "nps-main", "nps", "Recommend us?")
    panel.wait_screen("question", session="s1-P1")
    broker.proc.send_signal(signal.SIGSTOP)
    try:
        panel.answer("s1-P1", 7)
        deadline = time.monotonic() + 20
        while "kept for resend" not in panel.log_tail() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        broker.proc.send_signal(signal.SIGCONT)
    assert "kept for resend" in panel.log_tail()
    assert link.wait_answer("s1-P1", timeout=10)["value"] == 7
    deadline = time.monotonic() + 10
    while panel.outbox_files() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert panel.outbox_files() == []
    assert "link down" not in panel.log_tail()  # it was the retry, not a reconnect
    assert link.counters["answers"] == 1
