"""The dashboard's HTTP rules on the real aiohttp server (no browser):
logging out ends the session, a state change needs JSON from our own
origin, and the CSV export cannot carry a spreadsheet formula."""

from __future__ import annotations

import asyncio
import json
import csv
import io
import threading

import pytest

from conftest import STORE, http_call
from loyalty_button.service import dashboard
from loyalty_button.service.config import parse
from loyalty_button.service.records import RecordStore, now_ms
from loyalty_button.sim.broker import free_port


@pytest.fixture
def site(tmp_path):
    dashboard.add_user(tmp_path / "users", "manager", "correct horse")
    store = RecordStore(tmp_path / "r.db")
    at = now_ms()
    for i, cashier in enumerate(["=HYPERLINK(\"http://evil/\",\"x\")", "+1+2", "@SUM(A1)",
                                 "-2+3", "\tTab", "Ann"]):
        store.insert({"id": f"{STORE}-E{i}", "store": STORE, "till": "1", "receipt": f"E{i}",
                      "panel": "till-1", "cashier": cashier, "total": -5.5, "source": "http",
                      "sale_ts": at // 1000, "received_ms": at, "qid": "nps", "kind": "nps",
                      "asked_ms": at, "state": "closed", "outcome": "answered", "value": 9,
                      "closed_ms": at})
    store.stop()
    port = free_port()
    cfg = parse({"store": STORE, "catalogue": "c.yaml", "database": "r.db",
                 "dashboard": {"port": port, "bind": "127.0.0.1", "users_file": "users"}},
                tmp_path)
    loop = asyncio.new_event_loop()
    runner = loop.run_until_complete(dashboard.start(cfg, lambda: {}))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    yield port
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def _log_in(port) -> str:
    status, headers, _ = http_call(port, "POST", "/login", "user=manager&password=correct horse",
                               {"Content-Type": "application/x-www-form-urlencoded"})
    assert status == 302
    return headers["Set-Cookie"].split(";")[0]  # lb_session=<token>


def test_logging_out_ends_the_session_for_every_copy_of_the_cookie(site):
    cookie = _log_in(site)
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": cookie})[0] == 200
    assert http_call(site, "GET", "/logout", headers={"Cookie": cookie})[0] == 302
    # a copy of the cookie (another tab, a stolen one) is dead too
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": cookie})[0] == 401


