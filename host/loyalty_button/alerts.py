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

import json
import logging
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from datetime import datetime, time as dtime
from email.message import EmailMessage
from pathlib import Path

from .forward import http
from .forward.webhook import sign
from .host_config import check_fields
from .records import connect, now_ms

log = logging.getLogger(__name__)

DEST = "alerts"  # its outbox's name

_CHANNEL_FIELDS = {
    "webhook": [("url", "url", "str", None), ("secret", "secret", "secret", None)],
    "smtp": [("host", "host", "str", None), ("port", "port", "int", (1, 65535)),
             ("from", "sender", "str", None), ("to", "to", "list", None),
             ("user", "user", "str", None), ("password", "password", "str", None),
             ("starttls", "starttls", "bool", None)],
    "telegram": [("token", "token", "str", None), ("chat_id", "chat_id", "str", None),
                 ("api_base", "url", "str", None)],
}
_CHANNEL_REQUIRED = {"webhook": ("url",), "smtp": ("host", "from", "to"),
                     "telegram": ("token", "chat_id")}


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
    open_from: dtime = dtime(0, 0)
    open_to: dtime = dtime(23, 59)
    channels: list[Channel] = field(default_factory=list)


_TOP = [("detractor", "detractor", "bool", None),
        ("burst.window_min", "burst_window_min", "int", (1, 1440)),
        ("burst.min_answers", "burst_min_answers", "int", (1, 10000)),
        ("burst.share", "burst_share", "num", (0.01, 1)),
        ("silent_panel.minutes", "silent_minutes", "int", (1, 1440)),
        ("silent_panel.min_receipts", "silent_min_receipts", "int", (1, 1000)),
        ("silent_panel.hours", "hours", "str", None)]  # plus `channels`, a list


def parse(doc, base: Path) -> tuple[Alerts | None, list[str]]:
    if doc is None:
        return None, []
    if not isinstance(doc, dict):
        return None, ["alerts: must be a mapping"]
    plain = {k: v for k, v in doc.items() if k != "channels"}
    values, problems = check_fields(plain, _TOP, (), {"burst", "silent_panel"}, base, "alerts")
    problems = [f"alerts.{p}" for p in problems]
    hours = values.pop("hours", None)
    cfg = Alerts(**values)
    if hours is not None:
        try:
            a, b = hours.split("-")
            cfg.open_from, cfg.open_to = dtime.fromisoformat(a.strip()), dtime.fromisoformat(b.strip())
        except ValueError:
            problems.append(f"alerts.silent_panel.hours: must look like 08:00-22:00, got {hours!r}")
    channels = doc.get("channels") or []
    if not isinstance(channels, list) or not channels:
        problems.append("alerts.channels: list at least one channel (webhook, smtp, telegram)")
        channels = []
    for i, ch in enumerate(channels):
        where = f"alerts.channels[{i}]"
        if not isinstance(ch, dict) or ch.get("type") not in _CHANNEL_FIELDS:
            problems.append(f"{where}.type: must be webhook, smtp or telegram")
            continue
        kind = ch["type"]
        fields = [("name", "name", "id", None), ("type", "type", "str", None),
                  ("timeout_s", "timeout_s", "num", (0.1, 120))] + \
            [f for f in _CHANNEL_FIELDS[kind] if f[2] != "list"]
        v, p = check_fields({k: x for k, x in ch.items() if k != "to"}, fields,
                            ("name", "type") + tuple(r for r in _CHANNEL_REQUIRED[kind]
                                                     if r != "to"), set(), base, where)
        problems += [f"{where}.{x}" for x in p]
        if kind == "smtp":
            to = ch.get("to")
            if isinstance(to, str):
                to = [to]
            if not to or not all(isinstance(t, str) and "@" in t for t in to):
                problems.append(f"{where}.to: one or more e-mail addresses")
                continue
            v["to"] = to
        if kind == "telegram":
            v["chat_id"] = str(ch.get("chat_id"))
            v.setdefault("url", "https://api.telegram.org")
        if not p:
            cfg.channels.append(Channel(**v))
    return cfg, problems


# --- messages -----------------------------------------------------------------

def unhappy(rec: dict) -> bool:
    v = rec.get("value")
    # A burst of presses (a child at the buttons) is not a shopper's verdict.
    if rec.get("outcome") != "answered" or not isinstance(v, int) or rec.get("burst"):
        return False
    return (rec.get("kind") == "nps" and v <= 6) or (rec.get("kind") == "csat" and v <= 2)


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
            with smtplib.SMTP(ch.host, ch.port, timeout=ch.timeout_s) as smtp:
                if ch.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if ch.user:
                    smtp.login(ch.user, ch.password or "")
                smtp.send_message(msg)
        except (OSError, smtplib.SMTPException) as e:
            raise http.Retry(f"smtp {ch.host}:{ch.port}: {e}") from None


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

class RecordRules:
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


# --- silent panels (checked every minute by the concentrator) ---------------------------

def silent_panels(cfg: Alerts, db_path, panel_states: dict[str, str], till_panels: dict,
                  now: datetime) -> list[dict]:
    """Panels that are offline, or whose till had receipts but no answers for
    `silent_minutes`, within opening hours."""
    if not cfg.open_from <= now.time() <= cfg.open_to:
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
