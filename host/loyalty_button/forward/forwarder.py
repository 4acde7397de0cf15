"""The forwarder: one thread per destination takes due rows from its outbox,
sends them, and marks each sent, to be retried, or dead.

Backoff is per destination, not per record: when a destination fails (down,
rate-limiting, 5xx) the whole destination pauses, doubling up to
backoff_max_s with jitter, and only the record that was tried counts an
attempt. So a destination that is down for a day costs one request per
pause, and with the defaults (2 s doubling to 1 h, 50 attempts) its first
record reaches the dead letters only after about two days. A record the
destination refuses for good (a 4xx) goes to the dead letters at once.
Threads and their own SQLite connections keep all of this off the
concentrator's event loop and its writer."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

from ..loglimit import LogLimiter
from ..service.records import now_ms
from . import http
from .adapter import Adapter
from .alerts import DEST, RecordRules
from .bitrix24 import Bitrix24
from .central import Central, Heartbeat
from .cloud import CloudReporter
from .config import Destination
from .hubspot import HubSpot
from .outbox import OutboxDB
from .payload import record_payload
from .postgres import Postgres
from .webhook import Webhook

log = logging.getLogger(__name__)

ADAPTERS = {"webhook": Webhook, "hubspot": HubSpot, "bitrix24": Bitrix24, "postgres": Postgres,
            "central": Central}
POLL_S = 0.5


class Worker(threading.Thread):
    def __init__(self, db_path, dest, key: bytes | None, counters: Counter,
                 adapter: Adapter | None = None, tz=None):
        super().__init__(name=f"forward-{dest.name}", daemon=True)
        self.dest = dest
        self.key = key
        self.tz = tz  # the store's zone: each record's UTC offset goes with it
        self.counters = counters
        self.adapter = adapter or ADAPTERS[dest.type](dest)
        self.db = OutboxDB(db_path)
        self.failures = 0
        self.versions: dict = {}
        self.paused_until = 0.0
        self.last_error: str | None = None
        self.last_ok_ms: int | None = None
        self._halt = threading.Event()
        # A destination refusing every record (a changed CRM field, say)
        # would log an ERROR per record: the first three a minute, then how
        # many more (the dead letters' counter and table have them all).
        self.dead_log = LogLimiter(burst=3, period_s=60.0, logger=log)

    def stop(self) -> None:
        self._halt.set()

    def status(self) -> dict:
        return {"type": self.dest.type, "failures_in_a_row": self.failures,
                "paused_s": max(0, round(self.paused_until - time.monotonic(), 1)),
                "last_error": self.last_error, "last_ok_ms": self.last_ok_ms}

    def run(self) -> None:
        try:
            while not self._halt.is_set():
                wait = self.paused_until - time.monotonic()
                if wait > 0:
                    self._halt.wait(min(wait, POLL_S))
                    continue
                try:
                    items = self.db.due(self.dest.name, self.dest.batch)
                except Exception as e:  # the database is the store's; log, go on
                    log.error("forward %s: cannot read the outbox: %s", self.dest.name, e)
                    self._halt.wait(5)
                    continue
                if not items:
                    self._halt.wait(POLL_S)
                    continue
                self._send(items)
        finally:
            self.adapter.close()
            self.db.close()

    def _send(self, items) -> None:
        name = self.dest.name
        payloads = []
        # The version of each record sent: one changed meanwhile (a late
        # answer re-closing it while this batch is in flight) stays due.
        self.versions = {rec["id"]: rec.get("updated_ms") for rec, _, _ in items}
        for rec, attempts, ref in items:
            payloads.append((record_payload(rec, self.dest.raw_ids, self.key, self.tz),
                             attempts, ref))
        try:
            results = self.adapter.send_batch(payloads)
        except http.Retry as e:
            self._results(payloads[:len(e.done)], e.done)
            return self._retry(payloads[len(e.done)], e)
        except Exception as e:  # a bug in an adapter must not kill the thread
            log.exception("forward %s: unexpected error", name)
            return self._retry(payloads[0], http.Retry(f"{type(e).__name__}: {e}"))
        self._results(payloads, results)

    def _results(self, payloads, results) -> None:
        name = self.dest.name
        for (p, attempts, _), res in zip(payloads, results):
            if isinstance(res, http.Refused):
                self.counters[f"forward_{name}_dead"] += 1
                self.dead_log(name, logging.ERROR,
                              "forward %s: record %s refused, moved to dead letters: %s",
                              name, p["id"], res)
                self.db.failed(name, p["id"], str(res), None)
            else:
                self.db.sent(name, p["id"], res, self.versions.get(p["id"]))
                self.counters[f"forward_{name}_sent"] += 1
        if payloads:
            if self.failures:
                log.info("forward %s: delivering again after %d failure(s)", name, self.failures)
            self.failures = 0
            self.last_error = None
            self.last_ok_ms = now_ms()

    def _retry(self, item, err: http.Retry) -> None:
        name = self.dest.name
        p, attempts, _ = item
        self.failures += 1
        self.last_error = str(err)
        self.counters[f"forward_{name}_retries"] += 1
        delay = http.backoff_s(self.failures, self.dest.backoff_base_s, self.dest.backoff_max_s,
                          err.after_s)
        self.paused_until = time.monotonic() + delay
        if attempts + 1 >= self.dest.max_attempts:
            self.counters[f"forward_{name}_dead"] += 1
            self.dead_log(name, logging.ERROR,
                          "forward %s: record %s failed %d times, moved to dead letters: %s",
                          name, p["id"], attempts + 1, err)
            self.db.failed(name, p["id"], str(err), None, err.ref)
        else:
            self.db.failed(name, p["id"], str(err), now_ms() + int(delay * 1000), err.ref)
        level = logging.WARNING if self.failures in (1, 5) or self.failures % 50 == 0 \
            else logging.DEBUG
        log.log(level, "forward %s: %s; pausing %.1f s (failure %d in a row)",
                name, err, delay, self.failures)


class Retention(threading.Thread):
    """Deletes raw records older than forwarding.retention_days once an
    hour, keeping those some destination still has to take."""

    def __init__(self, db_path, days: int, counters: Counter, every_s: float = 3600.0):
        super().__init__(name="retention", daemon=True)
        self.db_path, self.days, self.counters, self.every_s = db_path, days, counters, every_s
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.purge()
            except Exception as e:  # the database is the store's; log, go on
                log.error("retention: %s", e)
            self._halt.wait(self.every_s)

    def purge(self) -> tuple[int, int]:
        db = OutboxDB(self.db_path)
        try:
            deleted, held = db.purge(now_ms() - self.days * 86_400_000)
        finally:
            db.close()
        self.counters["retention_deleted"] += deleted
        if deleted or held:
            log.info("retention (%d days): %d record(s) deleted, %d kept until every "
                     "destination has them", self.days, deleted, held)
        return deleted, held


class Forwarder:
    """All destinations of one store host (plus the cloud reporter and the
    retention of raw records)."""

    def __init__(self, db_path, forwarding, store: str, tz, counters: Counter | None = None,
                 alerts=None, health=None, phone=None):
        """health: the store's health summary for the central service
        (StoreHost.health_summary); phone: the phone survey's links
        (service/phone.py), which the first central destination serves."""
        self.db_path = db_path
        self.health = health
        self.phone = phone
        self.heartbeats: list[Heartbeat] = []
        self.cfg = forwarding
        self.alerts = alerts
        self.store = store
        self.tz = tz
        self.counters = counters if counters is not None else Counter()
        self.workers: list[Worker] = []
        self.cloud = None
        self.retention = None

    def start(self) -> None:
        db = OutboxDB(self.db_path)
        names = [d.name for d in self.cfg.destinations]
        if self.alerts is not None:
            names.append("alerts")
        try:
            for name in names:
                n = db.backfill(name, _since(db, name))
                if n:
                    log.info("forward %s: %d closed record(s) not yet in its outbox queued",
                             name, n)
        finally:
            db.close()
        self.workers = [Worker(self.db_path, d, self.cfg.pseudonym_key, self.counters,
                               tz=self.tz) for d in self.cfg.destinations]
        if self.alerts is not None:
            # Alerts are for the store's own staff: raw ids (the call-back
            # needs the card), and they keep trying for a long time.
            dest = Destination(name=DEST, type="alerts", raw_ids=True, max_attempts=1000,
                               backoff_max_s=300, batch=1)
            self.workers.append(Worker(self.db_path, dest, None, self.counters,
                                       RecordRules(self.alerts, self.db_path)))
        for w in self.workers:
            w.start()
        central = [d for d in self.cfg.destinations if d.type == "central"]
        self.heartbeats = [Heartbeat(self.db_path, d, self.health,
                                     self.phone if i == 0 else None)
                           for i, d in enumerate(central)]
        for h in self.heartbeats:
            h.start()
        if self.cfg.cloud:
            self.cloud = CloudReporter(self.db_path, self.cfg.cloud, self.store, self.tz,
                                       self.counters)
            self.cloud.start()
        if self.cfg.retention_days:
            self.retention = Retention(self.db_path, self.cfg.retention_days, self.counters)
            self.retention.start()

    def stop(self) -> None:
        for w in self.workers:
            w.stop()
        extra = [t for t in (self.cloud, self.retention, *self.heartbeats) if t]
        for t in extra:
            t.stop()
        for t in self.workers + extra:
            t.join(2)  # a request in flight may hang; its row stays pending

    def status(self) -> dict:
        db = OutboxDB(self.db_path)
        try:
            stats = db.stats()
        finally:
            db.close()
        out = {}
        for w in self.workers:
            out[w.dest.name] = {**{"pending": 0, "sent": 0, "dead": 0,
                                   "oldest_pending_ms": None},
                                **stats.get(w.dest.name, {}), **w.status()}
        if self.cloud:
            out["cloud"] = self.cloud.status()
        return out


def _since(db: OutboxDB, name: str) -> int:
    """When this destination was first configured on this host (kept in
    the records database): records closed before then are not backfilled."""
    key = f"dest_since:{name}"
    rows = db.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
    if rows:
        return int(rows[0][0])
    now = now_ms()
    db.conn.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, str(now)))
    return now
