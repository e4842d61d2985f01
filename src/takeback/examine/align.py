"""Align a suspect with its original: SIFT features, MAGSAC, mirrored suspects.

The suspect may be the original cropped, flipped, rotated, scaled, bordered or
captioned, with a large part replaced. Alignment finds the transform from the
original's pixel grid to the suspect's from the parts that were kept: SIFT
features (scale and rotation invariant; CONTEXT.md measured SIFT ahead of ORB
and AKAZE for this) matched with Lowe's ratio test, a full affine transform
estimated with MAGSAC++ (``cv2.USAC_MAGSAC``), tried on the suspect and on its
mirror image, keeping the one with more inliers.

Coordinates follow :mod:`takeback.examine.model`: a matrix maps ``(x, y, 1)``
with pixel centres at integers, ``x`` the column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np

from .model import Alignment

__all__ = [
    "MIN_INLIERS",
    "FeatureSet",
    "align",
    "both_ways",
    "features",
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


def _grey_small(image: np.ndarray, side: int) -> tuple[np.ndarray, float]:
    """Grey image resized to ``side`` px long when bigger, or up to ``MIN_SIDE`` when smaller."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image
    h, w = grey.shape
    s = min(1.0, side / max(h, w))
    if max(h, w) < FEATURE_MIN_SIDE:
        s = FEATURE_MIN_SIDE / max(h, w)
        grey = cv2.resize(grey, (round(w * s), round(h * s)), interpolation=cv2.INTER_CUBIC)
    elif s < 1.0:
        grey = cv2.resize(
            grey, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA
        )
    return grey, s


def features(
    image: np.ndarray, *, side: int = FEATURE_SIDE, max_features: int = MAX_FEATURES
) -> FeatureSet:
    """SIFT features of an ``(M, N[, 3])`` uint8 image, computed at most ``side`` px long.

    Points are returned in the coordinates of ``image`` itself.
    """
    grey, _ = _grey_small(image, side)
    sift = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=max_features, contrastThreshold=CONTRAST
    )
    kps, desc = sift.detectAndCompute(grey, None)
    h, w = image.shape[:2]
    if desc is None or not kps:
        return FeatureSet(np.zeros((0, 2), np.float32), np.zeros((0, 128), np.float32), (w, h))
    pts = np.array([k.pt for k in kps], np.float64)
    # back to the full grid: invert the resize's pixel-centre mapping
    sx, sy = grey.shape[1] / w, grey.shape[0] / h
    full = np.empty_like(pts)
    full[:, 0] = (pts[:, 0] + 0.5) / sx - 0.5
    full[:, 1] = (pts[:, 1] + 0.5) / sy - 0.5
    # RootSIFT (Arandjelovic & Zisserman 2012): Hellinger kernel, better ratio tests
    root = np.sqrt(desc / (np.abs(desc).sum(axis=1, keepdims=True) + 1e-7))
    return FeatureSet(full.astype(np.float32), root.astype(np.float32), (w, h))


_MATCHER: Final = cv2.FlannBasedMatcher({"algorithm": 1, "trees": 4}, {"checks": 64})


def _estimate(
    orig: FeatureSet, susp: FeatureSet, pixel_px: float
) -> tuple[np.ndarray | None, int, np.ndarray]:
    """Affine from original to suspect points by ratio test + MAGSAC; (matrix, inliers, pts)."""
    if len(orig.points) < 3 or len(susp.points) < 3:
        return None, 0, np.zeros((0, 2), np.float32)
    pairs = _MATCHER.knnMatch(susp.descriptors, orig.descriptors, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < RATIO * p[1].distance]
    if len(good) < 4:
        return None, 0, np.zeros((0, 2), np.float32)
    src = orig.points[[m.trainIdx for m in good]]
    dst = susp.points[[m.queryIdx for m in good]]
    cv2.setRNGSeed(0)  # MAGSAC samples at random: same inputs, same answer
    a, inl = cv2.estimateAffine2D(
        src,
        dst,
        method=cv2.USAC_MAGSAC,
        ransacReprojThreshold=pixel_px,
        maxIters=5000,
        confidence=0.999,
    )
    if a is None or inl is None:
        return None, 0, np.zeros((0, 2), np.float32)
    keep = inl.ravel().astype(bool)
    return np.vstack([a, [0.0, 0.0, 1.0]]), int(keep.sum()), dst[keep]


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


def align(
    original: np.ndarray,
    suspect: np.ndarray,
    *,
    original_features: FeatureSet | None = None,
    suspect_features: tuple[FeatureSet, FeatureSet] | None = None,
    min_inliers: int = MIN_INLIERS,
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
        Fewest agreeing correspondences accepted.

    Returns
    -------
    Alignment or None
        ``matrix`` maps ``original`` pixel coordinates to ``suspect`` ones;
        ``coverage`` is the share of the suspect inside the mapped original.
        None when fewer than :data:`MIN_INLIERS` correspondences agree.
    """
    h, w = suspect.shape[:2]
    # features of both at about the same scale: a repost shows 55-100% of the
    # original, so the original at ~1.25x the suspect's size is close
    side = int(np.clip(ORIGINAL_SCALE * max(h, w), FEATURE_MIN_SIDE, FEATURE_SIDE))
    of = original_features or features(original, side=side)
    best: tuple[np.ndarray, int, np.ndarray] | None = None
    px = REPROJECTION_PX * max(1.0, max(h, w) / FEATURE_SIDE)
    for mirrored, sf in zip((False, True), suspect_features or both_ways(suspect), strict=True):
        m, n, pts = _estimate(of, sf, px)
        if m is None or not plausible(m):
            continue
        if mirrored:
            m = _mirror_matrix(w) @ m
            pts = pts.copy()
            pts[:, 0] = (w - 1) - pts[:, 0]
        if best is None or n > best[1]:
            best = (m, n, pts)
    if best is None or best[1] < min_inliers:
        return None
    m, n, pts = best
    rotation, scale, mirrored = _decompose(m)
    return Alignment(
        matrix=m,
        mirrored=mirrored,
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
