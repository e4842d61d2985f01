"""The derivative fingerprint: local binary features that survive body replacement.

PDQ summarises the whole frame, so a fake that replaces the body, crops and
rotates the photo no longer matches it. The derivative fingerprint keeps, for a
few hundred small patches spread over the frame (face, hair, hands,
background), an ORB descriptor and where the patch is. A suspect is matched by
finding the same patches in it and checking that they sit where one
similarity transform (scale, rotation, shift; mirrored suspects are tried too)
puts them; the inlier count is calibrated against unrelated pairs.

Coordinates
-----------
Keypoint positions and the 3x3 matrices follow :mod:`skimage.transform`: a
point is ``(x, y) = (col, row)`` in pixels of the full-resolution, EXIF-oriented
image, pixel centres at integers. A matrix ``H`` maps an original point ``p`` to
the suspect by ``H @ (x, y, 1)``.

Wire format (version 1)
-----------------------
All integers little-endian::

    offset size  field
    0      4     magic b"TBDF"
    4      1     format version (1)
    5      1     detector (1 = ORB, 256-bit descriptors)
    6      2     number of features K (<= MAX_FEATURES)
    8      4     width of the original (px)
    12     4     height of the original (px)
    16     32K   descriptors, K x 32 bytes
    ..     4K    positions, K x (uint16 x, uint16 y): round(x / (width - 1) * 65535)
    ..     K     sizes, uint8: round(16 * log2(size in px)), clipped to 0..255
    ..     K     angles, uint8: round(angle / 360 * 256) mod 256
    ..     8     the first 8 bytes of SHA-256 over everything before

:attr:`DerivativeFingerprint.digest` is the SHA-256 of the whole blob, which is
what the registration log commits to (``derivative_digest``). See
``docs/derivative.md`` for what the fingerprint reveals about the photo.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass, field
from typing import Final

import cv2
import numpy as np

from ..errors import InvalidHashError, TakeBackError
from ..imageio import MIN_SIDE, ImageLimits, load_rgb

__all__ = [
    "DECISION_SCORE",
    "MAX_BYTES",
    "MAX_FEATURES",
    "DerivativeError",
    "DerivativeFingerprint",
    "DerivativeMatch",
    "InvalidDerivativeError",
    "SuspectFeatures",
    "TooLittleDetailError",
    "derivative_from_file",
    "derivative_from_pixels",
    "suspect_features",
    "verify_derivative",
]

#: Format version written by :meth:`DerivativeFingerprint.to_bytes`.
FORMAT_VERSION: Final = 1
#: Largest number of features a fingerprint holds.
MAX_FEATURES: Final = 384
#: Fewest features a fingerprint must hold; below this the photo has too little detail.
MIN_FEATURES: Final = 24
#: Largest serialized size in bytes (the issue's budget is 16 KB).
MAX_BYTES: Final = 16 * 1024
#: Longer side, in pixels, both originals and suspects are brought to before extraction.
WORKING_SIZE: Final = 640
#: Features extracted from a suspect (per orientation).
SUSPECT_FEATURES: Final = 1500
#: Lowe's ratio for tentative matches (best / second-best Hamming distance).
RATIO: Final = 0.9
#: RANSAC reprojection threshold, in pixels of the working-size suspect.
REPROJ_THRESHOLD: Final = 5.0
#: Score at or above which a verification is a match. The score is
#: ``-log10(P_null) / 8`` where ``P_null`` is the fitted probability that an
#: unrelated pair reaches the inlier count (see :func:`score_of_inliers`); 0.65
#: means 11 inliers or more, ``P_null`` <= 1e-5 per verification, under 1e-4
#: per query when a query verifies 8 candidates.
DECISION_SCORE: Final = 0.65

_MAGIC: Final = b"TBDF"
_ORB: Final = 1
_HEADER: Final = struct.Struct("<4sBBHII")
_DESC_BYTES: Final = 32
_PER_FEATURE: Final = _DESC_BYTES + 4 + 1 + 1
_CHECK_BYTES: Final = 8
_GRID: Final = 8
_MAX_SIDE: Final = 1 << 20

# Null model of the inlier count of unrelated pairs, fitted on the tune half of
# the benchmark corpus (bench/bench_derivative.py --calibrate):
# log10 P(inliers >= n) = _NULL_A - _NULL_B * n for n >= _NULL_N0.
# 5,520 pairs (69 tune photos x 4 kinds x 20 unrelated originals): inlier
# counts 0-8, fit a = 2.814, b = 0.743 (bench/out/derivative-calibrate.json).
_NULL_A: Final = 2.814
_NULL_B: Final = 0.743
_NULL_N0: Final = 4


class DerivativeError(TakeBackError):
    """A derivative fingerprint cannot be computed or used."""

    code = "derivative_error"


class TooLittleDetailError(DerivativeError):
    """The image has too little detail for local features (PDQ is still usable)."""

    code = "too_little_detail"


class InvalidDerivativeError(InvalidHashError):
    """Bytes that are not a valid derivative fingerprint."""

    code = "invalid_derivative"


@dataclass(frozen=True, eq=False)
class DerivativeFingerprint:
    """Local features of one photo: descriptors and quantized keypoints, no pixels.

    Attributes
    ----------
    width, height : int
        Size of the original in pixels (full resolution, EXIF-oriented).
    descriptors : (K, 32) uint8 array
        ORB descriptors (256 bits each).
    points : (K, 2) float64 array
        Keypoint positions ``(x, y) = (col, row)`` in the original's pixels,
        quantized to 1/65535 of the frame.
    sizes : (K,) float64 array
        Keypoint diameters in the original's pixels (quantized to 2**(1/16)).
    angles : (K,) float64 array
        Keypoint orientations in degrees (quantized to 360/256).

    Examples
    --------
    >>> from takeback.samples import sample_photo
    >>> fp = derivative_from_file(sample_photo("astronaut.png"))
    >>> fp.size_bytes <= MAX_BYTES
    True
    >>> DerivativeFingerprint.from_bytes(fp.to_bytes()).digest == fp.digest
    True
    """

    width: int
    height: int
    descriptors: np.ndarray
    points: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    _blob: bytes = field(default=b"", repr=False)

    @classmethod
    def _build(
        cls,
        width: int,
        height: int,
        descriptors: np.ndarray,
        points: np.ndarray,
        sizes: np.ndarray,
        angles: np.ndarray,
    ) -> DerivativeFingerprint:
        """Quantize, serialize, and return the fingerprint as it reads back."""
        k = len(descriptors)
        qx = np.rint(np.clip(points[:, 0] / max(width - 1, 1), 0, 1) * 65535).astype("<u2")
        qy = np.rint(np.clip(points[:, 1] / max(height - 1, 1), 0, 1) * 65535).astype("<u2")
        qs = np.clip(np.rint(16 * np.log2(np.maximum(sizes, 1.0))), 0, 255).astype(np.uint8)
        qa = (np.rint(np.mod(angles, 360.0) / 360.0 * 256) % 256).astype(np.uint8)
        body = b"".join(
            (
                _HEADER.pack(_MAGIC, FORMAT_VERSION, _ORB, k, width, height),
                np.ascontiguousarray(descriptors, np.uint8).tobytes(),
                np.stack([qx, qy], axis=1).tobytes(),
                qs.tobytes(),
                qa.tobytes(),
            )
        )
        return cls.from_bytes(body + hashlib.sha256(body).digest()[:_CHECK_BYTES])

    @classmethod
    def from_bytes(cls, data: bytes) -> DerivativeFingerprint:
        """Parse and validate a serialized fingerprint.

        Raises
        ------
        InvalidDerivativeError
            The bytes are truncated, padded, of an unknown version or detector,
            describe an impossible image, or fail their checksum.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise InvalidDerivativeError("a derivative fingerprint must be bytes")
        data = bytes(data)
        if len(data) < _HEADER.size + _CHECK_BYTES:
            raise InvalidDerivativeError(
                f"{len(data)} bytes is too short for a derivative fingerprint"
            )
        if len(data) > MAX_BYTES:
            raise InvalidDerivativeError(
                f"{len(data):,} bytes is over the {MAX_BYTES:,}-byte limit of a "
                "derivative fingerprint"
            )
        magic, version, detector, k, width, height = _HEADER.unpack_from(data)
        if magic != _MAGIC:
            raise InvalidDerivativeError("not a TakeBack derivative fingerprint (bad magic bytes)")
        if version != FORMAT_VERSION:
            raise InvalidDerivativeError(
                f"derivative fingerprint format version {version} is not supported "
                f"(this TakeBack reads version {FORMAT_VERSION}); upgrade TakeBack"
            )
        if detector != _ORB:
            raise InvalidDerivativeError(f"unknown feature detector id {detector}")
        if not MIN_FEATURES <= k <= MAX_FEATURES:
            raise InvalidDerivativeError(
                f"a derivative fingerprint holds {MIN_FEATURES}-{MAX_FEATURES} features, not {k}"
            )
        if not (MIN_SIDE <= width <= _MAX_SIDE and MIN_SIDE <= height <= _MAX_SIDE):
            raise InvalidDerivativeError(f"impossible image size {width}x{height} px")
        expected = _HEADER.size + k * _PER_FEATURE + _CHECK_BYTES
        if len(data) != expected:
            raise InvalidDerivativeError(
                f"a derivative fingerprint with {k} features is {expected} bytes, not {len(data)}"
            )
        body, check = data[:-_CHECK_BYTES], data[-_CHECK_BYTES:]
        if hashlib.sha256(body).digest()[:_CHECK_BYTES] != check:
            raise InvalidDerivativeError(
                "derivative fingerprint checksum mismatch: the bytes are damaged"
            )
        off = _HEADER.size
        desc = np.frombuffer(data, np.uint8, k * _DESC_BYTES, off).reshape(k, _DESC_BYTES)
        off += k * _DESC_BYTES
        q = np.frombuffer(data, "<u2", 2 * k, off).reshape(k, 2).astype(np.float64)
        off += 4 * k
        qs = np.frombuffer(data, np.uint8, k, off).astype(np.float64)
        qa = np.frombuffer(data, np.uint8, k, off + k).astype(np.float64)
        points = np.stack([q[:, 0] / 65535 * (width - 1), q[:, 1] / 65535 * (height - 1)], axis=1)
        for arr in (desc, points):
            arr.setflags(write=False)
        return cls(
            width=width,
            height=height,
            descriptors=desc,
            points=points,
            sizes=2.0 ** (qs / 16),
            angles=qa * (360.0 / 256),
            _blob=data,
        )

    def to_bytes(self) -> bytes:
        """The canonical serialized form (see the module documentation)."""
        return self._blob

    @property
    def size_bytes(self) -> int:
        """Serialized size in bytes (at most :data:`MAX_BYTES`)."""
        return len(self._blob)

    @property
    def digest(self) -> str:
        """SHA-256 of the serialized form, in hex (``derivative_digest`` in the log)."""
        return hashlib.sha256(self._blob).hexdigest()

    def __len__(self) -> int:
        return len(self.descriptors)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DerivativeFingerprint) and other._blob == self._blob

    def __hash__(self) -> int:
        return hash(self._blob)

    def __repr__(self) -> str:
        return (
            f"DerivativeFingerprint({self.width}x{self.height}, {len(self)} features, "
            f"{self.size_bytes} bytes)"
        )


