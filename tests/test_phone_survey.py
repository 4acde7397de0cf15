"""The shopper's phone survey end to end (docs/phone-survey.md): a store
host with a panel, forwarding to the chain's central service (its own
process over a real PostgreSQL) and to a webhook; the panel's thank-you
screen drawn by the real UI under LVGL, its QR read back from the PNG by
a QR decoder; the link opened in Chromium at a phone's size; the answer in
the store's record, the central record and its totals, and the webhook;
a second answer, an expired link and a changed one refused; a deletion by
the response id removing it everywhere, with a record of it."""

from __future__ import annotations

import copy
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import psycopg
import pytest

from conftest import STORE, TEST_CATALOGUE, Host, page_shot, receipt_doc
from test_central import _database, central, pg  # noqa: F401 (fixtures)
from fake_vendors import WebhookReceiver
from test_forwarding import KEY, SECRET

from loyalty_button import phone_link

DOCS_IMAGES = Path(__file__).resolve().parents[1] / "docs" / "images"

CATALOGUE = copy.deepcopy(TEST_CATALOGUE)
CATALOGUE["questions"].update({
    "phone-nps": {"kind": "nps", "timeout_s": 20,
                  "text": {"en": "How likely are you to recommend our shop to a friend?",
                           "ru": "Порекомендуете ли вы наш магазин другу?"},
                  "labels": {"low": {"en": "not at all", "ru": "ни за что"},
                             "high": {"en": "certainly", "ru": "обязательно"}}},
    "phone-found": {"kind": "choice", "timeout_s": 20,
                    "text": {"en": "Did you find everything?", "ru": "Нашли всё, что искали?"},
                    "options": {"all": {"en": "Yes, everything", "ru": "Да, всё"},
                                "most": {"en": "Most of it", "ru": "Почти всё"},
                                "little": {"en": "Not much", "ru": "Мало что"}}},
    "phone-comment": {"kind": "comment",
                      "text": {"en": "What should we do better?",
                               "ru": "Что нам сделать лучше?"}},
})
CATALOGUE["phone_survey"] = {"ask": ["phone-nps", "phone-found", "phone-comment"],
                             "after": ["csat"], "expiry_h": 72,
                             "review": {"site": "yandex_maps", "place": "1049713486"}}


