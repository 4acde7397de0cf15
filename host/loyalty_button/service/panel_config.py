"""Each panel's settings from the host (the retained `config` message,
docs/protocol.md): today its language, from the catalogue (the till's
`lang`, else the store's `default_lang`), so a Russian store's idle and
problem screens are in Russian without a `lang` in every panel.json. Kept
in step with catalogue edits, and published again when the broker comes
back (a broker without persistence forgets retained messages)."""

from __future__ import annotations

import asyncio
import logging
import time

import paho.mqtt.client as mqtt

from lbpanel import protocol

log = logging.getLogger(__name__)


def wanted(catalogue) -> dict[str, dict]:
    """panel -> the settings it should run with."""
    out = {}
    for till in catalogue.tills.values():
        out[till.panel] = {"lang": catalogue.till_language(till)}
    return out


class PanelConfig:
    def __init__(self, store: str, catalogue_file, mqtt_loop, counters):
        self.store, self.catalogue, self.mqtt, self.counters = (store, catalogue_file,
                                                                mqtt_loop, counters)
        self._sent: dict[str, dict] = {}
        self._wake = asyncio.Event()

    def on_broker_up(self) -> None:
        self._sent.clear()
        self._wake.set()

    def sync(self) -> None:
        """Publish what changed since the last time (nothing while the
        broker is down: on_broker_up sends everything again)."""
        if not self.mqtt.up.is_set():
            return
        for panel, settings in sorted(wanted(self.catalogue.current).items()):
            if self._sent.get(panel) == settings:
                continue
            msg = protocol.envelope("config", protocol.new_id(), int(time.time()), self.store,
                                    panel)
            msg["settings"] = settings
            info = self.mqtt.client.publish(protocol.panel_topic(self.store, panel, "config"),
                                            protocol.encode(msg), qos=1, retain=True)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # the broker went away: everything again when it is back
            self._sent[panel] = settings
            self.counters["panel_config_sent"] += 1
            log.info("panel %s gets settings %s", panel,
                     ", ".join(f"{k}={v}" for k, v in sorted(settings.items())))

    async def run(self, poll_s: float) -> None:
        while True:
            try:
                self.sync()
            except Exception:
                self.counters["panel_config_error"] += 1
                log.exception("panel settings could not be published")
            try:
                await asyncio.wait_for(self._wake.wait(), poll_s)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
