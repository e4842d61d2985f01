"""The bank's store of record: SQLite in WAL mode.

One bank is a directory holding ``bank.sqlite3``. The schema keeps, per
registered fingerprint: id, label, SHA-256, MD5, PDQ, quality, size, time added,
a source note and the change-sequence number at which it was added. The
derivative fingerprint of an entry, when it has one, is a row of its own in a
``derivatives`` table (the entry's id, the SHA-256 and the blob), so loading
the PDQ hashes never reads those blobs. A ``changes`` table is the bank's
change feed (``add``/``remove`` with a monotonically increasing sequence); it
holds ids only, never hashes. An entry and its derivative fingerprint are
added and removed together, in one transaction and under one ``add`` or
``remove`` change: a replica that sees ``add`` reads both by id.

Safety
------
* Every write is one ``BEGIN IMMEDIATE`` transaction: a batch is stored whole or
  not at all, so an interrupted import never leaves half its lines behind.
* ``synchronous=FULL``: a committed registration survives a power cut.
* Removal deletes the rows of the entry and of its derivative fingerprint
  (``secure_delete`` overwrites the freed bytes) and checkpoints the
  write-ahead log, so a withdrawn hash is gone from disk, not flagged.
* A bank of an older schema (version 1, before derivative fingerprints) is
  upgraded in place when it is opened: the new table is added, nothing else
  changes. A bank that cannot be written (a read-only file) is used as it is,
  without derivative fingerprints.
* The file is tagged with an ``application_id``; anything else is refused as
  "not a TakeBack bank" instead of being modified.
"""

from __future__ import annotations

import abc
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar, Final, Self

import numpy as np

from .. import _sqlite
from ..errors import (
    BankCorruptError,
    BankError,
    BankNotFoundError,
    EntryNotFoundError,
)
from ..fingerprint.types import PDQ_MIN_QUALITY, PdqHash
from ..home import takeback_home
from .model import DERIVATIVE_MAX_STORED, AddResult, BankEntry, BankStats, Change, utc_now

__all__ = ["DB_NAME", "SCHEMA_VERSION", "SqliteStore", "Store", "default_bank_dir"]

#: File name of the database inside a bank directory.
DB_NAME: Final = "bank.sqlite3"
#: Version of the schema below (``PRAGMA user_version``). Version 1 had no
#: ``derivatives`` table; such banks are upgraded when opened.
SCHEMA_VERSION: Final = 2
_APPLICATION_ID: Final = 0x54414B42  # "TAKB"
_CHUNK: Final = 500  # parameters per IN (...) query

_SCHEMA = """
CREATE TABLE entries (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    label     TEXT    NOT NULL,
    sha256    BLOB    CHECK (sha256 IS NULL OR length(sha256) = 32),
    md5       BLOB    CHECK (md5 IS NULL OR length(md5) = 16),
    pdq       BLOB    CHECK (pdq IS NULL OR length(pdq) = 32),
    quality   INTEGER CHECK (quality IS NULL OR quality BETWEEN 0 AND 100),
    width     INTEGER,
    height    INTEGER,
    added_at  TEXT    NOT NULL,
    source    TEXT,
    seq       INTEGER NOT NULL
);
CREATE UNIQUE INDEX entries_sha256 ON entries (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX entries_md5 ON entries (md5) WHERE md5 IS NOT NULL;
CREATE INDEX entries_pdq_only ON entries (pdq) WHERE sha256 IS NULL;
CREATE TABLE changes (
    seq       INTEGER PRIMARY KEY AUTOINCREMENT,
    op        TEXT    NOT NULL CHECK (op IN ('add', 'remove')),
    entry_id  INTEGER NOT NULL,
    at        TEXT    NOT NULL
);
"""
# Added by schema version 2. The digest comes first so that reading it leaves
# the blob's overflow pages alone.
_DERIVATIVES = f"""
CREATE TABLE IF NOT EXISTS derivatives (
    entry_id  INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    digest    BLOB    NOT NULL CHECK (length(digest) = 32),
    blob      BLOB    NOT NULL CHECK (length(blob) BETWEEN 1 AND {DERIVATIVE_MAX_STORED})
)
"""


_KIND: Final = _sqlite.DatabaseKind(
    what="bank",
    application_id=_APPLICATION_ID,
    version=SCHEMA_VERSION,
    schema=_SCHEMA + _DERIVATIVES,
    error=BankError,
    not_found=BankNotFoundError,
    corrupt=BankCorruptError,
)


