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
from test_central import Session, _database, central, pg  # noqa: F401 (fixtures)
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


def _mailed(dsn: str) -> dict:
    """The headline of the chain admin's e-mail report around today."""
    import asyncio
    from datetime import date, timedelta
    from loyalty_button.central import mail

    async def made():
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            today = date.today()
            return await mail.content(conn, "boss", (today - timedelta(days=1),
                                                     today + timedelta(days=1)))
    return dict(mail.headline(asyncio.run(made()), mail.WORDS["en"]))


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
    return (row[0] if row else None), totals


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
        h.wait(lambda: h.host.phone.grant, "the phone link grant", 20)

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
        # The panel's copy: scheme and host in lower case (any firmware's
        # check takes it), the same link.
        on_panel = thanks["qr"]
        assert on_panel.upper() == url and on_panel.startswith(rig.url + "/S/")
        png = DOCS_IMAGES / "cyd-thanks-phone.png"
        _thanks_png(on_panel, "Scan to tell us more", png)
        found = _decode(png)
        assert [r.text for r in found] == [on_panel]
        assert found[0].format.name == "QRCode"
        # The panel's LVGL widget: bytes, level M, version 4.
        assert (found[0].extra["Version"], found[0].ec_level) == ("4", "M")
        h.wait_record(f"{STORE}-P-1", outcome="answered", value=4)

        # --- the page, in Chromium at a phone's size ---
        browser.set_window_size(390, 844)
        browser.get(on_panel)  # what the phone's camera opens
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
        h.wait(lambda: "Thank you" in browser.page_source, "the thank-you page", 20)
        response = browser.find_element("css selector", ".id").text
        assert len(response) == 9 and response[4] == "-"
        review = browser.find_element("css selector", "a.btn").get_attribute("href")
        assert review == "https://yandex.ru/maps/org/1049713486/reviews/"

        # --- merged: the store's record, the central record and totals, the CRM ---
        want = {"phone-nps": 9, "phone-found": "most", "phone-comment": comment}
        rec = h.wait(lambda: (h.record(f"{STORE}-P-1") or {}).get("phone"),
                     "the answer in the store's record", 20)
        assert rec["answers"] == want and rec["response"] == response and rec["nps"] == 9
        assert rec["lang"] == "en"
        phone, totals = h.wait(lambda: (lambda got: got if got[0] else None)(
            _central_phone(dsn, f"{STORE}-P-1")), "the central record", 20)
        assert phone["answers"] == want and totals == (1, 1)
        # The chain dashboard's store view counts it for the period.
        status, detail = Session(rig, "boss", "boss-password").get(f"/api/store/{STORE}")
        assert status == 200 and detail["phone"]["answers"] == 1
        assert detail["phone"]["nps"]["promoters"] == 1
        assert _mailed(dsn)["On the phone"] == "NPS 100.0 (answers: 1)"  # the e-mail report
        # The store's dashboard (/api/phone) reads this.
        shown = _store_phone(h)
        assert (shown["links"], shown["answers"], shown["nps"]["nps"]) == (1, 1, 100.0)
        assert shown["comments"][0]["text"] == comment
        assert shown["comments"][0]["response"] == response
        sent = h.wait(lambda: (hook.entries.get(f"{STORE}-P-1") or {}).get("phone"),
                      "the webhook's copy with the phone answer", 20)
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
        h.wait(lambda: (h.record(f"{STORE}-P-1") or {}).get("phone", 1) is None,
               "the store's record without it", 20)
        h.wait(lambda: (hook.entries.get(f"{STORE}-P-1") or {}).get("phone", 1) is None,
               "the webhook's copy without it", 20)
        assert _store_phone(h)["answers"] == 0
        with pytest.raises(RuntimeError, match="deleted"):
            rig.cli("phone", "delete", response, "--by", "support")
        # The link stays used: a deleted answer is not answered again.
        assert _get(url, data=b"lang=en&q0=3")[0] == 409
        assert h.counters()["phone_deleted"] == 1
    finally:
        h.stop()
        hook.stop()


# --- the parts on their own ----------------------------------------------------------

