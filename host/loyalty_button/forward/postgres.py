"""The chain's central PostgreSQL: every store host upserts its records
(pseudonymised unless allowed raw ids) into one table, keyed by the record
id, so a retry or a re-send never makes a second row. The schema is created
and migrated by this module (on first connect, under an advisory lock so
many store hosts starting at once do not race), or ahead of time by a DBA
with `loyalty-button aggregator migrate --dsn ...` (docs/forwarding.md).

A chain has hundreds of millions of rows, so no report reads them:
triggers keep running totals per store (`lb_totals`, `lb_reason_totals`)
in the transaction that upserts records, counted by the same rules as a
store's own reports (service/rollup.py, in PostgreSQL's words), and
`loyalty-button aggregator report` reads only those."""

from __future__ import annotations

import json
import logging

from ..service import reports, rollup
from . import http

log = logging.getLogger(__name__)

SCHEMA_VERSION = 5
_LOCK = 0x4C425247  # "LBRG": pg_advisory_xact_lock key for migrations

# version -> statements that take the schema from version-1 to version.
MIGRATIONS = {
    1: ["""CREATE TABLE IF NOT EXISTS lb_records (
            id          text PRIMARY KEY,
            store       text NOT NULL,
            till        text, receipt text, panel text,
            loyalty_id  text,           -- a pseudonym unless the host sends raw ids
            member      boolean NOT NULL,
            cashier     text, total numeric, currency text, items integer, lang text,
            sale_ts     bigint, rule text, qid text, kind text, asked_ms bigint,
            outcome     text, reason text, value jsonb, reasons jsonb,
            answer_ms   integer, late boolean, closed_ms bigint, advert text,
            probe text, emotion text, emotions jsonb, c_value integer,
            age_band text, gender text, extras jsonb,
            first_seen  timestamptz NOT NULL DEFAULT now(),
            updated     timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX IF NOT EXISTS lb_records_store_asked ON lb_records (store, asked_ms)",
        "CREATE INDEX IF NOT EXISTS lb_records_loyalty ON lb_records (loyalty_id)"],
    # Presses in a burst the panel flagged (a child mashing the buttons).
    2: ["ALTER TABLE lb_records ADD COLUMN IF NOT EXISTS burst integer"],
}

# --- running totals (schema 3) ----------------------------------------------------

# What the chain's totals are kept by: every dimension a store keeps for
# all time (bar its shoppers: the chain has millions), the store as a whole
# per hour, and per day the store as a whole, its tills, cashiers and
# questions (the chain dashboard's periods and drill-down).
#
# A day is the store's own calendar day: a record carries its store's UTC
# offset at that moment (utc_offset_s, schema 4), and a day's slot is that
# local date's midnight read as UTC (Unix s). So "Monday" is each store's
# Monday across the chain's time zones, and a store's day here holds the
# same records as its own report of that date. A record without an offset
# (a store host from before schema 4) counts by its UTC date.
DAY_S = 86_400
# dim -> (the store dimension whose key it uses, its slot sizes).
CENTRAL_DIMS = {"all": ("all", (rollup.ALL_TIME, rollup.SLOT_S)), "all_days": ("all", (DAY_S,)),
                **{d: (d, (rollup.ALL_TIME, DAY_S)) for d in ("till", "cashier", "question")},
                **{d: (d, (rollup.ALL_TIME,)) for d in ("language", "member", "advert",
                                                        "emotion")}}
CENTRAL_BY = ("store", "day") + tuple(d for d in CENTRAL_DIMS if not d.startswith("all"))
# Phone answers (schema 5, docs/phone-survey.md) are counted beside the
# panel's: how many records have one, and the phone's NPS classes.
_PHONE_NPS = ("(CASE WHEN jsonb_typeof({r}.phone -> 'nps') = 'number' "
              "THEN ({r}.phone ->> 'nps')::numeric END)")
PHONE_TALLIES = {"phone_n": "{r}.phone IS NOT NULL",
                 "phone_promoters": f"{_PHONE_NPS} >= 9",
                 "phone_passives": f"{_PHONE_NPS} IN (7, 8)",
                 "phone_detractors": f"{_PHONE_NPS} <= 6"}
TALLIES = {**rollup.TALLIES, **PHONE_TALLIES}


def _slot(r: str, seconds: int) -> str:
    if seconds == rollup.ALL_TIME:
        return str(rollup.ALL_TIME_SLOT)
    if seconds == DAY_S:
        when = rollup.sql("{when}", r, "pg")
        return (f"COALESCE(({when} / 1000 + COALESCE({r}.utc_offset_s, 0)) / {DAY_S} * {DAY_S}"
                f", 0)")
    return f"COALESCE({rollup.slot_of(r, seconds, 'pg')}, 0)"  # a record with no time at all


def _keys(r: str) -> str:
    """(dim, slot, key) rows of record `r`: one per total it counts in."""
    rows = []
    for dim, (kept_as, sizes) in CENTRAL_DIMS.items():
        key = rollup.key_of(rollup.DIMS[kept_as][0], r, "pg")
        rows += [f"('{dim}', {_slot(r, s)}::bigint, {key})" for s in sizes]
    return "(VALUES " + ", ".join(rows) + ") AS d(dim, slot, key)"


def _flags(r: str, tallies: dict) -> str:
    return ", ".join(f"{rollup.flag(c, r, 'pg')} AS {t}" for t, c in tallies.items())


def _reasons(r: str) -> str:
    """(slot, grp, reason, n) rows of record `r`'s reasons: all time and per day."""
    return (f"SELECT s.slot, {rollup.group_of(r, 'pg')} AS grp, j.value AS reason, COUNT(*) AS n "
            f"FROM jsonb_array_elements_text({rollup.reason_list(r)}) AS j(value), "
            f"(VALUES ({rollup.ALL_TIME_SLOT}::bigint), ({_slot(r, DAY_S)}::bigint)) AS s(slot) "
            f"GROUP BY 1, 2, 3")


def _add(source: str, sign: str = "", where: str = "TRUE", tallies: dict = TALLIES) -> list[str]:
    """Statements adding (sign '') or taking away ('-') every record of
    table `source` (lb_records, or a trigger's transition table) that
    matches `where` to the totals, grouped first: a batch of 500 records
    is a few hundred total rows changed, not 500 times 15."""
    sums = ", ".join(f"{sign}SUM(f.{t})" for t in tallies)
    sets = ", ".join(f"{t} = lb_totals.{t} + EXCLUDED.{t}" for t in tallies)
    return [f"INSERT INTO lb_totals (store, dim, slot, key, {', '.join(tallies)}) "
            f"SELECT r.store, d.dim, d.slot, d.key, {sums} FROM {source} AS r "
            f"CROSS JOIN LATERAL {_keys('r')} "
            f"CROSS JOIN LATERAL (SELECT {_flags('r', tallies)}) AS f "
            f"WHERE {where} GROUP BY 1, 2, 3, 4 "
            f"ON CONFLICT (store, dim, slot, key) DO UPDATE SET {sets}",
            f"INSERT INTO lb_reason_totals (store, slot, grp, reason, n) "
            f"SELECT r.store, x.slot, x.grp, x.reason, {sign}SUM(x.n) FROM {source} AS r "
            f"CROSS JOIN LATERAL ({_reasons('r')}) AS x WHERE x.grp IS NOT NULL AND {where} "
            f"GROUP BY 1, 2, 3, 4 ON CONFLICT (store, slot, grp, reason) "
            f"DO UPDATE SET n = lb_reason_totals.n + EXCLUDED.n"]


# A statement's rows as its AFTER trigger sees them (transition tables): one
# trigger per event, as PostgreSQL requires of transition tables. An
# upsert fires the INSERT trigger for the rows it inserted and the UPDATE
# trigger for those it changed (old and new).
_EVENTS = {"insert": ("INSERT", "NEW TABLE AS new_rows", [("new_rows", "")]),
           "update": ("UPDATE", "OLD TABLE AS old_rows NEW TABLE AS new_rows",
                      [("old_rows", "-"), ("new_rows", "")]),
           "delete": ("DELETE", "OLD TABLE AS old_rows", [("old_rows", "-")])}


def _triggers(tallies: dict = TALLIES) -> list[str]:
    out = []
    for name, (event, referencing, parts) in _EVENTS.items():
        body = ";\n  ".join(sql for source, sign in parts
                             for sql in _add(source, sign, tallies=tallies))
        # SECURITY DEFINER: the totals are written as the function's owner
        # (who migrated), so a store host's login needs no rights on them
        # and cannot change them except through its records; the search
        # path is pinned.
        out += [f"CREATE OR REPLACE FUNCTION lb_totals_{name}() RETURNS trigger "
                f"LANGUAGE plpgsql SECURITY DEFINER SET search_path FROM CURRENT AS $fn$\n"
                f"BEGIN\n  {body};\n  RETURN NULL;\nEND\n$fn$",
                f"DROP TRIGGER IF EXISTS lb_totals_{name} ON lb_records",
                f"CREATE TRIGGER lb_totals_{name} AFTER {event} ON lb_records "
                f"REFERENCING {referencing} FOR EACH STATEMENT "
                f"EXECUTE FUNCTION lb_totals_{name}()"]
    return out


def _backfill(where: str = "TRUE", tallies: dict = TALLIES) -> list[str]:
    """Count the rows already there, every total (the migration to schema 4;
    `where`, over records `r`: a part of them, e.g. some stores, whose
    totals are not there yet)."""
    return _add("lb_records", "", where, tallies)


MIGRATIONS[3] = [
    "CREATE TABLE IF NOT EXISTS lb_totals (store text NOT NULL, dim text NOT NULL, "
    "slot bigint NOT NULL, key text NOT NULL, "
    + ", ".join(f"{t} bigint NOT NULL DEFAULT 0" for t in rollup.TALLIES)
    + ", PRIMARY KEY (store, dim, slot, key))",
    "CREATE TABLE IF NOT EXISTS lb_reason_totals (store text NOT NULL, slot bigint NOT NULL, "
    "grp text NOT NULL, reason text NOT NULL, n bigint NOT NULL, "
    "PRIMARY KEY (store, slot, grp, reason))",
    # The chain's day trend reads the day rows of every store.
    "CREATE INDEX IF NOT EXISTS lb_totals_dim_slot ON lb_totals (dim, slot)",
]
# Schema 4: the store's own days (utc_offset_s), tills, cashiers and
# questions per day, and the totals kept per statement. The triggers are
# made here (schema 3's row trigger goes) and every total counted afresh
# from the records, in the migration's transaction: CREATE TRIGGER holds
# off other hosts' upserts until it commits, so nothing is counted twice
# or missed. (A database at schema 3 had the trigger and totals of then;
# one at 2 gets them here.)
MIGRATIONS[4] = [
    "ALTER TABLE lb_records ADD COLUMN IF NOT EXISTS utc_offset_s integer",
    "DROP TRIGGER IF EXISTS lb_totals ON lb_records",
    "DROP FUNCTION IF EXISTS lb_totals_apply()",
    *_triggers(rollup.TALLIES),
    "DELETE FROM lb_totals",
    "DELETE FROM lb_reason_totals",
    *_backfill(tallies=rollup.TALLIES),
]
# Schema 5: the shopper's phone survey. The link's receipt reference and
# the answer join the record; the totals count phone answers (nothing to
# count yet, so no backfill: the triggers are made again with the new sums).
MIGRATIONS[5] = [
    "ALTER TABLE lb_records ADD COLUMN IF NOT EXISTS phone_ref text",
    "ALTER TABLE lb_records ADD COLUMN IF NOT EXISTS phone jsonb",
    "CREATE INDEX IF NOT EXISTS lb_records_phone_ref ON lb_records (store, phone_ref) "
    "WHERE phone_ref IS NOT NULL",
    *(f"ALTER TABLE lb_totals ADD COLUMN IF NOT EXISTS {t} bigint NOT NULL DEFAULT 0"
      for t in PHONE_TALLIES),
    *_triggers(),
]


def reasons(conn, store: str | None = None) -> dict[str, dict[str, int]]:
    """group -> reason -> count, all time, of one store or of the chain (as
    a store's `report summary` gives them)."""
    where, args = ("AND store = %s", [store]) if store is not None else ("", [])
    out: dict[str, dict[str, int]] = {}
    for grp, reason, n in conn.execute(
            f"SELECT grp, reason, SUM(n) FROM lb_reason_totals WHERE slot = "
            f"{rollup.ALL_TIME_SLOT} {where} GROUP BY 1, 2 HAVING SUM(n) > 0 "
            f"ORDER BY 1, 3 DESC, 2", args):
        out.setdefault(grp, {})[reason] = int(n)
    return out


def breakdown(conn, by: str, store: str | None = None) -> list[dict]:
    """The chain's breakdown by `by` (CENTRAL_BY: store, the store's day, or a
    dimension), of one store or of all, from the totals: the same rows as
    a store's `report breakdown`."""
    if by not in CENTRAL_BY:
        raise ValueError(f"unknown breakdown {by!r}; known: {', '.join(CENTRAL_BY)}")
    sums = ", ".join(f"SUM({t})" for t in rollup.TALLIES)
    where, args = "", []
    if store is not None:
        where, args = " AND store = %s", [store]
    if by == "store":
        q = (f"SELECT store, {sums} FROM lb_totals WHERE dim = 'all' AND slot = "
             f"{rollup.ALL_TIME_SLOT}{where} GROUP BY 1")
    elif by == "day":
        q = (f"SELECT to_char(to_timestamp(slot) AT TIME ZONE 'UTC', 'YYYY-MM-DD'), {sums} "
             f"FROM lb_totals WHERE dim = 'all_days'{where} GROUP BY slot")
    else:
        q = (f"SELECT key, {sums} FROM lb_totals WHERE dim = %s AND slot = "
             f"{rollup.ALL_TIME_SLOT}{where} GROUP BY 1")
        args.insert(0, by)
    groups = {}
    for key, *counts in conn.execute(q, args):
        t = rollup.Tally(*(int(c) for c in counts))
        if t.n:
            groups[key or "(none)"] = t
    return reports.breakdown_rows(groups, by)
COLUMNS = ("id", "store", "till", "receipt", "panel", "loyalty_id", "member", "cashier",
           "total", "currency", "items", "lang", "sale_ts", "rule", "qid", "kind", "asked_ms",
           "outcome", "reason", "value", "reasons", "answer_ms", "late", "closed_ms", "advert",
           "burst", "probe", "emotion", "emotions", "c_value", "age_band", "gender", "extras",
           "utc_offset_s", "phone_ref", "phone")
_JSONB = {"value", "reasons", "emotions", "extras", "phone"}
# lb_records' columns and their types, as the database has them (the DDL
# above is the one definition).
COLUMNS_SQL = ("SELECT column_name, data_type FROM information_schema.columns WHERE "
               "table_name = 'lb_records' AND table_schema = current_schema()")


def columns(rows) -> dict[str, str]:
    """The columns a record may fill, with their types, from COLUMNS_SQL's rows."""
    types = dict(rows)
    return {c: types[c] for c in COLUMNS if c in types}


def upsert_sql(cols: dict[str, str]) -> str:
    """Records as one JSON array (%s) upserted by id in one statement, so
    the totals' triggers run once for the lot. A row of another store's is
    left alone (the WHERE) and so missing from RETURNING: the caller
    refuses it."""
    names = ", ".join(cols)
    typed = ", ".join(f"{c} {t}" for c, t in cols.items())
    sets = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols if c != "id")
    return (f"INSERT INTO lb_records ({names}) SELECT {names} FROM "
            f"jsonb_to_recordset(%s::jsonb) AS x({typed}) ON CONFLICT (id) DO UPDATE SET "
            f"{sets}, updated = now() WHERE lb_records.store = EXCLUDED.store RETURNING id")


def _version(conn, key: str = "schema") -> int:
    if conn.execute("SELECT to_regclass('lb_meta')").fetchone()[0] is None:
        return 0
    row = conn.execute("SELECT value FROM lb_meta WHERE key = %s", (key,)).fetchone()
    return int(row[0]) if row else 0


def apply_migrations(conn, key: str, version: int, migrations: dict, too_new: str) -> int:
    """Bring the schema kept under lb_meta `key` to `version`, one
    transaction under the advisory lock (many hosts or workers starting at
    once do not race); returns the version found. A schema already current
    is only read, so a login without DDL rights can use it. `too_new` says
    what to do when the database is ahead of this software."""
    have = _version(conn, key)
    if have < version:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS lb_meta (key text PRIMARY KEY, "
                         "value text NOT NULL)")
            have = _version(conn, key)  # another one may have migrated meanwhile
            if have < version:
                for step in range(have + 1, version + 1):
                    for sql in migrations[step]:
                        conn.execute(sql)
                conn.execute("INSERT INTO lb_meta VALUES (%s, %s) ON CONFLICT (key) DO "
                             "UPDATE SET value = EXCLUDED.value", (key, str(version)))
                log.info("central database: %s %d -> %d", key, have, version)
    if have > version:
        raise RuntimeError(f"the central database has {key} {have}; this software knows "
                           f"{version}: {too_new}")
    return have


def migrate(conn) -> int:
    """Bring the records' schema to SCHEMA_VERSION; returns the version
    found (docs/forwarding.md: a store host's login needs no DDL rights)."""
    return apply_migrations(conn, "schema", SCHEMA_VERSION, MIGRATIONS,
                            "upgrade the store host's software")


def _row(p: dict) -> tuple:
    return tuple(json.dumps(p.get(c)) if c in _JSONB and p.get(c) is not None
                 else p.get(c) for c in COLUMNS)


class Postgres:
    def __init__(self, dest):
        self.dest = dest
        self.conn = None
        self.sql = None

    def _connect(self):
        import psycopg
        if self.conn is not None and not self.conn.closed:
            return self.conn
        try:
            self.conn = psycopg.connect(self.dest.dsn, connect_timeout=max(1, int(
                self.dest.timeout_s)), autocommit=True)
            migrate(self.conn)
            self.sql = upsert_sql(columns(self.conn.execute(COLUMNS_SQL).fetchall()))
        except psycopg.Error as e:
            self.conn = None
            raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
        return self.conn

    def _upsert(self, conn, payloads: list[dict]) -> int:
        with conn.transaction():
            return len(conn.execute(self.sql, (json.dumps(payloads, ensure_ascii=False),))
                       .fetchall())

    def send_batch(self, items: list[tuple[dict, int, str | None]]) -> list:
        """Upsert all in one statement; if that fails for data (not for the
        link), or a record's id is another store's, one by one, so one bad
        record cannot hold the rest."""
        import psycopg
        conn = self._connect()
        payloads = [p for p, _, _ in items]
        try:
            if self._upsert(conn, payloads) == len(items):
                return [None] * len(items)
        except psycopg.OperationalError as e:
            self.conn = None
            raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
        except (psycopg.Error, ValueError):
            pass
        out = []
        for p in payloads:
            try:
                if self._upsert(conn, [p]) == 1:
                    out.append(None)
                else:
                    out.append(http.Refused(f"postgres refused {p['id']}: the id is another "
                                            f"store's record"))
            except psycopg.OperationalError as e:
                self.conn = None
                raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
            except (psycopg.Error, ValueError) as e:
                out.append(http.Refused(f"postgres refused {p['id']}: {e}"))
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
