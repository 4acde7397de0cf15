"""The store broker's access rules, tried on a real Mosquitto with the
configuration and ACL the product writes (sim.broker): client ids bound to
user names, and the emotion probe's user held to its three topics."""

from __future__ import annotations

import queue
import time

import paho.mqtt.client as mqtt

from conftest import STORE, status_counters
from lbpanel import protocol
from loyalty_button.probe import messages as probe_messages
from loyalty_button.sim.broker import Broker
from loyalty_button.sim.panel_link import PanelLink

USERS = {"host": "hostpw", "p1": "pw1", "p2": "pw2", "probe": "probepw"}


def _login(port: int, user: str, password: str, client_id: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    c.username_pw_set(user, password)
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def test_a_panel_login_cannot_knock_the_host_or_another_panel_off(tmp_path, panels):
    broker = Broker(tmp_path / "b", store=STORE, users=USERS).start()
    link = PanelLink(STORE, port=broker.port, user="host", password="hostpw").start()
    drops = []
    link.client.on_disconnect = lambda *a: drops.append(a)
    try:
        cfg = panels.config("p2")
        cfg["broker"].update(port=broker.port, user="p2", password="pw2")
        panels.start("p2", config=cfg)
        link.wait_status("p2", "online", timeout=15)
        # p1's credentials, asking for the host's and p2's client ids (the
        # ids they ask for themselves): MQTT drops the older connection of
        # an id, so without the binding each of these would cut one off.
        for asked in ("lb-host-s1", "host", "lb-s1-p2", "p2"):
            intruder = _login(broker.port, "p1", "pw1", asked)
            time.sleep(0.5)
            intruder.disconnect()
            intruder.loop_stop()
        time.sleep(0.5)
        assert drops == [] and link.client.is_connected()
        assert status_counters(link, "p2").get("link_lost", 0) == 0
    finally:
        link.stop()
        broker.stop()


def test_the_probe_user_may_use_its_own_three_topics_and_nothing_else(tmp_path):
    broker = Broker(tmp_path / "b", store=STORE, users=USERS).start()
    seen: dict[str, queue.Queue] = {"host": queue.Queue(), "probe": queue.Queue()}
    host = _login(broker.port, "host", "hostpw", "host")
    probe = _login(broker.port, "probe", "probepw", "probe")
    host.on_message = lambda c, u, m: seen["host"].put(m.topic)
    probe.on_message = lambda c, u, m: seen["probe"].put(m.topic)
    try:
        host.subscribe(f"lb/v1/{STORE}/#", qos=1)
        # the probe asks for far more than it may read
        probe.subscribe([(f"lb/v1/{STORE}/probe/request", 1), (f"lb/v1/{STORE}/#", 1)])
        time.sleep(0.5)
        request = probe_messages.topic(STORE, "request")
        host.publish(request, b"{}", qos=1).wait_for_publish(5)
        host.publish(protocol.panel_topic(STORE, "p1", "answer"), b"{}",
                     qos=1).wait_for_publish(5)
        allowed = [probe_messages.topic(STORE, "estimate"), probe_messages.topic(STORE, "status")]
        refused = [probe_messages.topic(STORE, "request"),
                   protocol.panel_topic(STORE, "p1", "question"),
                   protocol.panel_topic(STORE, "p1", "answer"),
                   f"lb/v1/{STORE}/probe/other"]
        for topic in allowed + refused:
            probe.publish(topic, b"{}", qos=1).wait_for_publish(5)
        time.sleep(1.0)
        got_probe = _drain(seen["probe"])
        got_host = _drain(seen["host"])
        assert request in got_probe
        assert protocol.panel_topic(STORE, "p1", "answer") not in got_probe
        # what the host saw from the probe: exactly the two it may write
        from_probe = [t for t in got_host if t not in (request,
                                                       protocol.panel_topic(STORE, "p1",
                                                                            "answer"))]
        assert sorted(from_probe) == sorted(allowed)
    finally:
        for c in (host, probe):
            c.disconnect()
            c.loop_stop()
        broker.stop()


def _drain(q: queue.Queue) -> list[str]:
    out = []
    while not q.empty():
        out.append(q.get_nowait())
    return out
