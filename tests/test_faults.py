"""Faults under load: a store taking about 20 receipts a second on six
panels running the real firmware under MicroPython, while the broker, the
host and a panel are each killed with SIGKILL (no goodbye, as a power cut)
and started again. Every answer a panel stored must end up in the record
store, none twice."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path

from loyalty_button.service.records import open_records
from loyalty_button.sim.store import Shoppers, Store

RATE = 20            # receipts per second, over all tills
PHASE_S = 7          # load between two faults
DOWN_S = 2           # how long a killed part stays down
_STORED = re.compile(r"answer (\S+) for (\S+) stored")


def _catalogue() -> dict:
    # Every receipt asks: the test is about answers, not the rules.
    return {"languages": ["en"], "tills": {},
            "questions": {"csat": {"kind": "csat", "timeout_s": 4,
                                   "text": {"en": "How was it today?"}}},
            "rules": [{"name": "all", "ask": "csat"}]}


class _Till:
    """Rings up RATE receipts a second, round robin over the tills."""

    def __init__(self, store: Store):
        self.store = store
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        tills = self.store.tills
        next_at = time.monotonic()
        while not self.stop.is_set():
            till = tills[self.sent % len(tills)]
            self.store.pos.send_udp(self.store.pos.receipt(till, f"F-{self.sent}"))
            self.sent += 1
            next_at += 1 / RATE
            self.stop.wait(max(0.0, next_at - time.monotonic()))


def _wait(predicate, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout}s")
        time.sleep(0.2)


def test_killing_the_broker_the_host_and_a_panel_under_load_loses_no_answer(tmp_path: Path):
    store = Store(tmp_path, panels=6, store="s1", concentrator="process", guard_ms=0,
                  thanks_s=1, catalogue=_catalogue(), answer_grace_s=3, log_level="WARNING")
    shoppers = Shoppers(answer_rate=0.85, delay=(0.1, 0.7), seed=14)
    store.start(on_screen=shoppers.react)
    till = _Till(store)
    try:
        till.thread.start()
        time.sleep(PHASE_S)
        store.broker.proc.send_signal(signal.SIGKILL)
        store.broker.proc.wait()
        time.sleep(DOWN_S)
        store.broker.start()
        time.sleep(PHASE_S)
        store.conc.proc.send_signal(signal.SIGKILL)
        store.conc.proc.wait()
        time.sleep(DOWN_S)
        store.conc.start()
        time.sleep(PHASE_S)
        panel = store.panels["3"]
        panel.kill()
        time.sleep(DOWN_S)
        panel.start()
        time.sleep(PHASE_S)
        till.stop.set()
        till.thread.join()
        # The panels hand over what they hold; the host closes what is open.
        _wait(lambda: not any(p.outbox_files() for p in store.panels.values()),
              "every panel's outbox empty", 60)
        _wait(lambda: not [r for r in open_records(store.cfg.database)
                           if r["state"] == "pending"], "no open transaction", 30)
    finally:
        till.stop.set()
        store.stop()
    stored = {}
    for p in store.panels.values():
        for aid, session in _STORED.findall(p.log_path.read_text()):
            stored[aid] = session
    records = open_records(store.cfg.database)
    taken = [r["answer_id"] for r in records if r["answer_id"]]
    db = sqlite3.connect(store.cfg.database)
    refused = db.execute("SELECT code, raw FROM rejects").fetchall()
    db.close()
    # A refusal keeps the message (its keys in any order): its id is the answer's.
    refused_ids = {json.loads(raw)["id"] for _, raw in refused if raw}
    lost = set(stored) - set(taken) - refused_ids
    outcomes: dict[str, int] = {}
    for r in records:
        outcomes[r["outcome"]] = outcomes.get(r["outcome"], 0) + 1
    print(f"\nreceipts sent {till.sent}, records {len(records)}, answers stored on panels "
          f"{len(stored)}, taken {len(taken)}, refused {len(refused)} "
          f"({sorted({c for c, _ in refused})}), lost {len(lost)}; outcomes {outcomes}")
    assert len(stored) > 100, "the load did not run"
    assert lost == set()
    assert len(taken) == len(set(taken)), "an answer recorded twice"
    # every stored answer went to the record of its own session
    by_id = {r["answer_id"]: r["id"] for r in records if r["answer_id"]}
    assert all(by_id[a] == s for a, s in stored.items() if a in by_id)
