"""What each step of the local app does, on top of the library (no HTTP here).

Every function takes in-memory :class:`~takeback.app.uploads.Upload` objects
and returns plain dictionaries the page shows. Errors are TakeBack errors; the
ones caused by one input are wrapped in :class:`FieldError`, which names the
form field, so the page can show the message next to it.

* :func:`fingerprint_upload`: PDQ, SHA-256, MD5 of one photo (nothing stored).
* :func:`register_upload`: store the fingerprints in the bank, optionally sign
  with Content Credentials and record in the registration log.
* :func:`check`: find the original (given, or through the bank and the
  remembered originals), examine, and describe the result in plain words with
  redacted pictures.
* :func:`make_package`: the same examination, written as an evidence package,
  returned as a ZIP of the folder and its ``report.pdf``.
"""

from __future__ import annotations

import base64
import contextlib
import io
import os
import re
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import numpy as np

from ..bank.exchange import FORMATS, write_entries
from ..bank.model import BankEntry
from ..bank.store import SqliteStore
from ..errors import BankNotFoundError, InputError, TakeBackError
from ..examine.model import Examination, ExamineVerdict
from ..imageio import open_image, read_bytes
from . import originals as remembered
from .config import AppConfig
from .uploads import Upload, private_dir, stage

__all__ = [
    "EXPORT_NAMES",
    "PAGE_SIDE",
    "CaseFields",
    "FieldError",
    "PackageFiles",
    "bank_summary",
    "check",
    "export_bank",
    "fingerprint_upload",
    "forget_originals",
    "make_package",
    "manifest_bytes",
    "normalise_seen_at",
    "register_upload",
    "remember_originals",
]

#: Longest side, in pixels, of the pictures shown on the page.
PAGE_SIDE: Final = 1200
#: Most bank entries listed on the page.
LIST_LIMIT: Final = 500
#: Download names of the export formats.
EXPORT_NAMES: Final = {
    "jsonl": ("takeback-fingerprints.jsonl", "application/jsonl"),
    "te-csv": ("takeback-fingerprints.csv", "text/csv"),
    "pdq": ("takeback-fingerprints-pdq.txt", "text/plain"),
}
_SOURCE: Final = "takeback app"
_keys_lock = threading.Lock()


