"""Tests of the derivative fingerprint: serialization, verification, retrieval."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from takeback.errors import InvalidHashError, TakeBackError
from takeback.examine.align import scale_matrix
from takeback.fingerprint.derivative import (
    MAX_BYTES,
    DerivativeFingerprint,
    DerivativeMatch,
    InvalidDerivativeError,
    TooLittleDetailError,
    derivative_from_file,
    derivative_from_pixels,
    score_of_inliers,
    shared_content,
    suspect_features,
    verify_derivative,
)
from takeback.fingerprint.derivative_index import DerivativeIndex
from takeback.imageio import load_rgb
from takeback.samples import UNREGISTERED_PHOTO, sample_photo

NAMES = ("astronaut.png", "chelsea.png", "coffee.png")
UNRELATED = ("rocket.jpg", "motorcycle_left.png", "camera.png")


@pytest.fixture(scope="module")
def originals() -> dict[str, np.ndarray]:
    return {n: load_rgb(sample_photo(n)) for n in NAMES + UNRELATED}


@pytest.fixture(scope="module")
def fps(originals: dict[str, np.ndarray]) -> dict[str, DerivativeFingerprint]:
    return {n: derivative_from_pixels(rgb) for n, rgb in originals.items()}


def _doctor(
    rgb: np.ndarray, donor: np.ndarray, seed: int
) -> tuple[np.ndarray, np.ndarray, bool, float]:
    """A benign doctored copy: ~35% replaced (lower centre), rotated, cropped, flipped, JPEG."""
    rng = np.random.default_rng(seed)
    h, w = rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    region = ((xx - w / 2) / (0.4 * w)) ** 2 + ((yy - 0.95 * h) / (0.5 * h)) ** 2 <= 1
    frac = float(region.mean())
    fill = cv2.resize(donor, (w, h)).astype(np.float32)
    for c in range(3):  # colour-match the donor to the region
        f, r = fill[..., c][region], rgb[..., c][region].astype(np.float32)
        fill[..., c] = (fill[..., c] - f.mean()) * (r.std() / (f.std() + 1e-3)) + r.mean()
    alpha = cv2.GaussianBlur(region.astype(np.float32), (0, 0), 5)[..., None]
    img = (rgb * (1 - alpha) + np.clip(fill, 0, 255) * alpha).astype(np.uint8)
    deg = float(rng.uniform(4, 7))
    rot = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, 1.0), [0, 0, 1]])
    img = cv2.warpAffine(img, rot[:2], (w, h), borderMode=cv2.BORDER_REFLECT)
    left, top = int(0.12 * w), int(0.08 * h)
    cw, ch = int(0.78 * w), int(0.8 * h)
    img = img[top : top + ch, left : left + cw][:, ::-1]
    m = (
        np.array([[-1.0, 0, cw - 1], [0, 1, 0], [0, 0, 1]])
        @ np.array([[1.0, 0, -left], [0, 1, -top], [0, 0, 1]])
        @ rot
    )
    s = 0.7
    nw, nh = round(cw * s), round(ch * s)
    img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_AREA)
    m = (
        np.array([[nw / cw, 0, 0.5 * nw / cw - 0.5], [0, nh / ch, 0.5 * nh / ch - 0.5], [0, 0, 1]])
        @ m
    )
    ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    return load_rgb(enc.tobytes()), m, True, frac


def test_round_trip_and_size(fps: dict[str, DerivativeFingerprint]) -> None:
    for fp in fps.values():
        blob = fp.to_bytes()
        assert len(blob) == fp.size_bytes <= MAX_BYTES
        back = DerivativeFingerprint.from_bytes(blob)
        assert back == fp
        assert back.digest == fp.digest and len(back.digest) == 64
        np.testing.assert_array_equal(back.descriptors, fp.descriptors)
        np.testing.assert_allclose(back.points, fp.points)
        assert back.width == fp.width and back.height == fp.height


def test_from_file_matches_pixels(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    assert derivative_from_file(sample_photo("coffee.png")) == fps["coffee.png"]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b"",
        lambda b: b[:20],
        lambda b: b[:-1],
        lambda b: b + b"\0",
        lambda b: b"XXXX" + b[4:],
        lambda b: b[:4] + b"\x09" + b[5:],
        lambda b: b[:5] + b"\x07" + b[6:],
        lambda b: b[:6] + struct.pack("<H", 5000) + b[8:],
        lambda b: b[:8] + struct.pack("<I", 3) + b[12:],
        lambda b: b[:100] + bytes([b[100] ^ 1]) + b[101:],
        lambda b: b * 2,
    ],
)
def test_hostile_bytes_raise_clear_errors(fps: dict[str, DerivativeFingerprint], mutate) -> None:  # type: ignore[no-untyped-def]
    blob = fps["astronaut.png"].to_bytes()
    with pytest.raises(InvalidDerivativeError) as info:
        DerivativeFingerprint.from_bytes(mutate(blob))
    assert isinstance(info.value, InvalidHashError)
    assert isinstance(info.value, TakeBackError)
    assert info.value.message


def test_random_bytes_never_leak_other_errors() -> None:
    rng = np.random.default_rng(0)
    for n in (0, 10, 16, 24, 500, 14616, 20000):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        with pytest.raises(InvalidDerivativeError):
            DerivativeFingerprint.from_bytes(b"TBDF\x02\x02" + data)


def test_flat_and_tiny_images_have_no_derivative() -> None:
    with pytest.raises(TooLittleDetailError, match="too little detail"):
        derivative_from_pixels(np.full((300, 400, 3), 128, np.uint8))
    with pytest.raises(TooLittleDetailError, match="64 px"):
        derivative_from_pixels(np.zeros((40, 400, 3), np.uint8))


def _mapping_error(found: np.ndarray, true: np.ndarray, shape: tuple[int, ...]) -> float:
    """Largest distance, in suspect pixels, between where two original -> suspect
    matrices put three points of the original's upper half (what a copy keeps)."""
    h, w = shape[:2]
    pts = np.array([[w * 0.3, h * 0.25, 1], [w * 0.6, h * 0.3, 1], [w * 0.5, h * 0.5, 1]]).T
    a, b = found @ pts, true @ pts
    return float(np.abs(a[:2] / a[2] - b[:2] / b[2]).max())


