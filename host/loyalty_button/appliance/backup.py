"""Backups of the store database and their restore.

A backup is SQLite's online backup (the service keeps running and writing)
into a temporary file beside the destination, checked (`PRAGMA
integrity_check`, the records table) before it takes its final name
`records-<UTC time>.db`; the oldest beyond `backup.keep` are then removed.
A backup that fails (a full USB stick, say) leaves no partial file and
keeps every older backup. A backup is one self-contained file (rollback
journal, not WAL), and neither it nor the reads of it and of the store's
database leave -wal or -shm files behind.

A restore refuses a file that is not a store database (one holding views,
triggers or tables a store database does not, or a schema version that is
not a number Loyalty Button writes), is damaged, or was written by a newer
version, and refuses while the concentrator runs (it
holds a lock on the database file: flock, which SQLite's own locks leave
alone). The restored copy keeps no trigger: the concentrator makes its
own again when it opens the database. The database it replaces is kept
beside it as `records.db.before-restore-<time>`."""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from pathlib import Path

from ..service import config as host_config
from ..service import rollup
from ..service.records import SCHEMA, SCHEMA_VERSION, DatabaseInUse, lock_database
from ..settings import new_file_beside, own_like

log = logging.getLogger(__name__)
PREFIX = "records-"


class BackupError(RuntimeError):
    pass


def _open_still(path: Path) -> sqlite3.Connection:
    """A file nobody writes (a backup, a file to restore), read as it is:
    no locks and no -wal/-shm files made beside it."""
    return sqlite3.connect(Path(path).absolute().as_uri() + "?mode=ro&immutable=1", uri=True)


@functools.cache
def _own_objects() -> dict[str, frozenset[str]]:
    """The tables, indexes and triggers this version's store database has,
    by kind: what a fresh one holds."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.executescript(SCHEMA)
        rollup.create(conn)
        rows = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
    finally:
        conn.close()
    return {kind: frozenset(n for k, n in rows if k == kind) for kind, _ in rows}


def drop_triggers(path: Path) -> int:
    """Take every trigger out of the database file `path` (a backup being
    restored): the concentrator makes its own again when it opens the
    database, so none that came with a file runs on the store's records,
    whatever its name. Returns how many were dropped."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        names = [n for (n,) in conn.execute("SELECT name FROM sqlite_master "
                                            "WHERE type = 'trigger'")]
        conn.execute("BEGIN")  # one transaction: one write of the file, not one a trigger
        for name in names:
            conn.execute(f'DROP TRIGGER "{name.replace(chr(34), chr(34) * 2)}"')
        conn.execute("COMMIT")
    finally:
        conn.close()
    return len(names)


