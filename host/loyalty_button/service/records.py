"""The store's feedback records in SQLite (WAL).

One row per receipt, keyed by the record id (store + receipt number), so a
receipt sent twice or an answer delivered twice can never make a second row.
Writes go through one writer thread that commits whatever has queued up in
one transaction (group commit): a busy store pays one fsync per batch, not
per write, and the event loop never waits on the disk. A caller that must
know its write is durable (the HTTP endpoint, before it says 202) awaits
the write's future."""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import queue
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path

from ..settings import private
from . import rollup

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    id          TEXT PRIMARY KEY,   -- <store>-<receipt>: the stable record id
    store       TEXT NOT NULL,
    till        TEXT NOT NULL,
    receipt     TEXT NOT NULL,
    panel       TEXT,
    loyalty_id  TEXT,
    cashier     TEXT,
    total       REAL,
    currency    TEXT,
    items       INTEGER,
    extras      TEXT,               -- JSON object from the POS
    lang        TEXT,
    source      TEXT NOT NULL,      -- udp | http
    pos_msg_id  TEXT,
    sale_ts     INTEGER NOT NULL,   -- the POS's time of sale, Unix s
    received_ms INTEGER NOT NULL,   -- when the host took the receipt, Unix ms
    rule        TEXT,
    qid         TEXT,
    kind        TEXT,
    asked_ms    INTEGER,            -- question published, Unix ms
    state       TEXT NOT NULL,      -- pending | closed
    outcome     TEXT,               -- see docs/concentrator.md
    reason      TEXT,               -- why not asked / what went wrong
    value,                          -- int (nps, csat) or text (yesno, choice)
    reasons     TEXT,               -- JSON list of reason ids
    answer_ms   INTEGER,            -- question shown -> rating, on the panel
    shown_ms    INTEGER,
    answer_id   TEXT,
    late        INTEGER NOT NULL DEFAULT 0,  -- answer came after the host's deadline
    closed_ms   INTEGER,
    updated_ms  INTEGER NOT NULL,
    -- The emotion probe's estimate (schema 2; docs/probe.md). probe is NULL
    -- when the concentrator does not use a probe, else asked | ok | no_face
    -- | stale | no_camera | late | off | absent.
    probe       TEXT,
    emotion     TEXT,               -- the most likely of the 7 classes
    emotions    TEXT,               -- JSON {class: probability}
    c_value     INTEGER,            -- emotional score -100..100
    age_band    TEXT,
    gender      TEXT,
    probe_age_ms INTEGER,           -- estimate's distance in time from the sale
    advert      TEXT,               -- the advert on screen when asked (schema 3)
    burst       INTEGER,            -- presses in a burst the panel flagged (schema 4)
    -- The shopper's phone survey (schema 8; docs/phone-survey.md): the
    -- receipt reference in its link, and the answer the central service
    -- took (JSON {response, at_ms, lang, answers, nps, csat, comment}).
    phone_ref   TEXT,
    phone       TEXT
);
CREATE INDEX IF NOT EXISTS records_phone_ref ON records (phone_ref) WHERE phone_ref IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_loyalty ON records (loyalty_id, asked_ms);
CREATE INDEX IF NOT EXISTS records_received ON records (received_ms);
-- Start-up picks up the open transactions without reading the table (schema 5).
CREATE INDEX IF NOT EXISTS records_pending ON records (state) WHERE state = 'pending';
-- One durable outbox per destination (schema 3; docs/forwarding.md): a row
-- per closed record and destination, written in the same transaction as
-- the close, and marked sent only when the destination confirmed it.
CREATE TABLE IF NOT EXISTS outbox (
    dest        TEXT NOT NULL,
    record_id   TEXT NOT NULL,
    state       TEXT NOT NULL,      -- pending | sent | dead
    attempts    INTEGER NOT NULL DEFAULT 0,
    next_ms     INTEGER NOT NULL,   -- not before this time (backoff)
    queued_ms   INTEGER NOT NULL,
    sent_ms     INTEGER,
    last_error  TEXT,
    remote_ref  TEXT,               -- what the destination calls it
    PRIMARY KEY (dest, record_id)
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (dest, state, next_ms);
-- Input the host refused, kept (capped) so nothing a till or panel sent is
-- lost without a trace: what came, from where, and why it was refused.
CREATE TABLE IF NOT EXISTS rejects (
    n       INTEGER PRIMARY KEY,
    at_ms   INTEGER NOT NULL,
    source  TEXT NOT NULL,
    code    TEXT NOT NULL,
    detail  TEXT NOT NULL,
    raw     BLOB
);
"""

RECORD_FIELDS = ("id", "store", "till", "receipt", "panel", "loyalty_id", "cashier", "total",
                 "currency", "items", "extras", "lang", "source", "pos_msg_id", "sale_ts",
                 "received_ms", "rule", "qid", "kind", "asked_ms", "state", "outcome",
                 "reason", "value", "reasons", "answer_ms", "shown_ms", "answer_id", "late",
                 "closed_ms", "updated_ms", "probe", "emotion", "emotions", "c_value",
                 "age_band", "gender", "probe_age_ms", "advert", "burst", "phone_ref", "phone")
CLOSE_FIELDS = ("outcome", "reason", "value", "reasons", "answer_ms", "shown_ms",
                "answer_id", "late", "closed_ms", "advert", "burst")
MAX_REJECTS = 10000
MAX_RAW = 2048
_BATCH = 1000
# Group commit: at most one commit (one fsync) per this many seconds; a busy
# store's writes of that span share it. It is also the most a write waits.
_COMMIT_EVERY_S = 0.01
_STOP = object()

# ON CONFLICT(id), not OR IGNORE: only a second copy of a record is skipped;
# any other constraint failure is an error to see.
INSERT = (f"INSERT INTO records ({', '.join(RECORD_FIELDS)}) "
           f"VALUES ({', '.join('?' * len(RECORD_FIELDS))}) ON CONFLICT(id) DO NOTHING")
_CLOSE = (f"UPDATE records SET state = 'closed', "
          f"{', '.join(f + ' = ?' for f in CLOSE_FIELDS)}, updated_ms = ? WHERE id = ?")
PROBE_FIELDS = ("probe", "emotion", "emotions", "c_value", "age_band", "gender", "probe_age_ms")
# Columns added after schema 1, for databases written by an older version.
_MIGRATIONS = {2: [f"ALTER TABLE records ADD COLUMN {c}" for c in
                   ("probe TEXT", "emotion TEXT", "emotions TEXT", "c_value INTEGER",
                    "age_band TEXT", "gender TEXT", "probe_age_ms INTEGER")],
               3: ["ALTER TABLE records ADD COLUMN advert TEXT"],
               4: ["ALTER TABLE records ADD COLUMN burst INTEGER"],
               8: ["ALTER TABLE records ADD COLUMN phone_ref TEXT",
                   "ALTER TABLE records ADD COLUMN phone TEXT"]}
_ADD = "ALTER TABLE records ADD COLUMN "
_JSON_FIELDS = ("extras", "reasons", "emotions", "phone")
_PROBE = (f"UPDATE records SET {', '.join(f + ' = ?' for f in PROBE_FIELDS)}, "
          f"updated_ms = ? WHERE id = ?")
# A (re-)closed record goes (back) into every destination's outbox: a late
# answer that changes a record is sent again, under the same key.
_ENQUEUE = ("INSERT INTO outbox (dest, record_id, state, attempts, next_ms, queued_ms) "
            "VALUES (?, ?, 'pending', 0, ?, ?) ON CONFLICT(dest, record_id) DO UPDATE SET "
            "state = 'pending', attempts = 0, next_ms = excluded.next_ms, last_error = NULL")
# A phone answer (or its deletion) joins the record whose link it came by;
# a closed record goes to the destinations again, the cursor of what the
# central service sent is kept in the same transaction.
_PHONE = "UPDATE records SET phone = ?, updated_ms = ? WHERE phone_ref = ?"
_PHONE_ENQUEUE = ("INSERT INTO outbox (dest, record_id, state, attempts, next_ms, queued_ms) "
                  "SELECT ?, id, 'pending', 0, ?, ? FROM records WHERE phone_ref = ? AND "
                  "state = 'closed' ON CONFLICT(dest, record_id) DO UPDATE SET "
                  "state = 'pending', attempts = 0, next_ms = excluded.next_ms, "
                  "last_error = NULL")
PHONE_CURSOR = "phone_cursor"
_CURSOR = "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"
_REJECT = "INSERT INTO rejects (at_ms, source, code, detail, raw) VALUES (?, ?, ?, ?, ?)"


def now_ms() -> int:
    return int(time.time() * 1000)


def connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    if readonly:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed batch survives a power cut, not only a crash.
        conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.row_factory = sqlite3.Row
    return conn


def _encode(value):
    return None if value is None else json.dumps(value, ensure_ascii=False,
                                                 separators=(",", ":"))


def row_to_record(row: sqlite3.Row) -> dict:
    rec = dict(row)
    for key in _JSON_FIELDS:
        if rec.get(key) is not None:
            rec[key] = json.loads(rec[key])
    rec["late"] = bool(rec["late"])
    return rec



class DatabaseInUse(RuntimeError):
    """The database is held by a running concentrator (lock_database)."""


def lock_database(db: Path):
    """Held by the running concentrator (released when its process ends,
    however it ends). Returns the open file, or None when there is no
    database yet."""
    try:
        f = open(db, "rb")
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        f.close()
        raise DatabaseInUse(f"{db} is in use by a running concentrator "
                            f"(stop it first: systemctl stop loyalty-button)") from None
    return f


class RecordStore:
    def __init__(self, path: Path, destinations=()):
        self.path = Path(path)
        # Names of the forwarding destinations: every closed record is put
        # in each one's outbox in the same transaction that closes it.
        self.destinations = tuple(destinations)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Records carry loyalty ids: not for every user of the machine.
        # SQLite gives its WAL and shared-memory files the database's mode.
        private(self.path)
        self.counters: Counter[str] = Counter(dict.fromkeys(
            ("db_batches", "db_writes", "db_errors", "db_refused"), 0))
        writer = connect(self.path)
        self._migrate(writer)
        self._writer = writer
        # Reads from the event loop (duplicate checks, late answers) use their
        # own connection: WAL lets them run beside the writer.
        self.reader = connect(self.path)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="records-writer", daemon=True)
        self._thread.start()

    def _migrate(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        have = int(row[0]) if row else None
        if have is not None and have > SCHEMA_VERSION:
            raise RuntimeError(f"{self.path} was written by a newer version "
                               f"(schema {have}; this one knows {SCHEMA_VERSION})")
        if have is not None and have < SCHEMA_VERSION:
            conn.execute("BEGIN")
            have_cols = {r[1] for r in conn.execute("PRAGMA table_info(records)")}
            for version in range(have + 1, SCHEMA_VERSION + 1):
                for sql in _MIGRATIONS.get(version, []):
                    # SQLite has no ADD COLUMN IF NOT EXISTS: a column already
                    # there (a database whose version was set back) is kept.
                    if sql.startswith(_ADD) and sql[len(_ADD):].split()[0] in have_cols:
                        continue
                    conn.execute(sql)
            if have < 7:
                # Running totals came with schema 5, the answers of yes/no
                # and choice questions with 6, per till with 7: the triggers that keep them
                # are made again (their statements changed), and what is
                # there already is counted, in the same transaction as the
                # version change.
                for (name,) in conn.execute(
                        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND "
                        "(name LIKE 'rollup%' OR name LIKE 'shoppers%')").fetchall():
                    conn.execute(f'DROP TRIGGER "{name}"')
                rollup.create(conn)
                counted = rollup.rebuild(conn)
                log.info("record store %s: totals for reports counted from %d closed records",
                         self.path, counted)
            conn.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (str(SCHEMA_VERSION),))
            conn.execute("COMMIT")
            log.info("record store %s: schema %d -> %d", self.path, have, SCHEMA_VERSION)
        conn.executescript(SCHEMA)
        rollup.create(conn)
        if have is None:
            conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))

    # --- writes (any thread; futures resolve on their own loop) -------------

    def _put(self, sql, params, wait: bool):
        """Queue one write; `sql` may be a list of (sql, params) pairs that
        must commit together (a close and its outbox rows)."""
        fut = None
        if wait:
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
        self._queue.put((sql, params, fut))
        return fut

    def _with_outbox(self, sql: str, params: tuple, record_id: str):
        if not self.destinations:
            return sql, params
        now = now_ms()
        return [(sql, params)] + [(_ENQUEUE, (d, record_id, now, now))
                                  for d in self.destinations], ()

    def insert(self, rec: dict, wait: bool = False):
        """A new record (a receipt taken). Does nothing if the id exists."""
        rec.setdefault("updated_ms", now_ms())
        rec.setdefault("late", 0)
        params = encode_row(rec)
        if rec.get("state") == "closed":  # not asked: final at once
            return self._put(*self._with_outbox(INSERT, params, rec["id"]), wait)
        return self._put(INSERT, params, wait)

    def close(self, record_id: str, fields: dict, wait: bool = False):
        """Set the outcome of a record (the transaction is over)."""
        fields = dict(fields)
        fields.setdefault("late", 0)
        params = tuple(_encode(fields.get(f)) if f == "reasons" else fields.get(f)
                       for f in CLOSE_FIELDS)
        return self._put(*self._with_outbox(_CLOSE, params + (now_ms(), record_id),
                                            record_id), wait)

    def set_probe(self, record_id: str, fields: dict) -> None:
        """Merge the emotion probe's estimate (or why there is none)."""
        params = tuple(_encode(fields.get(f)) if f in _JSON_FIELDS else fields.get(f)
                       for f in PROBE_FIELDS)
        self._put(_PROBE, params + (now_ms(), record_id), False)

    def set_phones(self, changes: list[tuple[str, dict | None]], cursor: int) -> None:
        """Phone answers from the central service: [(receipt ref, answer or
        None for a deletion)], and the cursor to ask from next time, in one
        transaction (any thread)."""
        now = now_ms()
        steps = []
        for ref, answer in changes:
            steps.append((_PHONE, (_encode(answer), now, ref)))
            steps += [(_PHONE_ENQUEUE, (d, now, now, ref)) for d in self.destinations]
        steps.append((_CURSOR, (PHONE_CURSOR, str(cursor))))
        self._put(steps, (), False)

    def meta(self, key: str) -> str | None:
        rows = self.reader.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchall()
        return rows[0][0] if rows else None

    def reject(self, source: str, code: str, detail: str, raw: bytes | None = None,
               wait: bool = False):
        return self._put(_REJECT, (now_ms(), source, code, detail[:500],
                                   raw[:MAX_RAW] if raw else None), wait)

    def flush(self, timeout: float = 10.0) -> None:
        """Block until everything queued so far is committed (tests, shutdown)."""
        done = threading.Event()
        self._queue.put(("", (), done))
        if not done.wait(timeout):
            raise TimeoutError("record store did not commit within %ss" % timeout)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join(30)
        self.reader.close()

    # --- the writer thread --------------------------------------------------

    def _run(self) -> None:
        rejects = 0
        last_commit = 0.0
        while True:
            first = self._queue.get()
            pause = last_commit + _COMMIT_EVERY_S - time.monotonic()
            if pause > 0 and first is not _STOP:
                time.sleep(pause)
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is _STOP for item in batch)
            batch = [item for item in batch if item is not _STOP]
            last_commit = time.monotonic()
            while batch:
                try:
                    self._commit(batch)
                    break
                except (sqlite3.IntegrityError, sqlite3.InterfaceError,
                        sqlite3.ProgrammingError) as e:
                    # A write that can never succeed (a bug): commit the rest
                    # one by one and log the bad one, rather than retry forever.
                    log.error("record store: a batch failed (%s); writing one by one", e)
                    self._commit_singly(batch)
                    break
                except sqlite3.Error as e:
                    # Disk full, I/O error: keep the batch and try again; the
                    # records are still in memory and nothing is dropped.
                    self.counters["db_errors"] += 1
                    log.error("record store: commit of %d writes failed (%s); retrying in 1 s",
                              len(batch), e)
                    time.sleep(1)
            rejects += sum(1 for sql, _, _ in batch if sql is _REJECT)
            if rejects > MAX_REJECTS // 10:
                rejects = 0
                self._trim_rejects()
            # One wake-up of each waiting loop per batch, not one per write.
            waiting: dict = {}
            for _, _, fut in batch:
                if isinstance(fut, threading.Event):
                    fut.set()
                elif fut is not None:
                    waiting.setdefault(fut.get_loop(), []).append(fut)
            for loop, futs in waiting.items():
                loop.call_soon_threadsafe(_resolve, futs)
            if stop:
                self._writer.close()
                return

    def _commit(self, batch) -> None:
        conn = self._writer
        conn.execute("BEGIN")
        try:
            for sql, params, _ in batch:
                if isinstance(sql, list):
                    for one, p in sql:
                        conn.execute(one, p)
                elif sql:
                    conn.execute(sql, params)
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (disk full) may have rolled back already; a
            # second ROLLBACK would raise and hide the real error.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.counters["db_batches"] += 1
        self.counters["db_writes"] += len(batch)

    def _commit_singly(self, batch) -> None:
        for item in batch:
            try:
                self._commit([item])
            except (sqlite3.IntegrityError, sqlite3.InterfaceError,
                    sqlite3.ProgrammingError) as e:
                self.counters["db_refused"] += 1
                first = item[0][0][0] if isinstance(item[0], list) else item[0]
                log.error("record store: write refused by the database (%s): %s",
                          e, first.split("(")[0])

    def _trim_rejects(self) -> None:
        try:
            self._writer.execute("DELETE FROM rejects WHERE n <= "
                                 "(SELECT MAX(n) FROM rejects) - ?", (MAX_REJECTS,))
        except sqlite3.Error as e:
            log.warning("record store: could not trim rejects: %s", e)

    # --- reads (the event loop's connection) --------------------------------

    def get(self, record_id: str) -> dict | None:
        # fetchall, not fetchone: an unfinished statement would hold its read
        # snapshot open, and later reads would not see newer commits.
        rows = self.reader.execute("SELECT * FROM records WHERE id = ?", (record_id,)).fetchall()
        return row_to_record(rows[0]) if rows else None

    def exists(self, record_id: str) -> bool:
        return bool(self.reader.execute("SELECT 1 FROM records WHERE id = ?",
                                        (record_id,)).fetchall())

    def last_asked(self, since_ms: int) -> dict[str, int]:
        """loyalty id -> when it was last asked (Unix ms), since `since_ms`."""
        rows = self.reader.execute(
            "SELECT loyalty_id, MAX(asked_ms) FROM records WHERE loyalty_id IS NOT NULL "
            "AND asked_ms >= ? GROUP BY loyalty_id", (since_ms,)).fetchall()
        return {lid: at for lid, at in rows}

    def pending(self) -> list[dict]:
        rows = self.reader.execute("SELECT * FROM records WHERE state = 'pending'").fetchall()
        return [row_to_record(r) for r in rows]


