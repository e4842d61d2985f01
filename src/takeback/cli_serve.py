"""``takeback serve`` and ``takeback admin``: the hash bank service and its keys.

A thin shell over :mod:`takeback.service`. Settings come from the environment
(``TAKEBACK_*``, see docs/service.md); the options below override them.

\b
Examples:
  takeback admin keys create --role admin --scope '*' --label "me"
  takeback serve                                   # 127.0.0.1:8080, the default bank
  takeback serve --bank postgresql://takeback@db/takeback --role matcher \\
      --host 0.0.0.0 --behind-tls-proxy
"""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import sys
import tempfile
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .cli_common import ExitCode

__all__ = ["admin_app", "main", "register", "serve_cmd"]

err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

_NAMED = re.compile(r"^([a-z0-9][a-z0-9_-]{0,62})=(.+)$")

admin_app = typer.Typer(
    help="Administer the service: API keys and the audit log.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
keys_app = typer.Typer(
    help="API keys: create (the key is printed once), list, revoke.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
admin_app.add_typer(keys_app, name="keys")
admin_app.add_typer(audit_app, name="audit")

BankLocOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--bank",
        metavar="LOCATION",
        help="A bank: DIR or postgresql://URL (the bank named 'default'), or NAME=DIR|URL "
        "(repeat for more) [default: TAKEBACK_BANK, else the CLI's bank].",
        show_default=False,
    ),
]
ServiceDbOpt = Annotated[
    str | None,
    typer.Option(
        "--service-db",
        metavar="LOCATION",
        help="Where API keys and the audit log live: a SQLite file or postgresql://URL "
        "[default: TAKEBACK_SERVICE_DB, else beside the default bank].",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _fail(message: str, code: ExitCode) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(int(code))


def _settings(banks: list[str] | None, service_db: str | None, **overrides: Any) -> Any:
    """:class:`ServiceSettings` from the environment, with the options given on top."""
    from pydantic import ValidationError

    from .service.settings import ServiceSettings

    values: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
    if service_db is not None:
        values["service_db"] = service_db
    named: dict[str, str] = {}
    for item in banks or []:
        match = _NAMED.match(item)
        if match and "://" not in match.group(1):
            named[match.group(1)] = match.group(2)
        elif "bank" in values:
            raise _fail(f"two default banks given ({values['bank']} and {item})", ExitCode.USAGE)
        else:
            values["bank"] = item
    if named:
        values["banks"] = named
    try:
        return ServiceSettings(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise _fail(f"invalid settings: {problems}", ExitCode.USAGE) from None


def _log_config(level: str) -> dict[str, Any]:
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["takeback"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def _preflight(settings: Any) -> None:
    """Open the service database and every bank once, for clear messages on failure."""
    from .bank.open import open_store
    from .errors import TakeBackError
    from .service.db import open_service_db

    try:
        with open_service_db(settings.service_db_location(), busy_timeout=settings.bank_timeout):
            pass
        for location in settings.bank_locations().values():
            with open_store(location, create=True, busy_timeout=settings.bank_timeout):
                pass
    except TakeBackError as exc:
        raise _fail(exc.message, ExitCode.BANK_ERROR) from None


def serve_cmd(
    host: Annotated[
        str | None,
        typer.Option(help="Address to listen on [default: 127.0.0.1].", show_default=False),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port [default: 8080].", show_default=False),
    ] = None,
    bank: BankLocOpt = None,
    role: Annotated[
        str | None,
        typer.Option(
            help="all, matcher (in-memory indexes, matching) or submitter (writes, keys) "
            "[default: all].",
            show_default=False,
        ),
    ] = None,
    service_db: ServiceDbOpt = None,
    behind_tls_proxy: Annotated[
        bool | None,
        typer.Option(
            "--behind-tls-proxy",
            help="Allow a non-loopback address: a TLS-terminating proxy is in front "
            "(its X-Forwarded-* headers are trusted).",
            show_default=False,
        ),
    ] = None,
    insecure_public: Annotated[
        bool | None,
        typer.Option(
            "--insecure-public",
            help="Allow a non-loopback address without TLS (keys travel in clear).",
            show_default=False,
        ),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=0,
            max=64,
            help="Server processes sharing the port, each with its own indexes "
            "[default: TAKEBACK_WORKERS, else one per core, at most 4].",
            show_default=False,
        ),
    ] = None,
    access_log: Annotated[
        bool | None,
        typer.Option(
            "--access-log/--no-access-log",
            help="Log every request (the audit log records them anyway) [default: off].",
            show_default=False,
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Run the hash bank and matching service (HTTP API under /v1, docs at /docs).

    Listens on 127.0.0.1 unless told otherwise; a public address needs
    --behind-tls-proxy or --insecure-public. Create a key first with
    `takeback admin keys create`. Stop with Ctrl-C or SIGTERM.

    With several workers (the default on a multi-core machine), each process
    loads the indexes and follows the banks' change feeds, and accepts
    connections once loaded; rate limits apply per process.

    \b
    Examples:
      takeback serve
      takeback serve --bank default=/srv/bank --bank partner=/srv/partner-bank
      takeback serve --bank postgresql://takeback@db/takeback --role matcher \\
          --host 0.0.0.0 --port 8080 --behind-tls-proxy
    """
    import uvicorn

    from .service.app import WORKER_LOAD_LOCK_ENV, WORKER_SETTINGS_ENV, create_app
    from .service.settings import check_bind

    settings = _settings(
        bank,
        service_db,
        host=host,
        port=port,
        role=role,
        behind_tls_proxy=behind_tls_proxy,
        insecure_public=insecure_public,
        workers=workers,
        access_log=access_log,
    )
    refusal = check_bind(settings)
    if refusal is not None:
        raise _fail(refusal, ExitCode.USAGE)
    _preflight(settings)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": log_level.lower(),
        "log_config": _log_config(log_level),
        "access_log": settings.access_log,
        "proxy_headers": settings.behind_tls_proxy,
        "forwarded_allow_ips": settings.forwarded_allow_ips,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }
    processes = settings.server_processes()
    if processes > 1:
        # uvicorn's supervisor starts the workers (spawned: they import the
        # factory), restarts any that dies and stops them all on SIGINT / SIGTERM.
        # They load their indexes one at a time, taking turns on a lock file.
        os.environ[WORKER_SETTINGS_ENV] = settings.model_dump_json()
        fd, lock = tempfile.mkstemp(prefix="takeback-serve-", suffix=".lock")
        os.close(fd)
        os.environ[WORKER_LOAD_LOCK_ENV] = lock
        try:
            uvicorn.run(
                "takeback.service.app:worker_app", factory=True, workers=processes, **options
            )
        finally:
            os.unlink(lock)
        return
    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    # uvicorn stops gracefully on SIGINT / SIGTERM, then raises the signal again
    # for the handler it found: make that a normal exit, status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_quietly)
    server.run()
    if not server.started:
        raise typer.Exit(int(ExitCode.BANK_ERROR))


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _key_store(bank: list[str] | None, service_db: str | None) -> Any:
    from .errors import TakeBackError
    from .service.auth import KeyStore
    from .service.db import open_service_db

    settings = _settings(bank, service_db)
    try:
        db = open_service_db(settings.service_db_location(), busy_timeout=settings.bank_timeout)
    except TakeBackError as exc:
        raise _fail(exc.message, ExitCode.BANK_ERROR) from None
    return KeyStore(db)


@keys_app.command("create")
def keys_create(
    role: Annotated[
        str, typer.Option(metavar="ROLE", help="submitter, matcher or admin.", show_default=False)
    ],
    scope: Annotated[
        list[str],
        typer.Option(
            metavar="BANK",
            help="A bank the key may use; repeat for more, or '*' for every bank.",
            show_default=False,
        ),
    ],
    label: Annotated[str, typer.Option(help="Who holds the key.")] = "",
    bank: BankLocOpt = None,
    service_db: ServiceDbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create an API key and print it, once: only its hash is stored.

    \b
    Examples:
      takeback admin keys create --role admin --scope '*' --label "ops"
      takeback admin keys create --role matcher --scope default --label "platform X"
    """
    from .errors import TakeBackError

    store = _key_store(bank, service_db)
    try:
        with store.db:
            key, token = store.create(role, scope, label)
    except TakeBackError as exc:
        raise _fail(exc.message, ExitCode.USAGE) from None
    if json_out:
        sys.stdout.write(json.dumps({**key.to_dict(), "token": token}) + "\n")
    else:
        out.print(token)
    err.print(
        f"created key {key.key_id} ({key.role}, banks {', '.join(key.banks)}): "
        "store it now, it is not shown again"
    )


@keys_app.command("list")
def keys_list(
    bank: BankLocOpt = None, service_db: ServiceDbOpt = None, json_out: JsonOpt = False
) -> None:
    """List API keys (never their secrets), revoked ones included."""
    store = _key_store(bank, service_db)
    with store.db:
        keys = store.list_keys()
    if json_out:
        for key in keys:
            sys.stdout.write(json.dumps(key.to_dict()) + "\n")
        return
    if not keys:
        err.print("no keys yet: create one with `takeback admin keys create`")
        return
    table = Table("key id", "role", "banks", "label", "created (UTC)", "revoked", box=None)
    for key in keys:
        table.add_row(
            key.key_id,
            key.role,
            ", ".join(key.banks),
            escape(key.label),
            key.created_at,
            key.revoked_at or "",
        )
    out.print(table)


@keys_app.command("revoke")
def keys_revoke(
    key_id: Annotated[str, typer.Argument(help="The key id (see `admin keys list`).")],
    bank: BankLocOpt = None,
    service_db: ServiceDbOpt = None,
) -> None:
    """Revoke a key for good (running services drop it within TAKEBACK_KEY_REFRESH_SECONDS)."""
    store = _key_store(bank, service_db)
    with store.db:
        key = store.revoke(key_id)
    if key is None:
        raise _fail(f"no key {key_id!r}", ExitCode.INPUT_FAILED)
    out.print(f"key {key.key_id} revoked at {key.revoked_at}")


@audit_app.command("verify")
def audit_verify(
    bank: BankLocOpt = None, service_db: ServiceDbOpt = None, json_out: JsonOpt = False
) -> None:
    """Check the audit log's hash chain; exit 5 if a record was edited, deleted or moved.

    Note the printed head hash elsewhere: it also reveals records deleted from the end.
    """
    from .service.audit import verify_audit

    store = _key_store(bank, service_db)
    with store.db:
        result = verify_audit(store.db)
    if json_out:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
    elif result.ok:
        out.print(f"audit log intact: {result.records:,} records, head {result.head}")
    else:
        err.print(
            f"[bold red]audit log broken[/] at record {result.first_bad}: "
            f"{escape(result.reason or '')} ({result.records:,} good records before it)"
        )
    if not result.ok:
        raise typer.Exit(int(ExitCode.PACKAGE_BROKEN))


def register(app: typer.Typer) -> None:
    """Add ``serve`` and the ``admin`` group to the main ``takeback`` app."""
    app.command("serve")(serve_cmd)
    app.add_typer(admin_app, name="admin")


def main() -> None:
    """Run these commands on their own (``python -m takeback.cli_serve serve ...``)."""
    from .threads import limit_blas_threads

    limit_blas_threads()
    app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None)
    register(app)
    app()


if __name__ == "__main__":
    main()
