"""Align a suspect with its original: SIFT features, MAGSAC, mirrored suspects.

The suspect may be the original cropped, flipped, rotated, scaled, bordered or
captioned, with a large part replaced. Alignment finds the transform from the
original's pixel grid to the suspect's from the parts that were kept: SIFT
features (scale and rotation invariant; CONTEXT.md measured SIFT ahead of ORB
and AKAZE for this) matched with Lowe's ratio test, a full affine transform
estimated with MAGSAC++ (``cv2.USAC_MAGSAC``), tried on the suspect and on its
mirror image, keeping the one with more inliers. A similarity transform
(rotation, one scale, shift: what reposting does) fitted to the same matches is
preferred when it explains nearly as many of them: with few, clustered
correspondences a full affine fit extrapolates badly to the rest of the frame.

When fewer than :data:`MIN_INLIERS` correspondences agree (a small or smooth
photo whose kept part has little texture), a second, denser try follows:
SIFT at a lower contrast threshold on larger images, a similarity fit accepted
from :data:`DENSE_MIN_INLIERS` correspondences, but only when the pixels confirm
it (:func:`agreement`): the original warped by the candidate must agree with
the suspect in textured places clearly more than when shifted by a few pixels.
When none is, the candidates are checked again in fine detail only
(:func:`fine_agreement`): smooth photos (a storm sky, a plain wall) carry too
little coarse texture to tell a true alignment from a shifted one, but their
fine detail stops agreeing a few pixels off. A wrong alignment is worse than
none, so an unconfirmed candidate is dropped.

Coordinates follow :mod:`takeback.examine.model`: a matrix maps ``(x, y, 1)``
with pixel centres at integers, ``x`` the column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import cv2
import numpy as np

from .model import Alignment

__all__ = [
    "DENSE_MIN_INLIERS",
    "MIN_INLIERS",
    "FeatureSet",
    "agreement",
    "align",
    "both_ways",
    "confirmed",
    "features",
    "fine_agreement",
    "fine_confirmed",
    "mirrored",
    "scale_matrix",
]

#: Fewer agreeing correspondences than this and the pair is not called aligned.
MIN_INLIERS: Final = 12
#: Long side of the grey images features are computed on.
FEATURE_SIDE: Final = 768
#: Smaller images are enlarged to this long side first (more, steadier features).
FEATURE_MIN_SIDE: Final = 640
#: SIFT contrast threshold (OpenCV's default 0.04 finds too few on smooth photos).
CONTRAST: Final = 0.015
#: The original's features are computed at this multiple of the suspect's size.
ORIGINAL_SCALE: Final = 1.25
#: Most features kept per image.
MAX_FEATURES: Final = 4000
#: Lowe's ratio test.
RATIO: Final = 0.85
#: MAGSAC threshold, pixels of the suspect's feature image.
REPROJECTION_PX: Final = 3.0
#: The similarity fit replaces the affine one when it keeps this share of its inliers.
SIMILARITY_SHARE: Final = 0.8

#: Dense second try: (SIFT contrast threshold, smallest long side), in order.
DENSE_PASSES: Final = ((0.004, 640), (0.004, 1024))
#: Most features kept per image in the dense try.
DENSE_MAX_FEATURES: Final = 8000
#: Lowe's ratio test of the dense try.
DENSE_RATIO: Final = 0.9
#: Fewest agreeing correspondences of a dense candidate (it must also pass :func:`agreement`).
DENSE_MIN_INLIERS: Final = 6
#: Long side of the images the pixel agreement is measured on.
AGREEMENT_SIDE: Final = 384
#: Smallest share of the overlap agreeing in texture for a dense candidate.
AGREEMENT_MIN: Final = 0.02
#: The agreement must exceed that of the candidate shifted by a few pixels this many times.
AGREEMENT_PEAK: Final = 1.5
#: Local correlation from which two textured places agree.
AGREEMENT_NCC: Final = 0.9
#: Local grey-level spread (0-255) from which a place counts as textured.
AGREEMENT_TEXTURE: Final = 3.0
#: Fine agreement (:func:`fine_agreement`): long side of the images it is measured on.
FINE_SIDE: Final = 512
#: Its band-pass filter: difference of Gaussians of these two sigmas (pixels).
FINE_BAND: Final = (1.0, 3.0)
#: Its local correlation window (Gaussian sigma, pixels) and the correlation that agrees.
FINE_WINDOW: Final = 3.0
FINE_NCC: Final = 0.8
#: Band-pass spread from which a place counts as detailed.
FINE_TEXTURE: Final = 1.0
#: The shift (pixels at :data:`FINE_SIDE`) it is compared against.
FINE_SHIFT_PX: Final = 4.0
#: Smallest share of the overlap agreeing in fine detail for a dense candidate.
FINE_MIN: Final = 0.004
#: The fine agreement must exceed that of the shifted candidate this many times.
FINE_PEAK: Final = 3.0
#: Smallest share of the suspect a candidate confirmed in fine detail must cover.
FINE_COVERAGE: Final = 0.5


def scale_matrix(sx: float, sy: float) -> np.ndarray:
    """The matrix of a resize by ``(sx, sy)`` that maps pixel centres.

    ``cv2.resize`` maps a pixel centre ``x`` to ``(x + 0.5) * sx - 0.5``.
    """
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def _mirror_matrix(width: int) -> np.ndarray:
    return np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])


@dataclass(frozen=True, slots=True)
class FeatureSet:
    """SIFT keypoints of one image, in that image's full pixel grid.

    ``points`` is ``(K, 2)`` float32 ``(x, y)``; ``descriptors`` ``(K, 128)`` float32.
    """

    points: np.ndarray
    descriptors: np.ndarray
    size: tuple[int, int]  # (width, height) of the image the points refer to


def _grey_small(
    image: np.ndarray, side: int, min_side: int = FEATURE_MIN_SIDE
) -> tuple[np.ndarray, float]:
    """Grey image resized to ``side`` px long when bigger, or up to ``min_side`` when smaller."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = grey.shape
    s = min(1.0, side / max(h, w))
    if max(h, w) < min_side:
        s = min_side / max(h, w)
        grey = cv2.resize(grey, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    elif s < 1.0:
        grey = cv2.resize(
            grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    return grey, s


def features(
    image: np.ndarray,
    *,
    side: int = FEATURE_SIDE,
    max_features: int = MAX_FEATURES,
    contrast: float = CONTRAST,
    min_side: int = FEATURE_MIN_SIDE,
) -> FeatureSet:
    """SIFT features of an ``(M, N[, 3])`` uint8 image, computed at most ``side`` px long.

    Images shorter than ``min_side`` are enlarged to it first. Points are
    returned in the coordinates of ``image`` itself.
    """
    grey, _ = _grey_small(image, side, min_side)
    sift = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=max_features, contrastThreshold=contrast
    )
    kps, desc = sift.detectAndCompute(grey, None)
    h, w = image.shape[:2]
    if desc is None or not kps:
        return FeatureSet(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (w, h))
    pts = np.asarray(cv2.KeyPoint.convert(kps), np.float64)  # the same values, one call
    # back to the full grid: invert the resize's pixel-centre mapping
    sx, sy = grey.shape[1] / w, grey.shape[0] / h
    full = np.empty_like(pts)
    full[:, 0] = (pts[:, 0] + 0.5) / sx - 0.5
    full[:, 1] = (pts[:, 1] + 0.5) / sy - 0.5
    # RootSIFT (Arandjelovic & Zisserman 2012): Hellinger kernel, better ratio tests
    root = np.sqrt(desc / (np.abs(desc).sum(axis=1, keepdims=True) + 1e-7))
    return FeatureSet(full.astype(np.float32), root.astype(np.float32), (w, h))


_MATCHER: Final = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})
#: The dense try looks harder for each feature's nearest neighbours (few are right).
_DENSE_MATCHER: Final = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 8}, {"checks": 512})


