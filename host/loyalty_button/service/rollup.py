"""Running totals of the closed records, so that no report reads every record.

A report needs, per group (a till, a cashier, a day...), a handful of counts:
how many questions ended in each outcome, promoters, passives, detractors,
each CSAT value, button-mashing answers. Those counts are kept in `rollup`,
one row per (dimension, time slot, key), and updated by SQLite triggers in
the transaction that closes (or re-closes, or re-estimates) a record, so
they can never disagree with the records. A report sums a few thousand
rows instead of reading a year of records (docs/reports.md, "How reports
stay fast").

This module is the one definition of what each count means; the triggers,
the rebuild after a migration (`rebuild`) and the reports are all made from
it. Rules of counting (docs/reports.md): only a question put to a shopper
is in the response rate; a burst of presses counts as answered, but its
score and reasons are left out."""

from __future__ import annotations

import logging
import sqlite3
from collections import namedtuple
from datetime import datetime, timezone

from lbpanel.protocol import nps_class

log = logging.getLogger(__name__)

# Outcomes of a question that was put to a shopper (docs/concentrator.md).
ASKED = ("answered", "declined", "timeout", "superseded", "no_reply")
NPS_CLASSES = ("promoter", "passive", "detractor")
CSAT_VALUES = (1, 2, 3, 4, 5)

# Each dimension keeps one row per key for all time (slot 0), so an
# all-time breakdown reads a few rows however old the store is. The store
# as a whole is also kept per quarter of an hour (every time zone's offset
# is a whole number of quarters, so hour, day and week in the store's zone
# come out exact; a trend reads one row per quarter), and tills and reasons
# per hour too (the cloud reporter's days).
SLOT_ALL_S = 900
SLOT_S = 3600
ALL_TIME = 0           # a "slot size" meaning one row for all time...
ALL_TIME_SLOT = -1     # ...kept under this slot, before any real time

# The counting rules below are written once, over a record {r}, with a few
# words that differ between SQLite (the store) and PostgreSQL (the chain's
# central database, where `value` and `reasons` are jsonb and a record has
# no received_ms): {true} is always true, {int} is the value as a number, {isint} says it is a
# whole number, {text} is it as text, {burst} is true for a flagged burst.
DIALECTS = {
    "sqlite": {"true": "1", "when": "COALESCE(NULLIF({r}.asked_ms, 0), {r}.received_ms)",
               "isint": "typeof({r}.value) = 'integer'", "int": "{r}.value",
               "text": "{r}.value", "burst": "COALESCE({r}.burst, 0)",
               "is_list": "json_valid({r}.reasons) AND json_type({r}.reasons) = 'array'"},
    "pg": {"true": "true", "when": "COALESCE(NULLIF({r}.asked_ms, 0), {r}.sale_ts * 1000, {r}.closed_ms)",
           "isint": "(jsonb_typeof({r}.value) = 'number' AND ({r}.value #>> '{{}}') ~ '^-?[0-9]+$')",
           "int": "(CASE WHEN jsonb_typeof({r}.value) = 'number' "
                  "THEN ({r}.value #>> '{{}}')::numeric END)",
           "text": "({r}.value #>> '{{}}')", "burst": "(COALESCE({r}.burst, 0) <> 0)",
           "is_list": "jsonb_typeof({r}.reasons) = 'array'"},
}


def sql(template: str, r: str, dialect: str = "sqlite") -> str:
    """A rule's SQL for record `r` in `dialect`."""
    words = {k: v.format(r=r) for k, v in DIALECTS[dialect].items()}
    return template.format(r=r, **words)


_SCORED = "{r}.outcome = 'answered' AND {isint}"
_NOT_BURST = " AND NOT {burst}"
_CLEAN = _SCORED + _NOT_BURST


def _in(values) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def _nps_values(cls: str) -> tuple:
    return tuple(v for v in range(11) if nps_class(v) == cls)


# count name -> the condition for a record {r} to add 1.
TALLIES = {"n": "{true}"}
TALLIES.update({o: f"{{r}}.outcome = '{o}'" for o in ASKED})
TALLIES.update({cls + "s": f"{{r}}.kind = 'nps' AND {_CLEAN} AND {{int}} IN "
                           f"{_in(_nps_values(cls))}" for cls in NPS_CLASSES})
