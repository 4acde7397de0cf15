# The panel application: wires the question flow, the outbox, the MQTT link
# and telemetry on one asyncio loop. Hardware (screen, network, reset,
# watchdog) is passed in; nothing here knows which board it runs on.
import asyncio
import gc
import random

from lbpanel import VERSION, clock, config, log, protocol, telemetry
from lbpanel.flow import ADVERTS, QuestionFlow
from lbpanel.mqtt import Client, MQTTError
from lbpanel.outbox import Outbox

_TAG = "panel"
# Subscriptions: what the host tells a panel. All QoS 1.
_INBOUND = ("question", "ack", "config", "cmd", "adverts")
_FLUSH_RETRY_S = 5
# Answers sent and not yet confirmed by the host: a few at a time (a panel
# makes one answer per shopper), resent when no ack came within this long.
_WINDOW = 4
_ACK_WAIT_MS = 10000
# Adverts that failed to download for a network reason are tried again.
_ADVERT_RETRY_S = 60


class Identity:
    def __init__(self, store, panel):
        self.store = store
        self.panel = panel

    new_id = staticmethod(protocol.new_id)

    def unix_time(self):
        return clock.unix_time()


class PanelApp:
    def __init__(self, settings, ui, net=None, reset=None, wdt=None, counters=None,
                 warnings=(), boot=None):
        self.settings = settings
        # Update slots (docs/ota.md) when main.py booted us through lbboot;
        # None in the simulators that start the app directly. Its code
        # loads only then: a panel without slots keeps the heap.
        self.updates = None
        if boot is not None:
            from lbpanel.updates import Updates
            self.updates = Updates(self, boot)
        self.ui = ui
        self.net = net
        self.reset = reset
        self.wdt = wdt
        self.counters = counters or telemetry.Counters()
        for text in warnings:
            self.counters.add("config_warning")
            log.warning(_TAG, text)
        self.identity = Identity(settings["store"], settings["panel_id"])
        self.outbox = Outbox(settings["outbox.dir"], settings["outbox.max_entries"], self.counters)
        self.flow = QuestionFlow(ui, self._on_answer, settings, self.identity, self.counters)
        # The screens' own words in panel.json's language, until the host's
        # config says otherwise.
        if getattr(ui, "lang", None) is not None:
            ui.lang = settings["lang"]
        # The LVGL UI knows its board; panel.json may also name it.
        self.board = getattr(ui, "board", None)
        if settings["board"] == "none" and getattr(ui, "board_name", None):
            settings["board"] = ui.board_name
        elif settings["board"] != "none" and self.board is None:
            from lbpanel import boards
            try:
                self.board = boards.get(settings["board"])
            except ValueError as e:
                # A typo in panel.json must not stop a panel that can still
                # ask questions: warn, and go on as a board-less panel.
                self.counters.add("config_warning")
                log.warning(_TAG, "board: %s" % e)
        # The advert code is loaded with the first playlist: a panel that
        # never gets one keeps ~20 KB of heap (docs/memory.md).
        self.adverts = None
        self.playlist = None
        self.flow.advert_on_screen = self._advert_on_screen
        self._fetch_now = asyncio.Event()
        self.started = clock.ticks_ms()
        self.heap_min_free = None
        self.running = True
        self._outbox_ready = asyncio.Event()
        self._in_flight = {}  # outbox name -> ticks_ms it was last sent
        self._heartbeat_now = asyncio.Event()
        store, panel = self.identity.store, self.identity.panel
        self.topics = {}
        for leaf in protocol.PANEL_LEAVES:
            self.topics[leaf] = protocol.panel_topic(store, panel, leaf)
        self.client = Client(
            client_id="lb-%s-%s" % (store, panel),
            host=settings["broker.host"], port=settings["broker.port"],
            user=settings["broker.user"], password=settings["broker.password"],
            keepalive=settings["broker.keepalive_s"],
            will=(self.topics["status"], protocol.encode(telemetry.offline_message(self.identity)), 1, True),
            on_message=self._on_message, on_oversized=self._on_oversized,
            max_packet=protocol.MAX_PAYLOAD + 256, ca_file=settings["broker.ca_file"])
        self._tasks = []
        if hasattr(ui, "bind"):
            ui.bind(self)

    # --- lifecycle ----------------------------------------------------------

    async def run(self):
        self.ui.show_adverts()
        self._tasks = [asyncio.create_task(self._ticker()),
                       asyncio.create_task(self._flusher()),
                       asyncio.create_task(self._flush_timer()),
                       asyncio.create_task(self._heartbeat()),
                       asyncio.create_task(self._advert_fetcher())]
        await self._link()

    async def stop(self):
        """Leave cleanly: say offline ourselves, then disconnect."""
        self.running = False
        if self.client.up:
            try:
                msg = telemetry.offline_message(self.identity)
                await self.client.publish(self.topics["status"], protocol.encode(msg), 1, True, 3)
            except MQTTError:
                pass
            await self.client.disconnect()
        for task in self._tasks:
            task.cancel()

    async def _link(self):
        """Keep the broker link up: connect, subscribe, announce; on loss,
        back off (doubling, with jitter) and try again, forever."""
        delay = 1
        while self.running:
            try:
                # The will's id and time are fresh for every connection.
                self.client.will = (self.topics["status"],
                                    protocol.encode(telemetry.offline_message(self.identity)), 1, True)
                await self.client.connect()
                await self.client.subscribe([(self.topics[leaf], 1) for leaf in _INBOUND])
                self.counters.add("connects")
                log.info(_TAG, "connected to %s:%d" % (self.client.host, self.client.port))
                delay = 1
                await self.publish_status()
                if self.flow.state == ADVERTS:
                    self.ui.show_adverts()
                self._outbox_ready.set()
                await self.client.wait_down()
                # Whatever was in flight may never have reached the host:
                # it all goes again on the next connection.
                self._in_flight.clear()
                if not self.running:
                    return
                self.counters.add("link_lost")
            except (MQTTError, OSError) as e:
                self.counters.add("connect_failed")
                log.warning(_TAG, "broker %s:%d: %s; retrying in about %ds"
                            % (self.client.host, self.client.port, e, delay))
                if self.flow.state == ADVERTS:
                    # Mid-question the shopper can still answer: the outbox
                    # keeps it. Only an idle screen says the link is down.
                    self.ui.show_problem("broker_unreachable", str(e))
                await self.client.disconnect()
            except MemoryError:
                # A fragmented heap must not end the panel: drop the link,
                # let the collector run, and come back as after any loss.
                self.counters.add("memory_errors")
                log.error(_TAG, "out of memory on the broker link; reconnecting")
                await self.client.disconnect()
                gc.collect()
            if not self.running:
                return
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self.settings["broker.retry_max_s"])

    # --- inbound ------------------------------------------------------------

    def _on_oversized(self, topic, size):
        self.counters.add("rx_oversized")
        log.warning(_TAG, "dropped a %d-byte message on %s (limit %d)"
                    % (size, topic, protocol.MAX_PAYLOAD))

    def _on_message(self, topic, payload, retained):
        leaf = topic.rsplit("/", 1)[-1]
        if leaf not in _INBOUND or topic != self.topics[leaf]:
            self.counters.add("rx_unexpected_topic")
            log.warning(_TAG, "message on unexpected topic %s ignored" % topic)
            return
        if not payload and leaf in ("config", "adverts"):
            # The host cleared a retained message. Subscribers already
            # connected get it with the retain flag off (MQTT 3.1.1), so the
            # empty payload, not the flag, is what says so.
            return
        try:
            msg = protocol.decode(payload, leaf)
            protocol.check_addressed(msg, self.identity.store, self.identity.panel)
        except protocol.ProtocolError as e:
            self.counters.add("rx_" + e.code)
            log.warning(_TAG, "rejected %s message: %s" % (leaf, e.message))
            return
        clock.learn_from_host(msg["ts"])
        if leaf == "question":
            self.flow.on_question(msg, clock.ticks_ms())
        elif leaf == "ack":
            self._on_ack(msg["answer"])
        elif leaf == "config":
            applied, rejected = config.apply_host_settings(self.settings, msg["settings"])
            for text in rejected:
                self.counters.add("config_rejected")
                log.warning(_TAG, "host config: %s" % text)
            if applied:
                log.info(_TAG, "host config applied: %s" % ", ".join(applied))
            if "lang" in applied and getattr(self.ui, "lang", None) != self.settings["lang"]:
                # The screens' own words follow (a question brings its own).
                self.ui.lang = self.settings["lang"]
                if self.flow.state == ADVERTS:
                    self.ui.show_adverts()
        elif leaf == "cmd":
            self._on_command(msg)
        elif leaf == "adverts":
            self.counters.add("adverts_manifest")
            self._advert_cache().set_manifest(msg)
            self._fetch_now.set()

    def _on_command(self, msg):
        cmd = msg["cmd"]
        log.info(_TAG, "command %s" % cmd)
        if cmd == "ping":
            self._heartbeat_now.set()
        elif cmd == "reboot" and self.reset is not None:
            asyncio.create_task(self.restart())
        elif cmd in ("update", "health"):
            if self.updates is not None:
                self.updates.command(msg)
            elif cmd == "health":
                self._heartbeat_now.set()
            else:
                self.counters.add("update_refused")
                log.warning(_TAG, "update refused: this panel was not started by main.py, "
                            "it has no update slots")

    def status_soon(self):
        self._heartbeat_now.set()

    async def restart(self):
        await self.stop()
        self.reset()

    # --- touches (from the UI or the console) -------------------------------

    def touch(self, value):
        return self.flow.on_touch(value, clock.ticks_ms())

    def _advert_cache(self):
        if self.adverts is None:
            from lbpanel.adverts import AdvertCache, Playlist
            board = self.board
            screen_w = getattr(self.ui, "w", None) or (board["width"] if board else 4096)
            screen_h = getattr(self.ui, "h", None) or (board["height"] if board else 4096)
            budget_kb = self.settings["adverts.budget_kb"] or (
                board["advert_budget_kb"] if board else 1024)
            self.adverts = AdvertCache(self.settings["adverts.dir"], budget_kb * 1024,
                                       screen_w, screen_h, self.counters)
            self.playlist = Playlist(self.adverts)
        return self.adverts

    def _advert_on_screen(self):
        return self.playlist.current_id() if self.playlist is not None else None

    def stray_press(self):
        self.flow.on_stray_press(clock.ticks_ms())

    def advert_failed(self, advert_id, reason):
        """The UI could not put an advert on the glass: skip it."""
        if self.adverts is not None:
            self.adverts.bad[advert_id] = reason
            self._show_next_advert(force=True)

    def reasons(self, reason_ids):
        return self.flow.on_reasons(reason_ids, clock.ticks_ms())

    def decline(self):
        return self.flow.on_decline(clock.ticks_ms())

    # --- outbound -----------------------------------------------------------

    def _on_answer(self, answer):
        if self.outbox.add(answer):
            # After the write, so the line means "on flash" (a fault test
            # reads it as the list of answers that must reach the host).
            log.info(_TAG, "answer %s for %s stored" % (answer["id"], answer["session"]))
            self._outbox_ready.set()

    def _on_ack(self, answer_id):
        name = self.outbox.acknowledged(answer_id)
        if name is None:
            # Acked twice (a resend crossed the first ack): nothing to do.
            self.counters.add("ack_unknown")
            return
        self._in_flight.pop(name, None)
        self.counters.add("answers_acked")
        self._outbox_ready.set()

    async def _flush_timer(self):
        # The periodic wake-up resends an answer the host has not confirmed
        # in time while the link itself stayed up. A task of its own rather
        # than a wait_for() per answer: that made a task for every answer.
        while True:
            await asyncio.sleep(_FLUSH_RETRY_S)
            self._outbox_ready.set()

    async def _flusher(self):
        while True:
            # Woken by a new answer, a new connection, or the flush timer.
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            in_flight = self._in_flight
            now = clock.ticks_ms()
            for name in [n for n, at in in_flight.items()
                         if clock.ticks_diff(now, at) > _ACK_WAIT_MS]:
                del in_flight[name]
                self.counters.add("answers_resent")
            while self.client.up and len(in_flight) < _WINDOW:
                entry = self.outbox.oldest(in_flight)
                if entry is None:
                    break
                name, data = entry
                # In flight before it is sent: the host's ack can overtake
                # the broker's PUBACK (it did under the LVGL loop), and an
                # ack for an answer not yet in flight would leave it there,
                # holding a place in the window until it timed out.
                in_flight[name] = clock.ticks_ms()
                try:
                    await self.client.publish(self.topics["answer"], data, 1)
                except MQTTError as e:
                    in_flight.pop(name, None)
                    log.warning(_TAG, "answer %s kept for resend: %s" % (name, e))
                    break
                self.counters.add("answers_sent")

    def _show_next_advert(self, force=False):
        if self.playlist is None:
            return
        changed, item = self.playlist.tick(clock.ticks_ms(), force)
        if changed and self.flow.state == ADVERTS:
            if hasattr(self.ui, "show_advert"):
                self.ui.show_advert(item)

    async def _advert_fetcher(self):
        while True:
            try:
                await asyncio.wait_for(self._fetch_now.wait(), _ADVERT_RETRY_S)
            except asyncio.TimeoutError:
                pass
            self._fetch_now.clear()
            if self.adverts is None or self.adverts.url is None:
                continue
            try:
                await self.adverts.fetch_missing()
            except Exception as e:
                self.counters.add("advert_fetch_failed")
                log.exception(_TAG, "advert fetch failed", e)
            self._show_next_advert(force=self.playlist.current is None)

    async def _ticker(self):
        while True:
            try:
                if self.flow.state == ADVERTS:
                    self._show_next_advert()
                self.flow.tick(clock.ticks_ms())
            except Exception as e:
                # A bug in one screen change must not stop the panel.
                self.counters.add("ui_error")
                log.exception(_TAG, "tick failed", e)
            if self.wdt is not None:
                self.wdt.feed()
            await asyncio.sleep(0.1)

    async def _heartbeat(self):
        while True:
            try:
                await asyncio.wait_for(self._heartbeat_now.wait(), self.settings["heartbeat_s"])
            except asyncio.TimeoutError:
                pass
            self._heartbeat_now.clear()
            if self.client.up:
                # One status that fails (a MemoryError on a full heap, a
                # link that drops mid-write) must not end the heartbeat:
                # the next one is tried as usual.
                try:
                    await self.publish_status()
                except Exception as e:
                    self.counters.add("status_error")
                    log.exception(_TAG, "status not sent", e)

    def service_info(self):
        ads = self.adverts.status() if self.adverts is not None else \
            {"ready": 0, "planned": 0, "bad": []}
        info = {"panel": self.identity.panel, "store": self.identity.store,
                "broker": "up" if self.client.up else "down",
                "outbox": self.outbox.depth(), "screen": self.flow.state,
                "fw": VERSION, "board": self.settings["board"],
                "adverts": "%d of %d ready, %d bad" % (ads["ready"], ads["planned"], len(ads["bad"]))}
        if self.net is not None:
            info["ip"] = self.net.ip()
            info["rssi"] = self.net.rssi()
        return info

    async def publish_status(self):
        free = telemetry.heap_free()
        if free is not None and (self.heap_min_free is None or free < self.heap_min_free):
            self.heap_min_free = free
        # The host settings in force, so the host can see its config landed.
        applied = {}
        for name in config.HOST_SETTINGS:
            applied[name] = self.settings[name]
        extra = {"screen": self.flow.state, "settings": applied,
                 "board": self.settings["board"]}
        if self.adverts is not None:
            extra["adverts"] = self.adverts.status()
        if free is not None:
            extra["heap_free"] = free
            extra["heap_min_free"] = self.heap_min_free
        if self.net is not None:
            extra["ip"] = self.net.ip()
            extra["rssi"] = self.net.rssi()
        if self.updates is not None:
            extra["ota"] = self.updates.ota
        uptime = clock.ticks_diff(clock.ticks_ms(), self.started) // 1000
        msg = telemetry.status_message(self.identity, uptime, self.outbox.depth(),
                                       self.counters, extra)
        try:
            await self.client.publish(self.topics["status"], protocol.encode(msg), 1, True)
        except (MQTTError, protocol.ProtocolError) as e:
            log.warning(_TAG, "status not sent: %s" % e)


