"""The SQLite habits every TakeBack database shares (the bank, the registration log).

* A database is tagged with an ``application_id`` and a schema version; anything
  else is refused instead of being modified.
* WAL mode, ``synchronous=FULL``: a committed write survives a power cut.
* Every write is one ``BEGIN IMMEDIATE`` transaction (:func:`write_transaction`).
* sqlite3 errors are translated at this boundary (:class:`SqliteErrors`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import BankError, BankLockedError, TakeBackError

__all__ = ["DatabaseKind", "SqliteErrors", "connect", "prepare", "write_transaction"]


@dataclass(frozen=True, slots=True)
class DatabaseKind:
    """What one kind of TakeBack database is and which errors speak for it."""

    what: str  #: "bank", "registration log": used in messages
    application_id: int
    version: int
    schema: str
    error: type[BankError]
    not_found: type[BankError]
    corrupt: type[BankError]


def connect(path: Path, kind: DatabaseKind, *, busy_timeout: float) -> sqlite3.Connection:
    """Open the database file (autocommit mode; transactions are explicit)."""
    name = str(path)
    try:
        return sqlite3.connect(name, timeout=busy_timeout, isolation_level=None)
    except sqlite3.Error as exc:
        raise kind.error(f"cannot open the {kind.what} database {name} ({exc})", path=name) from exc


@contextlib.contextmanager
def write_transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back whole on any error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def prepare(
    conn: sqlite3.Connection,
    path: Path,
    kind: DatabaseKind,
    *,
    create: bool,
    initialise: Callable[[sqlite3.Connection], None] | None = None,
) -> None:
    """Check the tag of an existing database, or create the schema in a new one.

    ``initialise`` runs inside the creating transaction, after the schema.
    """
    name = str(path)
    with SqliteErrors(name, "open", kind):
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        if app_id == 0 and tables == 0:
            if not create:
                raise kind.not_found(f"{name} is an empty database, not a {kind.what}", path=name)
            conn.execute("PRAGMA journal_mode=WAL")
            with write_transaction(conn):
                # Another process may have created it since the check above.
                if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
                    for statement in kind.schema.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    if initialise is not None:
                        initialise(conn)
                    conn.execute(f"PRAGMA application_id={kind.application_id}")
                    conn.execute(f"PRAGMA user_version={kind.version}")
            with contextlib.suppress(OSError):
                os.chmod(path, 0o600)
        elif app_id != kind.application_id:
            raise kind.corrupt(
                f"{name} is not a TakeBack {kind.what} (it is some other SQLite database)",
                path=name,
            )
        elif version > kind.version:
            raise kind.error(
                f"{name} was written by a newer TakeBack (schema {version}); upgrade TakeBack",
                path=name,
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")


class SqliteErrors(contextlib.AbstractContextManager[None]):
    """Translates sqlite3 errors raised inside it into the database kind's errors."""

    def __init__(self, name: str, action: str, kind: DatabaseKind) -> None:
        self.name, self.action, self.kind = name, action, kind

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc is None or not isinstance(exc, sqlite3.Error) or isinstance(exc, TakeBackError):
            return
        text, what = str(exc), self.kind.what
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            raise BankLockedError(
                f"the {what} {self.name} is locked by another process; wait for it to finish "
                "(or stop it) and try again; nothing was changed",
                path=self.name,
            ) from exc
        if isinstance(exc, sqlite3.DatabaseError) and (
            "not a database" in text or "malformed" in text or "corrupt" in text
        ):
            raise self.kind.corrupt(
                f"the {what} {self.name} is damaged ({text}); restore it from a backup",
                path=self.name,
            ) from exc
        if isinstance(exc, sqlite3.OperationalError) and "readonly" in text:
            raise self.kind.error(
                f"cannot {self.action} the {what} {self.name}: it is read-only ({text})",
                path=self.name,
            ) from exc
        raise self.kind.error(
            f"cannot {self.action} the {what} {self.name} ({text})", path=self.name
        ) from exc
