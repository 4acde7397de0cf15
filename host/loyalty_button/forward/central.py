"""The chain's central service (docs/central.md): records go in gzip'd JSON
batches to its ingest over HTTPS with this store's token. The service
upserts by record id, so a batch re-sent after a lost answer changes
nothing; it answers 429 or 503 with Retry-After when it is busy, which
the worker's backoff honours (http.backoff_s)."""

from __future__ import annotations

import gzip
import json
import logging
import ssl
import threading

from . import http
from .adapter import Item, Result
from .outbox import OutboxDB

log = logging.getLogger(__name__)
INGEST_PATH = "/api/v1/records"
STATUS_PATH = "/api/v1/status"


def _context(dest):
    if not dest.url.startswith("https://"):
        return None
    return ssl.create_default_context(cafile=str(dest.ca_file) if dest.ca_file else None)


class Central:
    def __init__(self, dest):
        self.dest = dest
        self.url = dest.url.rstrip("/") + INGEST_PATH
        self.context = _context(dest)

    def _post(self, payloads: list[dict]) -> None:
        body = gzip.compress(json.dumps({"records": payloads}, ensure_ascii=False,
                                        separators=(",", ":")).encode(), 6)
        headers = {"Authorization": f"Bearer {self.dest.token}",
                   "Content-Type": "application/json", "Content-Encoding": "gzip",
                   "User-Agent": "loyalty-button"}
        http.check(http.request("POST", self.url, body, headers, self.dest.timeout_s,
                                self.context), "central")

    def send_batch(self, items: list[Item]) -> list[Result]:
        payloads = [p for p, _, _ in items]
        try:
            self._post(payloads)
            return [None] * len(items)
        except http.Refused as e:
            if len(items) == 1:
                return [e]
        # The service refuses a batch whole for one bad record: send them
        # one by one, so only that one goes to the dead letters.
        results: list[Result] = []
        for p in payloads:
            try:
                self._post([p])
                results.append(None)
            except http.Refused as e:
                results.append(e)
            except http.Retry as e:
                e.done = results
                raise
        return results

    def close(self) -> None:
        pass


class Heartbeat(threading.Thread):
    """Every status_every_s, the store's health as the chain dashboard shows
    it: its tills and which panels are not online (health(), from the
    host), and this destination's outbox (how many records wait, since
    when, how many are dead letters). A store that sells nothing is still
    heard of; one whose outbox backs up is seen before anyone asks."""

    def __init__(self, db_path, dest, health=None, phone=None):
        super().__init__(name=f"forward-{dest.name}-status", daemon=True)
        self.db_path, self.dest, self.health, self.phone = db_path, dest, health, phone
        self.url = dest.url.rstrip("/") + STATUS_PATH
        self.context = _context(dest)
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()

    def beat(self) -> None:
        db = OutboxDB(self.db_path)
        try:
            outbox = db.stats().get(self.dest.name, {})
        finally:
            db.close()
        doc = {"health": self.health() if self.health else {},
               "outbox": {k: outbox.get(k) for k in ("pending", "dead", "oldest_pending_ms")}}
        if self.phone is not None:
            # What the phone survey asks, and from where its answers are
            # wanted; the reply brings them (service/phone.py).
            doc["phone"] = self.phone.status_doc()
        headers = {"Authorization": f"Bearer {self.dest.token}",
                   "Content-Type": "application/json", "User-Agent": "loyalty-button"}
        resp = http.check(http.request("POST", self.url, json.dumps(doc).encode(), headers,
                                       self.dest.timeout_s, self.context), "central status")
        if self.phone is not None:
            try:
                reply = resp.json()
            except http.Retry:
                reply = None
            self.phone.on_reply(reply.get("phone") if isinstance(reply, dict) else None)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.beat()
            except (http.Retry, http.Refused) as e:  # the records' worker says it louder
                log.debug("%s", e)
            except Exception:  # a bug here must not end the thread
                log.exception("central status")
            self._halt.wait(self.dest.status_every_s)
