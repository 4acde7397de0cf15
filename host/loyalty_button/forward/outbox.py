"""The forwarding outboxes in the store database (table `outbox`, written
with the records; see records.py). The forwarder's threads read due rows
and mark them here, each on its own SQLite connection (WAL), so a slow
destination never holds the concentrator's writer."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from ..service.records import connect, now_ms, row_to_record

_DUE = ("SELECT o.record_id, o.attempts, o.remote_ref, r.* FROM outbox o "
        "JOIN records r ON r.id = o.record_id WHERE o.dest = ? AND o.state = 'pending' "
        "AND o.next_ms <= ? ORDER BY o.next_ms, o.queued_ms LIMIT ?")


class OutboxDB:
    def __init__(self, path: Path):
        self.conn = connect(Path(path))

    def close(self) -> None:
        self.conn.close()

    def _write(self, sql: str, params=()) -> int:
        # Short transactions; busy_timeout covers the records writer's.
        for attempt in range(5):
            try:
                return self.conn.execute(sql, params).rowcount
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or attempt == 4:
                    raise
                time.sleep(0.2)
        return 0

    def due(self, dest: str, limit: int = 50) -> list[tuple[dict, int, str | None]]:
        rows = self.conn.execute(_DUE, (dest, now_ms(), limit)).fetchall()
        out = []
        for row in rows:
            rec = row_to_record(_strip(row))
            out.append((rec, row["attempts"], row["remote_ref"]))
        return out

    def next_due_ms(self, dest: str) -> int | None:
        row = self.conn.execute("SELECT MIN(next_ms) FROM outbox WHERE dest = ? AND "
                                "state = 'pending'", (dest,)).fetchall()
        return row[0][0]

    def sent(self, dest: str, record_id: str, ref: str | None,
             version: int | None = None) -> None:
        """Delivered. With `version` (the record's updated_ms when it was
        read for sending): only if the record is still that version; one
        re-closed while it was in flight stays due, and goes again."""
        if version is None:
            self._write("UPDATE outbox SET state = 'sent', sent_ms = ?, last_error = NULL, "
                        "attempts = attempts + 1, remote_ref = COALESCE(?, remote_ref) "
                        "WHERE dest = ? AND record_id = ?", (now_ms(), ref, dest, record_id))
            return
        changed = self._write(
            "UPDATE outbox SET state = 'sent', sent_ms = ?, last_error = NULL, "
            "attempts = attempts + 1, remote_ref = COALESCE(?, remote_ref) "
            "WHERE dest = ? AND record_id = ? AND (SELECT updated_ms FROM records "
            "WHERE id = ?) IS ?", (now_ms(), ref, dest, record_id, record_id, version))
        if not changed:  # keep what the destination gave back (a CRM note's id)
            self._write("UPDATE outbox SET remote_ref = COALESCE(?, remote_ref) "
                        "WHERE dest = ? AND record_id = ?", (ref, dest, record_id))

    def failed(self, dest: str, record_id: str, error: str, next_ms: int | None,
               ref: str | None = None) -> None:
        """next_ms None: dead letter; else try again then."""
        self._write("UPDATE outbox SET state = CASE WHEN ? IS NULL THEN 'dead' ELSE state END, "
                    "attempts = attempts + 1, last_error = ?, next_ms = COALESCE(?, next_ms), "
                    "remote_ref = COALESCE(?, remote_ref) WHERE dest = ? AND record_id = ?",
                    (next_ms, error[:500], next_ms, ref, dest, record_id))

    def resend(self, dest: str, record_ids: list[str] | None = None) -> int:
        """Dead letters back to pending (all of a destination's, or some)."""
        sql = ("UPDATE outbox SET state = 'pending', attempts = 0, next_ms = ? "
               "WHERE dest = ? AND state = 'dead'")
        params: list = [now_ms(), dest]
        if record_ids:
            sql += f" AND record_id IN ({','.join('?' * len(record_ids))})"
            params += record_ids
        return self._write(sql, params)

    def backfill(self, dest: str, since_ms: int) -> int:
        """Closed records without a row for this destination (a crash between
        close and enqueue cannot happen, they commit together; but a
        destination added later starts from when it was added)."""
        now = now_ms()
        return self._write(
            "INSERT INTO outbox (dest, record_id, state, attempts, next_ms, queued_ms) "
            "SELECT ?, id, 'pending', 0, ?, ? FROM records r WHERE state = 'closed' AND "
            "updated_ms >= ? AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.dest = ? "
            "AND o.record_id = r.id)", (dest, now, now, since_ms, dest))

    def stats(self) -> dict[str, dict]:
        """Per destination: rows pending, sent, dead; the oldest pending."""
        out: dict[str, dict] = {}
        for dest, state, n, oldest in self.conn.execute(
                "SELECT dest, state, COUNT(*), MIN(queued_ms) FROM outbox "
                "GROUP BY dest, state").fetchall():
            d = out.setdefault(dest, {"pending": 0, "sent": 0, "dead": 0,
                                      "oldest_pending_ms": None})
            d[state] = n
            if state == "pending":
                d["oldest_pending_ms"] = oldest
        return out

    def dead(self, dest: str | None = None, limit: int = 200) -> list[dict]:
        sql = ("SELECT dest, record_id, attempts, last_error, queued_ms FROM outbox "
               "WHERE state = 'dead'")
        params: tuple = ()
        if dest:
            sql += " AND dest = ?"
            params = (dest,)
        rows = self.conn.execute(sql + " ORDER BY queued_ms LIMIT ?", params + (limit,))
        return [dict(r) for r in rows.fetchall()]

    def purge(self, older_than_ms: int) -> tuple[int, int]:
        """Retention: delete closed records older than the cut-off whose every
        outbox row is sent (a record still owed to a destination is kept and
        counted). Returns (deleted, held)."""
        held = self.conn.execute(
            "SELECT COUNT(DISTINCT r.id) FROM records r JOIN outbox o ON o.record_id = r.id "
            "WHERE r.state = 'closed' AND r.received_ms < ? AND o.state != 'sent'",
            (older_than_ms,)).fetchall()[0][0]
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            cur = self.conn.execute(
                "DELETE FROM records WHERE state = 'closed' AND received_ms < ? AND NOT "
                "EXISTS (SELECT 1 FROM outbox o WHERE o.record_id = records.id AND "
                "o.state != 'sent')", (older_than_ms,))
            deleted = cur.rowcount
            self.conn.execute("DELETE FROM outbox WHERE NOT EXISTS (SELECT 1 FROM records r "
                              "WHERE r.id = outbox.record_id)")
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return deleted, held


def _strip(row: sqlite3.Row) -> dict:
    d = dict(row)
    for k in ("record_id", "attempts", "remote_ref"):
        d.pop(k, None)
    return d
