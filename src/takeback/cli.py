"""The ``takeback`` command line: a thin shell over the library.

Results go to standard output (one JSON object per input with ``--json``),
messages and progress to standard error. Exit codes are :class:`ExitCode`.
Tracebacks appear only with ``-v``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from . import __version__
from .cli_common import BankOpt, ExitCode, bank_timeout
from .errors import BankError, ImportFormatError, TakeBackError
from .files import collect_inputs
from .fingerprint.batch import BatchItem, fingerprint_paths
from .fingerprint.types import PDQ_MATCH_THRESHOLD, PDQ_MIN_QUALITY
from .imageio import ImageLimits
from .threads import limit_blas_threads

__all__ = ["ExitCode", "app", "main"]


HELP = """\
Find doctored copies of your photos, with fingerprints that never contain the photos.

\b
Typical use:
  takeback bank add ~/Pictures/me/          register your photos (only fingerprints are kept)
  takeback match suspect.jpg                is this a copy of a registered photo?
  takeback hash photo.jpg --json            show a photo's fingerprints
  takeback demo                             try it all on sample photos

The bank lives in --bank DIR, else $TAKEBACK_HOME/bank, else your data directory.
Exit codes: 0 ok, 1 some inputs failed, 2 usage, 3 bank unusable, 4 import rejected.
"""

app = typer.Typer(
    help=HELP,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
bank_app = typer.Typer(
    help="Manage the hash bank: add, list, remove, import, export, stats.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(bank_app, name="bank")


def _register_subcommands() -> None:
    """Command groups that live in their own modules (imported lazily inside them)."""
    from .cli_app import register as register_app
    from .cli_c2pa import register as register_c2pa
    from .cli_evidence import register as register_evidence
    from .cli_examine import register as register_examine
    from .cli_log import log_app
    from .cli_serve import register as register_serve

    register_c2pa(app)
    register_examine(app)
    register_evidence(app)
    register_serve(app)
    register_app(app)
    app.add_typer(log_app, name="log")


err = Console(stderr=True, highlight=False, soft_wrap=True)
out = Console(highlight=False, soft_wrap=True)

_state: dict[str, bool] = {"verbose": False}


class Privacy(StrEnum):
    """``bank add --privacy``: which fingerprints a photo is registered with."""

    full = "full"
    pdq_only = "pdq-only"


class DerivativeChoice(StrEnum):
    """``match --derivative``: when the derivative step runs."""

    auto = "auto"
    always = "always"
    never = "never"


JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON object per line (see docs/cli.md).")
]
JobsOpt = Annotated[
    int | None,
    typer.Option(
        "--jobs",
        "-j",
        min=1,
        help="Processes for hashing [default: all cores].",
        show_default=False,
    ),
]
PathsArg = Annotated[
    list[str],
    typer.Argument(
        help="Image files, directories (searched recursively) or glob patterns.", show_default=False
    ),
]


def _version(value: bool) -> None:
    if value:
        out.print(f"takeback {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and details.")
    ] = False,
    version: Annotated[
        bool | None,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = None,
) -> None:
    _state["verbose"] = verbose


# -- helpers ------------------------------------------------------------------


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _warn(message: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}")


def _caution(message: str) -> None:
    """A warning that does not fail the command (a damaged derivative fingerprint)."""
    err.print(f"[bold yellow]warning:[/] {escape(message)}")


def _fail(exc: TakeBackError, json_mode: bool, code: ExitCode) -> typer.Exit:
    """Report an error that stops the whole command."""
    _warn(exc.message)
    if _state["verbose"]:
        err.print(escape("".join(traceback.format_exception(exc))))
    if json_mode:
        _emit({"error": exc.to_dict()})
    return typer.Exit(int(code))


def _bank_dir(bank: Path | None) -> Path:
    from .bank.store import default_bank_dir

    return bank if bank is not None else default_bank_dir()


def _open_store(bank: Path | None, *, create: bool = False) -> Any:
    """The bank at --bank (or the default), created when asked."""
    from .bank.store import SqliteStore

    opener = SqliteStore.create if create else SqliteStore.open
    return opener(_bank_dir(bank), busy_timeout=bank_timeout())


@contextlib.contextmanager
def _guard(json_mode: bool) -> Iterator[None]:
    """Translate TakeBack errors that end a command into messages and exit codes."""
    try:
        yield
    except ImportFormatError as exc:
        raise _fail(exc, json_mode, ExitCode.IMPORT_REJECTED) from None
    except BankError as exc:
        raise _fail(exc, json_mode, ExitCode.BANK_ERROR) from None
    except TakeBackError as exc:
        raise _fail(exc, json_mode, ExitCode.INPUT_FAILED) from None


def _limits() -> ImageLimits:
    try:
        return ImageLimits.from_env()
    except ValueError as exc:
        _warn(str(exc))
        raise typer.Exit(int(ExitCode.USAGE)) from None


@contextlib.contextmanager
def _progress(total: int, label: str) -> Iterator[Callable[[], None]]:
    """A progress bar on stderr for batches worth one (and only on a terminal)."""
    if total < 8 or not err.is_terminal:
        yield lambda: None
        return
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=True) as bar:
        task = bar.add_task(label, total=total)
        yield lambda: bar.advance(task)


def _hash_inputs(
    paths: list[str],
    jobs: int | None,
    label: str,
    *,
    variants: bool = False,
    derivative: bool = False,
    limits: ImageLimits | None = None,
) -> Iterator[BatchItem]:
    """Collect inputs, then fingerprint them in parallel; errors become items."""
    items = collect_inputs(paths)
    limits = limits or _limits()
    todo = [i.path for i in items if i.error is None]
    with _progress(len(todo), label) as tick:
        hashed = fingerprint_paths(
            todo,
            jobs=jobs,
            limits=limits,
            variants=variants,
            derivative=derivative,
            on_done=lambda _: tick(),
        )
        by_order = iter(hashed)
        for item in items:
            if item.error is not None:
                yield BatchItem(item.path, error=item.error)
            else:
                yield next(by_order)


def _report_failure(item: BatchItem, json_mode: bool) -> None:
    error = item.error or TakeBackError(f"{item.path}: unknown failure")
    if json_mode:
        _emit({"path": item.path, "error": error.to_dict()})
    _warn(error.message)


# -- commands -----------------------------------------------------------------


@app.command("hash")
def hash_cmd(paths: PathsArg, json_out: JsonOpt = False, jobs: JobsOpt = None) -> None:
    """Print the fingerprints of images: SHA-256, MD5, PDQ and its quality.

    \b
    Examples:
      takeback hash photo.jpg
      takeback hash ~/Pictures --json > fingerprints.jsonl
    """
    failed = 0
    for item in _hash_inputs(paths, jobs, "Hashing"):
        if item.fingerprint is None:
            failed += 1
            _report_failure(item, json_out)
            continue
        fp = item.fingerprint
        if json_out:
            _emit({"path": item.path, **fp.to_dict()})
        else:
            note = "  (low quality: too featureless to match)" if fp.low_quality else ""
            out.print(
                f"{escape(item.path)}\n  pdq {fp.pdq}  quality {fp.quality}{note}\n"
                f"  sha256 {fp.sha256}\n  md5 {fp.md5}  {fp.width}x{fp.height} px"
            )
    if failed:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


@app.command("match")
def match_cmd(
    paths: PathsArg,
    bank: BankOpt = None,
    threshold: Annotated[
        int, typer.Option(min=0, max=256, help="PDQ match threshold in bits (Meta's default).")
    ] = PDQ_MATCH_THRESHOLD,
    all_variants: Annotated[
        bool,
        typer.Option(
            "--all-variants/--no-variants",
            help="Also match flipped and 90-degree-rotated copies.",
        ),
    ] = True,
    min_quality: Annotated[
        int,
        typer.Option(min=0, max=100, help="Skip PDQ matching for hashes below this quality."),
    ] = PDQ_MIN_QUALITY,
    derivative: Annotated[
        DerivativeChoice,
        typer.Option(
            "--derivative",
            help="When to look for doctored copies with the derivative fingerprints: "
            "auto (when exact bytes and PDQ found nothing), always (also after a PDQ "
            "match: collages), never.",
            case_sensitive=False,
        ),
    ] = DerivativeChoice.auto,
    json_out: JsonOpt = False,
    jobs: JobsOpt = None,
) -> None:
    """Check suspect images against the bank: exact copies first, then PDQ, then
    the derivative fingerprints (doctored copies: part of the picture replaced,
    cropped, turned, mirrored).

    Prints, for each suspect, the registered photos it matches, best first, with
    the method (sha256, md5, pdq, derivative) and how sure the match is: the
    Hamming distance and threshold for PDQ; for a doctored copy the share of
    the suspect the original explains, and the calibrated score.

    \b
    Examples:
      takeback match downloaded.jpg
      takeback match ./suspects --json
    """
    from .bank.matcher import Matcher
    from .imageio import pdq_pixels, read_bytes

    failed = 0
    limits = _limits()
    with _guard(json_out):
        store = _open_store(bank)
        with (
            store,
            Matcher(
                store,
                threshold=threshold,
                all_variants=all_variants,
                min_quality=min_quality,
                derivative=derivative.value,
                on_warning=_caution,
            ) as matcher,
        ):
            for item in _hash_inputs(paths, jobs, "Matching", variants=all_variants, limits=limits):
                if item.fingerprint is None:
                    failed += 1
                    _report_failure(item, json_out)
                    continue

                def pixels(path: str = item.path) -> Any:
                    # Decoded again only when the derivative step runs (see Matcher).
                    return pdq_pixels(read_bytes(path, limits), name=path, limits=limits).pixels

                try:
                    result = matcher.match(item.fingerprint, suspect=pixels)
                except BankError:
                    raise
                except TakeBackError as exc:  # the file changed or vanished since hashing
                    failed += 1
                    _report_failure(BatchItem(item.path, error=exc), json_out)
                    continue
                if json_out:
                    _emit(
                        {
                            "path": item.path,
                            "quality": result.quality,
                            "pdq_searched": result.pdq_searched,
                            "derivative_searched": result.derivative_searched,
                            "derivative_note": result.derivative_note,
                            "matches": [m.to_dict() for m in result.matches],
                        }
                    )
                    continue
                _print_matches(item.path, result, min_quality)
    if failed:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


def _print_matches(path: str, result: Any, min_quality: int) -> None:
    out.print(f"[bold]{escape(path)}[/]")
    if not result.pdq_searched:
        out.print(
            f"  quality {result.quality} is below {min_quality}: PDQ was not used "
            "(use --min-quality 0 to force it)"
        )
    if not result.matches:
        out.print("  no match")
        if result.derivative_note:
            out.print(f"  (derivative fingerprints not used: {escape(result.derivative_note)})")
    for m in result.matches:
        label = escape(m.label)
        if m.method == "derivative":
            mirrored = ", mirrored" if m.mirrored else ""
            how = (
                f"a doctored copy: {m.coverage:.0%} of the suspect is explained by "
                f"{label}{mirrored} (derivative score {m.score:.2f}, "
                f"{m.inliers} matching features)"
            )
            out.print(f"  match #{m.id} {label}: {how}")
            continue
        if m.method != "pdq":
            how = f"exact copy ({m.method})"
        else:
            how = f"pdq distance {m.distance}/{m.threshold}"
            if m.variant and m.variant != "original":
                how += f", as {m.variant.replace('_', ' ')}"
        out.print(f"  match #{m.id} {label}: {how}, score {m.score:.3f}")


@bank_app.command("add")
def bank_add(
    paths: PathsArg,
    bank: BankOpt = None,
    label: Annotated[
        str | None,
        typer.Option(help="Label for the entries [default: each file's name].", show_default=False),
    ] = None,
    source: Annotated[
        str | None, typer.Option(help="A note on where these photos come from.", show_default=False)
    ] = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log",
            help="Also record the registrations in the bank's tamper-evident log "
            "(see `takeback log --help`).",
        ),
    ] = False,
    privacy: Annotated[
        Privacy,
        typer.Option(
            "--privacy",
            help="full: PDQ and the derivative fingerprint, which finds doctored "
            "copies (body replaced, cropped, turned). pdq-only: no derivative fingerprint; "
            "use it for intimate photos: the derivative fingerprint keeps local features "
            "from all over the photo, from which a coarse greyscale sketch of its layout "
            "could be rebuilt, while a PDQ hash cannot be turned back into a picture. "
            "Such photos are then found only as exact or lightly edited copies.",
            case_sensitive=False,
        ),
    ] = Privacy.full,
    json_out: JsonOpt = False,
    jobs: JobsOpt = None,
) -> None:
    """Register photos: store their fingerprints (never the photos) in the bank.

    Each photo gets its exact digests, its PDQ hash and, unless --privacy
    pdq-only, a derivative fingerprint that lets `takeback match` find doctored
    copies. A photo with too little detail for one (flat, blank, very blurred)
    is registered with PDQ only, and says so. A photo already in the bank (same
    bytes) is reported as a duplicate, not stored twice. The bank is created if
    it does not exist.

    \b
    Examples:
      takeback bank add ~/Pictures/me --source "my phone, 2026"
      takeback bank add selfie.jpg --label "profile picture"
      takeback bank add ~/Pictures/me --log     # and prove later when you registered
      takeback bank add ~/Pictures/private --privacy pdq-only
    """
    from .bank.model import BankEntry
    from .bank.store import SqliteStore

    failed = 0
    with_derivative = privacy is Privacy.full
    tally = {"registered": 0, "duplicates": 0, "without": 0}
    with _guard(json_out):
        directory = _bank_dir(bank)
        store = SqliteStore.create(directory, busy_timeout=bank_timeout())
        with store:
            pending: list[tuple[BatchItem, BankEntry | None]] = []

            def flush() -> None:
                # Results are reported in input order, failures included.
                results = store.add(entry for _, entry in pending if entry is not None)
                logged: dict[int, int] = {}
                if log:
                    logged = _log_new(directory, store, results)
                stored = iter(results)
                for item, entry in pending:
                    if entry is None:
                        _report_failure(item, json_out)
                        continue
                    _report_added(item, entry, next(stored), logged, log, json_out, tally)
                pending.clear()

            for item in _hash_inputs(paths, jobs, "Registering", derivative=with_derivative):
                if item.fingerprint is None:
                    failed += 1
                    pending.append((item, None))
                    continue
                entry = BankEntry.from_fingerprint(
                    item.fingerprint,
                    label=label or os.path.basename(item.path),
                    source=source,
                    derivative=item.derivative,
                )
                pending.append((item, entry))
                if len(pending) >= 500:
                    flush()
            flush()
    if not json_out and tally["registered"] + tally["duplicates"] + failed > 1:
        without = tally["without"]
        err.print(
            f"{tally['registered']:,} registered"
            + (f" ({without:,} without a derivative fingerprint)" if without else "")
            + f", {tally['duplicates']:,} already registered"
            + (f", {failed:,} failed" if failed else "")
        )
    if failed:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


def _derivative_note(item: BatchItem) -> str | None:
    """Why a registered photo has no derivative fingerprint, in plain words (None: it has one)."""
    if item.derivative is not None:
        return None
    why = item.derivative_error
    if why is None:
        return "no derivative fingerprint: registered PDQ-only (--privacy pdq-only)"
    if why.code == "too_little_detail":
        return "no derivative fingerprint: too little detail"
    return f"no derivative fingerprint: {why.message}"


def _report_added(
    item: BatchItem,
    entry: Any,
    res: Any,
    logged: dict[int, int],
    log: bool,
    json_out: bool,
    tally: dict[str, int],
) -> None:
    """One line (or JSON object) for a photo handed to the bank."""
    fp = item.fingerprint
    duplicate = res.duplicate_of is not None
    note = None if duplicate else _derivative_note(item)
    tally["duplicates" if duplicate else "registered"] += 1
    tally["without"] += note is not None
    if json_out:
        _emit(
            {
                "path": item.path,
                "id": res.id,
                "label": entry.label,
                "duplicate_of": res.duplicate_of,
                "quality": None if fp is None else fp.quality,
                "derivative_digest": None if duplicate else entry.derivative_digest,
                "derivative_note": note,
                **({"log_index": logged.get(res.id)} if log else {}),
            }
        )
    elif duplicate:
        out.print(f"{escape(item.path)}: already registered as #{res.id}")
    else:
        notes = []
        if fp is not None and fp.low_quality:
            notes.append("low quality: PDQ will only match exact copies")
        if note is not None:
            notes.append(note)
        shown = f"#{res.id} {escape(entry.label)}"
        if notes:
            shown += f" ({escape('; '.join(notes))})"
        if res.id in logged:
            shown += f", log entry {logged[res.id]}"
        out.print(f"{escape(item.path)}: registered as {shown}")


def _log_new(directory: Path, store: Any, results: list[Any]) -> dict[int, int]:
    """Record newly stored entries in the registration log; bank id -> log index.

    The log commits to each entry's digests, PDQ and the SHA-256 of its
    derivative fingerprint (when it has one).
    """
    from .provenance.log import log_registrations

    new_ids = [r.id for r in results if r.duplicate_of is None]
    if not new_ids:
        return {}
    entries = store.get_many(new_ids)
    batch = [entries[i] for i in new_ids]
    digests = [
        None if e.derivative_digest is None else bytes.fromhex(e.derivative_digest) for e in batch
    ]
    logged = log_registrations(directory, batch, digests)
    return {e.bank_id: e.index for e in logged if e.bank_id is not None}


@bank_app.command("list")
def bank_list(
    bank: BankOpt = None,
    limit: Annotated[
        int | None, typer.Option(min=1, help="Show at most this many.", show_default=False)
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """List registered fingerprints (id, label, quality, PDQ, whether it has a
    derivative fingerprint, time added)."""

    with _guard(json_out), _open_store(bank) as store:
        if json_out:
            for entry in store.entries(limit=limit):
                _emit({**entry.to_dict(), "derivative_digest": entry.derivative_digest})
            return
        table = Table(
            "id", "label", "quality", "pdq", "derivative", "added (UTC)", "source", box=None
        )
        count = 0
        for entry in store.entries(limit=limit):
            count += 1
            table.add_row(
                str(entry.id),
                escape(entry.label),
                "-" if entry.quality is None else str(entry.quality),
                "-" if entry.pdq is None else str(entry.pdq)[:16] + "…",
                "-" if entry.derivative_digest is None else "yes",
                entry.added_at,
                escape(entry.source or ""),
            )
        if count:
            out.print(table)
        else:
            err.print("the bank is empty")


@bank_app.command("remove")
def bank_remove(
    ids: Annotated[
        list[int],
        typer.Argument(help="Ids to remove (see `takeback bank list`).", show_default=False),
    ],
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Withdraw fingerprints: they are deleted from the bank, not flagged."""

    with _guard(json_out), _open_store(bank) as store:
        removed = set(store.remove(ids))
    missing = 0
    for entry_id in dict.fromkeys(ids):
        if entry_id in removed:
            if json_out:
                _emit({"id": entry_id, "removed": True})
            else:
                out.print(f"#{entry_id} removed")
        else:
            missing += 1
            message = f"no fingerprint with id {entry_id} in the bank"
            if json_out:
                _emit(
                    {
                        "id": entry_id,
                        "removed": False,
                        "error": {"code": "entry_missing", "message": message},
                    }
                )
            _warn(message)
    if missing:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


