"""Check an evidence package: every hash, the custody chain, and that the copies agree.

A tampered package is a result, not an error: :func:`verify_package` returns a
:class:`PackageVerification` whose ``problems`` name what broke, the first
broken artefact or step first.

Every file of a directory package is recorded up to three times: in
``SHA256SUMS``, in ``report.json`` (evidence and working files) and in
``custody.jsonl`` (the step that wrote it and the final ``seal`` step). When a
file disagrees with all its records, the file was changed; when it agrees with
some and not others, the disagreeing record was edited. The message says which.
"""

from __future__ import annotations

import base64
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FileAccessError
from .custody import check_chain, parse_custody
from .html import JSON_LINK_ID
from .model import EVIDENCE_SCHEMA, canonical_json, sha256_hex
from .package import CUSTODY_FILE, SUMS_FILE, package_kind
from .pdf import embedded_files

__all__ = ["PackageVerification", "verify_package"]

_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")
_JSON_LINK = re.compile(
    rf'id="{JSON_LINK_ID}"[^>]*?href="data:application/json;base64,([A-Za-z0-9+/=]*)"'
)
_ORDER = (
    "evidence/",
    "working/",
    "report.json",
    "report.html",
    "report.pdf",
    "README.txt",
    CUSTODY_FILE,
)


@dataclass
class PackageVerification:
    """The verdict on a package.

    Attributes
    ----------
    path : str
    kind : str
        ``"directory"``, ``"pdf"`` or ``"html"``.
    problems : list of str
        What broke, in plain words; the first broken artefact or step first.
    checked : int
        How many checks were made (file hashes, custody steps, cross-checks).
    sha256 : str or None
        For a single file, its SHA-256 (compare it with the one printed when it
        was written); for a directory, the SHA-256 of its ``SHA256SUMS``.
    schema, package_id, verdict : str or None
        Read from ``report.json`` when it could be read.
    custody_steps : int
    """

    path: str
    kind: str
    problems: list[str] = field(default_factory=list)
    checked: int = 0
    sha256: str | None = None
    schema: str | None = None
    package_id: str | None = None
    verdict: str | None = None
    custody_steps: int = 0

    @property
    def ok(self) -> bool:
        """Whether every check passed (and at least one was made)."""
        return not self.problems and self.checked > 0

    def to_dict(self) -> dict[str, Any]:
        """The ``evidence verify --json`` object (see docs/evidence.md)."""
        return {
            "path": self.path,
            "kind": self.kind,
            "ok": self.ok,
            "problems": list(self.problems),
            "checked": self.checked,
            "sha256": self.sha256,
            "schema": self.schema,
            "package_id": self.package_id,
            "verdict": self.verdict,
            "custody_steps": self.custody_steps,
        }


def verify_package(path: Path) -> PackageVerification:
    """Check an evidence package: a directory, or a single PDF or HTML report.

    Parameters
    ----------
    path : Path

    Returns
    -------
    PackageVerification
        ``ok`` when every hash, the custody chain and the cross-checks hold.

    Raises
    ------
    FileAccessError
        ``path`` does not exist or cannot be read.

    Examples
    --------
    >>> verify_package(Path("case-12")).ok  # doctest: +SKIP
    True
    """
    path = Path(path)
    if path.is_dir():
        return _verify_directory(path)
    data = _read(path)
    kind = package_kind(path)
    if kind == "directory":
        kind = "pdf" if data.startswith(b"%PDF") else "html"
    result = PackageVerification(str(path), kind, sha256=sha256_hex(data))
    document = _embedded_document(data, kind, result)
    if document is not None:
        _check_document(document, result, source=f"the report.json inside {path.name}")
        steps = document.get("custody", {}).get("steps")
        if isinstance(steps, list):
            result.problems += check_chain(steps, name=f"the custody log inside {path.name}")
            result.checked += len(steps)
            result.custody_steps = len(steps)
            _check_examination_step(document, steps, result, name=path.name)
    return result


def _read(path: Path) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise FileAccessError(f"{path}: no such file or folder", path=str(path)) from exc
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot be read ({exc.strerror})", path=str(path)) from exc
    if not stat.S_ISREG(info.st_mode):
        raise FileAccessError(f"{path} is not a regular file or folder", path=str(path))
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FileAccessError(f"{path}: cannot be read ({exc.strerror})", path=str(path)) from exc


def _embedded_document(
    data: bytes, kind: str, result: PackageVerification
) -> dict[str, Any] | None:
    raw = _embedded_json(data, kind)
    if raw is None:
        what = "an attached report.json" if kind == "pdf" else "the report.json link"
        result.problems.append(f"{result.path} is not a TakeBack report: it has no {what}")
        return None
    document = _parse_json(raw, f"the report.json inside {Path(result.path).name}", result)
    result.checked += 1
    return document


