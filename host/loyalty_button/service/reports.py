"""Reports on feedback records: NPS with its 95 % confidence interval, CSAT,
response rate, reasons, breakdowns and trends. One implementation behind
the CLI (`loyalty-button report ...`) and the dashboard (docs/reports.md).

Every report reads a store database's running totals (rollup.py, which
also holds the rules of counting), never the records one by one, so its
cost does not grow with the months a store has been open; the export
streams the records from a cursor. A list of record dicts is reported on
through `records.memory_db`, the same code."""

from __future__ import annotations

import csv
import io
import math
import os
import shutil
import sqlite3
import statistics
from datetime import date, timezone, tzinfo
from pathlib import Path

from lbpanel.protocol import nps_class

from ..problems import ProblemsError
from . import rollup
from .rollup import ASKED, Tally

Z95 = 1.959963984540054  # the normal quantile for a two-sided 95 % interval


def nps_counts(pro: int, passive: int, det: int, declined: int = 0) -> dict:
    """NPS in points (-100..100), with a 95 % interval by the adjusted-Wald
    method (Rocks, The American Statistician 70(4), 2016): add 3/4 to
    promoters and to detractors and 3 to n, then take the variance of a
    difference of two multinomial proportions."""
    n = pro + passive + det
    out = {"n": n, "declined": declined, "promoters": pro, "passives": passive,
           "detractors": det, "nps": None, "ci95_low": None, "ci95_high": None}
    if n == 0:
        return out
    n_adj = n + 3
    p_pro = (pro + 0.75) / n_adj
    p_det = (det + 0.75) / n_adj
    centre = p_pro - p_det
    half = Z95 * math.sqrt((p_pro + p_det - centre ** 2) / n_adj)
    out["nps"] = round(100 * (pro - det) / n, 1)
    out["ci95_low"] = round(max(-100.0, 100 * (centre - half)), 1)
    out["ci95_high"] = round(min(100.0, 100 * (centre + half)), 1)
    return out


def nps(scores, declined: int = 0) -> dict:
    """NPS of a list of 0-10 scores (a CSV of scores)."""
    classes = [nps_class(s) for s in scores]
    return nps_counts(classes.count("promoter"), classes.count("passive"),
                      classes.count("detractor"), declined)


def csat(distribution: dict[int, int]) -> dict:
    """CSAT on 1-5 from {value: count}: mean, distribution, and the share of
    4s and 5s (the usual 'satisfied' percentage)."""
    n = sum(distribution.values())
    out = {"n": n, "mean": None, "satisfied_pct": None,
           "distribution": {str(k): distribution.get(k, 0) for k in rollup.CSAT_VALUES}}
    if n:
        out["mean"] = round(sum(k * c for k, c in distribution.items()) / n, 2)
        out["satisfied_pct"] = round(100 * sum(c for k, c in distribution.items() if k >= 4) / n,
                                     1)
    return out


def response(t: Tally) -> dict:
    """Answered / asked, with every other outcome of an asked question
    (declined, timed out, superseded, no reply) counted on its own."""
    outcomes = {o: getattr(t, o) for o in ASKED}
    asked = sum(outcomes.values())
    out = {"asked": asked, **outcomes, "rate_pct": None}
    if asked:
        out["rate_pct"] = round(100 * outcomes["answered"] / asked, 1)
    return out


def _summary(t: Tally) -> dict:
    return {"nps": {**nps_counts(t.promoters, t.passives, t.detractors, t.nps_declined),
                    "burst_excluded": t.nps_burst},
            "csat": {**csat({v: getattr(t, f"csat_{v}") for v in rollup.CSAT_VALUES}),
                     "burst_excluded": t.csat_burst},
            "response": response(t)}


def summary(conn: sqlite3.Connection, period=None) -> dict:
    """NPS, CSAT, response rate and reasons of every closed record in a
    store database (records.connect or records.memory_db), or of those in
    `period`, (start, end) in Unix s."""
    out = _summary(rollup.total(conn, period))
    out["reasons"] = rollup.reasons(conn, period)
    return out


def wilson(k: int, n: int) -> tuple[float | None, float | None]:
    """95 % interval of a share k/n, in percent, by Wilson's score method
    (sound at small n and at 0 % or 100 %, where the plain one is not)."""
    if n == 0:
        return None, None
    p = k / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return round(100 * max(0.0, centre - half), 1), round(100 * min(1.0, centre + half), 1)