@bank_app.command("stats")
def bank_stats(bank: BankOpt = None, json_out: JsonOpt = False) -> None:
    """Show how many fingerprints the bank holds and where it is."""
    from dataclasses import asdict

    with _guard(json_out), _open_store(bank) as store:
        stats = store.stats()
    if json_out:
        _emit(asdict(stats))
        return
    out.print(
        f"bank        {escape(stats.path)}\n"
        f"entries     {stats.entries:,}\n"
        f"with PDQ    {stats.with_pdq:,} ({stats.low_quality:,} of low quality)\n"
        f"with derivative fingerprint {stats.with_derivative:,}\n"
        f"with SHA-256 {stats.with_sha256:,}\n"
        f"last change #{stats.last_seq:,}\n"
        f"size        {stats.database_bytes / 1e6:,.1f} MB"
    )


@bank_app.command("import")
def bank_import(
    file: Annotated[Path, typer.Argument(help="Hash list to import.", show_default=False)],
    bank: BankOpt = None,
    fmt: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="pdq (hex lines), te-csv (ThreatExchange CSV) or jsonl (TakeBack)"
            " [default: detected].",
            show_default=False,
        ),
    ] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Import the good lines and report the bad ones.")
    ] = False,
    label: Annotated[
        str | None,
        typer.Option(help="Label for entries the file does not label.", show_default=False),
    ] = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Provenance note for entries the file gives none [default: the file's name].",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Import a partner's hash list. The whole file is checked first: a malformed
    line rejects the file (nothing is imported) unless --skip-bad is given.

    \b
    Examples:
      takeback bank import partner.csv
      takeback bank import hashes.txt --format pdq --label "partner X"
    """
    from .bank.exchange import read_entries

    with _guard(json_out):
        report = read_entries(file, fmt=fmt, skip_bad=skip_bad, label=label, source=source)
        with _open_store(bank, create=True) as store:
            results = store.add(report.entries)
    added = sum(1 for r in results if r.duplicate_of is None)
    duplicates = len(results) - added
    for bad in report.errors:
        _warn(bad.message)
    if report.bad_lines > len(report.errors):
        _warn(f"... and {report.bad_lines - len(report.errors):,} more bad lines")
    summary = {
        "path": str(file),
        "read": report.lines_read,
        "added": added,
        "duplicates": duplicates,
        "bad_lines": report.bad_lines,
        "skipped_types": report.skipped,
    }
    if json_out:
        _emit(summary)
    else:
        other = ", ".join(f"{n:,} {kind}" for kind, n in sorted(report.skipped.items()))
        out.print(
            f"{escape(str(file))}: {added:,} added, {duplicates:,} already present"
            + (f", {report.bad_lines:,} bad lines skipped" if report.bad_lines else "")
            + (f"; signal types TakeBack does not use were skipped: {other}" if other else "")
        )
    if report.bad_lines:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


@bank_app.command("export")
def bank_export(
    bank: BankOpt = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="pdq (hex lines), te-csv (ThreatExchange CSV) or jsonl (TakeBack)."
        ),
    ] = "jsonl",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Write to this file [default: standard output].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export the bank's fingerprints for a partner or a backup (no images, only hashes).

    \b
    Examples:
      takeback bank export --format te-csv -o my-hashes.csv
      takeback bank export > backup.jsonl
    """
    from .bank.exchange import FORMATS, write_entries

    if fmt not in FORMATS:
        _warn(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}")
        raise typer.Exit(int(ExitCode.USAGE))
    with _guard(False), _open_store(bank) as store:
        if output is None:
            count = write_entries(store.entries(), sys.stdout, fmt=fmt)
        else:
            count = _write_atomic(output, lambda fh: write_entries(store.entries(), fh, fmt=fmt))
    err.print(f"exported {count:,} fingerprints" + (f" to {escape(str(output))}" if output else ""))


def _write_atomic(path: Path, write: Callable[[Any], int]) -> int:
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            count = write(fh)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return count


@app.command("demo")
def demo_cmd(
    bank: Annotated[
        Path | None,
        typer.Option(
            help="Keep the demo bank here [default: a temporary directory].", show_default=False
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the whole job on sample photos that ship with scikit-image: register
    them, doctor one in code (a region replaced by another photo, then cropped
    and re-encoded), and find it again. Nothing is read from or written to your
    own bank.
    """
    from .demo import run_demo

    with _guard(json_out), contextlib.ExitStack() as stack:
        directory = bank or Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="takeback-demo-"))
        )
        report = run_demo(directory, echo=None if json_out else out.print)
        if bank is not None and not json_out:
            out.print(f"The demo bank and suspects are kept in {escape(str(bank))}")
    if json_out:
        _emit(report)
    if not report["ok"]:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


_register_subcommands()


def main() -> None:
    """Entry point of the ``takeback`` console script."""
    limit_blas_threads()
    try:
        app()
    except TakeBackError as exc:  # raised outside a guard
        _warn(exc.message)
        sys.exit(int(ExitCode.INPUT_FAILED))
    except KeyboardInterrupt:
        _warn("interrupted; anything not yet committed to the bank was left out")
        sys.exit(130)
    except Exception as exc:  # a bug: say so plainly, traceback only with -v
        if _state["verbose"]:
            traceback.print_exc()
        _warn(f"internal error: {type(exc).__name__}: {exc}. Run again with -v and report it.")
        sys.exit(int(ExitCode.INTERNAL))


if __name__ == "__main__":
    main()
