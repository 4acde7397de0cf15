"""The store's side of the shopper's phone survey (docs/phone-survey.md):
it signs a link per receipt with the key the chain's central service
gave it, tells the central service what the survey asks (with the
store's status, forward/central.py), and merges the answers and
deletions the central service sends back into the records, which then go
to every destination again.

The grant (store number, key, public address) comes in the central
service's reply to the store's status and is kept in a file beside the
records (mode 600), so links are made while the central service is away.
Until the first reply there is no key: the receipt is asked as usual
without a link, and `phone_link_unavailable` counts it."""

from __future__ import annotations

import base64
import json
import logging
import os
from pathlib import Path

from .. import phone_link
from .records import PHONE_CURSOR

log = logging.getLogger(__name__)
GRANT_FILE = "phone-link.json"


class PhoneLinks:
    def __init__(self, folder: Path, catalogue_file, records, counters):
        self.path = Path(folder) / GRANT_FILE
        self.catalogue_file = catalogue_file
        self.records = records
        self.counters = counters
        self.grant = self._load()
        self.cursor = int(records.meta(PHONE_CURSOR) or 0)

    def _load(self) -> dict | None:
        try:
            doc = json.loads(self.path.read_text())
            return self._grant(doc)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("%s cannot be read (%s); waiting for the central service's key",
                        self.path, e)
            return None

    @staticmethod
    def _grant(doc: dict) -> dict:
        key = base64.b64decode(doc["key"], validate=True)
        number, generation, base = int(doc["number"]), int(doc.get("generation", 0)), doc["base"]
        if len(key) < 16 or not isinstance(base, str) or \
                not base.upper().startswith(("HTTPS://", "HTTP://")):
            raise ValueError("not a grant")
        return {"number": number, "generation": generation, "base": base, "key": key}

    # --- links (the event loop) -----------------------------------------------

    def link(self, record_id: str, sale_ts: float) -> str | None:
        cat = self.catalogue_file.current
        if cat.phone is None:
            return None
        grant = self.grant
        if grant is None:
            self.counters["phone_link_unavailable"] += 1
            return None
        token = phone_link.make(grant["key"], grant["number"], record_id,
                                sale_ts + cat.phone["expiry_h"] * 3600, grant["generation"])
        self.counters["phone_links"] += 1
        return phone_link.url(grant["base"], token)

    # --- the central service (the forwarder's status thread) --------------------

    def status_doc(self) -> dict:
        return {"survey": self.catalogue_file.current.phone_survey(), "since": self.cursor}

    def on_reply(self, doc) -> None:
        """The central service's answer to the store's status: the grant,
        and the phone answers (and deletions) since the cursor."""
        if not isinstance(doc, dict):
            return
        if isinstance(doc.get("grant"), dict):
            self._take_grant(doc["grant"])
        changes, cursor = [], self.cursor
        for item in doc.get("answers") or ():
            try:
                seq, ref, answer = int(item["seq"]), str(item["ref"]), item.get("answer")
            except (KeyError, TypeError, ValueError):
                self.counters["phone_bad_item"] += 1
                log.warning("the central service sent a phone answer without seq or ref: "
                            "%.200r", item)
                continue
            if answer is not None and not isinstance(answer, dict):
                self.counters["phone_bad_item"] += 1
                continue
            changes.append((ref, answer))
            cursor = max(cursor, seq)
            self.counters["phone_answers" if answer is not None else "phone_deleted"] += 1
            if answer is None:
                log.info("phone answer to receipt ref %s deleted at the central service; "
                         "removed from its record here", ref)
        if cursor != self.cursor:
            self.records.set_phones(changes, cursor)
            self.cursor = cursor

    def _take_grant(self, doc: dict) -> None:
        try:
            grant = self._grant(doc)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("the central service's phone-link grant is not usable: %s", e)
            return
        if grant == self.grant:
            return
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump({**grant, "key": base64.b64encode(grant["key"]).decode()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        log.info("phone survey links: store number %d at %s%s", grant["number"], grant["base"],
                 " (a new key)" if self.grant else "")
        self.grant = grant
