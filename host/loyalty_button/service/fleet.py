"""What the store host knows of its panels: each one's state (`online`,
`offline` from its last will, or never heard of) and its latest telemetry,
from the retained status messages; and how any message a panel publishes is
read and checked before anything acts on it."""

from __future__ import annotations

import logging

from lbpanel import protocol

from .records import now_ms

log = logging.getLogger(__name__)

# Telemetry kept from a panel's status for the dashboard and `status`.
_KEPT = ("fw", "outbox", "uptime_s", "rssi", "ip", "board", "adverts", "ota")


def panel_message(store: str, topic: str, payload: bytes) -> tuple[str, str, dict] | None:
    """A message a panel published, checked: (panel, leaf, message), or None
    for an empty payload (a cleared retained message). Raises ProtocolError;
    code `unexpected_topic` for a topic outside this store's panel tree."""
    parsed = protocol.parse_panel_topic(topic)
    if parsed is None or parsed[0] != store:
        raise protocol.ProtocolError("unexpected_topic", f"message on {topic!r} ignored")
    _, panel, leaf = parsed
    if not payload:
        return None
    msg = protocol.decode(payload, leaf)
    protocol.check_addressed(msg, store, panel)
    return panel, leaf, msg


class Fleet:
    def __init__(self):
        self.state: dict[str, str] = {}   # panel -> online / offline
        self.info: dict[str, dict] = {}   # panel -> its last status, last answer

    def online(self, panel: str) -> bool:
        """Online and able to take a question: not restarting into an update."""
        return self.state.get(panel) == "online" and not self._switching(panel)

    def _switching(self, panel: str) -> bool:
        return ((self.info.get(panel) or {}).get("ota") or {}).get("state") == "switching"

    def why_not_online(self, panel: str) -> str:
        if self.state.get(panel) == "online" and self._switching(panel):
            return "panel is restarting into an update"
        return "panel " + ("never connected" if panel not in self.state else "is offline")

    def on_status(self, panel: str, msg: dict) -> None:
        state = msg["state"]
        before = self.state.get(panel)
        self.state[panel] = state
        info = self.info.setdefault(panel, {})
        info.update({"state": state, "seen_ms": now_ms()})
        if state == "online":
            info.pop("ota", None)  # a panel's update state is its newest status's, or none
        info.update({k: msg[k] for k in _KEPT if msg.get(k) is not None})
        if before != state:
            # A panel gone is something to act on (its shoppers are not
            # asked); coming back, and an update's restart, are news.
            level = logging.INFO if state in ("online", "switching") else logging.WARNING
            log.log(level, "panel %s is %s", panel, state)

    def answered(self, panel: str) -> None:
        self.info.setdefault(panel, {})["last_answer_ms"] = now_ms()

    def status(self) -> dict:
        return {"panels": dict(sorted(self.state.items())),
                "fleet": {p: dict(i) for p, i in sorted(self.info.items())}}
