"""Evidence packages: layout, hashes, custody chain, PDF/A with embedded JSON,
redaction, tamper detection, hostile input and the ``evidence verify`` command.

Fixtures are benign sample photos (scikit-image's astronaut, coffee and chelsea)
with a benign edit made in code: an ellipse of the astronaut photo replaced by
the coffee photo.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data, draw
from typer.testing import CliRunner

from takeback.errors import FileAccessError, NotAnImageError, TakeBackError
from takeback.evidence import (
    EVIDENCE_SCHEMA,
    CaseInfo,
    EvidenceInputError,
    PackageResult,
    PackageTargetError,
    PackageWriteError,
    check_chain,
    redaction_policy,
    verify_package,
    write_package,
)
from takeback.evidence.custody import parse_custody
from takeback.evidence.images import fit, resize_mask
from takeback.evidence.model import STANDARD_LIMITATIONS, THUMB_MAX_SIDE, canonical_json
from takeback.examine import Alignment, Examination, ExamineVerdict, Region

# -- fixtures -----------------------------------------------------------------


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Pair:
    original: Path
    suspect: Path
    screenshot: Path
    mask: np.ndarray
    pixels: np.ndarray  # the suspect's
    examination: Examination


def _examination(original: np.ndarray, suspect: np.ndarray, mask: np.ndarray, paths: Any) -> Any:
    ys, xs = np.nonzero(mask)
    bbox = (int(xs.min()), int(ys.min()), int(np.ptp(xs)) + 1, int(np.ptp(ys)) + 1)
    h, w = mask.shape
    return Examination(
        verdict=ExamineVerdict.DERIVED,
        confidence=0.93,
        altered_fraction=float(mask.mean()),
        suspect_name=paths[1].name,
        original_name=paths[0].name,
        suspect_sha256=sha256(paths[1]),
        original_sha256=sha256(paths[0]),
        suspect_size=(w, h),
        original_size=(w, h),
        alignment=Alignment(np.eye(3), False, 1.0, 640, 0.0, 1.0),
        regions=[Region(bbox, int(mask.sum()), float(mask.mean()))],
        mask=mask,
        compared=np.ones_like(mask),
        heatmap=mask.astype(np.float32),
        aligned_original=original,
        suspect=suspect,
        marks={"png_text": {"parameters": None}, "xmp": {"digital_source_type": None}},
        parameters={"threshold": 0.25, "min_region_px": 64, "ssim_window": 7},
        notes=["The suspect was saved losslessly; no re-encoding was detected."],
    )


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Pair:
    root = tmp_path_factory.mktemp("inputs")
    original = data.astronaut()
    h, w = original.shape[:2]
    coffee = np.asarray(Image.fromarray(data.coffee()).resize((w, h)))
    rr, cc = draw.ellipse(h * 0.62, w * 0.5, h * 0.26, w * 0.2, shape=(h, w))
    mask = np.zeros((h, w), bool)
    mask[rr, cc] = True
    suspect = original.copy()
    suspect[mask] = coffee[mask]
    paths = (root / "me.png", root / "downloaded fake.png")
    Image.fromarray(original).save(paths[0])
    Image.fromarray(suspect).save(paths[1])
    screenshot = root / "screenshot.png"
    Image.fromarray(data.chelsea()).save(screenshot)
    exam = _examination(original, suspect, mask, paths)
    return Pair(paths[0], paths[1], screenshot, mask, suspect, exam)


def _case(pair: Pair, **changes: Any) -> CaseInfo:
    fields: dict[str, Any] = {
        "case_id": "TB-2026-0042",
        "requested_by": "Alex Doe",
        "seen_url": "https://forum.example/t/123",
        "seen_at": "2026-05-01T19:30:00Z",
        "account": "@poster",
        "screenshot": pair.screenshot,
        "notes": "Seen by a friend, who told me.",
    }
    fields.update(changes)
    return CaseInfo(**fields)


PROVENANCE = {
    "c2pa": {
        "path": "/home/alex/Pictures/me.png",
        "status": "valid",
        "manifest": "sidecar",
        "manifest_path": "/home/alex/Pictures/me.png.c2pa",
        "signer": {"common_name": "Alex Doe", "issuer": "Alex CA", "serial": "01"},
        "signed_at": "2026-01-02T10:00:00Z",
        "time_source": "signer_clock",
        "actions": [{"action": "c2pa.created", "digitalSourceType": "digitalCapture"}],
        "failures": [],
        "notes": [],
    },
    "log": {
        "entry": {"index": 7, "leaf_hash": "ab" * 32, "sha256": "cd" * 32},
        "proof": "c2sp.org/tlog-proof@v1\nindex 7\n",
        "checkpoint": "takeback.example/log\n8\nAAAA\n",
        "verified": True,
    },
}


@pytest.fixture(scope="module")
def package(pair: Pair, tmp_path_factory: pytest.TempPathFactory) -> PackageResult:
    target = tmp_path_factory.mktemp("out") / "case-42"
    return write_package(
        target,
        pair.examination,
        suspect_path=pair.suspect,
        original_path=pair.original,
        case=_case(pair),
        provenance=PROVENANCE,
        tool={"command": "takeback examine", "options": {"threshold": 0.25}},
    )


@pytest.fixture
def copy(package: PackageResult, tmp_path: Path) -> Path:
    """A private, writable copy of the package to tamper with."""
    target = tmp_path / "copy"
    shutil.copytree(package.path, target)
    for path in target.rglob("*"):
        path.chmod(path.stat().st_mode | stat.S_IWUSR)
    return target


# -- layout and hashes ----------------------------------------------------------


def test_layout_and_evidentiary_copies(package: PackageResult, pair: Pair) -> None:
    root = package.path
    names = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert names == [
        "README.txt",
        "SHA256SUMS",
        "custody.jsonl",
        "evidence/original.png",
        "evidence/screenshot.png",
        "evidence/suspect.png",
        "report.html",
        "report.json",
        "report.pdf",
        "working/aligned-original.png",
        "working/heatmap-view.jpg",
        "working/heatmap.png",
        "working/mask.png",
        "working/original-thumb.jpg",
        "working/overlay.jpg",
        "working/side-by-side.jpg",
        "working/suspect-thumb.jpg",
    ]
    for copy_name, source in (
        ("suspect.png", pair.suspect),
        ("original.png", pair.original),
        ("screenshot.png", pair.screenshot),
    ):
        copied = root / "evidence" / copy_name
        assert copied.read_bytes() == source.read_bytes()
        assert stat.S_IMODE(copied.stat().st_mode) == 0o444
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert not [p for p in root.parent.iterdir() if p.name.endswith(".partial")]
    mask = np.asarray(Image.open(root / "working/mask.png")).astype(bool)
    assert np.array_equal(mask, pair.mask)


def test_sha256sums_matches_every_file(package: PackageResult) -> None:
    root = package.path
    listed = {}
    for line in (root / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ", 1)
        listed[name] = digest
    files = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}
    assert set(listed) == files - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert sha256(root / name) == digest, name
    assert package.sha256 == sha256(root / "SHA256SUMS")
    if shutil.which("sha256sum"):
        run = subprocess.run(
            ["sha256sum", "-c", "SHA256SUMS"], cwd=root, capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr


def test_report_json(package: PackageResult, pair: Pair) -> None:
    raw = (package.path / "report.json").read_bytes()
    doc = json.loads(raw)
    assert doc["schema"] == EVIDENCE_SCHEMA
    assert doc == package.document
    assert doc["examination"] == json.loads(json.dumps(pair.examination.to_dict()))
    assert doc["summary"]["verdict"] == "derived"
    assert doc["case"]["case_id"] == "TB-2026-0042"
    assert doc["case"]["seen"] == {
        "url": "https://forum.example/t/123",
        "at": "2026-05-01T19:30:00Z",
        "account": "@poster",
    }
    assert doc["tool"]["name"] == "takeback" and doc["tool"]["version"]
    assert doc["tool"]["invocation"]["options"] == {"threshold": 0.25}
    assert doc["package"]["redaction"]["policy"] == "region"
    for limitation in STANDARD_LIMITATIONS:
        assert limitation in doc["limitations"]
    assert pair.examination.notes[0] in doc["limitations"]
    for artefact in doc["artefacts"]:
        path = package.path / artefact["path"]
        assert sha256(path) == artefact["sha256"]
        assert path.stat().st_size == artefact["size"]
    # Local folder names never leave the machine: provenance paths are reduced to names.
    assert doc["provenance"]["c2pa"]["path"] == "me.png"
    assert doc["provenance"]["log"]["verified"] is True
    for name in ("report.json", "report.html", "custody.jsonl", "README.txt"):
        text = (package.path / name).read_text(encoding="utf-8")
        assert str(pair.original.parent) not in text
        assert "/home/alex" not in text


def test_custody_chain(package: PackageResult) -> None:
    steps, problems = parse_custody((package.path / "custody.jsonl").read_bytes())
    assert problems == [] and check_chain(steps) == []
    assert [s["seq"] for s in steps] == list(range(1, len(steps) + 1))
    assert steps[0]["prev"] == "0" * 64
    for before, after in itertools.pairwise(steps):
        assert after["prev"] == before["hash"]
    for step in steps:
        body = {k: v for k, v in step.items() if k != "hash"}
        assert hashlib.sha256(canonical_json(body)).hexdigest() == step["hash"]
    actions = [s["action"] for s in steps]
    assert actions[:3] == ["acquire"] * 3
    assert actions[-1] == "seal" and package.custody_head == steps[-1]["hash"]
    assert steps[0]["actor"]["operator"] == "Alex Doe"
    embedded = package.document["custody"]["steps"]
    assert embedded == steps[: len(embedded)]
    assert verify_package(package.path).ok


# -- PDF/A-3b with report.json attached -------------------------------------------


_OBJ = re.compile(rb"(\d+) 0 obj\s*(<<.*?>>)\s*stream\r?\n", re.S)


def _pdf_streams(pdf: bytes) -> list[tuple[bytes, bytes]]:
    """Every stream of the PDF as (dictionary, decoded data), read independently."""
    streams = []
    for match in _OBJ.finditer(pdf):
        header = match.group(2)
        length = re.search(rb"/Length (\d+)\b(?! \d+ R)", header)
        assert length is not None
        body = pdf[match.end() : match.end() + int(length.group(1))]
        if b"/FlateDecode" in header:
            body = zlib.decompress(body)
        streams.append((header, body))
    return streams


def _attached_json(pdf_path: Path, tmp_path: Path) -> bytes:
    if shutil.which("pdfdetach"):
        out = tmp_path / "detached.json"
        subprocess.run(
            ["pdfdetach", "-savefile", "report.json", "-o", str(out), str(pdf_path)], check=True
        )
        return out.read_bytes()
    embedded = [
        body for header, body in _pdf_streams(pdf_path.read_bytes()) if b"/EmbeddedFile" in header
    ]
    assert len(embedded) == 1
    return embedded[0]


def test_pdf_is_pdfa3_with_report_json_attached(package: PackageResult, tmp_path: Path) -> None:
    pdf_path = package.path / "report.pdf"
    pdf = pdf_path.read_bytes()
    assert pdf.startswith(b"%PDF-")
    streams = _pdf_streams(pdf)
    xmp = b"".join(body for header, body in streams if b"/Metadata" in header)
    assert re.search(rb"pdfaid:part(>|=\")3", xmp), xmp[:400]
    assert re.search(rb"pdfaid:conformance(>|=\")B", xmp)
    everything = pdf + b"".join(body for _, body in streams)
    assert b"/AFRelationship /Data" in everything
    assert b"/URI" not in everything  # no links to anywhere
    assert _attached_json(pdf_path, tmp_path) == (package.path / "report.json").read_bytes()


def test_html_is_self_contained(package: PackageResult) -> None:
    html = (package.path / "report.html").read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html
    assert not re.search(r"""(src|href)=["'](?!data:)""", html)
    assert "url(" not in html
    link = re.search(r'href="data:application/json;base64,([^"]+)"', html)
    assert link is not None
    assert base64.b64decode(link.group(1)) == (package.path / "report.json").read_bytes()
    for text in (
        "TB-2026-0042",
        "Alex Doe",
        "https://forum.example/t/123",
        "@poster",
        "Chain of custody",
        "Limitations",
        "threshold",
        "Registration log",
    ):
        assert text in html
    # Redaction is on: the screenshot (which may show the fake) is described, not shown.
    assert 'alt="Screenshot of the post"' not in html