TALLIES["nps_burst"] = f"{{r}}.kind = 'nps' AND {_SCORED} AND {{burst}}"
TALLIES["nps_declined"] = "{r}.kind = 'nps' AND {r}.outcome IN ('declined', 'timeout')"
TALLIES.update({f"csat_{v}": f"{{r}}.kind = 'csat' AND {_CLEAN} AND {{int}} = {v}"
                for v in CSAT_VALUES})
TALLIES["csat_burst"] = f"{{r}}.kind = 'csat' AND {_SCORED} AND {{burst}}"

Tally = namedtuple("Tally", TALLIES)
EMPTY = Tally(*(0 for _ in TALLIES))

# dimension -> (its key, SQL over a record {r}; the slot sizes it is kept
# at, in seconds, ALL_TIME = one row per key).
DIMS = {
    "all": ("''", (ALL_TIME, SLOT_ALL_S)),
    # The store per hour too: a quarter of the rows for the trends of a
    # zone whose offset is a whole number of hours (nearly all of them).
    "all_hours": ("''", (SLOT_S,)),
    "store": ("{r}.store", (ALL_TIME,)),
    "till": ("{r}.till", (ALL_TIME, SLOT_S)),
    "cashier": ("{r}.cashier", (ALL_TIME,)),
    "question": ("{r}.qid", (ALL_TIME,)),
    "language": ("{r}.lang", (ALL_TIME,)),
    "member": ("CASE WHEN COALESCE({r}.loyalty_id, '') <> '' THEN 'member' "
               "ELSE 'non-member' END", (ALL_TIME,)),
    "advert": ("{r}.advert", (ALL_TIME,)),
    "emotion": ("{r}.emotion", (ALL_TIME,)),
    "shopper": ("{r}.loyalty_id", (ALL_TIME,)),
    # The quarter of the UTC day (0-95): the hours of the store's day for
    # all time in 96 rows, in a zone whose offset did not change meanwhile.
    "day_quarter": (f"({{when}} / {SLOT_ALL_S * 1000}) % {86400 // SLOT_ALL_S}", (ALL_TIME,)),
    # What yes/no and choice questions were answered, and at which till, as
    # "till|qid|value" (the rest of the records share the key ''): their
    # results with intervals, for the store and per till.
    "answer": ("CASE WHEN {r}.kind IN ('yesno', 'choice') AND {r}.outcome = 'answered'"
               + _NOT_BURST + " THEN {r}.till || '|' || {r}.qid || '|' || {text} ELSE '' END",
               (ALL_TIME,)),
}
REASON_SLOTS = (ALL_TIME, SLOT_S)

# Reasons from the "why?" step: per NPS class, or per kind:value.
_GROUP = ("CASE WHEN {r}.kind = 'nps' AND {isint} THEN CASE "
          + " ".join(f"WHEN {{int}} IN {_in(_nps_values(c))} THEN '{c}'" for c in NPS_CLASSES)
          + " END ELSE COALESCE({r}.kind, 'None') || ':' || COALESCE({text}, 'None') END")
_HAS_REASONS = "{r}.outcome = 'answered' AND NOT {burst} AND {is_list}"

DDL = (
    "CREATE TABLE IF NOT EXISTS rollup (dim TEXT NOT NULL, slot INTEGER NOT NULL, "
    "key TEXT NOT NULL, "
    + ", ".join(f"{t} INTEGER NOT NULL DEFAULT 0" for t in TALLIES)
    + ", PRIMARY KEY (dim, slot, key)) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS rollup_reasons (slot INTEGER NOT NULL, grp TEXT NOT NULL, "
    "reason TEXT NOT NULL, n INTEGER NOT NULL, PRIMARY KEY (slot, grp, reason)) WITHOUT ROWID",
    # Visits and spend per loyalty id (every receipt, asked or not): value segments.
    "CREATE TABLE IF NOT EXISTS shoppers (loyalty_id TEXT PRIMARY KEY, visits INTEGER NOT NULL, "
    "spend REAL NOT NULL) WITHOUT ROWID",
)


def slot_of(r: str, seconds: int, dialect: str = "sqlite") -> str:
    """The slot (Unix s) of record `r` at `seconds` a slot, or the all-time slot."""
    if not seconds:
        return str(ALL_TIME_SLOT)
    return f"({sql('{when}', r, dialect)} / {seconds * 1000}) * {seconds}"


def key_of(expr: str, r: str, dialect: str = "sqlite") -> str:
    return f"COALESCE(CAST({sql(expr, r, dialect)} AS TEXT), '')"