def test_a_link_is_refused_when_changed_expired_or_of_another_key():
    key, other = b"k" * 32, b"o" * 32
    now = time.time()
    token = phone_link.make(key, 4711, "s1-R-1", now + 3600)
    fields = phone_link.parse(token)
    assert fields["store_number"] == 4711
    assert fields["ref"] == phone_link.receipt_ref("s1-R-1")
    phone_link.verify(fields, key, now)
    with pytest.raises(phone_link.BadToken, match="forged"):
        phone_link.verify(fields, other, now)
    # Every single character changed, anywhere, is refused.
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    for i in range(len(token)):
        for c in alphabet:
            if c == token[i]:
                continue
            changed = token[:i] + c + token[i + 1:]
            with pytest.raises(phone_link.BadToken, match="forged"):
                phone_link.verify(phone_link.parse(changed), key, now)
    # Expiry: rounded up to the hour, with a leeway of 15 minutes after it.
    assert fields["expires_at"] >= now + 3600
    phone_link.verify(fields, key, fields["expires_at"] + phone_link.LEEWAY_S)
    with pytest.raises(phone_link.BadToken, match="expired"):
        phone_link.verify(fields, key, fields["expires_at"] + phone_link.LEEWAY_S + 1)
    # A forgery is never told "expired" (the signature is checked first).
    old = phone_link.parse(phone_link.make(key, 4711, "s1-R-2", now - 86400))
    with pytest.raises(phone_link.BadToken, match="forged"):
        phone_link.verify(old, other, now)
    for bad in ("", "A" * 33, token + "A", token[:-1] + "1", "é" * 34):
        with pytest.raises(phone_link.BadToken):
            phone_link.parse(bad)
    # The lower-case link is the same link (a hand-typed URL).
    assert phone_link.parse(token.lower()) == fields


def test_the_whole_link_fits_a_version_4_qr_at_level_m():
    import segno
    url = phone_link.url("https://lb.chain.example", phone_link.make(b"k" * 32, 2 ** 24 - 1,
                                                                     "x" * 64, time.time()))
    assert len(url) == 61 and phone_link.fits_v4m(url) == {"alphanumeric": True, "bytes": True}
    assert segno.make(url, error="m", boost_error=False).version <= 4  # alphanumeric
    assert segno.make(url, error="m", mode="byte", boost_error=False).version == 4  # LVGL's
    longer = phone_link.url("https://survey.shop-chain.example", phone_link.make(
        b"k" * 32, 1, "x", time.time()))
    assert phone_link.fits_v4m(longer) == {"alphanumeric": True, "bytes": False}
    assert segno.make(longer, error="m", boost_error=False).version <= 4
    assert segno.make(longer, error="m", mode="byte", boost_error=False).version == 5


PHONE = {"ask": ["phone-nps"], "after": ["nps"]}


@pytest.mark.parametrize("change, says", [
    ({"ask": []}, "phone_survey.ask: list 1-3"),
    ({"ask": ["a", "b", "c", "d"]}, "phone_survey.ask: list 1-3"),
    ({"ask": ["nope"]}, "phone_survey.ask: names no question in questions: 'nope'"),
    ({"ask": ["yn"]}, "'yn' is a yesno question; the phone asks nps, csat, choice, comment"),
    ({"ask": ["phone-nps", "phone-nps"]}, "names a question twice"),
    ({"after": ["why-text"]}, "phone_survey.after: names no panel question: 'why-text'"),
    ({"to": "happy"}, "phone_survey.to: must be one of all, unhappy"),
    ({"expiry_h": 0}, "phone_survey.expiry_h"),
    ({"review": {"site": "2gis", "place": "1", "to": "unhappy"}}, "review sites forbid"),
    ({"colour": "red"}, "colour"),
])
def test_a_phone_survey_that_cannot_work_is_refused_with_where_and_why(change, says):
    from loyalty_button.service import catalogue as cat
    doc = copy.deepcopy(TEST_CATALOGUE)
    doc["questions"]["phone-nps"] = {"kind": "nps", "text": {"en": "Recommend?", "ru": "Да?"}}
    doc["questions"]["yn"] = {"kind": "yesno", "text": {"en": "Y?", "ru": "Д?"}}
    doc["questions"]["why-text"] = {"kind": "comment", "text": {"en": "Why?", "ru": "Почему?"}}
    doc["phone_survey"] = {**PHONE, **change}
    with pytest.raises(cat.CatalogueError) as e:
        cat.parse(json.dumps(doc))
    assert says in str(e.value)


