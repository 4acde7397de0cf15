"""Fixtures that start the real parts: a private Mosquitto on a free loopback
port, the host's panel link, and panels running the real firmware under the
MicroPython unix port. Each test gets its own and they are stopped after."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lbpanel import protocol
from loyalty_button.broker import Broker
from loyalty_button.panel_link import PanelLink, new_id
from loyalty_button.simpanel import SimPanel, panel_config

STORE = "s1"


@pytest.fixture(scope="session")
def compiled_firmware(tmp_path_factory) -> Path:
    """The firmware as a panel gets it: .mpy bytecode from mpy-cross."""
    from loyalty_button import firmware_build
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
              **overrides) -> SimPanel:
        cfg = config if config is not None else self.config(panel_id, **overrides)
        panel = SimPanel(self.root / panel_id, cfg, heapsize=heapsize, name=panel_id,
                         firmware=firmware).start()
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