# -- redaction ----------------------------------------------------------------------


def test_thumbnail_blurs_the_altered_region_only(package: PackageResult, pair: Pair) -> None:
    thumb = np.asarray(Image.open(package.path / "working/suspect-thumb.jpg")).astype(float)
    plain = fit(pair.pixels, THUMB_MAX_SIDE).astype(float)
    assert thumb.shape == plain.shape
    mask = resize_mask(pair.mask, thumb.shape[:2]).astype(np.uint8)
    core = cv2.erode(mask, np.ones((9, 9), np.uint8)) > 0  # well inside the region
    far = cv2.dilate(mask, np.ones((31, 31), np.uint8)) == 0  # well outside it
    diff = np.abs(thumb - plain).mean(axis=2)
    assert diff[core].mean() > 25, diff[core].mean()
    assert diff[far].mean() < 3, diff[far].mean()

    def detail(img: np.ndarray) -> float:
        grey = img.mean(axis=2)
        return float(np.abs(np.diff(grey, axis=1))[core[:, 1:]].mean())

    assert detail(thumb) < 0.25 * detail(plain)
    # The evidentiary copy is never redacted.
    assert (package.path / "evidence/suspect.png").read_bytes() == pair.suspect.read_bytes()


def _data_uri_image(html: str, alt: str) -> np.ndarray:
    match = re.search(rf'<img src="data:image/jpeg;base64,([^"]+)" alt="{alt}', html)
    assert match is not None
    from io import BytesIO

    return np.asarray(Image.open(BytesIO(base64.b64decode(match.group(1)))).convert("RGB"))


