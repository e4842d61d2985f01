"""Pieces every command module shares: exit codes and common options."""

from __future__ import annotations

import os
from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["BankOpt", "ExitCode", "bank_timeout"]


class ExitCode(IntEnum):
    """Exit status of every ``takeback`` command."""

    OK = 0
    #: Some inputs could not be processed; the others were (see the messages).
    INPUT_FAILED = 1
    #: The command line itself is wrong (unknown option, missing argument).
    USAGE = 2
    #: The bank is missing, damaged, locked or read-only; nothing was changed.
    BANK_ERROR = 3
    #: An import file was rejected; nothing was imported.
    IMPORT_REJECTED = 4
    #: ``evidence verify`` / ``admin audit verify``: the package or the audit log
    #: was changed after it was written.
    PACKAGE_BROKEN = 5
    #: A bug in TakeBack: please report it with the output of ``-v``.
    INTERNAL = 70


BankOpt = Annotated[
    Path | None,
    typer.Option(
        "--bank",
        envvar="TAKEBACK_BANK",
        help="Bank directory [default: $TAKEBACK_HOME/bank, else the platform data directory].",
        show_default=False,
    ),
]


def bank_timeout() -> float:
    """Seconds to wait for another process's write lock (``TAKEBACK_BANK_TIMEOUT``, default 5).

    A malformed value is a usage error (exit code 2).
    """
    raw = os.environ.get("TAKEBACK_BANK_TIMEOUT", "5")
    try:
        return max(0.0, float(raw))
    except ValueError:
        raise typer.BadParameter(
            f"must be a number of seconds, not {raw!r}", param_hint="TAKEBACK_BANK_TIMEOUT"
        ) from None