def test_a_comment_is_asked_on_the_phone_only():
    from loyalty_button.service import catalogue as cat
    doc = copy.deepcopy(TEST_CATALOGUE)
    doc["questions"]["why-text"] = {"kind": "comment", "text": {"en": "Why?", "ru": "Почему?"}}
    doc["rules"].insert(0, {"name": "text", "ask": "why-text"})
    with pytest.raises(cat.CatalogueError, match="rules\\[0\\].ask: names no question"):
        cat.parse(json.dumps(doc))
    doc = copy.deepcopy(CATALOGUE)
    c = cat.parse(json.dumps(doc))
    survey = c.phone_survey()
    assert [q["kind"] for q in survey["questions"]] == ["nps", "choice", "comment"]
    assert survey["questions"][1]["options"][0]["text"] == {"en": "Yes, everything",
                                                            "ru": "Да, всё"}
    assert c.phone_after("csat") and not c.phone_after("nps")
    assert ("phone-comment", "en") not in c.questions  # never sent to a panel


def test_the_form_takes_only_what_its_page_offers_and_shows_words_as_text():
    from loyalty_button.central import phone
    survey = CATALOGUE_SURVEY()
    form = lambda **kv: {k: [v] for k, v in kv.items()}  # noqa: E731
    doc = phone.read_answers(survey, form(q0="10", q1="all", q2=" <script>x</script>\x00\r\n"),
                             "en")
    assert doc["answers"] == {"phone-nps": 10, "phone-found": "all",
                              "phone-comment": "<script>x</script>"}
    assert doc["nps"] == 10 and doc["comment"] == "<script>x</script>"
    for bad in (form(q0="11"), form(q0="-1"), form(q0="9.5"), form(q1="other")):
        with pytest.raises(ValueError):
            phone.read_answers(survey, bad, "en")
    with pytest.raises(phone.FormError, match="at least one"):
        phone.read_answers(survey, form(q2="   "), "en")
    with pytest.raises(phone.FormError, match="1000"):
        phone.read_answers(survey, form(q2="x" * 1001), "ru" if False else "en")
    # Re-shown with what the shopper typed, as text.
    page = phone.form_page(survey, "en", "/S/X", {"q2": "<b>hi</b>"}, "too long")
    assert "&lt;b&gt;hi&lt;/b&gt;" in page and "<b>hi</b>" not in page
    assert phone.pick_lang("de-DE,de;q=0.9,ru;q=0.8,en;q=0.7", ["ru", "en"], "en") == "ru"
    assert phone.pick_lang("fr", ["ru", "en"], "en") == "en"
    assert phone.pick_lang("ru", ["ru", "en"], "en", "en") == "en"
    assert phone.pick_lang("en;q=0, ru;q=0.1", ["ru", "en"], "en") == "ru"  # q=0: not wanted
    # The set-up page reads the browser's language the same way (one reader).
    from loyalty_button.appliance.setup_page import page_lang
    assert page_lang("de-DE,de;q=0.9,en-GB;q=0.8,ru;q=0.7") == "en"
    assert page_lang("fr") == "ru" and page_lang("en", "ru") == "ru"


def CATALOGUE_SURVEY() -> dict:
    from loyalty_button.service import catalogue as cat
    return cat.parse(json.dumps(CATALOGUE)).phone_survey()