def flag(cond: str, r: str, dialect: str = "sqlite") -> str:
    return f"CASE WHEN {sql(cond, r, dialect)} THEN 1 ELSE 0 END"


def group_of(r: str, dialect: str = "sqlite") -> str:
    """The group of record `r`'s reasons: an NPS class, or kind:value."""
    return sql(_GROUP, r, dialect)


def _reasons_of(r: str) -> str:
    """The counted reasons of record `r`, one row `j` each (none for a burst
    or an answer without a valid list of reasons)."""
    return f"json_each(CASE WHEN {sql(_HAS_REASONS, r)} THEN {r}.reasons ELSE '[]' END) AS j"


def reason_list(r: str) -> str:
    """PostgreSQL: record `r`'s counted reasons as a jsonb array ('[]' for
    none), for jsonb_array_elements_text."""
    return f"(CASE WHEN {sql(_HAS_REASONS, r, 'pg')} THEN {r}.reasons ELSE '[]'::jsonb END)"


def _change(r: str, sign: str) -> list[str]:
    """Statements adding (sign '') or taking away (sign '-') record `r`."""
    cols = ", ".join(TALLIES)
    sets = ", ".join(f"{t} = {t} + excluded.{t}" for t in TALLIES)
    out = []
    flags = ", ".join(f"{sign}{flag(c, r)}" for c in TALLIES.values())
    for dim, (expr, sizes) in DIMS.items():
        for seconds in sizes:
            out.append(f"INSERT INTO rollup (dim, slot, key, {cols}) VALUES ('{dim}', "
                       f"{slot_of(r, seconds)}, {key_of(expr, r)}, {flags}) "
                       f"ON CONFLICT (dim, slot, key) DO UPDATE SET {sets}")
    for seconds in REASON_SLOTS:
        out.append(f"INSERT INTO rollup_reasons (slot, grp, reason, n) SELECT "
                   f"{slot_of(r, seconds)}, {group_of(r)}, CAST(j.value AS TEXT), {sign}1 "
                   f"FROM {_reasons_of(r)} WHERE {group_of(r)} IS NOT NULL "
                   f"ON CONFLICT (slot, grp, reason) DO UPDATE SET n = n + excluded.n")
    return out


def _shopper(r: str, sign: str) -> str:
    return (f"INSERT INTO shoppers VALUES ({r}.loyalty_id, {sign}1, {sign}COALESCE({r}.total, 0)) "
            f"ON CONFLICT (loyalty_id) DO UPDATE SET visits = visits + excluded.visits, "
            f"spend = spend + excluded.spend")


def _triggers(name: str, event: str, when: str, body: list[str]) -> list[tuple[str, str]]:
    """(name, CREATE TRIGGER) pairs, one trigger per statement: SQLite 3.40
    runs a trigger of four or more of these upserts ~8x slower than the same
    statements as separate triggers (measured: 650 vs 80 us per close)."""
    return [(f"{name}_{i}", f"CREATE TRIGGER IF NOT EXISTS {name}_{i} AFTER {event} ON records "
                            f"WHEN {when} BEGIN {sql}; END") for i, sql in enumerate(body)]


_HAS_ID = "COALESCE({r}.loyalty_id, '') <> ''"
_ALL_TRIGGERS = (
    _triggers("rollup_insert", "INSERT", "NEW.state = 'closed'", _change("NEW", ""))
    # A late answer re-closes a record, the probe's estimate may come after
    # the close: take the old version away, add the new one.
    + _triggers("rollup_update_old", "UPDATE", "OLD.state = 'closed'", _change("OLD", "-"))
    + _triggers("rollup_update_new", "UPDATE", "NEW.state = 'closed'", _change("NEW", ""))
    + _triggers("rollup_delete", "DELETE", "OLD.state = 'closed'", _change("OLD", "-"))
    + _triggers("shoppers_insert", "INSERT", _HAS_ID.format(r="NEW"), [_shopper("NEW", "")])
    + _triggers("shoppers_delete", "DELETE", _HAS_ID.format(r="OLD"), [_shopper("OLD", "-")]))
TRIGGERS = tuple(sql for _, sql in _ALL_TRIGGERS)
TRIGGER_NAMES = tuple(name for name, _ in _ALL_TRIGGERS)


def create(conn: sqlite3.Connection) -> None:
    for sql in DDL + TRIGGERS:
        conn.execute(sql)


