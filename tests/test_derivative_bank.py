"""Derivative fingerprints through the bank: registration, matching, bad input.

Fingerprints are always computed here from real photos (takeback.samples): the
format changes between versions, so no blob is committed. Doctored copies are
benign edits made in code (``tests/helpers.py``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from PIL import Image

from takeback.bank.matcher import Matcher, MatchResult
from takeback.bank.model import BankEntry
from takeback.bank.store import DB_NAME, SqliteStore
from takeback.fingerprint.batch import fingerprint_for_bank, fingerprint_paths
from takeback.fingerprint.derivative import DerivativeFingerprint
from takeback.fingerprint.pdq import fingerprint_bytes, fingerprint_file
from takeback.imageio import load_rgb, pdq_pixels
from takeback.samples import SAMPLE_PHOTOS, UNREGISTERED_PHOTO, sample_photo

from .conftest import CliResult
from .helpers import doctored_copy, encode, write

Cli = Callable[..., CliResult]


def _register(store: SqliteStore, paths: list[Path]) -> dict[str, int]:
    entries = []
    for path in paths:
        fp, derivative, _ = fingerprint_for_bank(path)
        entries.append(BankEntry.from_fingerprint(fp, label=path.name, derivative=derivative))
    return {e.label: r.id for e, r in zip(entries, store.add(entries), strict=True)}


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SqliteStore, dict[str, int]]]:
    """The sample photos registered with PDQ and derivative fingerprints."""
    with SqliteStore.create(tmp_path_factory.mktemp("bank")) as store:
        yield store, _register(store, [sample_photo(n) for n in SAMPLE_PHOTOS])


def _match(matcher: Matcher, data: bytes) -> MatchResult:
    """Match encoded suspect bytes as ``takeback match`` does (canonical pixels)."""
    return matcher.match(
        fingerprint_bytes(data, variants=True), suspect=lambda: pdq_pixels(data).pixels
    )


def _fake(original: np.ndarray, **edits: Any) -> bytes:
    """A doctored copy: part of ``original`` replaced by a photo that is never registered."""
    donor = load_rgb(sample_photo(UNREGISTERED_PHOTO))
    data, _ = doctored_copy(original, donor, **edits)
    return data


def _corners_error(reported: object, truth: np.ndarray, width: int, height: int) -> float:
    """Largest distance in pixels between where two matrices put inner points."""
    m = np.asarray(reported, np.float64)
    pts = np.array([[x, y, 1.0] for x in (0.3 * width, 0.7 * width) for y in (0.3 * height,)]).T
    return float(np.abs((m @ pts)[:2] - (truth @ pts)[:2]).max())


# -- matching ------------------------------------------------------------------


def test_a_doctored_copy_is_found_by_derivative_with_its_geometry(
    bank: tuple[SqliteStore, dict[str, int]],
) -> None:
    store, ids = bank
    chelsea = load_rgb(sample_photo("chelsea.png"))
    h, w = chelsea.shape[:2]
    crop = (0.1, 0.05, 0.95, 0.9)
    data = _fake(chelsea, replaced=0.4, flip=True, crop=crop, scale=0.8)
    with Matcher(store) as matcher:
        result = _match(matcher, data)
    assert result.pdq_searched and result.derivative_searched and result.derivative_note is None
    [top] = [m for m in result.matches if m.label == "chelsea.png"]
    assert result.matches[0] == top and top.id == ids["chelsea.png"]
    assert top.method == "derivative" and top.mirrored is True
    assert top.distance is None and top.variant is None
    assert top.score >= top.threshold > 0 and top.inliers is not None and top.inliers >= 10
    assert top.coverage is not None and top.coverage > 0.95
    # The truth: crop, mirror, then resize by 0.8 (pixel centres at integers).
    left, top_px = round(crop[0] * w), round(crop[1] * h)
    cw = round(crop[2] * w) - left
    out_w = round(cw * 0.8)
    s = out_w / cw
    truth = np.array(
        [[-s, 0, (cw - 1 + left + 0.5) * s - 0.5], [0, s, (0.5 - top_px) * s - 0.5], [0, 0, 1]]
    )
    assert _corners_error(top.matrix, truth, w, h) < 3.0
    as_json = top.to_dict()
    assert set(as_json) == {
        "id", "label", "method", "distance", "threshold", "variant", "score",
        "matrix", "mirrored", "coverage", "inliers",
    }  # fmt: skip
    assert np.asarray(as_json["matrix"]).shape == (3, 3)


def test_matrices_are_in_full_resolution_frames_on_both_sides(tmp_path: Path) -> None:
    # A large JPEG original is fingerprinted from its reduced canonical decode
    # (stored in full-size pixels), and so is the suspect: the matrix must
    # still map full-resolution pixels.
    coffee = load_rgb(sample_photo("coffee.png"))
    big = cv2.resize(coffee, (1800, 1200), interpolation=cv2.INTER_CUBIC)
    original = write(tmp_path / "big.jpg", encode(Image.fromarray(big), quality=92))
    fp, derivative, _ = fingerprint_for_bank(original)
    assert derivative is not None and (fp.width, fp.height) == (1800, 1200)
    assert (derivative.width, derivative.height) == (1800, 1200)
    data = _fake(big, replaced=0.3, crop=(0.2, 0.1, 0.9, 0.9))
    with SqliteStore.create(tmp_path / "bank") as store:
        store.add([BankEntry.from_fingerprint(fp, label="big.jpg", derivative=derivative)])
        with Matcher(store) as matcher:
            [top] = _match(matcher, data).matches
    assert top.method == "derivative" and top.mirrored is False
    truth = np.array([[1.0, 0, -360.0], [0, 1.0, -120.0], [0, 0, 1]])  # the crop's offset
    assert _corners_error(top.matrix, truth, 1800, 1200) < 6.0


def test_a_collage_of_two_registered_photos_reports_both(
    bank: tuple[SqliteStore, dict[str, int]],
) -> None:
    store, _ = bank
    left = cv2.resize(load_rgb(sample_photo("astronaut.png")), (400, 400))
    right = cv2.resize(load_rgb(sample_photo("motorcycle_left.png")), (593, 400))
    collage = encode(Image.fromarray(np.hstack([left, right])), quality=85)
    with Matcher(store) as matcher:
        result = _match(matcher, collage)
    found = {m.label: m for m in result.matches}
    assert {"astronaut.png", "motorcycle_left.png"} <= set(found)
    assert all(m.method == "derivative" for m in result.matches)
    assert all(m.coverage is not None and m.coverage < 0.7 for m in found.values())


def test_derivative_mode_decides_when_the_step_runs(
    bank: tuple[SqliteStore, dict[str, int]],
) -> None:
    store, _ = bank
    repost = encode(Image.open(sample_photo("coffee.png")).convert("RGB"), quality=70)
    loads: list[int] = []

    def pixels() -> np.ndarray:
        loads.append(1)
        return pdq_pixels(repost).pixels

    fp = fingerprint_bytes(repost, variants=True)
    with Matcher(store) as auto:
        result = auto.match(fp, suspect=pixels)
    assert [m.method for m in result.matches] == ["pdq"] and not result.derivative_searched
    assert loads == []  # PDQ found it: the suspect was not decoded again
    with Matcher(store, derivative="always") as always:
        result = always.match(fp, suspect=pixels)
    assert [m.method for m in result.matches] == ["pdq"]  # one entry, its best evidence
    assert result.derivative_searched and loads == [1]
    doctored = _fake(load_rgb(sample_photo("coffee.png")), replaced=0.4)
    with Matcher(store, derivative="never") as never:
        assert _match(never, doctored).matches == []
    assert Matcher(store).match(fingerprint_bytes(doctored)).derivative_searched is False


def test_unrelated_photos_and_flat_suspects_do_not_match(
    bank: tuple[SqliteStore, dict[str, int]], unrelated: dict[str, Path]
) -> None:
    store, _ = bank
    flat = encode(Image.new("RGB", (400, 300), (128, 120, 110)), "PNG")
    with Matcher(store) as matcher:
        for path in [sample_photo(UNREGISTERED_PHOTO), unrelated["retina.jpg"]]:
            result = _match(matcher, encode(Image.open(path).convert("RGB"), quality=80))
            assert result.matches == [] and result.derivative_searched, path.name
        result = _match(matcher, flat)
    assert result.matches == [] and not result.pdq_searched  # nothing to match on


def test_an_empty_derivative_index_says_so(tmp_path: Path) -> None:
    with SqliteStore.create(tmp_path / "bank") as store:
        fp = fingerprint_file(sample_photo("coffee.png"))
        store.add([BankEntry.from_fingerprint(fp, label="pdq only")])
        doctored = _fake(load_rgb(sample_photo("coffee.png")), replaced=0.4)
        with Matcher(store) as matcher:
            result = _match(matcher, doctored)
    assert result.matches == [] and result.derivative_note == (
        "the bank holds no derivative fingerprints"
    )


# -- bad input -----------------------------------------------------------------


def test_a_damaged_derivative_fingerprint_is_skipped_with_a_warning(tmp_path: Path) -> None:
    bank_dir = tmp_path / "bank"
    with SqliteStore.create(bank_dir) as store:
        ids = _register(store, [sample_photo(n) for n in ("chelsea.png", "coffee.png")])
    with sqlite3.connect(bank_dir / DB_NAME) as conn:  # flip bytes in the middle of one blob
        conn.execute(
            "UPDATE derivatives SET blob = substr(blob, 1, 100) || zeroblob(8) || substr(blob, 109)"
            " WHERE entry_id = ?",
            (ids["coffee.png"],),
        )
    conn.close()
    warnings: list[str] = []
    chelsea = load_rgb(sample_photo("chelsea.png"))
    coffee = load_rgb(sample_photo("coffee.png"))
    with SqliteStore.open(bank_dir) as store, Matcher(store, on_warning=warnings.append) as m:
        good = _match(m, _fake(chelsea, replaced=0.4, flip=True))
        gone = _match(m, _fake(coffee, replaced=0.4, flip=True))
    assert [x.label for x in good.matches] == ["chelsea.png"]
    assert gone.matches == []
    [warning] = warnings
    assert f"entry #{ids['coffee.png']} (coffee.png)" in warning
    assert "register the photo again" in warning


def test_batches_carry_derivatives_and_their_absence_across_processes(tmp_path: Path) -> None:
    flat = write(tmp_path / "flat.png", encode(Image.new("RGB", (300, 200), (9, 9, 9)), "PNG"))
    tiny = write(tmp_path / "tiny.png", encode(Image.new("RGB", (40, 90), (9, 9, 9)), "PNG"))
    paths = [str(sample_photo(n)) for n in ("chelsea.png", "rocket.jpg")] + [str(flat), str(tiny)]
    items = list(fingerprint_paths(paths, jobs=2, derivative=True))
    assert [i.path for i in items] == paths
    chelsea, rocket, blank, small = items
    assert isinstance(chelsea.derivative, DerivativeFingerprint)
    assert chelsea.derivative == fingerprint_for_bank(paths[0])[1]
    assert rocket.derivative is not None and rocket.derivative_error is None
    assert blank.fingerprint is not None and blank.derivative is None
    assert blank.derivative_error is not None and blank.derivative_error.code == "too_little_detail"
    assert small.fingerprint is None and small.error is not None
    assert small.error.code == "image_too_small"
    plain = list(fingerprint_paths(paths[:1], jobs=1))
    assert plain[0].derivative is None and plain[0].derivative_error is None


def test_huge_images_are_bounded_by_the_image_limits(tmp_path: Path) -> None:
    from takeback.errors import ImageTooLargeError
    from takeback.imageio import ImageLimits

    big = write(tmp_path / "big.png", encode(Image.new("RGB", (3000, 2000), (1, 2, 3)), "PNG"))
    with pytest.raises(ImageTooLargeError):
        fingerprint_for_bank(big, limits=ImageLimits(max_pixels=1_000_000))


# -- the command line ----------------------------------------------------------


def test_bank_add_registers_derivatives_unless_pdq_only(
    cli: Cli, tmp_path: Path, photos: dict[str, Path]
) -> None:
    bank_dir = tmp_path / "bank"
    flat = write(
        tmp_path / "wall.png", encode(Image.new("RGB", (300, 200), (200, 190, 180)), "PNG")
    )
    added = cli("bank", "add", photos["chelsea.png"], flat, "--bank", bank_dir, "--json")
    assert added.code == 0, added.stderr
    chelsea, wall = added.json_lines()
    assert len(str(chelsea["derivative_digest"])) == 64 and chelsea["derivative_note"] is None
    assert wall["derivative_digest"] is None
    assert wall["derivative_note"] == "no derivative fingerprint: too little detail"
    private = cli("bank", "add", photos["coffee.png"], "--bank", bank_dir, "--privacy", "pdq-only")
    assert private.code == 0, private.stderr
    assert "no derivative fingerprint: registered PDQ-only" in private.stdout
    with SqliteStore.open(bank_dir) as store:
        assert [i for i, _ in store.derivatives()] == [chelsea["id"]]
        [(_, blob)] = store.derivatives()
        assert DerivativeFingerprint.from_bytes(blob).digest == chelsea["derivative_digest"]
        assert store.stats().with_derivative == 1
    human = cli("bank", "add", flat, photos["astronaut.png"], "--bank", bank_dir)
    assert "1 registered" in human.stderr and "1 already registered" in human.stderr


def test_match_reports_a_doctored_copy_in_plain_words(
    cli: Cli, tmp_path: Path, photos: dict[str, Path]
) -> None:
    bank_dir = tmp_path / "bank"
    registered = (photos["astronaut.png"], photos["chelsea.png"])
    assert cli("bank", "add", *registered, "--bank", bank_dir).code == 0
    chelsea = load_rgb(photos["chelsea.png"])
    suspect = write(tmp_path / "fake.jpg", _fake(chelsea, replaced=0.4, flip=True))
    rows = cli("match", suspect, "--bank", bank_dir, "--json").json_lines()
    [top] = rows[0]["matches"]  # type: ignore[misc]
    assert top["method"] == "derivative" and top["label"] == "chelsea.png"
    assert top["mirrored"] is True and len(top["matrix"]) == 3
    assert rows[0]["derivative_searched"] is True and rows[0]["derivative_note"] is None
    # A damaged fingerprint in the bank: a warning naming the entry, not a crash.
    with sqlite3.connect(bank_dir / DB_NAME) as conn:
        conn.execute("UPDATE derivatives SET blob = x'00112233' WHERE entry_id = 1")
    conn.close()
    human = cli("match", suspect, "--bank", bank_dir)
    assert human.code == 0, human.stderr
    assert "Traceback" not in human.stderr
    assert "warning: entry #1 (astronaut.png): its derivative fingerprint" in human.stderr
    line = next(x for x in human.stdout.splitlines() if "match #" in x)
    assert "a doctored copy: " in line and "of the suspect is explained by chelsea.png" in line
    assert ", mirrored" in line


def test_an_old_bank_takes_derivatives_after_an_upgrade(
    cli: Cli, tmp_path: Path, photos: dict[str, Path]
) -> None:
    bank_dir = tmp_path / "bank"
    assert cli("bank", "add", photos["coffee.png"], "--bank", bank_dir).code == 0
    with sqlite3.connect(bank_dir / DB_NAME, isolation_level=None) as conn:  # as version 1 made it
        conn.execute("DROP TABLE derivatives")
        conn.execute("PRAGMA user_version=1")
    conn.close()
    added = cli("bank", "add", photos["chelsea.png"], "--bank", bank_dir, "--json")
    assert added.code == 0, added.stderr
    listed = cli("bank", "list", "--bank", bank_dir, "--json").json_lines()
    assert [r["label"] for r in listed] == ["coffee.png", "chelsea.png"]
    assert listed[0]["derivative_digest"] is None
    assert listed[1]["derivative_digest"] == added.json_lines()[0]["derivative_digest"]
