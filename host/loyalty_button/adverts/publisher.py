"""Each panel's advert manifest: when a panel's status names its board, it
gets a retained manifest of the pictures made for that screen, kept in step
with the playlist and the picture files (docs/adverts.md). Files are read
and converted in a worker thread: a big picture must not stall receipts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time

import paho.mqtt.client as mqtt

from lbpanel import boards, protocol

from .library import AdvertLibrary

log = logging.getLogger(__name__)


class ManifestPublisher:
    def __init__(self, store: str, library: AdvertLibrary, mqtt_loop, url: str, poll_s: float,
                 counters, limit):
        self.store, self.library, self.mqtt = store, library, mqtt_loop
        self.url, self.poll_s = url, poll_s
        self.counters, self.limit = counters, limit
        self.boards: dict[str, str] = {}   # panel -> its board, from its status
        self._sent: dict[str, str] = {}    # panel -> digest of its last manifest
        self._wake = asyncio.Event()

    def on_status(self, panel: str, state: str, board) -> None:
        """A panel's status. A headless panel ("none") gets no manifest."""
        if state != "online" or board in (None, "none") or board == self.boards.get(panel):
            return
        if board not in boards.BOARDS:
            self.counters["adverts_unknown_board"] += 1
            self.limit("adverts_unknown_board", logging.WARNING,
                       "panel %s says it is a %r board; adverts are made for %s", panel, board,
                       ", ".join(boards.BOARDS))
            return
        self.boards[panel] = board
        self._wake.set()

    def on_broker_up(self) -> None:
        # A broker that lost its retained messages (no persistence) would
        # leave the panels without a playlist: publish the manifests again.
        self._sent.clear()
        self._wake.set()

    async def run(self) -> None:
        """Pick up playlist and picture changes; publish what changed."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                if await loop.run_in_executor(None, self.library.refresh):
                    self._sent.clear()
                await self._publish(loop)
            except Exception:
                self.counters["adverts_error"] += 1
                log.exception("adverts: the manifests could not be brought up to date")
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()

    async def _publish(self, loop) -> None:
        sent = False
        for panel, board in list(self.boards.items()):
            items = await loop.run_in_executor(None, self.library.items, board, panel)
            body = {"url": f"{self.url}adverts/{board}/", "items": items}
            digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            if self._sent.get(panel) == digest or not self.mqtt.up.is_set():
                continue
            msg = protocol.envelope("adverts", protocol.new_id(), int(time.time()),
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
            self._sent[panel] = digest
            self.counters["adverts_manifests_sent"] += 1
            sent = True
            log.info("adverts: panel %s (%s) gets %d: %s", panel, board, len(items),
                     ", ".join(i["id"] for i in items) or "none")
        if sent:  # files the old manifests named may go now
            await loop.run_in_executor(None, self.library.prune)

    def status(self) -> dict:
        return dict(self.library.status(), panels=dict(sorted(self.boards.items())))
