"""Issue 37's defects, each made for real against a running host (a real
Mosquitto, the concentrator in a thread, sockets on loopback): floods of
connections and of answers. The appliance's own (the set-up page, restore,
links root might follow) are in tests/test_appliance.py."""

from __future__ import annotations

import logging
import select
import socket
import time
from pathlib import Path

from conftest import POS_TOKEN, Host
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.store import POS_KEY


def _idle(port: int, source: str, n: int) -> list[socket.socket]:
    """n connections from `source` that send nothing (a client holding files)."""
    out = []
    for _ in range(n):
        s = socket.socket()
        s.bind((source, 0))
        s.connect(("127.0.0.1", port))
        out.append(s)
    return out


def _closed_by_peer(socks: list[socket.socket], wait_s: float = 3.0) -> int:
    """How many of `socks` the host has closed (a read gives EOF or a reset)."""
    closed, deadline = set(), time.monotonic() + wait_s
    while time.monotonic() < deadline and len(closed) < len(socks):
        ready, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.2)
        for s in ready:
            try:
                if s.recv(1) == b"":
                    closed.add(s)
            except ConnectionResetError:
                closed.add(s)
    return len(closed)


def test_idle_connections_from_one_address_are_capped_and_the_tills_still_served(
        tmp_path: Path, broker, caplog):
    """One LAN client opening idle connections by the hundred: those over the
    per-address cap are closed at once and counted, the log says so a few
    times, and a till at another address is served as usual."""
    pos = {"bind": "127.0.0.1", "udp_port": free_port(), "http_port": free_port(),
           "key": POS_KEY, "token": POS_TOKEN, "max_connections": 64,
           "max_connections_per_address": 20}
    h = Host(tmp_path / "host", broker, pos=pos).start()
    held = []
    try:
        with caplog.at_level(logging.WARNING, logger="loyalty_button.service.conn_cap"):
            held = _idle(h.cfg.http_port, "127.0.0.2", 60)
            h.wait(lambda: h.counters().get("pos_http_connections_refused", 0) >= 40,
                   "the connections over the cap refused")
            assert _closed_by_peer(held) == 40  # their files are given back at once
        refusals = [r for r in caplog.records if "refused a connection" in r.getMessage()]
        assert 1 <= len(refusals) <= 3  # counted, not one line each
        status, reply = h.pos.send_http(h.pos.receipt("1", "R-CAP-1"))
        assert status == 202, reply
        # The client lets go: its connections are taken again.
        for s in held:
            s.close()
        time.sleep(0.3)
        again = _idle(h.cfg.http_port, "127.0.0.2", 5)
        held = again
        assert _closed_by_peer(again, 0.5) == 0
    finally:
        for s in held:
            s.close()
        h.stop()


