"""Alerts: the detractor task, the burst rule and silent panels, sent by
webhook, e-mail through a real SMTP server (aiosmtpd) and Telegram (a
local server with the Bot API's request shape)."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from conftest import STORE, Host, receipt_doc
from fake_vendors import TELEGRAM_429, TelegramFake, WebhookReceiver
from loyalty_button.forward import alerts, http
from loyalty_button.service.records import RecordStore, now_ms
from loyalty_button.settings import Checker

TG_TOKEN = "123456:ABC-test-token"


def _parse_alerts(doc, base):
    check = Checker(base)
    return alerts.parse(doc, check), check.problems


@pytest.fixture
def telegram():
    tg = TelegramFake(TG_TOKEN).start()
    yield tg
    tg.stop()


def _channels(smtp, telegram, hook=None):
    chans = [{"name": "mail", "type": "smtp", "host": "127.0.0.1", "port": smtp.port,
              "from": "button@shop.example", "to": ["manager@shop.example"]},
             {"name": "tg", "type": "telegram", "token": TG_TOKEN, "chat_id": "-100200",
              "api_base": telegram.url}]
    if hook:
        chans.append({"name": "hook", "type": "webhook", "url": hook.url + "/hook",
                      "secret": "alert-secret-0123456789"})
    return chans


def _wait(pred, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


def test_a_detractor_becomes_a_task_on_every_channel(tmp_path, broker, panels, smtp, telegram):
    hook = WebhookReceiver(b"alert-secret-0123456789")
    hook.handle = lambda m, p, h, body, raw: (hook.entries.setdefault(
        body["task"]["id"], body), (204, b"", {}))[1]
    hook.start()
    h = Host(tmp_path / "host", broker,
             alerts={"channels": _channels(smtp, telegram, hook)}).start()
    try:
        panel = panels.start("till-1")
        h.wait_online("till-1")
        h.pos.send_udp(receipt_doc("1", "D1", "7700123", cashier="c7", total=99.5))
        panel.answer(f"{STORE}-D1", 3)
        panel.wait_screen("why", session=f"{STORE}-D1")
        panel.send("reasons queue,staff")
        h.wait_record(f"{STORE}-D1", value=3)
        _wait(lambda: smtp.messages and telegram.messages and hook.entries)
        rcpt, mail = smtp.messages[0]
        assert rcpt == ["manager@shop.example"] and "NPS 3 at till 1" in mail["Subject"]
        body = mail.get_payload()
        for text in ("receipt D1", "cashier c7", "loyalty card 7700123", "reasons: queue, staff"):
            assert text in body, body
        assert telegram.shape_errors == [] and telegram.messages[0]["chat_id"] == "-100200"
        assert "loyalty card 7700123" in telegram.messages[0]["text"]
        task = hook.entries[f"{STORE}-D1"]["task"]
        assert (task["receipt"], task["loyalty_id"], task["reasons"]) == \
            ("D1", "7700123", ["queue", "staff"])
        # A happy shopper raises nothing.
        h.pos.send_udp(receipt_doc("1", "D2", "7700999"))
        panel.answer(f"{STORE}-D2", 10)
        panel.wait_screen("why", session=f"{STORE}-D2")
        panel.send("reasons staff")
        h.wait_record(f"{STORE}-D2", value=10)
        _wait(lambda: h.thread.status()["forwarding"]["alerts"]["sent"] == 2)
        assert len(smtp.messages) == 1 and len(telegram.messages) == 1
    finally:
        h.stop()
        hook.stop()


def _store(tmp_path):
    return RecordStore(tmp_path / "r.db")


def _answer(i, value, kind="nps", closed=None):
    now = closed or now_ms()
    return {"id": f"{STORE}-{i}", "store": STORE, "till": "2", "receipt": str(i),
            "panel": "till-2", "source": "http", "sale_ts": now // 1000, "received_ms": now,
            "qid": kind, "kind": kind, "asked_ms": now, "state": "closed",
            "outcome": "answered", "value": value, "closed_ms": now}


def test_burst_rule_fires_once_per_window_and_a_failed_channel_is_retried_alone(
        tmp_path, smtp, telegram):
    cfg, problems = _parse_alerts({"detractor": False, "burst": {"window_min": 15,
                                                                "min_answers": 4, "share": 0.5},
                                  "channels": _channels(smtp, telegram)}, tmp_path)
    assert problems == []
    store = _store(tmp_path)
    t0 = now_ms() - 60_000
    recs = [_answer(i + 1, v, closed=t0 + i * 1000) for i, v in enumerate([9, 2, 10, 1, 0])]
    for r in recs:
        store.insert(r)
    store.flush()
    rules = alerts.RecordRules(cfg, tmp_path / "r.db")
    assert rules.send(recs[1], 0, None) is None  # 1 of 2: too few answers yet
    assert rules.send(recs[2], 0, None) is None  # a promoter never triggers
    telegram.fail(1, 429, TELEGRAM_429)
    with pytest.raises(http.Retry) as e:
        rules.send(recs[3], 0, None)  # 2 of 4 unhappy: fires; Telegram says wait
    assert e.value.after_s == 1 and e.value.ref == "0:mail"
    assert len(smtp.messages) == 1 and "2/4 unhappy" in smtp.messages[0][1]["Subject"]
    assert rules.send(recs[3], 1, e.value.ref) == "0:mail,0:tg"  # mail is not sent again
    assert len(smtp.messages) == 1 and len(telegram.messages) == 1
    assert rules.send(recs[4], 0, None) is None  # same window: not again
    store.stop()


def test_silent_panels_offline_and_no_answers_within_opening_hours(tmp_path):
    cfg, _ = _parse_alerts({"silent_panel": {"minutes": 30, "min_receipts": 3,
                                            "hours": "08:00-22:00"},
                           "channels": [{"name": "t", "type": "telegram", "token": "x",
                                         "chat_id": 1}]}, tmp_path)
    store = _store(tmp_path)
    for i in range(4):
        r = _answer(i, None)
        r.update(outcome="timeout", value=None)
        store.insert(r)
    store.stop()
    tills = {"1": "till-1", "2": "till-2", "3": "till-3"}
    states = {"till-1": "online", "till-2": "online", "till-3": "offline"}
    noon = datetime(2026, 11, 22, 12, 0)
    found = {a["panel"]: a["why"] for a in alerts.silent_panels(
        cfg, tmp_path / "r.db", states, tills, noon)}
    assert found == {"till-3": "panel is offline",
                     "till-2": "4 receipts and no answer in 30 minutes"}
    assert alerts.silent_panels(cfg, tmp_path / "r.db", states, tills,
                                datetime(2026, 11, 22, 23, 30)) == []
    assert cfg.open_hours == (8 * 60, 22 * 60)


def test_opening_hours_read_like_catalogue_hours_and_a_numeric_chat_id_is_taken(tmp_path):
    channels = [{"name": "t", "type": "telegram", "token": "x", "chat_id": -1001234567890}]
    cfg, problems = _parse_alerts({"silent_panel": {"hours": "20:00-02:00"},
                                   "channels": channels}, tmp_path)
    assert problems == [] and cfg.channels[0].chat_id == "-1001234567890"
    _store(tmp_path).stop()
    tills, states = {"1": "till-1"}, {"till-1": "offline"}
    at = [datetime(2026, 11, 22, h, m) for h, m in ((23, 0), (1, 59), (2, 0), (12, 0))]
    found = [bool(alerts.silent_panels(cfg, tmp_path / "r.db", states, tills, t)) for t in at]
    assert found == [True, True, False, False]
    cfg, problems = _parse_alerts({"silent_panel": {"hours": "08:00-24:00"},
                                   "channels": channels}, tmp_path)
    assert problems == [] and cfg.open_hours == (480, 1440)


def test_alert_settings_are_checked(tmp_path):
    _, problems = _parse_alerts({"channels": [{"name": "m", "type": "smtp", "host": "x",
                                              "from": "a@b", "to": ["nobody"]},
                                             {"name": "p", "type": "pager"}],
                                "silent_panel": {"hours": "late"}}, tmp_path)
    text = "\n".join(problems)
    assert "to: one or more e-mail addresses" in text and "must be webhook, smtp or telegram" \
        in text and "must look like 08:00-22:00" in text
    _, problems = _parse_alerts({}, tmp_path)
    assert any("list at least one channel" in p for p in problems)
