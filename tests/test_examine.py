"""``takeback examine``: alignment, altered pixels, verdicts, the command and its outputs.

Every suspect is a real sample photo with benign edits made in code: an
ellipse replaced by another photo's content, then reposting transforms.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from takeback.examine import align as align_mod
from takeback.examine import changes as changes_mod
from takeback.examine.model import ExamineVerdict
from takeback.examine.pipeline import examine
from takeback.imageio import load_rgb

from .helpers import doctored_copy, encode, write


def _f1(mask: np.ndarray, truth: np.ndarray) -> float:
    tp = int((mask & truth).sum())
    return 2 * tp / max(1, int(mask.sum()) + int(truth.sum()))


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, photos: dict[str, Path]
) -> tuple[Path, Path, np.ndarray]:
    """astronaut.png and a doctored repost: 30% replaced, crop, flip, rotation, resize."""
    d = tmp_path_factory.mktemp("pair")
    original = photos["astronaut.png"]
    data, truth = doctored_copy(
        load_rgb(original),
        load_rgb(photos["coffee.png"]),
        replaced=0.3,
        flip=True,
        rotate=4.0,
        crop=(0.08, 0.05, 0.95, 0.97),
        scale=0.7,
        quality=70,
    )
    return original, write(d / "fake.jpg", data), truth


@pytest.mark.parametrize(
    ("photo", "donor", "edits"),
    [
        ("astronaut.png", "coffee.png", {"flip": True, "rotate": 4.0, "scale": 0.7}),
        ("chelsea.png", "rocket.jpg", {"crop": (0.1, 0.0, 1.0, 0.9), "quality": 60}),
        ("coffee.png", "chelsea.png", {"rotate": -6.0, "border": 12, "scale": 0.8}),
        ("motorcycle_left.png", "astronaut.png", {"flip": True, "scale": 0.5}),
    ],
)
def test_doctored_copy_is_derived_and_the_mask_finds_the_replaced_region(
    tmp_path: Path, photos: dict[str, Path], photo: str, donor: str, edits: dict[str, object]
) -> None:
    original = photos[photo]
    data, truth = doctored_copy(load_rgb(original), load_rgb(photos[donor]), replaced=0.35, **edits)  # type: ignore[arg-type]
    suspect = write(tmp_path / "fake.jpg", data)
    result = examine(suspect, original=original)
    assert result.verdict is ExamineVerdict.DERIVED
    assert result.mask is not None and result.mask.shape == truth.shape
    assert _f1(result.mask, truth) >= 0.8
    assert result.alignment is not None
    assert result.alignment.mirrored is bool(edits.get("flip", False))
    assert 0.2 <= result.altered_fraction <= 0.6
    assert result.regions and result.regions[0].share > 0.1
    assert 0.0 < result.confidence <= 1.0


def test_untouched_repost_is_identical_with_no_altered_area(
    tmp_path: Path, photos: dict[str, Path]
) -> None:
    original = photos["chelsea.png"]
    data, _ = doctored_copy(
        load_rgb(original),
        None,
        flip=True,
        rotate=5.0,
        crop=(0.1, 0.1, 0.9, 0.95),
        scale=0.6,
        border=10,
        quality=65,
    )
    result = examine(write(tmp_path / "repost.jpg", data), original=original)
    assert result.verdict is ExamineVerdict.IDENTICAL
    assert result.mask is not None and result.compared is not None
    assert result.mask.sum() <= 0.005 * result.compared.sum()
    assert result.alignment is not None and result.alignment.mirrored
    # the border is not part of what was compared
    assert not result.compared[:5].any() and not result.compared[:, :5].any()


def test_alignment_matrix_maps_original_pixels_onto_the_suspect(
    pair: tuple[Path, Path, np.ndarray],
) -> None:
    original, suspect, _ = pair
    result = examine(suspect, original=original)
    assert result.alignment is not None and result.alignment.mirrored
    assert result.alignment.scale == pytest.approx(0.7, abs=0.02)
    assert abs(result.alignment.rotation_deg) == pytest.approx(4.0, abs=0.5)
    # the original's pixels, mapped, equal the suspect's outside the altered area
    o = load_rgb(original).astype(np.float32)
    s = load_rgb(suspect).astype(np.float32)
    m = np.linalg.inv(result.alignment.matrix)
    keep = ~result.mask if result.mask is not None else np.ones(s.shape[:2], bool)
    ys, xs = np.nonzero(keep)
    pick = np.random.default_rng(0).choice(len(xs), 400, replace=False)
    pts = m @ np.stack([xs[pick], ys[pick], np.ones(400)])
    ox, oy = np.round(pts[0]).astype(int), np.round(pts[1]).astype(int)
    ok = (ox >= 0) & (oy >= 0) & (ox < o.shape[1]) & (oy < o.shape[0])
    diff = np.abs(o[oy[ok], ox[ok]].mean(1) - s[ys[pick][ok], xs[pick][ok]].mean(1))
    assert np.median(diff) < 20


def test_small_crop_of_mostly_replaced_area_aligns_by_the_dense_try(
    tmp_path: Path, photos: dict[str, Path], unrelated: dict[str, Path]
) -> None:
    """A 160 px crop that is 87 % replaced: too few ordinary SIFT correspondences."""
    original = photos["motorcycle_left.png"]
    data, truth = doctored_copy(
        load_rgb(original),
        load_rgb(photos["astronaut.png"]),
        replaced=0.5,
        crop=(0.15, 0.35, 0.85, 1.0),
        scale=0.5,
        quality=75,
    )
    suspect = write(tmp_path / "fake.jpg", data)
    assert truth.mean() > 0.8
    grid = load_rgb(suspect)
    assert align_mod.align(load_rgb(original), grid, dense=False) is None
    result = examine(suspect, original=original)
    assert result.verdict is ExamineVerdict.DERIVED
    assert result.alignment is not None and not result.alignment.mirrored
    assert result.alignment.scale == pytest.approx(0.5, abs=0.01)
    assert result.mask is not None and _f1(result.mask, truth) >= 0.9
    # the dense try does not make unrelated photos align (a wrong alignment is worse than none)
    for other in [*unrelated.values(), photos["chelsea.png"], photos["camera.png"]]:
        verdict = examine(suspect, original=other, marks=False, blind=False).verdict
        assert verdict is ExamineVerdict.NOT_DERIVED


def test_pixel_agreement_confirms_only_the_true_alignment(
    tmp_path: Path, photos: dict[str, Path], unrelated: dict[str, Path]
) -> None:
    original = load_rgb(photos["coffee.png"])
    data, _ = doctored_copy(original, load_rgb(photos["rocket.jpg"]), replaced=0.5, scale=0.6)
    suspect = load_rgb(write(tmp_path / "fake.jpg", data))
    found = align_mod.align(original, suspect)
    assert found is not None
    assert align_mod.confirmed(original, suspect, found.matrix)
    score, shifted = align_mod.agreement(original, suspect, found.matrix)
    assert score > 2 * shifted
    # the same transform applied to another photo, or the right photo 12 px off
    other = cv2.resize(load_rgb(unrelated["retina.jpg"]), original.shape[1::-1])
    assert not align_mod.confirmed(other, suspect, found.matrix)
    off = np.array([[1.0, 0.0, 12.0], [0.0, 1.0, 12.0], [0.0, 0.0, 1.0]]) @ found.matrix
    assert not align_mod.confirmed(original, suspect, off)


def test_fine_detail_peaks_at_a_smooth_alignment_only(
    tmp_path: Path, photos: dict[str, Path], unrelated: dict[str, Path]
) -> None:
    """Mostly sky, 65 % replaced, mirrored: fine detail peaks at the true transform only."""
    original = photos["rocket.jpg"]
    o_rgb = load_rgb(original)
    data, truth = doctored_copy(
        o_rgb,
        load_rgb(photos["coffee.png"]),
        replaced=0.5,
        crop=(0.1, 0.0, 0.9, 0.8),
        flip=True,
        scale=0.6,
        quality=75,
    )
    suspect = write(tmp_path / "fake.jpg", data)
    grid = load_rgb(suspect)
    assert truth.mean() > 0.6
    # the true transform: crop, mirror, resize
    h, w = o_rgb.shape[:2]
    left, top = round(0.1 * w), 0
    cw, ch = round(0.9 * w) - left, round(0.8 * h) - top
    crop = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top], [0.0, 0.0, 1.0]])
    mirror = np.array([[-1.0, 0.0, cw - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    true = align_mod.scale_matrix(grid.shape[1] / cw, grid.shape[0] / ch) @ mirror @ crop
    fine, fine_shifted = align_mod.fine_agreement(o_rgb, grid, true)
    assert fine >= align_mod.FINE_MIN and fine >= align_mod.FINE_PEAK * fine_shifted
    assert align_mod.fine_confirmed(o_rgb, grid, true)
    # 12 px off, another photo, or a sliver of the original: not confirmed
    off = np.array([[1.0, 0.0, 12.0], [0.0, 1.0, 12.0], [0.0, 0.0, 1.0]]) @ true
    other = cv2.resize(load_rgb(photos["chelsea.png"]), o_rgb.shape[1::-1])
    sliver = true @ np.diag([0.2, 0.2, 1.0])
    for img, m in ((o_rgb, off), (other, true), (o_rgb, sliver)):
        assert not align_mod.fine_confirmed(img, grid, m)
    # and the fine check makes no smooth or unrelated photo align
    smooth = [photos[n] for n in ("astronaut.png", "chelsea.png", "camera.png")]
    for other_path in [*unrelated.values(), *smooth]:
        verdict = examine(suspect, original=other_path, marks=False, blind=False).verdict
        assert verdict is ExamineVerdict.NOT_DERIVED


def _inpainted(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Classical inpainting of a lower-central ellipse (at 256 px, upsampled), feathered."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    region = ((xx - w / 2) / (0.3 * w)) ** 2 + ((yy - 0.6 * h) / (0.3 * h)) ** 2 <= 1
    s = 256 / max(h, w)
    small = cv2.resize(image, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    hole = cv2.resize(region.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    fill = cv2.resize(cv2.inpaint(small, hole, 5, cv2.INPAINT_TELEA), (w, h))
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 4)[..., None]
    out = np.clip(image * (1 - alpha) + fill * alpha, 0, 255).astype(np.uint8)
    size = (round(w * 0.7), round(h * 0.7))
    truth = cv2.resize(alpha[..., 0], size, interpolation=cv2.INTER_AREA) > 0.5
    return cv2.resize(out, size, interpolation=cv2.INTER_AREA), truth


def test_a_region_cut_by_the_frame_is_marked_up_to_the_frame(
    tmp_path: Path, photos: dict[str, Path]
) -> None:
    """The comparison cannot judge the last pixels before a border; a region reaching
    them takes them, so a replaced area cut off by the crop is marked to the border."""
    original = photos["astronaut.png"]
    data, truth = doctored_copy(
        load_rgb(original),
        load_rgb(photos["coffee.png"]),
        replaced=0.35,
        crop=(0, 0, 1, 0.85),
        border=12,
    )
    result = examine(write(tmp_path / "cut.jpg", data), original=original)
    assert result.verdict is ExamineVerdict.DERIVED and result.mask is not None
    inner = truth[-12 - 6 : -12]  # the last rows of the picture, above the border
    assert inner.sum() > 1000  # the replaced region reaches them
    marked = result.mask[-12 - 6 : -12]
    assert (marked & inner).sum() >= 0.95 * inner.sum()
    assert (marked & inner).sum() >= 0.8 * marked.sum()
    assert not result.mask[-12:].any()  # the border itself is not judged


def _caption_on_top(rgb: np.ndarray, text: str, bar: int) -> np.ndarray:
    """A light caption bar with large black text above ``rgb``."""
    h, w = rgb.shape[:2]
    canvas = np.full((h + bar, w, 3), 235, np.uint8)
    canvas[bar:] = rgb
    cv2.putText(canvas, text, (4, bar * 2 // 3), cv2.FONT_HERSHEY_SIMPLEX, bar / 30, (0, 0, 0), 3)
    return canvas


def test_a_caption_bar_with_text_down_to_a_border_is_left_out(
    tmp_path: Path, photos: dict[str, Path]
) -> None:
    """Text filling most of a caption bar's rows must not end the bar, nor hide the
    border under it: neither is part of the picture, neither is 'altered'."""
    original = photos["chelsea.png"]
    data, _ = doctored_copy(
        load_rgb(original), None, crop=(0.1, 0.15, 0.9, 1.0), border=20, quality=95
    )
    framed = load_rgb(write(tmp_path / "framed.jpg", data))
    captioned = _caption_on_top(framed, "@someone_else #repost #wow", 48)
    suspect = write(tmp_path / "captioned.jpg", encode(Image.fromarray(captioned), quality=70))
    result = examine(suspect, original=original)
    assert result.verdict is ExamineVerdict.IDENTICAL
    assert result.compared is not None
    assert not result.compared[: 48 + 20].any()  # the bar and the border under it


@pytest.mark.parametrize("photo", ["astronaut.png", "rocket.jpg"])
def test_smooth_inpainting_is_found_by_growing_into_smoothed_pixels(
    tmp_path: Path, photos: dict[str, Path], photo: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Inpainting resembles what it replaced; where it smoothed the texture, the region grows."""
    out, truth = _inpainted(load_rgb(photos[photo]))
    suspect = write(tmp_path / "inpainted.jpg", encode(Image.fromarray(out), quality=80))
    result = examine(suspect, original=photos[photo])
    assert result.verdict is ExamineVerdict.DERIVED and result.mask is not None
    recall = (result.mask & truth).sum() / truth.sum()
    precision = (result.mask & truth).sum() / result.mask.sum()
    assert precision >= 0.95
    monkeypatch.setattr(changes_mod, "GROW_STRENGTH", 1.0)  # no growth
    plain = examine(suspect, original=photos[photo])
    assert plain.mask is not None
    assert recall >= (plain.mask & truth).sum() / truth.sum() + 0.03
    assert _f1(result.mask, truth) >= {"astronaut.png": 0.95, "rocket.jpg": 0.75}[photo]


