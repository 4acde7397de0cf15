"""One store's host service, wired: the one place its parts are made and
connected. Everything runs on one asyncio loop (MQTT included, see
mqtt_loop); the record store, the forwarder and file work have threads of
their own.

    broker link --answer--> concentrator --record--> record store -> outboxes
               --status---> fleet, advert manifests
               --probe----> probe client
    POS listeners --receipt--> concentrator;  dashboard <- status()

`serve()` runs it until SIGTERM (`loyalty-button concentrator`); the
simulator runs it on a thread of its own (sim/runner.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections import Counter
from pathlib import Path

import paho.mqtt.client as mqtt

from lbpanel import protocol

from ..adverts.library import AdvertLibrary
from ..adverts.publisher import ManifestPublisher
from . import text_fit
from .panel_config import PanelConfig
from ..forward.alerts import DEST as ALERTS_OUTBOX, SilentPanelWatch
from ..forward.config import Forwarding
from ..forward.forwarder import Forwarder
from .phone import PhoneLinks
from ..loglimit import LogLimiter
from ..ratelimit import Buckets
from ..mqtt_loop import MqttLoop, StreamClient
from ..probe import messages as probe_messages
from ..probe.client import ProbeClient
from .catalogue import Catalogue, CatalogueFile
from .concentrator import COUNTERS, Concentrator
from .config import HostConfig
from .fleet import Fleet, panel_message
from . import sdnotify
from .conn_cap import quiet_loop_errors
from .pos import Listeners, start_listeners
from .records import RecordStore, lock_database

log = logging.getLogger(__name__)


def broker_client(cfg: HostConfig) -> mqtt.Client:
    """The host's own login to the store broker: a persistent session, so
    the broker keeps QoS 1 answers for it while it restarts."""
    client = StreamClient(mqtt.CallbackAPIVersion.VERSION2,
                          client_id=f"lb-concentrator-{cfg.store}", clean_session=False)
    if cfg.broker_user:
        client.username_pw_set(cfg.broker_user, cfg.broker_password)
    # Questions go to many panels at once; do not make them queue in paho.
    client.max_inflight_messages_set(100)
    return client


# What one panel's login may send: a till sends an answer a sale and a
# status every few seconds; a panel back from an outage sends its outbox
# (hundreds) at once, which the burst takes; `tools/bench` drives each of 20
# panels at 35-60 answers a second. Beyond it, the rest wait in the panel's
# outbox and come again. One flooding panel gets at most this share of the
# host (about 1,200 transactions a second here, docs/performance.md).
PANEL_RATE, PANEL_BURST = 100, 500


class StoreHost:
    def __init__(self, cfg: HostConfig, catalogue: Catalogue | None = None):
        self.cfg = cfg
        self.counters: Counter[str] = Counter(dict.fromkeys(COUNTERS, 0))
        self.limit = LogLimiter(logger=log)
        self.panel_flood = Buckets(PANEL_RATE, PANEL_BURST)
        self.started = time.time()
        self.catalogue = CatalogueFile(cfg.catalogue, self.counters, catalogue,
                                       text_fit.font_dirs(cfg.panels_bundles))
        fwd = cfg.forwarding or Forwarding()
        outboxes = [d.name for d in fwd.destinations] + ([ALERTS_OUTBOX] if cfg.alerts else [])
        self.records = RecordStore(cfg.database, destinations=outboxes)
        client = broker_client(cfg)
        client.on_message = self._on_message
        self.mqtt = MqttLoop(client, cfg.broker_host, cfg.broker_port, cfg.broker_keepalive_s)
        self.mqtt.on_up = self._on_broker_up
        self.mqtt.on_down = self._on_broker_down
        self.fleet = Fleet()
        self.probe = None
        if cfg.probe_enabled:
            self.probe = ProbeClient(cfg.store, self.records, self.counters,
                                     cfg.probe_deadline_ms, self.limit, self._publish_qos0)
        # The phone survey's links need the chain's central service: it
        # serves the page and gives the key (docs/phone-survey.md).
        self.phone = None
        if any(d.type == "central" for d in fwd.destinations):
            self.phone = PhoneLinks(Path(cfg.database).parent, self.catalogue, self.records,
                                    self.counters)
        self.concentrator = Concentrator(cfg, self.catalogue, self.records, self.mqtt,
                                         self.fleet, self.counters, self.limit, self.probe,
                                         self.phone)
        self.forwarder = None
        if fwd.destinations or fwd.cloud or fwd.retention_days or cfg.alerts:
            self.forwarder = Forwarder(cfg.database, fwd, cfg.store, cfg.tz, self.counters,
                                       alerts=cfg.alerts, health=self.health_summary,
                                       phone=self.phone)
        self.adverts = None
        if cfg.adverts_folder:
            library = AdvertLibrary(cfg.adverts_folder, cfg.adverts_cache, self.counters)
            self.adverts = ManifestPublisher(cfg.store, library, self.mqtt, cfg.adverts_url,
                                             cfg.adverts_poll_s, self.counters, self.limit)
        self.panel_config = PanelConfig(cfg.store, self.catalogue, self.mqtt, self.counters)
        self.silent = None
        if cfg.alerts:
            self.silent = SilentPanelWatch(
                cfg.alerts, cfg.database, lambda: self.fleet.state,
                lambda: {t: v.panel for t, v in self.catalogue.current.tills.items()},
                cfg.tz, self.counters)
        self._tasks: list[asyncio.Task] = []

    @property
    def ready(self) -> bool:
        return self.concentrator.ready

    # --- lifecycle ----------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.concentrator.start()
        self.mqtt.start()
        self._tasks = [loop.create_task(self.catalogue.watch(self.cfg.catalogue_poll_s)),
                       loop.create_task(self.concentrator.report()),
                       loop.create_task(self.panel_config.run(self.cfg.catalogue_poll_s))]
        if self.forwarder:
            self.forwarder.start()
        for part in (self.adverts, self.silent):
            if part:
                self._tasks.append(loop.create_task(part.run()))
        cat = self.catalogue.current
        log.info("concentrator for store %s: catalogue %s (%s), %d tills, database %s",
                 self.cfg.store, self.cfg.catalogue, cat.digest, len(cat.tills),
                 self.cfg.database)

    async def start_listeners(self) -> Listeners:
        return await start_listeners(self.concentrator, self.status,
                                     self.adverts.library if self.adverts else None)

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        self.concentrator.stop()
        if self.probe:
            self.probe.stop()
        if self.forwarder:
            await asyncio.get_running_loop().run_in_executor(None, self.forwarder.stop)
        await self.mqtt.stop()
        self.records.stop()

    # --- the broker -----------------------------------------------------------

    def _on_broker_up(self) -> None:
        root = f"{protocol.ROOT}/{self.cfg.store}/panel/+/"
        topics = [(root + "answer", 1), (root + "status", 1)]
        if self.probe:
            topics += self.probe.subscriptions()
        self.mqtt.client.subscribe(topics)
        self.counters["broker_connects"] += 1
        if self.adverts:
            self.adverts.on_broker_up()
        self.panel_config.on_broker_up()
        self.concentrator.on_broker_up()

    def _on_broker_down(self, reason: str) -> None:
        self.counters["broker_lost"] += 1

    def _publish_qos0(self, topic: str, payload: bytes) -> bool:
        return self.mqtt.client.publish(topic, payload, qos=0).rc == mqtt.MQTT_ERR_SUCCESS

    def _on_message(self, client, userdata, message) -> None:
        # Nothing a panel or the probe sends may stop the host. An exception
        # that escapes into paho leaves its read state half-way through a
        # packet, and every later read fails: no answer would be taken
        # again. So whatever goes wrong with one message is counted,
        # logged (rate-limited), kept in `rejects`, and the link goes on.
        try:
            self._dispatch(message)
        except Exception as e:
            self.counters["rx_error"] += 1
            self.limit("rx_error", logging.ERROR, "message on %s could not be handled "
                       "(%s: %s); the link goes on", message.topic, type(e).__name__, e)
            try:
                self.records.reject("mqtt:" + message.topic, "rx_error",
                                    f"{type(e).__name__}: {e}"[:500], message.payload)
            except Exception:
                log.exception("the refused message could not be kept")

    def _dispatch(self, message) -> None:
        where = protocol.parse_panel_topic(message.topic)
        if where is not None and not self.panel_flood.take(where[1]):
            # One panel's login sending far more than a till can: dropped
            # before any work (no parse, no database write, no ack), so the
            # other tills are served as usual. A real panel's answer that
            # falls here stays in its outbox and is sent again.
            self.counters["rx_flood_dropped"] += 1
            self.limit("rx_flood", logging.WARNING, "panel %s sends more than %d messages a "
                       "second: the rest are dropped", where[1], PANEL_RATE)
            return
        if self.probe:
            leaf = probe_messages.parse_topic(self.cfg.store, message.topic)
            if leaf:
                return self.probe.on_message(leaf, message.payload)
        try:
            got = panel_message(self.cfg.store, message.topic, message.payload)
        except protocol.ProtocolError as e:
            self.counters["rx_" + e.code] += 1
            self.limit("rx_" + e.code, logging.WARNING, "refused message on %s: %s",
                       message.topic, e.message)
            committed = self.records.reject("mqtt:" + message.topic, "rx_" + e.code,
                                            e.message, message.payload, wait=True)
            self._ack_refused(message.topic, message.payload, committed)
            return
        if got is None:
            return  # a cleared retained message
        panel, leaf, msg = got
        if leaf == "answer":
            self.concentrator.on_answer(msg)
        elif leaf == "status":
            self.fleet.on_status(panel, msg)
            if self.adverts:
                self.adverts.on_status(panel, msg["state"], msg.get("board"))

    def _ack_refused(self, topic: str, payload: bytes, committed) -> None:
        """An answer this host cannot take (a panel on another firmware,
        say) is kept in `rejects`; once it is, the panel is told so, or it
        would resend it for ever and its outbox would fill."""
        where = protocol.parse_panel_topic(topic)
        if where is None or where[0] != self.cfg.store or where[2] != "answer" \
                or len(payload) > protocol.MAX_PAYLOAD:
            return
        try:
            aid = protocol.loads(payload).get("id")
        except (protocol.ProtocolError, AttributeError):
            return
        if protocol.valid_id(aid):
            self.concentrator.ack_after(committed, where[1], aid)

    # --- what the dashboard and GET /api/v1/status show -----------------------

    def health_summary(self) -> dict:
        """What the chain's central service shows of this store (from the
        forwarder's thread: reads only)."""
        tills = {t: v.panel for t, v in self.catalogue.current.tills.items()}
        states = dict(self.fleet.state)
        return {"tills": len(tills), "broker": "up" if self.mqtt.up.is_set() else "down",
                "panels_offline": sorted(t for t, p in tills.items()
                                         if states.get(p) != "online")[:100]}

    def status(self) -> dict:
        counters = dict(self.counters)
        counters.update(self.records.counters)
        cat = self.catalogue.current
        return {
            "store": self.cfg.store, **self.concentrator.status(),
            "uptime_s": int(time.time() - self.started),
            "broker": "up" if self.mqtt.up.is_set() else "down",
            "catalogue": self.catalogue.status(),
            **self.fleet.status(),
            "tills": {t: v.panel for t, v in sorted(cat.tills.items())},
            "adverts": self.adverts.status() if self.adverts else "not used",
            "probe": ({"state": self.probe.state or "unknown", "waiting": len(self.probe.waiting)}
                      if self.probe else "not used"),
            "forwarding": self.forwarder.status() if self.forwarder else {},
            "counters": dict(sorted(counters.items())),
        }


async def serve(cfg: HostConfig, ready_file=None) -> None:
    """Run the store host with its POS listeners until SIGTERM/SIGINT;
    SIGHUP reads the catalogue again."""
    # What the host writes (records, caches, logs) is its own and its
    # group's, never every user's: records carry loyalty ids.
    os.umask(0o027)
    host = StoreHost(cfg)
    # Held while the host runs: `loyalty-button restore` will not swap the
    # database under it.
    held = lock_database(cfg.database)
    quiet_loop_errors(asyncio.get_running_loop())
    await host.start()
    listeners = await host.start_listeners()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: host.catalogue.reload(force=True))
    # Listening: systemd may go on (receipts taken before the broker is up
    # wait in the backlog). The watchdog pings from this loop until the end.
    watchdog = sdnotify.ready(f"store {cfg.store}: listening")
    if ready_file:
        while not host.ready:
            await asyncio.sleep(0.05)
        with open(ready_file, "w") as f:
            f.write(str(os.getpid()))
    await stop.wait()
    watchdog.cancel()
    log.info("stopping")
    await listeners.stop()
    await host.stop()
    if held:
        held.close()