class FieldError(Exception):
    """A TakeBack error caused by one form field (``suspect``, ``original``, ...).

    Parameters
    ----------
    error : TakeBackError
    field : str
    """

    def __init__(self, error: TakeBackError, field: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.field = field


@contextlib.contextmanager
def blame(field: str) -> Iterator[None]:
    """Attribute TakeBack errors raised inside to the form field ``field``."""
    try:
        yield
    except TakeBackError as exc:
        raise FieldError(exc, field) from exc


def _validate(upload: Upload, config: AppConfig) -> None:
    """Decode the upload in memory: errors name the file as the person chose it."""
    with blame(upload.field):
        open_image(upload.data, name=upload.name, limits=config.limits)


def _open_bank(config: AppConfig, *, create: bool = False) -> SqliteStore:
    opener = SqliteStore.create if create else SqliteStore.open
    return opener(config.bank_dir, busy_timeout=config.bank_timeout)


# -- step 1: register ------------------------------------------------------------


def fingerprint_upload(config: AppConfig, upload: Upload) -> dict[str, Any]:
    """The fingerprints of one photo, and whether the bank already holds it.

    Nothing is stored.

    Raises
    ------
    FieldError
        The file is not a usable image (field ``photo``).
    """
    from ..fingerprint.pdq import fingerprint_bytes

    with blame(upload.field):
        fp = fingerprint_bytes(upload.data, name=upload.name, limits=config.limits)
    registered: int | None = None
    with contextlib.suppress(BankNotFoundError), _open_bank(config) as store:
        found = store.find_exact(sha256=fp.sha256)
        registered = found[0].id if found else None
    return {
        "name": upload.name,
        "size": len(upload.data),
        **fp.to_dict(),
        "low_quality": fp.low_quality,
        "registered_as": registered,
    }


def _ensure_keys(config: AppConfig, signer_name: str | None) -> tuple[Path, Path, bool]:
    from ..provenance.keys import SIGNER_CERT_FILE, SIGNER_KEY_FILE, init_keys

    key, cert = config.keys_dir / SIGNER_KEY_FILE, config.keys_dir / SIGNER_CERT_FILE
    with _keys_lock:
        if key.exists() and cert.exists():
            return key, cert, False
        init_keys(config.keys_dir, name=(signer_name or "").strip() or "TakeBack user")
    return key, cert, True


def manifest_bytes(config: AppConfig, sha256: str) -> bytes | None:
    """The Content Credentials manifest the app made for a photo, if any."""
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        return None
    try:
        return (config.credentials_dir / f"{sha256}.c2pa").read_bytes()
    except OSError:
        return None


def _sign(
    config: AppConfig, upload: Upload, sha256: str, signer_name: str | None
) -> dict[str, Any]:
    from ..provenance.c2pa import sign_photo
    from ..provenance.keys import LocalSigner

    target = config.credentials_dir / f"{sha256}.c2pa"
    if target.exists():
        return {"new": False, "keys_created": False, "manifest_bytes": target.stat().st_size}
    key, cert, created = _ensure_keys(config, signer_name)
    signer = LocalSigner.from_files(key, cert)
    with private_dir() as root:
        photo = stage(root, upload)
        output = root / "manifest.c2pa"
        with blame(upload.field):
            result = sign_photo(photo, signer, output=output, limits=config.limits)
        data = output.read_bytes()
    config.credentials_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return {
        "new": True,
        "keys_created": created,
        "signer": result.signer,
        "manifest_bytes": len(data),
    }


def register_upload(
    config: AppConfig,
    upload: Upload,
    *,
    pdq_only: bool,
    sign: bool,
    log: bool,
    signer_name: str | None = None,
) -> dict[str, Any]:
    """Register one photo: its fingerprints go into the bank; the photo is not kept.

    Parameters
    ----------
    config : AppConfig
    upload : Upload
    pdq_only : bool
        For intimate originals: the entry is labelled ``private photo <first 8
        hex digits of its SHA-256>`` instead of the file name, and the photo is
        never signed (nothing but hashes and size is kept anywhere).
    sign : bool
        Sign with Content Credentials (ignored when ``pdq_only``); the manifest
        (no pixels inside) is kept in the app's folder for download.
    log : bool
        Record the new registration in the bank's registration log.
    signer_name : str, optional
        The signer's name, used only when the keys are created (first signing).

    Returns
    -------
    dict
        ``{"name", "sha256", "id", "label", "duplicate_of", "quality",
        "log_index", "signed", "stored"}``.
    """
    from ..fingerprint.pdq import fingerprint_bytes
    from ..provenance.log import log_registrations

    with blame(upload.field):
        fp = fingerprint_bytes(upload.data, name=upload.name, limits=config.limits)
    label = f"private photo {fp.sha256[:8]}" if pdq_only else upload.name
    entry = BankEntry.from_fingerprint(fp, label=label, source=_SOURCE)
    log_index: int | None = None
    with _open_bank(config, create=True) as store:
        result = store.add([entry])[0]
        if log and result.duplicate_of is None:
            logged = log_registrations(config.bank_dir, [store.get(result.id)])
            log_index = logged[0].index if logged else None
        stored_label = store.get(result.id).label
    signed = None
    if sign and not pdq_only:
        signed = _sign(config, upload, fp.sha256, signer_name)
    kept = ["PDQ", "SHA-256", "MD5", "width and height", "time", f"label “{stored_label}”"]
    return {
        "name": upload.name,
        "sha256": fp.sha256,
        "size": len(upload.data),
        "id": result.id,
        "label": stored_label,
        "duplicate_of": result.duplicate_of,
        "quality": fp.quality,
        "low_quality": fp.low_quality,
        "log_index": log_index,
        "signed": signed,
        "pdq_only": pdq_only,
        "stored": "in the bank: " + ", ".join(kept) + "; never the photo",
    }


def remember_originals(
    config: AppConfig, folder: str, photos: list[dict[str, Any]]
) -> dict[str, Any]:
    """Remember where registered photos are, by looking for them in ``folder``.

    Parameters
    ----------
    folder : str
        As typed: absolute, ``~/...`` or relative to the home folder.
    photos : list of dict
        ``{"sha256", "size"}`` of each photo.

    Raises
    ------
    FieldError
        The folder does not exist (field ``folder``) or a photo is malformed
        (field ``photos``).
    """
    wanted: list[tuple[str, int]] = []
    for item in photos:
        sha, size = item.get("sha256"), item.get("size")
        if not (isinstance(sha, str) and re.fullmatch(r"[0-9a-fA-F]{64}", sha)):
            raise FieldError(InputError("a photo's SHA-256 is missing or malformed"), "photos")
        if not (isinstance(size, int) and size >= 0):
            raise FieldError(InputError("a photo's size is missing or malformed"), "photos")
        wanted.append((sha.lower(), size))
    with blame("folder"):
        where = remembered.resolve_folder(folder)
    result = remembered.remember(config.originals_file, where, wanted)
    return {
        "found": sorted(result.found),
        "missing": result.missing,
        "searched": result.searched,
        "truncated": result.truncated,
        "remembered_total": len(remembered.load(config.originals_file)),
    }


def forget_originals(config: AppConfig) -> dict[str, Any]:
    """Delete the list of where the originals are (the photos are not touched)."""
    return {"forgotten": remembered.forget(config.originals_file)}


def bank_summary(config: AppConfig) -> dict[str, Any]:
    """What the page shows about the bank, the keys and the remembered originals."""
    known = remembered.load(config.originals_file)
    entries: list[dict[str, Any]] = []
    total = 0
    exists = True
    try:
        with _open_bank(config) as store:
            total = store.stats().entries
            for entry in store.entries(limit=LIST_LIMIT):
                sha = entry.sha256 or ""
                entries.append(
                    {
                        "id": entry.id,
                        "label": entry.label,
                        "quality": entry.quality,
                        "added_at": entry.added_at,
                        "signed": bool(sha) and (config.credentials_dir / f"{sha}.c2pa").is_file(),
                        "remembered": sha in known,
                        "sha256": entry.sha256,
                    }
                )
    except BankNotFoundError:
        exists = False
    from ..provenance.keys import SIGNER_CERT_FILE

    return {
        "bank_exists": exists,
        "entries": total,
        "listed": entries,
        "remembered": len(known),
        "keys": (config.keys_dir / SIGNER_CERT_FILE).is_file(),
        "where": {
            "bank": str(config.bank_dir),
            "keys": str(config.keys_dir),
            "app": str(config.data_dir),
        },
    }


def export_bank(config: AppConfig, fmt: str) -> tuple[bytes, str, str, int]:
    """The bank's fingerprints in an exchange format: ``(data, file name, media type, count)``.

    Raises
    ------
    FieldError
        Unknown format (field ``format``), or nothing registered yet.
    """
    if fmt not in FORMATS:
        raise FieldError(
            InputError(f"unknown format {fmt!r}; choose one of {', '.join(FORMATS)}"), "format"
        )
    out = io.StringIO(newline="")
    try:
        with _open_bank(config) as store:
            count = write_entries(store.entries(), out, fmt=fmt)
    except BankNotFoundError as exc:
        raise FieldError(
            BankNotFoundError("no photo is registered yet: register your photos first"), "format"
        ) from exc
    name, media = EXPORT_NAMES[fmt]
    return out.getvalue().encode("utf-8"), name, media, count


# -- step 2: check ---------------------------------------------------------------


@dataclass
class _Original:
    path: Path | None
    match: dict[str, Any] | None
    how: str  # given | bank | features | matched_unknown_file | none


def _find_original(
    config: AppConfig, root: Path, suspect: Path, original: Upload | None
) -> _Original:
    """The original to compare with: the one given, else the bank and the remembered list."""
    from ..examine.pipeline import closest_original, find_original

    if original is not None:
        return _Original(stage(root, original), None, "given")
    paths = [
        item["path"]
        for item in remembered.load(config.originals_file).values()
        if os.path.isfile(item["path"])
    ]
    with blame("suspect"):
        try:
            with _open_bank(config) as store:
                match, path = find_original(suspect, store, paths, limits=config.limits)
        except BankNotFoundError:
            match, path = closest_original(suspect, paths, limits=config.limits)
    if path is None:
        return _Original(None, match, "matched_unknown_file" if match else "none")
    # Work on a private copy, beside which its Content Credentials can be placed.
    data = read_bytes(path, config.limits)
    copy = stage(root, Upload("original", Path(path).name, data))
    how = "features" if match and match.get("method") == "features" else "bank"
    return _Original(copy, match, how)


def _examine(config: AppConfig, suspect: Path, found: _Original) -> Examination:
    from ..examine.pipeline import examine

    with blame("original" if found.how == "given" else "suspect"):
        return examine(suspect, original=found.path, match=found.match, limits=config.limits)


def _data_uri(data: bytes | None) -> str | None:
    if data is None:
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


def _page_images(config: AppConfig, exam: Examination, original: Path | None) -> dict[str, Any]:
    """The report's pictures at page size, redacted as in the report."""
    from ..evidence.images import make_images, redaction_policy

    if exam.suspect is None:
        return {}
    original_pixels = None
    if original is not None:
        data = read_bytes(original, config.limits)
        image = open_image(data, name=original.name, limits=config.limits, draft_size=PAGE_SIDE)
        original_pixels = np.asarray(image)
    suspect = exam.suspect if exam.suspect.ndim == 3 else np.dstack([exam.suspect] * 3)
    policy = redaction_policy(exam, True)
    pictures = make_images(
        exam,
        np.ascontiguousarray(suspect[..., :3]),
        original_pixels,
        None,
        policy=policy,
        max_side=PAGE_SIDE,
        thumb_side=240,
        full_resolution=False,
    )
    return {
        "redaction": policy,
        "side_by_side": _data_uri(pictures.side_by_side),
        "suspect": _data_uri(pictures.suspect_view),
        "overlay": _data_uri(pictures.overlay),
        "heatmap": _data_uri(pictures.heatmap_view),
    }


_HEADLINES: Final = {
    ExamineVerdict.DERIVED: "This picture was made from your photo: part of it was replaced.",
    ExamineVerdict.IDENTICAL: "This picture is your photo, not changed "
    "(at most re-saved, resized, cropped, flipped or rotated).",
    ExamineVerdict.NOT_DERIVED: "This picture does not come from the original you gave.",
    ExamineVerdict.INCONCLUSIVE: "No conclusion yet: TakeBack needs your original photo.",
}

#: What each kind of mark is, in one sentence.
MARK_MEANINGS: Final = {
    "c2pa": "Content Credentials are a signed record of how a file was made; "
    "any re-save removes them, so their absence proves nothing.",
    "generator": "AI image tools often write their name, settings and prompt into the "
    "file; anyone can copy or delete this text, and most reposted fakes have none.",
    "source_type": "A label in the file's XMP data can declare how the picture was made "
    "(for example by a trained AI model); it is a statement, not a signature.",
    "watermark": "Some AI generators hide a pattern in the pixels; resizing and JPEG "
    "re-saving destroy it, so its absence proves nothing.",
}

_PROVES: Final = (
    "Which parts of the picture differ from your original photo, how large they are, "
    "and how sure the comparison is.",
    "The exact fingerprints (SHA-256) of both files, so anyone can check later that "
    "nothing was changed after the report was made.",
)
_DOES_NOT_PROVE: Final = (
    "Who made the picture, with which app, or when.",
    "That the rest of the picture is genuine; and it is not a legal opinion.",
    "Integrity is not authenticity: the fingerprints show that the files were not "
    "changed after the report was made, not who made them.",
)


def _marks_explained(marks: dict[str, Any]) -> list[dict[str, Any]]:
    c2pa = marks.get("c2pa") or {}
    state = c2pa.get("state", "absent")
    c2pa_text = None
    if state != "absent":
        who = f", written by {c2pa['claim_generator']}" if c2pa.get("claim_generator") else ""
        ai = "; it declares AI-generated content" if c2pa.get("ai") else ""
        c2pa_text = f"Content Credentials found ({state}{who}){ai}."
    generators = [
        f"{m.get('generator')} (in {m.get('location')})"
        for m in marks.get("generator_metadata", [])
    ]
    sources = [
        f"{m.get('term')}" + (" (says AI)" if m.get("ai") else "")
        for m in marks.get("digital_source_type", [])
    ]
    water = marks.get("watermarks") or {}
    found_payloads = set(water.get("found") or [])
    marks_found = [
        f"{p.get('generator')}: {p.get('agreement')}/{p.get('bits')} bits agree "
        f"({str(p.get('level', '')).replace('_', ' ')})"
        for p in water.get("payloads", [])
        if p.get("payload") in found_payloads
    ]
    water_none = "not found"
    if water and not water.get("checked", True):
        water_none = f"not checked ({water.get('reason') or 'picture too small'})"
    return [
        {
            "kind": "c2pa",
            "title": "Content Credentials (C2PA)",
            "found": c2pa_text is not None,
            "text": c2pa_text or "not found",
            "meaning": MARK_MEANINGS["c2pa"],
        },
        {
            "kind": "generator",
            "title": "AI generator metadata",
            "found": bool(generators),
            "text": "found: " + "; ".join(generators) if generators else "not found",
            "meaning": MARK_MEANINGS["generator"],
        },
        {
            "kind": "source_type",
            "title": "Declared source (IPTC digital source type)",
            "found": bool(sources),
            "text": "found: " + "; ".join(sources) if sources else "not found",
            "meaning": MARK_MEANINGS["source_type"],
        },
        {
            "kind": "watermark",
            "title": "Invisible watermark",
            "found": bool(marks_found),
            "text": "found: " + "; ".join(marks_found) if marks_found else water_none,
            "meaning": MARK_MEANINGS["watermark"],
        },
    ]


def _confidence_words(value: float) -> str:
    if value >= 0.8:
        return "high"
    if value >= 0.5:
        return "medium"
    return "low"


def _original_text(found: _Original, exam: Examination) -> str:
    match = found.match or {}
    label = match.get("label", "")
    if found.how == "given":
        return f"Compared with the original you chose, {exam.original_name}."
    if found.how == "bank":
        how = match.get("method")
        detail = f"PDQ distance {match.get('distance')} of {match.get('threshold')}"
        if how in ("sha256", "md5"):
            detail = "an exact copy"
        return (
            f"Found through your registered fingerprints: photo #{match.get('id')} “{label}” "
            f"({detail}); its file is one you asked TakeBack to remember."
        )
    if found.how == "features":
        return (
            f"No registered fingerprint matched, but the picture lines up with “{label}”, "
            "one of the originals you asked TakeBack to remember."
        )
    if found.how == "matched_unknown_file":
        return (
            f"It matches your registered photo #{match.get('id')} “{label}”, but TakeBack "
            "does not know where that photo is on this computer: choose your original "
            "above and check again."
        )
    return (
        "No registered photo matches it, and no original was given: choose your original "
        "photo above and check again."
    )


def _describe(exam: Examination, found: _Original) -> dict[str, Any]:
    from ..evidence.model import verdict_statement

    verdict = exam.verdict
    out: dict[str, Any] = {
        "verdict": verdict.value,
        "headline": _HEADLINES[verdict],
        "statement": verdict_statement(exam),
        "confidence": round(exam.confidence, 2),
        "confidence_words": _confidence_words(exam.confidence),
        "altered_percent": round(100 * exam.altered_fraction, 1),
        "regions": len(exam.regions),
        "original_how": found.how,
        "original_text": _original_text(found, exam),
        "needs_original": exam.original_sha256 is None,
        "match": found.match,
        "marks": _marks_explained(exam.marks),
        "proves": list(_PROVES),
        "does_not_prove": list(_DOES_NOT_PROVE),
        "notes": list(exam.notes),
        "suspect": {
            "name": exam.suspect_name,
            "sha256": exam.suspect_sha256,
            "size": exam.suspect_size,
        },
        "original": None
        if exam.original_sha256 is None
        else {
            "name": exam.original_name,
            "sha256": exam.original_sha256,
            "size": exam.original_size,
        },
    }
    if verdict is ExamineVerdict.INCONCLUSIVE:
        out["proves"] = [
            "Only the marks read from the file (below): without your original photo "
            "nothing can be said about which parts were changed."
        ]
    return out


def check(config: AppConfig, suspect: Upload, original: Upload | None) -> dict[str, Any]:
    """Examine a suspect against its original and describe the result for the page.

    The files live only in a private temporary folder for the duration of the
    call; the pictures returned are the report's, redacted (the altered area, or
    the whole suspect when no altered area could be located, is blurred).

    Raises
    ------
    FieldError
        A file is not a usable image (field ``suspect`` or ``original``).
    """
    _validate(suspect, config)
    if original is not None:
        _validate(original, config)
    with private_dir() as root:
        suspect_path = stage(root, suspect)
        found = _find_original(config, root, suspect_path, original)
        exam = _examine(config, suspect_path, found)
        out = _describe(exam, found)
        out["images"] = _page_images(config, exam, found.path)
    return out


# -- step 3: evidence --------------------------------------------------------------


@dataclass(frozen=True)
class CaseFields:
    """Where and when the fake was seen, as typed on the page (blank = not given)."""

    seen_url: str | None = None
    seen_at: str | None = None
    account: str | None = None
    case_id: str | None = None
    requested_by: str | None = None
    notes: str | None = None

    @classmethod
    def from_form(cls, fields: dict[str, str]) -> CaseFields:
        """Take the known fields of a form; blank values count as not given."""

        def text(name: str) -> str | None:
            value = fields.get(name, "")
            return value.strip() or None

        return cls(
            seen_url=text("seen_url"),
            seen_at=text("seen_at"),
            account=text("account"),
            case_id=text("case_id"),
            requested_by=text("requested_by"),
            notes=text("notes"),
        )


def normalise_seen_at(text: str | None) -> str | None:
    """ISO 8601 as given, converted to UTC (``...Z``) when it carries a time zone.

    Examples
    --------
    >>> normalise_seen_at("2026-05-01T21:30+02:00")
    '2026-05-01T19:30:00Z'
    >>> normalise_seen_at("2026-05-01T21:30")
    '2026-05-01T21:30:00'
    """
    if text is None or not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(
            InputError(
                f"{text!r} is not a date and time; pick the day and time you saw it "
                "(put anything vaguer in the notes)"
            ),
            "seen_at",
        ) from None
    if when.tzinfo is None:
        return when.isoformat(timespec="seconds")
    return when.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


@dataclass(frozen=True)
class PackageFiles:
    """An evidence package, in memory: the ZIP of its folder and its report.pdf."""

    name: str
    zip: bytes
    pdf: bytes
    sha256: str
    verdict: str
    files: int


def _provenance(
    config: AppConfig, root: Path, found: _Original, exam: Examination
) -> tuple[dict[str, Any] | None, str | None]:
    """The original's Content Credentials and log entry, for the package."""
    from ..provenance.c2pa import sidecar_path
    from ..provenance.keys import CA_CERT_FILE
    from ..provenance.record import original_record

    if found.path is None or exam.original_sha256 is None:
        return None, None
    manifest = manifest_bytes(config, exam.original_sha256)
    if manifest is not None:
        sidecar_path(found.path).write_bytes(manifest)
    anchors = config.keys_dir / CA_CERT_FILE
    try:
        record = original_record(
            found.path,
            exam.original_sha256,
            bank_dir=config.bank_dir,
            trust_anchors=anchors if anchors.is_file() else None,
            limits=config.limits,
        )
    except TakeBackError as exc:
        return None, f"The original's registration record could not be read: {exc.message}"
    return record, None


def _zip(folder: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, f"{folder.name}/{path.relative_to(folder).as_posix()}")
    return buf.getvalue()


def make_package(
    config: AppConfig,
    suspect: Upload,
    original: Upload | None,
    case: CaseFields,
    screenshot: Upload | None = None,
) -> PackageFiles:
    """Examine again and write the evidence package; return it as a ZIP and a PDF.

    The package is written in a private temporary folder, read into memory and
    the folder deleted: nothing of it stays on disk unless the person saves the
    download.

    Raises
    ------
    FieldError
        A file or a case field cannot be used (the field is named).
    """
    from ..evidence import CaseInfo, write_package
    from ..evidence.model import MAX_FIELD_CHARS

    for name in ("seen_url", "account", "case_id", "requested_by", "notes"):
        value = getattr(case, name)
        if value is not None and len(value) > MAX_FIELD_CHARS:
            raise FieldError(
                InputError(f"this is {len(value):,} characters long; at most {MAX_FIELD_CHARS:,}"),
                name,
            )
    seen_at = normalise_seen_at(case.seen_at)
    _validate(suspect, config)
    if original is not None:
        _validate(original, config)
    if screenshot is not None:
        _validate(screenshot, config)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    folder_name = f"takeback-evidence-{stamp}"
    with private_dir() as root:
        suspect_path = stage(root, suspect)
        found = _find_original(config, root, suspect_path, original)
        exam = _examine(config, suspect_path, found)
        provenance, problem = _provenance(config, root, found, exam)
        if problem is not None:
            exam.notes.append(problem)
        shot = None if screenshot is None else stage(root, screenshot)
        info = CaseInfo(
            case_id=case.case_id,
            requested_by=case.requested_by,
            seen_url=case.seen_url,
            seen_at=seen_at,
            account=case.account,
            screenshot=shot,
            notes=case.notes,
        )
        (root / "package").mkdir(mode=0o700)
        target = root / "package" / folder_name
        with blame("package"):
            result = write_package(
                target,
                exam,
                suspect_path=suspect_path,
                original_path=found.path,
                case=info,
                provenance=provenance,
                redact=True,
                tool={"command": "takeback app", "original": found.how},
            )
        files = sum(1 for p in target.rglob("*") if p.is_file())
        return PackageFiles(
            name=folder_name,
            zip=_zip(target),
            pdf=(target / "report.pdf").read_bytes(),
            sha256=result.sha256,
            verdict=exam.verdict.value,
            files=files,
        )
