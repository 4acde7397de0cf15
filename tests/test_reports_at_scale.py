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

from lbpanel import protocol
from loyalty_button.bench import fake_records
from loyalty_button.service import dashboard
from loyalty_button.service.report_jobs import Computing, ReportJobs
from loyalty_button.sim.broker import free_port
from loyalty_button.sim.store import Store, panel_of

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


def _latencies(store: Store, arrived: dict, prefix: str, n: int) -> list[float]:
    """POS datagram sent -> the question on the broker, one at a time."""
    out = []
    for i in range(n):
        session = f"{store.store_id}-{prefix}{i}"
        ev = arrived[session] = threading.Event()
        t0 = time.perf_counter()
        store.pos.send_udp(store.pos.receipt(store.tills[0], f"{prefix}{i}"))
        assert ev.wait(10), f"no question for {session}"
        out.append(ev.at - t0)
        time.sleep(0.03)
    return out


def _p90(values):
    return sorted(values)[int(0.9 * (len(values) - 1))]


def test_a_dashboard_busy_on_a_big_database_does_not_delay_the_questions(tmp_path):
    """The concentrator in its own process, as on a store host, with the
    dashboard on a database of 100k records; a manager's browsers keep
    asking for the heaviest reports and the export while tills ring up."""
    port = free_port()
    store = Store(tmp_path, panels=1, concentrator="process", log_level="WARNING",
                  catalogue={"languages": ["en"], "tills": {}, "rules": [{"name": "all",
                                                                          "ask": "nps"}],
                             "questions": {"nps": {"kind": "nps", "timeout_s": 30,
                                                   "text": {"en": "Recommend us?"}}}},
                  dashboard__port=port, dashboard__bind="127.0.0.1",
                  dashboard__users_file="users")
    fake_records.fill(store.cfg.database, BIG)
    dashboard.add_user(store.cfg.database.parent / "users", "manager", "correct horse")
    arrived: dict[str, threading.Event] = {}

    def on_message(client, userdata, msg):
        at = time.perf_counter()
        ev = arrived.get(protocol.loads(msg.payload)["session"])
        if ev is not None:
            ev.at = at
            ev.set()
    store.start()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="watcher")
    sub.on_message = on_message
    sub.connect("127.0.0.1", store.broker.port)
    sub.subscribe(protocol.panel_topic(store.store_id, panel_of(store.tills[0]), "question"), 1)
    sub.loop_start()
    stop = threading.Event()
    served = []
    try:
        time.sleep(1.0)
        cookie = _log_in(port)
        idle = _latencies(store, arrived, "IDLE-", 40)

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
        busy = _latencies(store, arrived, "BUSY-", 40)
        stop.set()
        for w in workers:
            w.join(120)
    finally:
        stop.set()
        sub.loop_stop()
        store.stop()
    assert all(status == 200 for _, status in served), served
    assert sum(1 for p, _ in served if p.startswith("/export")) >= 2  # real load, exports too
    ratio = statistics.median(busy) / statistics.median(idle)
    ratio90 = _p90(busy) / _p90(idle)
    print(f"question latency: idle median {statistics.median(idle) * 1000:.2f} ms, p90 "
          f"{_p90(idle) * 1000:.2f} ms; dashboard busy median {statistics.median(busy) * 1000:.2f}"
          f" ms (x{ratio:.2f}), p90 {_p90(busy) * 1000:.2f} ms (x{ratio90:.2f}); "
          f"{len(served)} dashboard requests served meanwhile")
    assert ratio < 2.5 and ratio90 < 3


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
