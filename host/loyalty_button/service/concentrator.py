"""The concentrator: owns each transaction from receipt to feedback record.

    receipt (UDP/HTTP) -> rules pick a question -> question to the till's panel
    -> answer, or the host's deadline -> one record per receipt in SQLite

Everything runs on one asyncio loop (MQTT included, see mqtt_loop), so there
are no locks: a receipt is checked, decided and its question written to the
broker in one loop turn. Records are written by the record store's thread
in batches. docs/concentrator.md explains outcomes, counters and logs."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from lbpanel import flow as panel_flow
from lbpanel import protocol

from ..loglimit import LogLimiter
from ..mqtt_loop import MqttLoop
from .. import phone_link
from .catalogue import Catalogue, CatalogueFile
from .config import HostConfig
from .fleet import Fleet
from .receipt import ReceiptError, ReplayGuard, session_id
from .records import RecordStore, now_ms

log = logging.getLogger(__name__)

# Outcomes the host adds to the panel's four (answered, declined, timeout,
# superseded): the panel never answered by the deadline; the panel (or the
# broker) was not there to ask; the rules chose not to ask.
NO_REPLY = "no_reply"
PANEL_OFFLINE = "panel_offline"
NOT_ASKED = "not_asked"
STALE_RECEIPT = "stale_receipt"
BROKER_DOWN = "broker_down"

# The counters the status API shows from the start, at 0 until something
# happens (docs/concentrator.md lists them); the rest (a refusal's code, a
# reason) appear with their first event.
COUNTERS = (
    "receipts", "receipts_udp", "receipts_http", "receipt_duplicate",
    "udp_rx", "udp_accepted", "udp_duplicate", "udp_refused",
    "http_rx", "http_accepted", "http_duplicate", "http_refused",
    "asked", "answers", "answer_duplicate", "answer_late", "answer_conflict",
    "answer_mismatch", "answer_unknown_session", "acks_sent", "ack_publish_failed",
    "rx_error", "broker_connects", "broker_lost", "question_publish_failed", "tx_restored",
    "phone_links",
) + tuple("outcome_" + o for o in protocol.OUTCOMES + (NO_REPLY, PANEL_OFFLINE, NOT_ASKED))

# Closed sessions and answer ids kept in memory: about a busy store's day
# (8 300 receipts). Older ones are looked up in the database (duplicates,
# late answers), so the cap bounds memory, not what the host knows.
_RECENT = 10_000
_READY_SETTLE_S = 0.3      # after subscribing: let the retained panel statuses arrive
_BACKLOG = 10_000          # receipts taken before ready, processed once ready


@dataclass
class Tx:
    session: str
    panel: str
    qid: str
    kind: str
    options: list | None
    asked_mono: float
    timer: asyncio.TimerHandle | None = None


@dataclass(slots=True)
class Closed:
    panel: str | None
    qid: str | None
    outcome: str
    answer_id: str | None


class Concentrator:
    """Transactions only: what the host's other parts need of it comes in
    through the constructor (the record store, the broker link, the fleet,
    the catalogue file, the probe client) and `service.host` wires them."""

    def __init__(self, cfg: HostConfig, catalogue: CatalogueFile, records: RecordStore,
                 mqtt_loop: MqttLoop, fleet: Fleet, counters: Counter, limit: LogLimiter,
                 probe=None, phone=None):
        self.cfg = cfg
        self.store = cfg.store
        self.catalogue_file = catalogue
        self.records = records
        self.mqtt = mqtt_loop
        self.fleet = fleet
        self.counters = counters
        self.limit = limit
        self.probe = probe
        self.phone = phone  # the phone survey's links (service/phone.py), or None
        # session -> its phone survey link, for the POS's reply (a retry too)
        self.links: OrderedDict[str, str] = OrderedDict()
        self.pending: dict[str, Tx] = {}
        self.recent: OrderedDict[str, Closed] = OrderedDict()
        # answer id -> the commit of what it did (None: committed before)
        self.answer_ids: OrderedDict[str, asyncio.Future | None] = OrderedDict()
        self.replay = ReplayGuard(cfg.replay_window_s)
        # session -> the commit of its receipt, while it is not on disk yet
        self.storing: dict[str, asyncio.Future] = {}
        self.quiet: dict[str, float] = {}
        self.ready = False
        self._backlog: list = []

    @property
    def catalogue(self) -> Catalogue:
        return self.catalogue_file.current

    def start(self) -> None:
        """Before the broker link: pick up what the last run left open."""
        self._restore()

    def stop(self) -> None:
        # Open transactions stay `pending` in the database; the next start
        # picks them up (a late answer still lands).
        for tx in self.pending.values():
            if tx.timer:
                tx.timer.cancel()

    def _restore(self) -> None:
        """Pick up transactions left open by the previous run, and the quiet
        periods of recently asked shoppers."""
        quiet_s = self.catalogue.max_quiet_days() * 86400
        for lid, at in self.records.last_asked(now_ms() - int(quiet_s * 1000)).items():
            self.quiet[lid] = at / 1000
        now = time.time()
        for rec in self.records.pending():
            tx = Tx(rec["id"], rec["panel"], rec["qid"], rec["kind"], None, time.monotonic())
            left = (rec["asked_ms"] or 0) / 1000 + self._wait_s(rec["qid"], rec["lang"]) - now
            self.pending[tx.session] = tx
            tx.timer = asyncio.get_running_loop().call_later(max(left, 0), self._expire,
                                                             tx.session)
            self.counters["tx_restored"] += 1
        if self.counters["tx_restored"]:
            log.info("picked up %d open transactions from the last run",
                     self.counters["tx_restored"])

    def _wait_s(self, qid: str | None, lang: str | None) -> float:
        """How long the host waits for an answer: the panel's timeout, the
        "why?" step if any, and a grace for the answer to travel."""
        fields = None
        if qid and lang:
            fields = self.catalogue.questions.get((qid, lang))
        if fields is None:
            return protocol.TIMEOUT_RANGE[1] + self.cfg.answer_grace_s
        wait = fields["timeout_s"] + self.cfg.answer_grace_s
        if "why" in fields:
            wait += panel_flow.WHY_TIMEOUT_MS / 1000
        return wait

    # --- the broker -----------------------------------------------------------

    def on_broker_up(self) -> None:
        asyncio.get_running_loop().call_later(_READY_SETTLE_S, self._become_ready)

    def _become_ready(self) -> None:
        if self.ready or not self.mqtt.up.is_set():
            return
        self.ready = True
        states = self.fleet.state
        log.info("ready: %d panels known (%d online)", len(states),
                 sum(1 for s in states.values() if s == "online"))
        backlog, self._backlog = self._backlog, []
        for receipt, source in backlog:
            self._take(receipt, source)

    # --- receipts -------------------------------------------------------------

    def offer(self, receipt: dict, source: str) -> tuple[str, str, asyncio.Future | None]:
        """A checked receipt from a listener. Returns (status, session,
        future): status 'accepted' or 'duplicate'; the future (when not
        None) resolves once the record is on disk, for a duplicate too
        while the first copy's write is pending. Raises ReceiptError for a
        till the catalogue does not know."""
        till = receipt["till"]
        if till not in self.catalogue.tills:
            known = ", ".join(sorted(self.catalogue.tills)[:20])
            raise ReceiptError("unknown_till", f"till {till!r} is not in the catalogue's "
                                               f"tills (known: {known})", "till")
        session = session_id(self.store, receipt["receipt"])
        if self._known(session):
            self.counters["receipt_duplicate"] += 1
            log.info("receipt %s (%s) taken before: nothing new", session, source)
            # A retry while the first write is still waiting for the disk
            # is told what the first one will be told, once it is true.
            return "duplicate", session, self.storing.get(session)
        if not self.ready:
            if len(self._backlog) >= _BACKLOG:
                raise ReceiptError("not_ready", "the host is starting; retry in a second")
            self._backlog.append((receipt, source))
            self.recent[session] = Closed(None, None, "pending", None)
            self.counters["receipt_backlogged"] += 1
            return "accepted", session, None
        return "accepted", session, self._take(receipt, source)

    def _known(self, session: str) -> bool:
        if session in self.pending or session in self.recent:
            return True
        return self.records.exists(session)

    def _take(self, receipt: dict, source: str) -> asyncio.Future | None:
        cat = self.catalogue
        till = cat.tills[receipt["till"]]
        session = session_id(self.store, receipt["receipt"])
        now = time.time()
        self.counters["receipts"] += 1
        self.counters["receipts_" + source] += 1
        rec = {
            "id": session, "store": self.store, "till": receipt["till"],
            "receipt": receipt["receipt"], "panel": till.panel,
            "loyalty_id": receipt.get("loyalty_id"), "cashier": receipt.get("cashier"),
            "total": receipt.get("total"), "currency": receipt.get("currency"),
            "items": receipt.get("items"), "extras": receipt.get("extras"),
            "lang": cat.language(receipt), "source": source, "pos_msg_id": receipt["id"],
            "sale_ts": receipt["ts"], "received_ms": int(now * 1000), "state": "pending",
        }
        outcome = reason = None
        loyalty = receipt.get("loyalty_id")
        if now - receipt["ts"] > self.cfg.max_age_s:
            outcome, reason = NOT_ASKED, STALE_RECEIPT
        elif not self.mqtt.up.is_set():
            outcome, reason = PANEL_OFFLINE, BROKER_DOWN
        elif not self.fleet.online(till.panel):
            outcome, reason = PANEL_OFFLINE, self.fleet.why_not_online(till.panel)
        else:
            local = dt.datetime.fromtimestamp(receipt["ts"], self.cfg.tz)
            decision = cat.decide(receipt, session, local,
                                  self.quiet.get(loyalty) if loyalty else None, now)
            rec["rule"] = decision.rule
            if decision.qid is None:
                outcome, reason = NOT_ASKED, decision.reason
            else:
                link = self._phone_link(rec, cat, decision.qid)
                reason = self._ask(rec, decision.qid, now, link)
                if reason:
                    outcome = PANEL_OFFLINE
                elif loyalty:
                    self.quiet[loyalty] = now
        if self.probe and reason != STALE_RECEIPT:
            self.probe.ask(rec)
        if outcome:
            rec.update(state="closed", outcome=outcome, reason=reason, closed_ms=rec["received_ms"])
            self.counters["outcome_" + outcome] += 1
            if outcome == NOT_ASKED:
                self.counters["not_asked_" + reason] += 1
            self._remember(session, Closed(till.panel, None, outcome, None))
            log.debug("receipt %s: %s (%s)", session, outcome, reason)
        # The question is already on its way: only the POS's reply waits
        # for the disk, never the panel.
        stored = self.records.insert(rec, wait=True)
        self.storing[session] = stored
        stored.add_done_callback(lambda _: self.storing.pop(session, None))
        return stored

    def _phone_link(self, rec: dict, cat: Catalogue, qid: str) -> str | None:
        """The phone survey's link for this receipt, when the catalogue
        offers it after `qid` and the central service gave a key."""
        if self.phone is None or not cat.phone_after(qid):
            return None
        link = self.phone.link(rec["id"], rec["sale_ts"])
        if link:
            rec["phone_ref"] = phone_link.ref_text(phone_link.receipt_ref(rec["id"]))
            self.links[rec["id"]] = link
            while len(self.links) > _RECENT:
                self.links.popitem(last=False)
        return link

    def survey_url(self, session: str) -> str | None:
        """The link a till prints on the receipt (the POS's reply)."""
        if session in self.links:
            return self.links[session]
        if self.phone is None:
            return None
        rec = self.records.get(session)
        if rec is None or not rec.get("phone_ref"):
            return None
        return self.phone.link(session, rec["sale_ts"])

    def _ask(self, rec: dict, qid: str, now: float, link: str | None = None) -> str | None:
        """Publish the question; returns None, or why it could not be sent.
        With `link`, the thank-you screen offers the phone survey's QR (in
        place of the question's own)."""
        fields = self.catalogue.question_fields(qid, rec["lang"])
        msg = protocol.envelope("question", protocol.new_id(), int(now), self.store,
                                rec["panel"])
        msg.update(fields)
        msg["session"] = rec["id"]
        if link:
            phone = self.catalogue.phone
            msg["qr"] = {"url": phone_link.for_panel(link), "text": phone["qr_text"][rec["lang"]],
                         "to": phone["to"]}
        try:
            payload = protocol.encode(msg)
        except protocol.ProtocolError as e:
            if not link:
                raise
            # A question at the size limit: asked without the link.
            self.limit("phone_qr", logging.WARNING, "question %s is too long to carry the "
                       "phone survey's link (%s); asked without it", qid, e.message)
            msg["qr"] = fields.get("qr")
            if msg["qr"] is None:
                del msg["qr"]
            payload = protocol.encode(msg)
        info = self.mqtt.client.publish(protocol.panel_topic(self.store, rec["panel"], "question"),
                                        payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.counters["question_publish_failed"] += 1
            return BROKER_DOWN
        rec.update(qid=qid, kind=fields["kind"], asked_ms=int(now * 1000))
        options = [o["id"] for o in fields["options"]] if "options" in fields else None
        tx = Tx(rec["id"], rec["panel"], qid, fields["kind"], options, time.monotonic())
        tx.timer = asyncio.get_running_loop().call_later(self._wait_s(qid, rec["lang"]),
                                                         self._expire, tx.session)
        self.pending[tx.session] = tx
        self.counters["asked"] += 1
        return None

    def _remember(self, session: str, closed: Closed) -> None:
        self.recent[session] = closed
        self.recent.move_to_end(session)
        while len(self.recent) > _RECENT:
            self.recent.popitem(last=False)

    # --- answers and deadlines ------------------------------------------------

    def _expire(self, session: str) -> None:
        tx = self.pending.pop(session, None)
        if tx is None:
            return
        self.counters["outcome_" + NO_REPLY] += 1
        self.limit("no_reply", logging.WARNING,
                   "panel %s sent no answer for %s by the deadline; recorded as %s",
                   tx.panel, session, NO_REPLY)
        self.records.close(session, {"outcome": NO_REPLY, "reason": "no answer from the panel",
                                     "closed_ms": now_ms()})
        self._remember(session, Closed(tx.panel, tx.qid, NO_REPLY, None))

    def on_answer(self, msg: dict) -> None:
        """Take an answer (at least once: a panel resends until acked) and
        acknowledge it to the panel once it is committed, refused ones too
        (they are kept in `rejects`): only then may the panel forget it."""
        aid = msg["id"]
        if aid in self.answer_ids or self._committed_before(msg):
            # A resend: its ack was lost, or this host restarted before it
            # sent one. Acknowledged again, once the first write committed.
            self.counters["answer_duplicate"] += 1
            log.debug("answer %s delivered again: acknowledged again", aid)
            return self.ack_after(self.answer_ids.get(aid), msg["panel"], aid)
        self.counters["answers"] += 1
        committed = self._take_answer(msg)
        self.answer_ids[aid] = committed
        while len(self.answer_ids) > _RECENT:
            self.answer_ids.popitem(last=False)
        self.ack_after(committed, msg["panel"], aid)

    def _take_answer(self, msg: dict) -> asyncio.Future | None:
        """Close or refuse; returns the future of that write's commit."""
        session = msg["session"]
        tx = self.pending.get(session)
        if tx is not None:
            problem = self._mismatch(msg, tx.panel, tx.qid, tx.options)
            if problem:
                return self._refuse_answer(msg, "answer_mismatch", problem)
            del self.pending[session]
            if tx.timer:
                tx.timer.cancel()
            return self._close_with(msg, late=False)
        closed = self._closed(session)
        if closed is None:
            return self._refuse_answer(msg, "answer_unknown_session",
                                       "no receipt was taken for this session")
        if closed.outcome != NO_REPLY:
            return self._refuse_answer(msg, "answer_conflict",
                                       f"the session is already closed as {closed.outcome}")
        problem = self._mismatch(msg, closed.panel, closed.qid, None)
        if problem:
            return self._refuse_answer(msg, "answer_mismatch", problem)
        # The panel answered after the host gave up (its outbox kept the
        # answer through a network cut, say): the shopper's answer is real,
        # so the record takes it, marked late.
        self.counters["answer_late"] += 1
        log.info("late answer for %s from panel %s (%s): record updated",
                 session, msg["panel"], msg["outcome"])
        return self._close_with(msg, late=True)

    def _closed(self, session: str) -> Closed | None:
        closed = self.recent.get(session)
        if closed is None:
            rec = self.records.get(session)
            if rec is not None:
                closed = Closed(rec["panel"], rec["qid"], rec["outcome"] or rec["state"],
                                rec["answer_id"])
        return closed

    def _committed_before(self, msg: dict) -> bool:
        if msg["session"] in self.pending:
            return False
        closed = self._closed(msg["session"])
        return closed is not None and closed.answer_id == msg["id"]

    def ack_after(self, committed: asyncio.Future | None, panel: str, answer_id: str) -> None:
        """Tell `panel` its answer is safe once `committed` resolves (None:
        it already is). Never before: a disk that cannot take the record
        keeps the answer on the panel."""
        if committed is None or committed.done():
            self._ack(panel, answer_id)
        else:
            committed.add_done_callback(lambda _: self._ack(panel, answer_id))

    def _ack(self, panel: str, answer_id: str) -> None:
        msg = protocol.ack_message(self.store, panel, answer_id, int(time.time()))
        info = self.mqtt.client.publish(protocol.panel_topic(self.store, panel, "ack"),
                                        protocol.encode(msg), qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS:
            self.counters["acks_sent"] += 1
        else:
            # The panel resends the answer; it is acknowledged then.
            self.counters["ack_publish_failed"] += 1

    def _mismatch(self, msg: dict, panel, qid, options) -> str | None:
        if msg["panel"] != panel:
            return f"the question went to panel {panel}, the answer came from {msg['panel']}"
        if msg["qid"] != qid:
            return f"the question was {qid}, the answer is to {msg['qid']}"
        if options is not None and msg["outcome"] == "answered" and msg["value"] not in options:
            return f"{msg['value']!r} is not one of the options {options}"
        return None

    def _refuse_answer(self, msg: dict, code: str, why: str) -> asyncio.Future:
        self.counters[code] += 1
        self.limit(code, logging.WARNING, "answer %s from panel %s for %s refused: %s",
                   msg["id"], msg["panel"], msg["session"], why)
        return self.records.reject("mqtt:" + msg["panel"], code, why,
                                   protocol.encode(msg) if len(str(msg)) < 2000 else None,
                                   wait=True)

    def _close_with(self, msg: dict, late: bool) -> asyncio.Future:
        outcome = msg["outcome"]
        self.counters["outcome_" + outcome] += 1
        self.fleet.answered(msg["panel"])
        committed = self.records.close(msg["session"], {
            "outcome": outcome, "value": msg["value"], "reasons": msg.get("reasons"),
            "answer_ms": msg.get("answer_ms"), "shown_ms": msg.get("shown_ms"),
            "answer_id": msg["id"], "late": 1 if late else 0, "closed_ms": now_ms(),
            "advert": msg.get("advert"), "burst": msg.get("burst")}, wait=True)
        self._remember(msg["session"], Closed(msg["panel"], msg["qid"], outcome, msg["id"]))
        return committed

    # --- housekeeping ---------------------------------------------------------

    def _forget_quiet(self, now: float) -> None:
        """Loyalty ids asked longer ago than any rule's quiet period can be
        asked again: keep the map to the ids that still matter."""
        horizon = now - self.catalogue.max_quiet_days() * 86400
        for lid in [k for k, at in self.quiet.items() if at < horizon]:
            del self.quiet[lid]

    async def report(self) -> None:
        """A line of counts a minute, and the quiet periods that are over forgotten."""
        while True:
            await asyncio.sleep(60)
            self._forget_quiet(time.time())
            log.info("%s", self.counts_line())

    def counts_line(self) -> str:
        c = self.counters
        return (f"since the start: receipts {c['receipts']}, asked {c['asked']}, answered "
                f"{c['outcome_answered']}, open {len(self.pending)}, refused udp "
                f"{c['udp_refused']}, refused http {c['http_refused']}")

    def status(self) -> dict:
        return {"ready": self.ready, "open_transactions": len(self.pending)}