@pytest.mark.parametrize("name", NAMES)
def test_doctored_copy_is_verified_with_its_transform(
    name: str, originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    donor = load_rgb(sample_photo(UNREGISTERED_PHOTO))
    suspect, true_m, mirrored, frac = _doctor(originals[name], donor, seed=1)
    assert 0.3 <= frac <= 0.4
    match = verify_derivative(suspect, fps[name])
    assert match.matched and match.mirrored is mirrored
    assert match.matrix is not None
    err = _mapping_error(match.matrix, true_m, originals[name].shape)
    assert err < 0.02 * max(suspect.shape[:2]), err
    assert 0.8 <= match.coverage <= 1.0
    assert set(match.to_dict()) >= {"score", "matrix", "mirrored", "inliers", "coverage"}
    # the inliers' box, and within it their core (an eighth left out each side)
    assert match.region is not None and match.core is not None
    (x0, y0, x1, y1), (c0, d0, c1, d1) = match.region, match.core
    assert x0 <= c0 < c1 <= x1 and y0 <= d0 < d1 <= y1
    assert (c1 - c0) * (d1 - d0) < (x1 - x0) * (y1 - y0)


def test_unrelated_photos_do_not_match(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    for a in NAMES + UNRELATED:
        feats = suspect_features(originals[a])
        for b in NAMES + UNRELATED:
            match = verify_derivative(feats, fps[b])
            assert match.matched is (a == b), (a, b, match.inliers)


def test_index_agrees_with_brute_force(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    with DerivativeIndex() as index:
        for n, fp in fps.items():
            index.add(n, fp)
        for i, name in enumerate(NAMES):
            suspect, *_ = _doctor(
                originals[name], load_rgb(sample_photo(UNREGISTERED_PHOTO)), seed=2 + i
            )
            fast = [k for k, _ in index.search(suspect)]
            slow = [k for k, _ in index.search(suspect, exhaustive=True)]
            assert fast[:1] == slow[:1] == [name]
            # vote buffers too small for the query's votes are grown, same candidates
            feats = suspect_features(suspect)
            want = index.candidates(feats)
            index._votes, index._feats = np.zeros(8, np.int64), np.zeros(8, np.uint16)
            index._grouped = np.zeros(8, np.int64)
            assert index.candidates(feats) == want and len(index._votes) > 8
    index.close()  # idempotent


def test_a_suspect_with_few_features_gets_more_candidates(
    originals: dict[str, np.ndarray],
    fps: dict[str, DerivativeFingerprint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A blurred doctored copy stands for a small or smooth suspect: few
    # features, each less sure of its word. Retrieval looks further for it (a
    # second coarse cell, SMALL_EFFORT times the candidates), and finds it.
    from takeback.fingerprint import derivative_index
    from takeback.fingerprint.derivative_index import SMALL_EFFORT, SMALL_SUSPECT

    donor = load_rgb(sample_photo(UNREGISTERED_PHOTO))
    suspect, *_ = _doctor(originals["astronaut.png"], donor, seed=1)
    full = suspect_features(suspect)
    blurred = cv2.GaussianBlur(suspect, (0, 0), 4)
    small = suspect_features(blurred)
    assert len(small) < SMALL_SUSPECT <= len(full)
    with DerivativeIndex() as index:
        for n, fp in fps.items():
            index.add(n, fp)
        others = {n: rgb for n, rgb in originals.items() if n != "astronaut.png"}
        for n, rgb in others.items():  # their quarters too: more candidates
            h, w = (side // 2 for side in rgb.shape[:2])
            for q, (top, left) in enumerate([(0, 0), (0, w), (h, 0), (h, w)]):
                quarter = rgb[top : top + h, left : left + w]
                index.add(f"{n}:{q}", derivative_from_pixels(quarter))
        assert len(index.candidates(full, 2)) == 2
        more = index.candidates(small, 2)
        assert 2 < len(more) <= 2 * SMALL_EFFORT
        assert [k for k, _ in index.search(blurred)] == ["astronaut.png"]
        # without the effort: two candidates, the same first
        monkeypatch.setattr(derivative_index, "SMALL_SUSPECT", 0)
        plain = index.candidates(small, 2)
        assert len(plain) == 2 and plain[0][:2] == more[0][:2]


def test_candidates_past_the_first_k_need_one_inlier_more(
    originals: dict[str, np.ndarray],
    fps: dict[str, DerivativeFingerprint],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small suspect's extra candidates keep a query's chance of a false
    # match under its first 5 verifications': past the first k, a match needs
    # EXTRA_INLIERS more inliers than the decision (7, not 6). The astronaut
    # is registered twice, whole and cropped, so that a blurred doctored copy
    # matches both, one of them past k=1.
    from takeback.fingerprint import derivative_index
    from takeback.fingerprint.derivative import DECISION_SCORE, score_of_inliers
    from takeback.fingerprint.derivative_index import EXTRA_INLIERS, SMALL_SUSPECT

    decision = next(n for n in range(64) if score_of_inliers(n) >= DECISION_SCORE)
    assert (decision, decision + EXTRA_INLIERS) == (6, 7)
    donor = load_rgb(sample_photo(UNREGISTERED_PHOTO))
    suspect, *_ = _doctor(originals["astronaut.png"], donor, seed=1)
    small = suspect_features(cv2.GaussianBlur(suspect, (0, 0), 4))
    assert len(small) < SMALL_SUSPECT
    with DerivativeIndex() as index:
        for n, fp in fps.items():
            index.add(n, fp)
        index.add("astronaut crop", derivative_from_pixels(originals["astronaut.png"][30:, 20:]))
        both = {k for k, _ in index.search(small, exhaustive=True)}
        assert both == {"astronaut.png", "astronaut crop"}
        assert {k for k, _ in index.search(small, k=1)} == both  # both well past 7 inliers
        assert {k for k, _ in index.search(small, k=2)} == both
        # an extra candidate that would need more inliers than it has is dropped
        monkeypatch.setattr(derivative_index, "EXTRA_INLIERS", 64)
        assert len({k for k, _ in index.search(small, k=1)} & both) == 1
        assert {k for k, _ in index.search(small, k=2)} == both  # no extras there


def test_removed_photos_are_never_returned(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    with DerivativeIndex() as index:
        for n, fp in fps.items():
            index.add(n, fp)
        suspect = originals["coffee.png"][40:, ::-1]
        assert [k for k, _ in index.search(suspect)] == ["coffee.png"]
        assert index.remove("coffee.png") and "coffee.png" not in index
        assert not index.remove("coffee.png")
        assert index.search(suspect) == [] and len(index) == len(fps) - 1
        index.add("coffee.png", fps["coffee.png"])  # withdrawn, then registered again
        assert [k for k, _ in index.search(suspect)] == ["coffee.png"]


def test_a_collage_of_two_registered_photos_reports_both(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    a = cv2.resize(originals["astronaut.png"], (400, 400), interpolation=cv2.INTER_AREA)
    b = cv2.resize(originals["chelsea.png"], (600, 400), interpolation=cv2.INTER_AREA)
    collage = np.hstack([a, b[:, ::-1]])
    with DerivativeIndex() as index:
        for n, fp in fps.items():
            index.add(n, fp)
        found = {k: m for k, m in index.search(collage)}
    assert set(found) == {"astronaut.png", "chelsea.png"}
    assert found["chelsea.png"].mirrored and not found["astronaut.png"].mirrored
    assert 0.35 < found["astronaut.png"].coverage < 0.45


def _captioned(rgb: np.ndarray, text: str) -> np.ndarray:
    h, w = rgb.shape[:2]
    bar = np.full((h // 8, w, 3), 235, np.uint8)
    cv2.putText(bar, text, (w // 30, h // 12), cv2.FONT_HERSHEY_SIMPLEX, h / 400, (0, 0, 0), 2)
    return np.vstack([bar, rgb])


def test_a_shared_caption_is_not_a_match(originals: dict[str, np.ndarray]) -> None:
    text = "@takeback_test #repost"
    registered = derivative_from_pixels(_captioned(originals["rocket.jpg"], text))
    suspect = _captioned(originals["camera.png"], text)
    assert not verify_derivative(suspect, registered).matched
    assert verify_derivative(_captioned(originals["rocket.jpg"], "@other"), registered).matched


def test_a_small_patch_two_photos_share_is_not_a_match(originals: dict[str, np.ndarray]) -> None:
    # The same 48-px piece of a real gravel photo (a sticker, a sign: 7% of the
    # rocket photo's long side) in two unrelated photos. Its features agree on
    # one transform (8 inliers), but all within a patch some 20 px across at
    # working size: that is not the scene.
    gravel = load_rgb(sample_photo("gravel.png"))
    h, w = gravel.shape[:2]
    patch = gravel[h // 2 : h // 2 + 48, w // 5 : w // 5 + 48]
    registered_photo = originals["rocket.jpg"].copy()
    registered_photo[120:168, 350:398] = patch
    suspect = originals["camera.png"].copy()
    suspect[300:348, 150:198] = patch
    registered = derivative_from_pixels(registered_photo)
    match = verify_derivative(suspect, registered)
    assert not match.matched and match.inliers <= 3
    assert verify_derivative(registered_photo[20:, ::-1], registered).matched


def test_a_watermark_along_the_edge_of_two_photos_is_not_a_match(
    originals: dict[str, np.ndarray],
) -> None:
    # Two lines of a forum's watermark written over the bottom of two unrelated
    # photos: no bar for edge_bands to find, two lines too far apart for a
    # strip. Their glyphs agree on one transform (7 inliers), all in the
    # bottom tenth of both frames.
    def watermarked(rgb: np.ndarray) -> np.ndarray:
        out = rgb.copy()
        h, w = out.shape[:2]
        for k, text in enumerate(("posted by @takeback_test", "www.example-forum.net")):
            at = (w // 30, int(h * (0.945 + 0.04 * k)))
            font, white = cv2.FONT_HERSHEY_SIMPLEX, (255, 255, 255)
            cv2.putText(out, text, at, font, w / 1280, white, 2, cv2.LINE_AA)
        return out

    registered = derivative_from_pixels(watermarked(originals["rocket.jpg"]))
    match = verify_derivative(watermarked(originals["camera.png"]), registered)
    assert not match.matched and match.inliers <= 3
    assert verify_derivative(watermarked(originals["rocket.jpg"])[10:, ::-1], registered).matched


def _badge_place(shape: tuple[int, ...], width: float, centre: bool) -> tuple[int, int, int, int]:
    """Where :func:`_stamped` puts its badge on an image of ``shape``: top, left,
    height and width in pixels."""
    h, w = shape[:2]
    bw = int(w * width)
    bh = round(bw * 120 / 520)
    y, x = ((h - bh) // 2, (w - bw) // 2) if centre else (h // 30, w - bw - w // 30)
    return y, x, bh, bw


def _stamped(rgb: np.ndarray, width: float, centre: bool) -> np.ndarray:
    """``rgb`` with a reposting site's badge (its name beside a ringed star) at
    ``width`` of the photo's width, in the middle or near the top right corner."""
    badge = np.full((120, 520, 3), 250, np.uint8)
    cv2.circle(badge, (65, 60), 40, (30, 30, 30), 5)
    t = np.linspace(-np.pi / 2, 3.5 * np.pi, 10, endpoint=False)
    r = np.where(np.arange(10) % 2 == 0, 32, 13)
    cv2.fillPoly(badge, [np.stack([65 + r * np.cos(t), 60 + r * np.sin(t)], 1).astype(np.int32)],
                 (30, 30, 30))  # fmt: skip
    cv2.putText(badge, "@repost_hub", (118, 74), cv2.FONT_HERSHEY_DUPLEX, 1.15, (30, 30, 30), 2,
                cv2.LINE_AA)  # fmt: skip
    out = rgb.copy()
    y, x, bh, bw = _badge_place(out.shape, width, centre)
    out[y : y + bh, x : x + bw] = cv2.resize(badge, (bw, bh), interpolation=cv2.INTER_AREA)
    return out


def test_a_site_badge_stamped_on_two_photos_is_not_a_match(
    originals: dict[str, np.ndarray],
) -> None:
    # A reposting site's badge (30 % of the width) stamped in the middle of one
    # photo and near a corner of an unrelated one: no edge, no strip, larger
    # than a sign. Its features agree on one transform (11 inliers, a match
    # without MIN_BOX_SHARE), all within a box covering under 2.5 % of the
    # suspect: that is not the scene. The badge does not stop a doctored copy
    # of the registered photo from matching it.
    registered_photo = _stamped(originals["rocket.jpg"], 0.3, centre=True)
    registered = derivative_from_pixels(registered_photo)
    match = verify_derivative(_stamped(originals["chelsea.png"], 0.3, centre=False), registered)
    assert not match.matched and match.inliers <= 3
    copy, *_ = _doctor(registered_photo, originals["coffee.png"], seed=4)
    assert verify_derivative(_stamped(copy, 0.3, centre=False), registered).matched


def test_a_badge_group_does_not_hide_the_scene_behind_it(
    originals: dict[str, np.ndarray],
) -> None:
    # The registered photo carries a site's badge and so does its doctored
    # copy (mirrored), reposted small and stamped again near a corner. In
    # the mirrored orientation the second badge's star, whose points look
    # alike, gathers more votes for its transform than the scene does; the
    # badge rule caps that group at 3, and the unmirrored orientation's
    # badge group too. The verification then finds the scene's own
    # transform among the correspondences left, and it matches.
    registered_photo = _stamped(originals["rocket.jpg"], 0.3, centre=True)
    registered = derivative_from_pixels(registered_photo)
    copy, truth, mirrored, _ = _doctor(registered_photo, originals["coffee.png"], seed=3)
    h, w = copy.shape[:2]
    nw, nh = round(w * 0.6), round(h * 0.6)
    small = cv2.resize(copy, (nw, nh), interpolation=cv2.INTER_AREA)
    match = verify_derivative(_stamped(small, 0.3, centre=False), registered)
    assert match.matched and match.mirrored == mirrored
    assert match.group == match.inliers  # reported: the scene's group, not a capped one
    top, _, badge_h, _ = _badge_place(small.shape, 0.3, centre=False)
    badge_bottom = top + badge_h
    assert match.core is not None and match.core[1] > badge_bottom
    assert match.matrix is not None
    err = _mapping_error(match.matrix, scale_matrix(nw / w, nh / h) @ truth, registered_photo.shape)
    assert err < 0.02 * max(nw, nh), err


def test_a_large_badge_two_registered_photos_share_is_not_a_match(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    # A badge over 60 % of the width covers more than MIN_BOX_SHARE of the
    # suspect, and an unregistered photo stamped with it near a corner matches
    # each of three unrelated registered photos stamped with it in the middle,
    # one by one. The index sees them match in the same small part of the
    # suspect, and the photos do not match each other beyond the badge: shared
    # content, not a copy of any. Two of them are 512 x 512, so their frames
    # land in the same place on the suspect, as two registrations of one
    # photo's would. A doctored copy of one of them still finds it.
    rocket = _stamped(originals["rocket.jpg"], 0.6, centre=True)
    stamped = {
        "rocket": derivative_from_pixels(rocket),
        "astronaut": derivative_from_pixels(_stamped(originals["astronaut.png"], 0.6, centre=True)),
        "moon": derivative_from_pixels(
            _stamped(load_rgb(sample_photo("moon.png")), 0.6, centre=True)
        ),
    }
    suspect = _stamped(originals["motorcycle_left.png"], 0.6, centre=False)
    one_by_one = {k: verify_derivative(suspect, fp) for k, fp in stamped.items()}
    assert all(m.matched for m in one_by_one.values()), {
        k: m.inliers for k, m in one_by_one.items()
    }
    with DerivativeIndex() as index:
        for name in NAMES:
            index.add(name, fps[name])
        for key, fp in stamped.items():
            index.add(key, fp)
        assert index.search(suspect) == []
        assert index.search(suspect, exhaustive=True) == []
        copy, *_ = _doctor(rocket, load_rgb(sample_photo(UNREGISTERED_PHOTO)), seed=4)
        assert [k for k, _ in index.search(copy)] == ["rocket"]
    with DerivativeIndex() as index:  # the two whose frames land alike, alone
        for key in ("astronaut", "moon"):
            index.add(key, stamped[key])
        assert index.search(suspect) == []


def _match(
    region: tuple[float, float, float, float],
    group: int = 12,
    *,
    capped: bool = False,
    mirrored: bool = False,
    core: tuple[float, float, float, float] | None = None,
) -> DerivativeMatch:
    """A verification with ``group`` inliers in ``region`` of a 400 x 300 suspect
    (a match unless ``capped``: the rules for shared content held it at 3),
    ``core`` of them without strays (``region`` by default)."""
    m = np.array([[0.5, 0, 0], [0, 0.5, 0], [0, 0, 1]])
    inliers = min(group, 3) if capped else group
    score = score_of_inliers(inliers)
    return DerivativeMatch(
        score, score >= 0.8, 0.8, m, mirrored, inliers, 40, 0.25, region, group,
        core=region if core is None else core,
    )  # fmt: skip


def test_shared_content_is_the_same_small_place_in_photos_of_different_scenes(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    # Suspect 400 x 300 (a tenth of it: 12,000 px^2).
    small, alike, large = (
        (10.0, 10.0, 90.0, 60.0),
        (15.0, 12.0, 92.0, 62.0),
        (10.0, 10.0, 210.0, 160.0),
    )
    two = [fps["rocket.jpg"], fps["chelsea.png"]]
    assert shared_content([_match(small), _match(alike)], two, 400, 300).tolist() == [True, True]
    # a group the rules capped at 3 still witnesses that the content is shared
    witness = [_match(small), _match(alike, capped=True)]
    assert shared_content(witness, two, 400, 300).tolist() == [True, True]
    # a badge's group that a stray inlier in the scene widened is compared
    # by its core: still the badge
    widened = [_match(large, 9, core=small), _match(alike, capped=True)]
    assert shared_content(widened, two, 400, 300).tolist() == [True, True]
    # but a group under the decision that no rule capped, or two witnesses
    # alone, do not
    for pair in ([_match(small), _match(alike, 5)],
                 [_match(small, capped=True), _match(alike, capped=True)]):  # fmt: skip
        assert shared_content(pair, two, 400, 300).tolist() == [False, False]
    # the same photo registered twice, or a photo and a crop of it: they match
    # each other, so what matched is what is left of their scene
    rocket = originals["rocket.jpg"]
    crop = derivative_from_pixels(rocket[: rocket.shape[0] // 2, rocket.shape[1] // 3 :])
    for same in ([fps["rocket.jpg"]] * 2, [fps["rocket.jpg"], crop], [crop, fps["rocket.jpg"]]):
        assert shared_content([_match(small), _match(alike)], same, 400, 300).tolist() == [
            False, False,
        ]  # fmt: skip
    # a photo whose detail is one small object on a plain ground, registered
    # as it is and resized: they match each other on that object only, with
    # most of the features that land in the other's frame
    ground = np.full((900, 1200, 3), 128, np.uint8)
    ground[300:552, 500:836] = cv2.resize(rocket, (336, 252), interpolation=cv2.INTER_AREA)
    half = cv2.resize(ground, None, fx=0.6, fy=0.6, interpolation=cv2.INTER_AREA)
    twice = [derivative_from_pixels(ground), derivative_from_pixels(half)]
    assert shared_content([_match(small), _match(alike)], twice, 400, 300).tolist() == [
        False, False,
    ]  # fmt: skip
    ok, enc = cv2.imencode(".jpg", ground[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    with DerivativeIndex() as index:
        index.add("as it is", twice[0])
        index.add("resized", twice[1])
        found = index.search(load_rgb(enc.tobytes()))
        assert sorted(k for k, _ in found) == ["as it is", "resized"]
        boxes = [m.region for _, m in found]
        # each in a small part of the suspect: the rule was asked, and kept both
        assert all(
            r is not None and (r[2] - r[0]) * (r[3] - r[1]) < 0.1 * 1200 * 900 for r in boxes
        )
    # a badge's group can hold part of the badge only (its lettering, say):
    # a small group inside another is alike too
    part = [_match((10.0, 10.0, 120.0, 90.0)), _match((20.0, 20.0, 60.0, 40.0), capped=True)]
    assert shared_content(part, two, 400, 300).tolist() == [True, True]
    # what is left of a scene covers more than SHARED_BOX; a collage, other
    # places; groups that barely touch are not alike; nor is a mirror image
    for pair in (
        [_match(large), _match(large)],
        [_match(small), _match((200.0, 150.0, 280.0, 200.0))],
        [_match(small), _match((70.0, 40.0, 150.0, 90.0))],
        [_match(small), _match(alike, mirrored=True)],
    ):
        assert shared_content(pair, two, 400, 300).tolist() == [False, False]
    assert shared_content([_match(small)], two[:1], 400, 300).tolist() == [False]


def test_a_reduced_decode_is_stored_in_full_size_pixels(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    rgb = originals["astronaut.png"]
    half = cv2.resize(rgb, (256, 256), interpolation=cv2.INTER_AREA)
    fp = derivative_from_pixels(half, size=(512, 512))
    assert (fp.width, fp.height) == (512, 512)
    match = verify_derivative(rgb[::-1][::-1, ::-1], fp)  # the photo mirrored
    assert match.matched and match.mirrored and match.matrix is not None
    corner = match.matrix @ np.array([100.0, 50.0, 1.0])
    assert np.allclose(corner[:2], [511 - 100, 50], atol=2.0)


def test_borders_and_caption_bars_are_found_and_photos_left_alone(
    originals: dict[str, np.ndarray],
) -> None:
    from takeback.fingerprint.derivative import edge_bands

    grey = cv2.cvtColor(originals["astronaut.png"], cv2.COLOR_RGB2GRAY)
    assert not edge_bands(grey).any()
    framed = cv2.copyMakeBorder(grey, 20, 20, 20, 20, cv2.BORDER_CONSTANT, value=250)
    captioned = cv2.cvtColor(
        _captioned(cv2.cvtColor(framed, cv2.COLOR_GRAY2RGB), "@someone #repost"), cv2.COLOR_RGB2GRAY
    )
    mask = edge_bands(captioned)
    bar = captioned.shape[0] - framed.shape[0]
    assert mask[: bar + 20].mean() > 0.95 and mask[-20:].all()
    assert mask[bar:, :20].all() and mask[bar:, -20:].all()
    assert not mask[bar + 40 : -40, 40:-40].any()


def _reference_edge_bands(grey: np.ndarray) -> np.ndarray:
    """The band search of :func:`edge_bands` in plain numpy, side by side as
    the docstring tells it (rotated views of the image and the mask)."""
    from takeback.fingerprint import derivative as dv

    def band_end(s: np.ndarray, m: np.ndarray, depth: int, limit: int) -> int | None:
        if limit <= depth:
            return None
        lines, free = s[depth:limit], ~m[depth:limit]
        count = np.maximum(free.sum(axis=1), 1)
        levels = np.array(
            [np.median(ln[f]) if f.any() else 32767.0 for ln, f in zip(lines, free, strict=True)]
        )
        own = (np.abs(lines - levels[:, None]) <= dv._BAND_TOL) & free
        uniform = np.flatnonzero(own.sum(axis=1) >= dv._BAND_UNIFORM * count)
        if len(uniform) == 0:
            return None
        first = int(uniform[0])
        near = (np.abs(lines - levels[first]) <= dv._BAND_TOL) & free
        keeps = near.sum(axis=1) >= dv._BAND_KEEP * count
        if not keeps[:first].all():
            return None
        misses, end = 0, first + 1
        for i in range(first + 1, len(keeps)):
            if keeps[i]:
                end, misses = i + 1, 0
            elif (misses := misses + 1) > 4:
                break
        return depth + end if end >= 2 else None

    def caption_end(s: np.ndarray, m: np.ndarray, depth: int, limit: int) -> int | None:
        if limit - depth < 4 or not (free0 := ~m[depth]).any():
            return None
        lines, free = s[depth:limit], ~m[depth:limit]
        level = np.median(lines[0][free0])
        count = np.maximum(free.sum(axis=1), 1)
        keep = ((np.abs(lines - level) <= dv._CAPTION_TOL) & free).sum(axis=1) / count
        gone = np.flatnonzero(keep < dv._CAPTION_GONE)
        if len(gone) == 0 or gone[0] < 3:
            return None
        end = int(gone[0])
        if (keep[: end - 2].min() < dv._CAPTION_KEEP
                or keep[max(0, end - 4) : end].max() < dv._CAPTION_MARGIN):  # fmt: skip
            return None
        return depth + end

    mask = np.zeros(grey.shape, bool)
    g = grey.astype(np.int16)
    for side in (0, 2, 1, 3):
        s, m = np.rot90(g, side), np.rot90(mask, side)  # m is a view: it writes mask
        limit, depth = int(s.shape[0] * dv._BAND_MAX), 0
        for _ in range(3):
            end = band_end(s, m, depth, limit)
            end = caption_end(s, m, depth, limit) if end is None else end
            if end is None:
                break
            m[:end] = True
            depth = end
    return mask


def test_the_compiled_band_search_is_the_plain_one(originals: dict[str, np.ndarray]) -> None:
    # Real photos with borders and caption bars (stacked, on two sides, dark
    # and light), shrunk and re-encoded as forums do, and pictures with none.
    from takeback.fingerprint.derivative import edge_bands

    rng = np.random.default_rng(5)
    cases = []
    for n, rgb in originals.items():
        framed = cv2.copyMakeBorder(rgb, 12, 12, 30, 30, cv2.BORDER_CONSTANT, value=(20, 20, 20))
        for img in (rgb, framed, _captioned(rgb, "@someone #repost"),
                    _captioned(framed, "look at this")[::-1]):  # fmt: skip
            for f in (1.0, 0.5, 0.3):
                small = cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)
                q = int(rng.integers(55, 91))
                ok, enc = cv2.imencode(".png" if f == 1 else ".jpg", small,
                                       [cv2.IMWRITE_JPEG_QUALITY, q])  # fmt: skip
                assert ok, n
                cases.append(cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE))
    cases += [np.full((64, 64), 200, np.uint8), rng.integers(0, 256, (70, 300), dtype=np.uint8)]
    found = 0
    for grey in cases:
        mask = edge_bands(grey)
        assert np.array_equal(mask, _reference_edge_bands(grey))
        found += bool(mask.any())
    assert found > len(cases) // 2


def test_a_caption_bar_is_found_when_its_text_reaches_the_edge(
    originals: dict[str, np.ndarray],
) -> None:
    # A bottom caption whose descenders come within a pixel of the edge, shrunk
    # and re-encoded as forums do: no uniform line along the edge itself.
    from takeback.fingerprint.derivative import edge_bands

    rgb = originals["coffee.png"]
    h, w = rgb.shape[:2]
    bar = np.full((40, w, 3), 235, np.uint8)
    cv2.putText(bar, "@gypjq #repost", (8, 30), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 2)
    img = cv2.resize(np.vstack([rgb, bar]), (w // 2, (h + 40) // 2), interpolation=cv2.INTER_AREA)
    ok, enc = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 70])
    assert ok
    grey = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE)
    mask = edge_bands(grey)
    assert mask[-18:].mean() > 0.95
    assert not mask[20 : h // 2 - 10, 20:-20].any()


def test_words_are_the_nearest_centres_and_signatures_their_sides(
    originals: dict[str, np.ndarray],
) -> None:
    # A suspect's features, as-is and mirrored: each goes to its nearest coarse
    # cell, then to the two nearest fine words in it, nearest first (worked out
    # here in float64, so only near-ties may differ); each signature bit says on
    # which side of the word's centre the descriptor lies along that axis.
    from takeback.fingerprint.derivative import model
    from takeback.fingerprint.derivative_index import PROBE_BITS, PROBE_MARGIN, assign_words

    m = model()
    feats = suspect_features(originals["astronaut.png"])
    y = np.concatenate(feats.descriptors).astype(np.float64)
    words, sigs, rows, sure = assign_words(np.concatenate(feats.descriptors), nearest=2)
    assert np.array_equal(rows, np.repeat(np.arange(len(y)), 2))
    c2 = ((y[:, None, :] - m.coarse[None]) ** 2).sum(2)
    cells = c2.argmin(1)
    d2 = ((y[:, None, :] - m.fine[cells].astype(np.float64)) ** 2).sum(2)
    want = np.argsort(d2, axis=1, kind="stable")[:, :2]

    def gap(d: np.ndarray, n: int) -> np.ndarray:
        return np.diff(np.sort(d, axis=1)[:, : n + 1], axis=1).min(axis=1)

    clear = (gap(c2, 1) > 1e-4) & (gap(d2, 2) > 1e-4)
    assert clear.mean() > 0.95
    got = words.reshape(-1, 2)
    nfine = m.fine.shape[1]
    assert np.array_equal((got // nfine)[clear], np.stack([cells, cells], 1)[clear])
    assert np.array_equal((got % nfine)[clear], want[clear])
    centre = m.fine[got // nfine, got % nfine]  # (L, 2, 32)
    side = (y[:, None, :] > centre).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    assert np.array_equal(sigs.reshape(-1, 2), side.sum(axis=2).astype(np.uint32))
    # sure bits: the first PROBE_BITS axes on which the descriptor lies further
    # than PROBE_MARGIN spreads from the word's centre
    off = np.abs(y[:, None, :PROBE_BITS] - centre[..., :PROBE_BITS]) / m.spread[:PROBE_BITS]
    far = (off > PROBE_MARGIN).astype(np.uint8) << np.arange(PROBE_BITS, dtype=np.uint8)
    clear = np.abs(off - PROBE_MARGIN).min(axis=(1, 2)) > 1e-4
    assert clear.mean() > 0.95
    assert np.array_equal(sure.reshape(-1, 2)[clear], far.sum(axis=2, dtype=np.uint8)[clear])
    assert (sure > 0).any() and not (sure > 0).all()
    # a second coarse cell: the same words first, then each descriptor's
    # nearest word under its second-nearest coarse centre
    more = assign_words(np.concatenate(feats.descriptors), nearest=2, second_cell=True)
    n = len(words)
    for got_field, want_field in zip(more, (words, sigs, rows, sure), strict=True):
        assert np.array_equal(got_field[:n], want_field)
    assert np.array_equal(more.rows[n:], np.arange(len(y)))
    second = np.argsort(c2, axis=1, kind="stable")[:, 1]
    d2 = ((y[:, None, :] - m.fine[second].astype(np.float64)) ** 2).sum(2)
    clear = (gap(c2, 2) > 1e-4) & (gap(d2, 1) > 1e-4)
    assert clear.mean() > 0.95
    nearest = d2.argmin(axis=1)
    assert np.array_equal(more.words[n:][clear], (second * nfine + nearest)[clear])
    side = (y > m.fine[second, nearest]).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    assert np.array_equal(more.signatures[n:][clear], side.sum(axis=1).astype(np.uint32)[clear])


def test_tentative_matches_are_lowes_ratio_test(
    originals: dict[str, np.ndarray], fps: dict[str, DerivativeFingerprint]
) -> None:
    # Against a float64 brute force: each registered feature's nearest suspect
    # feature, kept when it is under 0.9 x the second nearest (near-ties aside).
    from takeback.fingerprint.derivative import RATIO, _registered, tentative_matches

    reg = _registered(fps["coffee.png"]).desc
    for name in ("coffee.png", "astronaut.png"):
        sus = suspect_features(originals[name][30:, ::-1]).descriptors[1]
        d = np.sqrt(((reg[:, None, :].astype(np.float64) - sus[None]) ** 2).sum(2))
        order = np.argsort(d, axis=1)
        first, second = np.take_along_axis(d, order[:, :2], axis=1).T
        clear = np.abs(first - RATIO * second) > 1e-5 * second
        src, dst = tentative_matches(reg, sus)
        got = np.zeros(len(reg), bool)
        got[src] = True
        assert np.array_equal(got[clear], (first < RATIO * second)[clear])
        assert np.array_equal(dst, order[src, 0])
    assert len(tentative_matches(reg, sus[:1])[0]) == 0  # no second nearest


def test_votes_either_side_of_zero_rotation_count_together() -> None:
    # A copy turned by a degree or two votes into the first and the last
    # rotation bins; the two are neighbours and must add up.
    from takeback.fingerprint.derivative_index import PROBE_BITS, _pack, _vote

    angles = np.array([2, 250, 3, 253], np.uint8)  # rotation bins 0, 15, 0, 15 against 0
    meta = _pack(np.zeros(4, np.uint32), np.arange(4, dtype=np.uint16), angles,
                 np.full(4, 20, np.uint8))  # fmt: skip
    touched, scores, starts = np.zeros(1, np.int64), np.zeros(1, np.float32), np.zeros(2, np.int64)
    offsets = np.full((1 << PROBE_BITS) + 1, 4, np.int64)  # one word, all in its first run
    offsets[0] = 0
    n = _vote(
        offsets, np.zeros(4, np.uint32), meta, np.zeros(1, np.int32),
        np.zeros(1, np.uint32), np.full(1, 0xFF, np.uint8), np.zeros(1, np.uint8),
        np.full(1, 20, np.uint8),
        np.ones(1, np.float32), np.ones(1, np.bool_), 9, np.zeros(1, np.int32), touched,
        scores, starts, np.zeros(8, np.int64), np.zeros(8, np.uint16), np.zeros(8, np.int64),
    )  # fmt: skip
    assert n == 1 and starts.tolist() == [0, 4]
    assert scores[0] == 4.0


def test_the_shortlist_counts_each_place_once() -> None:
    # A busy photo offers several word correspondences at one place (a suspect
    # feature's second word, SIFT's extra orientations); the re-rank counts
    # them once, as the verification counts inliers, so such a photo cannot
    # outrank a copy's original on repeats alone.
    from takeback.fingerprint._consensus import agreement

    rng = np.random.default_rng(3)
    spread = rng.uniform(20, 300, (5, 2))  # a copy: 5 places, identity transform
    busy = np.repeat(rng.uniform(20, 300, (2, 2)), 6, axis=0)  # 2 places, 6 times each
    # one suspect feature matched by 3 registered ones a pixel apart, all agreeing
    fan = np.array([[100.0, 100], [100.8, 100], [99.3, 100.6]])
    reg = np.concatenate([spread, busy, fan])
    sus = np.concatenate([spread, busy, np.tile(fan[0], (3, 1))])
    n = len(reg)
    bounds = np.array([0, 5, 17, 20])
    out = np.zeros(3, np.int64)
    ones, zeros = np.full(n, 4.0), np.zeros(n)
    agreement(bounds, reg, ones, zeros, sus, ones, zeros, 3.0, 0.4, 15.0, out)
    assert out.tolist() == [5, 2, 1]


@settings(max_examples=40, deadline=None)
@given(
    turn=st.floats(-180, 180),
    scale=st.floats(0.3, 3.0),
    shift=st.tuples(st.floats(-200, 200), st.floats(-200, 200)),
    seed=st.integers(0, 2**16),
)
def test_the_verification_recovers_the_transform_and_counts_each_place_once(
    turn: float, scale: float, shift: tuple[float, float], seed: int
) -> None:
    # 25 correspondences of a repost (any rotation, scale and shift), one of
    # them repeated, among 25 unrelated ones: the consensus finds the repost's
    # transform and counts its 25 places once each.
    from takeback.fingerprint.derivative import consensus

    rng = np.random.default_rng(seed)
    c, s = scale * np.cos(np.radians(turn)), scale * np.sin(np.radians(turn))
    true = np.array([[c, -s, shift[0]], [s, c, shift[1]]])
    # one place in each cell of a 5 x 5 grid of 64 px: at least 32 px apart
    rp = np.argwhere(np.ones((5, 5))) * 64.0 + rng.uniform(0, 32, (25, 2))
    sp = rp @ true[:, :2].T + true[:, 2]
    rs = rng.uniform(2, 12, 25)
    ra = rng.uniform(0, 360, 25)
    ss, sa = rs * scale, (ra + turn) % 360
    noise = (rng.uniform(0, 320, (25, 2)), rng.uniform(2, 12, 25), rng.uniform(0, 360, 25))
    rp, rs, ra = (np.concatenate([a, a[:1], b]) for a, b in zip((rp, rs, ra), noise, strict=True))
    noise = (rng.uniform(0, 320, (25, 2)), rng.uniform(2, 12, 25), rng.uniform(0, 360, 25))
    sp, ss, sa = (np.concatenate([a, a[:1], b]) for a, b in zip((sp, ss, sa), noise, strict=True))
    inliers, matrix = consensus(rp, rs, ra, sp, ss, sa)
    assert matrix is not None
    assert np.allclose(matrix[:, :2], true[:, :2], atol=1e-3 * scale)
    assert np.allclose(matrix[:, 2], true[:, 2], atol=1e-2)
    assert inliers[:25].all() and not inliers[25]  # the repeat is one place
    assert inliers[26:].sum() <= 2  # an unrelated pair may fall on the transform by chance


def _reference_one_to_one(inl: np.ndarray, rp: np.ndarray, sp: np.ndarray) -> np.ndarray:
    """The first inlier per suspect place, then of those the first per registered
    place, positions rounded to 0.01: in numpy, as the verification counted them
    before the rule was compiled."""
    idx = np.flatnonzero(inl)
    if len(idx) == 0:
        return inl
    _, first_s = np.unique(np.round(sp[idx], 2), axis=0, return_index=True)
    idx = idx[np.sort(first_s)]
    _, first_r = np.unique(np.round(rp[idx], 2), axis=0, return_index=True)
    out = np.zeros_like(inl)
    out[idx[first_r]] = True
    return out


@settings(max_examples=200, deadline=None)
@given(
    places=st.integers(1, 6),
    picks=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 5), st.booleans()), min_size=0, max_size=40
    ),
    where=st.sampled_from(["anywhere", "half a step from a boundary", "on a tie"]),
    nudge=st.sampled_from([0.0, 1e-9, 0.004, 0.005, 0.006, 0.0149, -0.005, 0.02]),
    seed=st.integers(0, 2**16),
)
def test_inliers_keep_each_place_once(
    places: int, picks: list[tuple[int, int, bool]], where: str, nudge: float, seed: int
) -> None:
    # SIFT's extra orientations put several features at one position; the
    # verification counts each registered and each suspect place once.
    from takeback.fingerprint._consensus import one_to_one

    rng = np.random.default_rng(seed)
    reg_places, sus_places = rng.uniform(-0.5, 320, (2, places, 2))
    if where == "half a step from a boundary":
        reg_places, sus_places = np.round(reg_places, 2) + 0.005, np.round(sus_places, 2) + 0.005
    elif where == "on a tie":  # multiples of 1/8: x * 100 ends in .5 exactly
        reg_places, sus_places = np.round(reg_places * 8) / 8, np.round(sus_places * 8) / 8
    rows = [(r % places, s % places, inlier) for r, s, inlier in picks]
    n = len(rows)
    rp = np.array([reg_places[r] for r, _, _ in rows]).reshape(n, 2)
    sp = np.array([sus_places[s] for _, s, _ in rows]).reshape(n, 2)
    rp[::2] += nudge  # some copies of a place moved a little, across a boundary or not
    sp[1::3] -= nudge
    inl = np.array([inlier for _, _, inlier in rows], bool)
    kept = one_to_one(inl, rp, sp)
    assert kept.tolist() == _reference_one_to_one(inl, rp, sp).tolist()
    assert not (kept & ~inl).any()


def _reference_vote(
    lists: list[range], sig: np.ndarray, meta: np.ndarray, words: np.ndarray,
    sigs: np.ndarray, sure: np.ndarray, angles: np.ndarray, scales: np.ndarray,
    weights: np.ndarray, alive: np.ndarray,
) -> tuple[list[int], list[float], list[tuple[int, int, int]]]:  # fmt: skip
    """The vote as the docs describe it, one posting of the word's list at a
    time in plain Python."""
    hists: dict[int, np.ndarray] = {}
    found = []
    for i, w in enumerate(words):
        for p in lists[w]:
            ph, feat = int(meta[p] & 0xFFFFFFFF), int(meta[p] >> 32) & 0xFFFF
            if (int(sig[p]) ^ int(sigs[i])) & int(sure[i]):
                continue  # a run the lookup skips: it differs on a sure bit
            if bin(int(sig[p]) ^ int(sigs[i])).count("1") > 9 or not alive[ph]:
                continue
            rot = ((int(angles[i]) - (int(meta[p] >> 48) & 255)) & 255) >> 4
            scale = min(max((int(scales[i]) - int(meta[p] >> 56) + 32) >> 2, 0), 15)
            h = hists.setdefault(ph, np.zeros(32, np.float32))
            h[rot] += weights[w]
            h[16 + scale] += weights[w]
            found.append((ph, i, feat))
    scores = [
        min(
            max(float(h[b] + h[(b + 1) % 16]) for b in range(16)),
            max(float(h[16 + b] + h[17 + b]) for b in range(15)),
        )
        for h in hists.values()
    ]
    return list(hists), scores, found


def test_the_compiled_vote_agrees_with_a_plain_one() -> None:
    # Random posting lists over 40 photos (some withdrawn, some with one vote),
    # each word's list in runs by its first signature bits, lookups sure of
    # some of those bits, votes beyond the first buffer: the photos, their
    # scores (to the last bit) and each photo's correspondences in order are
    # those of the plain vote.
    from takeback.fingerprint.derivative_index import PROBE_BITS, _pack, _vote

    rng = np.random.default_rng(5)
    nwords, photos = 30, 40
    words = rng.integers(0, nwords, 600).astype(np.int32)
    counts = rng.integers(0, 200, nwords)
    ends = np.cumsum(counts)
    lists = [range(e - c, e) for c, e in zip(counts, ends, strict=True)]
    total = int(ends[-1])
    meta = _pack(
        rng.integers(0, photos, total).astype(np.uint32),
        rng.integers(0, 384, total).astype(np.uint16),
        rng.integers(0, 256, total).astype(np.uint8),
        rng.integers(0, 64, total).astype(np.uint8),
    )
    sig = rng.integers(0, 1 << 32, total, dtype=np.uint64).astype(np.uint32)
    run = np.repeat(np.arange(nwords), counts) << PROBE_BITS | (sig & ((1 << PROBE_BITS) - 1))
    sig = sig[np.argsort(run, kind="stable")]  # the index keeps each word's list by run
    offsets = np.r_[0, np.cumsum(np.bincount(np.sort(run), minlength=nwords << PROBE_BITS))]
    sigs = (sig[rng.integers(0, total, 600)] ^ (1 << rng.integers(0, 32, 600))).astype(np.uint32)
    sigs[::3] = rng.integers(0, 1 << 32, 200, dtype=np.uint64).astype(np.uint32)
    sure = rng.integers(0, 1 << PROBE_BITS, 600).astype(np.uint8)
    sure[::4] = 0
    angles = rng.integers(0, 256, 600).astype(np.uint8)
    scales = rng.integers(0, 64, 600).astype(np.uint8)
    weights = rng.uniform(0.1, 3.0, nwords).astype(np.float32)
    alive = rng.random(photos) > 0.2
    want_photos, want_scores, want_found = _reference_vote(
        lists, sig, meta, words, sigs, sure, angles, scales, weights, alive
    )
    skipped = _reference_vote(lists, sig, meta, words, sigs, 0 * sure, angles, scales,
                              weights, alive)[2]  # fmt: skip
    assert 64 < len(want_found) < len(skipped)
    count, touched = np.zeros(photos, np.int32), np.zeros(photos, np.int64)
    scores, starts = np.zeros(photos, np.float32), np.zeros(photos + 1, np.int64)
    args = (offsets.astype(np.int64), sig, meta, words, sigs, sure, angles, scales, weights,
            alive, 9, count, touched, scores, starts)  # fmt: skip

    def buffers(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return np.zeros(size, np.int64), np.zeros(size, np.uint16), np.zeros(size, np.int64)

    assert _vote(*args, *buffers(64)) == -1
    assert not count.any()  # left as it was found when the buffers are too small
    size = len(want_found)
    votes, feats, grouped = buffers(size)
    n = _vote(*args, votes, feats, grouped)
    assert not count.any()
    assert touched[:n].tolist() == want_photos
    assert scores[:n].tolist() == want_scores
    assert starts[n] == size
    got = [
        (int(touched[t]), int(c & 0xFFFF), int(c >> 24))
        for t in range(n)
        for c in grouped[starts[t] : starts[t + 1]]
    ]
    assert got == sorted(want_found, key=lambda c: want_photos.index(c[0]))
    ones = np.diff(starts[: n + 1]) == 1
    assert ones.any() and not ones.all()


@given(
    st.lists(st.sampled_from([0.0, 0.5, 1.25, 1.5, 2.0, 7.75]), max_size=300),
    st.integers(1, 60),
)
def test_the_shortlist_is_a_stable_sort_of_the_scores(scores: list[float], k: int) -> None:
    # Many photos share a score (one vote of a common word): ties are kept
    # in photo order, as a stable sort of all the scores keeps them.
    from takeback.fingerprint.derivative_index import _best

    v = np.array(scores, np.float32)
    assert _best(v, k).tolist() == np.argsort(-v, kind="stable")[:k].tolist()


@settings(deadline=None)  # the first example loads the compiled code
@given(
    st.integers(1, 40).flatmap(
        lambda width: st.lists(
            st.lists(st.tuples(st.integers(0, 255), st.booleans()), min_size=width, max_size=width),
            min_size=1,
            max_size=12,
        )
    )
)
def test_line_medians_are_numpy_medians_of_the_free_values(
    rows: list[list[tuple[int, bool]]],
) -> None:
    # The caption-bar search takes each line's median grey level over the
    # pixels no other band holds; counting levels gives numpy's median.
    from takeback.fingerprint._consensus import line_medians

    lines = np.array([[v for v, _ in r] for r in rows], np.int16)
    free = np.array([[f for _, f in r] for r in rows], np.bool_)
    got = line_medians(lines, free)
    for r in range(len(lines)):
        if free[r].any():
            assert got[r] == np.median(lines[r][free[r]])
        else:
            assert got[r] == 32767.0
    assert np.array_equal(line_medians(lines, np.ones_like(free)), np.median(lines, axis=1))


def test_a_small_recompressed_caption_bar_is_found(originals: dict[str, np.ndarray]) -> None:
    # A caption whose text fills most of its rows, on a suspect shrunk to under
    # 200 px and saved at JPEG quality 60: no line of the bar is of one grey level
    # within JPEG noise once it is brought to the working size.
    from takeback.fingerprint.derivative import SUSPECT_SIZE, _grey_working, edge_bands

    rgb = cv2.resize(originals["chelsea.png"], (180, 150), interpolation=cv2.INTER_AREA)
    bar = np.full((22, 180, 3), 235, np.uint8)
    cv2.putText(bar, "@phvlfyjdckm #repost", (2, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (0, 0, 0), 1)
    ok, enc = cv2.imencode(".jpg", np.vstack([bar, rgb]), [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    grey, _ = _grey_working(cv2.imdecode(enc, cv2.IMREAD_COLOR), SUSPECT_SIZE)
    mask = edge_bands(grey)
    cut = round(22 * grey.shape[0] / 172)  # the bar's rows at the working size
    assert mask[: cut - 2].mean() > 0.95
    assert not mask[cut + 6 : -10, 10:-10].any()
