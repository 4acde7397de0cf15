"""The cloud reporter: every `every_s`, pushes aggregates (never a loyalty
id, never a receipt) for each day since its last confirmed push, as one
JSON document per push with a bearer token. Each day's figures are
recomputed from the store database every time, so a push that failed
loses nothing and the receiver simply replaces (store, day)."""

from __future__ import annotations

import json
import logging
import threading
from datetime import date, datetime, timedelta

from ..service import reports
from ..service.records import connect, now_ms
from . import http

log = logging.getLogger(__name__)
MAX_DAYS = 31  # after a long outage, at most a month per push


def aggregates(conn, store: str, tz, first: date, last: date) -> list[dict]:
    """One document per day with records, first..last in the store's zone,
    from the reports' running totals (never the records themselves)."""
    out = []
    day = first
    while day <= last:
        start = datetime.combine(day, datetime.min.time(), tz)
        end = datetime.combine(day + timedelta(days=1), datetime.min.time(), tz)
        period = (int(start.timestamp()), int(end.timestamp()))
        s = reports.summary(conn, period)
        receipts = reports.rollup.total(conn, period).n
        if receipts:
            out.append({"store": store, "day": day.isoformat(), "receipts": receipts,
                        "nps": s["nps"], "csat": s["csat"], "response": s["response"],
                        "reasons": s["reasons"],
                        "by_till": reports.breakdown(conn, "till", tz, period)})
        day += timedelta(days=1)
    return out


class CloudReporter(threading.Thread):
    def __init__(self, db_path, cloud, store: str, tz, counters):
        super().__init__(name="forward-cloud", daemon=True)
        self.db_path = db_path
        self.cfg = cloud
        self.store = store
        self.tz = tz
        self.counters = counters
        self.failures = 0
        self.last_ok_ms = None
        self.last_error = None
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def status(self) -> dict:
        return {"type": "cloud", "failures_in_a_row": self.failures,
                "last_error": self.last_error, "last_ok_ms": self.last_ok_ms}

    def run(self) -> None:
        conn = connect(self.db_path)
        try:
            wait = 0.0
            while not self._halt.wait(wait):
                try:
                    self.push(conn)
                    self.failures = 0
                    self.last_error = None
                    self.last_ok_ms = now_ms()
                    self.counters["cloud_pushes"] += 1
                    wait = self.cfg.every_s
                except http.Retry as e:
                    self.failures += 1
                    self.last_error = str(e)
                    self.counters["cloud_failures"] += 1
                    wait = min(self.cfg.every_s, http.backoff_s(self.failures, 2.0, 3600, e.after_s))
                    log.warning("cloud reporter: %s; next try in %.0f s", e, wait)
                except http.Refused as e:
                    self.failures += 1
                    self.last_error = str(e)
                    self.counters["cloud_failures"] += 1
                    log.error("cloud reporter: refused: %s", e)
                    wait = self.cfg.every_s
        finally:
            conn.close()

    def push(self, conn) -> None:
        rows = conn.execute("SELECT value FROM meta WHERE key = 'cloud_done_day'").fetchall()
        today = datetime.now(self.tz).date()
        first = date.fromisoformat(rows[0][0]) if rows else today
        first = max(first, today - timedelta(days=MAX_DAYS - 1))
        body = json.dumps({"store": self.store, "generated_ms": now_ms(),
                           "from": first.isoformat(), "to": today.isoformat(),
                           "days": aggregates(conn, self.store, self.tz, first, today)},
                          ensure_ascii=False).encode()
        headers = {"Authorization": f"Bearer {self.cfg.token}",
                   "Content-Type": "application/json"}
        http.check(http.request("POST", self.cfg.url, body, headers, self.cfg.timeout_s),
                   "cloud reporter")
        # Today stays open (more records will come): next push starts there.
        conn.execute("INSERT INTO meta VALUES ('cloud_done_day', ?) ON CONFLICT(key) DO "
                     "UPDATE SET value = excluded.value", (today.isoformat(),))
