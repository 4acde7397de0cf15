"""The dashboard end to end in a real headless Chromium (Debian's chromium
and chromedriver, driven by Selenium; nothing is downloaded): log in, read a
known data set's NPS, click through a breakdown, take a screenshot."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from pathlib import Path

import pytest

from conftest import STORE, Host, page_shot
from fake_vendors import WebhookReceiver
from loyalty_button.service import dashboard, reports
from loyalty_button.sim.broker import free_port
from loyalty_button.service.records import RecordStore, memory_db, now_ms

pytestmark = pytest.mark.skipif(not shutil.which("chromedriver"),
                                reason="Debian chromium-driver is not installed (tools/bootstrap)")


# A shopper's words are text on the page, whatever they look like.
PHONE_COMMENTS = ["<img src=x onerror=alert(1)> the queue was long", "Кассир — молодец"]


def _dataset(db: Path) -> list[dict]:
    """40 answers over two tills and two cashiers, some declined."""
    store = RecordStore(db)
    recs = []
    for i in range(48):
        at = now_ms() - (i % 4) * 86_400_000 - i * 60_000
        answered = i % 6 != 5
        rec = {"id": f"{STORE}-K{i}", "store": STORE, "till": "1" if i % 3 else "2",
               "receipt": f"K{i}", "panel": "till-1" if i % 3 else "till-2",
               "loyalty_id": f"L-{i % 7}" if i % 2 else None, "cashier": f"c{i % 2}",
               "total": 10.0 + i, "source": "http", "sale_ts": at // 1000, "received_ms": at,
               "qid": "nps", "kind": "nps", "asked_ms": at, "state": "closed",
               "outcome": "answered" if answered else "declined",
               "value": [10, 9, 8, 3, 6, 10, 7][i % 7] if answered else None,
               "reasons": ["queue"] if answered and i % 7 == 3 else None, "closed_ms": at}
        if i < 3:  # a phone survey link; two shoppers answered on their phone
            rec["phone_ref"] = f"{i:016x}"
            if i < 2:
                rec["phone"] = {"response": f"AAAA-BBB{i}", "at_ms": at + 60_000, "lang": "en",
                                "answers": {"phone-nps": 9 - 6 * i}, "nps": 9 - 6 * i,
                                "comment": PHONE_COMMENTS[i]}
        store.insert(rec)
        recs.append(rec)
    store.stop()
    return recs


def test_log_in_see_the_nps_click_a_breakdown_and_take_a_screenshot(tmp_path, broker, browser):
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
    root = tmp_path / "host"
    root.mkdir()
    recs = _dataset(root / "records.db")
    dashboard.add_user(root / "users", "manager", "correct horse")
    port = free_port()
    hook = WebhookReceiver(b"hook-secret-0123456789").start()
    h = Host(root, broker, dashboard={"port": port, "bind": "127.0.0.1", "users_file": "users"},
             forwarding={"pseudonym_key": "pseudonym-key-0123456789", "destinations": [
                 {"name": "crm", "type": "webhook", "url": hook.url + "/hook",
                  "secret": "hook-secret-0123456789"}]}).start()
    # A record the CRM once refused for good: a dead letter to re-send.
    import sqlite3
    with sqlite3.connect(root / "records.db") as conn:
        conn.execute("INSERT INTO outbox (dest, record_id, state, attempts, next_ms, queued_ms, "
                     "last_error) VALUES ('crm', ?, 'dead', 1, 0, 0, 'webhook: HTTP 422')",
                     (f"{STORE}-K1",))
    # What a CYD panel's status told the concentrator (the fleet table).
    h.thread.call(lambda: h.host.fleet.info.update({"till-1": {
        "state": "online", "fw": "0.4.0", "board": "cyd", "outbox": 0,
        "adverts": {"ready": 1, "planned": 2, "bad": ["autumn"]},
        "ota": {"slot": "ota_a", "mode": "normal", "state": "rolled_back", "version": "0.5.0",
                "reason": "RuntimeError: boom"}}}))
    try:
        base = f"http://127.0.0.1:{port}"
        # Without a session: the page sends you to log in, the API says 401.
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(base + "/api/summary")
        assert e.value.code == 401
        # Every wait outlasts a page reload: an element read while the old
        # page goes away raises (Chromium: "Node ... does not belong to the
        # document", or a stale element reference; each seen once in a
        # clean-clone run); keep waiting.
        wait = WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,))
        browser.get(base + "/")
        assert browser.current_url.endswith("/login")
        browser.find_element(By.ID, "user").send_keys("manager")
        browser.find_element(By.ID, "password").send_keys("wrong password")
        browser.find_element(By.ID, "submit").click()
        wait.until(ec.text_to_be_present_in_element((By.CLASS_NAME, "error"), "Wrong"))
        browser.find_element(By.ID, "user").send_keys("manager")
        browser.find_element(By.ID, "password").send_keys("correct horse")
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        fleet = {r.find_elements(By.TAG_NAME, "td")[0].text:
                 [td.text for td in r.find_elements(By.TAG_NAME, "td")]
                 for r in browser.find_elements(By.CSS_SELECTOR, "#fleet tbody tr")}
        assert fleet["till-1"][2:6] == ["0.4.0", "ota_a, rolled back (0.5.0): RuntimeError: boom",
                                        "cyd", "1 of 2; refused: autumn"]
        assert fleet["till-2"][1] == "never connected"
        want = reports.summary(memory_db(recs))["nps"]
        sign = lambda v: f"{'+' if v > 0 else ''}{v:.1f}"  # noqa: E731
        assert browser.find_element(By.ID, "nps").text == sign(want["nps"])
        assert f"95% interval {sign(want['ci95_low'])} to {sign(want['ci95_high'])}" in \
            browser.find_element(By.ID, "nps-ci").text
        assert f"{want['n']} answers" in browser.find_element(By.ID, "nps-ci").text
        # Click through to the cashier breakdown.
        browser.find_element(By.ID, "tab-cashier").click()
        wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "#breakdown thead"),
                                                    "cashier"))
        rows = browser.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr")
        got = {r.find_elements(By.TAG_NAME, "td")[0].text:
               r.find_elements(By.TAG_NAME, "td")[2].text for r in rows}
        expected = {r["cashier"]: sign(r["nps"]) for r in reports.breakdown(memory_db(recs), "cashier")}
        assert got == expected
        # The trend chart drew one point per day with answers.
        points = browser.find_elements(By.CSS_SELECTOR, "#trend circle")
        # (A day may hold declines only, e.g. just after midnight: no point.)
        assert len(points) == len([r for r in reports.breakdown(memory_db(recs), "day", h.cfg.tz)
                                   if r["n"]])
        # The phone survey: answers of links, the phone's NPS, the comments
        # as text (no element made of a shopper's words).
        assert browser.find_element(By.ID, "phone-figs").text == \
            "2 answers from 3 links (66.7%) · phone NPS 0.0*"
        said = [p.text for p in browser.find_elements(
            By.CSS_SELECTOR, "#phone-comments .comment p:first-child")]
        assert said == PHONE_COMMENTS
        assert not browser.find_elements(By.CSS_SELECTOR, "#phone-comments img")
        assert browser.save_screenshot(str(tmp_path / "dashboard.png"))
        assert (tmp_path / "dashboard.png").stat().st_size > 10_000
        # The breakdown's CSV export, with the browser's session cookie.
        cookie = browser.get_cookie(dashboard.COOKIE)["value"]
        req = urllib.request.Request(base + "/export/breakdown.csv?by=cashier",
                                     headers={"Cookie": f"{dashboard.COOKIE}={cookie}"})
        text = urllib.request.urlopen(req).read().decode()
        assert text.splitlines()[0].startswith("cashier,n,nps")
        status = json.loads(urllib.request.urlopen(urllib.request.Request(
            base + "/api/status", headers={"Cookie": f"{dashboard.COOKIE}={cookie}"})).read())
        assert [d["record_id"] for d in status["dead"]] == [f"{STORE}-K1"]
        # The page's reports ran in the report thread, each computed once.
        assert status["reports"]["report_runs"] >= 3 and status["reports"]["report_interrupted"] == 0
        # The dead letter is on the page; Re-send delivers it.
        assert f"{STORE}-K1" in browser.find_element(By.ID, "dead").text
        browser.find_element(By.CSS_SELECTOR, "#forwarding button").click()
        wait.until(lambda d: f"{STORE}-K1" in hook.entries)
        wait.until(lambda d: f"{STORE}-K1" not in d.find_element(By.ID, "dead").text)
        assert hook.entries[f"{STORE}-K1"]["value"] == recs[1]["value"]
        # The store backup's form: two different passphrases are caught in
        # the page; a wrong password comes back from the host, worded.
        fill = {"backup-passphrase": "long walk to the till",
                "backup-passphrase2": "another walk entirely", "backup-password": "correct horse"}
        for name, value in fill.items():
            browser.find_element(By.ID, name).send_keys(value)
        browser.find_element(By.ID, "backup-make").click()
        assert browser.find_element(By.ID, "backup-error").text == "The two passphrases differ."
        fill.update({"backup-passphrase2": fill["backup-passphrase"],
                     "backup-password": "not my password"})
        for name, value in fill.items():
            browser.find_element(By.ID, name).clear()
            browser.find_element(By.ID, name).send_keys(value)
        browser.find_element(By.ID, "backup-make").click()
        wait.until(ec.text_to_be_present_in_element((By.ID, "backup-error"),
                                                    "not your dashboard password"))
    finally:
        h.stop()
        hook.stop()


def test_users_file_and_sessions(tmp_path):
    users = tmp_path / "users"
    dashboard.add_user(users, "ann", "long enough")
    stored = dashboard.read_users(users)["ann"]
    assert stored.startswith("scrypt$") and "long enough" not in users.read_text()
    assert dashboard.check_password(stored, "long enough")
    assert not dashboard.check_password(stored, "long enougH")
    with pytest.raises(ValueError):
        dashboard.add_user(users, "bob", "short")
    # A name is one line: one with a newline would write a second user of its
    # own choosing (here "root", with ann's password hash).
    before = users.read_bytes()
    for name in (f"eve\nroot:{stored}", "eve\r", "eve\x00", " ann", "e" * 65):
        with pytest.raises(ValueError):
            dashboard.add_user(users, name, "long enough")
    assert users.read_bytes() == before and list(dashboard.read_users(users)) == ["ann"]
    s = dashboard.Sessions(1)
    token = s.make("ann")
    assert s.user(token) == "ann"
    assert s.user(token[:-2] + "xx") is None and s.user("garbage") is None
    assert dashboard.Sessions(1).user(token) is None  # another start knows no one
    assert (users.stat().st_mode & 0o777) == 0o600


def _problems(browser) -> dict[str, str]:
    from selenium.webdriver.common.by import By
    if browser.find_element(By.ID, "health").get_attribute("hidden") is not None:
        return {}
    return {li.get_attribute("data-code"): li.text
            for li in browser.find_elements(By.CSS_SELECTOR, "#problems li")}


def test_a_manager_sees_what_is_broken_in_either_language_on_a_desktop_and_a_phone(
        tmp_path, broker, browser):
    """Every failure the health banner knows, from a real host: a CRM that
    receives nothing (records waiting 30 min, a dead letter), panels never
    connected, receipts whose panel was offline, a refused catalogue edit,
    and then the host itself gone. In English and Russian, at 1366x768 and
    390x844 (no sideways scrolling of the page; tables scroll in their box;
    every action reachable); a till with 5 answers is "too few". The
    screenshots go to LB_SCREENSHOT_DIR (docs/images when the docs are
    made)."""
    import sqlite3
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
    from conftest import TEST_CATALOGUE, receipt_doc
    root = tmp_path / "host"
    root.mkdir()
    recs = _dataset(root / "records.db")
    store = RecordStore(root / "records.db")
    # A third till with too few answers to colour; a yes/no question with
    # 14 answers and a choice question with 4 (too few).
    answers = ([("nps", "nps", 2)] * 5 + [("found", "yesno", "yes")] * 12
               + [("found", "yesno", "no")] * 2 + [("visit", "choice", "bread")] * 3
               + [("visit", "choice", "milk")])
    for i, (qid, kind, value) in enumerate(answers):
        at = now_ms() - i * 60_000
        till = "1" if value == "no" else "3"  # the two "no"s at till 1
        store.insert({"id": f"{STORE}-T{i}", "store": STORE, "till": till, "receipt": f"T{i}",
                      "panel": "till-3", "source": "http", "sale_ts": at // 1000,
                      "received_ms": at, "qid": qid, "kind": kind, "asked_ms": at,
                      "state": "closed", "outcome": "answered", "value": value,
                      "closed_ms": at})
    store.stop()
    catalogue = dict(TEST_CATALOGUE, questions=dict(
        TEST_CATALOGUE["questions"],
        found={"kind": "yesno", "text": {"en": "Did you find everything?",
                                         "ru": "Вы нашли всё, что искали?"}},
        visit={"kind": "choice", "text": {"en": "Why today?", "ru": "Почему сегодня?"},
               "options": {"bread": {"en": "Bread", "ru": "Хлеб"},
                           "milk": {"en": "Milk", "ru": "Молоко"}}}))
    dashboard.add_user(root / "users", "manager", "correct horse")
    port = free_port()
    # The CRM's address answers nothing: records wait, the error says why.
    crm = f"http://127.0.0.1:{free_port()}/hook"
    h = Host(root, broker, catalogue,
             dashboard={"port": port, "bind": "127.0.0.1", "users_file": "users"},
             forwarding={"pseudonym_key": "pseudonym-key-0123456789", "destinations": [
                 {"name": "crm", "type": "webhook", "url": crm,
                  "secret": "hook-secret-0123456789"}]})
    long_ago = now_ms() - 30 * 60_000
    with sqlite3.connect(root / "records.db") as conn:
        for i, rec in enumerate(recs[:12]):
            conn.execute("INSERT INTO outbox (dest, record_id, state, attempts, next_ms, "
                         "queued_ms, last_error) VALUES ('crm', ?, ?, 1, 0, ?, ?)",
                         (rec["id"], "dead" if i == 0 else "pending", long_ago,
                          "webhook: HTTP 422" if i == 0 else None))
    h.start()
    shots = Path(os.environ.get("LB_SCREENSHOT_DIR", tmp_path / "shots"))
    try:
        # Receipts at till 2, whose panel never connected: never asked.
        for n in range(12):
            h.pos.send_http(receipt_doc("2", f"R{n}"))
        h.wait_counter("outcome_panel_offline", 12)
        # A catalogue edit with a key the host does not know: refused.
        bad = dict(catalogue, colour="blue")
        h.write_catalogue(bad)
        h.wait(lambda: h.thread.status()["catalogue"]["error"], "the catalogue refused")
        base = f"http://127.0.0.1:{port}"
        wait = WebDriverWait(browser, 20, ignored_exceptions=(WebDriverException,))
        browser.set_window_size(1366, 768)
        browser.get(base + "/login")
        browser.execute_script("localStorage.setItem('lb-lang', 'en')")
        browser.get(base + "/login")
        browser.find_element(By.ID, "user").send_keys("manager")
        browser.find_element(By.ID, "password").send_keys("correct horse")
        browser.find_element(By.ID, "submit").click()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        wait.until(lambda d: "destination_stuck" in _problems(d))
        got = _problems(browser)
        assert set(got) >= {"catalogue_refused", "destination_dead", "destination_stuck",
                            "panel_never_connected", "receipts_not_asked"}, got
        assert "colour: unknown setting" in got["catalogue_refused"]
        assert "Fix the file" in got["catalogue_refused"]
        # 11 waiting from before, and the 12 new receipts' records.
        assert "crm has received nothing for 30 min: 23 record(s) waiting" in \
            got["destination_stuck"] and "Connection refused" in got["destination_stuck"]
        assert "Re-send dead letters" in got["destination_dead"]
        assert "100% of receipts (12 of 12)" in got["receipts_not_asked"]
        assert "Not asked because the panel was offline: 12 of 12" in \
            browser.find_element(By.ID, "rate-offline").text
        # Small samples: the till with 5 answers is said to be too few, not coloured.
        rows = {r.find_elements(By.TAG_NAME, "td")[0].text: r
                for r in browser.find_elements(By.CSS_SELECTOR, "#breakdown tbody tr")}
        assert "too few answers" in rows["3"].text
        assert rows["3"].get_attribute("class") == "few"
        assert rows["1"].get_attribute("class") != "few"
        assert browser.find_elements(By.CSS_SELECTOR, "#weekhours td")
        # Yes/no and choice results, by the catalogue's names.
        box = browser.find_element(By.ID, "answers")
        assert "Did you find everything? 14 answers" in box.text
        assert "Why today? 4 answers · too few answers" in box.text
        rows = {r.get_attribute("data-value"): r
                for r in box.find_elements(By.CSS_SELECTOR, ".answer")}
        assert rows["yes"].text.split("\n")[0] == "Yes"
        assert "12 · 85.7% (95%: 60.1–96%)" in rows["yes"].text
        assert "Bread" in rows["bread"].text and "few" in rows["bread"].get_attribute("class")
        # Per till: till 3 said yes 12 times of 12, till 1 no twice (too few).
        tills = {r.find_elements(By.TAG_NAME, "td")[0].text: r.text
                 for r in box.find_elements(By.CSS_SELECTOR, "table.by-till tbody tr")}
        assert tills["3"].startswith("3 12 100% (75.8–100)") and "too few" in tills["1"]
        page_shot(browser, shots / "dashboard-en-desktop.png", 1366, 768)
        # A date range with the period before it.
        from selenium.webdriver.support.ui import Select
        Select(browser.find_element(By.ID, "range")).select_by_value("7d")
        wait.until(lambda d: "compared with" in d.find_element(By.ID, "range-note").text)
        # The till breakdown and the trend follow the period; the cashier's is all time.
        wait.until(lambda d: d.find_element(By.ID, "breakdown-note").text
                   == "In the period picked above.")
        assert "range=7d" in browser.find_element(By.ID, "breakdown-csv").get_attribute("href")
        browser.find_element(By.ID, "tab-cashier").click()
        wait.until(lambda d: d.find_element(By.ID, "breakdown-note").text == "All time.")
        browser.find_element(By.ID, "tab-till").click()
        # Russian, from the page's switch (kept for the next visit).
        browser.find_element(By.CSS_SELECTOR, "#langs button[data-lang='ru']").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, "section h2").text == "Доля ответов"
                   or "Панели" in d.find_element(By.TAG_NAME, "main").text)
        wait.until(lambda d: "Исправьте файл" in _problems(d).get("catalogue_refused", ""))
        got = _problems(browser)
        assert "ни разу не подключалась" in got["panel_never_connected"]
        assert "ничего не получает 30 мин" in got["destination_stuck"]
        assert browser.find_element(By.ID, "tab-till").text == "касса"
        assert "Часы недели" in browser.find_element(By.TAG_NAME, "main").text
        # Question and reason names from the catalogue, in the language.
        browser.find_element(By.ID, "tab-question").click()
        wait.until(lambda d: "Порекомендуете нас?" in d.find_element(By.ID, "breakdown").text)
        assert "Очередь" in browser.find_element(By.ID, "reasons").text
        assert "Хлеб" in browser.find_element(By.ID, "answers").text
        page_shot(browser, shots / "dashboard-ru-desktop.png", 1366, 768)
        # The phone: nothing wider than the screen, tables scroll in their box.
        browser.refresh()
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"))
        assert browser.find_element(By.ID, "tab-till").text == "касса"  # the choice was kept
        browser.set_window_size(390, 844)
        width = browser.execute_script("return window.innerWidth")
        wait.until(lambda d: d.execute_script(
            "return document.documentElement.scrollWidth") <= d.execute_script(
            "return window.innerWidth"))
        fleet_box = browser.find_element(By.CSS_SELECTOR, "#fleet").find_element(By.XPATH, "..")
        assert browser.execute_script("return arguments[0].scrollWidth > arguments[0].clientWidth",
                                      fleet_box)
        cards = browser.find_elements(By.CSS_SELECTOR, ".card")
        assert all(c.size["width"] <= width for c in cards)
        assert len({c.location["y"] for c in cards}) == 3  # one above the other
        # Every action can be reached and used: the language switch, the
        # tabs, the range, re-sending the dead letter.
        resend = browser.find_element(By.CSS_SELECTOR, "#forwarding button")
        browser.execute_script("arguments[0].scrollIntoView()", resend)
        resend.click()
        wait.until(lambda d: f"{STORE}-K0" not in d.find_element(By.ID, "dead").text)
        page_shot(browser, shots / "dashboard-ru-phone.png", 390, 844)
        browser.find_element(By.CSS_SELECTOR, "#langs button[data-lang='en']").click()
        wait.until(lambda d: d.find_element(By.ID, "tab-till").text == "till")
        page_shot(browser, shots / "dashboard-en-phone.png", 390, 844)
        # The host goes away: its numbers stay, a banner says since when.
        browser.set_window_size(1366, 768)
        wait.until(lambda d: d.execute_script(  # redrawn at the desktop's width
            "return document.getElementById('trend').viewBox.baseVal.width") > 1000)
        h.stop()
        h = None
        wait.until(lambda d: "host_unreachable" in _problems(d))
        assert "The store host is not answering since" in _problems(browser)["host_unreachable"]
        assert browser.find_element(By.ID, "nps").text not in ("", "–")
        page_shot(browser, shots / "dashboard-en-host-unreachable.png", 1366, 768)
    finally:
        if h is not None:
            h.stop()


def test_list_and_remove_users_and_a_removed_user_is_logged_out(tmp_path, capsys):
    from loyalty_button import cli
    users = tmp_path / "users"
    dashboard.add_user(users, "ann", "long enough")
    dashboard.add_user(users, "bob", "long enough too")
    assert cli.main(["dashboard", "list-users", "--users", str(users)]) == 0
    assert capsys.readouterr().out.split() == ["ann", "bob"]
    assert cli.main(["dashboard", "remove-user", "carl", "--users", str(users)]) == 2
    assert "no user 'carl'" in capsys.readouterr().err
    # bob logged in, then removed: his next request is refused.
    import asyncio
    from aiohttp.test_utils import TestClient, TestServer
    from loyalty_button.service import config as host_config
    (tmp_path / "c.yaml").write_text(
        f"store: s1\ncatalogue: cat.yaml\ndatabase: {tmp_path / 'r.db'}\n"
        f"dashboard: {{port: 1, users_file: {users}}}\n")
    cfg = host_config.load(tmp_path / "c.yaml")

    async def run():
        client = TestClient(TestServer(dashboard.make_app(cfg)))
        await client.start_server()
        try:
            r = await client.post("/login", data={"user": "bob", "password": "long enough too"},
                                  allow_redirects=False)
            assert r.status == 302
            assert (await client.get("/api/status")).status == 200
            assert cli.main(["dashboard", "remove-user", "bob", "--users", str(users)]) == 0
            assert (await client.get("/api/status")).status == 401
        finally:
            await client.close()
    asyncio.run(run())
    assert dashboard.read_users(users).keys() == {"ann"}


def test_health_problems_from_a_status():
    """The banner's rules, one by one: nothing wrong says nothing."""
    from loyalty_button.service import health
    now = 10_000_000
    ok = {"broker": "up", "catalogue": {"error": None}, "tills": {"1": "till-1"},
          "panels": {"till-1": "online"}, "fleet": {},
          "forwarding": {"crm": {"pending": 3, "dead": 0, "oldest_pending_ms": now - 60_000}},
          "counters": {"receipts": 100, "outcome_panel_offline": 4}}
    assert health.problems(ok, now) == []
    bad = dict(ok, broker="down", catalogue={"error": "rules[0].ask: no question 'x'",
                                             "warnings": ["questions.nps.text (ru): needs 4 "
                                                          "lines on the cyd screen, 2 fit"]},
               tills={"1": "till-1", "2": "till-2", "3": "till-3"},
               panels={"till-1": "online", "till-2": "offline"},
               forwarding={"crm": {"pending": 52, "dead": 2, "last_error": "HTTP 500",
                                   "oldest_pending_ms": now - 11 * 60_000}},
               counters={"receipts": 100, "outcome_panel_offline": 20})
    got = {p["code"]: p for p in health.problems(bad, now)}
    assert got["catalogue_texts_cut"]["params"]["n"] == 1
    assert set(got) == {"broker_down", "catalogue_refused", "catalogue_texts_cut",
                        "destination_dead",
                        "destination_stuck", "panel_offline", "panel_never_connected",
                        "receipts_not_asked"}
    assert got["destination_stuck"]["params"] == {"dest": "crm", "pending": 52, "minutes": 11,
                                                  "error": "HTTP 500"}
    assert got["panel_offline"]["params"]["till"] == "2"
    assert got["panel_never_connected"]["params"]["panel"] == "till-3"
    assert got["receipts_not_asked"]["params"]["pct"] == 20
    # Errors before warnings.
    order = [p["severity"] for p in health.problems(bad, now)]
    assert order == sorted(order, key=lambda s: s != "error")


def test_the_catalogue_names_its_questions_options_and_reasons():
    from conftest import TEST_CATALOGUE
    import yaml
    from loyalty_button.service import catalogue
    doc = dict(TEST_CATALOGUE, questions=dict(TEST_CATALOGUE["questions"], visit={
        "kind": "choice", "text": {"en": "Why today?", "ru": "Почему сегодня?"},
        "options": {"bread": {"en": "Bread", "ru": "Хлеб"}, "milk": {"en": "Milk", "ru": "Молоко"}}}))
    names = catalogue.parse(yaml.safe_dump(doc, allow_unicode=True)).names()
    assert names["questions"]["nps"] == {"en": "Would you recommend us?", "ru": "Порекомендуете нас?"}
    assert names["reasons"]["queue"]["ru"] == "Очередь"
    assert names["options"]["visit:milk"] == {"en": "Milk", "ru": "Молоко"}
