"""``takeback evidence verify``, and the evidence options of ``takeback examine``.

A thin shell over :mod:`takeback.evidence`. The main app registers the group
with :func:`register` (``app.add_typer(app, name="evidence")``).

``verify`` prints its verdict on standard output (one JSON object with
``--json``). Exit codes: 0 every hash and the custody chain check out;
:data:`EXIT_PACKAGE_BROKEN` (5) something was changed, removed or added (the
first problem is named); 1 the package cannot be read at all; 2 usage.

The ``examine`` command reuses :data:`ReportOpt` and the other option types
below, and hands them to :func:`package_from_options`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from .cli_common import ExitCode

if TYPE_CHECKING:
    from .evidence import PackageResult, PackageVerification
    from .examine.model import Examination

__all__ = [
    "EXIT_PACKAGE_BROKEN",
    "AccountOpt",
    "CaseIdOpt",
    "NotesOpt",
    "RedactOpt",
    "ReportOpt",
    "RequestedByOpt",
    "ScreenshotOpt",
    "SeenAtOpt",
    "SeenUrlOpt",
    "app",
    "describe_package",
    "normalise_seen_at",
    "package_from_options",
    "register",
    "verify_cmd",
]

#: Exit code of ``evidence verify`` when the package was changed (``ExitCode`` has 0-4, 70).
EXIT_PACKAGE_BROKEN = int(ExitCode.PACKAGE_BROKEN)

app = typer.Typer(
    help="Evidence packages: check that one is intact.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@app.callback()
def _group() -> None:
    """Evidence packages: check that one is intact."""
    # A callback keeps `evidence` a group (`takeback evidence verify`) with one command.


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object (see docs/evidence.md).")
]

# -- options for `takeback examine` -------------------------------------------

ReportOpt = Annotated[
    Path | None,
    typer.Option(
        "--report",
        help="Write an evidence package: a new folder (evidence copies, report.pdf, "
        "report.html, report.json, custody log, SHA256SUMS), or a single FILE.pdf or "
        "FILE.html. Never overwrites.",
        show_default=False,
    ),
]
CaseIdOpt = Annotated[
    str | None,
    typer.Option("--case-id", help="Your or the platform's case reference.", show_default=False),
]
RequestedByOpt = Annotated[
    str | None,
    typer.Option(
        "--requested-by",
        help="Who the report is for (a person or an organisation).",
        show_default=False,
    ),
]
SeenUrlOpt = Annotated[
    str | None,
    typer.Option("--seen-url", help="Where the fake was seen (never fetched).", show_default=False),
]
SeenAtOpt = Annotated[
    str | None,
    typer.Option(
        "--seen-at",
        help="When it was seen: 2026-05-01T21:30 or 2026-05-01T21:30+02:00.",
        show_default=False,
    ),
]
AccountOpt = Annotated[
    str | None,
    typer.Option("--account", help="The account that posted it.", show_default=False),
]
ScreenshotOpt = Annotated[
    Path | None,
    typer.Option(
        "--screenshot",
        help="A screenshot of the post (kept as evidence; not shown in the report "
        "unless --no-redact).",
        show_default=False,
    ),
]
NotesOpt = Annotated[
    str | None,
    typer.Option("--notes", help="Anything else to put on record.", show_default=False),
]
RedactOpt = Annotated[
    bool,
    typer.Option(
        "--redact/--no-redact",
        help="Blur the altered region (or, without one, the whole suspect) in the "
        "report's pictures. The evidence copy is never altered.",
    ),
]


def normalise_seen_at(text: str | None) -> str | None:
    """Check ``--seen-at`` and write it in ISO 8601 (UTC when a zone is given).

    Raises
    ------
    EvidenceInputError
        Not a date and time.

    Examples
    --------
    >>> normalise_seen_at("2026-05-01 21:30+02:00")
    '2026-05-01T19:30:00Z'
    >>> normalise_seen_at("2026-05-01T21:30")
    '2026-05-01T21:30:00'
    """
    from .evidence import EvidenceInputError

    if text is None or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise EvidenceInputError(
            f"--seen-at {text!r} is not a date and time; write it like 2026-05-01T21:30 "
            "(add +02:00 for the time zone) and put anything vaguer in --notes"
        ) from None
    if when.tzinfo is None:
        return when.isoformat(timespec="seconds")
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def package_from_options(
    target: Path,
    examination: Examination,
    *,
    suspect: Path,
    original: Path | None,
    case_id: str | None = None,
    requested_by: str | None = None,
    seen_url: str | None = None,
    seen_at: str | None = None,
    account: str | None = None,
    screenshot: Path | None = None,
    notes: str | None = None,
    redact: bool = True,
    provenance: dict[str, Any] | None = None,
    options: dict[str, Any] | None = None,
) -> PackageResult:
    """Map the ``examine`` command's options onto :func:`~takeback.evidence.write_package`.

    Parameters
    ----------
    target : Path
        ``--report``.
    examination : Examination
    suspect, original : Path
        The files examined.
    case_id, requested_by, seen_url, seen_at, account, screenshot, notes, redact
        The options of the same names; ``seen_at`` is checked with
        :func:`normalise_seen_at`, blank texts count as not given.
    provenance : dict, optional
        The original's C2PA verification and registration-log proof, if looked up.
    options : dict, optional
        The ``examine`` options that shaped the result (recorded in the report as
        ``tool.invocation.options``).

    Returns
    -------
    PackageResult

    Raises
    ------
    TakeBackError
        Any error of :func:`~takeback.evidence.write_package`, or a bad ``seen_at``.
    """
    from .evidence import CaseInfo, write_package

    def text(value: str | None) -> str | None:
        return value.strip() if value and value.strip() else None

    case = CaseInfo(
        case_id=text(case_id),
        requested_by=text(requested_by),
        seen_url=text(seen_url),
        seen_at=normalise_seen_at(seen_at),
        account=text(account),
        screenshot=screenshot,
        notes=text(notes),
    )
    invocation = {"command": "takeback examine", "options": dict(options or {})}
    return write_package(
        target,
        examination,
        suspect_path=suspect,
        original_path=original,
        case=case,
        provenance=provenance,
        redact=redact,
        tool=invocation,
    )


def describe_package(result: PackageResult) -> str:
    """Plain lines telling the user what was written and which hash to note."""
    if result.kind == "directory":
        return (
            f"evidence package written to {result.path}\n"
            f"  read report.pdf; send the whole folder to a lawyer or the police\n"
            f"  package SHA-256 (of SHA256SUMS) {result.sha256}: note it somewhere else\n"
            f"  check it any time: takeback evidence verify {result.path}"
        )
    return (
        f"report written to {result.path}\n"
        f"  SHA-256 {result.sha256}: note it somewhere else to prove it was not changed"
    )


# -- the command ---------------------------------------------------------------


def _cli() -> ModuleType:
    """The main CLI module, imported late (it imports this module to register it)."""
    from . import cli

    return cli


def _print_verdict(result: PackageVerification) -> None:
    cli = _cli()
    path = escape(result.path)
    if result.ok:
        if result.kind == "directory":
            cli.out.print(
                f"{path}: intact. {result.checked} checks passed: every file matches its "
                f"SHA-256 and the {result.custody_steps} custody steps chain correctly.\n"
                f"  package SHA-256 (of SHA256SUMS) {result.sha256}"
            )
        else:
            cli.out.print(
                f"{path}: consistent. {result.checked} checks passed (the embedded "
                f"report.json and its {result.custody_steps} custody steps).\n"
                f"  SHA-256 {result.sha256}: compare it with the one noted when the report "
                "was written; only that proves the file itself is unchanged"
            )
        return
    count = len(result.problems)
    lines = [
        f"{path}: BROKEN. " + ("1 problem:" if count == 1 else f"{count} problems; the first:")
    ]
    lines.append(f"  {escape(result.problems[0])}" if result.problems else "  nothing to check")
    if count > 1:
        lines.append("then:")
        lines += [f"  {escape(p)}" for p in result.problems[1:]]
    cli.out.print("\n".join(lines))


@app.command("verify")
def verify_cmd(
    package: Annotated[
        Path,
        typer.Argument(
            help="A package folder, or a single report .pdf or .html.", show_default=False
        ),
    ],
    json_out: JsonOpt = False,
) -> None:
    """Check an evidence package: every SHA-256, the chain of custody, and that
    report.json, report.html and report.pdf agree. Names the first thing that broke.

    \b
    Exit codes: 0 intact, 5 changed (see the messages), 1 unreadable.
    Examples:
      takeback evidence verify case-12
      takeback evidence verify case-12.pdf --json
    """
    from .evidence import verify_package

    cli = _cli()
    with cli._guard(json_out):
        result = verify_package(package)
    if json_out:
        cli._emit(result.to_dict())
    else:
        _print_verdict(result)
    if not result.ok:
        raise typer.Exit(EXIT_PACKAGE_BROKEN)


def register(parent: typer.Typer) -> None:
    """Add the ``evidence`` group to the main ``takeback`` app."""
    parent.add_typer(app, name="evidence")