def _estimate(
    orig: FeatureSet,
    susp: FeatureSet,
    pixel_px: float,
    *,
    ratio: float = RATIO,
    similarity_only: bool = False,
    matcher: cv2.FlannBasedMatcher = _MATCHER,
) -> tuple[np.ndarray | None, int, np.ndarray]:
    """Transform from original to suspect points by ratio test + robust fit; (matrix, inliers, pts).

    A full affine transform by MAGSAC and a similarity by RANSAC; the similarity
    is kept when it explains :data:`SIMILARITY_SHARE` of the affine fit's inliers
    (or always, with ``similarity_only``).
    """
    none = (None, 0, np.zeros((0, 2), np.float32))
    if len(orig.points) < 3 or len(susp.points) < 3:
        return none
    pairs = matcher.knnMatch(susp.descriptors, orig.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < ratio * p[1].distance]
    if len(good) < 4:
        return none
    src = orig.points[[m.trainIdx for m in good]]
    dst = susp.points[[m.queryIdx for m in good]]
    cv2.setRNGSeed(0)  # MAGSAC and RANSAC sample at random: same inputs, same answer
    fits: list[tuple[np.ndarray, np.ndarray]] = []
    sim, sim_inl = cv2.estimateAffinePartial2D(
        src, dst, method=cv2.RANSAC, ransacReprojThreshold=pixel_px, maxIters=5000, confidence=0.999
    )
    if sim is not None and sim_inl is not None:
        fits.append((sim, sim_inl.ravel().astype(bool)))
    if not similarity_only:
        a, inl = cv2.estimateAffine2D(
            src,
            dst,
            method=cv2.USAC_MAGSAC,
            ransacReprojThreshold=pixel_px,
            maxIters=5000,
            confidence=0.999,
        )
        if a is not None and inl is not None:
            keep = inl.ravel().astype(bool)
            if not fits or fits[0][1].sum() < SIMILARITY_SHARE * keep.sum():
                fits = [(a, keep)]
    if not fits:
        return none
    m, keep = fits[0]
    return np.vstack([m, [0.0, 0.0, 1.0]]), int(keep.sum()), dst[keep]


