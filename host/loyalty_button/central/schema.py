"""The central service's own tables, beside the records and their totals
(forward/postgres.py, which both the ingest and the direct PostgreSQL
destination write): stores and their tokens, users, sessions, report
subscriptions and sends, and the read-only views for BI tools. Migrated
under the same advisory lock, in one transaction per step."""

from __future__ import annotations

from ..forward import postgres
from ..service import reports, rollup

VERSION = 2
ROLES = ("chain", "region", "store")

# The NPS interval of reports.nps_counts (adjusted Wald) as SQL over the
# counts p, s (passives) and d, in double precision as Python computes it:
# the BI views give the dashboard's figures unrounded (a test holds them
# equal once rounded to the dashboard's one decimal).
def _nps_ci(p: str, s: str, d: str, sign: str) -> str:
    n3 = f"({p} + {s} + {d} + 3)::float8"
    pp, pd = f"(({p} + 0.75::float8) / {n3})", f"(({d} + 0.75::float8) / {n3})"
    half = f"{reports.Z95!r}::float8 * sqrt(({pp} + {pd} - ({pp} - {pd}) ^ 2) / {n3})"
    bound = "GREATEST(-100" if sign == "-" else "LEAST(100"
    return (f"CASE WHEN {p} + {s} + {d} > 0 THEN {bound}, 100 * ({pp} - {pd} "
            f"{sign} {half})) END")


_ASKED = " + ".join(rollup.ASKED)

MIGRATIONS = {1: [
    """CREATE TABLE IF NOT EXISTS lb_stores (
        store text PRIMARY KEY, name text NOT NULL, region text NOT NULL DEFAULT '',
        token_hash text UNIQUE, token_hint text, token_issued timestamptz,
        revoked boolean NOT NULL DEFAULT false,
        created timestamptz NOT NULL DEFAULT now(),
        last_batch timestamptz, batches bigint NOT NULL DEFAULT 0,
        records bigint NOT NULL DEFAULT 0, refused bigint NOT NULL DEFAULT 0,
        last_refusal text, health jsonb, health_at timestamptz)""",
    "CREATE INDEX IF NOT EXISTS lb_stores_region ON lb_stores (region)",
    """CREATE TABLE IF NOT EXISTS lb_users (
        name text PRIMARY KEY, pwhash text NOT NULL,
        role text NOT NULL CHECK (role IN ('chain', 'region', 'store')),
        scope text NOT NULL DEFAULT '', email text, lang text NOT NULL DEFAULT 'ru')""",
    """CREATE TABLE IF NOT EXISTS lb_sessions (
        token_hash text PRIMARY KEY,
        name text NOT NULL REFERENCES lb_users ON DELETE CASCADE ON UPDATE CASCADE,
        pwhash text NOT NULL, expires timestamptz NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS lb_subscriptions (
        name text NOT NULL REFERENCES lb_users ON DELETE CASCADE,
        every text NOT NULL CHECK (every IN ('daily', 'weekly')),
        created timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (name, every))""",
    """CREATE TABLE IF NOT EXISTS lb_report_sends (
        name text NOT NULL REFERENCES lb_users ON DELETE CASCADE,
        every text NOT NULL, first_day date NOT NULL, last_day date NOT NULL,
        state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
        attempts integer NOT NULL DEFAULT 0, last_error text,
        next_try timestamptz NOT NULL DEFAULT now(), sent_at timestamptz,
        PRIMARY KEY (name, every, first_day))""",
    # --- for BI tools: read-only views, no loyalty ids (docs/central.md) ---
    "CREATE SCHEMA IF NOT EXISTS bi",
    "CREATE OR REPLACE VIEW bi.stores AS SELECT store, name, region FROM lb_stores",
    f"""CREATE OR REPLACE VIEW bi.answers AS SELECT r.id, r.store, s.region, r.till, r.cashier,
        r.receipt, r.qid AS question, r.kind, r.outcome, r.reason,
        CASE WHEN {rollup.sql('{isint}', 'r', 'pg')} THEN {rollup.sql('{int}', 'r', 'pg')}::integer
             END AS score,
        {rollup.sql('{text}', 'r', 'pg')} AS answer, r.reasons, r.burst IS NOT NULL AND r.burst <> 0
        AS burst, r.member, r.lang, r.total, r.currency, r.items, r.advert, r.emotion,
        r.age_band, r.gender, r.answer_ms,
        to_timestamp({rollup.sql('{when}', 'r', 'pg')} / 1000.0) AS asked_at,
        (to_timestamp({postgres._slot('r', postgres.DAY_S)}) AT TIME ZONE 'UTC')::date AS day
        FROM lb_records AS r LEFT JOIN lb_stores AS s USING (store)""",
    f"""CREATE OR REPLACE VIEW bi.store_days AS SELECT t.store, s.region,
        (to_timestamp(t.slot) AT TIME ZONE 'UTC')::date AS day, t.n AS receipts,
        ({_ASKED}) AS asked, t.answered,
        CASE WHEN ({_ASKED}) > 0 THEN 100 * t.answered::float8 / ({_ASKED}) END
            AS response_rate_pct,
        t.promoters, t.passives, t.detractors,
        CASE WHEN t.promoters + t.passives + t.detractors > 0 THEN
            100 * (t.promoters - t.detractors)::float8
            / (t.promoters + t.passives + t.detractors) END AS nps,
        {_nps_ci('t.promoters', 't.passives', 't.detractors', '-')} AS nps_ci95_low,
        {_nps_ci('t.promoters', 't.passives', 't.detractors', '+')} AS nps_ci95_high,
        t.csat_1, t.csat_2, t.csat_3, t.csat_4, t.csat_5
        FROM lb_totals AS t LEFT JOIN lb_stores AS s USING (store)
        WHERE t.dim = 'all_days'""",
]}


