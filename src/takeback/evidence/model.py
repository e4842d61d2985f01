"""Value types of the evidence package and the versioned ``report.json`` document.

The document (schema :data:`EVIDENCE_SCHEMA`) is documented field by field in
``docs/evidence.md``. It is built once by :func:`build_document` and then only
read: the HTML and PDF reports are renderings of it.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from ..examine.model import Examination, ExamineVerdict

__all__ = [
    "CUSTODY_SCHEMA",
    "EVIDENCE_SCHEMA",
    "REPORT_MAX_SIDE",
    "STANDARD_LIMITATIONS",
    "THUMB_MAX_SIDE",
    "Artefact",
    "CaseInfo",
    "PackageResult",
    "build_document",
    "canonical_json",
    "jsonable",
    "sha256_hex",
    "tool_info",
    "tool_version",
    "utc_now",
    "verdict_statement",
]

#: Version of the ``report.json`` document.
EVIDENCE_SCHEMA = "takeback.evidence/1"
#: Version of the ``custody.jsonl`` step format.
CUSTODY_SCHEMA = "takeback.custody/1"
#: Longest side, in pixels, of the images shown in the HTML and PDF reports.
REPORT_MAX_SIDE = 1600
#: Longest side, in pixels, of the thumbnails in ``working/``.
THUMB_MAX_SIDE = 480
#: Longest accepted case text field (notes, URL, names), in characters.
MAX_FIELD_CHARS = 10_000

#: Limitations stated in every report, whatever the result.
STANDARD_LIMITATIONS: tuple[str, ...] = (
    "Integrity is not authenticity. The SHA-256 hashes in this report show that the "
    "files have not changed since the package was written; they do not show who made "
    "the suspect image, when, or with which software.",
    "The finding comes from comparing the suspect with the original photo supplied by "
    "the person who requested this report. It says which parts of the suspect differ "
    "from that original; if the original itself had been edited, the comparison "
    "cannot tell.",
    "Blind signals (JPEG quality, double compression, noise or error-level maps) are "
    "weak: they also flag many untouched photos. They are reported for completeness "
    "and never decide the verdict.",
    "Confidence is on a 0-1 scale of how strongly the measurements support the "
    "verdict; it is not a probability that a given person made the image.",
    "Times are read from the clock of the computer that wrote the package (UTC), not "
    "from a trusted time source.",
)

_VERDICT_TEXT = {
    ExamineVerdict.DERIVED: (
        "The suspect image is the original photo with part of it replaced: about {pct} "
        "of the area that could be compared differs from the original."
    ),
    ExamineVerdict.IDENTICAL: (
        "The suspect image shows the original photo with its content unchanged (at most "
        "re-encoded, resized, cropped, flipped, rotated, bordered or captioned)."
    ),
    ExamineVerdict.NOT_DERIVED: "The suspect image does not show the original photo.",
    ExamineVerdict.INCONCLUSIVE: (
        "No conclusion: there was no original to compare with, or the two images could "
        "not be aligned reliably enough to say."
    ),
}


def verdict_statement(examination: Examination) -> str:
    """The verdict in one plain sentence.

    Examples
    --------
    >>> from takeback.examine import Examination, ExamineVerdict
    >>> verdict_statement(Examination(ExamineVerdict.DERIVED, 0.9, altered_fraction=0.4))[:44]
    'The suspect image is the original photo with'
    """
    pct = f"{examination.altered_fraction:.0%}"
    return _VERDICT_TEXT[examination.verdict].format(pct=pct)


def utc_now() -> str:
    """The current time as ISO 8601 UTC with milliseconds, e.g. ``2026-05-01T10:00:00.000Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def canonical_json(obj: Any) -> bytes:
    """The canonical UTF-8 JSON of ``obj``: sorted keys, no spaces, non-ASCII kept.

    This is what custody steps are hashed over (``jq -cS`` produces the same bytes
    for the values TakeBack writes).

    Examples
    --------
    >>> canonical_json({"b": 1, "a": "é"})
    b'{"a":"\\xc3\\xa9","b":1}'
    """
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    """``json.dumps`` fallback: numpy values, paths and sets as plain JSON."""
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return value.tolist()
    if isinstance(value, Path):
        return value.name
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"{type(value).__name__} cannot be written to report.json")


