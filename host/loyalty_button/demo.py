"""The demo: a real Mosquitto, one panel running the real firmware under the
MicroPython unix port, and the host asking it two questions as a till would
after two sales. The first shopper answers 9 (a promoter); the second walks
away, and the timeout is recorded as an answer of its own."""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path

from .broker import Broker
from .panel_link import PanelLink, session_id
from .simpanel import SimPanel, panel_config

log = logging.getLogger(__name__)

STORE = "demo-store"
PANEL = "till-1"


def merged_record(receipt: dict, question: dict, answer: dict) -> dict:
    """POS data + what the panel said, as one record (the concentrator will
    own this; the demo shows its shape)."""
    return {
        "id": question["session"],
        "store": receipt["store"],
        "till": receipt["till"],
        "receipt": receipt["receipt"],
        "loyalty_id": receipt.get("loyalty_id"),
        "question": question["qid"],
        "kind": question["kind"],
        "outcome": answer["outcome"],
        "value": answer["value"],
        "answer_ms": answer.get("answer_ms"),
        "answer_id": answer["id"],
        "panel": answer["panel"],
    }


def run(workdir: Path | None = None, timeout_s: int = 4, out=print) -> list[dict]:
    tmp = tempfile.TemporaryDirectory(prefix="lb-demo-") if workdir is None else None
    root = Path(tmp.name if tmp else workdir)
    records = []
    broker = Broker(root / "broker", store=STORE).start()
    out(f"broker: mosquitto on 127.0.0.1:{broker.port}")
    panel = SimPanel(root / PANEL, panel_config(PANEL, STORE, broker.port, root / PANEL / "outbox"))
    link = PanelLink(STORE, port=broker.port)
    try:
        link.start()
        panel.start()
        link.wait_status(PANEL, "online", timeout=15)
        out(f"panel {PANEL}: online (MicroPython unix port, log in {panel.log_path})")
        sales = [
            ({"store": STORE, "till": "1", "receipt": "R-1001", "loyalty_id": "7700123"}, 9),
            ({"store": STORE, "till": "1", "receipt": "R-1002"}, None),
        ]
        for receipt, score in sales:
            session = session_id(STORE, receipt["receipt"])
            question = link.ask(PANEL, session, "nps-member" if receipt.get("loyalty_id") else "nps",
                                "nps", "How likely are you to recommend us to a friend?",
                                timeout_s=timeout_s)
            out(f"\nPOS closed sale {receipt['receipt']} -> question {question['qid']} "
                f"sent to {PANEL}")
            if score is not None:
                shown = panel.answer(session, score)
                out(f"panel shows: {shown['text']!r} ({shown['timeout_ms'] // 1000}s to answer)")
                out(f"shopper taps {score}")
            else:
                shown = panel.wait_screen("question", session=session)
                out(f"panel shows: {shown['text']!r} ({shown['timeout_ms'] // 1000}s to answer)")
                out("shopper walks away without answering...")
            answer = link.wait_answer(session, timeout=timeout_s + 10)
            record = merged_record(receipt, question, answer)
            records.append(record)
            out("merged record: " + json.dumps(record, indent=None))
        out(f"\nhost counted {link.counters['answers']} answers, "
            f"{link.counters['answer_duplicate']} duplicate deliveries ignored")
        return records
    finally:
        panel.stop()
        link.stop()
        broker.stop()
        if tmp:
            tmp.cleanup()