def answers(conn: sqlite3.Connection) -> dict[str, dict]:
    """The results of every yes/no and choice question, all time: {qid:
    {"n": answers, "values": [{"value", "n", "pct", "ci95_low",
    "ci95_high"}, most chosen first], "tills": {till: {"n", "values"}}}}
    (button-mashing answers left out)."""
    counts: dict[str, dict[str, dict[str, int]]] = {}   # qid -> till -> value -> n
    for key, t in rollup.by_key(conn, "answer").items():
        parts = key.split("|")
        if len(parts) != 3 or not t.n:
            continue
        till, qid, value = parts
        counts.setdefault(qid, {}).setdefault(till, {})[value] = t.n
    out = {}
    for qid, tills in sorted(counts.items()):
        total: dict[str, int] = {}
        for values in tills.values():
            for value, k in values.items():
                total[value] = total.get(value, 0) + k
        out[qid] = {**_shares(total),
                    "tills": {till: _shares(values) for till, values in sorted(tills.items())}}
    return out


def phone(conn: sqlite3.Connection, latest: int = 20) -> dict:
    """The phone survey (docs/phone-survey.md): links given, answers taken,
    the phone's NPS, and the latest comments (text, as the shopper typed
    it: the page shows it as text, never as HTML)."""
    links = conn.execute("SELECT COUNT(*) FROM records WHERE phone_ref IS NOT NULL").fetchone()[0]
    rows = conn.execute(
        "SELECT till, json_extract(phone, '$.nps'), json_extract(phone, '$.comment'), "
        "json_extract(phone, '$.response'), json_extract(phone, '$.at_ms') FROM records "
        "WHERE phone_ref IS NOT NULL AND phone IS NOT NULL AND json_valid(phone) "
        "ORDER BY 5 DESC").fetchall()
    scores = [s for _, s, _, _, _ in rows if isinstance(s, int) and 0 <= s <= 10]
    comments = [{"till": till, "nps": s, "text": text, "response": resp, "at_ms": at}
                for till, s, text, resp, at in rows if isinstance(text, str)][:latest]
    return {"links": links, "answers": len(rows), "nps": nps(scores), "comments": comments}


def _shares(values: dict[str, int]) -> dict:
    n = sum(values.values())
    rows = []
    for value, k in sorted(values.items(), key=lambda kv: (-kv[1], kv[0])):
        lo, hi = wilson(k, n)
        rows.append({"value": value, "n": k, "pct": round(100 * k / n, 1),
                     "ci95_low": lo, "ci95_high": hi})
    return {"n": n, "values": rows}


def record_count(conn: sqlite3.Connection) -> int:
    """Records stored, open ones included (no table scan: the totals plus
    the pending index)."""
    pending = conn.execute("SELECT COUNT(*) FROM records WHERE state = 'pending'").fetchone()[0]
    return rollup.total(conn).n + pending


# --- breakdowns ---------------------------------------------------------------

