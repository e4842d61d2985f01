"""Write an evidence package: a sealed directory, or a single PDF or HTML report.

A directory package (layout in ``docs/evidence.md``)::

    CASE/
      README.txt          what the files are and how to check them
      evidence/           byte-identical, read-only copies of what was received
      working/            pictures and maps derived from them
      report.json         the versioned document (takeback.evidence/1)
      report.html         self-contained page
      report.pdf          PDF/A-3b with report.json attached
      custody.jsonl       hash-chained chain-of-custody log
      SHA256SUMS          ``sha256sum -c`` list of every other file

It is written in a hidden temporary folder beside the target and renamed into
place at the end, so a crash or a full disk never leaves half a package.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np

from ..examine.model import Examination, ExamineVerdict
from ..imageio import ImageLimits, open_image, read_bytes
from .custody import CustodyLog
from .errors import EvidenceInputError, PackageTargetError, PackageWriteError
from .html import render_html
from .images import ReportImages, make_images, redaction_policy
from .model import (
    MAX_FIELD_CHARS,
    REPORT_MAX_SIDE,
    THUMB_MAX_SIDE,
    Artefact,
    CaseInfo,
    PackageResult,
    build_document,
    canonical_json,
    clean_provenance,
    jsonable,
    sha256_hex,
    tool_info,
    tool_version,
    utc_now,
)
from .pdf import render_pdf

__all__ = ["SUMS_FILE", "package_kind", "write_package"]

#: The checksum list of a directory package (``sha256sum -c SHA256SUMS``).
SUMS_FILE = "SHA256SUMS"
#: The custody log of a directory package.
CUSTODY_FILE = "custody.jsonl"

_REDACTION_TEXT = {
    "region": "Pictures of the suspect in this report and in working/ have the altered "
    "region pixelated and blurred (redacted). The evidentiary copy in evidence/ is not "
    "redacted.",
    "whole": "Pictures of the suspect in this report and in working/ are pixelated and "
    "blurred entirely (redacted): no altered region could be located, so nothing of the "
    "suspect is shown. The evidentiary copy in evidence/ is not redacted.",
    "none": "Redaction was turned off: pictures of the suspect are shown unblurred.",
}

# Working pictures: attribute of ReportImages -> (file, role, description, shows suspect?)
_WORKING = (
    (
        "side_by_side",
        "working/side-by-side.jpg",
        "working:side_by_side",
        "The original and the suspect side by side, as in the report",
        True,
    ),
    (
        "suspect_view",
        "working/suspect-view.jpg",
        "working:suspect_view",
        "The suspect, as in the report",
        True,
    ),
    (
        "overlay",
        "working/overlay.jpg",
        "working:overlay",
        "The suspect with the altered area tinted and outlined, as in the report",
        True,
    ),
    (
        "heatmap_view",
        "working/heatmap-view.jpg",
        "working:heatmap_view",
        "Change strength in colour over the aligned original, as in the report",
        False,
    ),
    (
        "screenshot_view",
        "working/screenshot-view.jpg",
        "working:screenshot_view",
        "The screenshot, as in the report",
        False,
    ),
    (
        "suspect_thumbnail",
        "working/suspect-thumb.jpg",
        "working:suspect_thumbnail",
        "Thumbnail of the suspect",
        True,
    ),
    (
        "original_thumbnail",
        "working/original-thumb.jpg",
        "working:original_thumbnail",
        "Thumbnail of the original",
        False,
    ),
    (
        "mask",
        "working/mask.png",
        "working:mask",
        "Altered pixels (white) in the suspect's grid, full resolution",
        False,
    ),
    (
        "heatmap",
        "working/heatmap.png",
        "working:heatmap",
        "Change strength 0-255 in the suspect's grid, full resolution",
        False,
    ),
    (
        "aligned_original",
        "working/aligned-original.png",
        "working:aligned_original",
        "The original warped into the suspect's grid, colour-matched, full resolution",
        False,
    ),
)

_README = """\
TakeBack evidence package {package_id}
Written {generated_at} (UTC) by takeback {version}.

report.pdf      the report to read or print (PDF/A; report.json is attached to it)
report.html     the same report as a web page (opens offline in any browser)
report.json     the same report for software (schema {schema})
evidence/       byte-identical, read-only copies of the files received: {evidence}
working/        pictures and maps made from them
custody.jsonl   the chain of custody: every step, hashed together with the one before
SHA256SUMS      the SHA-256 of every other file