def test_one_panel_login_flooding_answers_is_cut_and_the_other_tills_are_not(
        tmp_path: Path, broker):
    """30,000 bogus answers on one panel's topic: the host drops what is
    over the panel's rate before any work and counts it; the flood costs no
    database write each, and another panel's message at the same time is
    handled as usual."""
    import sqlite3
    import paho.mqtt.client as mqtt
    from loyalty_button.service.host import PANEL_BURST, PANEL_RATE
    h = Host(tmp_path / "host", broker).start()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="flooder")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    try:
        h.wait(lambda: h.counters().get("broker_connects", 0) >= 1, "the host on the broker")
        topic = f"lb/v1/{h.cfg.store}/panel/p1/answer"
        started = time.monotonic()
        n = 30000
        for _ in range(n):
            client.publish(topic, b"{not an answer", qos=0)
        before = h.counters().get("rx_malformed", 0)
        other = client.publish(f"lb/v1/{h.cfg.store}/panel/p2/answer", b"{also bogus", qos=1)
        other.wait_for_publish(10)
        counts = lambda: h.counters()  # noqa: E731
        h.wait(lambda: counts().get("rx_flood_dropped", 0) + counts().get("rx_malformed", 0)
               >= n + 1, "the flood handled", timeout=60)
        elapsed = time.monotonic() - started
        c = counts()
        assert c["rx_malformed"] <= PANEL_BURST + PANEL_RATE * elapsed + 1
        assert c["rx_flood_dropped"] >= n - PANEL_BURST - PANEL_RATE * elapsed
        assert c["rx_malformed"] > before  # p2's message was handled, not dropped
        # The counter moves when a message is handled; its `rejects` row is
        # committed by the writer a moment later, behind the flood's rows.
        def kept() -> dict:
            conn = sqlite3.connect(h.cfg.database)
            try:
                return dict(conn.execute("SELECT substr(source, -9, 2), count(*) "
                                         "FROM rejects GROUP BY 1").fetchall())
            finally:
                conn.close()
        h.wait(lambda: kept().get("p2") == 1, "p2's refused message kept", timeout=30)
        assert kept().get("p1", 0) <= PANEL_BURST + PANEL_RATE * elapsed
        status, reply = h.pos.send_http(h.pos.receipt("1", "R-FLOOD-1"))
        assert status == 202, reply
    finally:
        client.loop_stop()
        client.disconnect()
        h.stop()


def test_a_flood_of_unsigned_datagrams_is_counted_not_each_written(tmp_path: Path, broker):
    """Refused UDP receipts are kept in `rejects` for the integrator to see,
    a few a second from one address: 3,000 unsigned datagrams cost a
    counter each, not a database row each."""
    import sqlite3
    from loyalty_button.service.pos import REJECTS_KEPT_BURST, REJECTS_KEPT_PER_S
    h = Host(tmp_path / "host", broker).start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        started = time.monotonic()
        for i in range(3000):
            sock.sendto(b'{"v": 1, "type": "receipt", "n": %d}' % i, ("127.0.0.1", h.cfg.udp_port))
            if i % 200 == 0:
                time.sleep(0.01)  # within the socket's buffer
        h.wait(lambda: h.counters().get("udp_refused", 0) >= 2500, "the datagrams refused",
               timeout=30)
        time.sleep(0.5)
        elapsed = time.monotonic() - started
        c = h.counters()
        conn = sqlite3.connect(h.cfg.database)
        kept = conn.execute("SELECT count(*) FROM rejects WHERE source LIKE 'udp:%'").fetchone()[0]
        conn.close()
        assert 1 <= kept <= REJECTS_KEPT_BURST + REJECTS_KEPT_PER_S * elapsed + 1
        assert c["udp_rejects_not_kept"] == c["udp_refused"] - kept
        status, reply = h.pos.send_http(h.pos.receipt("1", "R-UDP-FLOOD"))
        assert status == 202, reply
    finally:
        sock.close()
        h.stop()


def test_the_broker_refuses_a_message_far_over_the_protocols_size(broker):
    """A 2 MB retained 'status' would be held and sent to every subscriber:
    the store broker ends the connection of whoever sends it instead."""
    import paho.mqtt.client as mqtt
    got, gone = [], []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
    sub.on_message = lambda c, u, m: got.append(len(m.payload))
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe("lb/v1/s1/panel/+/status")
    sub.loop_start()
    pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="p1")
    pub.on_disconnect = lambda c, u, f, rc, p: gone.append(rc)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    try:
        time.sleep(0.5)
        pub.publish("lb/v1/s1/panel/p1/status", b"x" * 2_000_000, qos=1, retain=True)
        deadline = time.monotonic() + 10
        while not gone and time.monotonic() < deadline:
            time.sleep(0.1)
        assert gone, "the sender was not disconnected"
        pub.loop_stop()
        pub.publish("lb/v1/s1/panel/p1/status", b"{}", qos=0)  # nothing of the big one kept
        time.sleep(1.0)
        assert got == []
    finally:
        pub.loop_stop()
        sub.loop_stop()
        sub.disconnect()