def _segment_sql(conn: sqlite3.Connection) -> str | None:
    """The value segment of a `shoppers` row `s`, as SQL (None: no members).
    Visit frequency: regular at 4 or more receipts per 30 days of the
    period covered, else occasional; average check: high at or above the
    median of members' average checks, else low. In SQL, so that a store
    with tens of thousands of cards is segmented in C."""
    count = conn.execute("SELECT COUNT(*) FROM shoppers WHERE visits > 0").fetchone()[0]
    if not count:
        return None
    # Two queries: SQLite answers a lone MIN or MAX from the index, both
    # together by reading the whole table.
    first = conn.execute("SELECT MIN(received_ms) FROM records").fetchone()[0]
    last = conn.execute("SELECT MAX(received_ms) FROM records").fetchone()[0]
    span_days = max(1.0, (last - first) / 86_400_000) if first is not None else 1.0
    middle = [v for (v,) in conn.execute(
        "SELECT spend / visits AS avg FROM shoppers WHERE visits > 0 ORDER BY avg "
        "LIMIT ? OFFSET ?", (2 - count % 2, (count - 1) // 2))]
    median = statistics.fmean(middle)
    return (f"(CASE WHEN s.visits * 30.0 / {span_days!r} >= 4 THEN 'regular' ELSE 'occasional' "
            f"END || ', ' || CASE WHEN s.spend / s.visits >= {median!r} THEN 'high' ELSE 'low' "
            f"END || ' check')")


def segments(conn: sqlite3.Connection) -> dict[str, str]:
    """loyalty id -> value segment (_segment_sql), from the records themselves."""
    seg = _segment_sql(conn)
    if seg is None:
        return {}
    return dict(conn.execute(f"SELECT s.loyalty_id, {seg} FROM shoppers AS s WHERE s.visits > 0"))


_EPOCH_DAY = date(1970, 1, 1).toordinal()

# What a report can be broken down by: a dimension kept in the totals, the
# store's clock (from the quarter-hour totals), or the value segment.
BREAKDOWNS = ("store", "till", "cashier", "question", "language", "hour", "member", "segment",
              "advert", "emotion", "day", "week", "weekday_hour")
# The ranges a manager picks on the dashboard (with a custom one of dates).
RANGES = ("all", "today", "yesterday", "7d", "30d", "custom")


def range_days(name: str, tz: tzinfo, now: float, first: str | None = None,
               last: str | None = None) -> tuple[date, date] | None:
    """The first and last local dates in `tz` of a range (None: all time).
    `custom` takes the dates `first` and `last` (YYYY-MM-DD, both
    included). ValueError says what is wrong with a range a person typed."""
    from datetime import datetime, timedelta
    if name == "all":
        return None
    today = datetime.fromtimestamp(now, tz).date()
    if name == "custom":
        try:
            d0, d1 = date.fromisoformat(first or ""), date.fromisoformat(last or "")
        except ValueError:
            raise ValueError("a custom range needs from= and to= as YYYY-MM-DD") from None
        if d1 < d0:
            raise ValueError(f"the range ends ({d1}) before it starts ({d0})")
        return d0, d1
    if name in ("today", "yesterday", "7d", "30d"):
        back = {"today": 0, "yesterday": 1, "7d": 6, "30d": 29}[name]
        return today - timedelta(days=back), (today - timedelta(days=1) if name == "yesterday"
                                              else today)
    raise ValueError(f"unknown range {name!r}; known: {', '.join(RANGES)}")


def date_range(name: str, tz: tzinfo, now: float, first: str | None = None,
               last: str | None = None):
    """(period, previous period) for a range (range_days): (start, end) in
    Unix s from local midnights in `tz`, and the period of the same length
    just before it, to compare with; (None, None) for all time."""
    from datetime import datetime, timedelta
    days_ = range_days(name, tz, now, first, last)
    if days_ is None:
        return None, None
    d0, d1 = days_

    def midnight(d: date) -> int:
        return int(datetime(d.year, d.month, d.day, tzinfo=tz).timestamp())
    days = (d1 - d0).days + 1
    period = (midnight(d0), midnight(d1 + timedelta(days=1)))
    return period, (midnight(d0 - timedelta(days=days)), period[0])


def _groups(conn: sqlite3.Connection, by: str, tz: tzinfo, period) -> dict[str, Tally]:
    groups: dict[str, Tally] = {}

    def put(key, t: Tally) -> None:
        key = str(key or "(none)")
        groups[key] = rollup.add(groups[key], t) if key in groups else t
    if by == "hour":
        hours = (rollup.by_hour_of_day(conn, tz) if period is None
                 else rollup.by_local(conn, tz, 3600, 24, period))
        for hour, t in hours:
            put(f"{hour:02d}:00", t)
    elif by == "weekday_hour":
        # Hours of the week since the epoch, a Thursday: ISO weekday 1-7.
        for h, t in rollup.by_local(conn, tz, 3600, 168, period):
            put(f"{(h // 24 + 3) % 7 + 1}-{h % 24:02d}", t)
    elif by in ("day", "week"):
        for day, t in rollup.by_local(conn, tz, 86400, None, period):
            d = date.fromordinal(_EPOCH_DAY + day)
            if by == "day":
                put(d.isoformat(), t)
            else:
                y, w, _ = d.isocalendar()
                put(f"{y}-W{w:02d}", t)
    elif by == "segment":
        for key, t in rollup.by_segment(conn, _segment_sql(conn)):
            put(key, t)
    else:
        for key, t in rollup.by_key(conn, by, period).items():
            put(key, t)
    return {k: t for k, t in groups.items() if t.n}


def breakdown(conn: sqlite3.Connection, by: str, tz: tzinfo = timezone.utc,
              period=None) -> list[dict]:
    """One row per value of `by` (see BREAKDOWNS): NPS with its interval,
    CSAT mean, response rate. Rows sorted by their key; `day` and `week`
    are the trend. `period`: (start, end) in Unix s, to the hour (the
    value segments are all time)."""
    if by not in BREAKDOWNS:
        raise ValueError(f"unknown breakdown {by!r}; known: {', '.join(BREAKDOWNS)}")
    return breakdown_rows(_groups(conn, by, tz, period), by)


def breakdown_rows(groups: dict[str, Tally], by: str) -> list[dict]:
    """The rows of a breakdown by `by` from its groups' totals, sorted by key
    (also the chain's central reports, forward/postgres.py)."""
    rows = []
    for key in sorted(groups):
        s = _summary(groups[key])
        rows.append({by: key, "n": s["nps"]["n"], "nps": s["nps"]["nps"],
                     "ci95_low": s["nps"]["ci95_low"], "ci95_high": s["nps"]["ci95_high"],
                     "promoters": s["nps"]["promoters"], "passives": s["nps"]["passives"],
                     "detractors": s["nps"]["detractors"], "csat_n": s["csat"]["n"],
                     "csat_mean": s["csat"]["mean"], "asked": s["response"]["asked"],
                     "answered": s["response"]["answered"],
                     "response_pct": s["response"]["rate_pct"]})
    return rows


# --- CSV ------------------------------------------------------------------------

EXPORT_FIELDS = ("id", "store", "till", "receipt", "panel", "loyalty_id", "cashier", "total",
                 "currency", "items", "lang", "sale_ts", "rule", "qid", "kind", "asked_ms",
                 "outcome", "reason", "value", "reasons", "answer_ms", "late", "closed_ms",
                 "advert", "burst", "probe", "emotion", "c_value", "age_band", "gender")


# A text cell starting with one of these is a formula to a spreadsheet
# (=HYPERLINK(...), +cmd|..., @SUM, a tab or CR that hides it): such a cell
# gets a leading apostrophe, as OWASP's CSV-injection advice says, so it
# shows as text. Numbers are written as numbers.
_FORMULA_LEAD = ("=", "+", "-", "@", "\t", "\r")


def _cell(value):
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    if isinstance(value, str) and value.startswith(_FORMULA_LEAD):
        return "'" + value
    return value


# Columns of EXPORT_FIELDS that only ever hold numbers (or nothing).
_NUMBERS = {"total", "items", "sale_ts", "asked_ms", "answer_ms", "closed_ms", "burst", "c_value"}


def _sql_cell(col: str) -> str:
    """_cell in SQL: the export runs in the sqlite3 shell, in C."""
    if col in _NUMBERS:
        return col
    if col == "late":  # written as a Python bool by earlier versions: keep the format
        return "CASE WHEN late THEN 'True' ELSE 'False' END"
    if col == "reasons":
        # ["a","b"] -> a;b by text replacement when nothing is escaped (the
        # usual case, and much cheaper than json_each for every row).
        col = ("(CASE WHEN reasons = '[]' THEN NULL "
               "WHEN instr(reasons, char(92)) = 0 AND reasons GLOB '[[]*]' THEN "
               "replace(replace(replace(reasons, '[\"', ''), '\"]', ''), '\",\"', ';') "
               "ELSE (SELECT group_concat(CAST(value AS TEXT), ';') FROM json_each(reasons)) END)")
    # Every lead is below 'A' (65): most cells are settled by the first,
    # cheap comparison (measured: this check costs a third of what an IN
    # list alone does, on a million rows). No typeof: a number in these
    # columns (a choice or score value) is never negative.
    leads = ", ".join(str(ord(c)) for c in _FORMULA_LEAD)
    assert max(ord(c) for c in _FORMULA_LEAD) < 65
    return (f"CASE WHEN unicode({col}) < 65 AND unicode({col}) IN ({leads}) "
            f"THEN char(39) || {col} ELSE {col} END")


EXPORT_SQL = (f"SELECT {', '.join(f'{_sql_cell(f)} AS {f}' for f in EXPORT_FIELDS)} "
              f"FROM records ORDER BY received_ms, id")


class ExportError(Exception):
    pass


def export_command(db) -> list[str]:
    """The sqlite3 shell writing every record of `db` as CSV (EXPORT_FIELDS,
    oldest first) to its stdout. It streams in C in its own process: a year
    of records costs the host neither memory nor the event loop's time, and
    the export runs about as fast as reading the rows at all."""
    shell = shutil.which("sqlite3")
    if shell is None:
        raise ExportError("the sqlite3 program is missing (Debian: apt-get install sqlite3)")
    # -init /dev/null: no ~/.sqliterc may change the format.
    return [shell, "-init", os.devnull, "-readonly", "-bail", "-csv", "-header",
            "-newline", "\n", str(Path(db).resolve()), EXPORT_SQL + ";"]


def to_csv(rows, fields=None) -> str:
    rows = list(rows)
    fields = list(fields or (rows[0].keys() if rows else ()))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in rows:
        w.writerow({k: _cell(v) for k, v in row.items()})
    return buf.getvalue()


class CsvError(ProblemsError):
    """A scores CSV with rows that cannot be read."""


def read_scores(text: str, column: str = "score") -> tuple[list[int], int]:
    """Scores from a CSV with a `score` column: 0-10, or empty for a shopper
    who declined or timed out. Every bad row is listed with its line."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or column not in reader.fieldnames:
        raise CsvError([f"line 1: no {column!r} column (columns: "
                        f"{', '.join(reader.fieldnames or []) or 'none'})"])
    scores, declined, problems = [], 0, []
    for row in reader:
        raw = (row.get(column) or "").strip()
        line = reader.line_num
        if raw == "":
            declined += 1
            continue
        try:
            value = int(raw)
        except ValueError:
            problems.append(f"line {line}: score {raw!r} is not a whole number 0-10")
            continue
        if not 0 <= value <= 10:
            problems.append(f"line {line}: score {value} is outside 0-10")
            continue
        scores.append(value)
    if problems:
        raise CsvError(problems)
    return scores, declined
