"""The chain's central service (docs/central.md): records go in gzip'd JSON
batches to its ingest over HTTPS with this store's token. The service
upserts by record id, so a batch re-sent after a lost answer changes
nothing; it answers 429 or 503 with Retry-After when it is busy, which
the worker's backoff honours (http.backoff_s)."""

from __future__ import annotations

import gzip
import json
import ssl

from . import http
from .adapter import Item, Result

INGEST_PATH = "/api/v1/records"


class Central:
    def __init__(self, dest):
        self.dest = dest
        self.url = dest.url.rstrip("/") + INGEST_PATH
        self.context = None
        if dest.url.startswith("https://"):
            self.context = ssl.create_default_context(
                cafile=str(dest.ca_file) if dest.ca_file else None)

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
