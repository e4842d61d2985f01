"""``takeback examine``: what was altered, what marks the file carries, an evidence package.

A thin shell over :mod:`takeback.examine.pipeline` (comparison),
:mod:`takeback.provenance.record` (the original's credentials and log entry)
and :mod:`takeback.evidence` (the package). The verdict is a result: exit 0
for ``derived``, ``identical``, ``not_derived`` and ``inconclusive`` alike.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import typer
from rich.markup import escape

__all__ = ["examine_cmd", "register"]


def _cli() -> ModuleType:
    from . import cli

    return cli


_VERDICT_WORDS = {
    "derived": "DERIVED: the suspect is the original with part of it replaced",
    "identical": "IDENTICAL: the suspect shows the original with no change beyond "
    "re-encoding, resizing, cropping, flipping, rotation, borders or captions",
    "not_derived": "NOT DERIVED: the suspect does not show this original",
    "inconclusive": "INCONCLUSIVE: no original to compare the pixels with",
}

PathOpt = Annotated[Path | None, typer.Option(show_default=False, dir_okay=False)]


def examine_cmd(
    suspect: Annotated[Path, typer.Argument(help="The suspected doctored copy.", dir_okay=False)],
    original: Annotated[
        Path | None,
        typer.Option(
            "--original", "-o", help="Your original photo.", dir_okay=False, show_default=False
        ),
    ] = None,
    bank: Annotated[
        Path | None,
        typer.Option(
            "--bank",
            help="Find the original by matching against this bank "
            "(its file is then looked for with --originals).",
            show_default=False,
        ),
    ] = None,
    originals: Annotated[
        list[str] | None,
        typer.Option(
            "--originals",
            help="Where your original photos are (folders, files or "
            "globs), to find the matched one by its SHA-256.",
            show_default=False,
        ),
    ] = None,
    mask_out: Annotated[
        Path | None,
        typer.Option(
            "--mask-out",
            help="Write the altered-pixel mask (PNG, white = altered, "
            "in the suspect's pixel grid).",
            show_default=False,
        ),
    ] = None,
    overlay_out: Annotated[
        Path | None,
        typer.Option(
            "--overlay-out",
            help="Write the suspect with altered regions marked "
            "(PNG; altered area blurred unless --no-redact).",
            show_default=False,
        ),
    ] = None,
    heatmap_out: Annotated[
        Path | None,
        typer.Option(
            "--heatmap-out",
            help="Write the change-strength heatmap over the aligned original (PNG).",
            show_default=False,
        ),
    ] = None,
    report: Annotated[
        Path | None,
        typer.Option(
            "--report",
            help="Write an evidence package: a directory, FILE.pdf "
            "(PDF/A-3 with the JSON inside) or FILE.html.",
            show_default=False,
        ),
    ] = None,
    case_id: Annotated[str | None, typer.Option(help="Your case or ticket number.")] = None,
    requested_by: Annotated[
        str | None, typer.Option(help="Who asks for the report (name, organisation).")
    ] = None,
    seen_url: Annotated[str | None, typer.Option(help="Where the fake was seen (URL).")] = None,
    seen_at: Annotated[
        str | None, typer.Option(help="When it was seen (ISO 8601, e.g. 2026-11-20T18:30Z).")
    ] = None,
    account: Annotated[str | None, typer.Option(help="The account that posted it.")] = None,
    screenshot: Annotated[
        Path | None,
        typer.Option(
            help="A screenshot of the post (kept as evidence).", dir_okay=False, show_default=False
        ),
    ] = None,
    no_redact: Annotated[
        bool, typer.Option("--no-redact", help="Do not blur the altered region in pictures.")
    ] = False,
    trust_anchors: Annotated[
        Path | None,
        typer.Option(
            help="PEM CA certificates to trust for the original's Content "
            "Credentials (e.g. the ca.pem of `takeback keys init`).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object (see docs/cli.md).")
    ] = False,
) -> None:
    """Show exactly what was altered in a suspect, and write an evidence package.

    With --original (or --bank to find it), the suspect is aligned with the
    original (crops, flips, rotation, scaling, borders and captions are undone)
    and compared pixel by pixel: the verdict is derived (with the altered share),
    identical, not_derived or inconclusive. Marks in the file (C2PA, generator
    metadata, invisible watermarks) are always read; blind signals are shown
    only as weak supporting pictures.

    \b
    Examples:
      takeback examine fake.jpg --original me.jpg
      takeback examine fake.jpg --original me.jpg --mask-out mask.png --json
      takeback examine fake.jpg --bank ~/.takeback/bank --originals ~/Pictures/me
      takeback examine fake.jpg -o me.jpg --report case-17/ --seen-url https://... \\
          --seen-at 2026-11-20T18:30Z --account @someone
    """
    cli = _cli()
    from .examine.pipeline import examine, find_original

    if original is not None and bank is not None:
        raise typer.BadParameter("give --original or --bank, not both", param_hint="--bank")
    limits = cli._limits()
    with cli._guard(json_out):
        found: dict[str, Any] | None = None
        bank_dir: Path | None = bank
        if bank is not None:
            with cli._open_store(bank) as store:
                found, original = find_original(
                    suspect, store, list(originals or []), limits=limits
                )
            if found is None and not json_out:
                cli.err.print("no registered photo matches this suspect")
            elif found is not None and original is None and not json_out:
                cli.err.print(
                    f"it matches registered photo #{found['id']} {escape(found['label'])}, "
                    "but its file was not found: give --originals FOLDER to compare pixels"
                )
        result = examine(suspect, original=original, match=found, limits=limits)
        redact = not no_redact
        _write_images(result, mask_out, overlay_out, heatmap_out, redact)
        package = None
        if report is not None:
            package = _write_report(
                result,
                report,
                suspect,
                original,
                bank_dir,
                trust_anchors,
                redact,
                case_id,
                requested_by,
                seen_url,
                seen_at,
                account,
                screenshot,
                limits,
            )
    if json_out:
        doc = result.to_dict()
        if package is not None:
            doc["report"] = package
        cli._emit(doc)
        return
    _print(cli, result, package)


def _write_images(
    result: Any,
    mask_out: Path | None,
    overlay_out: Path | None,
    heatmap_out: Path | None,
    redact: bool,
) -> None:
    import numpy as np

    from .evidence.images import encode_png, heatmap_view, overlay_view
    from .evidence.images import redact as blur
    from .files import write_atomic as write_output

    if mask_out is not None:
        mask = result.mask if result.mask is not None else np.zeros(result.suspect.shape[:2], bool)
        write_output(mask_out, encode_png(np.where(mask, 255, 0).astype(np.uint8)))
    if overlay_out is not None:
        base = result.suspect
        if redact and result.mask is not None and result.mask.any():
            base = blur(base, result.mask)
        boxes = [r.bbox for r in result.regions]
        view = overlay_view(base, result.mask, result.compared, boxes, 1.0)
        write_output(overlay_out, encode_png(view))
    if heatmap_out is not None:
        if result.heatmap is None:
            raise _no_original("--heatmap-out")
        write_output(heatmap_out, encode_png(heatmap_view(result.heatmap, result.aligned_original)))


def _no_original(option: str) -> Exception:
    from .errors import InputError

    return InputError(
        f"{option} needs an original to compare with: give --original (or --bank with --originals)"
    )


def _write_report(
    result: Any,
    report: Path,
    suspect: Path,
    original: Path | None,
    bank_dir: Path | None,
    trust_anchors: Path | None,
    redact: bool,
    case_id: str | None,
    requested_by: str | None,
    seen_url: str | None,
    seen_at: str | None,
    account: str | None,
    screenshot: Path | None,
    limits: Any,
) -> dict[str, Any]:
    from . import __version__
    from .evidence import CaseInfo, write_package

    provenance = None
    if original is not None and result.original_sha256 is not None:
        from .bank.store import default_bank_dir
        from .provenance.record import original_record

        provenance = original_record(
            original,
            result.original_sha256,
            bank_dir=bank_dir if bank_dir is not None else default_bank_dir(),
            trust_anchors=trust_anchors,
            limits=limits,
        )
    case = CaseInfo(
        case_id=case_id,
        requested_by=requested_by,
        seen_url=seen_url,
        seen_at=seen_at,
        account=account,
        screenshot=screenshot,
    )
    written = write_package(
        report,
        result,
        suspect_path=suspect,
        original_path=original,
        case=case,
        provenance=provenance,
        redact=redact,
        tool={"name": "takeback", "version": __version__, "command": "examine"},
    )
    return written.to_dict()


def _print(cli: ModuleType, result: Any, package: dict[str, Any] | None) -> None:
    out = cli.out
    out.print(f"[bold]{escape(result.suspect_name or '')}[/]")
    words = _VERDICT_WORDS[result.verdict.value]
    out.print(f"  {words}")
    if result.verdict.value == "derived":
        out.print(
            f"  altered: {result.altered_fraction:.1%} of the compared area, "
            f"{len(result.regions)} region(s); confidence {result.confidence:.2f}"
        )
    elif result.verdict.value != "inconclusive":
        out.print(f"  confidence {result.confidence:.2f}")
    a = result.alignment
    if a is not None:
        flip = ", mirrored" if a.mirrored else ""
        out.print(
            f"  alignment: scale {a.scale:.3f}, rotation {a.rotation_deg:+.2f} deg{flip}, "
            f"{a.coverage:.0%} of the suspect shows the original ({a.inliers} matches)"
        )
    for i, r in enumerate(result.regions[:8], 1):
        x, y, w, h = r.bbox
        out.print(f"  region {i}: {w}x{h} px at ({x}, {y}), {r.share:.1%}")
    marks = result.marks or {}
    for line in marks.get("summary") or []:
        out.print(f"  marks: {escape(str(line))}")
    for note in result.notes[:1]:
        out.print(f"  note: {escape(note)}")
    if package is not None:
        out.print(f"  evidence package: {escape(str(package.get('path', '')))}")


def register(app: typer.Typer) -> None:
    """Add ``examine`` to the main app."""
    app.command("examine")(examine_cmd)