def test_redaction_policy_and_no_redact(pair: Pair, tmp_path: Path) -> None:
    exam = pair.examination
    assert redaction_policy(exam, True) == "region"
    assert redaction_policy(exam, False) == "none"
    nothing = Examination(ExamineVerdict.INCONCLUSIVE, 0.0, suspect=exam.suspect)
    assert redaction_policy(nothing, True) == "whole"
    same = Examination(ExamineVerdict.IDENTICAL, 0.9, mask=np.zeros_like(pair.mask))
    assert redaction_policy(same, True) == "whole"

    shown = write_package(
        tmp_path / "open.html",
        exam,
        suspect_path=pair.suspect,
        original_path=pair.original,
        case=_case(pair),
        redact=False,
    )
    html = shown.path.read_text(encoding="utf-8")
    assert shown.document["package"]["redaction"]["policy"] == "none"
    assert 'alt="Screenshot of the post"' in html
    side = _data_uri_image(html, "The original")
    assert side.shape[1] > side.shape[0]


def test_without_original_the_whole_suspect_is_blurred(pair: Pair, tmp_path: Path) -> None:
    exam = Examination(
        ExamineVerdict.INCONCLUSIVE,
        0.0,
        suspect_name=pair.suspect.name,
        suspect_sha256=sha256(pair.suspect),
        notes=["No original was given."],
    )
    result = write_package(
        tmp_path / "alone.html",
        exam,
        suspect_path=pair.suspect,
        original_path=None,
        case=CaseInfo(),
    )
    assert result.redaction == "whole"
    html = result.path.read_text(encoding="utf-8")
    view = _data_uri_image(html, "The suspect image").astype(float)
    plain = fit(pair.pixels, view.shape[1]).astype(float)
    assert np.abs(view - plain).mean() > 15
    assert "No original was given" in html and verify_package(result.path).ok