To check that nothing was changed, in this folder:
    sha256sum -c SHA256SUMS
or, with TakeBack installed:
    takeback evidence verify .
The SHA-256 of SHA256SUMS (printed when the package was written) pins the
whole package: keep a note of it somewhere else, e.g. an e-mail to your lawyer.
{warning}"""

_README_WARNING = """
WARNING: evidence/ holds the unredacted suspect image. Share this folder only with
the platform, the police or the lawyer handling the case.
"""


def package_kind(target: Path) -> str:
    """``"pdf"`` or ``"html"`` for a single-file target (by suffix), else ``"directory"``.

    Examples
    --------
    >>> package_kind(Path("case-12.PDF")), package_kind(Path("case-12"))
    ('pdf', 'directory')
    """
    suffix = target.suffix.lower()
    if suffix == ".pdf":
        return "pdf"
    if suffix in (".html", ".htm"):
        return "html"
    return "directory"


def _check_target(target: Path, kind: str) -> None:
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.is_dir():
        raise PackageTargetError(
            f"cannot write {target}: the folder {parent} does not exist; create it first",
            path=str(target),
        )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PackageTargetError(
            f"cannot write {target}: no permission to write in {parent}; choose another place",
            path=str(target),
        )
    if target.is_symlink():
        raise PackageTargetError(
            f"{target} is a symbolic link; give the real place for the package",
            path=str(target),
        )
    if kind == "directory":
        if target.is_dir():
            try:
                empty = not any(target.iterdir())
            except OSError as exc:
                raise PackageTargetError(
                    f"cannot use {target} ({exc.strerror})", path=str(target)
                ) from exc
            if not empty:
                raise PackageTargetError(
                    f"{target} already exists and is not empty: an evidence package is "
                    "never overwritten; choose a new folder name",
                    path=str(target),
                )
        elif target.exists() or target.is_symlink():
            raise PackageTargetError(
                f"{target} already exists and is not a folder; choose a new name",
                path=str(target),
            )
    elif target.exists() or target.is_symlink():
        raise PackageTargetError(
            f"{target} already exists: a report is never overwritten; choose a new file name",
            path=str(target),
        )


def _check_case(case: CaseInfo) -> None:
    for name in ("case_id", "requested_by", "seen_url", "seen_at", "account", "notes"):
        value = getattr(case, name)
        if value is not None and not isinstance(value, str):
            raise EvidenceInputError(f"the case field {name} must be text, not {type(value)}")
        if value is not None and len(value) > MAX_FIELD_CHARS:
            raise EvidenceInputError(
                f"the case field {name} is {len(value):,} characters long; the limit is "
                f"{MAX_FIELD_CHARS:,} (put long material in a file and mention it)"
            )


_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)


def _media_type(data: bytes) -> str:
    for magic, media in _SIGNATURES:
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        brand = data[8:12]
        if brand == b"avif":
            return "image/avif"
        if brand in (b"heic", b"heix", b"mif1", b"msf1", b"heim", b"heis"):
            return "image/heic"
    return "application/octet-stream"


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,10}", suffix) else ""


@dataclass(frozen=True)
class _Input:
    role: str  # suspect | original | screenshot
    path: Path
    data: bytes
    sha256: str

    @classmethod
    def read(cls, role: str, path: Path, limits: ImageLimits) -> _Input:
        data = read_bytes(path, limits)
        return cls(role, Path(path), data, sha256_hex(data))

    @property
    def ref(self) -> dict[str, Any]:
        return {"name": self.path.name, "sha256": self.sha256}

    @property
    def package_path(self) -> str:
        return f"evidence/{self.role}{_suffix(self.path)}"

    def artefact(self, *, included: bool) -> Artefact:
        what = {
            "suspect": "The suspect image as received",
            "original": "The original photo as supplied by the requester",
            "screenshot": "Screenshot of where the suspect image was seen",
        }[self.role]
        return Artefact(
            path=self.package_path if included else None,
            role=f"{'evidence' if included else 'input'}:{self.role}",
            sha256=self.sha256,
            size=len(self.data),
            media_type=_media_type(self.data),
            description=what if included else f"{what} (not included in this report)",
            source_name=self.path.name,
            redacted=False if included and self.role == "suspect" else None,
        )


def _decode(item: _Input, limits: ImageLimits, draft: int | None) -> np.ndarray:
    label = f"the {item.role} {item.path}"
    return np.asarray(open_image(item.data, name=label, limits=limits, draft_size=draft))


def _as_rgb(pixels: np.ndarray) -> np.ndarray:
    """The examination's suspect as ``(M, N, 3)`` uint8 (grey expanded, alpha dropped)."""
    if pixels.dtype != np.uint8:
        raise EvidenceInputError(
            f"the examination's suspect pixels are {pixels.dtype}; expected uint8 RGB"
        )
    if pixels.ndim == 2:
        return np.repeat(pixels[..., None], 3, axis=2)
    if pixels.ndim == 3 and pixels.shape[2] in (3, 4):
        return pixels[..., :3]
    raise EvidenceInputError(
        f"the examination's suspect pixels have shape {pixels.shape}; expected (M, N, 3)"
    )