def test_unrelated_photo_is_not_derived(
    tmp_path: Path,
    photos: dict[str, Path],
    unrelated: dict[str, Path],
    pair: tuple[Path, Path, np.ndarray],
) -> None:
    _, suspect, _ = pair
    result = examine(suspect, original=photos["chelsea.png"])
    assert result.verdict is ExamineVerdict.NOT_DERIVED
    assert result.mask is None and result.alignment is None


def test_without_original_only_marks_are_read(pair: tuple[Path, Path, np.ndarray]) -> None:
    _, suspect, _ = pair
    result = examine(suspect)
    assert result.verdict is ExamineVerdict.INCONCLUSIVE
    doc = result.to_dict()
    assert doc["marks"]["found"] is False
    assert doc["blind"]["label"].startswith("weak")
    assert "No original" in doc["notes"][0]


def test_json_contract_and_mask_file(
    cli: Callable[..., object], tmp_path: Path, pair: tuple[Path, Path, np.ndarray]
) -> None:
    original, suspect, truth = pair
    mask_png = tmp_path / "mask.png"
    res = cli(
        "examine",
        suspect,
        "--original",
        original,
        "--mask-out",
        mask_png,
        "--overlay-out",
        tmp_path / "overlay.png",
        "--heatmap-out",
        tmp_path / "heat.png",
        "--json",
    )
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    doc = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert doc["schema"] == "takeback.examination/1"
    assert doc["verdict"] == "derived"
    assert set(doc) >= {
        "verdict",
        "confidence",
        "altered_fraction",
        "regions",
        "alignment",
        "marks",
        "blind",
        "parameters",
        "notes",
        "suspect",
        "original",
    }
    assert set(doc["alignment"]) >= {"matrix", "mirrored", "coverage"}
    assert doc["alignment"]["mirrored"] is True
    assert np.asarray(doc["alignment"]["matrix"]).shape == (3, 3)
    region = doc["regions"][0]
    assert set(region) == {"bbox", "area", "share"}
    with Image.open(mask_png) as img:
        mask = np.asarray(img) > 127
    assert mask.shape == truth.shape
    assert _f1(mask, truth) >= 0.8
    for name in ("overlay.png", "heat.png"):
        with Image.open(tmp_path / name) as img:
            assert img.size == (truth.shape[1], truth.shape[0])