def rebuild(conn: sqlite3.Connection) -> int:
    """Recompute every total from the records, in one transaction of the
    caller's (after a migration, or `loyalty-button records rebuild-totals`).
    Returns the number of closed records counted."""
    for table in ("rollup", "rollup_reasons", "shoppers"):
        conn.execute(f"DELETE FROM {table}")
    cols = ", ".join(TALLIES)
    sums = ", ".join(f"SUM({flag(c, 'r')})" for c in TALLIES.values())
    for dim, (expr, sizes) in DIMS.items():
        for seconds in sizes:
            conn.execute(f"INSERT INTO rollup (dim, slot, key, {cols}) SELECT '{dim}', "
                         f"{slot_of('r', seconds)}, {key_of(expr, 'r')}, {sums} FROM records AS r "
                         f"WHERE r.state = 'closed' GROUP BY 2, 3")
    for seconds in REASON_SLOTS:
        conn.execute(f"INSERT INTO rollup_reasons (slot, grp, reason, n) SELECT s, g, v, "
                     f"COUNT(*) FROM (SELECT {slot_of('r', seconds)} AS s, "
                     f"{group_of('r')} AS g, CAST(j.value AS TEXT) AS v FROM records AS r, "
                     f"{_reasons_of('r')} WHERE r.state = 'closed') WHERE g IS NOT NULL "
                     f"GROUP BY s, g, v")
    conn.execute("INSERT INTO shoppers SELECT loyalty_id, COUNT(*), SUM(COALESCE(total, 0)) "
                 "FROM records WHERE COALESCE(loyalty_id, '') <> '' GROUP BY loyalty_id")
    return conn.execute("SELECT COALESCE(SUM(n), 0) FROM rollup WHERE dim = 'all' "
                        f"AND slot = {ALL_TIME_SLOT}").fetchone()[0]


# --- reading ------------------------------------------------------------------------

_SUMS = ", ".join(f"SUM({t})" for t in TALLIES)


def _period(period) -> tuple[str, tuple]:
    """SQL and parameters for the all-time rows, or for the slots in
    [start, end) (Unix s)."""
    if period is None:
        return f" AND slot = {ALL_TIME_SLOT}", ()
    return " AND slot >= ? AND slot < ?", (max(0, period[0]), period[1])


def by_key(conn, dim: str, period=None) -> dict[str, Tally]:
    """key -> the totals of every record with that key, all time or in a
    period, (start, end) in Unix s, to the hour (tills only)."""
    if period is not None and SLOT_S not in DIMS[dim][1]:
        raise ValueError(f"{dim} is kept for all time only, not for a period")
    where, args = _period(period)
    return {key: Tally(*sums) for key, *sums in conn.execute(
        f"SELECT key, {_SUMS} FROM rollup WHERE dim = ?{where} GROUP BY key", (dim, *args))}


def by_segment(conn, segment_sql: str | None) -> list[tuple[str, Tally]]:
    """Totals per value segment: the shopper dimension's rows joined with
    `shoppers`, grouped by `segment_sql` (an expression over `s`); records
    without a card are 'non-member'."""
    seg = segment_sql or "NULL"
    return [(key, Tally(*sums)) for key, *sums in conn.execute(
        f"SELECT CASE WHEN s.loyalty_id IS NULL THEN 'non-member' ELSE {seg} END AS g, "
        f"{_SUMS} FROM rollup "
        f"LEFT JOIN shoppers AS s ON s.loyalty_id = rollup.key AND s.visits > 0 "
        f"WHERE dim = 'shopper' AND slot = {ALL_TIME_SLOT} GROUP BY g")]


def _slot_range(conn) -> tuple[int | None, int | None]:
    """The first and last quarter hour with records (one query each: SQLite
    answers a lone MIN or MAX from the index, not both at once)."""
    where = "FROM rollup WHERE dim = 'all' AND slot >= 0"
    return (conn.execute(f"SELECT MIN(slot) {where}").fetchone()[0],
            conn.execute(f"SELECT MAX(slot) {where}").fetchone()[0])


def _utc_offset(tz, t: int) -> int:
    return int(datetime.fromtimestamp(t, timezone.utc).astimezone(tz).utcoffset().total_seconds())


