"""The bank's store of record on PostgreSQL, shared by several matcher replicas.

Same contract as :class:`~takeback.bank.store.SqliteStore`; the bank lives in a
dedicated schema, ``takeback``, of an existing database (create the database with
``createdb``; the schema is made by :meth:`PostgresStore.create`)::

    takeback.bank     one row: application tag, schema version, creation time
    takeback.head     one row: the last id and the last change sequence handed out
    takeback.entries  one row per fingerprint (hashes as bytea, never pixels)
    takeback.derivatives  the derivative fingerprint of an entry that has one:
                      (entry_id, digest, blob), its own table so that loading
                      the PDQ hashes never reads the blobs
    takeback.changes  the change feed: (seq, op, entry_id, at), ids only

A bank of schema version 1 (before derivative fingerprints) is upgraded in
place when it is opened, if the user may create tables in the schema (its
owner); otherwise it is used as it is, without derivative fingerprints, until
its owner opens it once.

Feed order
----------
Matcher replicas follow :meth:`PostgresStore.changes` with ``since=<last seq
seen>``, so a change must never become visible *after* a change with a larger
sequence number: a reader that has moved past it would miss it for good. With a
PostgreSQL ``SEQUENCE`` that can happen (transaction A takes seq 5, B takes 6, B
commits first, a reader sees 6 and moves on, A commits 5). Here every write
transaction first locks the single ``takeback.head`` row (``SELECT ... FOR
UPDATE``) and takes its ids and sequence numbers from it. Writers are thereby
serialised: a transaction's numbers are handed out only after the previous
writer has committed *and become visible* (PostgreSQL makes a transaction
visible before it releases its locks), so commit order equals sequence order,
on the primary and on streaming standbys alike. The counter is an ordinary row,
so a rolled-back batch gives its numbers back: the feed has no gaps. Readers
never take that lock (MVCC). A writer that waits for the lock longer than
``busy_timeout`` gets :class:`~takeback.errors.BankLockedError`.

Every write transaction also sends ``NOTIFY takeback_bank, '<last seq>'``
(:data:`NOTIFY_CHANNEL`), delivered at commit, so a replica can ``LISTEN`` on a
connection of its own and poll only when woken.

A replica starts from :meth:`PostgresStore.pdq_snapshot`: the PDQ arrays and the
last sequence number they include, read in one snapshot, so following
``changes(since=that seq)`` afterwards neither misses nor repeats a change.

An entry's derivative fingerprint is written in the same transaction and under
the same ``add`` change as the entry, and deleted with it (``ON DELETE
CASCADE``) under its ``remove``: a replica that applies ``add`` reads it with
:meth:`PostgresStore.get_derivatives`, and drops it on ``remove``.

Removal
-------
Removal deletes the row (and the entry's derivative fingerprint) in the same
transaction that records the ``remove`` change (which holds the id only): no
reader sees the hash once the transaction has committed. PostgreSQL, unlike the
SQLite store, does not overwrite the freed bytes at once: the dead row version
stays in the table file until ``VACUUM`` (autovacuum) prunes the page and its
space is reused, and in the write-ahead log until that is recycled. Run
``VACUUM FULL takeback.entries, takeback.derivatives`` (it locks the tables)
when a withdrawal must also be gone from the disk immediately.

Errors
------
psycopg errors are translated at this boundary with ``raise ... from exc``:
a missing database or schema is :class:`~takeback.errors.BankNotFoundError`, a
``takeback`` schema that is not a TakeBack bank is
:class:`~takeback.errors.BankCorruptError`, a lock wait that times out is
:class:`~takeback.errors.BankLockedError`, anything else (the server unreachable,
authentication failed, the connection lost) is :class:`~takeback.errors.BankError`
naming ``host:port/database``. Messages never contain the password.
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar, Final, Literal

import numpy as np
import psycopg
from psycopg import errors as pgerrors
from psycopg.adapt import PyFormat
from psycopg.conninfo import conninfo_to_dict

from ..errors import (
    BankCorruptError,
    BankError,
    BankLockedError,
    BankNotFoundError,
    EntryNotFoundError,
    TakeBackError,
)
from ..fingerprint.types import PDQ_MIN_QUALITY
from .model import DERIVATIVE_MAX_STORED, AddResult, BankEntry, BankStats, Change, utc_now
from .open import redact_url
from .store import Store, derivative_row, entry_from_row, entry_row, pages

__all__ = [
    "APPLICATION",
    "NOTIFY_CHANNEL",
    "SCHEMA",
    "SCHEMA_VERSION",
    "PostgresStore",
]

#: The database schema that holds a bank.
SCHEMA: Final = "takeback"
#: Version of the schema below (``takeback.bank.schema_version``). Version 1 had
#: no ``takeback.derivatives``; such banks are upgraded when opened.
SCHEMA_VERSION: Final = 2
#: Tag in ``takeback.bank.application``: anything else is not a TakeBack bank.
APPLICATION: Final = "takeback-bank"
#: Channel of the ``NOTIFY`` sent by every write; the payload is the last sequence number.
NOTIFY_CHANNEL: Final = "takeback_bank"

_CREATE_LOCK: Final = 0x54414B42  # "TAKB": advisory lock held while creating the schema
_PAGE: Final = 1000
_ID_RANGE: Final = 1 << 16  # ids per query of pdq_snapshot()

_DDL: Final = """
CREATE SCHEMA IF NOT EXISTS takeback;
CREATE TABLE takeback.bank (
    singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    application    text    NOT NULL,
    schema_version integer NOT NULL,
    created_at     text    NOT NULL
);
CREATE TABLE takeback.head (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    last_id   bigint  NOT NULL CHECK (last_id >= 0),
    last_seq  bigint  NOT NULL CHECK (last_seq >= 0)
);
CREATE TABLE takeback.entries (
    id        bigint   PRIMARY KEY,
    label     text     NOT NULL,
    sha256    bytea    CHECK (sha256 IS NULL OR length(sha256) = 32),
    md5       bytea    CHECK (md5 IS NULL OR length(md5) = 16),
    pdq       bytea    CHECK (pdq IS NULL OR length(pdq) = 32),
    quality   smallint CHECK (quality IS NULL OR quality BETWEEN 0 AND 100),
    width     integer,
    height    integer,
    added_at  text     NOT NULL,
    source    text,
    seq       bigint   NOT NULL
);
CREATE UNIQUE INDEX entries_sha256 ON takeback.entries (sha256) WHERE sha256 IS NOT NULL;
CREATE INDEX entries_md5 ON takeback.entries (md5) WHERE md5 IS NOT NULL;
CREATE UNIQUE INDEX entries_pdq_only ON takeback.entries (pdq)
    WHERE sha256 IS NULL AND pdq IS NOT NULL;
