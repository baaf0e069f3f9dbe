"""The node's durable memory (SQLite): the listener cursor with recent block hashes (for reorg
detection) and a log of what this node did per (job id, attempt), so processing is idempotent
across restarts. The chain stays the source of truth; this only prevents repeating our own work.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from registry.chain.events import KEEP_BLOCKS

SCHEMA = """
CREATE TABLE IF NOT EXISTS blocks (number INTEGER PRIMARY KEY, hash TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    job_id INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    state TEXT NOT NULL,
    output_cid TEXT,
    output_sha256 BLOB,
    output_size INTEGER,
    salt BLOB,
    note TEXT,
    updated REAL NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
"""

#: States after which this node must not act on the job again (for that attempt).
DELIVERED = frozenset({"submitted", "committed", "revealed", "done"})


@dataclass(frozen=True)
class JobEntry:
    """This node's record of one attempt at a job."""

    job_id: int
    attempt: int
    state: str
    output_cid: str | None
    output_sha256: bytes | None
    output_size: int | None
    salt: bytes | None
    note: str | None


class NodeState:
    """Thread-safe SQLite store of the cursor and the job log (the cursor is the listener's
    :class:`~registry.chain.events.BlockLog`)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    # --- cursor --------------------------------------------------------------------------------

    def cursor(self) -> tuple[int, str] | None:
        """The last fully processed block and its hash, or None before the first scan."""
        with self._lock:
            row = self._db.execute(
                "SELECT number, hash FROM blocks ORDER BY number DESC LIMIT 1"
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def block_hash(self, number: int) -> str | None:
        """The hash recorded for block ``number``, if still kept."""
        with self._lock:
            row = self._db.execute("SELECT hash FROM blocks WHERE number = ?", (number,)).fetchone()
        return str(row[0]) if row else None

    def advance(self, number: int, block_hash: str) -> None:
        """Record that every block up to ``number`` (hash ``block_hash``) was processed."""
        with self._lock:
            self._db.execute("BEGIN")
            self._db.execute("INSERT OR REPLACE INTO blocks VALUES (?, ?)", (number, block_hash))
            self._db.execute("DELETE FROM blocks WHERE number <= ?", (number - KEEP_BLOCKS,))
            self._db.execute("COMMIT")

    def recent_blocks(self) -> list[tuple[int, str]]:
        """Recorded ``(number, hash)`` pairs, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT number, hash FROM blocks ORDER BY number DESC"
            ).fetchall()
        return [(int(n), str(h)) for n, h in rows]

    def rewind(self, number: int) -> None:
        """Forget blocks above ``number`` (after a reorg)."""
        with self._lock:
            self._db.execute("DELETE FROM blocks WHERE number > ?", (number,))

    # --- job log -------------------------------------------------------------------------------

    def record(
        self,
        job_id: int,
        attempt: int,
        state: str,
        *,
        output_cid: str | None = None,
        output_sha256: bytes | None = None,
        output_size: int | None = None,
        salt: bytes | None = None,
        note: str | None = None,
    ) -> None:
        """Insert or update this node's record of ``(job_id, attempt)``."""
        with self._lock:
            self._db.execute(
                """INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (job_id, attempt) DO UPDATE SET
                     state = excluded.state,
                     output_cid = COALESCE(excluded.output_cid, output_cid),
                     output_sha256 = COALESCE(excluded.output_sha256, output_sha256),
                     output_size = COALESCE(excluded.output_size, output_size),
                     salt = COALESCE(excluded.salt, salt),
                     note = COALESCE(excluded.note, note),
                     updated = excluded.updated""",
                (
                    job_id,
                    attempt,
                    state,
                    output_cid,
                    output_sha256,
                    output_size,
                    salt,
                    note,
                    time.time(),
                ),
            )

    def attempts(self, job_id: int) -> list[JobEntry]:
        """Every attempt this node made at ``job_id``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, attempt, state, output_cid, output_sha256, output_size, salt, note "
                "FROM jobs WHERE job_id = ? ORDER BY attempt",
                (job_id,),
            ).fetchall()
        return [JobEntry(*row) for row in rows]

    def delivered(self, job_id: int) -> bool:
        """Whether this node already delivered (or settled) a result for ``job_id``."""
        return any(e.state in DELIVERED for e in self.attempts(job_id))

    def unfinished(self) -> list[JobEntry]:
        """Latest attempts not in a final state (to resume after a restart)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT job_id, attempt, state, output_cid, output_sha256, output_size, salt, note "
                "FROM jobs j "
                "WHERE attempt = (SELECT MAX(attempt) FROM jobs WHERE job_id = j.job_id) "
                "AND state NOT IN ('done', 'released', 'skipped', 'lost')"
            ).fetchall()
        return [JobEntry(*row) for row in rows]

    def processed_jobs(self) -> set[int]:
        """Ids of every job this node has a record of."""
        with self._lock:
            rows = self._db.execute("SELECT DISTINCT job_id FROM jobs").fetchall()
        return {int(r[0]) for r in rows}