def _get(url: str, lang: str = "en", data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, headers={"Accept-Language": lang})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _until(what: str, probe, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def _thanks_png(url: str, text: str, path: Path) -> None:
    """The CYD's thank-you screen with the link's QR, as the panel draws it."""
    from lbpanel import telemetry
    from loyalty_button.sim import lvpanel, screens
    ui, display, touch = lvpanel.make_ui("cyd", telemetry.Counters())
    try:
        ui.show_thanks({"session": "s1-P-1", "outcome": "answered", "kind": "csat", "value": 4},
                       {"url": url, "text": text, "to": "all"}, "en")
        screens._settle(ui, display)
        display.save_png(path)
    finally:
        touch.delete()
        display.delete()


def _decode(path: Path) -> list:
    import zxingcpp
    from PIL import Image
    return zxingcpp.read_barcodes(Image.open(path).convert("L"))


def _store_phone(h) -> dict:
    from loyalty_button.service import records, reports
    conn = records.connect(h.cfg.database, readonly=True)
    try:
        return reports.phone(conn)
    finally:
        conn.close()


def _central_phone(dsn: str, record_id: str):
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT phone FROM lb_records WHERE id = %s", (record_id,)).fetchone()
        totals = conn.execute("SELECT phone_n, phone_promoters FROM lb_totals WHERE store = %s "
                              "AND dim = 'all' AND slot = -1", (STORE,)).fetchone()
    return (row[0] if row else "missing"), totals


def test_a_receipt_s_link_is_answered_on_a_phone_once_and_deleted_everywhere(
        tmp_path, broker, panels, pg, central, browser):  # noqa: F811
    dsn = _database(pg, "phone_e2e")
    rig = central("central", dsn, tls=False, phone=True,
                  settings={"phone": {"per_address_per_min": 600}}).setup()
    rig.add_store(STORE)
    rig.start()
    hook = WebhookReceiver(SECRET.encode()).start()
    h = Host(tmp_path / "host", broker, CATALOGUE, forwarding={
        "pseudonym_key": KEY.decode(), "destinations": [
            {"name": "central", "type": "central", "url": rig.url,
             "token_file": str(rig.tokens[STORE]), "status_every_s": 0.3,
             "backoff_base_s": 0.05, "backoff_max_s": 0.5},
            {"name": "hook", "type": "webhook", "url": hook.url + "/hook", "secret": SECRET,
             "backoff_base_s": 0.05, "backoff_max_s": 0.5}]}).start()
    try:
        panel = panels.start("till-1")
        h.wait_online("till-1")
        # The key and store number come with the central service's reply
        # to the store's status.
        _until("the phone link grant", lambda: h.host.phone.grant)

        # --- the link: in the POS's reply and on the thank-you screen ---
        status, reply = h.pos.send_http(receipt_doc("1", "P-1"))  # not a member: csat
        assert status == 202, reply
        url = reply["survey_url"]
        assert url == url.upper() and url.startswith(rig.url.upper() + "/S/")
        token = url.rsplit("/", 1)[1]
        assert len(token) == phone_link.TOKEN_CHARS
        assert phone_link.fits_v4m(url) == {"alphanumeric": True, "bytes": True}
        for secret_part in ("P-1", "s1"):  # the receipt is a hash in it, nothing readable
            assert secret_part.upper() not in token
        # The same receipt again (the till's retry) is told the same link.
        assert h.pos.send_http(receipt_doc("1", "P-1"))[1]["survey_url"] == url
        panel.answer(f"{STORE}-P-1", 4)
        thanks = panel.wait_screen("thanks", session=f"{STORE}-P-1")
        assert thanks["qr"] == url
        png = tmp_path / "cyd-thanks-phone.png"
        _thanks_png(url, "Scan to tell us more", png)
        found = _decode(png)
        assert [r.text for r in found] == [url]
        assert found[0].format.name == "QRCode"
        h.wait_record(f"{STORE}-P-1", outcome="answered", value=4)

        # --- the page, in Chromium at a phone's size ---
        browser.set_window_size(390, 844)
        browser.get(url)
        assert browser.find_element("tag name", "h1").text == "A few questions"
        legends = [e.text for e in browser.find_elements("tag name", "legend")]
        assert "0 — not at all, 10 — certainly" in legends[0]
        assert not browser.execute_script("return document.scripts.length")
        # Every answer target is at least 44 px each way.
        sizes = browser.execute_script(
            "return [...document.querySelectorAll('label.b span, button')].map("
            "e => [e.getBoundingClientRect().width, e.getBoundingClientRect().height])")
        assert sizes and min(min(w, h) for w, h in sizes) >= 44, sizes
        assert browser.execute_script(
            "return document.documentElement.scrollWidth") <= 390  # no sideways scroll
        # Only the page itself was fetched: no request to anyone else.
        resources = browser.execute_script(
            "return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources == []
        page_shot(browser, DOCS_IMAGES / "phone-survey-en-390.png", 390, 844)
        browser.find_element("css selector", "input[name=q0][value='9']").find_element(
            "xpath", "..").click()
        browser.find_element("css selector", "input[name=q1][value='most']").find_element(
            "xpath", "..").click()
        comment = "<b>Queue</b> was long & the bakery was out of bread"
        browser.find_element("css selector", "textarea").send_keys(comment)
        browser.find_element("css selector", "button[type=submit]").click()
        _until("the thank-you page", lambda: "Thank you" in browser.page_source)
        response = browser.find_element("css selector", ".id").text
        assert len(response) == 9 and response[4] == "-"
        review = browser.find_element("css selector", "a.btn").get_attribute("href")
        assert review == "https://yandex.ru/maps/org/1049713486/reviews/"

        # --- merged: the store's record, the central record and totals, the CRM ---
        want = {"phone-nps": 9, "phone-found": "most", "phone-comment": comment}
        rec = _until("the answer in the store's record",
                     lambda: (h.record(f"{STORE}-P-1") or {}).get("phone"))
        assert rec["answers"] == want and rec["response"] == response and rec["nps"] == 9
        assert rec["lang"] == "en"
        phone, totals = _until("the central record", lambda: (
            _central_phone(dsn, f"{STORE}-P-1")
            if (_central_phone(dsn, f"{STORE}-P-1")[0] or {}) != "missing"
            and _central_phone(dsn, f"{STORE}-P-1")[0] else None))
        assert phone["answers"] == want and totals == (1, 1)
        # The store's dashboard (/api/phone) reads this.
        shown = _store_phone(h)
        assert (shown["links"], shown["answers"], shown["nps"]["nps"]) == (1, 1, 100.0)
        assert shown["comments"][0]["text"] == comment
        assert shown["comments"][0]["response"] == response
        sent = _until("the webhook's copy with the phone answer", lambda: (
            hook.entries.get(f"{STORE}-P-1") or {}).get("phone"))
        assert sent["answers"] == want  # the comment as text, as the shopper typed it

        # --- refused: a second answer, an expired link, a changed one ---
        status, body = _get(url, data=b"lang=en&q0=0")
        assert status == 409 and "already answered" in body
        status, body = _get(url)
        assert status == 409
        grant = h.host.phone.grant
        old = phone_link.url(grant["base"], phone_link.make(
            grant["key"], grant["number"], f"{STORE}-OLD", time.time() - 3 * 3600))
        status, body = _get(old, "ru")
        assert status == 410 and "Опрос закрыт" in body
        changed = url[:-3] + ("A" if url[-3] != "A" else "B") + url[-2:]
        status, body = _get(changed)
        assert status == 404 and "not valid" in body
        status, body = _get(url[:-1])
        assert status == 404

        # --- the page in Russian, from the browser's language ---
        fresh = h.pos.send_http(receipt_doc("1", "P-2"))[1]["survey_url"]
        status, body = _get(fresh, "ru-RU,ru;q=0.9,en;q=0.5")
        assert status == 200 and 'lang="ru"' in body and "Несколько вопросов" in body
        assert len(body.encode()) < 15 * 1024
        browser.get(fresh + "?lang=ru")
        page_shot(browser, DOCS_IMAGES / "phone-survey-ru-390.png", 390, 844)

        # --- deletion by the response id, everywhere ---
        out = rig.cli("phone", "delete", response.lower().replace("-", ""), "--by", "support",
                      "--note", "shopper's request")
        assert response in out
        assert _central_phone(dsn, f"{STORE}-P-1") == (None, (0, 0))
        with psycopg.connect(dsn, autocommit=True) as conn:
            kept = conn.execute("SELECT store, by_whom, note FROM lb_phone_deletions WHERE "
                                "response = %s", (response,)).fetchall()
            left = conn.execute("SELECT doc FROM lb_phone_answers WHERE response = %s",
                                (response,)).fetchone()
        assert kept == [(STORE, "support", "shopper's request")] and left == (None,)
        _until("the store's record without it",
               lambda: (h.record(f"{STORE}-P-1") or {}).get("phone", 1) is None)
        _until("the webhook's copy without it", lambda: "phone" in (
            hook.entries.get(f"{STORE}-P-1") or {}) and hook.entries[f"{STORE}-P-1"]["phone"]
            is None)
        assert _store_phone(h)["answers"] == 0
        with pytest.raises(RuntimeError, match="deleted"):
            rig.cli("phone", "delete", response, "--by", "support")
        # The link stays used: a deleted answer is not answered again.
        assert _get(url, data=b"lang=en&q0=3")[0] == 409
        assert h.counters()["phone_deleted"] == 1
    finally:
        h.stop()
        hook.stop()