def jsonable(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples as lists, keys as strings, numpy as
    Python), so hashes computed now match hashes computed from ``report.json`` later.

    Examples
    --------
    >>> jsonable({1: (1, 2)})
    {'1': [1, 2]}
    """
    return json.loads(json.dumps(obj, ensure_ascii=False, default=_plain))


def sha256_hex(data: bytes) -> str:
    """Lower-case hexadecimal SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def tool_version() -> str:
    """TakeBack's version: ``takeback.__version__``, else the installed package's metadata."""
    import takeback

    version = getattr(takeback, "__version__", None)
    if version:
        return str(version)
    try:
        return metadata.version("takeback")
    except metadata.PackageNotFoundError:
        return "unknown"


def tool_info(
    *, redact: bool, policy: str, invocation: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Name, version and settings of the tool that wrote the package.

    Parameters
    ----------
    redact : bool
        Whether report images were redacted.
    policy : str
        The redaction applied: ``"region"``, ``"whole"`` or ``"none"``.
    invocation : dict, optional
        What the caller adds about how it was run (e.g. the ``examine`` options).
    """
    libraries: dict[str, str] = {}
    for dist in ("numpy", "pillow", "opencv-python-headless", "jinja2", "weasyprint"):
        try:
            libraries[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    info: dict[str, Any] = {
        "name": "takeback",
        "version": tool_version(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "libraries": libraries,
        "package_options": {
            "redact": redact,
            "redaction": policy,
            "report_max_side": REPORT_MAX_SIDE,
            "thumbnail_max_side": THUMB_MAX_SIDE,
        },
    }
    if invocation:
        info["invocation"] = invocation
    return info


@dataclass(frozen=True)
class CaseInfo:
    """Who asks for the report, and where and when the suspect image was seen.

    Every field is optional; what is missing is shown as "not given".

    Attributes
    ----------
    case_id : str or None
        The requester's or the platform's reference.
    requested_by : str or None
        The person or organisation the report is made for (recorded as the
        operator in the custody log).
    seen_url : str or None
        Where the suspect image was seen (kept as text, never fetched).
    seen_at : str or None
        When it was seen, as given (ISO 8601 preferred).
    account : str or None
        The account or user name that posted it.
    screenshot : Path or None
        A screenshot of the post; copied into ``evidence/`` like the images.
    notes : str or None
        Anything else the requester wants on record.
    """

    case_id: str | None = None
    requested_by: str | None = None
    seen_url: str | None = None
    seen_at: str | None = None
    account: str | None = None
    screenshot: Path | None = None
    notes: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The ``case`` object of ``report.json`` (the screenshot by file name only)."""
        return {
            "case_id": self.case_id,
            "requested_by": self.requested_by,
            "seen": {"url": self.seen_url, "at": self.seen_at, "account": self.account},
            "screenshot": None if self.screenshot is None else self.screenshot.name,
            "notes": self.notes,
        }


@dataclass(frozen=True)
class Artefact:
    """One file of the package (or, in a single-file report, one input it describes).

    Attributes
    ----------
    path : str or None
        Path inside the package, ``/``-separated (``evidence/suspect.jpg``); ``None``
        for an input a single-file report describes but does not contain.
    role : str
        ``evidence:suspect``, ``evidence:original``, ``evidence:screenshot``,
        ``working:mask``, ``working:heatmap``, ``working:aligned_original``,
        ``working:side_by_side``, ``working:overlay``, ``working:heatmap_view``,
        ``working:suspect_thumbnail``, ``working:original_thumbnail``,
        ``working:screenshot_view``.
    sha256 : str
    size : int
        Bytes.
    media_type : str
    description : str
    source_name : str or None
        The name of the file it was copied from (evidence only).
    redacted : bool or None
        For images that show the suspect: whether its altered part is blurred.
    """

    path: str | None
    role: str
    sha256: str
    size: int
    media_type: str
    description: str
    source_name: str | None = None
    redacted: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "role": self.role,
            "sha256": self.sha256,
            "size": self.size,
            "media_type": self.media_type,
            "description": self.description,
            "source_name": self.source_name,
            "redacted": self.redacted,
        }