# Version 2: the shopper's phone survey (docs/phone-survey.md). A store's
# number goes in its links; its survey (what the catalogue asks on the
# phone) comes with its status. An answer is kept per link (one per
# receipt: the primary key), with a short response id the shopper can
# quote; `seq` moves on every change, so a store fetches what changed
# since the last it saw. A deletion wipes the answer and leaves a row of
# who deleted which response when.
MIGRATIONS[2] = [
    "ALTER TABLE lb_stores ADD COLUMN IF NOT EXISTS number serial",
    "CREATE UNIQUE INDEX IF NOT EXISTS lb_stores_number ON lb_stores (number)",
    "ALTER TABLE lb_stores ADD COLUMN IF NOT EXISTS phone_survey jsonb",
    "CREATE SEQUENCE IF NOT EXISTS lb_phone_seq",
    """CREATE TABLE IF NOT EXISTS lb_phone_answers (
        store text NOT NULL, ref text NOT NULL, response text NOT NULL UNIQUE,
        seq bigint NOT NULL DEFAULT nextval('lb_phone_seq'),
        answered_at timestamptz NOT NULL DEFAULT now(), lang text, doc jsonb,
        deleted_at timestamptz, PRIMARY KEY (store, ref))""",
    "CREATE INDEX IF NOT EXISTS lb_phone_answers_seq ON lb_phone_answers (store, seq)",
    """CREATE TABLE IF NOT EXISTS lb_phone_deletions (
        response text PRIMARY KEY, store text NOT NULL, ref text NOT NULL,
        answered_at timestamptz, deleted_at timestamptz NOT NULL DEFAULT now(),
        by_whom text NOT NULL, note text)""",
    # The BI view of days gains the phone's answers and NPS (new columns
    # go last: CREATE OR REPLACE VIEW keeps the old ones in place).
    MIGRATIONS[1][-1].replace(
        "t.csat_1, t.csat_2, t.csat_3, t.csat_4, t.csat_5",
        "t.csat_1, t.csat_2, t.csat_3, t.csat_4, t.csat_5, t.phone_n AS phone_answers, "
        "CASE WHEN t.phone_promoters + t.phone_passives + t.phone_detractors > 0 THEN "
        "100 * (t.phone_promoters - t.phone_detractors)::float8 / (t.phone_promoters + "
        "t.phone_passives + t.phone_detractors) END AS phone_nps"),
]


def migrate(conn) -> int:
    """The records' schema (postgres.migrate), then the central service's
    own; returns the central version found."""
    postgres.migrate(conn)
    return postgres.apply_migrations(conn, "central_schema", VERSION, MIGRATIONS,
                                     "upgrade the central service")


def grant_bi(conn, role: str, password: str) -> None:
    """A login that reads the bi views and nothing else (the views run with
    their owner's rights, so it needs none on the tables)."""
    from psycopg import sql
    r = sql.Identifier(role)
    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
    verb = "ALTER" if exists else "CREATE"
    conn.execute(sql.SQL(verb + " ROLE {} LOGIN PASSWORD {} NOSUPERUSER NOCREATEDB "
                         "NOCREATEROLE").format(r, sql.Literal(password)))
    db = conn.execute("SELECT current_database()").fetchone()[0]
    conn.execute(sql.SQL("REVOKE ALL ON SCHEMA public FROM {}").format(r))
    conn.execute(sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(db), r))
    conn.execute(sql.SQL("GRANT USAGE ON SCHEMA bi TO {}").format(r))
    conn.execute(sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA bi TO {}").format(r))