def test_resend_needs_json_from_our_own_origin(site):
    cookie = _log_in(site)
    own = f"http://127.0.0.1:{site}"
    body = b'{"dest": "crm"}'
    form = http_call(site, "POST", "/api/resend", b"dest=crm",
                 {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    assert form[0] == 415
    foreign = http_call(site, "POST", "/api/resend", body,
                    {"Cookie": cookie, "Content-Type": "application/json",
                     "Origin": "http://evil.example"})
    assert foreign[0] == 403
    assert http_call(site, "POST", "/api/resend", b"[1",
                 {"Cookie": cookie, "Content-Type": "application/json"})[0] == 400
    ok = http_call(site, "POST", "/api/resend", body,
               {"Cookie": cookie, "Content-Type": "application/json", "Origin": own})
    assert ok[0] == 200 and b'"resent": 0' in ok[2]


def test_the_records_export_neutralises_formula_cells_and_keeps_numbers(site):
    cookie = _log_in(site)
    status, _, body = http_call(site, "GET", "/export/records.csv", headers={"Cookie": cookie})
    assert status == 200
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    cashiers = sorted(r["cashier"] for r in rows)
    assert cashiers == sorted(["'=HYPERLINK(\"http://evil/\",\"x\")", "'+1+2", "'@SUM(A1)",
                               "'-2+3", "'\tTab", "Ann"])
    assert {r["total"] for r in rows} == {"-5.5"}  # a number stays a number


def test_parallel_password_guesses_are_throttled_before_the_password_check(site):
    # 40 guesses at once from one address: the gate counts each attempt
    # before scrypt runs, so at most 10 are checked and the rest get 429.
    from concurrent.futures import ThreadPoolExecutor

    def log_in(password):
        return http_call(site, "POST", "/login", f"user=manager&password={password}",
                     {"Content-Type": "application/x-www-form-urlencoded"})[0]
    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(log_in, [f"guess-{i}" for i in range(40)]))
    assert codes.count(302) <= 10 and codes.count(429) >= 30, codes
    assert log_in("correct horse") == 429  # the address waits its minute


def test_periods_cut_the_summary_and_the_hourly_breakdowns_and_bad_ones_are_refused(site):
    """The site's six answers are from now: in today, not in yesterday (whose
    previous day is the one before); a cashier breakdown is all time
    whatever the range; a bad range is a 400 that says what is wrong."""
    cookie = {"Cookie": _log_in(site)}

    def get(path):
        status, _, body = http_call(site, "GET", path, headers=cookie)
        return status, (json.loads(body) if status == 200 else body.decode())
    status, today = get("/api/summary?range=today")
    assert status == 200 and today["nps"]["n"] == 6 and today["previous"]["nps"]["n"] == 0
    assert today["range"]["period"][1] - today["range"]["period"][0] == 86400
    assert get("/api/summary?range=yesterday")[1]["nps"]["n"] == 0
    assert get("/api/summary")[1]["previous"] is None
    till = get("/api/breakdown?by=till&range=yesterday")[1]["rows"]
    assert till == []
    cashiers = get("/api/breakdown?by=cashier&range=yesterday")[1]["rows"]
    assert len(cashiers) == 6  # all time: the range does not apply
    assert get("/api/answers")[1] == {}
    status, text = get("/api/summary?range=custom&from=2026-12-05&to=2026-12-01")
    assert status == 400 and "ends (2026-12-01) before it starts (2026-12-05)" in text
    assert get("/api/summary?range=fortnight")[0] == 400
    status, _, body = http_call(site, "GET", "/export/breakdown.csv?by=till&range=today",
                            headers=cookie)
    assert status == 200 and body.decode().splitlines()[1].startswith("1,6,")


def test_a_session_ends_when_its_password_changes_or_the_user_is_made_again(site, tmp_path):
    """A manager's password changed (the old one leaked) or the user removed
    and added again: a session opened with the old password is over."""
    users = tmp_path / "users"
    cookie = _log_in(site)
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": cookie})[0] == 200
    dashboard.add_user(users, "manager", "a new password 1")
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": cookie})[0] == 401
    dashboard.add_user(users, "manager", "correct horse")  # the old one back, hashed anew
    cookie = _log_in(site)
    dashboard.remove_user(users, "manager")
    dashboard.add_user(users, "manager", "correct horse")
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": cookie})[0] == 401
    # Logged in again, it works: only the old sessions ended.
    assert http_call(site, "GET", "/api/summary", headers={"Cookie": _log_in(site)})[0] == 200


def test_one_name_guessed_from_many_addresses_is_throttled_and_a_wrong_name_costs_a_check(
        site, monkeypatch):
    """Guesses at the manager's password spread over many LAN addresses meet
    a limit per name; a name that does not exist is checked like one that
    does (its answer's time says nothing about which names exist)."""
    checked = []
    real = dashboard.check_password
    monkeypatch.setattr(dashboard, "check_password",
                        lambda stored, password: checked.append(stored) or real(stored, password))

    def guess(source: str, user: str = "manager") -> int:
        return http_call(site, "POST", "/login", f"user={user}&password=guess",
                         {"Content-Type": "application/x-www-form-urlencoded"},
                         source=source)[0]
    assert guess("127.0.0.1", "nobody") == 302 and len(checked) == 1
    codes = [guess(f"127.0.0.{i}") for i in range(10, 45)]
    assert codes[:30] == [302] * 30 and set(codes[30:]) == {429}, codes
    assert guess("127.0.0.99", "deputy") == 302  # another name is not held up


def test_pages_forbid_framing_and_foreign_scripts_and_records_are_not_cached(site):
    cookie = _log_in(site)
    for path in ("/", "/login", "/export/records.csv", "/api/summary"):
        status, headers, _ = http_call(site, "GET", path, headers={"Cookie": cookie})
        assert status == 200, path
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
        assert "unsafe-inline" not in csp
        assert headers["X-Frame-Options"] == "DENY" and headers["X-Content-Type-Options"] == \
            "nosniff"
    for path in ("/export/records.csv", "/api/summary", "/"):
        assert http_call(site, "GET", path, headers={"Cookie": cookie})[1]["Cache-Control"] == \
            "no-store"
    # The log-in page has no inline script for the policy to block.
    assert b"<script>" not in http_call(site, "GET", "/login")[2]