def _check_examination(
    examination: Examination, suspect: _Input, original: _Input | None, pixels: np.ndarray
) -> None:
    if examination.suspect_sha256 and examination.suspect_sha256 != suspect.sha256:
        raise EvidenceInputError(
            f"{suspect.path} is not the file that was examined: its SHA-256 is "
            f"{suspect.sha256}, the examination's suspect has {examination.suspect_sha256}"
        )
    expected = examination.original_sha256
    if original is not None and expected and expected != original.sha256:
        raise EvidenceInputError(
            f"{original.path} is not the original that was examined: its SHA-256 is "
            f"{original.sha256}, the examination's original has {expected}"
        )
    if original is None and examination.original_sha256:
        raise EvidenceInputError(
            "the examination compared the suspect with an original; give that original "
            "too, so it is kept as evidence"
        )
    aligned = examination.aligned_original
    if aligned is not None and (aligned.dtype != np.uint8 or aligned.shape[2:] != (3,)):
        raise EvidenceInputError(
            f"the examination's aligned original is {aligned.dtype} {aligned.shape}; "
            "expected (M, N, 3) uint8"
        )
    grid = pixels.shape[:2]
    for name in ("mask", "compared", "heatmap", "aligned_original"):
        array = getattr(examination, name)
        if array is not None and array.shape[:2] != grid:
            raise EvidenceInputError(
                f"the examination's {name} is {array.shape[1]}x{array.shape[0]} px but the "
                f"suspect is {grid[1]}x{grid[0]} px: they must share the suspect's grid"
            )


