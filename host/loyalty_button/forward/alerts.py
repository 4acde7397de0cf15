"""Alerts (docs/alerts.md): rules evaluated as records close, sent to people
over a webhook, e-mail (SMTP) and Telegram.

Rules:
- detractor: every NPS 0-6 (or CSAT 1-2) becomes a closed-loop task with
  the receipt, till, cashier, loyalty id and reasons, so the store can call
  the shopper back;
- burst: at least `share` of the answers within `window_min` minutes are
  unhappy, with at least `min_answers` answers (once per window);
- silent panel: a panel is offline, or receipts flow at its till but no
  question was answered for `minutes`, within opening hours.

Record rules ride on the forwarding outbox as the destination "alerts", so
an alert is never lost to a restart or a mail server that is down: the
record stays pending until every channel took it (the channels that did
are remembered, so a retry does not send twice)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage

from lbpanel import protocol

from .. import smtp
from ..service.records import connect, now_ms
from ..settings import Checker, Field, clock_span, in_span
from . import http
from .adapter import OneByOne
from .webhook import sign

log = logging.getLogger(__name__)

DEST = "alerts"  # its outbox's name

_CHANNEL_FIELDS = {
    "webhook": [Field("url", "str", required=True), Field("secret", "secret")],
    "smtp": [Field("host", "str", required=True), Field("port", "int", (1, 65535)),
             Field("from", "str", attr="sender", required=True),
             Field("to", "list", required=True),
             Field("user", "str"), Field("password", "str"), Field("starttls", "bool")],
    "telegram": [Field("token", "str", required=True), Field("chat_id", "str", required=True),
                 Field("api_base", "str", attr="url")],
}
_CHANNEL_COMMON = [Field("name", "id", required=True), Field("type", "str", required=True),
                   Field("timeout_s", "num", (0.1, 120))]


@dataclass
class Channel:
    name: str
    type: str
    url: str | None = None
    secret: bytes | None = None
    host: str | None = None
    port: int = 25
    sender: str | None = None
    to: list = field(default_factory=list)
    user: str | None = None
    password: str | None = None
    starttls: bool = False
    token: str | None = None
    chat_id: str | None = None
    timeout_s: float = 10.0


@dataclass
class Alerts:
    detractor: bool = True
    burst_window_min: int = 15
    burst_min_answers: int = 4
    burst_share: float = 0.5
    silent_minutes: int = 30
    silent_min_receipts: int = 3
    # Opening hours, minutes since midnight: [start, end), may cross midnight.
    open_hours: tuple[int, int] = (0, 1440)
    channels: list[Channel] = field(default_factory=list)


_TOP = [Field("detractor", "bool"),
        Field("burst.window_min", "int", (1, 1440)),
        Field("burst.min_answers", "int", (1, 10000)),
        Field("burst.share", "num", (0.01, 1)),
        Field("silent_panel.minutes", "int", (1, 1440), attr="silent_minutes"),
        Field("silent_panel.min_receipts", "int", (1, 1000), attr="silent_min_receipts"),
        Field("silent_panel.hours", "str", attr="hours")]


def parse(doc, check: Checker) -> Alerts | None:
    """The `alerts:` section of concentrator.yaml; its problems go to `check`."""
    if doc is None:
        return None
    values = check.fields(doc, _TOP, "alerts", lists=("channels",))
    if not isinstance(doc, dict):
        return None
    hours = values.pop("hours", None)
    cfg = Alerts(**values)
    if hours is not None:
        span = clock_span(hours)
        if span is None:
            check.fail("alerts.silent_panel.hours", f"must look like 08:00-22:00, got {hours!r}")
        else:
            cfg.open_hours = span
    channels = doc.get("channels") or []
    if not isinstance(channels, list) or not channels:
        check.fail("alerts.channels", "list at least one channel (webhook, smtp, telegram)")
        channels = []
    for i, ch in enumerate(channels):
        where = f"alerts.channels[{i}]"
        if not isinstance(ch, dict) or ch.get("type") not in _CHANNEL_FIELDS:
            check.fail(f"{where}.type", "must be webhook, smtp or telegram")
            continue
        kind = ch["type"]
        if isinstance(ch.get("chat_id"), int) and not isinstance(ch["chat_id"], bool):
            ch = dict(ch, chat_id=str(ch["chat_id"]))  # Telegram's chat ids are numbers
        before = len(check.problems)
        v = check.fields(ch, _CHANNEL_COMMON + _CHANNEL_FIELDS[kind], where)
        if kind == "smtp" and "to" in v and not all("@" in t for t in v["to"]):
            check.fail(f"{where}.to", "one or more e-mail addresses")
        if kind == "telegram":
            v.setdefault("url", "https://api.telegram.org")
        if len(check.problems) == before:
            cfg.channels.append(Channel(**v))
    return cfg


# --- messages -----------------------------------------------------------------

def unhappy(rec: dict) -> bool:
    """A score that calls for a person (protocol.unhappy: NPS 0-6, CSAT
    1-2). A yes/no 'no' is not an alert, and a burst of presses (a child at
    the buttons) is not a shopper's verdict."""
    kind, value = rec.get("kind"), rec.get("value")
    return (rec.get("outcome") == "answered" and kind in ("nps", "csat")
            and isinstance(value, int) and not isinstance(value, bool)
            and not rec.get("burst") and protocol.unhappy(kind, value))


