"""The end-to-end benchmark of a store: POS datagram -> concentrator ->
Mosquitto -> MicroPython panel, against the broker's own figures measured in
the same run (the machine is shared; only ratios carry over).

  (a) latency: POS datagram sent -> question on the panel's screen, one
      transaction at a time, vs. the raw round trip paho -> Mosquitto -> paho;
  (b) throughput: closed transactions per second with every panel answering
      at once (a closed loop: a till rings up its next sale as soon as its
      host acknowledged its panel's answer, i.e. committed it), vs. the raw
      QoS 1 publish rate of one paho client;
  (c) lost: receipts sent that have no closed, answered record at the end.

The concentrator runs as its own process, as on a store host."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from lbpanel import protocol

from ..service.records import open_records
from ..sim.store import Store, panel_of

PANELS = 20
LATENCY_SAMPLES = 1000
THROUGHPUT_S = 20.0
RTT_SAMPLES = 1000
QOS1_MESSAGES = 20000
QUESTION_SIZE = 420  # bytes: about a question message with a "why?" step


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def _client(port: int, name: str) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=name)
    # Same settings as the concentrator's client: no Nagle, a window of 100.
    c.max_inflight_messages_set(100)
    c.on_socket_open = lambda client, ud, sock: sock.setsockopt(6, 1, 1)  # TCP_NODELAY
    c.connect("127.0.0.1", port)
    c.loop_start()
    return c


def broker_rtt(port: int, n: int = RTT_SAMPLES) -> list[float]:
    """paho -> Mosquitto -> paho, QoS 1, one message at a time, in ms."""
    got = threading.Event()
    sub = _client(port, "bench-rtt-sub")
    sub.on_message = lambda *a: got.set()
    ready = threading.Event()
    sub.on_subscribe = lambda *a: ready.set()
    sub.subscribe("bench/rtt", qos=1)
    ready.wait(5)
    pub = _client(port, "bench-rtt-pub")
    payload = b"x" * QUESTION_SIZE
    out = []
    for _ in range(n):
        got.clear()
        t0 = time.perf_counter()
        pub.publish("bench/rtt", payload, qos=1)
        if not got.wait(5):
            raise RuntimeError("broker round trip timed out")
        out.append((time.perf_counter() - t0) * 1000)
    pub.loop_stop()
    sub.loop_stop()
    pub.disconnect()
    sub.disconnect()
    return out


def broker_qos1_rate(port: int, n: int = QOS1_MESSAGES) -> float:
    """One paho client publishing QoS 1 as fast as the broker acknowledges."""
    c = _client(port, "bench-qos1")
    done = threading.Event()
    acked = [0]

    def on_publish(client, userdata, mid, reason_code, properties):
        acked[0] += 1
        if acked[0] == n:
            done.set()
    c.on_publish = on_publish
    time.sleep(0.2)
    payload = b"x" * QUESTION_SIZE
    t0 = time.perf_counter()
    for _ in range(n):
        c.publish("bench/qos1", payload, qos=1)
    if not done.wait(120):
        raise RuntimeError(f"only {acked[0]} of {n} QoS 1 messages acknowledged")
    rate = n / (time.perf_counter() - t0)
    c.loop_stop()
    c.disconnect()
    return rate


def _cpu_s(pid: int, thread: int | None = None) -> float:
    """CPU seconds of a process, or of one of its threads."""
    path = f"/proc/{pid}/task/{thread}/stat" if thread else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _Driver:
    """Plays every till and every shopper: taps the first option the moment
    a question shows, and rings up the next sale when the host acknowledges
    the panel's answer (on the panel's ack topic): the loop runs at the
    speed answers are stored, not at the speed of a panel's screen."""

    def __init__(self, store: Store):
        self.store = store
        self.shown: dict[str, float] = {}
        self.events: dict[str, threading.Event] = {}
        self.closed_loop = False
        self.deadline = 0.0
        self.sent: list[str] = []
        self.seq = 0
        self.lock = threading.Lock()
        self.prefix = "L"

    def on_screen(self, panel, line: dict) -> None:
        if line["ui"] == "question":
            self.shown[line["session"]] = time.perf_counter()
            panel.tap(9 if line["kind"] == "nps" else
                      3 if line["kind"] == "csat" else
                      "yes" if line["kind"] == "yesno" else line["options"][0])
            ev = self.events.get(line["session"])
            if ev:
                ev.set()
        elif line["ui"] == "why":
            panel.send("reasons")

    def on_ack(self, client, userdata, message) -> None:
        if self.closed_loop and time.perf_counter() < self.deadline:
            panel = protocol.parse_panel_topic(message.topic)[1]
            self.ring(panel.split("-", 1)[1])

    def next_number(self) -> str:
        with self.lock:
            self.seq += 1
            number = f"{self.prefix}-{self.seq}"
            self.sent.append(number)
        return number

    def ring(self, till: str) -> None:
        number = self.next_number()
        self.store.pos.send_udp(self.store.pos.receipt(till, number,
                                                       loyalty_id=f"77{self.seq:08d}"))


