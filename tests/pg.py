"""A private PostgreSQL server for the tests (and the store benchmark).

Nothing here touches a system cluster: :func:`private_postgres` runs ``initdb``
in a new temporary directory, starts a server that listens on 127.0.0.1 only
(on a free port, its unix socket inside that directory), trusts the local test
user, and stops (``pg_ctl stop -m fast``) and removes it all afterwards, also
when the tests fail. The server binaries are looked for in ``$PG_BINDIR``, under
``/usr/lib/postgresql/<version>/bin`` (Debian's ``postgresql`` package, which
``install.sh`` installs) and on ``PATH``.

``initdb`` refuses to run as root: as root the server runs as ``nobody``, which
owns the temporary directory.

Usage in a test module (pytest finds fixtures in the module's namespace; an
assignment, unlike an import, does not upset ruff's F811 when a test takes the
fixture as an argument)::

    from . import pg

    postgres_server, postgres_url = pg.postgres_server, pg.postgres_url  # fixtures

    def test_something(postgres_url: str) -> None:
        ...  # an empty database on the session's server

Without server binaries the PostgreSQL tests are skipped, except in CI (``CI``
set), where that is an error.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

__all__ = [
    "PASSWORD",
    "PASSWORD_ROLE",
    "TEST_DATABASE",
    "PostgresServer",
    "find_bindir",
    "postgres_server",
    "postgres_url",
    "private_postgres",
]

#: Superuser of the private server; trusted on 127.0.0.1 and the unix socket.
SUPERUSER = "takeback"
#: A role that must log in with :data:`PASSWORD` (for authentication-failure tests).
PASSWORD_ROLE = "takeback_pw"
PASSWORD = "correct horse battery staple"

_HBA = f"""\
local all all                     trust
host  all {PASSWORD_ROLE} 127.0.0.1/32 scram-sha-256
host  all all         127.0.0.1/32 trust
"""
_FAST = """\
fsync = off
synchronous_commit = off
full_page_writes = off
"""
_counter = itertools.count(1)


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """A running private server (see :func:`private_postgres`)."""

    host: str
    port: int
    bindir: Path
    directory: Path
    version: int

    def url(self, dbname: str = "postgres", *, user: str = SUPERUSER, password: str = "") -> str:
        """A ``postgresql://`` URL for ``dbname`` on this server."""
        secret = f":{quote(password, safe='')}" if password else ""
        return f"postgresql://{user}{secret}@{self.host}:{self.port}/{dbname}"

    def admin(self, dbname: str = "postgres") -> psycopg.Connection[tuple[object, ...]]:
        """An autocommit superuser connection (close it, or use it in ``with``)."""
        return psycopg.connect(self.url(dbname), autocommit=True)

    def create_database(self, name: str | None = None) -> str:
        """Create an empty database and return its URL."""
        name = name or f"bank_{os.getpid()}_{next(_counter)}"
        with self.admin() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)


def find_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest version), or None."""
    candidates: list[Path] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(Path(os.environ["PG_BINDIR"]))

    def version(path: str) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", Path(path).parent.parent.name))

    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    candidates += [Path(p).parent for p in sorted(found, key=version, reverse=True)]
    if (initdb := shutil.which("initdb")) is not None:
        candidates.append(Path(initdb).parent)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "pg_ctl").is_file():
            return bindir
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _traversable_by_all(path: Path) -> bool:
    return all(os.stat(p).st_mode & 0o001 for p in [path, *path.parents])


@contextlib.contextmanager
def private_postgres(*, durable: bool = False) -> Iterator[PostgresServer]:
    """Start a throw-away PostgreSQL server; stop and delete it on exit.

    Parameters
    ----------
    durable : bool
        Keep ``fsync``, ``synchronous_commit`` and ``full_page_writes`` on (for
        benchmarks). Tests turn them off: they are several times faster so.

    Raises
    ------
    FileNotFoundError
        When no server binaries are found.
    RuntimeError
        When the server cannot be initialised or started (the message holds its log).
    """
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: install the `postgresql` "
            "package (./install.sh does) or set PG_BINDIR"
        )
    as_root = os.geteuid() == 0
    base = Path(tempfile.gettempdir())
    if as_root and not _traversable_by_all(base):
        base = Path("/tmp")  # the unprivileged server user must reach its directory
    directory = Path(tempfile.mkdtemp(prefix="takeback-pg-", dir=base))
    user = group = None
    extra_groups: list[int] | None = None
    if as_root:
        nobody = pwd.getpwnam("nobody")
        os.chown(directory, nobody.pw_uid, nobody.pw_gid)
        user, group, extra_groups = nobody.pw_uid, nobody.pw_gid, []
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(LC_ALL="C", LANG="C", HOME=str(directory))
    data, log = directory / "data", directory / "server.log"

    def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(a) for a in args],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )

    started = False
    try:
        init = run(
            bindir / "initdb", "-D", data, "-U", SUPERUSER, "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
        )  # fmt: skip
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        (data / "pg_hba.conf").write_text(_HBA)
        version = int((data / "PG_VERSION").read_text().split(".")[0])
        for _attempt in range(5):
            port = _free_port()
            with (data / "postgresql.conf").open("a") as conf:
                conf.write(
                    f"\nlisten_addresses = '127.0.0.1'\nport = {port}\n"
                    f"unix_socket_directories = '{directory}'\nmax_connections = 50\n"
                    + ("" if durable else _FAST)
                )
            start = run(bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", "60", "start")
            if start.returncode == 0:
                started = True
                break
            text = log.read_text() if log.exists() else ""
            if "could not bind" not in text and "already in use" not in text:
                raise RuntimeError(f"the test PostgreSQL server did not start:\n{text}")
        else:
            raise RuntimeError("the test PostgreSQL server found no free port")
        server = PostgresServer("127.0.0.1", port, bindir, directory, version)
        with server.admin() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                    sql.Identifier(PASSWORD_ROLE), sql.Literal(PASSWORD)
                )
            )
        yield server
    finally:
        if started:
            stop = run(bindir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "60", "stop")
            if stop.returncode != 0:
                run(bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop")
        shutil.rmtree(directory, ignore_errors=True)


#: The database that :func:`postgres_url` empties for each test.
TEST_DATABASE = "bank_test"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The session's private PostgreSQL server (started on first use)."""
    assert find_bindir() is not None, (
        "PostgreSQL server binaries (initdb, pg_ctl) not found: run install.sh"
    )
    with private_postgres() as server:
        server.create_database(TEST_DATABASE)
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """The URL of an empty database on the private server (no ``takeback`` schema).

    One database serves the session: emptying it (``DROP SCHEMA takeback``) is
    several times faster than creating one per test.
    """
    url = postgres_server.url(TEST_DATABASE)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET lock_timeout = '10s'")  # a test that leaked a connection: fail
        conn.execute("DROP SCHEMA IF EXISTS takeback CASCADE")
    return url