def _embedded_json(data: bytes, kind: str) -> bytes | None:
    if kind == "pdf":
        if not data.startswith(b"%PDF"):
            return None
        for blob in embedded_files(data):
            if b'"schema"' in blob and b"takeback.evidence/" in blob:
                return blob
        return None
    match = _JSON_LINK.search(data.decode("utf-8", errors="replace"))
    if match is None:
        return None
    try:
        return base64.b64decode(match.group(1), validate=True)
    except ValueError:
        return None


def _parse_json(raw: bytes, name: str, result: PackageVerification) -> dict[str, Any] | None:
    try:
        document = json.loads(raw)
    except ValueError:
        result.problems.append(f"{name} is not valid JSON: it was damaged or edited")
        return None
    if not isinstance(document, dict):
        result.problems.append(f"{name} is not a TakeBack evidence report")
        return None
    return document


def _check_document(document: dict[str, Any], result: PackageVerification, *, source: str) -> None:
    schema = document.get("schema")
    result.schema = schema if isinstance(schema, str) else None
    package = document.get("package")
    if isinstance(package, dict):
        result.package_id = package.get("id")
    summary = document.get("summary")
    if isinstance(summary, dict):
        result.verdict = summary.get("verdict")
    if schema != EVIDENCE_SCHEMA:
        result.problems.append(
            f"{source} has schema {schema!r}; this TakeBack reads {EVIDENCE_SCHEMA!r}"
        )


def _check_examination_step(
    document: dict[str, Any], steps: list[Any], result: PackageVerification, *, name: str
) -> None:
    """The examination in the document must be the one the custody log recorded."""
    exam = document.get("examination")
    step = next((s for s in steps if isinstance(s, dict) and s.get("action") == "examine"), None)
    if exam is None or step is None or not step.get("outputs"):
        result.problems.append(f"{name}: no recorded examination to check the findings against")
        return
    result.checked += 1
    recorded = step["outputs"][0].get("sha256")
    if sha256_hex(canonical_json(exam)) != recorded:
        result.problems.append(
            f"{name}: the findings (examination) differ from those recorded in custody step "
            f"{step.get('seq')}: the report was edited"
        )


def _rank(name: str) -> tuple[int, str]:
    for rank, prefix in enumerate(_ORDER):
        if name.startswith(prefix):
            return rank, name
    return len(_ORDER), name


def _walk(root: Path, result: PackageVerification) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for directory, dirs, names in os.walk(root):
        for name in sorted(dirs + names):
            full = Path(directory) / name
            relative = full.relative_to(root).as_posix()
            if full.is_symlink():
                result.problems.append(
                    f"{relative} is a symbolic link: TakeBack never writes one (added later)"
                )
            elif full.is_file():
                files[relative] = full
    return files


def _parse_sums(data: bytes, result: PackageVerification) -> dict[str, str]:
    sums: dict[str, str] = {}
    for number, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1):
        match = _SUM_LINE.fullmatch(line)
        if match is None:
            result.problems.append(f"{SUMS_FILE} line {number} is malformed: it was edited")
            continue
        digest, name = match.group(1).lower(), match.group(2)
        if name.startswith(("/", "\\")) or ".." in name.split("/") or "\\" in name:
            result.problems.append(
                f"{SUMS_FILE} line {number} names {name!r}, outside the package: it was edited"
            )
            continue
        if name in sums:
            result.problems.append(f"{SUMS_FILE} lists {name} twice: it was edited")
        sums[name] = digest
    return sums


def _custody_records(steps: list[Any]) -> dict[str, list[tuple[str, str]]]:
    records: dict[str, list[tuple[str, str]]] = {}
    for step in steps:
        if not isinstance(step, dict):
            continue
        for key in ("inputs", "outputs"):
            items = step.get(key)
            for item in items if isinstance(items, list) else []:
                if isinstance(item, dict) and isinstance(item.get("path"), str):
                    records.setdefault(item["path"], []).append(
                        (CUSTODY_FILE, str(item.get("sha256")))
                    )
    return records


def _join(names: list[str]) -> str:
    unique = list(dict.fromkeys(names))
    return unique[0] if len(unique) == 1 else ", ".join(unique[:-1]) + " and " + unique[-1]


