"""Reports: NPS with its adjusted-Wald interval (the CLI contract used by
acceptance checks), CSAT, response rate, reasons, breakdowns, CSV."""

from __future__ import annotations

import csv
import json
import math
import subprocess
import sys
from datetime import datetime
from zoneinfo import ZoneInfo

from loyalty_button.forward import alerts
from loyalty_button.service import reports
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