CREATE TABLE takeback.changes (
    seq       bigint PRIMARY KEY,
    op        text   NOT NULL CHECK (op IN ('add', 'remove')),
    entry_id  bigint NOT NULL,
    at        text   NOT NULL
);
"""
# Added by schema version 2. Blobs are stored out of line uncompressed
# (EXTERNAL): binary descriptors do not compress, so trying costs CPU for nothing.
_DDL_DERIVATIVES: Final = f"""
CREATE TABLE takeback.derivatives (
    entry_id  bigint PRIMARY KEY REFERENCES takeback.entries (id) ON DELETE CASCADE,
    digest    bytea  NOT NULL CHECK (length(digest) = 32),
    blob      bytea  NOT NULL CHECK (length(blob) BETWEEN 1 AND {DERIVATIVE_MAX_STORED})
);
ALTER TABLE takeback.derivatives ALTER COLUMN blob SET STORAGE EXTERNAL;
"""
_TABLES: Final = ("bank", "head", "entries", "changes")
_COLUMNS: Final = "id, label, sha256, md5, pdq, quality, width, height, added_at, source, seq"
_DERIVATIVE_COLUMNS: Final = "entry_id, digest, blob"
_DERIVATIVE_TYPES: Final = ("int8", "bytea", "bytea")
_ENTRY_TYPES: Final = (
    "int8", "text", "bytea", "bytea", "bytea", "int2", "int4", "int4", "text", "text", "int8",
)  # fmt: skip
_CHANGE_COLUMNS: Final = "seq, op, entry_id, at"
_CHANGE_TYPES: Final = ("int8", "text", "int8", "text")
_INT4_MIN, _INT4_MAX = -(2**31), 2**31 - 1
_BINARY: Final = PyFormat.BINARY


class _Target:
    """Where a store connects, and how to name it without the password."""

    def __init__(self, url: str) -> None:
        self.url = url
        try:
            params = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise BankError(
                f"{redact_url(url)} is not a valid PostgreSQL URL: write it as "
                "postgresql://user:password@host:port/database (percent-encode special "
                "characters in the password)",
                path=redact_url(url),
            ) from exc
        self.secrets = [str(params[k]) for k in ("password",) if params.get(k)]
        host = str(params.get("host") or "localhost")
        port = str(params.get("port") or "5432")
        self.hosts = list(zip(host.split(","), _repeat(port, host), strict=True))
        self.hostport = ",".join(f"{h}:{p}" for h, p in self.hosts)
        self.dbname = str(params.get("dbname") or params.get("user") or "")
        user = params.get("user")
        #: ``postgresql://user@host:port/database``: the bank's name in messages.
        self.display = f"postgresql://{f'{user}@' if user else ''}{self.hostport}/{self.dbname}"

    def scrub(self, text: str) -> str:
        """``text`` with the password (if it appears at all) masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text

    def connect(self, busy_timeout: float) -> psycopg.Connection[tuple[Any, ...]]:
        params = conninfo_to_dict(self.url)
        extra: dict[str, Any] = {}
        if "connect_timeout" not in params:
            extra["connect_timeout"] = 10
        if "application_name" not in params:
            extra["application_name"] = "takeback"
        try:
            conn = psycopg.connect(self.url, autocommit=True, **extra)
        except psycopg.Error as exc:
            raise self._connect_error(exc) from exc
        try:
            # COPY with set_types() looks dumpers up by type oid, where psycopg
            # keeps a pure-Python bytea dumper: use the C one that ``bytes`` gets.
            conn.adapters.register_dumper(bytes, psycopg.adapters.get_dumper(bytes, _BINARY))
            conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)",
                (f"{max(1, round(busy_timeout * 1000))}ms",),
            )
        except psycopg.Error as exc:
            conn.close()
            raise BankError(
                f"cannot set up the connection to the bank at {self.display} "
                f"({self.scrub(_first_line(exc))})",
                path=self.display,
            ) from exc
        return conn

    def _connect_error(self, exc: psycopg.Error) -> BankError:
        text = self.scrub(str(exc))
        reason = _first_line(exc).rpartition(" failed: ")[2].removeprefix("FATAL:").strip()
        reason = self.scrub(reason)
        where = f"the PostgreSQL server at {self.hostport}"
        if re.search(r'database ".*" does not exist', text):
            host, port = self.hosts[0] if len(self.hosts) == 1 else ("HOST", "PORT")
            return BankNotFoundError(
                f"there is no database {self.dbname!r} on {where}: create it "
                f"(createdb -h {host} -p {port} {self.dbname}) and then the bank in it",
                path=self.display,
            )
        if (
            "authentication failed" in text
            or "no password supplied" in text
            or re.search(r'role ".*" does not exist', text)
        ):
            return BankError(
                f"{where} refused the login ({reason}): check the user and password "
                "(in the URL, PGPASSWORD or ~/.pgpass)",
                path=self.display,
            )
        if "Connection refused" in text:
            advice = "is the server running there and accepting TCP connections?"
        elif "timeout" in text:
            advice = "is the host reachable and the port right (a firewall)?"
        elif "resolve host" in text or "translate host name" in text:
            advice = "is the host name right?"
        else:
            advice = "check the URL and that the server accepts connections from here"
        return BankError(f"cannot connect to {where} ({reason}): {advice}", path=self.display)