# -- single files -------------------------------------------------------------------


def test_single_pdf_carries_the_json(pair: Pair, tmp_path: Path) -> None:
    result = write_package(
        tmp_path / "case-42.pdf",
        pair.examination,
        suspect_path=pair.suspect,
        original_path=pair.original,
        case=_case(pair),
    )
    assert result.kind == "pdf" and result.sha256 == sha256(result.path)
    assert [p.name for p in tmp_path.iterdir()] == ["case-42.pdf"]
    attached = json.loads(_attached_json(result.path, tmp_path))
    assert attached == result.document
    assert [a["path"] for a in attached["artefacts"]] == [None, None, None]
    assert attached["custody"]["file"] is None and check_chain(attached["custody"]["steps"]) == []
    checked = verify_package(result.path)
    assert checked.ok and checked.sha256 == result.sha256 and checked.kind == "pdf"


# -- tampering ------------------------------------------------------------------------


def _flip_byte(path: Path, offset: int = 200) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def test_changed_evidence_byte(copy: Path) -> None:
    _flip_byte(copy / "evidence/suspect.png")
    result = verify_package(copy)
    assert not result.ok
    first = result.problems[0]
    assert first.startswith("evidence/suspect.png was changed after the package was written")
    assert "SHA256SUMS" in first and "report.json" in first and "custody.jsonl" in first