@dataclass(frozen=True)
class PackageResult:
    """What :func:`~takeback.evidence.write_package` wrote.

    Attributes
    ----------
    path : Path
        The package directory, or the single PDF or HTML file.
    kind : str
        ``"directory"``, ``"pdf"`` or ``"html"``.
    sha256 : str
        For a single file, its SHA-256; for a directory, the SHA-256 of its
        ``SHA256SUMS`` (one value that pins every file of the package).
    document : dict
        The ``report.json`` document.
    artefacts : list of Artefact
        Every file of the package with its hash (a directory), or the inputs
        described (a single file).
    custody_head : str
        Hash of the last custody step.
    redaction : str
        ``"region"``, ``"whole"`` or ``"none"``.
    seconds : dict of str to float
        Time spent per stage (``images``, ``html``, ``pdf``, ``total``).
    """

    path: Path
    kind: str
    sha256: str
    document: dict[str, Any]
    artefacts: list[Artefact] = field(default_factory=list)
    custody_head: str = ""
    redaction: str = "none"
    seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` form: where, what, hashes; not the whole document."""
        return {
            "path": str(self.path),
            "kind": self.kind,
            "sha256": self.sha256,
            "schema": self.document.get("schema"),
            "package_id": self.document.get("package", {}).get("id"),
            "verdict": self.document.get("summary", {}).get("verdict"),
            "redaction": self.redaction,
            "custody_head": self.custody_head,
            "artefacts": [a.to_dict() for a in self.artefacts],
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _basename(value: Any) -> Any:
    """A path reduced to its file name (reports never carry local folder names)."""
    if isinstance(value, str) and value:
        return Path(value.replace("\\", "/")).name
    return value


def clean_provenance(provenance: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep the known parts of ``provenance`` and strip local paths from them.

    ``{"c2pa": Verification.to_dict(), "log": {"entry", "proof", "checkpoint",
    "verified"}}``; unknown top-level keys are kept as given.
    """
    if not provenance:
        return None
    out = dict(provenance)
    c2pa = out.get("c2pa")
    if isinstance(c2pa, dict):
        c2pa = dict(c2pa)
        for key in ("path", "manifest_path"):
            if key in c2pa:
                c2pa[key] = _basename(c2pa[key])
        out["c2pa"] = c2pa
    return out


def build_document(
    examination: Examination,
    *,
    package_id: str,
    kind: str,
    generated_at: str,
    case: CaseInfo,
    artefacts: list[Artefact],
    provenance: dict[str, Any] | None,
    tool: dict[str, Any],
    redaction: dict[str, Any],
    custody_steps: list[dict[str, Any]],
    custody_file: str | None,
) -> dict[str, Any]:
    """The ``report.json`` document (schema :data:`EVIDENCE_SCHEMA`).

    Parameters
    ----------
    examination : Examination
    package_id : str
        A random UUID naming this package.
    kind : str
        ``"directory"``, ``"pdf"`` or ``"html"``.
    generated_at : str
        ISO 8601 UTC time.
    case : CaseInfo
    artefacts : list of Artefact
    provenance : dict or None
        Already cleaned with :func:`clean_provenance`.
    tool : dict
        From :func:`tool_info`.
    redaction : dict
        ``{"enabled", "policy", "description"}``.
    custody_steps : list of dict
        The custody steps up to the writing of this document.
    custody_file : str or None
        ``"custody.jsonl"`` in a directory package, ``None`` in a single file.
    """
    exam = jsonable(examination.to_dict())
    limitations = list(STANDARD_LIMITATIONS)
    limitations += [n for n in examination.notes if n not in limitations]
    document = {
        "schema": EVIDENCE_SCHEMA,
        "package": {
            "id": package_id,
            "kind": kind,
            "generated_at": generated_at,
            "redaction": redaction,
        },
        "case": case.to_dict(),
        "summary": {
            "verdict": exam["verdict"],
            "confidence": exam["confidence"],
            "altered_fraction": exam["altered_fraction"],
            "statement": verdict_statement(examination),
        },
        "examination": exam,
        "provenance": provenance,
        "tool": tool,
        "artefacts": [a.to_dict() for a in artefacts],
        "limitations": limitations,
        "custody": {
            "schema": CUSTODY_SCHEMA,
            "file": custody_file,
            "steps": custody_steps,
        },
    }
    return dict(jsonable(document))