def default_bank_dir(environ: dict[str, str] | None = None) -> Path:
    """Where the bank lives when ``--bank`` is not given.

    ``$TAKEBACK_HOME/bank`` when ``TAKEBACK_HOME`` is set, else ``bank`` in the
    platform's per-user data directory (``~/.local/share/takeback/bank`` on Linux).
    """
    return takeback_home(environ) / "bank"


class Store(abc.ABC):
    """Interface of a bank's store of record (SQLite here; PostgreSQL later).

    Implementations are context managers with an idempotent :meth:`close`.
    """

    name: ClassVar[str]

    @abc.abstractmethod
    def add(self, entries: Iterable[BankEntry]) -> list[AddResult]:
        """Store entries in one transaction, deduplicating by SHA-256.

        An entry whose SHA-256 is already stored (or, for entries without one,
        whose PDQ is already stored without one) is not stored again: its result
        carries ``duplicate_of`` and the existing id (and the stored entry keeps
        its derivative fingerprint, or its lack of one). An entry's
        ``derivative`` is stored with it.
        """

    @abc.abstractmethod
    def remove(self, ids: Iterable[int]) -> list[int]:
        """Delete entries and their derivative fingerprints for good; returns the
        ids that existed."""

    @abc.abstractmethod
    def get(self, entry_id: int) -> BankEntry:
        """One entry; raises :class:`EntryNotFoundError`."""

    @abc.abstractmethod
    def get_many(self, ids: Iterable[int]) -> dict[int, BankEntry]:
        """Entries by id (missing ids are left out)."""

    @abc.abstractmethod
    def entries(self, *, after_id: int = 0, limit: int | None = None) -> Iterator[BankEntry]:
        """Entries in id order, starting after ``after_id``."""

    @abc.abstractmethod
    def find_exact(self, *, sha256: str | None = None, md5: str | None = None) -> list[BankEntry]:
        """Entries whose file digest equals ``sha256`` or ``md5``."""

    @abc.abstractmethod
    def pdq_arrays(self, *, min_quality: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """Ids ``(n,)`` int64 and codes ``(n, 32)`` uint8 of every PDQ hash of at
        least ``min_quality`` (entries without a recorded quality are included)."""

    @abc.abstractmethod
    def derivatives(
        self, *, after_id: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        """Stored derivative fingerprints as ``(entry id, serialized bytes)``, in id
        order, starting after ``after_id`` (what a derivative index is built from).

        The bytes are returned as stored: parse them with
        ``DerivativeFingerprint.from_bytes``, which refuses damaged ones.
        """

    @abc.abstractmethod
    def get_derivatives(self, ids: Iterable[int]) -> dict[int, bytes]:
        """Derivative fingerprints of entries by id (entries without one are left out).

        How a replica following :meth:`changes` reads the fingerprint of an added entry.
        """

    @abc.abstractmethod
    def changes(self, *, since: int = 0, limit: int = 1000) -> list[Change]:
        """The change feed after sequence ``since``."""

    @abc.abstractmethod
    def stats(self) -> BankStats:
        """Counts describing the bank."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the store; calling it twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SqliteStore(Store):
    """The embedded store: one SQLite database in WAL mode.

    Use :meth:`open` (an existing bank) or :meth:`create` (new or existing).

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp, SqliteStore.create(tmp) as store:
    ...     [r] = store.add([BankEntry(label="a", pdq=PdqHash.from_hex("ab" * 32), quality=90)])
    ...     store.get(r.id).label
    'a'
    """

    name = "sqlite"

    def __init__(self, conn: sqlite3.Connection, path: Path, *, derivatives: bool = True) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.path = path
        # False for a version-1 bank that could not be upgraded (read-only).
        self._derivatives = derivatives
        digest = "CAST(d.digest AS BLOB)" if derivatives else "NULL"
        join = " LEFT JOIN derivatives d ON d.entry_id = e.id" if derivatives else ""
        self._select = f"SELECT {_ENTRY_COLUMNS}, {digest} FROM entries e{join}"

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, bank_dir: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> SqliteStore:
        """Open an existing bank; raises :class:`BankNotFoundError` when there is none."""
        db = Path(bank_dir) / DB_NAME
        if not db.is_file():
            raise BankNotFoundError(
                f"no bank at {bank_dir}: register photos first with `takeback bank add` "
                "or point --bank (or TAKEBACK_HOME) at an existing bank",
                path=os.fspath(bank_dir),
            )
        return cls._connect(db, create=False, busy_timeout=busy_timeout)

    @classmethod
    def create(cls, bank_dir: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> SqliteStore:
        """Open the bank in ``bank_dir``, creating the directory and database if needed."""
        directory = Path(bank_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BankError(
                f"cannot create the bank directory {directory} ({exc.strerror})",
                path=str(directory),
            ) from exc
        return cls._connect(directory / DB_NAME, create=True, busy_timeout=busy_timeout)

    @classmethod
    def _connect(cls, db: Path, *, create: bool, busy_timeout: float) -> SqliteStore:
        conn = _sqlite.connect(db, _KIND, busy_timeout=busy_timeout)
        try:
            _sqlite.prepare(conn, db, _KIND, create=create)
            with _sqlite.SqliteErrors(str(db), "open", _KIND):
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("PRAGMA foreign_keys=ON")
                upgraded = _upgrade(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, db, derivatives=upgraded)

    @property
    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BankError("the bank has been closed")
        return self._conn

    def _translate(self, action: str) -> _sqlite.SqliteErrors:
        return _sqlite.SqliteErrors(str(self.path), action, _KIND)

    # -- writing -----------------------------------------------------------
    def add(self, entries: Iterable[BankEntry]) -> list[AddResult]:
        batch = list(entries)
        if not batch:
            return []
        with self._translate("add to"), _sqlite.write_transaction(self._c) as conn:
            results = self._add_in_tx(conn, batch)
        return results

    def _add_in_tx(self, conn: sqlite3.Connection, batch: list[BankEntry]) -> list[AddResult]:
        existing_sha = self._existing(conn, "sha256", [e.sha256 for e in batch if e.sha256])
        existing_pdq = self._existing(
            conn,
            "pdq",
            [str(e.pdq) for e in batch if e.sha256 is None and e.pdq is not None],
            where="sha256 IS NULL",
        )
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'entries'").fetchone()
        next_id = (row[0] if row else 0) + 1
        row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
        next_seq = (row[0] if row else 0) + 1
        now = utc_now()
        results: list[AddResult] = []
        rows: list[tuple[object, ...]] = []
        change_rows: list[tuple[object, ...]] = []
        derivative_rows: list[tuple[object, ...]] = []
        for entry in batch:
            if entry.sha256:
                key, seen = entry.sha256, existing_sha
            elif entry.pdq is not None:
                key, seen = str(entry.pdq), existing_pdq
            else:
                key, seen = None, None
            if key is not None and seen is not None and key in seen:
                results.append(AddResult(id=seen[key], duplicate_of=seen[key]))
                continue
            entry_id, seq = next_id, next_seq
            next_id += 1
            next_seq += 1
            if key is not None and seen is not None:
                seen[key] = entry_id
            rows.append(entry_row(entry, entry_id, seq))
            change_rows.append((seq, "add", entry_id, now))
            if (row := derivative_row(entry, entry_id)) is not None:
                derivative_rows.append(row)
            results.append(AddResult(id=entry_id))
        conn.executemany(
            "INSERT INTO entries (id, label, sha256, md5, pdq, quality, width, height,"
            " added_at, source, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        conn.executemany(
            "INSERT INTO changes (seq, op, entry_id, at) VALUES (?, ?, ?, ?)", change_rows
        )
        if derivative_rows:
            if not self._derivatives:
                raise BankError(
                    f"the bank {self.path} predates derivative fingerprints and cannot be "
                    "upgraded (it is read-only); nothing was changed",
                    path=str(self.path),
                )
            conn.executemany(
                "INSERT INTO derivatives (entry_id, digest, blob) VALUES (?, ?, ?)",
                derivative_rows,
            )
        return results

    @staticmethod
    def _existing(
        conn: sqlite3.Connection, column: str, hexes: list[str], where: str = "1"
    ) -> dict[str, int]:
        found: dict[str, int] = {}
        unique = list(dict.fromkeys(hexes))
        for start in range(0, len(unique), _CHUNK):
            part = [bytes.fromhex(h) for h in unique[start : start + _CHUNK]]
            marks = ",".join("?" * len(part))
            for entry_id, value in conn.execute(
                f"SELECT id, {column} FROM entries WHERE {where} AND {column} IN ({marks})", part
            ):
                found[value.hex()] = entry_id
        return found

    def remove(self, ids: Iterable[int]) -> list[int]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        removed: list[int] = []
        with self._translate("remove from"):
            conn = self._c
            with _sqlite.write_transaction(conn):
                now = utc_now()
                for start in range(0, len(wanted), _CHUNK):
                    part = wanted[start : start + _CHUNK]
                    marks = ",".join("?" * len(part))
                    present = [
                        r[0]
                        for r in conn.execute(f"SELECT id FROM entries WHERE id IN ({marks})", part)
                    ]
                    if present:
                        marks = ",".join("?" * len(present))
                        if self._derivatives:
                            conn.execute(
                                f"DELETE FROM derivatives WHERE entry_id IN ({marks})", present
                            )
                        conn.execute(f"DELETE FROM entries WHERE id IN ({marks})", present)
                        conn.executemany(
                            "INSERT INTO changes (op, entry_id, at) VALUES ('remove', ?, ?)",
                            [(i, now) for i in present],
                        )
                        removed.extend(present)
            if removed:
                # Fold the log into the database so the deleted rows' old pages
                # do not linger in the write-ahead log file.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return removed

    # -- reading -----------------------------------------------------------
    def get(self, entry_id: int) -> BankEntry:
        found = self.get_many([entry_id])
        if entry_id not in found:
            raise EntryNotFoundError(f"no fingerprint with id {entry_id} in {self.path.parent}")
        return found[entry_id]

    def get_many(self, ids: Iterable[int]) -> dict[int, BankEntry]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, BankEntry] = {}
        with self._translate("read"):
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                for row in self._c.execute(f"{self._select} WHERE e.id IN ({marks})", part):
                    entry = entry_from_row(row)
                    out[row[0]] = entry
        return out

    def entries(self, *, after_id: int = 0, limit: int | None = None) -> Iterator[BankEntry]:
        def page(last: int, size: int) -> list[Any]:
            with self._translate("read"):
                return self._c.execute(
                    f"{self._select} WHERE e.id > ? ORDER BY e.id LIMIT ?", (last, size)
                ).fetchall()

        for row in pages(page, after_id=after_id, limit=limit, size=1000):
            yield entry_from_row(row)

    def find_exact(self, *, sha256: str | None = None, md5: str | None = None) -> list[BankEntry]:
        clauses, params = [], []
        if sha256:
            clauses.append("e.sha256 = ?")
            params.append(bytes.fromhex(sha256))
        if md5:
            clauses.append("e.md5 = ?")
            params.append(bytes.fromhex(md5))
        if not clauses:
            return []
        with self._translate("read"):
            rows = self._c.execute(
                f"{self._select} WHERE {' OR '.join(clauses)} ORDER BY e.id", params
            ).fetchall()
        return [entry_from_row(r) for r in rows]

    def pdq_arrays(self, *, min_quality: int = 0) -> tuple[np.ndarray, np.ndarray]:
        ids: list[int] = []
        blobs: list[bytes] = []
        with self._translate("read"):
            cur = self._c.execute(
                "SELECT id, pdq FROM entries WHERE pdq IS NOT NULL"
                " AND (quality IS NULL OR quality >= ?) ORDER BY id",
                (min_quality,),
            )
            while rows := cur.fetchmany(100_000):
                part_ids, part_blobs = zip(*rows, strict=True)
                ids.extend(part_ids)
                blobs.extend(part_blobs)
        codes = np.frombuffer(b"".join(blobs), dtype=np.uint8).reshape(-1, 32)
        return np.asarray(ids, dtype=np.int64), codes

    def derivatives(
        self, *, after_id: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        if not self._derivatives:
            return

        def page(last: int, size: int) -> list[Any]:
            with self._translate("read"):
                return self._c.execute(
                    # CAST: a damaged bank may hold text there; from_bytes refuses it.
                    "SELECT entry_id, CAST(blob AS BLOB) FROM derivatives WHERE entry_id > ?"
                    " ORDER BY entry_id LIMIT ?",
                    (last, size),
                ).fetchall()

        for entry_id, blob in pages(page, after_id=after_id, limit=limit, size=500):
            yield entry_id, bytes(blob)

    def get_derivatives(self, ids: Iterable[int]) -> dict[int, bytes]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        out: dict[int, bytes] = {}
        if not self._derivatives:
            return out
        with self._translate("read"):
            for start in range(0, len(wanted), _CHUNK):
                part = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(part))
                out.update(
                    self._c.execute(
                        f"SELECT entry_id, CAST(blob AS BLOB) FROM derivatives"
                        f" WHERE entry_id IN ({marks})",
                        part,
                    ).fetchall()
                )
        return out

    def changes(self, *, since: int = 0, limit: int = 1000) -> list[Change]:
        with self._translate("read"):
            rows = self._c.execute(
                "SELECT seq, op, entry_id, at FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
                (since, limit),
            ).fetchall()
        return [Change(seq=r[0], op=r[1], entry_id=r[2], at=r[3]) for r in rows]

    def stats(self) -> BankStats:
        with self._translate("read"):
            c = self._c
            entries, with_pdq, low, with_sha = c.execute(
                "SELECT count(*), count(pdq), coalesce(sum(quality < ?), 0), count(sha256)"
                " FROM entries",
                (PDQ_MIN_QUALITY,),
            ).fetchone()
            row = c.execute("SELECT seq FROM sqlite_sequence WHERE name = 'changes'").fetchone()
            derivatives = (
                c.execute("SELECT count(*) FROM derivatives").fetchone()[0]
                if self._derivatives
                else 0
            )
        size = sum(
            p.stat().st_size
            for p in (self.path, self.path.with_name(DB_NAME + "-wal"))
            if p.exists()
        )
        return BankStats(
            entries=entries,
            with_pdq=with_pdq,
            low_quality=low,
            with_sha256=with_sha,
            last_seq=row[0] if row else 0,
            database_bytes=size,
            path=str(self.path.parent),
            with_derivative=derivatives,
        )

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _upgrade(conn: sqlite3.Connection) -> bool:
    """Bring a bank of an older schema up to :data:`SCHEMA_VERSION`, in place.

    Returns False when the bank is older but cannot be written (a read-only
    file): it is then used as it is, without derivative fingerprints.
    """
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return True
    try:
        with _sqlite.write_transaction(conn):
            # Another process may have upgraded it since the check above.
            if conn.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                conn.execute(_DERIVATIVES)  # version 1 -> 2
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    except sqlite3.OperationalError as exc:
        if "readonly" in str(exc):
            return False
        raise
    return True


def pages(
    fetch: Callable[[int, int], Sequence[Sequence[Any]]],
    *,
    after_id: int,
    limit: int | None,
    size: int,
) -> Iterator[Sequence[Any]]:
    """Rows keyed by id in their first column, read a page at a time.

    ``fetch(last, n)`` returns up to ``n`` rows with ids above ``last``, in id
    order; at most ``limit`` rows are yielded in all (None: every row).
    """
    remaining = limit
    last = after_id
    while remaining is None or remaining > 0:
        rows = fetch(last, size if remaining is None else min(size, remaining))
        if not rows:
            return
        yield from rows
        last = rows[-1][0]
        if remaining is not None:
            remaining -= len(rows)


def _blob(hex_digest: str | None) -> bytes | None:
    return None if hex_digest is None else bytes.fromhex(hex_digest)


#: The columns of an entry, in :func:`entry_row` order, as read (table alias ``e``).
_ENTRY_COLUMNS: Final = (
    "e.id, e.label, e.sha256, e.md5, e.pdq, e.quality, e.width, e.height, e.added_at,"
    " e.source, e.seq"
)


def entry_row(entry: BankEntry, entry_id: int, seq: int) -> tuple[Any, ...]:
    """The stored row of an entry, in the column order every store uses."""
    return (
        entry_id,
        entry.label,
        _blob(entry.sha256),
        _blob(entry.md5),
        None if entry.pdq is None else entry.pdq.value,
        entry.quality,
        entry.width,
        entry.height,
        entry.added_at,
        entry.source,
        seq,
    )


def derivative_row(entry: BankEntry, entry_id: int) -> tuple[int, bytes, bytes] | None:
    """The ``derivatives`` row of an entry, or None when it has no derivative fingerprint."""
    if entry.derivative is None or entry.derivative_digest is None:
        return None
    return (entry_id, bytes.fromhex(entry.derivative_digest), entry.derivative)


def entry_from_row(row: Sequence[Any]) -> BankEntry:
    """The entry of a stored row (digests as bytes, memoryview or bytea), followed
    by the digest of its derivative fingerprint (or None)."""
    (entry_id, label, sha256, md5, pdq, quality, width, height, added_at, source, seq, der) = row
    return BankEntry(
        id=entry_id,
        label=label,
        sha256=None if sha256 is None else bytes(sha256).hex(),
        md5=None if md5 is None else bytes(md5).hex(),
        pdq=None if pdq is None else PdqHash(bytes(pdq)),
        quality=quality,
        width=width,
        height=height,
        added_at=added_at,
        source=source,
        seq=seq,
        derivative_digest=None if der is None else bytes(der).hex(),
    )