def test_human_output_says_the_verdict_in_words(
    cli: Callable[..., object], pair: tuple[Path, Path, np.ndarray]
) -> None:
    original, suspect, _ = pair
    res = cli("examine", suspect, "--original", original)
    assert res.code == 0  # type: ignore[attr-defined]
    assert "DERIVED" in res.stdout and "altered:" in res.stdout  # type: ignore[attr-defined]
    assert "mirrored" in res.stdout  # type: ignore[attr-defined]


def test_bank_finds_the_original_and_the_report_carries_its_log_entry(
    cli: Callable[..., object], tmp_path: Path, pair: tuple[Path, Path, np.ndarray]
) -> None:
    original, suspect, _ = pair
    bank = tmp_path / "bank"
    folder = tmp_path / "mine"
    folder.mkdir()
    mine = write(folder / "me.png", original.read_bytes())
    res = cli("bank", "add", mine, "--bank", bank, "--log")
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    report = tmp_path / "case"
    res = cli(
        "examine",
        suspect,
        "--bank",
        bank,
        "--originals",
        folder,
        "--report",
        report,
        "--case-id",
        "T-1",
        "--seen-url",
        "https://forum.invalid/t/1",
        "--seen-at",
        "2026-11-20T18:30:00Z",
        "--account",
        "@someone",
        "--json",
    )
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    doc = json.loads(res.stdout)  # type: ignore[attr-defined]
    assert doc["verdict"] == "derived"
    # PDQ misses a copy with 30% replaced and turned; the derivative fingerprint finds it
    assert doc["match"]["method"] == "derivative"
    assert doc["original"]["name"] == "me.png"
    package = json.loads((report / "report.json").read_text())
    log = package["provenance"]["log"]
    assert log["verified"] is True
    assert log["entry"]["sha256"] == doc["original"]["sha256"]
    assert package["provenance"]["c2pa"]["status"] == "none"
    res = cli("evidence", "verify", report)
    assert res.code == 0, res.stdout + res.stderr  # type: ignore[attr-defined]