def _catalogue() -> dict:
    # One NPS question for everyone, always asked: the benchmark measures the
    # path, not the rules.
    return {"languages": ["en"], "tills": {},
            "questions": {"nps": {"kind": "nps", "timeout_s": 30,
                                  "text": {"en": "How likely are you to recommend us?"}}},
            "rules": [{"name": "all", "ask": "nps"}]}


def _drain(database: Path, timeout: float = 60.0) -> None:
    """Wait until no transaction is open: with the touch settle window off,
    a panel can answer faster than its answers are acknowledged, and the
    rest waits in its outbox (on flash, not lost) until the host catches up."""
    deadline = time.monotonic() + timeout
    time.sleep(1.0)
    while time.monotonic() < deadline:
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
        try:
            open_now = conn.execute("SELECT COUNT(*) FROM records WHERE state = 'pending'"
                                    ).fetchone()[0]
        finally:
            conn.close()
        if not open_now:
            break
        time.sleep(0.5)
    time.sleep(0.5)  # the last batch commits


def _closed_rate(records: dict, numbers: list[str]) -> tuple[list[dict], float]:
    """The answered records of `numbers`, and how many closed per second
    (count / (last close - first receipt))."""
    tp = [records[n] for n in numbers if n in records and records[n]["outcome"] == "answered"]
    if not tp:
        return tp, 0.0
    span_s = (max(r["closed_ms"] for r in tp) - min(r["received_ms"] for r in tp)) / 1000
    return tp, len(tp) / span_s