def detractor_alert(rec: dict) -> dict:
    score = f"{rec['kind'].upper()} {rec['value']}"
    lines = [f"Unhappy shopper: {score} at store {rec['store']}, till {rec['till']}",
             f"receipt {rec['receipt']}" + (f", total {rec['total']} {rec.get('currency') or ''}"
                                            if rec.get("total") is not None else ""),
             f"cashier {rec.get('cashier') or '-'}",
             f"loyalty card {rec.get('loyalty_id') or '- (not a member)'}",
             f"reasons: {', '.join(rec.get('reasons') or []) or '-'}"]
    return {"rule": "detractor", "subject": f"[Loyalty Button] {score} at till {rec['till']}",
            "text": "\n".join(lines),
            "task": {k: rec.get(k) for k in ("id", "store", "till", "receipt", "cashier",
                                             "loyalty_id", "kind", "value", "reasons",
                                             "total", "asked_ms")}}


# --- channels ---------------------------------------------------------------------

def deliver(ch: Channel, alert: dict) -> None:
    """Raise http.Retry if it did not go."""
    if ch.type == "webhook":
        body = json.dumps({"type": "alert", **alert}, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        if ch.secret:
            ts = str(int(time.time()))
            headers.update({"X-LB-Timestamp": ts, "X-LB-Signature": sign(ch.secret, ts, body)})
        try:
            http.check(http.request("POST", ch.url, body, headers, ch.timeout_s), "alert webhook")
        except http.Refused as e:
            raise http.Retry(str(e)) from None
    elif ch.type == "telegram":
        body = json.dumps({"chat_id": ch.chat_id, "text": alert["text"],
                           "disable_web_page_preview": True}).encode()
        resp = http.request("POST", f"{ch.url.rstrip('/')}/bot{ch.token}/sendMessage", body,
                            {"Content-Type": "application/json"}, ch.timeout_s)
        try:
            answer = json.loads(resp.body or b"{}")
        except ValueError:
            answer = {}
        if resp.status == 200 and answer.get("ok"):
            return
        after = (answer.get("parameters") or {}).get("retry_after")
        raise http.Retry(f"telegram: HTTP {resp.status} {answer.get('description', '')}",
                         float(after) if after else None)
    else:
        msg = EmailMessage()
        msg["From"] = ch.sender
        msg["To"] = ", ".join(ch.to)
        msg["Subject"] = alert["subject"]
        msg.set_content(alert["text"])
        try:
            smtp.send(msg, ch.host, ch.port, ch.timeout_s, ch.starttls, ch.user, ch.password)
        except smtp.MailError as e:
            raise http.Retry(str(e)) from None


def broadcast(channels: list[Channel], alert: dict, done: set[str]) -> set[str]:
    """Send to every channel not in `done`; returns the channels that have it.
    Raises Retry (after trying all) if any did not take it."""
    failed = []
    for ch in channels:
        if ch.name in done:
            continue
        try:
            deliver(ch, alert)
            done.add(ch.name)
        except http.Retry as e:
            failed.append(e)
    if failed:
        raise http.Retry("; ".join(str(e) for e in failed),
                         max((e.after_s or 0) for e in failed) or None)
    return done


# --- rules over records (the "alerts" outbox) ----------------------------------------

class RecordRules(OneByOne):
    """The forwarding adapter for the `alerts` destination: one closed record
    at a time, in order."""

    def __init__(self, cfg: Alerts, db_path):
        self.cfg = cfg
        self.db_path = db_path
        self.last_burst_ms = 0

    def send(self, rec: dict, attempts: int, ref: str | None) -> str | None:
        done = set(filter(None, (ref or "").split(",")))
        alerts = []
        if self.cfg.detractor and unhappy(rec):
            alerts.append(detractor_alert(rec))
        burst = self._burst(rec)
        if burst:
            alerts.append(burst)
        for i, alert in enumerate(alerts):
            mine = {d.split(":", 1)[1] for d in done if d.startswith(f"{i}:")}
            try:
                broadcast(self.cfg.channels, alert, mine)
            except http.Retry as e:
                # Remember who has it already: the retry skips them.
                e.ref = ",".join(sorted(done | {f"{i}:{c}" for c in mine}))
                raise
            done |= {f"{i}:{c}" for c in mine}
            if alert["rule"] == "burst":
                self.last_burst_ms = alert["at_ms"]
        return ",".join(sorted(done)) or None

    def _burst(self, rec: dict) -> dict | None:
        if not unhappy(rec):
            return None
        window = self.cfg.burst_window_min * 60_000
        now = rec.get("closed_ms") or now_ms()
        if now - self.last_burst_ms < window:
            return None
        conn = connect(self.db_path, readonly=True)
        try:
            rows = conn.execute(
                "SELECT kind, value, outcome FROM records WHERE outcome = 'answered' AND "
                "burst IS NULL AND closed_ms > ? AND closed_ms <= ?",
                (now - window, now)).fetchall()
        finally:
            conn.close()
        answers = [dict(r) for r in rows]
        bad = sum(1 for a in answers if unhappy(a))
        if len(answers) < self.cfg.burst_min_answers or bad < self.cfg.burst_share * len(answers):
            return None
        text = (f"{bad} of the last {len(answers)} answers within {self.cfg.burst_window_min} "
                f"minutes at store {rec['store']} were unhappy (latest: till {rec['till']}, "
                f"{rec['kind'].upper()} {rec['value']}). Something is going on: queue, staff?")
        return {"rule": "burst", "subject": f"[Loyalty Button] {bad}/{len(answers)} unhappy "
                                            f"in {self.cfg.burst_window_min} min",
                "text": text, "window": {"answers": len(answers), "unhappy": bad},
                "at_ms": now}


# --- silent panels (checked every minute) ---------------------------------------------

def silent_panels(cfg: Alerts, db_path, panel_states: dict[str, str], till_panels: dict,
                  now: datetime) -> list[dict]:
    """Panels that are offline, or whose till had receipts but no answers for
    `silent_minutes`, within opening hours."""
    if not in_span(now.hour * 60 + now.minute, cfg.open_hours):
        return []
    since = now_ms() - cfg.silent_minutes * 60_000
    conn = connect(db_path, readonly=True)
    try:
        rows = conn.execute(
            "SELECT panel, COUNT(*), SUM(outcome = 'answered') FROM records WHERE "
            "received_ms >= ? AND panel IS NOT NULL GROUP BY panel", (since,)).fetchall()
    finally:
        conn.close()
    out = []
    for panel in sorted(set(till_panels.values())):
        state = panel_states.get(panel, "never connected")
        if state != "online":
            out.append({"rule": "silent_panel", "panel": panel, "why": f"panel is {state}"})
    for panel, receipts, answered in rows:
        if panel_states.get(panel) == "online" and receipts >= cfg.silent_min_receipts \
                and not answered:
            out.append({"rule": "silent_panel", "panel": panel,
                        "why": f"{receipts} receipts and no answer in "
                               f"{cfg.silent_minutes} minutes"})
    for a in out:
        a["subject"] = f"[Loyalty Button] panel {a['panel']}: {a['why']}"
        a["text"] = (f"Panel {a['panel']}: {a['why']}. Check that it is powered, on the "
                     f"network and showing questions.")
    return out


class SilentPanelWatch:
    """The silent-panel rule, once a minute, off the event loop; each
    panel's alert is repeated at most once per `silent_minutes` while it
    lasts. `panel_states()` and `till_panels()` read the host's live view
    (the fleet, the catalogue in force) on the loop."""

    def __init__(self, cfg: Alerts, db_path, panel_states, till_panels, tz, counters,
                 every_s: float = 60.0):
        self.cfg, self.db_path, self.tz = cfg, db_path, tz
        self.panel_states, self.till_panels = panel_states, till_panels
        self.counters, self.every_s = counters, every_s
        self._told: dict[str, float] = {}

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.every_s)
            try:
                found = await loop.run_in_executor(
                    None, silent_panels, self.cfg, self.db_path, dict(self.panel_states()),
                    self.till_panels(), datetime.now(self.tz))
            except Exception as e:
                log.error("silent panel check: %s", e)
                continue
            now = time.monotonic()
            for a in found:
                if now - self._told.get(a["panel"], -1e9) < self.cfg.silent_minutes * 60:
                    continue
                try:
                    await loop.run_in_executor(None, broadcast, self.cfg.channels, a, set())
                    self._told[a["panel"]] = now
                    self.counters["alerts_silent_panel"] += 1
                    log.warning("alert: panel %s: %s", a["panel"], a["why"])
                except Exception as e:  # tried again next minute
                    log.error("alert for panel %s not sent: %s", a["panel"], e)