def _offsets(conn, tz) -> list[tuple[int, int, int]]:
    """(start, end, UTC offset in s) spans of constant offset of `tz` over
    the slots there are: a handful of SQL groupings instead of one per slot."""
    first, last = _slot_range(conn)
    if first is None:
        return []

    def offset(t: int) -> int:
        return _utc_offset(tz, t)
    spans, start, here = [], first, offset(first)
    t = first
    while t <= last:
        step = min(86_400, last + SLOT_ALL_S - t)
        nxt = t + step
        if offset(nxt) != here:  # a change within (t, nxt]: find its quarter hour
            lo, hi = t, nxt
            while hi - lo > SLOT_ALL_S:
                mid = lo + (hi - lo) // 2 // SLOT_ALL_S * SLOT_ALL_S
                lo, hi = (mid, hi) if offset(mid) == here else (lo, mid)
            spans.append((start, hi, here))
            start, here = hi, offset(hi)
        t = nxt
    spans.append((start, last + 1, here))
    return spans


def _fixed_offset(conn, tz) -> int | None:
    """`tz`'s UTC offset in s if it was the same over all the store's slots
    (checked a week apart: no clock change lasts less), else None."""
    first, last = _slot_range(conn)
    if first is None:
        return 0
    seen = {_utc_offset(tz, t) for t in range(first, last, 7 * 86400)}
    seen.add(_utc_offset(tz, last))
    return seen.pop() if len(seen) == 1 else None


def by_hour_of_day(conn, tz) -> list[tuple[int, Tally]]:
    """(local hour 0-23, totals): from the 96 all-time quarter-of-the-day
    rows when `tz` kept one offset over the data (the cost does not grow
    with history), else span by span from the store's quarter hours."""
    off = _fixed_offset(conn, tz)
    if off is None:
        return by_local(conn, tz, 3600, 24)
    out: dict[int, Tally] = {}
    for q, t in by_key(conn, "day_quarter").items():
        hour = (int(q) * SLOT_ALL_S + off) % 86400 // 3600  # Python's % is never negative
        out[hour] = add(out[hour], t) if hour in out else t
    return sorted(out.items())


def by_local(conn, tz, seconds: int, modulo: int | None = None,
             period=None) -> list[tuple[int, Tally]]:
    """Totals per local time bucket in `tz`: (local Unix s // seconds, or
    that % modulo) -> totals, e.g. seconds 86400 for days, 3600 and modulo
    24 for the hours of the day. Grouped in SQL, span by span of constant
    offset: the rows read are the store's hours (or quarter hours in a
    zone off the hour), in C."""
    out: dict[int, Tally] = {}
    # The open end is a whole hour, or no trend would ever read hour rows.
    lo, hi = period or (0, (1 << 62) // SLOT_S * SLOT_S)
    spans = _offsets(conn, tz)
    # Hour rows when every offset, span boundary and period bound falls on
    # an hour (the first span starts in the data's first hour: floored).
    hourly = (seconds % SLOT_S == 0 and lo % SLOT_S == 0 and hi % SLOT_S == 0
              and all(off % SLOT_S == 0 for _, _, off in spans)
              and all(start % SLOT_S == 0 for start, _, _ in spans[1:]))
    dim = "all_hours" if hourly else "all"
    for start, end, off in spans:
        if hourly:
            start -= start % SLOT_S
        bucket = f"(slot + {off}) / {seconds}" + (f" % {modulo}" if modulo else "")
        for b, *sums in conn.execute(
                f"SELECT {bucket} AS b, {_SUMS} FROM rollup WHERE dim = ? AND slot >= ? "
                f"AND slot < ? GROUP BY b", (dim, max(0, start, lo), min(end, hi))):
            out[b] = add(out[b], Tally(*sums)) if b in out else Tally(*sums)
    return sorted(out.items())


def total(conn, period=None) -> Tally:
    where, args = _period(period)
    row = conn.execute(f"SELECT {_SUMS} FROM rollup WHERE dim = 'all'{where}", args).fetchone()
    return Tally(*(v or 0 for v in row))


def reasons(conn, period=None) -> dict[str, dict[str, int]]:
    where, args = _period(period)
    out: dict[str, dict[str, int]] = {}
    for grp, reason, n in conn.execute(
            f"SELECT grp, reason, SUM(n) AS n FROM rollup_reasons WHERE 1{where} "
            f"GROUP BY grp, reason HAVING SUM(n) > 0 ORDER BY grp, n DESC, reason", args):
        out.setdefault(grp, {})[reason] = n
    return out


def add(a: Tally, b: Tally) -> Tally:
    return Tally(*(x + y for x, y in zip(a, b)))