def host_only(out, panels: int, throughput_s: float) -> dict:
    """(d) The concentrator's own ceiling: the same closed loop with
    lightweight panels (bench/light_panels.py: one process, raw MQTT with
    the firmware's packet builders, no interpreter per panel), against the
    raw QoS 1 rate of the same broker in the same phase."""
    root = Path(tempfile.mkdtemp(prefix="lb-bench-host-"))
    store = Store(root, panels=panels, store="bench", concentrator="process",
                  catalogue=_catalogue(), log_level="WARNING")
    store.start(sim_panels=False)
    try:
        cpu_q0 = time.process_time() + _cpu_s(store.broker.proc.pid)
        qos1 = broker_qos1_rate(store.broker.port)
        qos1_cpu_us = (time.process_time() + _cpu_s(store.broker.proc.pid) - cpu_q0) \
            / QOS1_MESSAGES * 1e6
        cfg = root / "light.json"
        cfg.write_text(json.dumps({"store": "bench", "broker_port": store.broker.port,
                                   "udp_port": store.cfg.udp_port,
                                   "pos_key": store.cfg.pos_key.hex(), "tills": store.tills,
                                   "seconds": throughput_s}))
        light = subprocess.Popen([sys.executable, "-m", "loyalty_button.bench.light_panels",
                                  str(cfg)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 text=True)
        if light.stdout.readline().strip() != "ready":
            raise RuntimeError("the lightweight panels did not start")
        time.sleep(1.0)  # the concentrator sees every panel online
        pids = {"concentrator": store.conc.proc.pid, "broker": store.broker.proc.pid,
                "panels": light.pid}
        cpu0 = {k: _cpu_s(p) for k, p in pids.items()}
        loop0, t0 = _cpu_s(pids["concentrator"], pids["concentrator"]), time.perf_counter()
        light.stdin.write("go\n")
        light.stdin.flush()
        time.sleep(throughput_s)
        cpu1 = {k: _cpu_s(p) for k, p in pids.items()}
        # The concentrator's event loop (its main thread): near 100 % busy
        # means the host's ceiling is that one Python thread.
        loop_busy = (_cpu_s(pids["concentrator"], pids["concentrator"]) - loop0) \
            / (time.perf_counter() - t0)
        sent = json.loads(light.stdout.readline())["sent"]
        light.wait(10)
        time.sleep(1.0)
    finally:
        store.stop()
    records = {r["receipt"]: r for r in open_records(store.cfg.database)}
    shutil.rmtree(root, ignore_errors=True)
    tp, rate = _closed_rate(records, sent)
    cpu = {k: (cpu1[k] - cpu0[k]) / max(len(tp), 1) * 1e6 for k in cpu0}
    out(f"host only, {panels} lightweight panels (one process): {len(tp)} closed in "
        f"{throughput_s:.0f} s -> {rate:.0f} tx/s; raw QoS 1 on the same broker {qos1:.0f} msg/s "
        f"({qos1_cpu_us:.0f} us each); CPU per transaction (us): "
        + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        + f"; the concentrator = {cpu['concentrator'] / qos1_cpu_us:.1f} raw messages, its "
        f"event loop {loop_busy:.0%} busy; "
        f"lost {len(sent) - len(tp)} of {len(sent)}")
    return {"host_only_tx_per_s": round(rate, 1), "host_only_broker_qos1_per_s": round(qos1, 1),
            "host_only_cpu_us_per_tx": {k: round(v) for k, v in cpu.items()},
            "host_only_loop_busy": round(loop_busy, 2),
            "host_only_lost": len(sent) - len(tp)}


def run(out=print, panels: int = PANELS, latency_samples: int = LATENCY_SAMPLES,
        throughput_s: float = THROUGHPUT_S) -> dict:
    out(__doc__.strip())
    root = Path(tempfile.mkdtemp(prefix="lb-bench-"))
    store = Store(root, panels=panels, store="bench", concentrator="process",
                  guard_ms=0, settle_ms=0, thanks_s=1, catalogue=_catalogue(), log_level="WARNING")
    driver = _Driver(store)
    t_setup = time.perf_counter()
    store.start(on_screen=driver.on_screen)
    out(f"\nsetup: Mosquitto, concentrator (own process), {panels} MicroPython panels "
        f"in {time.perf_counter() - t_setup:.1f} s")
    try:
        rtt = broker_rtt(store.broker.port)
        out(f"broker round trip (paho -> Mosquitto -> paho, QoS 1, {len(rtt)} samples): "
            f"p50 {_pct(rtt, 50):.3f} ms, p99 {_pct(rtt, 99):.3f} ms")
        cpu_q0 = time.process_time() + _cpu_s(store.broker.proc.pid)
        qos1 = broker_qos1_rate(store.broker.port)
        qos1_cpu_us = (time.process_time() + _cpu_s(store.broker.proc.pid) - cpu_q0) \
            / QOS1_MESSAGES * 1e6
        out(f"broker QoS 1 publish rate (one paho client, window 100): {qos1:.0f} msg/s, "
            f"{qos1_cpu_us:.0f} us of CPU per message (client + broker)")

        # (a) latency, one transaction at a time, rotating over the tills
        lat = []
        for i in range(latency_samples):
            till = store.tills[i % len(store.tills)]
            number = driver.next_number()
            session = f"{store.store_id}-{number}"
            ev = driver.events[session] = threading.Event()
            doc = store.pos.receipt(till, number)
            t0 = time.perf_counter()
            store.pos.send_udp(doc)
            if not ev.wait(10):
                raise RuntimeError(f"question for {session} never shown on {panel_of(till)}")
            lat.append((driver.shown[session] - t0) * 1000)
            del driver.events[session]
            time.sleep(0.002)
        out(f"POS datagram -> question shown ({len(lat)} samples): p50 {_pct(lat, 50):.3f} ms, "
            f"p99 {_pct(lat, 99):.3f} ms")
        time.sleep(1.0)

        # (b) throughput: a closed loop on every till
        conc_pid = store.conc.proc.pid
        panel_pids = [p.proc.pid for p in store.panels.values()]
        cpu0 = {"concentrator": _cpu_s(conc_pid), "broker": _cpu_s(store.broker.proc.pid),
                "panels": sum(_cpu_s(p) for p in panel_pids), "bench": time.process_time()}
        driver.prefix = "T"
        first_t = len(driver.sent)
        acks = _client(store.broker.port, "bench-acks")
        acks.on_message = driver.on_ack
        acks.subscribe(protocol.panel_topic(store.store_id, "+", "ack"), qos=1)
        time.sleep(0.5)
        driver.closed_loop = True
        t_start = time.perf_counter()
        driver.deadline = t_start + throughput_s
        for till in store.tills:
            driver.ring(till)
        time.sleep(throughput_s)
        cpu1 = {"concentrator": _cpu_s(conc_pid), "broker": _cpu_s(store.broker.proc.pid),
                "panels": sum(_cpu_s(p) for p in panel_pids), "bench": time.process_time()}
        _drain(store.cfg.database)
        acks.loop_stop()
        acks.disconnect()
        sent_t = driver.sent[first_t:]
    finally:
        store.stop()  # SIGTERM: the concentrator commits what it holds
    records = {r["receipt"]: r for r in open_records(store.cfg.database)}
    shutil.rmtree(root, ignore_errors=True)
    answered = [records[n] for n in driver.sent if n in records
                and records[n]["outcome"] == "answered"]
    lost = len(driver.sent) - len(answered)
    tp, tx_per_s = _closed_rate(records, sent_t)
    n_tp = max(len(tp), 1)
    cpu = {k: (cpu1[k] - cpu0[k]) / n_tp * 1e6 for k in cpu0}
    out(f"closed transactions with {panels} panels answering at once: {len(tp)} in "
        f"{throughput_s:.0f} s -> {tx_per_s:.0f} tx/s")
    out("CPU per transaction (us): " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
        + f"; total {sum(cpu.values()):.0f} = {sum(cpu.values()) / qos1_cpu_us:.1f} raw QoS 1 "
        f"messages; {os.cpu_count()} cores")
    outcomes: dict[str, int] = {}
    for n in driver.sent:
        o = records[n]["outcome"] if n in records else "missing"
        outcomes[o] = outcomes.get(o, 0) + 1
    out(f"records: {len(records)} for {len(driver.sent)} receipts sent; outcomes {outcomes}; "
        f"lost {lost}")
    p99 = _pct(lat, 99)
    host = host_only(out, panels, throughput_s)
    out(f"ratios: pos_to_question_p99 / broker_rtt_p99 = {p99 / _pct(rtt, 99):.2f} "
        f"(target <= 3); tx_per_s / broker_qos1_per_s = {tx_per_s / qos1:.3f} (target >= 0.15); "
        f"host only: {host['host_only_tx_per_s'] / host['host_only_broker_qos1_per_s']:.3f} "
        f"(target >= 0.25)")
    return {
        "pos_to_question_p50_ms": round(_pct(lat, 50), 3),
        "pos_to_question_p99_ms": round(p99, 3),
        "broker_rtt_p50_ms": round(_pct(rtt, 50), 3),
        "broker_rtt_p99_ms": round(_pct(rtt, 99), 3),
        "tx_per_s": round(tx_per_s, 1),
        "broker_qos1_per_s": round(qos1, 1),
        "transactions": len(tp),
        "receipts_sent": len(driver.sent),
        "lost": lost,
        "panels": panels,
        "cpu_us_per_tx": {k: round(v) for k, v in cpu.items()},
        "cpu_us_per_qos1_msg": round(qos1_cpu_us, 1),
        **host,
    }


if __name__ == "__main__":
    print(json.dumps(run()))
