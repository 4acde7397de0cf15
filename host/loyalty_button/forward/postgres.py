"""The chain's central PostgreSQL: every store host upserts its records
(pseudonymised unless allowed raw ids) into one table, keyed by the record
id, so a retry or a re-send never makes a second row. The schema is created
and migrated by this module (on first connect, under an advisory lock so
many store hosts starting at once do not race), or ahead of time by a DBA
with `loyalty-button aggregator migrate --dsn ...` (docs/forwarding.md)."""

from __future__ import annotations

import json
import logging

from . import http

log = logging.getLogger(__name__)

SCHEMA_VERSION = 2
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
COLUMNS = ("id", "store", "till", "receipt", "panel", "loyalty_id", "member", "cashier",
           "total", "currency", "items", "lang", "sale_ts", "rule", "qid", "kind", "asked_ms",
           "outcome", "reason", "value", "reasons", "answer_ms", "late", "closed_ms", "advert",
           "burst", "probe", "emotion", "emotions", "c_value", "age_band", "gender", "extras")
_JSONB = {"value", "reasons", "emotions", "extras"}
UPSERT = (f"INSERT INTO lb_records ({', '.join(COLUMNS)}) VALUES "
          f"({', '.join('%s' for _ in COLUMNS)}) ON CONFLICT (id) DO UPDATE SET "
          + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS if c != "id")
          + ", updated = now()")


def migrate(conn) -> int:
    """Bring the schema to SCHEMA_VERSION; returns the version found."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
        conn.execute("CREATE TABLE IF NOT EXISTS lb_meta (key text PRIMARY KEY, "
                     "value text NOT NULL)")
        row = conn.execute("SELECT value FROM lb_meta WHERE key = 'schema'").fetchone()
        have = int(row[0]) if row else 0
        if have > SCHEMA_VERSION:
            raise RuntimeError(f"the central database has schema {have}; this host knows "
                               f"{SCHEMA_VERSION}: upgrade the store host's software")
        for version in range(have + 1, SCHEMA_VERSION + 1):
            for sql in MIGRATIONS[version]:
                conn.execute(sql)
        conn.execute("INSERT INTO lb_meta VALUES ('schema', %s) ON CONFLICT (key) DO "
                     "UPDATE SET value = EXCLUDED.value", (str(SCHEMA_VERSION),))
    if have < SCHEMA_VERSION:
        log.info("central database: schema %d -> %d", have, SCHEMA_VERSION)
    return have


def _row(p: dict) -> tuple:
    return tuple(json.dumps(p.get(c)) if c in _JSONB and p.get(c) is not None
                 else p.get(c) for c in COLUMNS)


class Postgres:
    def __init__(self, dest):
        self.dest = dest
        self.conn = None

    def _connect(self):
        import psycopg
        if self.conn is not None and not self.conn.closed:
            return self.conn
        try:
            self.conn = psycopg.connect(self.dest.dsn, connect_timeout=max(1, int(
                self.dest.timeout_s)), autocommit=True)
            migrate(self.conn)
        except psycopg.Error as e:
            self.conn = None
            raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
        return self.conn

    def send_batch(self, items: list[tuple[dict, int, str | None]]) -> list:
        """Upsert all in one transaction; if that fails for data (not for the
        link), one by one, so one bad record cannot hold the rest."""
        import psycopg
        conn = self._connect()
        try:
            with conn.transaction():
                with conn.cursor() as cur:
                    cur.executemany(UPSERT, [_row(p) for p, _, _ in items])
            return [None] * len(items)
        except psycopg.OperationalError as e:
            self.conn = None
            raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
        except psycopg.Error:
            pass
        out = []
        for p, _, _ in items:
            try:
                with conn.transaction():
                    conn.execute(UPSERT, _row(p))
                out.append(None)
            except psycopg.OperationalError as e:
                self.conn = None
                raise http.Retry(f"postgres: {str(e).strip().splitlines()[0]}") from None
            except psycopg.Error as e:
                out.append(http.Refused(f"postgres refused {p['id']}: {e}"))
        return out

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
