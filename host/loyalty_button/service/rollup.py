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

from lbpanel.protocol import nps_class

log = logging.getLogger(__name__)

# Outcomes of a question that was put to a shopper (docs/concentrator.md).
ASKED = ("answered", "declined", "timeout", "superseded", "no_reply")
NPS_CLASSES = ("promoter", "passive", "detractor")
CSAT_VALUES = (1, 2, 3, 4, 5)

# A time slot is the start of a quarter of an hour (Unix s) for the store as
# a whole: every time zone's offset is a whole number of quarters, so hour,
# day and week in the store's zone come out exact. Other dimensions keep an
# hour per slot (about 60 rows an hour for a 20-till store), and the shopper
# dimension (for value segments) one row per loyalty id for all time.
SLOT_ALL_S = 900
SLOT_S = 3600

_WHEN = "COALESCE(NULLIF({r}.asked_ms, 0), {r}.received_ms)"
_SCORED = "{r}.outcome = 'answered' AND typeof({r}.value) = 'integer'"
_CLEAN = _SCORED + " AND NOT COALESCE({r}.burst, 0)"


def _in(values) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def _nps_values(cls: str) -> tuple:
    return tuple(v for v in range(11) if nps_class(v) == cls)


# count name -> the condition (SQL over a record {r}) for a record to add 1.
TALLIES = {"n": "1"}
TALLIES.update({o: f"{{r}}.outcome = '{o}'" for o in ASKED})
TALLIES.update({cls + "s": f"{{r}}.kind = 'nps' AND {_CLEAN} AND {{r}}.value IN "
                           f"{_in(_nps_values(cls))}" for cls in NPS_CLASSES})
TALLIES["nps_burst"] = f"{{r}}.kind = 'nps' AND {_SCORED} AND COALESCE({{r}}.burst, 0)"
TALLIES["nps_declined"] = "{r}.kind = 'nps' AND {r}.outcome IN ('declined', 'timeout')"
TALLIES.update({f"csat_{v}": f"{{r}}.kind = 'csat' AND {_CLEAN} AND {{r}}.value = {v}"
                for v in CSAT_VALUES})
TALLIES["csat_burst"] = f"{{r}}.kind = 'csat' AND {_SCORED} AND COALESCE({{r}}.burst, 0)"

Tally = namedtuple("Tally", TALLIES)
EMPTY = Tally(*(0 for _ in TALLIES))

# dimension -> (its key, SQL over a record {r}; seconds per slot, 0 = all time)
DIMS = {
    "all": ("''", SLOT_ALL_S),
    "store": ("{r}.store", SLOT_S),
    "till": ("{r}.till", SLOT_S),
    "cashier": ("{r}.cashier", SLOT_S),
    "question": ("{r}.qid", SLOT_S),
    "language": ("{r}.lang", SLOT_S),
    "member": ("CASE WHEN COALESCE({r}.loyalty_id, '') <> '' THEN 'member' "
               "ELSE 'non-member' END", SLOT_S),
    "advert": ("{r}.advert", SLOT_S),
    "emotion": ("{r}.emotion", SLOT_S),
    "shopper": ("{r}.loyalty_id", 0),
}

# Reasons from the "why?" step: per NPS class, or per kind:value.
_GROUP = ("CASE WHEN {r}.kind = 'nps' AND typeof({r}.value) = 'integer' THEN CASE "
          + " ".join(f"WHEN {{r}}.value IN {_in(_nps_values(c))} THEN '{c}'" for c in NPS_CLASSES)
          + " END ELSE COALESCE({r}.kind, 'None') || ':' || COALESCE({r}.value, 'None') END")
_HAS_REASONS = ("{r}.outcome = 'answered' AND NOT COALESCE({r}.burst, 0) "
                "AND json_valid({r}.reasons) AND json_type({r}.reasons) = 'array'")

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


def _slot(r: str, seconds: int) -> str:
    if not seconds:
        return "0"
    return f"({_WHEN.format(r=r)} / {seconds * 1000}) * {seconds}"


def _key(expr: str, r: str) -> str:
    return f"COALESCE(CAST({expr.format(r=r)} AS TEXT), '')"


def _flag(cond: str, r: str) -> str:
    return f"CASE WHEN {cond.format(r=r)} THEN 1 ELSE 0 END"


def _change(r: str, sign: str) -> list[str]:
    """Statements adding (sign '') or taking away (sign '-') record `r`."""
    cols = ", ".join(TALLIES)
    sets = ", ".join(f"{t} = {t} + excluded.{t}" for t in TALLIES)
    out = []
    for dim, (expr, seconds) in DIMS.items():
        flags = ", ".join(f"{sign}{_flag(c, r)}" for c in TALLIES.values())
        out.append(f"INSERT INTO rollup (dim, slot, key, {cols}) VALUES ('{dim}', "
                   f"{_slot(r, seconds)}, {_key(expr, r)}, {flags}) "
                   f"ON CONFLICT (dim, slot, key) DO UPDATE SET {sets}")
    out.append(f"INSERT INTO rollup_reasons (slot, grp, reason, n) SELECT {_slot(r, SLOT_S)}, "
               f"{_GROUP.format(r=r)}, CAST(j.value AS TEXT), {sign}1 FROM json_each("
               f"CASE WHEN {_HAS_REASONS.format(r=r)} THEN {r}.reasons ELSE '[]' END) AS j "
               f"WHERE {_GROUP.format(r=r)} IS NOT NULL "
               f"ON CONFLICT (slot, grp, reason) DO UPDATE SET n = n + excluded.n")
    return out


