"""Open a bank by where it lives: a directory (SQLite) or a PostgreSQL URL."""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import BankError
from .store import SqliteStore, Store

__all__ = ["is_postgres_url", "open_store", "redact_url"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_OTHER_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_postgres_url(location: object) -> bool:
    """Whether ``location`` is a ``postgresql://`` or ``postgres://`` URL (a str)."""
    return isinstance(location, str) and location.lower().startswith(_POSTGRES_SCHEMES)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for messages and logs.

    Examples
    --------
    >>> redact_url("postgresql://bank:s3cret@db.example:5432/takeback")
    'postgresql://bank:***@db.example:5432/takeback'
    >>> redact_url("postgresql://db.example/takeback")
    'postgresql://db.example/takeback'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def open_store(
    location: str | os.PathLike[str], *, create: bool = False, busy_timeout: float = 5.0
) -> Store:
    """The bank at ``location``: a :class:`SqliteStore` or a :class:`PostgresStore`.

    psycopg is imported only for a PostgreSQL URL.

    Parameters
    ----------
    location : str or os.PathLike
        A bank directory (SQLite), or a ``postgresql://`` / ``postgres://`` URL
        of a database (PostgreSQL, the bank in its ``takeback`` schema). Path
        objects are always directories.
    create : bool
        Create the bank (the directory and database, or the schema) when there is
        none; otherwise a missing bank raises :class:`~takeback.errors.BankNotFoundError`.
    busy_timeout : float
        Seconds to wait for another writer's lock before
        :class:`~takeback.errors.BankLockedError`.

    Returns
    -------
    Store
        An open store; close it (or use it in ``with``).

    Raises
    ------
    BankError
        For a URL of another scheme (``mysql://``...), and as the stores raise.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp, open_store(tmp, create=True) as store:
    ...     store.name
    'sqlite'
    """
    if is_postgres_url(location):
        from .store_postgres import PostgresStore

        url = str(location)
        if create:
            return PostgresStore.create(url, busy_timeout=busy_timeout)
        return PostgresStore.open(url, busy_timeout=busy_timeout)
    if isinstance(location, str) and _OTHER_URL.match(location):
        raise BankError(
            f"{redact_url(location)} is not a bank TakeBack can use: give a directory "
            "(SQLite) or a postgresql:// URL",
            path=redact_url(location),
        )
    if create:
        return SqliteStore.create(Path(location), busy_timeout=busy_timeout)
    return SqliteStore.open(Path(location), busy_timeout=busy_timeout)
