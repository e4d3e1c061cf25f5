"""The study database: SQLite in WAL mode, one connection per request, one row per answer keyed by (rater, trial).

- ``raters``: an opaque id, the token's hash (never the token), the list, the rater's trial order, language,
  group and progress times.
- ``platform_ids``: Prolific / MTurk parameters, apart from the answers; participant and session ids are
  stored as keyed hashes only.
- ``answers``: primary key (rater, trial). An answer is taken only for the rater's next unanswered trial, in
  one write transaction, so a repeated or replayed POST changes nothing and no trial can be skipped.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from complexface.study.folder import StudyFolder

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    list INTEGER NOT NULL,
    rater_group TEXT NOT NULL DEFAULT '',
    language TEXT NOT NULL,
    source TEXT NOT NULL,
    seq TEXT NOT NULL,
    n_trials INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    consented_at TEXT,
    declined_at TEXT,
    started_at TEXT,
    completed_at TEXT
);
CREATE TABLE IF NOT EXISTS platform_ids (
    rater TEXT PRIMARY KEY REFERENCES raters(id),
    platform TEXT NOT NULL,
    participant TEXT NOT NULL,
    study TEXT NOT NULL DEFAULT '',
    session TEXT NOT NULL DEFAULT '',
    assignment TEXT NOT NULL DEFAULT '',
    hit TEXT NOT NULL DEFAULT '',
    submit_to TEXT NOT NULL DEFAULT '',
    UNIQUE (platform, participant)
);
CREATE TABLE IF NOT EXISTS answers (
    rater TEXT NOT NULL REFERENCES raters(id),
    trial INTEGER NOT NULL,
    displayed TEXT,
    felt TEXT,
    genuineness INTEGER,
    confidence INTEGER,
    free_text TEXT,
    rt_ms REAL,
    answered_at TEXT NOT NULL,
    PRIMARY KEY (rater, trial)
) WITHOUT ROWID;
"""
ANSWER_FIELDS = ("displayed", "felt", "genuineness", "confidence", "free_text", "rt_ms")
STORED, DUPLICATE, OUT_OF_ORDER = "stored", "duplicate", "out_of_order"
SYNCHRONOUS = ("FULL", "NORMAL")


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Store:
    """The database of one study folder. ``connect()`` gives a short-lived connection (one per request)."""

    def __init__(self, folder: StudyFolder, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> None:
        self.path = folder.database
        self.synchronous = synchronous.upper()
        assert self.synchronous in SYNCHRONOUS, synchronous
        self.busy_timeout_ms = int(busy_timeout_ms)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(SCHEMA)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """Autocommit connection (transactions are explicit), WAL, a busy timeout, rows by name; closed after use."""
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        try:
            conn.row_factory = sqlite3.Row  # the busy timeout is connect()'s timeout; FULL is SQLite's default
            if self.synchronous != "FULL":
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A new connection with a write transaction taken up front (``BEGIN IMMEDIATE``): check-then-write steps
        cannot interleave."""
        with self.connect() as conn, self.writing(conn):
            yield conn

    # raters -----------------------------------------------------------------------------------------------

    @staticmethod
    def next_list(conn: sqlite3.Connection, n_lists: int) -> int:
        """The list with the fewest raters so far (lowest index on ties): lists stay balanced."""
        counts = dict.fromkeys(range(n_lists), 0)
        for row in conn.execute("SELECT list, COUNT(*) FROM raters GROUP BY list"):
            if row[0] in counts:
                counts[row[0]] = row[1]
        return min(counts, key=lambda k: (counts[k], k))

    @staticmethod
    def add_rater(conn: sqlite3.Connection, rater: str, token_hash: str, list_index: int, seq: Sequence[dict],
                  language: str, group: str = "", source: str = "link") -> None:
        conn.execute("INSERT INTO raters (id, token_hash, list, rater_group, language, source, seq, n_trials, "
                     "created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (rater, token_hash, list_index, group, language, source, json.dumps(seq), len(seq), now()))

    @staticmethod
    def rater(conn: sqlite3.Connection, token_hash: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM raters WHERE token_hash = ?", (token_hash,)).fetchone()

    @staticmethod
    def mark(conn: sqlite3.Connection, rater: str, column: str) -> None:
        """Set a progress time (consented_at, declined_at, started_at) once."""
        assert column in ("consented_at", "declined_at", "started_at"), column
        conn.execute(f"UPDATE raters SET {column} = ? WHERE id = ? AND {column} IS NULL", (now(), rater))

    def raters(self) -> list[dict]:
        with self.connect() as conn:
            rows = conn.execute("SELECT r.*, p.platform, (SELECT COUNT(*) FROM answers a WHERE a.rater = r.id) "
                                "AS n_answers FROM raters r LEFT JOIN platform_ids p ON p.rater = r.id "
                                "ORDER BY r.created_at, r.id").fetchall()
        return [dict(r) for r in rows]

    # platform ids -----------------------------------------------------------------------------------------

    @staticmethod
    def platform_rater(conn: sqlite3.Connection, platform: str, participant: str) -> sqlite3.Row | None:
        return conn.execute("SELECT r.* FROM platform_ids p JOIN raters r ON r.id = p.rater "
                            "WHERE p.platform = ? AND p.participant = ?", (platform, participant)).fetchone()

    @staticmethod
    def attach_platform(conn: sqlite3.Connection, rater: str, platform: str, participant: str,
                        extra: Mapping[str, str]) -> None:
        """Record a rater's platform parameters once (the first visit's)."""
        conn.execute("INSERT OR IGNORE INTO platform_ids (rater, platform, participant, study, session, assignment, "
                     "hit, submit_to) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                     (rater, platform, participant, *(extra.get(k, "") for k in
                                                      ("study", "session", "assignment", "hit", "submit_to"))))

    @staticmethod
    def platform_of(conn: sqlite3.Connection, rater: str) -> sqlite3.Row | None:
        return conn.execute("SELECT * FROM platform_ids WHERE rater = ?", (rater,)).fetchone()

    # answers ----------------------------------------------------------------------------------------------

    @staticmethod
    def n_answered(conn: sqlite3.Connection, rater: str) -> int:
        return conn.execute("SELECT COUNT(*) FROM answers WHERE rater = ?", (rater,)).fetchone()[0]

    @staticmethod
    @contextmanager
    def writing(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
        """A write transaction on an open connection, taken up front (``BEGIN IMMEDIATE``)."""
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    @classmethod
    def record_answer(cls, conn: sqlite3.Connection, rater: str, trial: int, values: Mapping, n_trials: int) -> str:
        """Store the answer to ``trial`` if it is the rater's next unanswered one: ``stored``; an answer that is
        already there stays as it was: ``duplicate``; any other trial: ``out_of_order`` (nothing written)."""
        with cls.writing(conn):
            if conn.execute("SELECT 1 FROM answers WHERE rater = ? AND trial = ?", (rater, trial)).fetchone():
                return DUPLICATE
            if trial != cls.n_answered(conn, rater):
                return OUT_OF_ORDER
            stamp = now()
            conn.execute("INSERT INTO answers (rater, trial, displayed, felt, genuineness, confidence, free_text, "
                         "rt_ms, answered_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (rater, trial, *(values.get(k) for k in ANSWER_FIELDS), stamp))
            if trial + 1 == n_trials:
                conn.execute("UPDATE raters SET completed_at = ? WHERE id = ? AND completed_at IS NULL", (stamp, rater))
            return STORED

    def answers(self) -> list[dict]:
        with self.connect() as conn:
            rows = conn.execute("SELECT * FROM answers ORDER BY rater, trial").fetchall()
        return [dict(r) for r in rows]

    def count_answers(self) -> int:
        with self.connect() as conn:
            return conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def reset_raters(self) -> None:
        """Forget every rater (``create force=true`` before any answer: their orders belong to the old design)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM platform_ids")
            conn.execute("DELETE FROM raters")