def test_bank_match_without_the_file_is_inconclusive_and_says_what_to_do(
    cli: Callable[..., object], tmp_path: Path, photos: dict[str, Path]
) -> None:
    original = photos["chelsea.png"]
    data, _ = doctored_copy(load_rgb(original), None, flip=True, scale=0.8, quality=80)
    suspect = write(tmp_path / "repost.jpg", data)
    bank = tmp_path / "bank"
    assert cli("bank", "add", original, "--bank", bank).code == 0  # type: ignore[attr-defined]
    res = cli("examine", suspect, "--bank", bank)
    assert res.code == 0  # type: ignore[attr-defined]
    assert "INCONCLUSIVE" in res.stdout  # type: ignore[attr-defined]
    assert "chelsea.png" in res.stderr and "--originals" in res.stderr  # type: ignore[attr-defined]
    res = cli("examine", suspect, "--bank", bank, "--json")
    assert json.loads(res.stdout)["match"]["method"] == "pdq"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("make", "code", "words"),
    [
        (lambda p: write(p, b"not an image at all"), 1, "not an image"),
        (lambda p: write(p, b"\xff\xd8\xff\xe0" + b"\x00" * 40), 1, ""),
        (lambda p: p, 1, "fake.jpg"),  # does not exist
    ],
)
def test_bad_suspects_give_a_clear_message_and_exit_1(
    cli: Callable[..., object],
    tmp_path: Path,
    photos: dict[str, Path],
    make: Callable[[Path], Path],
    code: int,
    words: str,
) -> None:
    suspect = make(tmp_path / "fake.jpg")
    res = cli("examine", suspect, "--original", photos["astronaut.png"])
    assert res.code == code  # type: ignore[attr-defined]
    assert "fake.jpg" in res.stderr and words in res.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in res.stderr  # type: ignore[attr-defined]