class _Staging:
    """Files written into the temporary package folder, with their artefacts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.hashes: dict[str, tuple[str, int]] = {}

    def write(self, relative: str, data: bytes, *, mode: int = 0o644) -> dict[str, Any]:
        path = self.root / relative
        path.parent.mkdir(exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        digest = sha256_hex(data)
        self.hashes[relative] = (digest, len(data))
        return {"path": relative, "sha256": digest, "size": len(data)}

    def refs(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        names = sorted(self.hashes) if names is None else names
        return [{"path": n, "sha256": self.hashes[n][0], "size": self.hashes[n][1]} for n in names]

    def sync_dirs(self) -> None:
        for directory in [self.root, *(p for p in self.root.iterdir() if p.is_dir())]:
            _fsync_dir(directory)


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system can sync a folder
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _sums(hashes: dict[str, tuple[str, int]]) -> bytes:
    lines = [f"{digest}  {name}\n" for name, (digest, _) in sorted(hashes.items())]
    return "".join(lines).encode("ascii")


def _json_bytes(document: dict[str, Any]) -> bytes:
    import json

    return (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def write_package(
    target: Path,
    examination: Examination,
    *,
    suspect_path: Path,
    original_path: Path | None,
    case: CaseInfo,
    provenance: dict[str, Any] | None = None,
    redact: bool = True,
    tool: dict[str, Any] | None = None,
) -> PackageResult:
    """Write the evidence package for an examination.

    Parameters
    ----------
    target : Path
        A new (or empty) folder for a full package; or ``NAME.pdf`` / ``NAME.html``
        for a single self-contained report (the PDF carries ``report.json``
        attached; the HTML carries it as a download link). Never overwritten.
    examination : Examination
        The result of ``takeback examine`` on these files. Its arrays, when
        present, must be in the suspect's grid.
    suspect_path : Path
        The suspect file exactly as received (its SHA-256 must match the
        examination's).
    original_path : Path or None
        The original photo compared with, if any.
    case : CaseInfo
        Case header and where/when the suspect was seen; its screenshot is kept
        as evidence.
    provenance : dict, optional
        The original's registration: ``{"c2pa": Verification.to_dict(),
        "log": {"entry", "proof", "checkpoint", "verified"}}`` (either part).
    redact : bool
        Blur the suspect in every picture of the report (see
        :func:`~takeback.evidence.images.redaction_policy`). The evidentiary copy
        is never altered.
    tool : dict, optional
        How the tool was invoked (e.g. ``{"command": "examine", "options": {...}}``),
        recorded as ``tool.invocation``.

    Returns
    -------
    PackageResult

    Raises
    ------
    PackageTargetError
        The target exists (and is not an empty folder), or its folder is missing
        or not writable.
    EvidenceInputError
        A file does not match the examination, or a case field is unusable.
    FileAccessError, ImageError
        An input file is missing or unreadable, or the screenshot is not an image.
    PackageWriteError
        Writing failed part-way (nothing is left behind).

    Examples
    --------
    >>> from takeback.evidence import CaseInfo, write_package  # doctest: +SKIP
    >>> write_package(Path("case-12"), exam, suspect_path=Path("fake.jpg"),  # doctest: +SKIP
    ...               original_path=Path("me.jpg"), case=CaseInfo(case_id="12"))
    """
    started = perf_counter()
    target = Path(target)
    kind = package_kind(target)
    _check_target(target, kind)
    _check_case(case)
    try:
        limits = ImageLimits.from_env()
    except ValueError:
        limits = ImageLimits()
    suspect = _Input.read("suspect", Path(suspect_path), limits)
    original = None if original_path is None else _Input.read("original", original_path, limits)
    shot = None if case.screenshot is None else _Input.read("screenshot", case.screenshot, limits)

    if examination.suspect is None:
        suspect_pixels = _decode(suspect, limits, None)
    else:
        suspect_pixels = _as_rgb(examination.suspect)
    _check_examination(examination, suspect, original, suspect_pixels)
    original_pixels = None if original is None else _decode(original, limits, REPORT_MAX_SIDE // 2)
    shot_pixels = None if shot is None else _decode(shot, limits, REPORT_MAX_SIDE)

    policy = redaction_policy(examination, redact)
    images = make_images(
        examination,
        suspect_pixels,
        original_pixels,
        shot_pixels if policy == "none" else None,
        policy=policy,
        max_side=REPORT_MAX_SIDE,
        thumb_side=THUMB_MAX_SIDE,
        full_resolution=kind == "directory",
    )
    seconds = {"images": perf_counter() - started}
    context = _Context(
        kind=kind,
        examination=examination,
        case=case,
        inputs=[i for i in (suspect, original, shot) if i is not None],
        images=images,
        policy=policy,
        provenance=clean_provenance(provenance),
        tool=tool_info(redact=redact, policy=policy, invocation=tool),
        custody=CustodyLog(
            actor={"software": f"takeback {tool_version()}", "operator": case.requested_by}
        ),
        seconds=seconds,
    )
    if kind == "directory":
        result = _write_directory(target, context)
    else:
        result = _write_single(target, context)
    result.seconds["total"] = perf_counter() - started
    return result


@dataclass
class _Context:
    kind: str
    examination: Examination
    case: CaseInfo
    inputs: list[_Input]
    images: ReportImages
    policy: str
    provenance: dict[str, Any] | None
    tool: dict[str, Any]
    custody: CustodyLog
    seconds: dict[str, float]

    @property
    def generated_at(self) -> str:
        return self.custody.steps[0]["when"] if self.custody.steps else utc_now()

    def record_examination(self) -> dict[str, Any]:
        exam = self.examination
        exam_ref = {
            "name": "examination (report.json: examination)",
            "sha256": sha256_hex(canonical_json(jsonable(exam.to_dict()))),
        }
        compared = [i.ref for i in self.inputs if i.role != "screenshot"]
        what = (
            f"Recorded the examination: verdict {exam.verdict.value}, confidence "
            f"{exam.confidence:.2f}"
            + (
                f", {exam.altered_fraction:.1%} of the compared area altered"
                if exam.verdict is ExamineVerdict.DERIVED
                else ""
            )
        )
        self.custody.record("examine", what, inputs=compared, outputs=[exam_ref])
        return exam_ref

    def document(self, artefacts: list[Artefact], custody_file: str | None) -> dict[str, Any]:
        return build_document(
            self.examination,
            package_id=str(uuid.uuid4()),
            kind=self.kind,
            generated_at=self.generated_at,
            case=self.case,
            artefacts=artefacts,
            provenance=self.provenance,
            tool=self.tool,
            redaction={
                "enabled": self.policy != "none",
                "policy": self.policy,
                "description": _REDACTION_TEXT[self.policy],
            },
            custody_steps=[dict(s) for s in self.custody.steps],
            custody_file=custody_file,
        )

    def render(self, document: dict[str, Any], report_json: bytes, *, pdf: bool) -> bytes:
        began = perf_counter()
        if not pdf:
            html = render_html(document, self.images, report_json=report_json)
            self.seconds["html"] = perf_counter() - began
            return html.encode("utf-8")
        page = render_html(document, self.images, for_pdf=True)
        created = datetime.fromisoformat(document["package"]["generated_at"].replace("Z", "+00:00"))
        data = render_pdf(page, report_json, created=created)
        self.seconds["pdf"] = perf_counter() - began
        return data


def _write_directory(target: Path, ctx: _Context) -> PackageResult:
    parent = target.parent if str(target.parent) else Path(".")
    try:
        temp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".partial", dir=parent))
    except OSError as exc:
        raise PackageTargetError(
            f"cannot write in {parent} ({exc.strerror}); choose another place", path=str(target)
        ) from exc
    stage = _Staging(temp)
    try:
        evidence: list[Artefact] = []
        for item in ctx.inputs:
            out = stage.write(item.package_path, item.data, mode=0o444)
            evidence.append(item.artefact(included=True))
            ctx.custody.record(
                "acquire",
                f"Received the {item.role} file {item.path.name} and stored a byte-identical, "
                f"read-only copy as {item.package_path}",
                inputs=[item.ref],
                outputs=[out],
            )
        exam_ref = ctx.record_examination()
        working: list[Artefact] = []
        for attr, path, role, description, shows_suspect in _WORKING:
            data = getattr(ctx.images, attr)
            if data is None:
                continue
            out = stage.write(path, data)
            working.append(
                Artefact(
                    path=path,
                    role=role,
                    sha256=out["sha256"],
                    size=out["size"],
                    media_type="image/png" if path.endswith(".png") else "image/jpeg",
                    description=description,
                    redacted=(ctx.policy != "none") if shows_suspect else None,
                )
            )
        evidence_refs = stage.refs([a.path for a in evidence if a.path])
        ctx.custody.record(
            "derive",
            "Made the working pictures and maps from the evidence copies and the examination "
            f"(redaction: {ctx.policy})",
            inputs=[*evidence_refs, exam_ref],
            outputs=stage.refs([a.path for a in working if a.path]),
        )
        document = ctx.document([*evidence, *working], CUSTODY_FILE)
        report_json = _json_bytes(document)
        inputs = stage.refs()
        out = stage.write("report.json", report_json)
        ctx.custody.record(
            "report",
            "Wrote report.json, the report in machine-readable form",
            inputs=[*inputs, exam_ref],
            outputs=[out],
        )
        json_ref = [out]
        out = stage.write("report.html", ctx.render(document, report_json, pdf=False))
        ctx.custody.record(
            "render", "Rendered report.html from report.json", inputs=json_ref, outputs=[out]
        )
        out = stage.write("report.pdf", ctx.render(document, report_json, pdf=True))
        ctx.custody.record(
            "render",
            "Rendered report.pdf (PDF/A-3b) from report.json, with report.json attached",
            inputs=json_ref,
            outputs=[out],
        )
        evidence_names = ", ".join(a.path or "" for a in evidence)
        warning = _README_WARNING if any(i.role == "suspect" for i in ctx.inputs) else ""
        readme = _README.format(
            package_id=document["package"]["id"],
            generated_at=document["package"]["generated_at"],
            version=ctx.tool["version"],
            schema=document["schema"],
            evidence=evidence_names,
            warning=warning,
        )
        out = stage.write("README.txt", readme.encode("utf-8"))
        ctx.custody.record(
            "describe",
            "Wrote README.txt: what the files are and how to check them",
            outputs=[out],
        )
        ctx.custody.record(
            "seal",
            f"Sealed the package: every file above is listed with its SHA-256 in {SUMS_FILE}",
            inputs=stage.refs(),
        )
        stage.write(CUSTODY_FILE, ctx.custody.to_jsonl())
        sums = _sums(stage.hashes)
        stage.write(SUMS_FILE, sums)
        stage.sync_dirs()
        try:
            os.rename(temp, target)
        except OSError as exc:
            raise PackageTargetError(
                f"{target} appeared while the package was being written; it was left "
                f"untouched and the new package was discarded ({exc.strerror})",
                path=str(target),
            ) from exc
        _fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(temp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise PackageWriteError(
                f"could not write the package {target} ({exc.strerror or exc}); nothing was "
                "kept. Check the free space and permissions, then try again",
                path=str(target),
            ) from exc
        raise
    return PackageResult(
        path=target,
        kind="directory",
        sha256=sha256_hex(sums),
        document=document,
        artefacts=[
            Artefact(
                path=name,
                role=_role(name, document),
                sha256=digest,
                size=size,
                media_type=_file_media_type(name),
                description="",
            )
            for name, (digest, size) in sorted(stage.hashes.items())
        ],
        custody_head=ctx.custody.head,
        redaction=ctx.policy,
        seconds=ctx.seconds,
    )


def _role(name: str, document: dict[str, Any]) -> str:
    for artefact in document["artefacts"]:
        if artefact["path"] == name:
            return str(artefact["role"])
    return {
        "report.json": "report:json",
        "report.html": "report:html",
        "report.pdf": "report:pdf",
        CUSTODY_FILE: "custody",
        SUMS_FILE: "checksums",
        "README.txt": "readme",
    }.get(name, "other")


def _file_media_type(name: str) -> str:
    suffix = Path(name).suffix.lower()
    return {
        ".json": "application/json",
        ".jsonl": "application/jsonl",
        ".html": "text/html",
        ".pdf": "application/pdf",
        ".png": "image/png",
        ".jpg": "image/jpeg",
        ".txt": "text/plain",
        "": "text/plain",
    }.get(suffix, "application/octet-stream")


def _write_single(target: Path, ctx: _Context) -> PackageResult:
    described: list[Artefact] = []
    for item in ctx.inputs:
        described.append(item.artefact(included=False))
        ctx.custody.record(
            "read",
            f"Read the {item.role} file {item.path.name} (not included in this report)",
            inputs=[item.ref],
        )
    exam_ref = ctx.record_examination()
    embedded = []
    for attr, path, _role_name, _description, _shows in _WORKING:
        data = getattr(ctx.images, attr)
        if data is not None:
            embedded.append(
                {
                    "name": f"{Path(path).name} (in this report)",
                    "sha256": sha256_hex(data),
                    "size": len(data),
                }
            )
    ctx.custody.record(
        "derive",
        f"Made the report's pictures from the files read and the examination "
        f"(redaction: {ctx.policy})",
        inputs=[*(i.ref for i in ctx.inputs if i.role != "screenshot"), exam_ref],
        outputs=embedded,
    )
    document = ctx.document(described, None)
    report_json = _json_bytes(document)
    data = ctx.render(document, report_json, pdf=ctx.kind == "pdf")
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=parent)
    except OSError as exc:
        raise PackageTargetError(
            f"cannot write in {parent} ({exc.strerror}); choose another place", path=str(target)
        ) from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # Private (0600) like the package folder. os.link fails if the target appeared
        # meanwhile: a report is never overwritten.
        try:
            os.link(temp, target)
        except FileExistsError as exc:
            raise PackageTargetError(
                f"{target} appeared while the report was being written; it was left untouched",
                path=str(target),
            ) from exc
        except OSError:  # a file system without hard links
            if target.exists():
                raise
            os.replace(temp, target)
        _fsync_dir(parent)
    except OSError as exc:
        raise PackageWriteError(
            f"could not write {target} ({exc.strerror or exc}); nothing was kept",
            path=str(target),
        ) from exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
    return PackageResult(
        path=target,
        kind=ctx.kind,
        sha256=sha256_hex(data),
        document=document,
        artefacts=described,
        custody_head=ctx.custody.head,
        redaction=ctx.policy,
        seconds=ctx.seconds,
    )
