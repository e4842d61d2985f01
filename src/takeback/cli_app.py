"""``takeback app``: start the local web page for people (see docs/app.md).

A thin shell over :mod:`takeback.app`: it binds 127.0.0.1 on a free port (or
``--port``), prints the address, opens it in the browser unless
``--no-browser``, and serves until Ctrl+C.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .cli_common import BankOpt, ExitCode

if TYPE_CHECKING:
    from .app import LocalServer

__all__ = ["app_cmd", "register"]


def app_cmd(
    port: Annotated[
        int,
        typer.Option(min=0, max=65535, help="Port on 127.0.0.1 [default: a free one]."),
    ] = 0,
    no_browser: Annotated[
        bool, typer.Option("--no-browser", help="Print the address; do not open a browser.")
    ] = False,
    bank: BankOpt = None,
    home: Annotated[
        Path | None,
        typer.Option(
            help="TakeBack's folder for keys and the app's lists "
            "[default: $TAKEBACK_HOME, else the platform data directory].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Open TakeBack's page in your browser: register photos, check a picture, get evidence.

    Everything stays on this computer: the page is served on 127.0.0.1 only,
    needs no account and uploads nothing anywhere. Stop it with Ctrl+C.

    \b
    Examples:
      takeback app
      takeback app --no-browser --port 8765
    """
    from .app import AppConfig, LocalServer, create_app

    try:
        config = AppConfig.from_env(home=home, bank=bank)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(int(ExitCode.USAGE)) from None
    try:
        server = LocalServer(create_app(config), port=port)
    except OSError as exc:
        typer.echo(
            f"error: cannot listen on 127.0.0.1:{port} ({exc.strerror}); "
            "choose another --port or leave it out",
            err=True,
        )
        raise typer.Exit(int(ExitCode.USAGE)) from None
    typer.echo(f"TakeBack is running at {server.url}")
    typer.echo("Everything stays on this computer. Press Ctrl+C to stop.", err=True)
    sys.stdout.flush()
    if not no_browser:
        threading.Thread(target=_open_when_ready, args=(server,), daemon=True).start()
    # uvicorn stops gracefully on SIGINT / SIGTERM, then raises the signal again
    # for the handler it found: make that a normal exit, status 0.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_quietly)
    server.run()


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _open_when_ready(server: LocalServer, timeout: float = 20.0) -> None:
    """Open the page in the default browser once the server accepts connections."""
    import webbrowser

    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline:
            return
        time.sleep(0.05)
    webbrowser.open(server.url)


def register(app: typer.Typer) -> None:
    """Add ``app`` to the main Typer application."""
    app.command("app")(app_cmd)
