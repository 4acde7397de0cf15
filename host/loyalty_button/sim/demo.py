"""The demo: a simulated store running for a while. A real Mosquitto, the
concentrator, N panels running the real firmware under the MicroPython unix
port, a POS ringing up sales over UDP and HTTP, and shoppers who answer, decline
or walk away. Prints a live summary, then the outcome of every receipt and a
few feedback records, and stops cleanly."""

from __future__ import annotations

import json
import random
import sqlite3
import tempfile
import time
from collections import Counter
from pathlib import Path

from ..service import reports
from ..service.records import open_records
from .store import Shoppers, Store

STORE = "demo-store"


def summarize(db: Path) -> dict:
    """Counts by outcome and the NPS so far, from the store's database."""
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.Error:
        return {"receipts": 0, "outcomes": {}, "nps": None, "nps_n": 0}
    try:
        outcomes = Counter()
        scores = []
        for state, outcome, kind, value in conn.execute(
                "SELECT state, outcome, kind, value FROM records"):
            outcomes[outcome or state] += 1
            if outcome == "answered" and kind == "nps":
                scores.append(value)
    except sqlite3.Error:
        return {"receipts": 0, "outcomes": {}, "nps": None, "nps_n": 0}
    finally:
        conn.close()
    return {"receipts": sum(outcomes.values()), "outcomes": dict(outcomes),
            "nps": reports.nps(scores)["nps"], "nps_n": len(scores)}


def summary_line(s: dict, elapsed: float) -> str:
    o = s["outcomes"]
    score = "-" if s["nps"] is None else f"{s['nps']:+.0f}"
    return (f"[{elapsed:5.1f}s] receipts {s['receipts']:3d} | answered {o.get('answered', 0):3d}"
            f" | declined {o.get('declined', 0):2d} | timed out {o.get('timeout', 0):2d}"
            f" | not asked {o.get('not_asked', 0):2d} | open {o.get('pending', 0):2d}"
            f" | NPS {score} (n={s['nps_n']})")


def probe_line(records: list[dict]) -> str:
    states = Counter(r["probe"] for r in records if r.get("probe"))
    values = [r["c_value"] for r in records if r.get("c_value") is not None]
    mean = f"{sum(values) / len(values):+.0f}" if values else "-"
    return ("emotion probe: " + ", ".join(f"{k} {v}" for k, v in states.most_common())
            + f"; mean C-Value {mean} over {len(values)} shoppers")


