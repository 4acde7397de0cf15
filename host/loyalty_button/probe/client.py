"""The concentrator's side of the probe: ask about each receipt, wait at
most the deadline, merge the estimate into the record.

Nothing here delays a transaction: the record is written when the receipt
arrives and the question goes out in the same loop turn; the request goes
out beside them, and the estimate (or "late") is merged into the record
afterwards by a second, small write."""

from __future__ import annotations

import asyncio
import logging
import time

from lbpanel import protocol
from lbpanel.protocol import ProtocolError

from . import messages

log = logging.getLogger(__name__)

# What a record's `probe` column says when there is no estimate to merge.
ASKED, LATE, OFF, ABSENT = "asked", "late", "off", "absent"


class ProbeClient:
    def __init__(self, store: str, records, counters, deadline_ms: int, limit, publish):
        self.store, self.records, self.counters = store, records, counters
        self.deadline_s = deadline_ms / 1000
        self.limit, self.publish = limit, publish
        self.state: str | None = None  # the probe's retained status; None: never heard of
        self.waiting: dict[str, tuple[str, asyncio.TimerHandle]] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(messages.topic(self.store, "estimate"), 0),
                (messages.topic(self.store, "status"), 1)]

    def ask(self, rec: dict) -> None:
        """Ask about the shopper of this (new) record; sets rec['probe']."""
        if self.state != "online":
            # Off by its owner's choice, or not running: do not wait for it.
            rec["probe"] = OFF if self.state == "off" else ABSENT
            self.counters["probe_" + rec["probe"]] += 1
            return
        req = messages.request(protocol.new_id(), int(time.time()), self.store, rec["till"],
                               rec["id"], rec["received_ms"])
        if not self.publish(messages.topic(self.store, "request"), messages.encode(req)):
            rec["probe"] = ABSENT
            self.counters["probe_absent"] += 1
            return
        rec["probe"] = ASKED
        self.counters["probe_asked"] += 1
        timer = asyncio.get_running_loop().call_later(self.deadline_s, self._late, req["id"])
        self.waiting[req["id"]] = (rec["id"], timer)

    def _late(self, req_id: str) -> None:
        session, _ = self.waiting.pop(req_id, (None, None))
        if session is None:
            return
        self.counters["probe_late"] += 1
        self.limit("probe_late", logging.WARNING,
                   "probe did not answer about %s within %d ms; record kept without "
                   "emotion data", session, int(self.deadline_s * 1000))
        self.records.set_probe(session, {"probe": LATE})

    def on_message(self, leaf: str, payload: bytes) -> None:
        if leaf == "status":
            if not payload:
                self.state = None
                return
            try:
                msg = messages.decode(payload, "probe_status")
            except ProtocolError as e:
                return self._refuse("status", e)
            if msg["state"] != self.state:
                log.info("emotion probe is %s", msg["state"])
            self.state = msg["state"]
            return
        try:
            msg = messages.decode(payload, "probe_estimate")
        except ProtocolError as e:
            return self._refuse("estimate", e)
        waiting = self.waiting.pop(msg["request"], None)
        if waiting is None:
            # After the deadline (the record already says late) or not ours.
            self.counters["probe_estimate_unmatched"] += 1
            return
        session, timer = waiting
        timer.cancel()
        if msg["session"] != session:
            self.counters["probe_estimate_mismatch"] += 1
            self.limit("probe_mismatch", logging.WARNING,
                       "probe estimate for request %s names session %s, expected %s: ignored",
                       msg["request"], msg["session"], session)
            self.records.set_probe(session, {"probe": LATE})
            return
        self.counters["probe_" + msg["status"]] += 1
        self.records.set_probe(session, {
            "probe": msg["status"], "emotion": msg.get("emotion"),
            "emotions": msg.get("emotions"), "c_value": msg.get("c_value"),
            "age_band": msg.get("age_band"), "gender": msg.get("gender"),
            "probe_age_ms": msg.get("age_ms")})

    def _refuse(self, what: str, e: ProtocolError) -> None:
        self.counters["probe_rx_" + e.code] += 1
        self.limit("probe_rx_" + e.code, logging.WARNING, "refused probe %s: %s", what, e.message)
        self.records.reject("mqtt:probe/" + what, "probe_rx_" + e.code, e.message)

    def stop(self) -> None:
        for _, timer in self.waiting.values():
            timer.cancel()
