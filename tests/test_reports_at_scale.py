"""A store open for months: the dashboard's reports and export on a big
database must not hold up the questions of the store's tills, and a slow
report answers "computing" instead of making the page wait."""

from __future__ import annotations

import asyncio
import http.client
import statistics
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from conftest import STORE, Host, receipt_doc
from lbpanel import protocol
from loyalty_button.bench import fake_records
from loyalty_button.service import dashboard
from loyalty_button.service.report_jobs import Computing, ReportJobs
from loyalty_button.sim.broker import free_port

BIG = 100_000


def _get(port, path, cookie=""):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("GET", path, headers={"Cookie": cookie})
        resp = conn.getresponse()
        while resp.read(1 << 16):
            pass
        return resp.status
    finally:
        conn.close()


def _log_in(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/login", "user=manager&password=correct horse",
                 {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.getheader("Set-Cookie").split(";")[0]


def _latencies(h: Host, arrived: dict, prefix: str, n: int) -> list[float]:
    """POS datagram sent -> the question on the broker, one at a time."""
    out = []
    for i in range(n):
        session = f"{STORE}-{prefix}{i}"
        ev = arrived[session] = threading.Event()
        t0 = time.perf_counter()
        h.pos.send_udp(receipt_doc("1", f"{prefix}{i}"))
        assert ev.wait(10), f"no question for {session}"
        out.append(ev.at - t0)
        time.sleep(0.03)
    return out


def test_a_dashboard_busy_on_a_big_database_does_not_delay_the_questions(tmp_path, broker,
                                                                          panels):
    root = tmp_path / "host"
    root.mkdir()
    fake_records.fill(root / "records.db", BIG)
    dashboard.add_user(root / "users", "manager", "correct horse")
    port = free_port()
    h = Host(root, broker, dashboard={"port": port, "bind": "127.0.0.1",
                                      "users_file": "users"}).start()
    panels.start("till-1")
    h.wait_online("till-1")
    arrived: dict[str, threading.Event] = {}

    def on_message(client, userdata, msg):
        at = time.perf_counter()
        ev = arrived.get(protocol.loads(msg.payload)["session"])
        if ev is not None:
            ev.at = at
            ev.set()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
    sub.on_message = on_message
    sub.connect("127.0.0.1", broker.port)
    sub.subscribe(protocol.panel_topic(STORE, "till-1", "question"), qos=1)
    sub.loop_start()
    stop = threading.Event()
    served = []
    try:
        time.sleep(0.5)
        cookie = _log_in(port)
        idle = _latencies(h, arrived, "IDLE-", 40)

        def hammer():
            paths = ["/api/summary", "/api/breakdown?by=segment", "/api/breakdown?by=day",
                     "/api/breakdown?by=cashier", "/export/records.csv"]
            while not stop.is_set():
                for path in paths:
                    served.append((path, _get(port, path, cookie)))
        workers = [threading.Thread(target=hammer, daemon=True) for _ in range(2)]
        for w in workers:
            w.start()
        time.sleep(0.5)
        busy = _latencies(h, arrived, "BUSY-", 40)
        stop.set()
        for w in workers:
            w.join(120)
    finally:
        stop.set()
        sub.loop_stop()
        h.stop()
    assert all(status == 200 for _, status in served), served
    assert sum(1 for p, _ in served if p.startswith("/export")) >= 2  # real load, exports too
    ratio = statistics.median(busy) / statistics.median(idle)
    print(f"question latency, median: idle {statistics.median(idle) * 1000:.2f} ms, "
          f"dashboard busy {statistics.median(busy) * 1000:.2f} ms (x{ratio:.2f}); "
          f"{len(served)} dashboard requests served meanwhile")
    assert ratio < 2.5


def test_a_slow_report_says_computing_runs_once_and_is_served_when_done(tmp_path):
    fake_records.fill(tmp_path / "r.db", 100)
    jobs = ReportJobs(tmp_path / "r.db", answer_within_s=0.05, fresh_s=30)
    calls = []

    def slow(conn):
        calls.append(1)
        time.sleep(0.4)
        return conn.execute("SELECT COUNT(*) FROM records").fetchone()[0]

    async def scenario():
        for _ in range(3):  # the page asking again meanwhile starts nothing new
            with pytest.raises(Computing):
                await jobs.get("count", slow)
        await asyncio.sleep(0.5)
        return await jobs.get("count", slow)
    assert asyncio.run(scenario()) == 100
    assert len(calls) == 1
    assert jobs.counters["report_runs"] == 1 and jobs.counters["report_computing"] == 3
    jobs.close()


def test_a_runaway_report_is_stopped_by_sqlite_at_its_limit(tmp_path):
    fake_records.fill(tmp_path / "r.db", 10)
    jobs = ReportJobs(tmp_path / "r.db", answer_within_s=30, hard_limit_s=0.2)

    def forever(conn):
        return conn.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                            "SELECT MAX(x) FROM c").fetchone()

    async def scenario():
        with pytest.raises(Exception, match="interrupted"):
            await jobs.get("forever", forever)
    asyncio.run(scenario())  # without the limit it would run to the end of time
    assert jobs.counters["report_interrupted"] == 1
    jobs.close()