def test_edited_report_json(copy: Path) -> None:
    path = copy / "report.json"
    path.write_text(path.read_text().replace('"verdict": "derived"', '"verdict": "identical"'))
    result = verify_package(copy)
    assert result.problems[0].startswith("report.json was changed")
    assert any("inside report.pdf differs" in p for p in result.problems)
    assert any("findings (examination) differ" in p for p in result.problems)


def test_reordered_custody_steps(copy: Path) -> None:
    path = copy / "custody.jsonl"
    lines = _lines(path)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_text("".join(lines))
    result = verify_package(copy)
    assert result.problems[0].startswith("custody.jsonl was changed")
    assert any(
        "custody.jsonl line 3 holds step 4" in p and "removed or reordered" in p
        for p in result.problems
    )


def test_removed_custody_step(copy: Path) -> None:
    path = copy / "custody.jsonl"
    lines = _lines(path)
    del lines[4]
    path.write_text("".join(lines))
    problems = verify_package(copy).problems
    assert any("line 5 holds step 6" in p for p in problems), problems


def test_edited_custody_step_with_resealed_sums(copy: Path) -> None:
    """Even with SHA256SUMS recomputed, an edited step breaks its own hash."""
    path = copy / "custody.jsonl"
    lines = _lines(path)
    step = json.loads(lines[1])
    step["when"] = "2020-01-01T00:00:00.000Z"
    lines[1] = canonical_json(step).decode() + "\n"
    path.write_text("".join(lines))
    sums = copy / "SHA256SUMS"
    sums.write_text(
        "".join(
            f"{sha256(copy / name) if name == 'custody.jsonl' else digest}  {name}\n"
            for digest, name in (line.split("  ", 1) for line in sums.read_text().splitlines())
        )
    )
    problems = verify_package(copy).problems
    assert problems and "step 2" in problems[0] and "the step was edited" in problems[0]


