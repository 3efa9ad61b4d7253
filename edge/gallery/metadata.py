"""The gallery's SQLite side: what is committed, and the details of each row.

    meta   key/value, fixed at creation: format_version, gallery_id (hex),
           dim, dtype, model_id, created (Unix time)
    state  one row: generation (of the matrix files in use) and row_count
           (committed rows; the matrix may hold more bytes, never fewer)
    rows   row (0-based matrix row), identity, source, added (Unix time,
           seconds), quality, deleted (0/1), checksum (CRC-32 of the stored
           row, see edge.gallery.fileformat.row_checksums)

Connections are in autocommit mode; changes go through ``transaction`` (BEGIN
IMMEDIATE ... COMMIT, synchronous=FULL in WAL mode: durable once it returns),
multi-statement reads through ``snapshot``. Every connection sets
secure_delete (whatever the system SQLite's default): freed pages are zeroed,
so a removed person's name does not stay in the file; ``scrub_wal`` then
empties the write-ahead log, whose older frames still hold it. The database
is created 0600; SQLite gives its -wal and -shm files the same mode.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FILE_NAME = "gallery.sqlite"
_ROWS_TABLE = """
CREATE TABLE {name} (
    row INTEGER PRIMARY KEY,
    identity TEXT NOT NULL,
    source TEXT,
    added REAL NOT NULL,
    quality REAL,
    deleted INTEGER NOT NULL DEFAULT 0,
    checksum INTEGER NOT NULL
)"""
_ROWS_INDEXES = [
    "CREATE INDEX rows_identity ON rows (identity)",
    "CREATE INDEX rows_deleted ON rows (row) WHERE deleted = 1",  # opening reads just these
]
_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE state (id INTEGER PRIMARY KEY CHECK (id = 0), generation INTEGER NOT NULL,"
    " row_count INTEGER NOT NULL)",
    _ROWS_TABLE.format(name="rows"),
    *_ROWS_INDEXES,
]
_COLUMNS = "row, identity, source, added, quality, deleted, checksum"
_MAX_VARIABLES = 500  # per IN (...) list


@dataclass(frozen=True, slots=True)
class RowInfo:
    """Metadata of one gallery row. ``added``: Unix time, seconds."""

    row: int
    identity: str
    source: str | None
    added: float
    quality: float | None
    deleted: bool


def connect(directory: Path, create: bool = False) -> sqlite3.Connection:
    """The gallery's database; it must exist unless ``create``."""
    mode = "rwc" if create else "rw"
    if create:  # an empty file is a new database; made here so that it is 0600 from the start
        os.close(os.open(directory / FILE_NAME, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    db = sqlite3.connect(f"file:{directory / FILE_NAME}?mode={mode}", uri=True, isolation_level=None)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute("PRAGMA secure_delete = ON")
    if create:
        db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    return db


def initialise(db: sqlite3.Connection, meta: dict[str, str]) -> None:
    """Tables, fixed metadata and an empty state (generation 0, no rows), in one transaction."""
    with transaction(db):
        for statement in _SCHEMA:
            db.execute(statement)
        db.executemany("INSERT INTO meta VALUES (?, ?)", meta.items())
        db.execute("INSERT INTO state VALUES (0, 0, 0)")


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    """BEGIN IMMEDIATE (take SQLite's write lock) ... COMMIT, or ROLLBACK on an exception."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def snapshot(db: sqlite3.Connection) -> Iterator[None]:
    """A read transaction: every query inside sees the same committed state."""
    db.execute("BEGIN")
    try:
        yield
    finally:
        db.execute("COMMIT")


def read_meta(db: sqlite3.Connection) -> dict[str, str]:
    return dict(db.execute("SELECT key, value FROM meta"))


def committed(db: sqlite3.Connection) -> tuple[int, int]:
    """(generation, row_count) as committed."""
    state = db.execute("SELECT generation, row_count FROM state").fetchone()
    if state is None:
        raise sqlite3.DatabaseError("the state row is missing")
    return state


def deleted_rows(db: sqlite3.Connection) -> list[int]:
    return [row for (row,) in db.execute("SELECT row FROM rows WHERE deleted = 1")]


def add_rows(db: sqlite3.Connection, records: list[tuple], row_count: int) -> None:
    """Insert (row, identity, source, added, quality, deleted, checksum) records and set
    the committed count; call inside ``transaction``."""
    db.executemany(f"INSERT INTO rows ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", records)
    db.execute("UPDATE state SET row_count = ?", (row_count,))


def mark_deleted(db: sqlite3.Connection, rows: Iterable[int]) -> int:
    """Tombstone rows; how many were live. Call inside ``transaction``."""
    changed = 0
    for chunk in _chunks(sorted({int(r) for r in rows})):
        marks = ",".join("?" * len(chunk))
        changed += db.execute(f"UPDATE rows SET deleted = 1 WHERE deleted = 0 AND row IN ({marks})", chunk).rowcount
    return changed


def mark_identity_deleted(db: sqlite3.Connection, identity: str) -> int:
    return db.execute("UPDATE rows SET deleted = 1 WHERE deleted = 0 AND identity = ?", (identity,)).rowcount


def rename_identity(db: sqlite3.Connection, old: str, new: str) -> int:
    return db.execute("UPDATE rows SET identity = ? WHERE deleted = 0 AND identity = ?", (new, old)).rowcount


def live_checksums(db: sqlite3.Connection) -> dict[int, int]:
    return dict(db.execute("SELECT row, checksum FROM rows WHERE deleted = 0"))


def renumber_live_rows(db: sqlite3.Connection, generation: int) -> int:
    """Compaction's metadata step: drop tombstoned rows, number the rest 0.. in their
    order, switch to ``generation``; returns the new row count. Call inside ``transaction``."""
    db.execute("DROP TABLE IF EXISTS rows_compacted")
    db.execute(_ROWS_TABLE.format(name="rows_compacted"))
    db.execute(
        f"INSERT INTO rows_compacted ({_COLUMNS}) "
        "SELECT row_number() OVER (ORDER BY row) - 1, identity, source, added, quality, 0, checksum "
        "FROM rows WHERE deleted = 0 ORDER BY row"
    )
    db.execute("DROP TABLE rows")
    db.execute("ALTER TABLE rows_compacted RENAME TO rows")
    for statement in _ROWS_INDEXES:
        db.execute(statement)
    (count,) = db.execute("SELECT count(*) FROM rows").fetchone()
    db.execute("UPDATE state SET generation = ?, row_count = ?", (generation, count))
    return count


def identities(db: sqlite3.Connection) -> dict[str, int]:
    """Each identity with its number of live samples, by name."""
    return dict(db.execute(
        "SELECT identity, count(*) FROM rows WHERE deleted = 0 GROUP BY identity ORDER BY identity"
    ))


def row_info(db: sqlite3.Connection, rows: Iterable[int] | None) -> list[RowInfo]:
    """Metadata of the given rows (all when None), in row order."""
    if rows is None:
        records = list(db.execute(f"SELECT {_COLUMNS} FROM rows ORDER BY row"))
    else:
        records = []
        for chunk in _chunks(sorted({int(r) for r in rows})):
            marks = ",".join("?" * len(chunk))
            records += db.execute(f"SELECT {_COLUMNS} FROM rows WHERE row IN ({marks})", chunk)
        records.sort()
    return [RowInfo(row, name, source, added, quality, bool(deleted))
            for row, name, source, added, quality, deleted, _ in records]


def names(db: sqlite3.Connection, rows: Iterable[int]) -> dict[int, str]:
    """Identity of each of ``rows`` (those that exist)."""
    found: dict[int, str] = {}
    for chunk in _chunks(sorted({int(r) for r in rows if r >= 0})):
        marks = ",".join("?" * len(chunk))
        found.update(db.execute(f"SELECT row, identity FROM rows WHERE row IN ({marks})", chunk))
    return found


def checksums(db: sqlite3.Connection, first: int, stop: int) -> np.ndarray:
    """The stored checksum of rows first..stop-1, (stop - first,) int64; -1 for a row the
    table lacks. (Joined into one string by SQLite: a million rows in a fraction of a second.)"""
    count, joined = db.execute(
        "SELECT count(*), group_concat(checksum) FROM "
        "(SELECT checksum FROM rows WHERE row >= ? AND row < ? ORDER BY row)", (first, stop)
    ).fetchone()
    if count == stop - first:  # row is the primary key: exactly first..stop-1, in order
        return np.fromstring(joined or "", dtype=np.int64, sep=",") if count else np.zeros(0, np.int64)
    found = np.full(stop - first, -1, np.int64)
    for row, checksum in db.execute("SELECT row, checksum FROM rows WHERE row >= ? AND row < ?", (first, stop)):
        found[row - first] = checksum
    return found


def scrub_wal(db: sqlite3.Connection) -> None:
    """Copy the write-ahead log into the database and truncate it to nothing (its older
    frames hold rows as they were before a change); quietly partial while a reader
    is in the middle of a read."""
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def checksum_cursor(db: sqlite3.Connection) -> sqlite3.Cursor:
    """Every row's stored checksum, in row order (fetch in batches)."""
    return db.execute("SELECT checksum FROM rows ORDER BY row")


def row_numbering(db: sqlite3.Connection) -> tuple[int, int | None, int | None]:
    """(number of rows, lowest row, highest row) in the table."""
    return db.execute("SELECT count(*), min(row), max(row) FROM rows").fetchone()


def _chunks(values: list[int]) -> Iterator[list[int]]:
    for i in range(0, len(values), _MAX_VARIABLES):
        yield values[i:i + _MAX_VARIABLES]