def _resolve(futs: list[asyncio.Future]) -> None:
    for fut in futs:
        if not fut.done():
            fut.set_result(True)


def open_records(path: Path) -> list[dict]:
    """All records, oldest first, from a separate read-only connection
    (tests and small tools: reports use the totals, see reports.py)."""
    conn = connect(path, readonly=True)
    try:
        return [row_to_record(r) for r in
                conn.execute("SELECT * FROM records ORDER BY received_ms, id")]
    finally:
        conn.close()


def encode_row(rec: dict) -> tuple:
    """A record dict as the parameters of an insert (RECORD_FIELDS order)."""
    return tuple(_encode(rec.get(f)) if f in _JSON_FIELDS else rec.get(f) for f in RECORD_FIELDS)


def memory_db(records) -> sqlite3.Connection:
    """Record dicts in an in-memory store database with its totals, for the
    reports (a test's records, a few records from elsewhere)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.executescript(SCHEMA)
    rollup.create(conn)
    conn.execute("BEGIN")
    for rec in records:
        conn.execute(INSERT, encode_row({"updated_ms": 0, "late": 0, **rec}))
    conn.execute("COMMIT")
    return conn


def rebuild_totals(path: Path) -> int:
    """`loyalty-button records rebuild-totals`: recount the reports' totals
    from the records (after restoring a copy, or editing records by hand)."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        n = rollup.rebuild(conn)
        conn.execute("COMMIT")
        return n
    finally:
        conn.close()