def check_database(path: Path) -> int:
    """The schema version of a store database; BackupError when `path` is
    not one this version can use."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise BackupError(f"{path} is not an SQLite database")
        conn = _open_still(path)
        try:
            ok = conn.execute("PRAGMA integrity_check").fetchone()[0]
            if ok != "ok":
                raise BackupError(f"{path} is damaged (integrity check: {ok})")
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            conn.execute("SELECT count(*) FROM records").fetchone()
            objects = conn.execute("SELECT type, name FROM sqlite_master").fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        what = "is damaged" if "malformed" in str(e) else "is not a store database"
        raise BackupError(f"{path} {what} ({e})") from None
    except UnicodeDecodeError:  # a name or value whose bytes were changed
        raise BackupError(f"{path} is damaged (text that is not UTF-8)") from None
    except OSError as e:
        raise BackupError(f"cannot read {path}: {e.strerror}") from None
    if not row:
        raise BackupError(f"{path} is not a store database (no schema version)")
    try:
        version = int(row[0])
    except ValueError:
        version = 0
    if version < 1:
        raise BackupError(f"{path} is not a store database (schema version {row[0]!r} is not "
                          f"one Loyalty Button writes)")
    foreign = [f"{kind} {name!r}" for kind, name in objects
               if not name.startswith("sqlite_") and name not in _own_objects().get(kind, ())
               and not (kind == "trigger" and version < SCHEMA_VERSION
                        and name.startswith(("rollup", "shoppers")))]
    if foreign:
        raise BackupError(f"{path} holds what no store database does ({', '.join(foreign)}): "
                          f"refused")
    if version > SCHEMA_VERSION:
        raise BackupError(f"{path} was written by a newer Loyalty Button (schema {version}; "
                          f"this version knows {SCHEMA_VERSION}): install that version again")
    return version


def snapshot(db: Path, out_path: Path) -> int:
    """A consistent copy of the live database `db` into the new file
    `out_path` (the service keeps writing meanwhile), checked; returns its
    schema version. Raises sqlite3.Error, OSError or BackupError."""
    # Read-write, as an ordinary reader of the live database: the last
    # connection to close removes the -wal and -shm files (a read-only
    # one cannot, and left them behind when the service was stopped).
    src = sqlite3.connect(db)
    out = sqlite3.connect(out_path)
    try:
        # Pages in steps, so the writer waits a moment at most.
        src.backup(out, pages=1024)
        out.execute("PRAGMA journal_mode=DELETE")  # one file, as copied
    finally:
        out.close()
        src.close()
    os.chmod(out_path, 0o600)  # loyalty ids: the service's alone
    return check_database(out_path)


def backup(db: Path, dest: Path, keep: int = 14) -> Path:
    """One backup of `db` into folder `dest`; returns its path."""
    db, dest = Path(db), Path(dest)
    if not db.is_file():
        raise BackupError(f"no database at {db}")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BackupError(f"cannot make {dest}: {e.strerror}") from None
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    final = dest / f"{PREFIX}{stamp}.db"
    started = time.monotonic()
    tmp = None
    try:
        fd, tmp = new_file_beside(final)  # a name nobody planted a link at
        os.close(fd)
        snapshot(db, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        tmp.replace(final)
    except (sqlite3.Error, OSError, BackupError) as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        why = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise BackupError(f"backup of {db} into {dest} failed: {why}; older backups are "
                          f"kept") from None
    removed = prune(dest, keep)
    log.info("backup %s (%d bytes, %.1f s); %d old one(s) removed", final,
             final.stat().st_size, time.monotonic() - started, len(removed))
    return final


def prune(dest: Path, keep: int) -> list[Path]:
    backups = sorted(Path(dest).glob(f"{PREFIX}*.db"))
    gone = backups[:-keep] if keep > 0 else []
    for path in gone:
        path.unlink()
    return gone


def restore(source: Path, db: Path) -> Path | None:
    """Put the backup `source` in place of `db`; returns where the replaced
    database was kept (None when there was none)."""
    source, db = Path(source), Path(db)
    check_database(source)
    try:
        lock = lock_database(db)
    except DatabaseInUse as e:
        raise BackupError(str(e)) from None
    tmp = None
    try:
        # Root runs restore in the service's folder: a file nobody could
        # have planted a link at (a fixed name followed one anywhere).
        fd, tmp = new_file_beside(db, 0o640)
        os.close(fd)
        src = _open_still(source)
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)
        finally:
            out.close()
            src.close()
        drop_triggers(tmp)
        os.chmod(tmp, 0o640)
        own_like(tmp, db.parent)  # run as root, the file must still be the service's
        kept = None
        if db.exists():
            # Whatever is still in the old database's WAL goes into the copy kept.
            old = sqlite3.connect(db)
            try:
                old.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                old.close()
            kept = db.with_name(f"{db.name}.before-restore-{time.strftime('%Y%m%dT%H%M%S')}")
            db.replace(kept)
        for suffix in ("-wal", "-shm"):  # the old database's; not the restored one's
            Path(str(db) + suffix).unlink(missing_ok=True)
        tmp.replace(db)
        return kept
    except (sqlite3.Error, OSError) as e:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise BackupError(f"restore into {db} failed: {e}") from None
    finally:
        if lock:
            lock.close()


def backup_cli(args) -> int:
    import sys
    try:
        cfg = host_config.load(args.config)
        dest = Path(args.to) if args.to else cfg.backup_dir
        path = backup(cfg.database, dest, args.keep if args.keep is not None else cfg.backup_keep)
    except (BackupError, host_config.HostConfigError) as e:
        print(f"backup: {e}", file=sys.stderr)
        return 1
    print(path)
    return 0


def restore_cli(args) -> int:
    import sys
    try:
        cfg = host_config.load(args.config)
        kept = restore(Path(args.file), cfg.database)
    except (BackupError, host_config.HostConfigError) as e:
        print(f"restore: {e}", file=sys.stderr)
        return 1
    print(f"restored {args.file} into {cfg.database}"
          + (f"; the database it replaced is kept as {kept}" if kept else ""))
    print("start the service again: systemctl start loyalty-button")
    return 0
