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

from conftest import STORE, Host
from fake_vendors import WebhookReceiver
from loyalty_button.service import dashboard, reports
from loyalty_button.sim.broker import free_port
from loyalty_button.service.records import RecordStore, memory_db, now_ms

pytestmark = pytest.mark.skipif(not shutil.which("chromedriver"),
                                reason="Debian chromium-driver is not installed (tools/bootstrap)")


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
        store.insert(rec)
        recs.append(rec)
    store.stop()
    return recs


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
        assert f"95% CI {sign(want['ci95_low'])} to {sign(want['ci95_high'])}" in \
            browser.find_element(By.ID, "nps-ci").text
        assert f"n {want['n']}" in browser.find_element(By.ID, "nps-ci").text
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
        out = Path(os.environ.get("LB_SCREENSHOT_DIR", tmp_path))
        out.mkdir(parents=True, exist_ok=True)
        assert browser.save_screenshot(str(out / "dashboard.png"))
        assert (out / "dashboard.png").stat().st_size > 10_000
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
    s = dashboard.Sessions(1)
    token = s.make("ann")
    assert s.user(token) == "ann"
    assert s.user(token[:-2] + "xx") is None and s.user("garbage") is None
    assert dashboard.Sessions(1).user(token) is None  # another start knows no one
    assert (users.stat().st_mode & 0o777) == 0o600