def test_what_the_central_service_sends_the_store_is_checked_and_nothing_is_lost(tmp_path):
    """A reply item without seq or ref, or an answer that is not an object,
    is counted and logged and skipped; the good ones are merged."""
    from collections import Counter
    from loyalty_button.service import catalogue as cat
    from loyalty_button.service.phone import PhoneLinks
    from loyalty_button.service.records import RecordStore, open_records
    store = RecordStore(tmp_path / "r.db", ["hook"])
    at = int(time.time())
    ref = phone_link.ref_text(phone_link.receipt_ref(f"{STORE}-R1"))
    store.insert({"id": f"{STORE}-R1", "store": STORE, "till": "1", "receipt": "R1",
                  "source": "http", "sale_ts": at, "received_ms": at * 1000, "state": "closed",
                  "outcome": "not_asked", "phone_ref": ref})
    store.flush()

    class File:
        current = cat.parse(json.dumps(CATALOGUE))
    counters = Counter()
    links = PhoneLinks(tmp_path, File, store, counters)
    assert links.link(f"{STORE}-R1", at) is None and counters["phone_link_unavailable"] == 1
    links.on_reply({"grant": {"number": 7, "key": "not base64!", "base": "https://x"}})
    assert links.grant is None
    links.on_reply({"grant": {"number": 7, "key": "a2V5a2V5a2V5a2V5a2V5a2V5", "base":
                              "HTTPS://LB.EXAMPLE"},
                    "answers": [{"ref": ref}, {"seq": 3, "ref": ref, "answer": "nine"},
                                {"seq": 4, "ref": ref, "answer": {"answers": {"q": 9}}}]})
    store.flush()
    assert counters["phone_bad_item"] == 2 and counters["phone_answers"] == 1
    assert links.cursor == 4 and (tmp_path / "phone-link.json").stat().st_mode & 0o777 == 0o600
    assert open_records(tmp_path / "r.db")[0]["phone"] == {"answers": {"q": 9}}
    link = links.link(f"{STORE}-R1", at)
    assert link.startswith("HTTPS://LB.EXAMPLE/S/")
    # A restart keeps the grant and the cursor.
    again = PhoneLinks(tmp_path, File, store, Counter())
    assert again.grant == links.grant and again.cursor == 4
    assert again.link(f"{STORE}-R1", at) == link
    store.stop()


@pytest.mark.parametrize("phone, says", [
    ({"base_url": "https://lb.example.ru/survey", "secret_file": "k"}, "scheme and host only"),
    ({"base_url": "ftp://lb.example.ru", "secret_file": "k"}, "scheme and host only"),
    ({"base_url": "https://lb.example.ru"}, "phone.secret_file: give a file of 32+"),
    ({"base_url": "https://lb.example.ru", "secret_file": "short"}, "fewer than 32"),
])
def test_the_central_service_says_what_is_wrong_with_its_phone_settings(tmp_path, phone, says):
    import os
    from loyalty_button.central import config as central_config
    (tmp_path / "k").write_text("x" * 40)
    (tmp_path / "short").write_text("x" * 20)
    for name in ("k", "short"):
        os.chmod(tmp_path / name, 0o600)
    with pytest.raises(central_config.CentralConfigError) as e:
        central_config.parse({"database": "postgresql://x/y", "phone": phone}, tmp_path)
    assert says in str(e.value)
    ok = central_config.parse({"database": "postgresql://x/y", "phone": {
        "base_url": "https://lb.example.ru", "secret_file": "k"}}, tmp_path)
    assert ok.phone_secret == b"x" * 40 and ok.phone_base_url == "https://lb.example.ru"


def test_behind_a_trusted_balancer_the_shopper_s_address_is_limited_not_the_balancer_s():
    import ipaddress
    from loyalty_button.central import config as central_config
    from loyalty_button.central.phone import client_address
    lb = [ipaddress.ip_network("10.0.0.0/24")]
    assert client_address("10.0.0.5", "203.0.113.7", lb) == "203.0.113.7"
    # A client's own X-Forwarded-For comes first and is not believed.
    assert client_address("10.0.0.5", "1.2.3.4, 203.0.113.7", lb) == "203.0.113.7"
    assert client_address("10.0.0.5", "203.0.113.7, 10.0.0.9", lb) == "203.0.113.7"
    # Not from a balancer we trust: the peer's own address.
    assert client_address("198.51.100.1", "203.0.113.7", lb) == "198.51.100.1"
    assert client_address("10.0.0.5", "203.0.113.7", []) == "10.0.0.5"
    assert client_address("10.0.0.5", None, lb) == "10.0.0.5"
    with pytest.raises(central_config.CentralConfigError, match="not an address or network"):
        central_config.parse({"database": "postgresql://x/y",
                              "listen": {"trusted_proxies": ["10.0.0.0/33"]}}, Path("/"))
    cfg = central_config.parse({"database": "postgresql://x/y",
                                "listen": {"trusted_proxies": "10.0.0.0/24"}}, Path("/"))
    assert cfg.trusted_proxies == lb
