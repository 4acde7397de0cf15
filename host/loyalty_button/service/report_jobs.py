"""Reports for the dashboard, off the concentrator's event loop.

The dashboard lives in the concentrator's process, whose event loop also
takes receipts and asks questions. So a report runs on its own read-only
connection, in its own thread (one at a time: a manager's browser polling
every 5 s must not start a queue of them), and a request waits for it only
so long: a report that takes longer goes on in the background, the page is
told "computing" and asks again, and gets the result once it is there. A
report that runs past `HARD_LIMIT_S` is interrupted by SQLite itself."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .records import connect

log = logging.getLogger(__name__)

ANSWER_WITHIN_S = 3.0   # then the page is told "computing"
FRESH_S = 2.0           # a result this recent is served again (the page polls every 5 s)
HARD_LIMIT_S = 120.0    # SQLite interrupts a query running longer
_CHECK_EVERY = 10_000   # SQLite virtual machine steps between time checks


class Computing(Exception):
    """The report is still running; ask again in a moment."""


class ReportJobs:
    def __init__(self, database: Path, answer_within_s: float = ANSWER_WITHIN_S,
                 hard_limit_s: float = HARD_LIMIT_S, fresh_s: float = FRESH_S):
        self.database = Path(database)
        self.fresh_s = fresh_s
        self.answer_within_s = answer_within_s
        self.hard_limit_s = hard_limit_s
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reports")
        self.running: dict[str, asyncio.Future] = {}
        self.done: dict[str, tuple[float, object]] = {}
        self.counters = {"report_runs": 0, "report_computing": 0, "report_interrupted": 0}

    def _run(self, fn):
        conn = connect(self.database, readonly=True)
        deadline = time.monotonic() + self.hard_limit_s
        conn.set_progress_handler(lambda: time.monotonic() > deadline, _CHECK_EVERY)
        try:
            return fn(conn)
        finally:
            conn.close()

    async def get(self, key: str, fn):
        """fn(conn)'s result, computed once for everyone asking for `key`;
        raises Computing when it takes longer than answer_within_s."""
        fresh = self.done.get(key)
        if fresh and time.monotonic() - fresh[0] < self.fresh_s:
            return fresh[1]
        fut = self.running.get(key)
        if fut is None:
            self.counters["report_runs"] += 1
            fut = asyncio.get_running_loop().run_in_executor(self.pool, self._run, fn)
            self.running[key] = fut
            fut.add_done_callback(lambda f: self._finished(key, f))
        try:
            return await asyncio.wait_for(asyncio.shield(fut), self.answer_within_s)
        except asyncio.TimeoutError:
            self.counters["report_computing"] += 1
            raise Computing(key) from None

    def _finished(self, key: str, fut: asyncio.Future) -> None:
        self.running.pop(key, None)
        if fut.cancelled():
            return
        e = fut.exception()
        if e is None:
            self.done[key] = (time.monotonic(), fut.result())
        elif isinstance(e, sqlite3.OperationalError) and "interrupted" in str(e):
            self.counters["report_interrupted"] += 1
            log.error("dashboard: report %s ran past %.0f s and was stopped", key,
                      self.hard_limit_s)
        else:
            log.error("dashboard: report %s failed: %s", key, e)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