def test_edited_sha256sums(copy: Path) -> None:
    sums = copy / "SHA256SUMS"
    sums.write_text(
        "".join(
            ("0" * 64 if name == "report.pdf" else digest) + f"  {name}\n"
            for digest, name in (line.split("  ", 1) for line in sums.read_text().splitlines())
        )
    )
    problems = verify_package(copy).problems
    assert len(problems) == 1
    assert problems[0].startswith("report.pdf: its SHA-256")
    assert "SHA256SUMS records 0000" in problems[0] and "that record was edited" in problems[0]


def test_added_and_removed_files(copy: Path) -> None:
    (copy / "working/overlay.jpg").unlink()
    (copy / "evidence/extra.txt").write_text("planted")
    problems = verify_package(copy).problems
    assert "evidence/extra.txt is not recorded anywhere" in problems[0]
    assert any(p.startswith("working/overlay.jpg is missing") for p in problems)


# -- hostile input ---------------------------------------------------------------------


def _write(pair: Pair, target: Path, **kwargs: Any) -> PackageResult:
    options: dict[str, Any] = {"original_path": pair.original, "case": _case(pair)}
    options.update(kwargs)
    return write_package(target, pair.examination, suspect_path=pair.suspect, **options)


def test_screenshot_that_is_not_an_image(pair: Pair, tmp_path: Path) -> None:
    fake = tmp_path / "screenshot.png"
    fake.write_text("this is not a picture")
    with pytest.raises(NotAnImageError):
        _write(pair, tmp_path / "pkg", case=_case(pair, screenshot=fake))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["screenshot.png"]


def test_target_problems(pair: Pair, tmp_path: Path) -> None:
    with pytest.raises(PackageTargetError, match="does not exist"):
        _write(pair, tmp_path / "missing" / "pkg")
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    with pytest.raises(PackageTargetError, match="not empty"):
        _write(pair, full)
    assert [p.name for p in full.iterdir()] == ["keep.txt"]
    existing = tmp_path / "old.html"
    existing.write_text("old report")
    with pytest.raises(PackageTargetError, match="never overwritten"):
        _write(pair, existing)
    assert existing.read_text() == "old report"
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        with pytest.raises(PackageTargetError, match="no permission"):
            _write(pair, locked / "pkg")


def test_empty_existing_folder_is_used(pair: Pair, tmp_path: Path, monkeypatch: Any) -> None:
    import takeback.evidence.package as package_module

    def no_pdf(*args: Any, **kwargs: Any) -> bytes:
        return b"%PDF-1.7 stand-in"

    monkeypatch.setattr(package_module, "render_pdf", no_pdf)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _write(pair, empty)
    assert (empty / "report.json").is_file() and result.path == empty


def test_wrong_files_for_the_examination(pair: Pair, tmp_path: Path) -> None:
    with pytest.raises(EvidenceInputError, match="not the file that was examined"):
        write_package(
            tmp_path / "pkg",
            pair.examination,
            suspect_path=pair.original,
            original_path=pair.original,
            case=CaseInfo(),
        )
    with pytest.raises(FileAccessError):
        _write(pair, tmp_path / "pkg", original_path=tmp_path / "nope.png")
    assert list(tmp_path.iterdir()) == []


def test_failure_midway_leaves_nothing(pair: Pair, tmp_path: Path, monkeypatch: Any) -> None:
    import errno

    import takeback.evidence.package as package_module

    def full_disk(*args: Any, **kwargs: Any) -> bytes:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(package_module, "render_pdf", full_disk)
    with pytest.raises(PackageWriteError, match="No space left on device") as info:
        _write(pair, tmp_path / "pkg")
    assert isinstance(info.value, TakeBackError)
    assert list(tmp_path.iterdir()) == []


# -- command line ------------------------------------------------------------------------