def test_bad_original_and_bad_options(
    cli: Callable[..., object], tmp_path: Path, pair: tuple[Path, Path, np.ndarray]
) -> None:
    original, suspect, _ = pair
    broken = write(tmp_path / "orig.png", original.read_bytes()[:3000])
    res = cli("examine", suspect, "--original", broken, "--json")
    assert res.code == 1  # type: ignore[attr-defined]
    assert json.loads(res.stdout)["error"]["code"] == "corrupt_image"  # type: ignore[attr-defined]
    res = cli("examine", suspect, "--original", original, "--bank", tmp_path / "b")
    assert res.code == 2  # type: ignore[attr-defined]
    res = cli("examine", suspect, "--heatmap-out", tmp_path / "h.png")
    assert res.code == 1 and "--original" in res.stderr  # type: ignore[attr-defined]
    res = cli(
        "examine",
        suspect,
        "--original",
        original,
        "--mask-out",
        tmp_path / "no" / "such" / "dir" / "m.png",
    )
    assert res.code == 1 and "cannot write" in res.stderr  # type: ignore[attr-defined]


def test_report_says_the_original_is_signed_and_registered_before_the_fake(
    cli: Callable[..., object], tmp_path: Path, photos: dict[str, Path]
) -> None:
    """Issue 5, part 4: the package carries the original's C2PA result and log proof."""
    from takeback.evidence import verify_package
    from takeback.provenance.log import RegistrationLog, verify_proof
    from takeback.provenance.log_note import NoteVerifier

    # a JPEG original, signed with a sidecar (it stays byte-identical) and logged
    original = write(
        tmp_path / "mine" / "me.jpg",
        encode(Image.open(photos["chelsea.png"]).convert("RGB"), quality=92),
    )
    bank, keys_dir = tmp_path / "bank", tmp_path / "keys"
    assert cli("keys", "init", "--dir", keys_dir).code == 0  # type: ignore[attr-defined]
    res = cli("sign", original, "--key", keys_dir / "signer.key", "--cert", keys_dir / "signer.pem")
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    res = cli("bank", "add", original, "--bank", bank, "--log")
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    data, _ = doctored_copy(
        load_rgb(original), load_rgb(photos["coffee.png"]), replaced=0.3, flip=True, scale=0.7
    )
    suspect = write(tmp_path / "fake.jpg", data)
    report = tmp_path / "case"
    res = cli(
        "examine",
        suspect,
        "--bank",
        bank,
        "--originals",
        original.parent,
        "--report",
        report,
        "--trust-anchors",
        keys_dir / "ca.pem",
        "--json",
    )
    assert res.code == 0, res.stderr  # type: ignore[attr-defined]
    package = json.loads((report / "report.json").read_text())
    prov = package["provenance"]
    assert prov["c2pa"]["status"] == "trusted"
    log = prov["log"]
    assert log["verified"] is True
    assert log["entry"]["registered_at"] <= package["package"]["generated_at"]
    # the proof in the package verifies offline with nothing but the log's public key
    with RegistrationLog.open(bank) as reg:
        vkey = reg.verifier.vkey
    sha = package["examination"]["original"]["sha256"]
    check = verify_proof(log["proof"].encode(), NoteVerifier.from_vkey(vkey), sha256=sha)
    assert check.ok
    assert verify_package(report).ok
