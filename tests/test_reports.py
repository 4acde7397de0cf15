"""Reports: NPS with its adjusted-Wald interval (the CLI contract used by
acceptance checks), CSAT, response rate, reasons, breakdowns, CSV."""

from __future__ import annotations

import csv
import json
import math
import random
import sqlite3
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from loyalty_button.forward import alerts
from loyalty_button.service import reports, rollup
from loyalty_button.service.records import RecordStore, memory_db, now_ms


def cli(*args):
    return subprocess.run([sys.executable, "-m", "loyalty_button.cli", *args],
                          capture_output=True, text=True)


def test_report_nps_from_csv_prints_the_contract(tmp_path):
    rows = ["id,score,till"] + [f"{i},{s},1" for i, s in enumerate(
        [10, 10, 9, 9, 9, 8, 7, 6, 3, 0, "", ""])]
    path = tmp_path / "scores.csv"
    path.write_text("\n".join(rows) + "\n")
    out = cli("report", "nps", "--csv", str(path), "--json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert {k: got[k] for k in ("n", "declined", "promoters", "passives", "detractors")} == \
        {"n": 10, "declined": 2, "promoters": 5, "passives": 2, "detractors": 3}
    assert got["nps"] == 20.0
    # Adjusted Wald by hand: n+3, promoters and detractors + 3/4 each.
    p, d = 5.75 / 13, 3.75 / 13
    half = 1.959964 * math.sqrt((p + d - (p - d) ** 2) / 13)
    assert got["ci95_low"] == round(100 * (p - d - half), 1)
    assert got["ci95_high"] == round(100 * (p - d + half), 1)
    assert got["ci95_low"] < got["nps"] < got["ci95_high"]


def test_report_nps_bad_rows_are_listed_with_line_numbers_and_exit_2(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("score\n10\n11\nabc\n-1\n7.5\n\n5\n")
    out = cli("report", "nps", "--csv", str(path), "--json")
    assert out.returncode == 2 and out.stdout == ""
    for line, what in ((3, "11"), (4, "'abc'"), (5, "-1"), (6, "'7.5'")):
        assert f"line {line}: score {what}" in out.stderr, out.stderr
    path.write_text("rating\n5\n")
    out = cli("report", "nps", "--csv", str(path), "--json")
    assert out.returncode == 2 and "no 'score' column" in out.stderr
    out = cli("report", "nps", "--csv", str(tmp_path / "missing.csv"), "--json")
    assert out.returncode == 2 and "missing.csv" in out.stderr


def test_nps_edges():
    empty = reports.nps([], declined=3)
    assert empty["n"] == 0 and empty["nps"] is None and empty["declined"] == 3
    all_pro = reports.nps([10] * 50)
    assert all_pro["nps"] == 100.0 and all_pro["ci95_high"] == 100.0 and all_pro["ci95_low"] < 100
    one = reports.nps([0])
    assert one["nps"] == -100.0 and -100 <= one["ci95_low"] < -90 and one["ci95_high"] > 0


def _rec(i, value, kind="nps", outcome="answered", lid=None, till="1", at=None, **over):
    at = at or now_ms()
    return {"id": f"s1-{i}", "store": "s1", "till": till, "receipt": str(i), "panel": "p",
            "loyalty_id": lid, "total": 10.0 * (i % 4 + 1), "source": "http",
            "sale_ts": at // 1000, "received_ms": at, "qid": kind, "kind": kind,
            "asked_ms": at, "state": "closed", "outcome": outcome,
            "value": value if outcome == "answered" else None, **over}


def test_summary_breakdowns_and_trend_from_a_store_database(tmp_path):
    tz = ZoneInfo("Europe/Moscow")
    day1 = int(datetime(2026, 11, 20, 9, 30, tzinfo=tz).timestamp() * 1000)
    day2 = int(datetime(2026, 11, 21, 18, 5, tzinfo=tz).timestamp() * 1000)
    recs = [_rec(1, 10, lid="A", at=day1, reasons=["staff"], advert="ad-1"),
            _rec(2, 9, lid="A", at=day1, advert="ad-1"),
            _rec(3, 2, till="2", at=day2, reasons=["queue"], advert="ad-2"),
            _rec(4, None, outcome="declined", till="2", at=day2),
            _rec(5, None, outcome="timeout", at=day2),
            _rec(6, 5, kind="csat", at=day2), _rec(7, 3, kind="csat", at=day2),
            _rec(8, None, outcome="not_asked", at=day2)]
    store = RecordStore(tmp_path / "r.db")
    for r in recs:
        store.insert(r)
    store.stop()
    s = json.loads(cli("report", "summary", "--db", str(tmp_path / "r.db"), "--json").stdout)
    assert (s["nps"]["n"], s["nps"]["declined"], s["nps"]["nps"]) == (3, 2, 33.3)
    assert s["csat"] == {"n": 2, "mean": 4.0, "satisfied_pct": 50.0, "burst_excluded": 0,
                         "distribution": {"1": 0, "2": 0, "3": 1, "4": 0, "5": 1}}
    assert s["response"]["asked"] == 7 and s["response"]["answered"] == 5
    assert s["response"]["rate_pct"] == round(100 * 5 / 7, 1)
    assert s["reasons"] == {"detractor": {"queue": 1}, "promoter": {"staff": 1}}
    rows = reports.breakdown(memory_db(recs), "day", tz)
    assert [(r["day"], r["nps"]) for r in rows] == [("2026-11-20", 100.0), ("2026-11-21", -100.0)]
    hours = {r["hour"]: r["n"] for r in reports.breakdown(memory_db(recs), "hour", tz)}
    assert hours["09:00"] == 2
    adverts = {r["advert"]: r["nps"] for r in reports.breakdown(memory_db(recs), "advert", tz)}
    assert adverts == {"ad-1": 100.0, "ad-2": -100.0, "(none)": None}
    members = {r["member"]: r["n"] for r in reports.breakdown(memory_db(recs), "member", tz)}
    assert members == {"member": 2, "non-member": 1}
    out = cli("report", "breakdown", "till", "--db", str(tmp_path / "r.db"), "--csv")
    lines = out.stdout.splitlines()
    assert lines[0].startswith("till,n,nps,ci95_low,ci95_high") and len(lines) == 3
    export = tmp_path / "all.csv"
    assert cli("export", "--db", str(tmp_path / "r.db"), "--out", str(export)).returncode == 0
    text = export.read_text().splitlines()
    assert text[0].startswith("id,store,till,receipt") and len(text) == 9


def test_a_burst_of_presses_is_answered_but_left_out_of_scores_reasons_and_alerts(tmp_path):
    recs = [_rec(1, 10), _rec(2, 0, burst=6, reasons=["staff"]), _rec(3, 5, kind="csat"),
            _rec(4, 1, kind="csat", burst=4)]
    store = RecordStore(tmp_path / "r.db")
    for r in recs:
        store.insert(r)
    store.stop()
    db = str(tmp_path / "r.db")
    s = json.loads(cli("report", "summary", "--db", db, "--json").stdout)
    assert (s["nps"]["n"], s["nps"]["nps"], s["nps"]["burst_excluded"]) == (1, 100.0, 1)
    assert (s["csat"]["n"], s["csat"]["mean"], s["csat"]["burst_excluded"]) == (1, 5.0, 1)
    assert s["response"]["answered"] == 4 and s["reasons"] == {}
    assert "1 button-mashing answers left out" in cli("report", "nps", "--db", db).stdout
    export = tmp_path / "all.csv"
    assert cli("export", "--db", db, "--out", str(export)).returncode == 0
    rows = {r["id"]: r for r in csv.DictReader(export.open())}
    assert (rows["s1-2"]["burst"], rows["s1-1"]["burst"]) == ("6", "")
    # Nor does a child at the buttons page the manager.
    assert not alerts.unhappy(recs[1]) and alerts.unhappy(dict(recs[1], burst=None))


def test_segments_split_regulars_from_occasional_and_by_check():
    day = 86_400_000
    base = now_ms() - 30 * day
    recs = [_rec(i, 9, lid="R", at=base + i * 5 * day, total=100.0) for i in range(6)]
    recs += [_rec(10, 3, lid="O", at=base + day, total=5.0),
             _rec(11, 9, at=base + 2 * day)]
    segs = reports.segments(memory_db(recs))
    assert segs == {"R": "regular, high check", "O": "occasional, low check"}
    rows = {r["segment"]: r["n"] for r in reports.breakdown(memory_db(recs), "segment")}
    assert rows == {"non-member": 1, "occasional, low check": 1, "regular, high check": 6}


# --- running totals (rollup.py) ------------------------------------------------------

def _totals(db) -> set:
    conn = sqlite3.connect(db)
    try:
        out = set()
        for table in ("rollup", "rollup_reasons", "shoppers"):
            for row in conn.execute(f"SELECT * FROM {table}"):
                if any(isinstance(v, (int, float)) and v for v in row[3 if table == "rollup"
                                                                       else -1:]):
                    out.add((table,) + tuple(row))
        return out
    finally:
        conn.close()


def _recount(db) -> set:
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    rollup.rebuild(conn)
    conn.execute("COMMIT")
    conn.close()
    return _totals(db)


def test_totals_kept_while_records_close_reclose_and_get_estimates_equal_a_recount(tmp_path):
    """The triggers keep the totals in the closing transaction; after
    closes, late answers that re-close, probe estimates that come after the
    close and a deleted record, they are exactly what counting the records
    from scratch gives."""
    rnd = random.Random(7)
    store = RecordStore(tmp_path / "r.db")
    base = now_ms() - 3 * 86_400_000
    for i in range(300):
        at = base + i * 600_000
        rec = _rec(i, None, kind=rnd.choice(["nps", "csat", "yesno"]), outcome=None,
                   lid=rnd.choice([None, "A", "B", "C"]), till=str(i % 4), at=at,
                   cashier=rnd.choice(["ann", "bob", None]), total=rnd.choice([None, 12.5]))
        rec["state"] = "pending"
        store.insert(rec)
    for i in range(300):
        kind = None
        if i % 5 == 0:
            continue  # stays open
        outcome = rnd.choice(["answered", "declined", "timeout", "no_reply", "superseded"])
        value = rnd.randint(0, 10) if outcome == "answered" else None
        store.close(f"s1-{i}", {"outcome": outcome, "value": value, "closed_ms": now_ms(),
                                "reasons": rnd.choice([None, ["queue"], ["staff", "queue"]]),
                                "burst": rnd.choice([None, None, 5]), "advert": kind})
        if i % 7 == 0:  # a late answer re-closes it
            store.close(f"s1-{i}", {"outcome": "answered", "value": 3, "late": 1,
                                    "reasons": ["prices"], "closed_ms": now_ms()})
        if i % 3 == 0:  # the probe's estimate after the close
            store.set_probe(f"s1-{i}", {"probe": "ok", "emotion": rnd.choice(["happy", "sad"])})
    store.flush()
    store.reader.execute("DELETE FROM records WHERE id = 's1-1'")
    store.stop()
    kept = _totals(tmp_path / "r.db")
    assert len(kept) > 200
    assert kept == _recount(tmp_path / "r.db")
    # The same recount from the command line, after totals were damaged
    # (300 records, 60 left open, one deleted).
    conn = sqlite3.connect(tmp_path / "r.db")
    conn.execute("DELETE FROM rollup WHERE dim = 'till'")
    conn.commit()
    conn.close()
    out = cli("records", "rebuild-totals", "--db", str(tmp_path / "r.db"))
    assert out.returncode == 0 and "recounted from 239 closed records" in out.stdout, out
    assert _totals(tmp_path / "r.db") == kept


def _oracle(recs, key):
    """Counting the records one by one, as reports did before totals."""
    groups = {}
    for r in recs:
        if r.get("state") != "closed":
            continue
        g = groups.setdefault(key(r), {"n": 0, "pro": 0, "det": 0, "asked": 0, "answered": 0})
        g["n"] += 1
        if r["outcome"] in rollup.ASKED:
            g["asked"] += 1
            g["answered"] += r["outcome"] == "answered"
        if (r["kind"] == "nps" and r["outcome"] == "answered" and isinstance(r["value"], int)
                and not r.get("burst")):
            g["pro"] += r["value"] >= 9
            g["det"] += r["value"] <= 6
    return groups


@pytest.mark.parametrize("zone, start", [("Asia/Kolkata", datetime(2026, 11, 20)),
                                         ("Europe/Berlin", datetime(2026, 3, 26))])
def test_breakdowns_from_totals_agree_with_counting_the_records_in_any_zone(zone, start):
    """Kolkata is UTC+5:30: an hour of the store's day spans two UTC hours,
    which the quarter-hour totals of the store as a whole get right; Berlin
    moves its clocks on 29 March, inside the five days."""
    tz = ZoneInfo(zone)
    rnd = random.Random(3)
    base = int(start.replace(tzinfo=tz).timestamp() * 1000)
    recs = []
    for i in range(2000):
        outcome = rnd.choice(["answered", "answered", "declined", "timeout", "not_asked"])
        recs.append(_rec(i, rnd.randint(0, 10), outcome=outcome, till=str(i % 5),
                         at=base + rnd.randrange(5 * 86_400_000), burst=rnd.choice([None] * 9 + [4])))
    conn = memory_db(recs)

    def local(r):
        return datetime.fromtimestamp(r["asked_ms"] / 1000, tz)
    for by, key in (("till", lambda r: r["till"]),
                    ("hour", lambda r: f"{local(r).hour:02d}:00"),
                    ("day", lambda r: local(r).date().isoformat())):
        want = _oracle(recs, key)
        got = {row[by]: row for row in reports.breakdown(conn, by, tz)}
        assert set(got) == set(want), by
        for k, w in want.items():
            g = got[k]
            assert (g["promoters"], g["detractors"], g["asked"], g["answered"]) == \
                (w["pro"], w["det"], w["asked"], w["answered"]), (by, k)


@pytest.mark.parametrize("zone, rows", [("Europe/Berlin", "all_hours"), ("Asia/Kolkata", "all")])
def test_a_trend_reads_the_store_hours_when_the_zone_is_on_the_hour(zone, rows):
    """The day and week trends read the store's hour totals (a quarter of
    the rows) unless the zone's offset is off the hour: the statements the
    report runs say which rows it read."""
    base = int(datetime(2026, 11, 20, tzinfo=ZoneInfo(zone)).timestamp() * 1000)
    conn = memory_db([_rec(i, i % 11, at=base + i * 3_600_000) for i in range(100)])
    seen = []
    conn.set_trace_callback(seen.append)
    for by in ("day", "week"):
        seen.clear()
        assert reports.breakdown(conn, by, ZoneInfo(zone))
        dims = {d for sql in seen if "GROUP BY b" in sql
                for d in ("all_hours", "all") if f"dim = '{d}'" in sql}
        assert dims == {rows}, (by, seen)


def test_a_database_from_before_totals_gets_them_counted_when_opened(tmp_path):
    db = tmp_path / "r.db"
    store = RecordStore(db)
    for i in range(50):
        store.insert(_rec(i, i % 11, till=str(i % 3), reasons=["queue"] if i % 2 else None))
    store.stop()
    want = _totals(db)
    conn = sqlite3.connect(db, isolation_level=None)
    for name in rollup.TRIGGER_NAMES:
        conn.execute(f"DROP TRIGGER {name}")
    for table in ("rollup", "rollup_reasons", "shoppers"):
        conn.execute(f"DROP TABLE {table}")
    conn.execute("DROP INDEX records_pending")
    conn.execute("UPDATE meta SET value = '4' WHERE key = 'schema'")
    conn.close()
    RecordStore(db).stop()
    assert _totals(db) == want and len(want) > 10
    conn = sqlite3.connect(db)
    plan = " ".join(str(r) for r in conn.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM records WHERE state = 'pending'"))
    conn.close()
    assert "records_pending" in plan  # start-up reads only the open transactions


def test_the_export_round_trips_awkward_text_and_neutralises_formulas(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    awkward = ['say "hi", then\nleave', "=1+1", "-3", "plain", "ünïcödé, ok", "@x\r\n"]
    for i, text in enumerate(awkward):
        store.insert(_rec(i, "yes" if i % 2 else 7, kind="yesno" if i % 2 else "nps",
                          cashier=text, reasons=[text, "b"] if i % 2 else [], total=-2.5))
    store.stop()
    out = cli("export", "--db", str(tmp_path / "r.db"), "--out", str(tmp_path / "x.csv"))
    assert out.returncode == 0, out.stderr
    rows = list(csv.DictReader((tmp_path / "x.csv").open(newline="")))
    assert [r["cashier"] for r in rows] == \
        [("'" + t if t[0] in "=-@" else t) for t in awkward]
    assert rows[1]["reasons"] == "'=1+1;b" and rows[3]["reasons"] == "plain;b"
    assert rows[0]["reasons"] == "" and rows[5]["reasons"] == "'@x\r\n;b"
    assert rows[0]["total"] == "-2.5" and rows[0]["value"] == "7" and rows[0]["late"] == "False"
    assert not (tmp_path / "x.csv.part").exists()
    bad = cli("export", "--db", str(tmp_path / "missing.db"))
    assert bad.returncode == 2 and "missing.db" in bad.stderr


def test_date_ranges_with_the_period_before_and_the_hours_of_the_week(tmp_path):
    tz = ZoneInfo("Europe/Moscow")
    now = datetime(2026, 11, 25, 15, 0, tzinfo=tz).timestamp()  # a Wednesday
    midnight = int(datetime(2026, 11, 25, tzinfo=tz).timestamp())
    assert reports.date_range("all", tz, now) == (None, None)
    assert reports.date_range("today", tz, now) == ((midnight, midnight + 86400),
                                                    (midnight - 86400, midnight))
    assert reports.date_range("yesterday", tz, now)[0] == (midnight - 86400, midnight)
    week, before = reports.date_range("7d", tz, now)
    assert week == (midnight - 6 * 86400, midnight + 86400)
    assert before == (midnight - 13 * 86400, midnight - 6 * 86400)
    got = reports.date_range("custom", tz, now, "2026-11-01", "2026-11-30")
    assert got[0][1] - got[0][0] == 30 * 86400 and got[1][1] == got[0][0]
    for bad in (("custom", "2026-11-30", "2026-11-01"), ("custom", "30.11.2026", "x"),
                ("fortnight", None, None)):
        with pytest.raises(ValueError):
            reports.date_range(bad[0], tz, now, bad[1], bad[2])
    # Two answers on Wednesday at 9 local, one on Sunday at 18: the hours of
    # the week put them there, and a range leaves out what is outside it.
    wed9 = int(datetime(2026, 11, 25, 9, 10, tzinfo=tz).timestamp() * 1000)
    sun18 = int(datetime(2026, 11, 22, 18, 40, tzinfo=tz).timestamp() * 1000)
    store = RecordStore(tmp_path / "r.db")
    for i, (value, at) in enumerate([(10, wed9), (3, wed9), (9, sun18)]):
        store.insert(_rec(i, value, at=at))
    store.stop()
    conn = sqlite3.connect(tmp_path / "r.db")
    rows = {r["weekday_hour"]: r["n"] for r in reports.breakdown(conn, "weekday_hour", tz)}
    assert rows == {"3-09": 2, "7-18": 1}
    today = reports.date_range("today", tz, now)[0]
    assert {r["weekday_hour"]: r["n"]
            for r in reports.breakdown(conn, "weekday_hour", tz, today)} == {"3-09": 2}
    assert reports.summary(conn, today)["nps"]["n"] == 2
    conn.close()


def test_yes_no_and_choice_results_with_intervals_kept_by_the_totals(tmp_path):
    """Counted by the running totals as records close, change and go (the
    same as a rebuild), bursts left out; shares with Wilson intervals."""
    assert reports.wilson(5, 10) == (23.7, 76.3)
    assert reports.wilson(0, 10) == (0.0, 27.8)
    assert reports.wilson(0, 0) == (None, None)
    store = RecordStore(tmp_path / "r.db")
    recs = ([_rec(i, "yes", kind="yesno", qid="found") for i in range(7)]
            + [_rec(10 + i, "no", kind="yesno", qid="found", till="2") for i in range(3)]
            + [_rec(20, "yes", kind="yesno", qid="found", burst=6)]
            + [_rec(30 + i, v, kind="choice", qid="visit") for i, v in
               enumerate(["bread", "bread", "milk"])]
            + [_rec(40, None, kind="yesno", qid="found", outcome="declined")])
    for r in recs:
        store.insert(r)
    store.stop()
    conn = sqlite3.connect(tmp_path / "r.db")
    got = reports.answers(conn)
    assert got["found"]["n"] == 10
    assert got["found"]["values"][0] == {"value": "yes", "n": 7, "pct": 70.0,
                                         "ci95_low": 39.7, "ci95_high": 89.2}
    assert [(v["value"], v["n"]) for v in got["visit"]["values"]] == [("bread", 2), ("milk", 1)]
    # Per till: till 1 said yes 7 times, till 2 no 3 times.
    assert {till: [(v["value"], v["n"]) for v in r["values"]]
            for till, r in got["found"]["tills"].items()} == {"1": [("yes", 7)], "2": [("no", 3)]}
    assert got["found"]["tills"]["2"]["values"][0]["ci95_low"] == 43.9
    # A late change of an answer moves it; the totals equal a rebuild.
    conn.execute("UPDATE records SET value = 'no' WHERE id = 's1-0'")
    conn.commit()
    assert {v["value"]: v["n"] for v in reports.answers(conn)["found"]["values"]} == \
        {"yes": 6, "no": 4}
    before = reports.answers(conn)
    rollup.rebuild(conn)
    assert reports.answers(conn) == before
    conn.close()


def test_a_schema_5_database_gets_the_answer_totals_on_opening(tmp_path):
    store = RecordStore(tmp_path / "r.db")
    store.insert(_rec(1, "yes", kind="yesno", qid="found"))
    store.stop()
    # As an older version left it: schema 5, no answer totals, its triggers.
    conn = sqlite3.connect(tmp_path / "r.db")
    conn.execute("DELETE FROM rollup WHERE dim = 'answer'")
    conn.execute("DROP TRIGGER rollup_insert_0")
    conn.execute("UPDATE meta SET value = '5' WHERE key = 'schema'")
    conn.commit()
    conn.close()
    store = RecordStore(tmp_path / "r.db")
    store.insert(_rec(2, "no", kind="yesno", qid="found"))
    store.stop()
    conn = sqlite3.connect(tmp_path / "r.db")
    assert {v["value"]: v["n"] for v in reports.answers(conn)["found"]["values"]} == \
        {"yes": 1, "no": 1}
    from loyalty_button.service.records import SCHEMA_VERSION
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()[0] == \
        str(SCHEMA_VERSION)
    conn.close()