@dataclass(frozen=True)
class DerivativeMatch:
    """The result of verifying a suspect against one derivative fingerprint.

    Attributes
    ----------
    score : float
        Calibrated score in [0, 1]: ``-log10`` of the probability that an
        unrelated pair reaches this many inliers, divided by 8.
    matched : bool
        ``score >= threshold``.
    threshold : float
        The decision score used (:data:`DECISION_SCORE` by default).
    matrix : (3, 3) float64 array or None
        Maps original pixel coordinates ``(x, y, 1)`` to suspect coordinates
        (``None`` when no transform was found).
    mirrored : bool
        The suspect is a mirror image of the original (``matrix`` includes the flip).
    inliers : int
        Feature correspondences consistent with ``matrix``.
    tentative : int
        Correspondences that passed the descriptor ratio test.
    coverage : float
        Share of the suspect's area covered by the projected original frame.
    """

    score: float
    matched: bool
    threshold: float
    matrix: np.ndarray | None
    mirrored: bool
    inliers: int
    tentative: int
    coverage: float

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``method: "derivative"`` fields of ``takeback match --json``)."""
        return {
            "score": round(self.score, 4),
            "matched": self.matched,
            "threshold": self.threshold,
            "matrix": None if self.matrix is None else np.round(self.matrix, 6).tolist(),
            "mirrored": self.mirrored,
            "inliers": self.inliers,
            "coverage": round(self.coverage, 4),
        }


@dataclass(frozen=True, eq=False)
class SuspectFeatures:
    """Features of a suspect in both orientations, extracted once per query.

    Attributes
    ----------
    width, height : int
        Suspect size in pixels.
    scale : float
        Suspect pixels per working-size pixel.
    descriptors : tuple of two (L, 32) uint8 arrays
        As-is and mirrored.
    points : tuple of two (L, 2) float32 arrays
        Working-size ``(x, y)`` positions; the mirrored ones are in the mirrored frame.
    """

    width: int
    height: int
    scale: float
    descriptors: tuple[np.ndarray, np.ndarray]
    points: tuple[np.ndarray, np.ndarray]


def _grey_working(rgb: np.ndarray) -> tuple[np.ndarray, float]:
    """Grey ``(M, N)`` uint8 at working size, and original pixels per working pixel."""
    arr = np.asarray(rgb)
    if arr.ndim == 3 and arr.shape[2] == 3:
        grey = cv2.cvtColor(np.ascontiguousarray(arr, np.uint8), cv2.COLOR_RGB2GRAY)
    elif arr.ndim == 2:
        grey = np.ascontiguousarray(arr, np.uint8)
    else:
        raise ValueError(f"expected an (M, N) or (M, N, 3) image, not shape {arr.shape}")
    h, w = grey.shape
    if min(h, w) < MIN_SIDE:
        raise TooLittleDetailError(
            f"the image is {w}x{h} px; a derivative fingerprint needs at least {MIN_SIDE} px "
            "on the short side"
        )
    # Both originals and suspects are brought to the same longer side, up or
    # down, so that a resized repost and its original meet at similar scales.
    scale = max(h, w) / WORKING_SIZE
    size = (max(1, round(w / scale)), max(1, round(h / scale)))
    interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
    return cv2.resize(grey, size, interpolation=interp), w / size[0]


def _detect(grey: np.ndarray, n: int) -> tuple[list[cv2.KeyPoint], np.ndarray]:
    """ORB keypoints spread over a grid (best response per cell first) and descriptors."""
    orb = cv2.ORB_create(  # type: ignore[attr-defined]
        nfeatures=max(4 * n, 2000), scaleFactor=1.2, nlevels=8, fastThreshold=7
    )
    kps, desc = orb.detectAndCompute(grey, None)
    if desc is None or not kps:
        return [], np.zeros((0, _DESC_BYTES), np.uint8)
    h, w = grey.shape
    xy = np.array([kp.pt for kp in kps], np.float32)
    resp = np.array([kp.response for kp in kps], np.float32)
    cell = (np.minimum(xy[:, 1] * _GRID // h, _GRID - 1) * _GRID) + np.minimum(
        xy[:, 0] * _GRID // w, _GRID - 1
    )
    order = np.lexsort((-resp, cell))  # by cell, best response first
    rank = np.empty(len(kps), np.int64)
    cells = cell[order]
    starts = np.r_[0, np.flatnonzero(np.diff(cells)) + 1]
    counts = np.diff(np.r_[starts, len(cells)])
    rank[order] = np.arange(len(cells)) - np.repeat(starts, counts)
    # Round-robin over cells: every cell's best, then every cell's second, ...
    keep = np.lexsort((-resp, rank))[:n]
    return [kps[i] for i in keep], desc[keep]


def derivative_from_pixels(rgb: np.ndarray) -> DerivativeFingerprint:
    """Compute the derivative fingerprint of an original photo.

    Parameters
    ----------
    rgb : (M, N, 3) or (M, N) uint8 array
        The full-resolution, EXIF-oriented photo (as :func:`takeback.imageio.load_rgb`
        returns it).

    Returns
    -------
    DerivativeFingerprint
        At most :data:`MAX_FEATURES` features, at most :data:`MAX_BYTES` bytes.

    Raises
    ------
    TooLittleDetailError
        The image is under 64 px on a side, or flat / blank with too few features.
    """
    arr = np.asarray(rgb)
    grey, scale = _grey_working(arr)
    kps, desc = _detect(grey, MAX_FEATURES)
    if len(kps) < MIN_FEATURES:
        raise TooLittleDetailError(
            f"no derivative fingerprint: too little detail ({len(kps)} local features, "
            f"{MIN_FEATURES} needed); PDQ still applies"
        )
    h, w = arr.shape[:2]
    pts = (np.array([kp.pt for kp in kps], np.float64) + 0.5) * scale - 0.5
    sizes = np.array([kp.size for kp in kps], np.float64) * scale
    angles = np.array([kp.angle for kp in kps], np.float64)
    return DerivativeFingerprint._build(w, h, desc, pts, sizes, angles)


def derivative_from_file(
    path: str | os.PathLike[str] | bytes, *, limits: ImageLimits | None = None
) -> DerivativeFingerprint:
    """Compute the derivative fingerprint of an image file (or its encoded bytes).

    The image is decoded by :func:`takeback.imageio.load_rgb` (limits, EXIF
    orientation, RGB), then passed to :func:`derivative_from_pixels`.
    """
    return derivative_from_pixels(load_rgb(path, limits=limits))


def suspect_features(rgb: np.ndarray) -> SuspectFeatures:
    """Extract a suspect's features as-is and mirrored (once per query).

    Parameters
    ----------
    rgb : (M, N, 3) or (M, N) uint8 array
        The suspect image.
    """
    arr = np.asarray(rgb)
    grey, scale = _grey_working(arr)
    descs, pts = [], []
    for g in (grey, np.ascontiguousarray(grey[:, ::-1])):
        kps, desc = _detect(g, SUSPECT_FEATURES)
        descs.append(desc)
        pts.append(np.array([kp.pt for kp in kps], np.float32).reshape(-1, 2))
    h, w = arr.shape[:2]
    return SuspectFeatures(w, h, scale, (descs[0], descs[1]), (pts[0], pts[1]))


def score_of_inliers(inliers: int) -> float:
    """Calibrated score of an inlier count: ``-log10 P_null(>= inliers) / 8`` in [0, 1]."""
    if inliers < _NULL_N0:
        return 0.0
    return float(np.clip((_NULL_B * inliers - _NULL_A) / 8.0, 0.0, 1.0))


_matcher = cv2.BFMatcher(cv2.NORM_HAMMING)


def _verify_one(
    fp: DerivativeFingerprint, desc: np.ndarray, spts: np.ndarray, fp_scale: float
) -> tuple[int, int, np.ndarray | None]:
    """Inliers, tentative count and working-size matrix for one orientation."""
    if len(desc) < 2:
        return 0, 0, None
    knn = _matcher.knnMatch(np.ascontiguousarray(fp.descriptors), desc, k=2)
    src, dst = [], []
    used: set[int] = set()
    for pair in knn:
        if len(pair) < 2:
            continue
        m, n = pair
        if m.distance < RATIO * n.distance and m.trainIdx not in used:
            used.add(m.trainIdx)
            src.append(m.queryIdx)
            dst.append(m.trainIdx)
    if len(src) < 3:
        return 0, len(src), None
    p = ((fp.points[src] + 0.5) / fp_scale - 0.5).astype(np.float32)
    q = spts[dst]
    matrix, mask = cv2.estimateAffinePartial2D(
        p, q, method=cv2.RANSAC, ransacReprojThreshold=REPROJ_THRESHOLD, maxIters=2000,
        confidence=0.995, refineIters=10,
    )  # fmt: skip
    if matrix is None or mask is None:
        return 0, len(src), None
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not 0.05 <= scale <= 20:
        return 0, len(src), None
    return int(mask.sum()), len(src), np.vstack([matrix, [0.0, 0.0, 1.0]])


def verify_derivative(
    suspect: np.ndarray | SuspectFeatures,
    fingerprint: DerivativeFingerprint,
    *,
    threshold: float = DECISION_SCORE,
) -> DerivativeMatch:
    """Verify a suspect against one registered derivative fingerprint.

    Parameters
    ----------
    suspect : (M, N, 3) uint8 array or SuspectFeatures
        The suspect image, or its features from :func:`suspect_features`
        (extract once when verifying several candidates).
    fingerprint : DerivativeFingerprint
        The candidate original.
    threshold : float, optional
        Decision score.

    Returns
    -------
    DerivativeMatch
        Always a result; ``matched`` is False when the suspect is not a copy.

    Examples
    --------
    >>> from takeback.imageio import load_rgb
    >>> from takeback.samples import sample_photo
    >>> rgb = load_rgb(sample_photo("chelsea.png"))
    >>> fp = derivative_from_pixels(rgb)
    >>> m = verify_derivative(rgb[40:, ::-1], fp)
    >>> m.matched, m.mirrored
    (True, True)
    """
    feats = suspect if isinstance(suspect, SuspectFeatures) else suspect_features(suspect)
    fp_scale = fingerprint.width / round(
        fingerprint.width * WORKING_SIZE / max(fingerprint.width, fingerprint.height)
    )
    best: tuple[int, int, np.ndarray | None, bool] = (0, 0, None, False)
    for mirrored in (False, True):
        i = int(mirrored)
        inl, tent, mat = _verify_one(fingerprint, feats.descriptors[i], feats.points[i], fp_scale)
        if inl > best[0] or (best[2] is None and tent > best[1]):
            best = (inl, tent, mat, mirrored)
    inliers, tentative, wmat, mirrored = best
    matrix = None
    coverage = 0.0
    if wmat is not None:
        s = feats.scale
        # original full-res -> original working -> suspect working (maybe mirrored) -> suspect
        to_work = np.array(
            [
                [1 / fp_scale, 0, 0.5 / fp_scale - 0.5],
                [0, 1 / fp_scale, 0.5 / fp_scale - 0.5],
                [0, 0, 1],
            ]
        )
        work_w = feats.width / s
        flip = np.array([[-1.0, 0, work_w - 1], [0, 1, 0], [0, 0, 1]]) if mirrored else np.eye(3)
        to_full = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
        matrix = to_full @ flip @ wmat @ to_work
        coverage = _coverage(
            matrix, fingerprint.width, fingerprint.height, feats.width, feats.height
        )
    score = score_of_inliers(inliers)
    return DerivativeMatch(
        score=score,
        matched=score >= threshold,
        threshold=threshold,
        matrix=matrix,
        mirrored=mirrored,
        inliers=inliers,
        tentative=tentative,
        coverage=coverage,
    )


def _coverage(matrix: np.ndarray, ow: int, oh: int, sw: int, sh: int) -> float:
    """Share of the suspect frame covered by the projected original frame."""
    corners = np.array(
        [[-0.5, -0.5, 1], [ow - 0.5, -0.5, 1], [ow - 0.5, oh - 0.5, 1], [-0.5, oh - 0.5, 1]]
    )
    proj = (matrix @ corners.T).T
    poly = (proj[:, :2] / proj[:, 2:3]).astype(np.float32)
    frame = np.array(
        [[-0.5, -0.5], [sw - 0.5, -0.5], [sw - 0.5, sh - 0.5], [-0.5, sh - 0.5]], np.float32
    )
    if cv2.contourArea(poly, oriented=True) < 0:
        poly = poly[::-1].copy()
    area, _ = cv2.intersectConvexConvex(poly, frame)
    return float(np.clip(area / (sw * sh), 0.0, 1.0))
