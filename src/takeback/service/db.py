"""The service database: API keys and the audit log, in SQLite or PostgreSQL.

Separate from the banks so that a matcher reading a bank from a read-only
PostgreSQL standby can still keep its keys and audit log on the primary
(``TAKEBACK_SERVICE_DB``). By default it is ``service.sqlite3`` beside a SQLite
bank, or the ``takeback_service`` schema of a PostgreSQL bank's database.

Two tables, the same in both::

    api_keys(key_id, secret_sha256, role, banks, label, created_at, revoked_at)
    audit(seq, at, key_id, action, bank, result_count, status, prev_hash, hash)

Queries are written once with ``?`` placeholders and table names from
:attr:`ServiceDb.keys_table` / :attr:`ServiceDb.audit_table`. Every method may be
called from several threads (they take turns). sqlite3 and psycopg errors are
translated into :class:`~takeback.errors.BankError` at this boundary.
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Final, Protocol, Self

from .. import _sqlite
from ..bank.open import is_postgres_url, redact_url
from ..errors import BankCorruptError, BankError, BankLockedError, BankNotFoundError, TakeBackError

if TYPE_CHECKING:
    import psycopg

__all__ = ["PG_SCHEMA", "ServiceDb", "Tx", "open_service_db"]

#: PostgreSQL schema of the service tables.
PG_SCHEMA: Final = "takeback_service"
_SCHEMA_VERSION: Final = 1
_APPLICATION_ID: Final = 0x54414B53  # "TAKS"
_PG_LOCK: Final = 0x54414B53  # advisory lock: schema creation and audit appends

_DDL: Final = """
CREATE TABLE {p}api_keys (
    key_id        TEXT PRIMARY KEY,
    secret_sha256 TEXT NOT NULL,
    role          TEXT NOT NULL,
    banks         TEXT NOT NULL,
    label         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    revoked_at    TEXT
);
CREATE TABLE {p}audit (
    seq          BIGINT  PRIMARY KEY,
    at           TEXT    NOT NULL,
    key_id       TEXT,
    action       TEXT    NOT NULL,
    bank         TEXT,
    result_count INTEGER,
    status       INTEGER NOT NULL,
    prev_hash    TEXT    NOT NULL,
    hash         TEXT    NOT NULL
);
"""


class Tx(Protocol):
    """Statements inside one write transaction (:meth:`ServiceDb.exclusive`)."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement and return its rows."""
        ...

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters (batched)."""
        ...


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._conn.execute(sql, tuple(params)).fetchall()

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        self._conn.executemany(sql, [tuple(r) for r in rows])


class _PgTx:
    def __init__(self, conn: psycopg.Connection[tuple[Any, ...]]) -> None:
        self._conn = conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cur = self._conn.execute(sql.replace("?", "%s"), tuple(params))
        return cur.fetchall() if cur.description else []

    def many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        with self._conn.cursor() as cur:
            cur.executemany(sql.replace("?", "%s"), [tuple(r) for r in rows])


class ServiceDb(abc.ABC):
    """Where keys and audit records are kept; a context manager.

    Use :func:`open_service_db`.
    """

    name: ClassVar[str]
    #: Qualified table names for queries.
    keys_table: str
    audit_table: str
    #: Where the database is, without a password.
    location: str

    @abc.abstractmethod
    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run one statement on its own (autocommit) and return its rows."""

    @abc.abstractmethod
    def exclusive(self) -> contextlib.AbstractContextManager[Tx]:
        """A write transaction that excludes every other writer of the audit log."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the connection; idempotent."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_KIND: Final = _sqlite.DatabaseKind(
    what="service database",
    application_id=_APPLICATION_ID,
    version=_SCHEMA_VERSION,
    schema=_DDL.format(p=""),
    error=BankError,
    not_found=BankNotFoundError,
    corrupt=BankCorruptError,
)


class SqliteServiceDb(ServiceDb):
    """The service database in one SQLite file (WAL mode)."""

    name = "sqlite"
    keys_table = "api_keys"
    audit_table = "audit"

    def __init__(self, path: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> None:
        db = Path(path)
        self.location = os.fspath(db)
        try:
            db.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BankError(
                f"cannot create the directory of the service database {db} ({exc.strerror})",
                path=self.location,
            ) from exc
        try:
            conn = sqlite3.connect(
                self.location, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise BankError(
                f"cannot open the service database {db} ({exc})", path=self.location
            ) from exc
        try:
            _sqlite.prepare(conn, db, _KIND, create=True)
        except BaseException:
            conn.close()
            raise
        self._conn: sqlite3.Connection | None = conn
        self._lock = threading.RLock()

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise BankError("the service database has been closed", path=self.location)
        return self._conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, _sqlite.SqliteErrors(self.location, "use", _KIND):
            return self._c().execute(sql, tuple(params)).fetchall()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Tx]:
        with self._lock, _sqlite.SqliteErrors(self.location, "write to", _KIND):
            conn = self._c()
            with _sqlite.write_transaction(conn):
                yield _SqliteTx(conn)

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class PostgresServiceDb(ServiceDb):
    """The service database in the ``takeback_service`` schema of a PostgreSQL database."""

    name = "postgres"
    keys_table = f"{PG_SCHEMA}.api_keys"
    audit_table = f"{PG_SCHEMA}.audit"

    def __init__(self, url: str, *, busy_timeout: float = 5.0) -> None:
        self._url = url
        self._busy_timeout = busy_timeout
        self.location = redact_url(url)
        self._lock = threading.RLock()
        self._closed = False
        self._conn: psycopg.Connection[tuple[Any, ...]] | None = None
        with self._lock, self._errors("open"):
            self._conn = self._connect()

    def _connect(self) -> psycopg.Connection[tuple[Any, ...]]:
        import psycopg

        conn = psycopg.connect(
            self._url, autocommit=True, connect_timeout=10, application_name="takeback-service"
        )
        try:
            conn.execute(
                "SELECT set_config('lock_timeout', %s, false)",
                (f"{max(1, round(self._busy_timeout * 1000))}ms",),
            )
            exists = conn.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (PG_SCHEMA,)
            ).fetchone()
            if not exists or exists[0] < 2:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
                    conn.execute(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
                    for statement in _DDL.format(p=f"{PG_SCHEMA}.").split(";"):
                        if statement.strip():
                            conn.execute(
                                statement.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS")
                            )
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        import psycopg
        from psycopg import errors as pgerrors

        try:
            yield
        except TakeBackError:
            raise
        except psycopg.Error as exc:
            if self._conn is not None and (self._conn.broken or self._conn.closed):
                self._conn.close()
                self._conn = None
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            if self._url in text:
                text = text.replace(self._url, self.location)
            if isinstance(exc, pgerrors.LockNotAvailable):
                raise BankLockedError(
                    f"the service database at {self.location} is locked by another writer; "
                    "try again",
                    path=self.location,
                ) from exc
            raise BankError(
                f"cannot {action} the service database at {self.location} ({text})",
                path=self.location,
            ) from exc

    def _c(self) -> psycopg.Connection[tuple[Any, ...]]:
        if self._closed:
            raise BankError("the service database has been closed", path=self.location)
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()  # the previous connection broke
        return self._conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._errors("use"):
            cur = self._c().execute(sql.replace("?", "%s"), tuple(params))
            return cur.fetchall() if cur.description else []

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[Tx]:
        with self._lock, self._errors("write to"):
            conn = self._c()
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_PG_LOCK,))
                yield _PgTx(conn)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


def open_service_db(location: str, *, busy_timeout: float = 5.0) -> ServiceDb:
    """The service database at ``location`` (a SQLite file or a PostgreSQL URL), created
    when missing.

    Examples
    --------
    >>> import tempfile, os
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     with open_service_db(os.path.join(tmp, "service.sqlite3")) as db:
    ...         db.query(f"SELECT count(*) FROM {db.keys_table}")
    [(0,)]
    """
    if is_postgres_url(location):
        return PostgresServiceDb(location, busy_timeout=busy_timeout)
    return SqliteServiceDb(location, busy_timeout=busy_timeout)