def _repeat(port: str, host: str) -> list[str]:
    ports = port.split(",")
    count = len(host.split(","))
    return ports if len(ports) == count else [ports[0]] * count


def _connection_lost(exc: psycopg.Error) -> bool:
    """Whether ``exc`` means the connection is gone (server down, terminated, network)."""
    if isinstance(exc, psycopg.InterfaceError):
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state.startswith(("08", "57P"))


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


class _PgErrors(contextlib.AbstractContextManager[None]):
    """Translates psycopg errors raised inside it into the bank's errors."""

    def __init__(self, target: _Target, action: str) -> None:
        self.target, self.action = target, action

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        where = self.target.display
        if isinstance(exc, UnicodeEncodeError):  # raised by psycopg while sending text
            raise BankError(
                f"cannot {self.action} the bank at {where}: a text is not valid Unicode "
                f"({exc.reason}); nothing was changed",
                path=where,
            ) from exc
        if exc is None or isinstance(exc, TakeBackError) or not isinstance(exc, psycopg.Error):
            return
        text = self.target.scrub(_first_line(exc))
        if isinstance(exc, pgerrors.LockNotAvailable | pgerrors.DeadlockDetected):
            raise BankLockedError(
                f"the bank at {where} is locked by another writer; wait for it to finish "
                "(or stop it) and try again; nothing was changed",
                path=where,
            ) from exc
        if isinstance(exc, pgerrors.UndefinedTable | pgerrors.InvalidSchemaName):
            raise BankCorruptError(
                f"the bank's tables at {where} are gone or damaged ({text}); "
                "restore it from a backup",
                path=where,
            ) from exc
        if isinstance(exc, pgerrors.InsufficientPrivilege | pgerrors.ReadOnlySqlTransaction):
            raise BankError(
                f"cannot {self.action} the bank at {where}: not allowed ({text}); "
                "use a user with write access, on the primary server",
                path=where,
            ) from exc
        if isinstance(exc, psycopg.IntegrityError | psycopg.DataError):
            raise BankError(
                f"cannot {self.action} the bank at {where}: the database rejected the data "
                f"({text}); nothing was changed",
                path=where,
            ) from exc
        if _connection_lost(exc):
            raise BankError(
                f"lost the connection to the bank at {where} ({text}); "
                "it is opened again on the next call",
                path=where,
            ) from exc
        raise BankError(f"cannot {self.action} the bank at {where} ({text})", path=where) from exc