def _verify_directory(root: Path) -> PackageVerification:
    result = PackageVerification(str(root), "directory")
    files = _walk(root, result)

    sums: dict[str, str] = {}
    if SUMS_FILE in files:
        raw = _read(files[SUMS_FILE])
        result.sha256 = sha256_hex(raw)
        sums = _parse_sums(raw, result)
    else:
        result.problems.append(f"{SUMS_FILE} is missing: the package cannot be checked fully")

    document: dict[str, Any] | None = None
    report_raw: bytes | None = None
    if "report.json" in files:
        report_raw = _read(files["report.json"])
        document = _parse_json(report_raw, "report.json", result)
        if document is not None:
            _check_document(document, result, source="report.json")
    else:
        result.problems.append("report.json is missing")

    steps: list[Any] = []
    chain: list[str] = []
    if CUSTODY_FILE in files:
        steps, chain = parse_custody(_read(files[CUSTODY_FILE]), name=CUSTODY_FILE)
        chain += check_chain(steps, name=CUSTODY_FILE)
        result.custody_steps = len(steps)
        result.checked += len(steps)
        if steps and isinstance(steps[-1], dict) and steps[-1].get("action") != "seal":
            chain.append(
                f"{CUSTODY_FILE} ends at step {steps[-1].get('seq')} "
                f"({steps[-1].get('action')}) without the final seal step: steps were removed"
            )
    else:
        result.problems.append(f"{CUSTODY_FILE} is missing: the chain of custody is gone")

    records: dict[str, list[tuple[str, str]]] = {n: [(SUMS_FILE, d)] for n, d in sums.items()}
    for artefact in (document or {}).get("artefacts") or []:
        if isinstance(artefact, dict) and isinstance(artefact.get("path"), str):
            records.setdefault(artefact["path"], []).append(
                ("report.json", str(artefact.get("sha256")))
            )
    for name, entries in _custody_records(steps).items():
        records.setdefault(name, []).extend(entries)

    file_problems: list[tuple[tuple[int, str], str]] = []
    for name in sorted(set(records) | set(files) - {SUMS_FILE}, key=_rank):
        entries = records.get(name, [])
        if name not in files:
            where = _join([source for source, _ in entries])
            file_problems.append((_rank(name), f"{name} is missing (recorded in {where})"))
            continue
        digest = sha256_hex(_read(files[name]))
        result.checked += 1
        if not entries:
            file_problems.append(
                (
                    _rank(name),
                    f"{name} is not recorded anywhere in the package: it was added "
                    "after the package was written",
                )
            )
            continue
        wrong = [source for source, recorded in entries if recorded != digest]
        right = [source for source, recorded in entries if recorded == digest]
        if not wrong:
            if name not in sums and SUMS_FILE in files:
                file_problems.append(
                    (_rank(name), f"{name} is not listed in {SUMS_FILE}: {SUMS_FILE} was edited")
                )
            continue
        recorded = next(r for s, r in entries if s in wrong)
        if right:
            file_problems.append(
                (
                    _rank(name),
                    f"{name}: its SHA-256 {digest} agrees with {_join(right)}, but "
                    f"{_join(wrong)} records {recorded}: that record was edited",
                )
            )
        else:
            file_problems.append(
                (
                    _rank(name),
                    f"{name} was changed after the package was written: its SHA-256 "
                    f"is {digest}, {_join(wrong)} records {recorded}",
                )
            )
    result.problems += [message for _, message in sorted(file_problems)]
    result.problems += chain

    if document is not None:
        _cross_check(root, files, document, report_raw or b"", steps, result)
    return result


def _cross_check(
    root: Path,
    files: dict[str, Path],
    document: dict[str, Any],
    report_raw: bytes,
    steps: list[Any],
    result: PackageVerification,
) -> None:
    """Consistency between report.json, the custody log and the rendered reports."""
    recorded = (document.get("custody") or {}).get("steps")
    if isinstance(recorded, list) and steps:
        result.checked += 1
        if recorded != steps[: len(recorded)]:
            result.problems.append(
                f"the custody steps copied into report.json differ from the first "
                f"{len(recorded)} steps of {CUSTODY_FILE}: one of the two was edited"
            )
    if steps:
        _check_examination_step(document, steps, result, name="report.json")
    exam = document.get("examination") or {}
    suspect_hash = (exam.get("suspect") or {}).get("sha256")
    for artefact in document.get("artefacts") or []:
        if isinstance(artefact, dict) and artefact.get("role") == "evidence:suspect":
            result.checked += 1
            if suspect_hash and artefact.get("sha256") != suspect_hash:
                result.problems.append(
                    f"report.json: the evidentiary copy {artefact.get('path')} is not the file "
                    f"that was examined (SHA-256 {artefact.get('sha256')} vs {suspect_hash})"
                )
    for name, kind in (("report.pdf", "pdf"), ("report.html", "html")):
        if name not in files:
            continue
        result.checked += 1
        embedded = _embedded_json(_read(files[name]), kind)
        if embedded is None:
            result.problems.append(f"{name} does not carry report.json: it was replaced")
        elif embedded != report_raw:
            result.problems.append(
                f"the report.json carried inside {name} differs from report.json: one of the "
                "two was edited"
            )