def run(workdir: Path | None = None, panels: int = 4, rate: float = 1.0,
        duration: float = 20.0, answer_rate: float = 0.8, timeout_s: int = 6,
        pos: str = "both", seed: int | None = None, members: float = 0.6,
        out=print, every: float = 2.0, probe: bool | Path = False,
        board: str | None = None, shots: Path | None = None) -> list[dict]:
    """Returns the feedback records of the run. `probe`: run the emotion
    probe too, its cameras playing an image folder (True: sample frames)."""
    tmp = tempfile.TemporaryDirectory(prefix="lb-demo-") if workdir is None else None
    root = Path(tmp.name if tmp else workdir)
    rng = random.Random(seed)
    shoppers = Shoppers(answer_rate=answer_rate, seed=seed, delay=(0.4, min(1.5, timeout_s / 3)))
    probe_images = None
    if probe:
        probe_images = Path(probe) if probe is not True else None
        if probe_images is None:
            from . import probe_frames as samples
            probe_images = samples.write_folder(root / "probe-frames")
    if shots is not None and board is None:
        board = "cyd"
    # LVGL panels get the store's adverts; the headless ones have no screen.
    store = Store(root, panels=panels, store=STORE, timeout_s=timeout_s, answer_grace_s=3,
                  probe_images=probe_images, adverts=board is not None)
    refused = Counter()
    try:
        kind = (f"LVGL {board} simulator, CPython + pydevices-lvgl" if board
                else "MicroPython unix port")
        out(f"starting a simulated store in {root}: Mosquitto, the concentrator, "
            f"{panels} panels ({kind})")
        store.start(on_screen=shoppers.react, board=board, shots=shots)
        if shots is not None:
            out(f"each panel's screen is saved to {shots}/<panel>.png as it changes")
        out(f"broker on 127.0.0.1:{store.broker.port}; POS receipts on UDP "
            f"{store.cfg.udp_port} (signed) and http://127.0.0.1:{store.cfg.http_port}"
            f"/api/v1/receipts; store database {store.cfg.database}")
        if probe_images is not None:
            out(f"emotion probe: one camera per till playing {probe_images}")
        if store.adverts is not None:
            out(f"adverts: {store.adverts}/playlist.yaml, converted for {board} and served at "
                f"{store.cfg.adverts_url}adverts/{board}/")
        out(f"ringing up about {rate:g} sales/s for {duration:g}s; shoppers answer "
            f"{answer_rate:.0%} of questions\n")
        start = time.monotonic()
        next_sale = start
        next_report = start + every
        n = 0
        last_sale = {t: 0.0 for t in store.tills}
        while time.monotonic() - start < duration:
            now = time.monotonic()
            if now >= next_sale:
                n += 1
                # A till rings up its next sale only after the last shopper
                # left: take the till that has been quiet the longest.
                till = min(store.tills, key=lambda t: (last_sale[t], rng.random()))
                last_sale[till] = now
                member = rng.random() < members
                extra = {"items": rng.randint(1, 25), "total": round(rng.uniform(50, 5000), 2),
                         "currency": "RUB", "cashier": f"c{rng.randint(1, 4)}"}
                doc = store.pos.receipt(till, f"R-{n:05d}",
                                        f"77{rng.randint(0, 10**6):06d}" if member else None,
                                        **extra)
                via = pos if pos != "both" else ("udp" if n % 2 else "http")
                if via == "udp":
                    store.pos.send_udp(doc)
                else:
                    status, body = store.pos.send_http(doc)
                    if status >= 300:
                        refused[status] += 1
                        out(f"  HTTP {status}: {json.dumps(body)}")
                next_sale = now + rng.expovariate(rate)
            if now >= next_report:
                out(summary_line(summarize(store.cfg.database), now - start))
                next_report += every
            time.sleep(min(0.05, max(0.0, min(next_sale, next_report) - time.monotonic())))
        out("\nthe POS stops; waiting for the shoppers still at a panel...")
        deadline = time.monotonic() + timeout_s + 20
        while time.monotonic() < deadline:
            if summarize(store.cfg.database)["outcomes"].get("pending", 0) == 0:
                break
            time.sleep(0.2)
        status = store.conc.status()
    finally:
        store.stop()
    s = summarize(store.cfg.database)
    out(summary_line(s, time.monotonic() - start))
    records = open_records(store.cfg.database)
    out("\noutcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(s["outcomes"].items())))
    reasons = Counter(r["reason"] for r in records if r["outcome"] == "not_asked")
    if reasons:
        out("not asked because: " + ", ".join(f"{k} {v}" for k, v in reasons.most_common()))
    c = status["counters"]
    out(f"concentrator: {c.get('receipts_udp', 0)} receipts by UDP, "
        f"{c.get('receipts_http', 0)} by HTTP, {c.get('asked', 0)} questions asked, "
        f"{c.get('answers', 0)} answers ({c.get('answer_duplicate', 0)} duplicate deliveries "
        f"ignored)")
    if probe_images is not None:
        out(probe_line(records))
    out("\na few feedback records:")
    shown = set()
    for r in records:
        key = r["outcome"]
        if key in shown:
            continue
        shown.add(key)
        keep = {k: r[k] for k in ("id", "till", "panel", "loyalty_id", "qid", "lang", "outcome",
                                  "reason", "value", "reasons", "answer_ms", "advert", "items",
                                  "total", "probe", "emotion", "c_value", "age_band", "gender")
                if r.get(k) is not None}
        out("  " + json.dumps(keep, ensure_ascii=False))
    out(f"\nstopped cleanly ({len(records)} records)")
    if tmp:
        tmp.cleanup()
    return records

