"""``takeback log ...``: the registration log on the command line (a thin shell).

Registered in :mod:`takeback.cli` as ``app.add_typer(log_app, name="log")``.
Results go to standard output (one JSON object with ``--json``), messages to
standard error. Exit codes follow :class:`takeback.cli.ExitCode`: 0 done /
verified, 1 a proof or checkpoint did not verify (or an input was unusable),
2 usage, 3 the bank or its log cannot be used. Fields: ``docs/log.md``.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from .cli_common import BankOpt, ExitCode, bank_timeout
from .errors import BankError, TakeBackError
from .provenance.log import (
    ConsistencyResult,
    LogEntry,
    ProofResult,
    RegistrationLog,
    StoredCheckpoint,
    verify_consistency_proof,
    verify_proof,
)
from .provenance.log_errors import ProofFormatError
from .provenance.log_note import NoteVerifier

__all__ = ["log_app"]


log_app = typer.Typer(
    help="The registration log: append-only, signed, provable offline.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

_err = Console(stderr=True, highlight=False, soft_wrap=True)
_out = Console(highlight=False, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (see docs/log.md).")]
KeyOpt = Annotated[
    str | None,
    typer.Option(
        "--key",
        help="The log's public key: a NAME+KEYID+BASE64 string or a file holding one "
        "[default: the log.vkey of --bank].",
        show_default=False,
    ),
]


def _emit(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _warn(message: str) -> None:
    _err.print(f"[bold red]error:[/] {escape(message)}")


@contextlib.contextmanager
def _guard(json_mode: bool) -> Iterator[None]:
    """Translate TakeBack errors that end a command into messages and exit codes."""
    try:
        yield
    except TakeBackError as exc:
        _warn(exc.message)
        if json_mode:
            _emit({"error": exc.to_dict()})
        code = (
            int(ExitCode.BANK_ERROR) if isinstance(exc, BankError) else int(ExitCode.INPUT_FAILED)
        )
        raise typer.Exit(code) from None


def _bank_dir(bank: Path | None) -> Path:
    from .bank.store import default_bank_dir

    return bank if bank is not None else default_bank_dir()


#: Largest proof, checkpoint or key file read (real ones are a few kilobytes).
_MAX_FILE_BYTES = 1024 * 1024


def _open_log(bank: Path | None) -> RegistrationLog:
    return RegistrationLog.open(_bank_dir(bank), busy_timeout=bank_timeout())


def _read(path: Path, what: str) -> bytes:
    try:
        if not path.is_file():
            raise ProofFormatError(f"the {what} {path} is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(_MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ProofFormatError(f"cannot read the {what} {path} ({exc.strerror})") from exc
    if len(data) > _MAX_FILE_BYTES:
        raise ProofFormatError(
            f"the {what} {path} is over {_MAX_FILE_BYTES:,} bytes: not a TakeBack {what}"
        )
    return data


def _verifier(key: str | None, bank: Path | None) -> NoteVerifier:
    if key is None:
        vkey_file = _bank_dir(bank) / "log.vkey"
        if not vkey_file.is_file():
            _warn("give the log's public key with --key (the line `takeback log init` prints)")
            raise typer.Exit(int(ExitCode.USAGE))
        key = vkey_file.read_text(encoding="utf-8")
    elif "+" not in key or Path(key).is_file():
        key = _read(Path(key), "key file").decode("utf-8", errors="replace")
    return NoteVerifier.from_vkey(key.strip().splitlines()[0] if key.strip() else "")


def _find(log: RegistrationLog, entry: str) -> LogEntry:
    if entry.isdigit() and len(entry) < 64:  # 64 characters: a SHA-256, even if all digits
        return log.entry(int(entry))
    found = log.find_sha256(entry.removeprefix("sha256:"))
    if not found:
        raise ProofFormatError(f"no log entry registers a photo with SHA-256 {entry}")
    return found[0]


def _verdict(result: ProofResult | ConsistencyResult, json_out: bool) -> None:
    if json_out:
        _emit(result.to_dict())
    elif result.ok:
        _out.print(f"verified: {escape(result.message)}")
    else:
        _out.print(f"NOT VERIFIED ({result.verdict}): {escape(result.message)}")
    if not result.ok:
        raise typer.Exit(int(ExitCode.INPUT_FAILED))


# -- commands -------------------------------------------------------------------


@log_app.command("init")
def init_cmd(
    origin: Annotated[
        str | None,
        typer.Option(help="Name of a new log in its checkpoints [default: a random name]."),
    ] = None,
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Create the log and its signing key (if needed) and print the public key.

    Give the printed key to whoever will check your proofs.
    """
    with (
        _guard(json_out),
        RegistrationLog.create(_bank_dir(bank), origin=origin, busy_timeout=bank_timeout()) as log,
    ):
        info: dict[str, Any] = {
            "origin": log.origin,
            "vkey": log.verifier.vkey,
            "size": log.size,
            "key_file": str(log.directory / "log-signing.key"),
        }
    if json_out:
        _emit(info)
    else:
        _out.print(info["vkey"])
        _err.print(
            f"log {escape(str(info['origin']))}: {info['size']} entries; "
            "the line above is its public key"
        )