def test_cli_verify(package: PackageResult, copy: Path) -> None:
    from takeback.cli_evidence import EXIT_PACKAGE_BROKEN, app

    runner = CliRunner()
    ok = runner.invoke(app, ["verify", str(package.path)])
    assert ok.exit_code == 0, ok.output
    assert "intact" in ok.stdout and package.sha256 in ok.stdout
    as_json = runner.invoke(app, ["verify", str(package.path), "--json"])
    verdict = json.loads(as_json.stdout)
    assert verdict["ok"] is True and verdict["problems"] == [] and verdict["checked"] > 20

    _flip_byte(copy / "evidence/original.png")
    broken = runner.invoke(app, ["verify", str(copy)])
    assert broken.exit_code == EXIT_PACKAGE_BROKEN
    assert "BROKEN" in broken.stdout and "evidence/original.png was changed" in broken.stdout
    missing = runner.invoke(app, ["verify", str(copy / "nothing-here"), "--json"])
    assert missing.exit_code == 1
    assert json.loads(missing.stdout)["error"]["code"] == "file_unreadable"


def test_cli_registered_subprocess(package: PackageResult) -> None:
    from takeback import cli

    assert any(group.name == "evidence" for group in cli.app.registered_groups)
    run = subprocess.run(
        [sys.executable, "-m", "takeback", "evidence", "verify", str(package.path), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["ok"] is True


def test_package_from_options(pair: Pair, tmp_path: Path) -> None:
    from takeback.cli_evidence import normalise_seen_at, package_from_options

    assert normalise_seen_at("2026-05-01 21:30+02:00") == "2026-05-01T19:30:00Z"
    assert normalise_seen_at(" ") is None
    with pytest.raises(EvidenceInputError, match="not a date and time"):
        normalise_seen_at("last Tuesday")
    result = package_from_options(
        tmp_path / "r.html",
        pair.examination,
        suspect=pair.suspect,
        original=pair.original,
        case_id=" 42 ",
        seen_at="2026-05-01T21:30",
        notes="",
        options={"min_area": 64},
    )
    doc = result.document
    assert doc["case"]["case_id"] == "42" and doc["case"]["notes"] is None
    assert doc["case"]["seen"]["at"] == "2026-05-01T21:30:00"
    assert doc["tool"]["invocation"] == {
        "command": "takeback examine",
        "options": {"min_area": 64},
    }


def test_edited_single_html(pair: Pair, tmp_path: Path) -> None:
    result = _write(pair, tmp_path / "r.html")
    html = result.path.read_text(encoding="utf-8")
    link = re.search(r'href="data:application/json;base64,([^"]+)"', html)
    assert link is not None
    doc = json.loads(base64.b64decode(link.group(1)))
    doc["examination"]["altered_fraction"] = 0.01
    forged = base64.b64encode(json.dumps(doc).encode()).decode()
    result.path.write_text(html.replace(link.group(1), forged), encoding="utf-8")
    checked = verify_package(result.path)
    assert not checked.ok and "findings (examination) differ" in checked.problems[0]


@pytest.mark.parametrize("url", ["http://example.invalid/x.png", "file:///etc/hostname"])
def test_pdf_fetches_nothing(url: str) -> None:
    from datetime import UTC, datetime

    from takeback.evidence.pdf import render_pdf

    page = f'<html><body><p>x</p><img src="{url}"></body></html>'
    with pytest.raises(PackageWriteError, match="only data: URIs"):
        render_pdf(page, b"{}", created=datetime.now(UTC))


def test_examination_arrays_must_fit_the_suspect(pair: Pair, tmp_path: Path) -> None:
    from dataclasses import replace

    small = replace(pair.examination, mask=pair.mask[:100, :100])
    with pytest.raises(EvidenceInputError, match="must share the suspect's grid"):
        write_package(
            tmp_path / "r.html",
            small,
            suspect_path=pair.suspect,
            original_path=pair.original,
            case=CaseInfo(),
        )
    floaty = replace(pair.examination, aligned_original=pair.pixels.astype(np.float32))
    with pytest.raises(EvidenceInputError, match="expected"):
        write_package(
            tmp_path / "r.html",
            floaty,
            suspect_path=pair.suspect,
            original_path=pair.original,
            case=CaseInfo(),
        )
    assert list(tmp_path.iterdir()) == []