def _decompose(m: np.ndarray) -> tuple[float, float, bool]:
    a = m[:2, :2]
    det = float(np.linalg.det(a))
    scale = float(np.sqrt(abs(det)))
    mirrored = det < 0
    if mirrored:  # undo the reflection x -> -x before reading the angle
        a = a @ np.diag([-1.0, 1.0])
    rotation = float(np.degrees(np.arctan2(a[1, 0], a[0, 0])))
    return rotation, scale, mirrored


def plausible(m: np.ndarray) -> bool:
    """Reject degenerate fits: strong shear, anisotropy or absurd scale."""
    a = m[:2, :2]
    sv = np.linalg.svd(a, compute_uv=False)
    if sv[1] <= 1e-6:
        return False
    return bool(sv[0] / sv[1] < 1.3 and 0.02 < float(np.sqrt(sv[0] * sv[1])) < 50)


#: SIFT descriptor of the mirror image: OpenCV lays a descriptor out as
#: (4 x 4 spatial cells) x 8 orientation bins; mirroring reverses the first cell
#: axis and the orientation bins (checked against SIFT on mirrored photos).
_MIRROR_PERM: Final = (
    np.arange(128).reshape(4, 4, 8)[::-1, :, :][:, :, (8 - np.arange(8)) % 8].ravel()
)


def mirrored(fs: FeatureSet) -> FeatureSet:
    """The features of the mirror image, without running SIFT again."""
    w = fs.size[0]
    pts = fs.points.copy()
    pts[:, 0] = (w - 1) - pts[:, 0]
    return FeatureSet(pts, np.ascontiguousarray(fs.descriptors[:, _MIRROR_PERM]), fs.size)


def both_ways(suspect: np.ndarray) -> tuple[FeatureSet, FeatureSet]:
    """Features of the suspect and of its mirror image (SIFT is not mirror invariant)."""
    fs = features(suspect)
    return fs, mirrored(fs)


def _best(
    of: FeatureSet,
    pair: tuple[FeatureSet, FeatureSet],
    width: int,
    pixel_px: float,
    **fit: Any,
) -> list[tuple[np.ndarray, int, np.ndarray]]:
    """Fits on the suspect and on its mirror image, most inliers first."""
    out = []
    for flipped, sf in zip((False, True), pair, strict=True):
        m, n, pts = _estimate(of, sf, pixel_px, **fit)
        if m is None or not plausible(m):
            continue
        if flipped:
            m = _mirror_matrix(width) @ m
            pts = pts.copy()
            pts[:, 0] = (width - 1) - pts[:, 0]
        out.append((m, n, pts))
    return sorted(out, key=lambda f: -f[1])


