"""Pieces every command module shares: exit codes and common options."""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["BankOpt", "ExitCode"]


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
