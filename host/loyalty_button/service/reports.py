"""Reports on feedback records: NPS with its 95 % confidence interval, CSAT,
response rate, reasons, breakdowns and trends. One implementation behind
the CLI (`loyalty-button report ...`) and the dashboard (docs/reports.md).

Records are the dicts of `records.open_records` (or the same fields from
any source). Only what the shopper did counts: a record that was never
asked (`not_asked`, `panel_offline`) is not in the response rate, and an
answer the panel flagged as a burst of presses (`burst`: a child mashing
the buttons) counts as answered but its score is left out of NPS and CSAT
(`burst_excluded`)."""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import Counter, defaultdict
from datetime import datetime, timezone, tzinfo

from lbpanel.protocol import nps_class

from ..problems import ProblemsError

# Outcomes of a question that was put to a shopper (docs/concentrator.md).
ASKED = ("answered", "declined", "timeout", "superseded", "no_reply")
Z95 = 1.959963984540054  # the normal quantile for a two-sided 95 % interval


def nps(scores, declined: int = 0) -> dict:
    """NPS of 0-10 scores, in points (-100..100), with a 95 % interval by
    the adjusted-Wald method (Rocks, The American Statistician 70(4), 2016):
    add 3/4 to promoters and to detractors and 3 to n, then take the
    variance of a difference of two multinomial proportions."""
    counts = Counter(nps_class(s) for s in scores)
    n = sum(counts.values())
    pro, det = counts["promoter"], counts["detractor"]
    out = {"n": n, "declined": declined, "promoters": pro, "passives": counts["passive"],
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


def csat(values) -> dict:
    """CSAT on 1-5: mean, distribution, and the share of 4s and 5s (the
    usual 'satisfied' percentage)."""
    values = list(values)
    dist = Counter(values)
    out = {"n": len(values), "mean": None, "satisfied_pct": None,
           "distribution": {str(k): dist.get(k, 0) for k in range(1, 6)}}
    if values:
        out["mean"] = round(statistics.fmean(values), 2)
        out["satisfied_pct"] = round(100 * sum(1 for v in values if v >= 4) / len(values), 1)
    return out


def response(records) -> dict:
    """Answered / asked, with every other outcome of an asked question
    (declined, timed out, superseded, no reply) counted on its own."""
    outcomes = Counter(r.get("outcome") for r in records if r.get("outcome") in ASKED)
    asked = sum(outcomes.values())
    out = {"asked": asked, **{o: outcomes.get(o, 0) for o in ASKED}, "rate_pct": None}
    if asked:
        out["rate_pct"] = round(100 * outcomes["answered"] / asked, 1)
    return out


def _answered(records, kind: str) -> list[dict]:
    return [r for r in records if r.get("kind") == kind
            and r.get("outcome") == "answered" and isinstance(r.get("value"), int)]


def _scores(records, kind: str) -> list[int]:
    return [r["value"] for r in _answered(records, kind) if not r.get("burst")]


def _bursts(records, kind: str) -> int:
    return sum(1 for r in _answered(records, kind) if r.get("burst"))


def _declined(records, kind: str) -> int:
    return sum(1 for r in records if r.get("kind") == kind
               and r.get("outcome") in ("declined", "timeout"))


def reasons(records) -> dict:
    """Reason ids given after an NPS rating, counted per NPS class; for
    other kinds, per value."""
    out: dict[str, Counter] = defaultdict(Counter)
    for r in records:
        if r.get("outcome") != "answered" or not r.get("reasons") or r.get("burst"):
            continue
        if r.get("kind") == "nps" and isinstance(r.get("value"), int):
            group = nps_class(r["value"])
        else:
            group = f"{r.get('kind')}:{r.get('value')}"
        out[group].update(r["reasons"])
    return {g: dict(c.most_common()) for g, c in sorted(out.items())}


def summary(records) -> dict:
    records = list(records)
    return {"nps": {**nps(_scores(records, "nps"), _declined(records, "nps")),
                    "burst_excluded": _bursts(records, "nps")},
            "csat": {**csat(_scores(records, "csat")), "burst_excluded": _bursts(records, "csat")},
            "response": response(records),
            "reasons": reasons(records)}


# --- breakdowns ---------------------------------------------------------------

def _local(ms: int | None, tz: tzinfo) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, timezone.utc).astimezone(tz)


def _when(r) -> int | None:
    return r.get("asked_ms") or r.get("received_ms")


def segments(records) -> dict[str, str]:
    """loyalty id -> value segment, from the records themselves: visit
    frequency (regular: 4 or more receipts per 30 days of the period
    covered, else occasional) and average check (high: at or above the
    median of members' average checks, else low)."""
    visits: dict[str, list[float]] = defaultdict(list)
    times = [t for t in (_when(r) for r in records) if t]
    for r in records:
        if r.get("loyalty_id"):
            visits[r["loyalty_id"]].append(r.get("total") or 0.0)
    if not visits:
        return {}
    span_days = max(1.0, (max(times) - min(times)) / 86_400_000) if times else 1.0
    avg = {lid: statistics.fmean(v) for lid, v in visits.items()}
    median = statistics.median(avg.values())
    out = {}
    for lid, v in visits.items():
        freq = "regular" if len(v) * 30 / span_days >= 4 else "occasional"
        out[lid] = f"{freq}, {'high' if avg[lid] >= median else 'low'} check"
    return out


def _keys(tz: tzinfo, segs: dict[str, str]):
    def hour(r):
        t = _local(_when(r), tz)
        return None if t is None else f"{t.hour:02d}:00"

    def day(r):
        t = _local(_when(r), tz)
        return None if t is None else t.date().isoformat()

    def week(r):
        t = _local(_when(r), tz)
        if t is None:
            return None
        y, w, _ = t.isocalendar()
        return f"{y}-W{w:02d}"
    return {
        "store": lambda r: r.get("store"),
        "till": lambda r: r.get("till"),
        "cashier": lambda r: r.get("cashier"),
        "question": lambda r: r.get("qid"),
        "language": lambda r: r.get("lang"),
        "hour": hour,
        "member": lambda r: "member" if r.get("loyalty_id") else "non-member",
        "segment": lambda r: segs.get(r.get("loyalty_id"), "non-member"),
        "advert": lambda r: r.get("advert"),
        "emotion": lambda r: r.get("emotion"),
        "day": day,
        "week": week,
    }


BREAKDOWNS = tuple(_keys(timezone.utc, {}))


def breakdown(records, by: str, tz: tzinfo = timezone.utc) -> list[dict]:
    """One row per value of `by` (see BREAKDOWNS): NPS with its interval,
    CSAT mean, response rate. Rows sorted by their key; `day` and `week`
    are the trend."""
    records = list(records)
    keys = _keys(tz, segments(records) if by == "segment" else {})
    if by not in keys:
        raise ValueError(f"unknown breakdown {by!r}; known: {', '.join(keys)}")
    groups: dict[str, list] = defaultdict(list)
    for r in records:
        groups[str(keys[by](r) or "(none)")].append(r)
    rows = []
    for key in sorted(groups):
        s = summary(groups[key])
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