def _print_checkpoint(cp: StoredCheckpoint, json_out: bool) -> None:
    if json_out:
        _emit(cp.to_dict())
    else:
        sys.stdout.write(str(cp.note))


@log_app.command("checkpoint")
def checkpoint_cmd(
    bank: BankOpt = None,
    timestamp: Annotated[
        bool,
        typer.Option(help="Timestamp it with the authority in TAKEBACK_TSA_URL, if set."),
    ] = True,
    json_out: JsonOpt = False,
) -> None:
    """Sign and print a checkpoint of the log as it is now (a C2SP signed note)."""
    with _guard(json_out), _open_log(bank) as log:
        cp = log.checkpoint(tsa=timestamp)
    _print_checkpoint(cp, json_out)


@log_app.command("show")
def show_cmd(
    entry: Annotated[
        str, typer.Argument(help="A log index, or the SHA-256 of a registered photo.")
    ],
    reveal: Annotated[
        bool, typer.Option(help="Also print the private label salt (to reveal the label).")
    ] = False,
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one log entry: its fingerprints, label commitment and time."""
    with _guard(json_out), _open_log(bank) as log:
        found = _find(log, entry)
    info = found.to_dict(reveal=reveal)
    if json_out:
        _emit(info)
        return
    for key, value in info.items():
        _out.print(f"{key:18} {escape(str(value))}")


@log_app.command("proof")
def proof_cmd(
    entry: Annotated[
        str, typer.Argument(help="A log index, or the SHA-256 of a registered photo.")
    ],
    output: Annotated[
        Path | None,
        typer.Option("-o", "--output", help="Write the proof here [default: standard output]."),
    ] = None,
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Write an offline proof (C2SP tlog-proof) that an entry is in the signed log.

    With -o, a timestamp token of the checkpoint, if any, goes beside it as FILE.tsr.
    """
    with _guard(json_out), _open_log(bank) as log:
        found = _find(log, entry)
        cp = log.latest_checkpoint()
        data = log.proof_file(found.index, checkpoint=cp)
        tsr = None
        if output is not None:
            try:
                output.write_bytes(data)
                if cp.tsa_token is not None:
                    tsr = output.with_name(output.name + ".tsr")
                    tsr.write_bytes(cp.tsa_token)
            except OSError as exc:
                raise ProofFormatError(f"cannot write {output} ({exc.strerror})") from exc
    if json_out:
        _emit(
            {
                "index": found.index,
                "tree_size": cp.checkpoint.size,
                "root": cp.checkpoint.root.hex(),
                "file": None if output is None else str(output),
                "timestamp_file": None if tsr is None else str(tsr),
                "proof": None if output is not None else data.decode(),
            }
        )
    elif output is None:
        sys.stdout.write(data.decode())
    else:
        _err.print(f"wrote the proof of entry {found.index} to {escape(str(output))}")


@log_app.command("verify")
def verify_cmd(
    proof: Annotated[Path, typer.Argument(help="A .tlog-proof file.")],
    key: KeyOpt = None,
    sha256: Annotated[
        str | None, typer.Option(help="Also require the entry to register this SHA-256.")
    ] = None,
    label: Annotated[
        str | None, typer.Option(help="Also require the entry to commit to this label...")
    ] = None,
    salt: Annotated[
        str | None, typer.Option(help="...with this salt (hex, from `log show --reveal`).")
    ] = None,
    known: Annotated[
        Path | None,
        typer.Option(help="A signed checkpoint you already trust, to catch replays and forks."),
    ] = None,
    tsr: Annotated[
        Path | None,
        typer.Option(help="RFC 3161 token of the checkpoint [default: PROOF.tsr if present]."),
    ] = None,
    tsa_ca: Annotated[
        Path | None,
        typer.Option(envvar="TAKEBACK_TSA_CA", help="PEM CA of the timestamp authority."),
    ] = None,
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check an offline proof: no bank needed, only the log's public key.

    Exit 0 when verified, 1 when not (the verdict says why).
    """
    with _guard(json_out):
        verifier = _verifier(key, bank)
        if (label is None) != (salt is None):
            _warn("--label and --salt go together")
            raise typer.Exit(int(ExitCode.USAGE))
        revealed = None
        if label is not None and salt is not None:
            try:
                revealed = (label, bytes.fromhex(salt))
            except ValueError:
                _warn("--salt must be hex digits (as `takeback log show --reveal` prints)")
                raise typer.Exit(int(ExitCode.USAGE)) from None
        data = _read(proof, "proof file")
        known_note = None if known is None else _read(known, "checkpoint")
        sidecar = tsr or proof.with_name(proof.name + ".tsr")
        token = _read(sidecar, "timestamp token") if (tsr or sidecar.is_file()) else None
        result = verify_proof(
            data,
            verifier,
            sha256=sha256,
            label=revealed,
            known=known_note,
            tsa_token=token,
            tsa_ca=None if tsa_ca is None else str(tsa_ca),
        )
    _verdict(result, json_out)
    if not json_out and result.timestamp is not None:
        _out.print(
            f"timestamp {result.timestamp.status}: {result.timestamp.time} "
            f"({escape(result.timestamp.message)})"
        )


@log_app.command("consistency")
def consistency_cmd(
    old: Annotated[Path, typer.Argument(help="An older signed checkpoint.")],
    new: Annotated[
        Path | None,
        typer.Argument(help="A newer signed checkpoint [default: the log's current one]."),
    ] = None,
    proof: Annotated[
        Path | None,
        typer.Option(help="Check this consistency proof file offline (no bank needed)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("-o", "--output", help="Write the consistency proof here.")
    ] = None,
    key: KeyOpt = None,
    bank: BankOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Prove (or, with --proof, check) that a newer checkpoint extends an older one.

    A log that rewrote or dropped entries, or showed two different histories,
    fails with the verdict "forked".
    """
    with _guard(json_out):
        old_note = _read(old, "checkpoint")
        if proof is not None:
            if new is None:
                _warn("checking a proof file needs both checkpoints: OLD NEW --proof FILE")
                raise typer.Exit(int(ExitCode.USAGE))
            verifier = _verifier(key, bank)
            result = verify_consistency_proof(
                old_note,
                _read(new, "checkpoint"),
                _read(proof, "consistency proof").decode("utf-8", errors="replace"),
                verifier,
            )
        else:
            with _open_log(bank) as log:
                if key is not None and _verifier(key, bank) != log.verifier:
                    _warn("--key is not this log's key")
                    raise typer.Exit(int(ExitCode.USAGE))
                new_note = None if new is None else _read(new, "checkpoint")
                result = log.prove_consistency(old_note, new_note)
            if output is not None and result.old is not None and result.new is not None:
                try:
                    output.write_text(result.proof_text(), encoding="ascii")
                except OSError as exc:
                    raise ProofFormatError(f"cannot write {output} ({exc.strerror})") from exc
    _verdict(result, json_out)