def _ncc(a: np.ndarray, b: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local normalised correlation of two float32 images; and their local spreads."""

    def blur(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), sigma)

    ma, mb = blur(a), blur(b)
    va = np.maximum(blur(a * a) - ma * ma, 0)
    vb = np.maximum(blur(b * b) - mb * mb, 0)
    return (blur(a * b) - ma * mb) / np.sqrt(va * vb + 1e-6), np.sqrt(va), np.sqrt(vb)


def _grey_pair(
    original: np.ndarray, suspect: np.ndarray, matrix: np.ndarray, side: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Grey suspect (float32, at most ``side`` px long), grey original and the matrix between.

    The original (uint8) is area-averaged to about the suspect's scale first, so
    warping it does not alias; the matrix maps it onto the small suspect.
    """
    h, w = suspect.shape[:2]
    s = min(1.0, side / max(h, w))
    sw, sh = max(1, round(w * s)), max(1, round(h * s))
    grey = cv2.cvtColor(suspect, cv2.COLOR_RGB2GRAY)
    sg = cv2.resize(grey, (sw, sh), interpolation=cv2.INTER_AREA).astype(np.float32)
    m = scale_matrix(sw / w, sh / h) @ matrix
    og = cv2.cvtColor(original, cv2.COLOR_RGB2GRAY)
    shrink = float(np.sqrt(abs(np.linalg.det(m[:2, :2]))))
    if shrink < 0.8:  # area-average first, so the warp does not alias
        oh, ow = og.shape
        nw, nh = max(1, round(ow * shrink)), max(1, round(oh * shrink))
        og = cv2.resize(og, (nw, nh), interpolation=cv2.INTER_AREA)
        m = m @ np.linalg.inv(scale_matrix(nw / ow, nh / oh))
    return sg, og, m


_SHIFTS: Final = ((0, 0), (-1, -1), (-1, 0), (-1, 1), (0, -1), (0, 1), (1, -1), (1, 0), (1, 1))


def _agreeing_share(
    sg: np.ndarray,
    og: np.ndarray,
    m: np.ndarray,
    step: float,
    score: Callable[[np.ndarray, np.ndarray], np.ndarray],
) -> list[float]:
    """``score(suspect, warped original)`` -> agreeing pixels, as a share of the overlap,
    for the matrix ``m`` and for it shifted by ``step`` px in eight directions."""
    sh, sw = sg.shape
    ones = np.full(og.shape, 255, np.uint8)
    out = []
    for dx, dy in _SHIFTS:
        mt = np.array([[1.0, 0.0, dx * step], [0.0, 1.0, dy * step], [0.0, 0.0, 1.0]]) @ m
        warped = cv2.warpAffine(og, mt[:2], (sw, sh), flags=cv2.INTER_LINEAR)
        inside = cv2.warpAffine(ones, mt[:2], (sw, sh), flags=cv2.INTER_NEAREST) > 0
        inside = cv2.erode(inside.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
        agree = score(sg, warped.astype(np.float32)) & inside
        out.append(float(agree.sum()) / max(1, int(inside.sum())))
    return out


def agreement(original: np.ndarray, suspect: np.ndarray, matrix: np.ndarray) -> tuple[float, float]:
    """How well the pixels confirm an alignment: (agreement, best agreement when shifted).

    The original is warped by ``matrix`` into the suspect's grid (both at most
    :data:`AGREEMENT_SIDE` px long); *agreement* is the share of the overlap
    where both are textured (local spread over :data:`AGREEMENT_TEXTURE`) and
    locally correlated over :data:`AGREEMENT_NCC`. The same is measured with the
    candidate shifted by 2 % of the long side in eight directions: a true
    alignment agrees clearly less when shifted, whereas smooth ramps, repeated
    patterns and chance agree about as well anywhere.

    Parameters
    ----------
    original, suspect : (M, N, 3) uint8 arrays
    matrix : (3, 3) float array
        From ``original`` pixel coordinates to ``suspect`` ones.
    """
    sg, og, m = _grey_pair(original, suspect, matrix, AGREEMENT_SIDE)

    def score(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ncc, spread_s, spread_o = _ncc(a, b, 2.5)
        return (
            (ncc > AGREEMENT_NCC) & (spread_s > AGREEMENT_TEXTURE) & (spread_o > AGREEMENT_TEXTURE)
        )

    scores = _agreeing_share(sg, og, m, max(3.0, 0.02 * max(sg.shape)), score)
    return scores[0], max(scores[1:])


def fine_agreement(
    original: np.ndarray, suspect: np.ndarray, matrix: np.ndarray
) -> tuple[float, float]:
    """:func:`agreement` in fine detail only: (agreement, best agreement when shifted).

    Both images (at most :data:`FINE_SIDE` px long) are band-pass filtered (a
    difference of Gaussians, :data:`FINE_BAND`), which removes the smooth ramps
    and broad shapes of a sky or a wall that agree wherever they are put; a
    place agrees where both carry detail (band-pass spread over
    :data:`FINE_TEXTURE`) that correlates locally over :data:`FINE_NCC`. The
    same is measured with the candidate shifted by :data:`FINE_SHIFT_PX` px in
    eight directions: fine detail that truly corresponds stops agreeing when
    shifted by a few pixels, so this tells a sparse but exact correspondence
    (a coastline, a few cables against the sky) from chance.
    """
    sg, og, m = _grey_pair(original, suspect, matrix, FINE_SIDE)
    lo, hi = FINE_BAND

    def band(x: np.ndarray) -> np.ndarray:
        return cv2.GaussianBlur(x, (0, 0), lo) - cv2.GaussianBlur(x, (0, 0), hi)

    fine_s = band(sg)

    def score(_: np.ndarray, b: np.ndarray) -> np.ndarray:
        ncc, spread_s, spread_o = _ncc(fine_s, band(b), FINE_WINDOW)
        return (ncc > FINE_NCC) & (spread_s > FINE_TEXTURE) & (spread_o > FINE_TEXTURE)

    scores = _agreeing_share(sg, og, m, FINE_SHIFT_PX, score)
    return scores[0], max(scores[1:])


def _peaked(score: float, shifted: float) -> bool:
    return score >= AGREEMENT_MIN and score >= AGREEMENT_PEAK * shifted


def confirmed(original: np.ndarray, suspect: np.ndarray, matrix: np.ndarray) -> bool:
    """Whether the pixels confirm an alignment (:func:`agreement` over its thresholds)."""
    return _peaked(*agreement(original, suspect, matrix))


def fine_confirmed(
    original: np.ndarray, suspect: np.ndarray, matrix: np.ndarray, *, coarse: float | None = None
) -> bool:
    """Whether the pixels confirm an alignment that :func:`confirmed` found ambiguous.

    The coarse agreement must be there (:data:`AGREEMENT_MIN`), only its peak
    may be missing; the fine agreement must pass its own thresholds
    (:data:`FINE_MIN`, :data:`FINE_PEAK`), and the original must cover at least
    :data:`FINE_COVERAGE` of the suspect (a repost shows the original across
    most of its frame; a chance fit lands a sliver of it, often tiny or turned).
    ``coarse`` is the candidate's :func:`agreement` when already measured.
    """
    if coverage(matrix, original.shape[:2], suspect.shape[:2]) < FINE_COVERAGE:
        return False
    if coarse is None:
        coarse = agreement(original, suspect, matrix)[0]
    if coarse < AGREEMENT_MIN:
        return False
    score, shifted = fine_agreement(original, suspect, matrix)
    return score >= FINE_MIN and score >= FINE_PEAK * shifted


def _dense(
    original: np.ndarray, suspect: np.ndarray, pixel_px: float
) -> tuple[np.ndarray, int, np.ndarray] | None:
    """The second try: denser features, similarity fits, confirmed by the pixels.

    A candidate is first checked by :func:`confirmed`; only when no candidate of
    either pass is, are they checked in the same order by :func:`fine_confirmed`.
    """
    h, w = suspect.shape[:2]
    candidates: list[tuple[np.ndarray, int, np.ndarray, float]] = []
    for contrast, min_side in DENSE_PASSES:
        side = int(np.clip(ORIGINAL_SCALE * max(h, w), min_side, max(FEATURE_SIDE, min_side)))
        of = features(
            original,
            side=side,
            max_features=DENSE_MAX_FEATURES,
            contrast=contrast,
            min_side=min_side,
        )
        sf = features(
            suspect,
            side=max(FEATURE_SIDE, min_side),
            max_features=DENSE_MAX_FEATURES,
            contrast=contrast,
            min_side=min_side,
        )
        for m, n, pts in _best(
            of,
            (sf, mirrored(sf)),
            w,
            pixel_px,
            ratio=DENSE_RATIO,
            similarity_only=True,
            matcher=_DENSE_MATCHER,
        ):
            if n < DENSE_MIN_INLIERS:
                continue
            coarse, shifted = agreement(original, suspect, m)
            if _peaked(coarse, shifted):
                return m, n, pts
            candidates.append((m, n, pts, coarse))
    for m, n, pts, coarse in candidates:
        if fine_confirmed(original, suspect, m, coarse=coarse):
            return m, n, pts
    return None


def align(
    original: np.ndarray,
    suspect: np.ndarray,
    *,
    original_features: FeatureSet | None = None,
    suspect_features: tuple[FeatureSet, FeatureSet] | None = None,
    min_inliers: int = MIN_INLIERS,
    dense: bool = True,
) -> Alignment | None:
    """Find the transform from ``original`` to ``suspect``; None if they do not align.

    Parameters
    ----------
    original, suspect : (M, N, 3) uint8 arrays
    original_features : FeatureSet, optional
        Precomputed :func:`features` of ``original``.
    suspect_features : (FeatureSet, FeatureSet), optional
        Precomputed :func:`both_ways` of the suspect (when trying many originals).
    min_inliers : int
        Fewest agreeing correspondences accepted from the first try.
    dense : bool
        Make the denser second try, confirmed by the pixels, when the first
        finds too few correspondences.

    Returns
    -------
    Alignment or None
        ``matrix`` maps ``original`` pixel coordinates to ``suspect`` ones;
        ``coverage`` is the share of the suspect inside the mapped original.
        None when neither try finds a transform.
    """
    h, w = suspect.shape[:2]
    # features of both at about the same scale: a repost shows 55-100% of the
    # original, so the original at ~1.25x the suspect's size is close
    side = int(np.clip(ORIGINAL_SCALE * max(h, w), FEATURE_MIN_SIDE, FEATURE_SIDE))
    of = original_features or features(original, side=side)
    px = REPROJECTION_PX * max(1.0, max(h, w) / FEATURE_SIDE)
    fits = _best(of, suspect_features or both_ways(suspect), w, px)
    best = fits[0] if fits and fits[0][1] >= min_inliers else None
    if best is None and dense:
        best = _dense(original, suspect, px)
    if best is None:
        return None
    m, n, pts = best
    rotation, scale, flipped = _decompose(m)
    return Alignment(
        matrix=m,
        mirrored=flipped,
        coverage=coverage(m, original.shape[:2], (h, w)),
        inliers=n,
        rotation_deg=rotation,
        scale=scale,
        inlier_points=pts,
    )


def coverage(
    matrix: np.ndarray, original_shape: tuple[int, int], suspect_shape: tuple[int, int]
) -> float:
    """Share of the suspect's area covered by the original mapped through ``matrix``."""
    oh, ow = original_shape
    sh, sw = suspect_shape
    corners = np.array(
        [[-0.5, -0.5, 1], [ow - 0.5, -0.5, 1], [ow - 0.5, oh - 0.5, 1], [-0.5, oh - 0.5, 1]],
        np.float64,
    )
    mapped = (matrix @ corners.T).T[:, :2].astype(np.float32)
    frame = np.array(
        [[-0.5, -0.5], [sw - 0.5, -0.5], [sw - 0.5, sh - 0.5], [-0.5, sh - 0.5]], np.float32
    )
    area, _ = cv2.intersectConvexConvex(mapped, frame)
    return float(min(1.0, max(0.0, area / (sw * sh))))
