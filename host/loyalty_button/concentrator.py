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
import hashlib
import json
import logging
import os
import signal
import time
from collections import Counter, OrderedDict
from dataclasses import dataclass

import paho.mqtt.client as mqtt

from lbpanel import boards
from lbpanel import flow as panel_flow
from lbpanel import protocol

from . import catalogue as catalogue_mod
from .host_config import HostConfig
from .loglimit import LogLimiter
from .mqtt_loop import MqttLoop
from .panel_link import panel_message
from .receipt import ReceiptError, ReplayGuard, session_id
from .probe import messages as probe_messages
from .probe.client import ProbeClient
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

_RECENT = 100_000          # closed sessions and answer ids kept in memory
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


@dataclass
class Closed:
    panel: str | None
    qid: str | None
    outcome: str
    answer_id: str | None


class Concentrator:
    def __init__(self, cfg: HostConfig, catalogue: catalogue_mod.Catalogue | None = None):
        self.cfg = cfg
        self.store = cfg.store
        self.counters: Counter[str] = Counter()
        self.catalogue = catalogue or catalogue_mod.load(cfg.catalogue)
        self._catalogue_stat = self._stat()
        self._catalogue_failed_stat = None
        self.catalogue_error: str | None = None
        fwd = cfg.forwarding
        outboxes = [d.name for d in fwd.destinations] if fwd else []
        if cfg.alerts:
            outboxes.append("alerts")
        self.records = RecordStore(cfg.database, destinations=outboxes)
        self.panel_info: dict[str, dict] = {}  # panel -> its last status, last answer
        self.pending: dict[str, Tx] = {}
        self.recent: OrderedDict[str, Closed] = OrderedDict()
        self.answer_ids: OrderedDict[str, None] = OrderedDict()
        self.panel_state: dict[str, str] = {}
        self.replay = ReplayGuard(cfg.replay_window_s)
        self.quiet: dict[str, float] = {}
        self.ready = False
        self.started = time.time()
        self.limit = LogLimiter(logger=log)
        self._backlog: list = []
        self._tasks: list[asyncio.Task] = []
        self._stopped = asyncio.Event()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2,
                             client_id=f"lb-concentrator-{cfg.store}", clean_session=False)
        if cfg.broker_user:
            client.username_pw_set(cfg.broker_user, cfg.broker_password)
        # Questions go to many panels at once; do not make them queue in paho.
        client.max_inflight_messages_set(100)
        client.on_message = self._on_message
        self.mqtt = MqttLoop(client, cfg.broker_host, cfg.broker_port, cfg.broker_keepalive_s)
        self.mqtt.on_up = self._on_broker_up
        self.mqtt.on_down = self._on_broker_down
        self.forwarder = None
        if (fwd and (fwd.destinations or fwd.cloud)) or cfg.alerts:
            from .forward.forwarder import Forwarder
            self.forwarder = Forwarder(cfg.database, fwd, cfg.store, cfg.tz, self.counters,
                                       alerts=cfg.alerts)
        self.adverts = None
        self._advert_boards: dict[str, str] = {}   # panel -> its board, from its status
        self._advert_sent: dict[str, str] = {}     # panel -> digest of its last manifest
        self._adverts_wake: asyncio.Event | None = None
        if cfg.adverts_folder:
            from .advert_library import AdvertLibrary
            self.adverts = AdvertLibrary(cfg.adverts_folder, cfg.adverts_cache, self.counters)
        self.probe = None
        if cfg.probe_enabled:
            self.probe = ProbeClient(cfg.store, self.records, self.counters,
                                     cfg.probe_deadline_ms, self.limit, self._publish_qos0)

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._restore()
        self.mqtt.start()
        self._tasks = [loop.create_task(self._watch_catalogue()),
                       loop.create_task(self._report())]
        if self.forwarder:
            self.forwarder.start()
        if self.cfg.forwarding and self.cfg.forwarding.retention_days:
            self._tasks.append(loop.create_task(self._retention()))
        if self.cfg.alerts:
            self._tasks.append(loop.create_task(self._silent_panels()))
        if self.adverts:
            self._adverts_wake = asyncio.Event()
            self._tasks.append(loop.create_task(self._watch_adverts()))
        log.info("concentrator for store %s: catalogue %s (%s), %d tills, database %s",
                 self.store, self.cfg.catalogue, self.catalogue.digest,
                 len(self.catalogue.tills), self.cfg.database)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for tx in self.pending.values():
            if tx.timer:
                tx.timer.cancel()
        if self.probe:
            self.probe.stop()
        if self.forwarder:
            await asyncio.get_running_loop().run_in_executor(None, self.forwarder.stop)
        await self.mqtt.stop()
        # Open transactions stay `pending` in the database; the next start
        # picks them up (a late answer still lands).
        self.records.stop()
        self._stopped.set()

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

    def _on_broker_up(self) -> None:
        root = f"{protocol.ROOT}/{self.store}/panel/+/"
        topics = [(root + "answer", 1), (root + "status", 1)]
        if self.probe:
            topics += self.probe.subscriptions()
        self.mqtt.client.subscribe(topics)
        self.counters["broker_connects"] += 1
        # A broker that lost its retained messages (no persistence) would
        # leave the panels without a playlist: publish the manifests again.
        self._advert_sent.clear()
        if self._adverts_wake:
            self._adverts_wake.set()
        asyncio.get_running_loop().call_later(_READY_SETTLE_S, self._become_ready)

    def _on_broker_down(self, reason: str) -> None:
        self.counters["broker_lost"] += 1

    def _become_ready(self) -> None:
        if self.ready or not self.mqtt.up.is_set():
            return
        self.ready = True
        log.info("ready: %d panels known (%d online)", len(self.panel_state),
                 sum(1 for s in self.panel_state.values() if s == "online"))
        backlog, self._backlog = self._backlog, []
        for receipt, source in backlog:
            self._take(receipt, source)

    def _publish_qos0(self, topic: str, payload: bytes) -> bool:
        return self.mqtt.client.publish(topic, payload, qos=0).rc == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, client, userdata, message) -> None:
        if self.probe:
            leaf = probe_messages.parse_topic(self.store, message.topic)
            if leaf:
                return self.probe.on_message(leaf, message.payload)
        try:
            got = panel_message(self.store, message.topic, message.payload)
        except protocol.ProtocolError as e:
            self.counters["rx_" + e.code] += 1
            self.limit("rx_" + e.code, logging.WARNING, "refused message on %s: %s",
                       message.topic, e.message)
            self.records.reject("mqtt:" + message.topic, "rx_" + e.code, e.message,
                                message.payload)
            return
        if got is None:
            return  # a cleared retained message
        panel, leaf, msg = got
        if leaf == "answer":
            self._on_answer(msg)
        elif leaf == "status":
            self._on_status(panel, msg)

    def _on_status(self, panel: str, msg: dict) -> None:
        state = msg["state"]
        before = self.panel_state.get(panel)
        self.panel_state[panel] = state
        info = self.panel_info.setdefault(panel, {})
        info.update({"state": state, "seen_ms": now_ms()})
        info.update({k: msg[k] for k in ("fw", "outbox", "uptime_s", "rssi", "ip", "board",
                                         "adverts")
                     if msg.get(k) is not None})
        if before != state:
            log.info("panel %s is %s", panel, state)
        if self.adverts and state == "online":
            self._panel_board(panel, msg.get("board"))

    # --- adverts ----------------------------------------------------------------

    def _panel_board(self, panel: str, board) -> None:
        """A panel's status names its board: it gets a manifest of pictures
        made for that screen. A headless panel ("none") gets none."""
        if board in (None, "none") or board == self._advert_boards.get(panel):
            return
        if board not in boards.BOARDS:
            self.counters["adverts_unknown_board"] += 1
            self.limit("adverts_unknown_board", logging.WARNING,
                       "panel %s says it is a %r board; adverts are made for %s", panel, board,
                       ", ".join(boards.BOARDS))
            return
        self._advert_boards[panel] = board
        self._adverts_wake.set()

    async def _watch_adverts(self) -> None:
        """Pick up playlist and picture changes; keep every panel's retained
        manifest in step with them. Files are read and converted in a worker
        thread: a big picture must not stall receipts."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await loop.run_in_executor(None, self.adverts.refresh):
                    self._advert_sent.clear()
                await self._publish_manifests(loop)
            except Exception:
                self.counters["adverts_error"] += 1
                log.exception("adverts: the manifests could not be brought up to date")
            try:
                await asyncio.wait_for(self._adverts_wake.wait(), self.cfg.adverts_poll_s)
            except asyncio.TimeoutError:
                pass
            self._adverts_wake.clear()

    async def _publish_manifests(self, loop) -> None:
        sent = False
        for panel, board in list(self._advert_boards.items()):
            items = await loop.run_in_executor(None, self.adverts.items, board, panel)
            body = {"url": f"{self.cfg.adverts_url}adverts/{board}/", "items": items}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            if self._advert_sent.get(panel) == digest or not self.mqtt.up.is_set():
                continue
            msg = protocol.envelope("adverts", os.urandom(8).hex(), int(time.time()),
                                    self.store, panel)
            msg.update(body)
            try:
                payload = protocol.encode(msg)
            except protocol.ProtocolError as e:
                self.counters["adverts_manifest_refused"] += 1
                self.limit("adverts_manifest_refused", logging.ERROR,
                           "adverts: no manifest for panel %s: %s", panel, e.message)
                continue
            info = self.mqtt.client.publish(protocol.panel_topic(self.store, panel, "adverts"),
                                            payload, qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # the broker is gone; done again when it is back
            self._advert_sent[panel] = digest
            self.counters["adverts_manifests_sent"] += 1
            sent = True
            log.info("adverts: panel %s (%s) gets %d: %s", panel, board, len(items),
                     ", ".join(i["id"] for i in items) or "none")
        if sent:  # files the old manifests named may go now
            await loop.run_in_executor(None, self.adverts.prune)

    # --- receipts -------------------------------------------------------------

    def offer(self, receipt: dict, source: str) -> tuple[str, str, asyncio.Future | None]:
        """A checked receipt from a listener. Returns (status, session,
        future): status 'accepted' or 'duplicate'; the future (when not
        None) resolves once the record is on disk. Raises ReceiptError for a
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
            return "duplicate", session, None
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
        elif self.panel_state.get(till.panel) != "online":
            outcome = PANEL_OFFLINE
            reason = "panel " + ("never connected" if till.panel not in self.panel_state
                                 else "is offline")
        else:
            local = dt.datetime.fromtimestamp(receipt["ts"], self.cfg.tz)
            decision = cat.decide(receipt, session, local,
                                  self.quiet.get(loyalty) if loyalty else None, now)
            rec["rule"] = decision.rule
            if decision.qid is None:
                outcome, reason = NOT_ASKED, decision.reason
            else:
                reason = self._ask(rec, decision.qid, now)
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
        return self.records.insert(rec, wait=(source == "http"))

    def _ask(self, rec: dict, qid: str, now: float) -> str | None:
        """Publish the question; returns None, or why it could not be sent."""
        fields = self.catalogue.question_fields(qid, rec["lang"])
        msg = protocol.envelope("question", os.urandom(8).hex(), int(now), self.store,
                                rec["panel"])
        msg.update(fields)
        msg["session"] = rec["id"]
        info = self.mqtt.client.publish(protocol.panel_topic(self.store, rec["panel"], "question"),
                                        protocol.encode(msg), qos=1)
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

    def _on_answer(self, msg: dict) -> None:
        aid = msg["id"]
        if aid in self.answer_ids:
            self.counters["answer_duplicate"] += 1
            log.debug("answer %s delivered again: ignored", aid)
            return
        self.answer_ids[aid] = None
        while len(self.answer_ids) > _RECENT:
            self.answer_ids.popitem(last=False)
        self.counters["answers"] += 1
        session = msg["session"]
        tx = self.pending.get(session)
        if tx is not None:
            problem = self._mismatch(msg, tx.panel, tx.qid, tx.options)
            if problem:
                return self._refuse_answer(msg, "answer_mismatch", problem)
            del self.pending[session]
            if tx.timer:
                tx.timer.cancel()
            self._close_with(msg, late=False)
            return
        closed = self.recent.get(session)
        if closed is None:
            rec = self.records.get(session)
            if rec is not None:
                closed = Closed(rec["panel"], rec["qid"], rec["outcome"] or rec["state"],
                                rec["answer_id"])
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
        self._close_with(msg, late=True)

    def _mismatch(self, msg: dict, panel, qid, options) -> str | None:
        if msg["panel"] != panel:
            return f"the question went to panel {panel}, the answer came from {msg['panel']}"
        if msg["qid"] != qid:
            return f"the question was {qid}, the answer is to {msg['qid']}"
        if options is not None and msg["outcome"] == "answered" and msg["value"] not in options:
            return f"{msg['value']!r} is not one of the options {options}"
        return None

    def _refuse_answer(self, msg: dict, code: str, why: str) -> None:
        self.counters[code] += 1
        self.limit(code, logging.WARNING, "answer %s from panel %s for %s refused: %s",
                   msg["id"], msg["panel"], msg["session"], why)
        self.records.reject("mqtt:" + msg["panel"], code, why,
                            protocol.encode(msg) if len(str(msg)) < 2000 else None)

    def _close_with(self, msg: dict, late: bool) -> None:
        outcome = msg["outcome"]
        self.counters["outcome_" + outcome] += 1
        self.panel_info.setdefault(msg["panel"], {})["last_answer_ms"] = now_ms()
        self.records.close(msg["session"], {
            "outcome": outcome, "value": msg["value"], "reasons": msg.get("reasons"),
            "answer_ms": msg.get("answer_ms"), "shown_ms": msg.get("shown_ms"),
            "answer_id": msg["id"], "late": 1 if late else 0, "closed_ms": now_ms(),
            "advert": msg.get("advert"), "burst": msg.get("burst")})
        self._remember(msg["session"], Closed(msg["panel"], msg["qid"], outcome, msg["id"]))

    # --- the catalogue ----------------------------------------------------------

    def _stat(self):
        try:
            st = os.stat(self.cfg.catalogue)
            return (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            return None

    def reload_catalogue(self, force: bool = False) -> bool:
        """Load the catalogue file again if it changed. A bad file is refused
        as a whole: the last good catalogue stays in force."""
        stat = self._stat()
        if not force and (stat == self._catalogue_stat or stat == self._catalogue_failed_stat):
            return False
        try:
            new = catalogue_mod.load(self.cfg.catalogue)
        except catalogue_mod.CatalogueError as e:
            self._catalogue_failed_stat = stat
            self.catalogue_error = str(e)
            self.counters["catalogue_rejected"] += 1
            log.error("catalogue %s refused, keeping the last good one (%s): %s",
                      self.cfg.catalogue, self.catalogue.digest, "; ".join(e.problems))
            return False
        self._catalogue_stat = stat
        self._catalogue_failed_stat = None
        self.catalogue_error = None
        if new.digest != self.catalogue.digest:
            self.catalogue = new
            self.counters["catalogue_reloaded"] += 1
            log.info("catalogue reloaded: %s (%d questions, %d rules, %d tills)", new.digest,
                     len(new.kinds), len(new.rules), len(new.tills))
        return True

    async def _watch_catalogue(self) -> None:
        while True:
            await asyncio.sleep(self.cfg.catalogue_poll_s)
            self.reload_catalogue()

    def _forget_quiet(self, now: float) -> None:
        """Loyalty ids asked longer ago than any rule's quiet period can be
        asked again: keep the map to the ids that still matter."""
        horizon = now - self.catalogue.max_quiet_days() * 86400
        for lid in [k for k, at in self.quiet.items() if at < horizon]:
            del self.quiet[lid]

    async def _report(self) -> None:
        while True:
            await asyncio.sleep(60)
            self._forget_quiet(time.time())
            c = self.counters
            log.info("last counts: receipts %d, asked %d, answered %d, open %d, refused udp %d",
                     c["receipts"], c["asked"], c["outcome_answered"], len(self.pending),
                     sum(v for k, v in c.items() if k.startswith("udp_") and k != "udp_rx"))

    async def _retention(self) -> None:
        """Delete raw records older than forwarding.retention_days, once an
        hour (in a thread: a big delete must not stall the event loop)."""
        from .forward.outbox import OutboxDB
        days = self.cfg.forwarding.retention_days
        loop = asyncio.get_running_loop()
        while True:
            def purge():
                db = OutboxDB(self.cfg.database)
                try:
                    return db.purge(now_ms() - days * 86_400_000)
                finally:
                    db.close()
            try:
                deleted, held = await loop.run_in_executor(None, purge)
                self.counters["retention_deleted"] += deleted
                if deleted or held:
                    log.info("retention (%d days): %d record(s) deleted, %d kept until "
                             "every destination has them", days, deleted, held)
            except Exception as e:
                log.error("retention: %s", e)
            await asyncio.sleep(3600)

    async def _silent_panels(self, every_s: float = 60.0) -> None:
        """The silent-panel alert rule, once a minute; each panel's alert is
        repeated at most once per silent_panel.minutes while it lasts."""
        from . import alerts
        cfg = self.cfg.alerts
        told: dict[str, float] = {}
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(every_s)
            till_panels = {t: v.panel for t, v in self.catalogue.tills.items()}
            try:
                found = await loop.run_in_executor(
                    None, alerts.silent_panels, cfg, self.cfg.database, dict(self.panel_state),
                    till_panels, dt.datetime.now(self.cfg.tz))
            except Exception as e:
                log.error("silent panel check: %s", e)
                continue
            now = time.monotonic()
            for a in found:
                if now - told.get(a["panel"], -1e9) < cfg.silent_minutes * 60:
                    continue
                try:
                    await loop.run_in_executor(None, alerts.broadcast, cfg.channels, a, set())
                    told[a["panel"]] = now
                    self.counters["alerts_silent_panel"] += 1
                    log.warning("alert: panel %s: %s", a["panel"], a["why"])
                except Exception as e:  # tried again next minute
                    log.error("alert for panel %s not sent: %s", a["panel"], e)

    def status(self) -> dict:
        counters = dict(self.counters)
        counters.update(self.records.counters)
        return {
            "store": self.store, "ready": self.ready,
            "uptime_s": int(time.time() - self.started),
            "broker": "up" if self.mqtt.up.is_set() else "down",
            "catalogue": {"file": str(self.cfg.catalogue), "digest": self.catalogue.digest,
                          "error": self.catalogue_error},
            "panels": dict(sorted(self.panel_state.items())),
            "fleet": {p: dict(i) for p, i in sorted(self.panel_info.items())},
            "tills": {t: v.panel for t, v in sorted(self.catalogue.tills.items())},
            "open_transactions": len(self.pending),
            "adverts": (dict(self.adverts.status(), panels=dict(sorted(
                self._advert_boards.items()))) if self.adverts else "not used"),
            "probe": ({"state": self.probe.state or "unknown", "waiting": len(self.probe.waiting)}
                      if self.probe else "not used"),
            "forwarding": self.forwarder.status() if self.forwarder else {},
            "counters": dict(sorted(counters.items())),
        }


async def serve(cfg: HostConfig, ready_file=None) -> None:
    """Run the concentrator with its POS listeners until SIGTERM/SIGINT."""
    from .pos_listeners import start_listeners
    conc = Concentrator(cfg)
    await conc.start()
    listeners = await start_listeners(conc)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: conc.reload_catalogue(force=True))
    if ready_file:
        while not conc.ready:
            await asyncio.sleep(0.05)
        with open(ready_file, "w") as f:
            f.write(str(os.getpid()))
    await stop.wait()
    log.info("stopping")
    await listeners.stop()
    await conc.stop()