class PostgresStore(Store):
    """The shared store: a ``takeback`` schema in a PostgreSQL database.

    Use :meth:`open` (an existing bank) or :meth:`create` (new or existing). One
    store holds one connection; its methods may be called from several threads
    (they take turns). A connection lost (say, a server restart) is re-opened on
    the next call.

    Parameters
    ----------
    conn : psycopg.Connection
        An autocommit connection to a database holding a checked bank.
    target : _Target
        The parsed URL (private).
    busy_timeout : float
        Seconds a writer waits for another writer's lock.

    Examples
    --------
    ::

        with PostgresStore.create("postgresql://takeback@db:5432/takeback") as store:
            [r] = store.add([BankEntry(label="a", pdq=PdqHash.from_hex("ab" * 32))])
            changes = store.changes(since=0)
    """

    name: ClassVar[str] = "postgres"

    def __init__(
        self,
        conn: psycopg.Connection[tuple[Any, ...]],
        target: _Target,
        busy_timeout: float,
        *,
        derivatives: bool = True,
    ) -> None:
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = conn
        self._target = target
        self._busy_timeout = busy_timeout
        self._lock = threading.RLock()
        self._closed = False
        #: The bank's URL without the password.
        self.location = target.display
        self._derivatives = derivatives  # False: a version-1 bank this user cannot upgrade
        self._select = (
            f"SELECT {_COLUMNS}, d.digest FROM takeback.entries e"
            " LEFT JOIN takeback.derivatives d ON d.entry_id = e.id"
            if derivatives
            else f"SELECT {_COLUMNS}, NULL::bytea FROM takeback.entries e"
        )

    # -- opening -----------------------------------------------------------
    @classmethod
    def open(cls, url: str, *, busy_timeout: float = 5.0) -> PostgresStore:
        """Open the bank in the database at ``url``.

        Raises
        ------
        BankNotFoundError
            The database or the bank's schema does not exist.
        BankCorruptError
            The ``takeback`` schema holds something that is not a TakeBack bank.
        BankError
            The server cannot be reached or refuses the login.
        """
        return cls._connect(url, create=False, busy_timeout=busy_timeout)

    @classmethod
    def create(cls, url: str, *, busy_timeout: float = 5.0) -> PostgresStore:
        """Open the bank in the database at ``url``, creating its schema if needed.

        The database itself must exist; the user needs the ``CREATE`` privilege
        on it (or an empty ``takeback`` schema it may create tables in).
        """
        return cls._connect(url, create=True, busy_timeout=busy_timeout)

    @classmethod
    def _connect(cls, url: str, *, create: bool, busy_timeout: float) -> PostgresStore:
        target = _Target(url)
        conn = target.connect(busy_timeout)
        try:
            with _PgErrors(target, "open"):
                upgraded = _prepare(conn, target, create=create)
        except BaseException:
            conn.close()
            raise
        return cls(conn, target, busy_timeout, derivatives=upgraded)

    @contextlib.contextmanager
    def _use(self, action: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
        """The connection, for one operation: thread turn, error translation, reconnect."""
        with self._lock, _PgErrors(self._target, action):
            if self._closed:
                raise BankError("the bank has been closed", path=self.location)
            if self._conn is None or self._conn.closed:
                # The previous connection broke; a fresh one also re-checks the bank.
                conn = self._target.connect(self._busy_timeout)
                try:
                    _prepare(conn, self._target, create=False)
                except BaseException:
                    conn.close()
                    raise
                self._conn = conn
            try:
                yield self._conn
            except (psycopg.OperationalError, psycopg.InterfaceError):
                if self._conn.broken or self._conn.closed:
                    self._conn.close()
                    self._conn = None
                raise

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[tuple[psycopg.Cursor[tuple[Any, ...]], int, int]]:
        """One write transaction holding the bank's write lock (see "Feed order").

        Yields a cursor and the last id and sequence number handed out so far.
        """
        with self._use(action) as conn, conn.transaction(), conn.cursor() as cur:
            row = cur.execute(
                "SELECT last_id, last_seq FROM takeback.head WHERE singleton FOR UPDATE"
            ).fetchone()
            if row is None:
                raise BankCorruptError(
                    f"the bank at {self.location} has lost its head row; restore it from a backup",
                    path=self.location,
                )
            yield cur, row[0], row[1]

    @staticmethod
    def _advance(cur: psycopg.Cursor[tuple[Any, ...]], last_id: int, last_seq: int) -> None:
        cur.execute(
            "UPDATE takeback.head SET last_id = %s, last_seq = %s WHERE singleton",
            (last_id, last_seq),
        )
        cur.execute("SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(last_seq)))

    # -- writing -----------------------------------------------------------
    def add(self, entries: Iterable[BankEntry]) -> list[AddResult]:
        batch = list(entries)
        if not batch:
            return []
        for entry in batch:
            _check_ranges(entry, self.location)
        with self._write("add to") as (cur, last_id, last_seq):
            existing_sha = _existing(
                cur,
                "SELECT id, sha256 FROM takeback.entries WHERE sha256 = ANY(%b)",
                [e.sha256 for e in batch if e.sha256],
            )
            existing_pdq = _existing(
                cur,
                "SELECT id, pdq FROM takeback.entries WHERE sha256 IS NULL AND pdq = ANY(%b)",
                [str(e.pdq) for e in batch if not e.sha256 and e.pdq is not None],
            )
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
                last_id += 1
                last_seq += 1
                if key is not None and seen is not None:
                    seen[key] = last_id
                rows.append(entry_row(entry, last_id, last_seq))
                change_rows.append((last_seq, "add", last_id, now))
                if (row := derivative_row(entry, last_id)) is not None:
                    derivative_rows.append(row)
                results.append(AddResult(id=last_id))
            if derivative_rows and not self._derivatives:
                raise BankError(
                    f"the bank at {self.location} predates derivative fingerprints and this "
                    "user may not upgrade it: open it once as the schema's owner (any "
                    "`takeback` command upgrades it); nothing was changed",
                    path=self.location,
                )
            if rows:
                _copy_in(cur, f"takeback.entries ({_COLUMNS})", _ENTRY_TYPES, rows)
                _copy_in(cur, f"takeback.changes ({_CHANGE_COLUMNS})", _CHANGE_TYPES, change_rows)
                if derivative_rows:
                    _copy_in(
                        cur,
                        f"takeback.derivatives ({_DERIVATIVE_COLUMNS})",
                        _DERIVATIVE_TYPES,
                        derivative_rows,
                    )
                self._advance(cur, last_id, last_seq)
        return results

    def remove(self, ids: Iterable[int]) -> list[int]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return []
        with self._write("remove from") as (cur, last_id, last_seq):
            cur.execute(
                "DELETE FROM takeback.entries WHERE id = ANY(%s::bigint[]) RETURNING id",
                (wanted,),
            )
            removed = sorted(r[0] for r in cur.fetchall())
            if removed:
                now = utc_now()
                first = last_seq + 1
                last_seq += len(removed)
                _copy_in(
                    cur,
                    f"takeback.changes ({_CHANGE_COLUMNS})",
                    _CHANGE_TYPES,
                    [(first + i, "remove", entry_id, now) for i, entry_id in enumerate(removed)],
                )
                self._advance(cur, last_id, last_seq)
        return removed

    # -- reading -----------------------------------------------------------
    def get(self, entry_id: int) -> BankEntry:
        found = self.get_many([entry_id])
        if entry_id not in found:
            raise EntryNotFoundError(
                f"no fingerprint with id {entry_id} in {self.location}", path=self.location
            )
        return found[entry_id]

    def get_many(self, ids: Iterable[int]) -> dict[int, BankEntry]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted:
            return {}
        with self._use("read") as conn:
            rows = conn.execute(
                f"{self._select} WHERE id = ANY(%s::bigint[])", (wanted,)
            ).fetchall()
        return {row[0]: entry_from_row(row) for row in rows}

    def entries(self, *, after_id: int = 0, limit: int | None = None) -> Iterator[BankEntry]:
        def page(last: int, size: int) -> list[Any]:
            with self._use("read") as conn:
                return conn.execute(
                    f"{self._select} WHERE id > %s ORDER BY id LIMIT %s", (last, size)
                ).fetchall()

        for row in pages(page, after_id=after_id, limit=limit, size=_PAGE):
            yield entry_from_row(row)

    def find_exact(self, *, sha256: str | None = None, md5: str | None = None) -> list[BankEntry]:
        clauses: list[str] = []
        params: list[bytes] = []
        if sha256:
            clauses.append("sha256 = %s")
            params.append(bytes.fromhex(sha256))
        if md5:
            clauses.append("md5 = %s")
            params.append(bytes.fromhex(md5))
        if not clauses:
            return []
        with self._use("read") as conn:
            rows = conn.execute(
                f"{self._select} WHERE {' OR '.join(clauses)} ORDER BY id", params
            ).fetchall()
        return [entry_from_row(r) for r in rows]

    def pdq_arrays(self, *, min_quality: int = 0) -> tuple[np.ndarray, np.ndarray]:
        _, ids, codes = self.pdq_snapshot(min_quality=min_quality)
        return ids, codes

    def pdq_snapshot(self, *, min_quality: int = 0) -> tuple[int, np.ndarray, np.ndarray]:
        """:meth:`pdq_arrays` and the last sequence number they include, from one snapshot.

        How a matcher replica starts: build the index from the arrays, then follow
        :meth:`changes` from the returned sequence number; nothing is missed or
        applied twice.

        Returns
        -------
        last_seq : int
        ids : numpy.ndarray
            ``(n,)`` int64, ascending.
        codes : numpy.ndarray
            ``(n, 32)`` uint8.
        """
        # One read-only REPEATABLE READ snapshot, read in id ranges; the server
        # concatenates each range's ids and codes into two bytea values, so the
        # client handles a few values per 65,536 ids instead of an object per row
        # (a COPY yields one Python call per row: 3-4 times slower at 1M rows).
        id_parts: list[bytes] = []
        code_parts: list[bytes] = []
        with (
            self._use("read") as conn,
            conn.transaction(),
            conn.cursor(binary=True) as cur,
        ):
            cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            last_seq, low, high = cur.execute(
                "SELECT (SELECT last_seq FROM takeback.head), min(id), max(id)"
                " FROM takeback.entries"
            ).fetchone() or (0, None, None)
            for start in range(low or 1, (high or 0) + 1, _ID_RANGE):
                ids, codes = cur.execute(
                    "SELECT string_agg(int8send(id), ''::bytea), string_agg(pdq, ''::bytea)"
                    " FROM takeback.entries WHERE id >= %s AND id < %s AND pdq IS NOT NULL"
                    " AND (quality IS NULL OR quality >= %s)",
                    (start, start + _ID_RANGE, int(min_quality)),
                ).fetchone() or (None, None)
                if ids is not None and codes is not None:
                    id_parts.append(ids)
                    code_parts.append(codes)
        id_bytes, code_bytes = b"".join(id_parts), b"".join(code_parts)
        if len(id_bytes) * 4 != len(code_bytes):
            raise BankCorruptError(
                f"the bank at {self.location} holds PDQ hashes of the wrong length; "
                "restore it from a backup",
                path=self.location,
            )
        ids_out = np.frombuffer(id_bytes, dtype=">i8").astype(np.int64)
        codes_out = np.frombuffer(code_bytes, dtype=np.uint8).reshape(-1, 32)
        if ids_out.size > 1 and not np.all(ids_out[1:] > ids_out[:-1]):
            order = np.argsort(ids_out, kind="stable")  # a range read in table order
            ids_out, codes_out = ids_out[order], codes_out[order]
        return int(last_seq or 0), ids_out, codes_out

    def derivatives(
        self, *, after_id: int = 0, limit: int | None = None
    ) -> Iterator[tuple[int, bytes]]:
        if not self._derivatives:
            return

        def page(last: int, size: int) -> list[Any]:
            with self._use("read") as conn, conn.cursor(binary=True) as cur:
                return cur.execute(
                    "SELECT entry_id, blob FROM takeback.derivatives WHERE entry_id > %s"
                    " ORDER BY entry_id LIMIT %s",
                    (last, size),
                ).fetchall()

        for entry_id, blob in pages(page, after_id=after_id, limit=limit, size=_PAGE):
            yield entry_id, bytes(blob)

    def get_derivatives(self, ids: Iterable[int]) -> dict[int, bytes]:
        wanted = list(dict.fromkeys(int(i) for i in ids))
        if not wanted or not self._derivatives:
            return {}
        with self._use("read") as conn, conn.cursor(binary=True) as cur:
            rows = cur.execute(
                "SELECT entry_id, blob FROM takeback.derivatives"
                " WHERE entry_id = ANY(%s::bigint[])",
                (wanted,),
            ).fetchall()
        return {entry_id: bytes(blob) for entry_id, blob in rows}

    def changes(self, *, since: int = 0, limit: int = 1000) -> list[Change]:
        with self._use("read") as conn:
            rows = conn.execute(
                "SELECT seq, op, entry_id, at FROM takeback.changes WHERE seq > %s"
                " ORDER BY seq LIMIT %s",
                (since, limit),
            ).fetchall()
        return [Change(seq=r[0], op=r[1], entry_id=r[2], at=r[3]) for r in rows]

    def stats(self) -> BankStats:
        derivatives = "(SELECT count(*) FROM takeback.derivatives)" if self._derivatives else "0"
        with self._use("read") as conn:
            row = conn.execute(
                "SELECT count(*), count(pdq), count(*) FILTER (WHERE quality < %s),"
                " count(sha256), (SELECT last_seq FROM takeback.head),"
                " (SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c"
                "  JOIN pg_namespace n ON n.oid = c.relnamespace"
                f"  WHERE n.nspname = %s AND c.relkind = 'r'), {derivatives}"
                " FROM takeback.entries",
                (PDQ_MIN_QUALITY, SCHEMA),
            ).fetchone()
        assert row is not None  # an aggregate always returns a row
        entries, with_pdq, low, with_sha, last_seq, size, with_derivative = row
        return BankStats(
            entries=entries,
            with_pdq=with_pdq,
            low_quality=low,
            with_sha256=with_sha,
            last_seq=last_seq or 0,
            database_bytes=int(size or 0),
            path=self.location,
            with_derivative=with_derivative,
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def _prepare(conn: psycopg.Connection[tuple[Any, ...]], target: _Target, *, create: bool) -> bool:
    """Check the bank's schema (upgrading an older one), or create it (``create``)
    when there is none.

    Returns False for a bank of an older schema that this user may not upgrade
    (it is then used as it is, without derivative fingerprints).
    """
    found = _inspect(conn, target)
    if found != "absent":
        return found == SCHEMA_VERSION or _upgrade(conn, target)
    if not create:
        raise BankNotFoundError(
            f"no TakeBack bank in the database {target.dbname!r} at {target.hostport}: "
            "create one there first (`takeback bank add --bank URL` or "
            "PostgresStore.create(URL))",
            path=target.display,
        )
    with conn.transaction():
        # Two processes creating the same bank at once: the second waits, then finds it.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
        found = _inspect(conn, target)
        if found == "absent":
            for statement in (_DDL + _DDL_DERIVATIVES).split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO takeback.bank (application, schema_version, created_at)"
                " VALUES (%s, %s, %s)",
                (APPLICATION, SCHEMA_VERSION, utc_now()),
            )
            conn.execute("INSERT INTO takeback.head (last_id, last_seq) VALUES (0, 0)")
            return True
    return found == SCHEMA_VERSION or _upgrade(conn, target)


def _upgrade(conn: psycopg.Connection[tuple[Any, ...]], target: _Target) -> bool:
    """Bring a bank of an older schema up to :data:`SCHEMA_VERSION`, in place.

    Returns False when this user may not (not the owner, or a read-only
    standby): the bank is then used without derivative fingerprints.
    """
    try:
        with conn.transaction():
            # Writers hold the head row; an upgrade waits for them, and two
            # upgrades take turns on the creation lock.
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
            version = conn.execute(
                "SELECT schema_version FROM takeback.bank WHERE singleton FOR UPDATE"
            ).fetchone()
            if version is not None and version[0] < 2:
                for statement in _DDL_DERIVATIVES.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            conn.execute(
                "UPDATE takeback.bank SET schema_version = %s WHERE singleton", (SCHEMA_VERSION,)
            )
    except (pgerrors.InsufficientPrivilege, pgerrors.ReadOnlySqlTransaction):
        return False
    return True


def _inspect(conn: psycopg.Connection[tuple[Any, ...]], target: _Target) -> int | Literal["absent"]:
    """The schema version of a bank of a known version, ``absent`` when there is
    no (or an empty) schema."""
    found = dict(
        conn.execute(
            "SELECT c.relname, c.relkind FROM pg_namespace n"
            " LEFT JOIN pg_class c ON c.relnamespace = n.oid WHERE n.nspname = %s",
            (SCHEMA,),
        ).fetchall()
    )
    if not found or set(found) == {None}:
        return "absent"  # no schema, or an empty one made for us by an administrator
    foreign = BankCorruptError(
        f"the schema {SCHEMA!r} in the database {target.dbname!r} at {target.hostport} "
        "is not a TakeBack bank; use another database (or remove that schema)",
        path=target.display,
    )
    if any(found.get(t) != "r" for t in _TABLES):
        raise foreign
    try:
        with conn.transaction():
            row = conn.execute(
                "SELECT application, schema_version FROM takeback.bank WHERE singleton"
            ).fetchone()
    except (pgerrors.UndefinedColumn, pgerrors.DatatypeMismatch) as exc:
        raise foreign from exc
    if row is None or row[0] != APPLICATION:
        raise foreign
    if row[1] > SCHEMA_VERSION:
        raise BankError(
            f"the bank at {target.display} was written by a newer TakeBack "
            f"(schema {row[1]}); upgrade TakeBack",
            path=target.display,
        )
    if row[1] >= 2 and found.get("derivatives") != "r":
        raise BankCorruptError(
            f"the bank at {target.display} has lost its derivatives table; "
            "restore it from a backup",
            path=target.display,
        )
    return int(row[1])


def _existing(cur: psycopg.Cursor[tuple[Any, ...]], query: str, hexes: list[str]) -> dict[str, int]:
    """Hex digest -> id of the stored entries that ``query`` finds among ``hexes``."""
    unique = list(dict.fromkeys(hexes))
    if not unique:
        return {}
    cur.execute(query, ([bytes.fromhex(h) for h in unique],))
    return {bytes(value).hex(): entry_id for entry_id, value in cur.fetchall()}


def _copy_in(
    cur: psycopg.Cursor[tuple[Any, ...]],
    table: str,
    types: Sequence[str],
    rows: list[tuple[object, ...]],
) -> None:
    """Binary ``COPY ... FROM STDIN``: several times faster than ``INSERT``s.

    Binary integers are sent as is (psycopg does not range-check them): callers
    check ranges first (:func:`_check_ranges`).
    """
    with cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(types)
        for row in rows:
            copy.write_row(row)


def _check_ranges(entry: BankEntry, where: str) -> None:
    """Refuse values a binary COPY would silently truncate (the SQL CHECKs do the rest)."""
    for name, value, low, high in (
        ("quality", entry.quality, 0, 100),
        ("width", entry.width, _INT4_MIN, _INT4_MAX),
        ("height", entry.height, _INT4_MIN, _INT4_MAX),
    ):
        if value is not None and not low <= value <= high:
            raise BankError(
                f"cannot add {entry.label!r} to the bank at {where}: its {name} {value} is "
                f"outside {low}..{high}; nothing was changed",
                path=where,
            )