async def start(config_path, ui, network=None, reset=None, wdt=None, console=None,
                loaded=None, boot=None):
    """Boot order: config -> network -> app. A bad config leaves the panel on
    its 'not configured' screen (alive, watchdog fed) instead of crashing.
    `loaded`: what config.load(config_path) returned or raised, when the
    caller read the file already (main.py needs the board before the UI)."""
    try:
        if isinstance(loaded, config.ConfigError):
            raise loaded
        settings, warnings = loaded or config.load(config_path)
    except config.ConfigError as e:
        for problem in e.problems:
            log.error(_TAG, problem)
        ui.show_problem("not_configured", str(e))
        while True:
            if wdt is not None:
                wdt.feed()
            await asyncio.sleep(1)
    log.set_level(settings["log_level"])
    net = None
    if network is not None:
        from lbpanel.wifi import Wifi
        net = Wifi(network, settings["wifi.ssid"], settings["wifi.password"])
        while not await net.up():
            from lbpanel.wifiwhy import REASONS
            ui.show_problem("no_network", "cannot join Wi-Fi %r: %s" % (
                settings["wifi.ssid"], REASONS.get(net.why, net.why)))
            await asyncio.sleep(5)
    app = PanelApp(settings, ui, net, reset, wdt, warnings=warnings, boot=boot)
    if console is not None:
        asyncio.create_task(console(app))
    await app.run()
    return app