def _shopper(r: str, sign: str) -> str:
    return (f"INSERT INTO shoppers VALUES ({r}.loyalty_id, {sign}1, {sign}COALESCE({r}.total, 0)) "
            f"ON CONFLICT (loyalty_id) DO UPDATE SET visits = visits + excluded.visits, "
            f"spend = spend + excluded.spend")


def _trigger(name: str, event: str, when: str, body: list[str]) -> str:
    return (f"CREATE TRIGGER IF NOT EXISTS {name} AFTER {event} ON records WHEN {when} BEGIN "
            + "; ".join(body) + "; END")


_HAS_ID = "COALESCE({r}.loyalty_id, '') <> ''"
TRIGGERS = (
    _trigger("rollup_insert", "INSERT", "NEW.state = 'closed'", _change("NEW", "")),
    # A late answer re-closes a record, the probe's estimate may come after
    # the close: take the old version away, add the new one.
    _trigger("rollup_update_old", "UPDATE", "OLD.state = 'closed'", _change("OLD", "-")),
    _trigger("rollup_update_new", "UPDATE", "NEW.state = 'closed'", _change("NEW", "")),
    _trigger("rollup_delete", "DELETE", "OLD.state = 'closed'", _change("OLD", "-")),
    _trigger("shoppers_insert", "INSERT", _HAS_ID.format(r="NEW"), [_shopper("NEW", "")]),
    _trigger("shoppers_delete", "DELETE", _HAS_ID.format(r="OLD"), [_shopper("OLD", "-")]),
)
TRIGGER_NAMES = ("rollup_insert", "rollup_update_old", "rollup_update_new", "rollup_delete",
                 "shoppers_insert", "shoppers_delete")


def create(conn: sqlite3.Connection) -> None:
    for sql in DDL + TRIGGERS:
        conn.execute(sql)


def rebuild(conn: sqlite3.Connection) -> int:
    """Recompute every total from the records, in one transaction of the
    caller's (after a migration, or `loyalty-button records rebuild`).
    Returns the number of closed records counted."""
    for table in ("rollup", "rollup_reasons", "shoppers"):
        conn.execute(f"DELETE FROM {table}")
    cols = ", ".join(TALLIES)
    for dim, (expr, seconds) in DIMS.items():
        sums = ", ".join(f"SUM({_flag(c, 'r')})" for c in TALLIES.values())
        conn.execute(f"INSERT INTO rollup (dim, slot, key, {cols}) SELECT '{dim}', "
                     f"{_slot('r', seconds)}, {_key(expr, 'r')}, {sums} FROM records AS r "
                     f"WHERE r.state = 'closed' GROUP BY 2, 3")
    conn.execute(f"INSERT INTO rollup_reasons (slot, grp, reason, n) SELECT s, g, v, COUNT(*) "
                 f"FROM (SELECT {_slot('r', SLOT_S)} AS s, {_GROUP.format(r='r')} AS g, "
                 f"CAST(j.value AS TEXT) AS v FROM records AS r, json_each(CASE WHEN "
                 f"{_HAS_REASONS.format(r='r')} THEN r.reasons ELSE '[]' END) AS j "
                 f"WHERE r.state = 'closed') WHERE g IS NOT NULL GROUP BY s, g, v")
    conn.execute("INSERT INTO shoppers SELECT loyalty_id, COUNT(*), SUM(COALESCE(total, 0)) "
                 "FROM records WHERE COALESCE(loyalty_id, '') <> '' GROUP BY loyalty_id")
    return conn.execute("SELECT COALESCE(SUM(n), 0) FROM rollup WHERE dim = 'all'").fetchone()[0]


# --- reading ------------------------------------------------------------------------

_SUMS = ", ".join(f"SUM({t})" for t in TALLIES)


def _period(period) -> tuple[str, tuple]:
    """SQL and parameters for slots in [start, end) (Unix s), or all time."""
    if period is None:
        return "", ()
    return " AND slot >= ? AND slot < ?", tuple(period)


def by_key(conn, dim: str, period=None) -> dict[str, Tally]:
    """key -> the totals of every record with that key (in the period:
    (start, end) in Unix s, to the hour; the shopper dimension is all time)."""
    where, args = _period(period if DIMS[dim][1] else None)
    return {key: Tally(*sums) for key, *sums in conn.execute(
        f"SELECT key, {_SUMS} FROM rollup WHERE dim = ?{where} GROUP BY key", (dim, *args))}


def by_slot(conn, period=None) -> list[tuple[int, Tally]]:
    """(slot start, Unix s; totals) for every quarter hour with a closed record."""
    where, args = _period(period)
    return [(slot, Tally(*sums)) for slot, *sums in conn.execute(
        f"SELECT slot, {', '.join(TALLIES)} FROM rollup WHERE dim = 'all'{where} ORDER BY slot",
        args)]


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


def shoppers(conn) -> dict[str, tuple[int, float]]:
    """loyalty id -> (receipts, total spend)."""
    return {lid: (visits, spend) for lid, visits, spend in conn.execute(
        "SELECT loyalty_id, visits, spend FROM shoppers WHERE visits > 0")}


def add(a: Tally, b: Tally) -> Tally:
    return Tally(*(x + y for x, y in zip(a, b)))
