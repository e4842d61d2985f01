"""The derivative fingerprint: local features that survive body replacement.

PDQ summarises the whole frame, so a fake that replaces the body, crops and
rotates the photo no longer matches it. The derivative fingerprint keeps, for a
few hundred small patches spread over the frame (face, hair, hands,
background), a shortened RootSIFT descriptor and where the patch is, how large
and which way it points. A suspect is matched by finding the same patches in it
and checking that they agree on one similarity transform (scale, rotation,
shift; mirrored suspects are tried too): every correspondence proposes a
transform from its own position, scale and orientation, and the proposal most
others agree with (position, scale change and rotation all within tolerance)
wins. The inlier count is calibrated against unrelated pairs.

Coordinates
-----------
Keypoint positions and the 3x3 matrices follow :mod:`skimage.transform`: a
point is ``(x, y) = (col, row)`` in pixels of the full-resolution, EXIF-oriented
image, pixel centres at integers. A matrix ``H`` maps an original point ``p`` to
the suspect by ``H @ (x, y, 1)``.

Wire format (version 2)
-----------------------
All integers little-endian::

    offset size  field
    0      4     magic b"TBDF"
    4      1     format version (2)
    5      1     detector (2 = RootSIFT reduced to 32 principal axes, 1 byte each)
    6      2     number of features K (<= MAX_FEATURES)
    8      4     width of the original (px)
    12     4     height of the original (px)
    16     32K   descriptors, K x 32 bytes: round(128 + 42.5 * y_j / spread_j), clipped
    ..     4K    positions, K x (uint16 x, uint16 y): round(x / (width - 1) * 65535)
    ..     K     sizes, uint8: round(16 * log2(size in px)), clipped to 0..255
    ..     K     angles, uint8: round(angle / 360 * 256) mod 256
    ..     8     the first 8 bytes of SHA-256 over everything before

``y`` is the RootSIFT descriptor minus the model's mean, projected on the
model's 32 axes (``derivative_model.npz``, trained by
``bench/train_derivative.py`` on the tune half of the benchmark corpus).
:attr:`DerivativeFingerprint.digest` is the SHA-256 of the whole blob, which is
what the registration log commits to (``derivative_digest``). See
``docs/derivative.md`` for what the fingerprint reveals about the photo.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
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
    "to_working",
    "verify_derivative",
    "working_scale",
]

#: Format version written by :meth:`DerivativeFingerprint.to_bytes`.
FORMAT_VERSION: Final = 2
#: Largest number of features a fingerprint holds.
MAX_FEATURES: Final = 384
#: Fewest features a fingerprint must hold; below this the photo has too little detail.
MIN_FEATURES: Final = 24
#: Largest serialized size in bytes (the issue's budget is 16 KB).
MAX_BYTES: Final = 16 * 1024
#: Longer side, in pixels, both originals and suspects are brought to before extraction.
WORKING_SIZE: Final = 320
#: Longer side, in pixels, suspects are brought to (the transform absorbs the
#: difference from :data:`WORKING_SIZE`).
SUSPECT_SIZE: Final = 320
#: SIFT contrast threshold for suspects.
SUSPECT_CONTRAST: Final = 0.015
#: Features extracted from a suspect (the mirror image reuses them).
SUSPECT_FEATURES: Final = 1500
#: Keypoints OpenCV keeps (the strongest, by response) and describes when a
#: photo is registered, before the grid selection picks :data:`MAX_FEATURES`
#: of them. Fewer are cheaper but cost doctored copies (docs/benchmarks.md,
#: "Cheaper extraction" and "Edge-like keypoints").
REGISTER_KEYPOINTS: Final = 4 * MAX_FEATURES
#: SIFT's edge threshold on both sides (OpenCV's default). 20 verified 6 more
#: doctored copies on the tune half, but held out it matched two unrelated
#: skin-tone fills (docs/benchmarks.md, "Edge-like keypoints").
EDGE_THRESHOLD: Final = 10.0
#: Lowe's ratio for tentative matches (best / second-best descriptor distance).
RATIO: Final = 0.9
#: SIFT contrast threshold (OpenCV's default is 0.04; lower finds features in flat regions).
CONTRAST: Final = 0.015
#: Largest distance, in working-size pixels of the original, between where a
#: verified feature is and where the transform puts it (scaled with the transform).
REPROJ_THRESHOLD: Final = 3.0
#: Largest disagreement between a correspondence's own scale change (log2) and
#: rotation and the transform's.
SCALE_TOLERANCE: Final = 0.4
ANGLE_TOLERANCE: Final = 15.0
#: Score at or above which a verification is a match. The score is
#: ``-log10(P_null) / 8`` where ``P_null`` is the fitted probability that an
#: unrelated pair reaches the inlier count (see :func:`score_of_inliers`); 0.8
#: means 6 inliers or more, ``P_null`` about 3.3e-7 per verification (the null
#: model's pairs were verified in both orientations; 6 is past the counts the
#: calibration saw, from the fitted line), under 2e-6 per query: a lookup
#: verifies its 5 candidates, each in the orientation that found it (a suspect
#: with few features 15 more, which match only at 7 inliers or more, 1.7e-8
#: each: 1.9e-6 in all; :data:`~.derivative_index.EXTRA_INLIERS`).
DECISION_SCORE: Final = 0.8

_MAGIC: Final = b"TBDF"
_ROOTSIFT_PCA32: Final = 2
_HEADER: Final = struct.Struct("<4sBBHII")
_DESC_BYTES: Final = 32
_PER_FEATURE: Final = _DESC_BYTES + 4 + 1 + 1
_CHECK_BYTES: Final = 8
_GRID: Final = 8
_MAX_SIDE: Final = 1 << 20

# Null model of the inlier count of unrelated pairs, fitted on the tune half of
# the benchmark corpus (bench/bench_derivative.py --calibrate):
# log10 P(inliers >= n) = _NULL_A - _NULL_B * n for n >= _NULL_N0.
# 15,208 unrelated pairs (69 tune photos x 4 kinds x 2 suspects, each against
# 20 random originals and the unrelated ones among its 10 best-voted
# candidates): inlier counts 0-4, P(>= 3) = 2.6e-3, P(>= 4) = 1.3e-4, none at 5;
# the line through n = 4 with the slope from 3 to 4 (bench/out/derivative-calibrate.json).
_NULL_A: Final = 1.32
_NULL_B: Final = 1.3
_NULL_N0: Final = 3
#: Inliers closer to a line than this (working-size pixels, smallest standard
#: deviation of their positions in the original) are a caption or a watermark
#: strip shared by two unrelated images (a line of text), not a scene; such a
#: group counts as at most :data:`_STRIP_CAP` inliers. On the tune half, true
#: matches of 6 inliers or more had at least 4.5 px; shared caption text 2.6 px.
MIN_SPREAD: Final = 3.5
#: Inliers all within a patch this small (working-size pixels, largest standard
#: deviation of their positions in the original: a blob some 20 px across, 0.5%
#: of the frame) are lettering or a small pattern two unrelated images share
#: (a sign against a sign), not a scene; such a group too counts as at most
#: :data:`_STRIP_CAP` inliers. On the tune half (2,232 doctored copies reaching
#: 6 inliers against their own original) the smallest was 6.9 px; the held-out
#: false match it was set for (street-sign lettering against a mosaic) 5.1 px.
MIN_EXTENT: Final = 6.0
#: Inliers all this close to one edge of the original's frame, and to one edge
#: of the suspect's (share of the frame across that edge), are where captions,
#: watermarks and borders sit: a caption bar of one photo against another's
#: that :func:`edge_bands` did not find. They count as at most
#: :data:`_STRIP_CAP` too. On the tune half (767 doctored copies and reposts
#: reaching 6 inliers against their own original) the smallest share was 0.126;
#: the caption false match it was set for (30,000 held-out queries, a 165 x 211
#: px repost at JPEG quality 56) 0.066.
EDGE_SHARE: Final = 0.1
#: Inliers whose bounding box covers less than this share of the suspect's
#: frame are a small patch two unrelated images share: a reposting site's
#: watermark (a badge with its name and emblem) stamped on both, anywhere in
#: the frame. They count as at most :data:`_STRIP_CAP` too. On the tune half
#: (bench/bench_watermark.py's four watermarks at 15-35 % of the width), the
#: 179 watermark groups of 6 inliers or more that the rules above let through
#: covered at most 0.024 of the suspect; of 1,014 groups of 6 or more of
#: doctored copies (plain and stamped) against their own original, 3 covered
#: less than 0.025 (the smallest 0.009).
MIN_BOX_SHARE: Final = 0.025
_STRIP_CAP: Final = 3
#: Shared content: when two registered photos both put a group of inliers in
#: the same small part of a suspect (the cores of their inlier boxes in the
#: suspect each cover under SHARED_BOX of its frame and overlap on at least
#: :data:`SHARED_OVERLAP` of the smaller one), and the two photos are not
#: copies of one scene (:func:`_same_scene`), what matched is something the
#: photos share (a site's badge stamped on both), not a scene: neither is a
#: match (:func:`shared_content`). The second photo's group counts as a
#: witness when the rules above capped it, too. A collage matches in different
#: places; a copy of a photo matches over what is left of the scene, beyond
#: this share; two registrations of one photo (or a photo and its crop) match
#: each other and stay matches.
SHARED_BOX: Final = 0.1
SHARED_OVERLAP: Final = 0.5
#: The groups compared are their inliers' boxes without the eighth furthest
#: out on each side of each axis (``DerivativeMatch.core``; groups of 8 or
#: more): a stamped stranger's badge group that one stray inlier in the scene
#: widened past SHARED_BOX (bench/bench_watermark.py, 9 inliers; a look at
#: the case). With cores alike on half of the smaller one, 3 of 6,000 fresh
#: stamped strangers matched and recall held (docs/benchmarks.md).
CORE_TRIM: Final = 8
#: Two registered photos matching each other only over a small part of their
#: frames are still copies of one scene when the inliers are at least this
#: share of the first photo's features that land in the second's frame (a
#: photo whose detail is one small object on a plain ground, registered
#: twice). On the tune half (bench/bench_watermark.py --same-scene): such a
#: photo against a copy resized to 0.6, 0.43-0.89 (134 pairs); the 2 pairs of
#: stamped unrelated photos that matched each other on the badge, 0.20 and 0.33.
SHARED_SAME: Final = 0.4


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
        Quantized RootSIFT descriptors reduced to 32 principal axes
        (:func:`dequantize` gives them back as float32).
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
    _cache: dict[str, object] = field(default_factory=dict, repr=False, compare=False)

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
                _HEADER.pack(_MAGIC, FORMAT_VERSION, _ROOTSIFT_PCA32, k, width, height),
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
        if detector != _ROOTSIFT_PCA32:
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
    region : (x0, y0, x1, y1) or None
        Bounding box of the inliers in suspect pixel coordinates (the suspect
        as it is, not mirrored); None without inliers.
    group : int
        Inliers of the transform (of the orientation kept) before the rules
        for what unrelated images share (captions, strips, small patches,
        badges) capped them at 3; ``inliers`` when no rule applied. When a
        capped group hid a transform that matches among the other
        correspondences, that transform is the one kept, and the capped
        group is not reported.
    core : (x0, y0, x1, y1) or None
        ``region`` without stray inliers: along each axis, the
        ``1 / CORE_TRIM`` of the inliers furthest out on either side are left
        out (none under :data:`CORE_TRIM` inliers). What
        :func:`shared_content` compares, so that a badge's group widened by a
        stray inlier or two still reads as the badge.
    """

    score: float
    matched: bool
    threshold: float
    matrix: np.ndarray | None
    mirrored: bool
    inliers: int
    tentative: int
    coverage: float
    region: tuple[float, float, float, float] | None = None
    group: int = 0
    core: tuple[float, float, float, float] | None = None

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

    The mirrored features are not extracted again: a SIFT descriptor of the
    mirror image is a fixed permutation of the original descriptor, and the
    keypoint's x and orientation mirror with it.

    Attributes
    ----------
    width, height : int
        Suspect size in pixels.
    scale : float
        Suspect pixels per working-size pixel.
    descriptors : tuple of two (L, 32) float32 arrays
        As-is and mirrored, projected on the model's axes.
    points : tuple of two (L, 2) float32 arrays
        Working-size ``(x, y)`` positions; the mirrored ones are in the mirrored frame.
    sizes : (L,) float32 array
        Keypoint diameters in working-size pixels (the same in both orientations).
    angles : tuple of two (L,) float32 arrays
        Keypoint orientations in degrees, as-is and mirrored.
    """

    width: int
    height: int
    scale: float
    descriptors: tuple[np.ndarray, np.ndarray]
    points: tuple[np.ndarray, np.ndarray]
    sizes: np.ndarray
    angles: tuple[np.ndarray, np.ndarray]

    def __len__(self) -> int:
        return len(self.sizes)

    @property
    def frame(self) -> tuple[int, int]:
        """Working-size width and height."""
        return round(self.width / self.scale), round(self.height / self.scale)


@dataclass(frozen=True)
class _Model:
    mean: np.ndarray  # (128,)
    axes: np.ndarray  # (32, 128)
    spread: np.ndarray  # (32,)
    coarse: np.ndarray  # (C, 32)
    fine: np.ndarray  # (C, F, 32)


@cache
def model() -> _Model:
    """The shipped PCA axes and vocabulary (``derivative_model.npz``)."""
    ref = resources.files(__package__ or "takeback.fingerprint") / "derivative_model.npz"
    with resources.as_file(ref) as path, np.load(path) as z:
        return _Model(
            mean=z["mean"].astype(np.float32),
            axes=np.ascontiguousarray(z["axes"].astype(np.float32)),
            spread=z["spread"].astype(np.float32),
            coarse=np.ascontiguousarray(z["coarse"].astype(np.float32)),
            fine=np.ascontiguousarray(z["fine"].astype(np.float32)),
        )


def project(rootsift: np.ndarray) -> np.ndarray:
    """RootSIFT ``(L, 128)`` -> the model's 32 axes, float32."""
    m = model()
    return np.ascontiguousarray((rootsift - m.mean) @ m.axes.T, np.float32)


def quantize(y: np.ndarray) -> np.ndarray:
    """Projected descriptors -> the stored bytes (``(L, 32)`` uint8)."""
    q = np.rint(128 + _QSCALE * y / model().spread)
    return np.clip(q, 0, 255).astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """Stored bytes -> projected descriptors (float32)."""
    return ((q.astype(np.float32) - 128) * (model().spread / _QSCALE)).astype(np.float32)


_QSCALE: Final = 42.5
# SIFT of the mirror image: the 4 x 4 spatial cells swap left and right (OpenCV
# stores the cells column-major in this sense) and
# each cell's 8 orientation bins reverse.
_MIRROR_PERM: Final = (
    np.arange(128).reshape(4, 4, 8)[::-1, :, :][:, :, (8 - np.arange(8)) % 8].ravel()
)


def _grey_working(rgb: np.ndarray, size: int) -> tuple[np.ndarray, float]:
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
    scale = max(h, w) / size
    dims = (max(1, round(w / scale)), max(1, round(h / scale)))
    interp = cv2.INTER_AREA if scale > 1 else cv2.INTER_LINEAR
    return cv2.resize(grey, dims, interpolation=interp), w / dims[0]


def _sift(
    grey: np.ndarray, n: int, contrast: float = CONTRAST, mask: np.ndarray | None = None
) -> tuple[list[cv2.KeyPoint], np.ndarray]:
    """Up to ``n`` SIFT keypoints and their RootSIFT descriptors (float32, L2 norm 1).

    ``mask`` (uint8, 0 where features are not wanted) drops keypoints after
    OpenCV keeps its ``n`` best and before it describes them.
    """
    sift = cv2.SIFT_create(  # type: ignore[attr-defined]
        nfeatures=n, contrastThreshold=contrast, edgeThreshold=EDGE_THRESHOLD
    )
    kps, desc = sift.detectAndCompute(grey, mask)
    if desc is None or not kps:
        return [], np.zeros((0, 128), np.float32)
    desc = desc / np.maximum(desc.sum(axis=1, keepdims=True), 1e-7)
    return list(kps), np.sqrt(desc).astype(np.float32)


def _keypoint_arrays(kps: Sequence[cv2.KeyPoint]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Positions ``(N, 2)``, sizes and angles of OpenCV keypoints, float32.

    OpenCV converts the positions itself; reading each keypoint's attributes
    from Python is what costs (~0.6 ms for 800-900 keypoints in a look), so
    each of the others takes one pass.
    """
    n = len(kps)
    pts = np.asarray(cv2.KeyPoint.convert(kps) if n else (), np.float32).reshape(n, 2)
    sizes = np.fromiter((kp.size for kp in kps), np.float32, n)
    return pts, sizes, np.fromiter((kp.angle for kp in kps), np.float32, n)


def _grid_select(xy: np.ndarray, resp: np.ndarray, shape: tuple[int, int], n: int) -> np.ndarray:
    """Indices of ``n`` keypoints spread over a grid (best response per cell first).

    ``xy`` ``(N, 2)`` and ``resp`` ``(N,)`` are the keypoints' positions and
    responses (float32).
    """
    h, w = shape
    cell = (np.minimum(xy[:, 1] * _GRID // h, _GRID - 1) * _GRID) + np.minimum(
        xy[:, 0] * _GRID // w, _GRID - 1
    )
    order = np.lexsort((-resp, cell))  # by cell, best response first
    rank = np.empty(len(xy), np.int64)
    cells = cell[order]
    starts = np.r_[0, np.flatnonzero(np.diff(cells)) + 1]
    counts = np.diff(np.r_[starts, len(cells)])
    rank[order] = np.arange(len(cells)) - np.repeat(starts, counts)
    # Round-robin over cells: every cell's best, then every cell's second, ...
    return np.lexsort((-resp, rank))[:n]


def derivative_from_pixels(
    rgb: np.ndarray, *, size: tuple[int, int] | None = None
) -> DerivativeFingerprint:
    """Compute the derivative fingerprint of an original photo.

    Parameters
    ----------
    rgb : (M, N, 3) or (M, N) uint8 array
        The EXIF-oriented photo (as :func:`takeback.imageio.load_rgb` returns it).
    size : (width, height), optional
        The photo's full size when ``rgb`` is a reduced decode of it (a JPEG
        draft decode, say): positions and sizes are then stored in full-size
        pixels. By default, ``rgb``'s own size.

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
    grey, scale = _grey_working(arr, WORKING_SIZE)
    kps, desc = _sift(grey, REGISTER_KEYPOINTS)
    if len(kps) < MIN_FEATURES:
        raise TooLittleDetailError(
            f"no derivative fingerprint: too little detail ({len(kps)} local features, "
            f"{MIN_FEATURES} needed); PDQ still applies"
        )
    xy, kp_sizes, kp_angles = _keypoint_arrays(kps)
    responses = np.fromiter((kp.response for kp in kps), np.float32, len(kps))
    keep = _grid_select(xy, responses, grey.shape, MAX_FEATURES)
    h, w = arr.shape[:2]
    if size is not None:
        if min(size) < 1:
            raise ValueError(f"impossible full size {size}")
        scale *= size[0] / w
        w, h = size
    pts = (xy[keep].astype(np.float64) + 0.5) * scale - 0.5
    sizes = kp_sizes[keep].astype(np.float64) * scale
    angles = kp_angles[keep].astype(np.float64)
    return DerivativeFingerprint._build(w, h, quantize(project(desc[keep])), pts, sizes, angles)


def derivative_from_file(
    path: str | os.PathLike[str] | bytes, *, limits: ImageLimits | None = None
) -> DerivativeFingerprint:
    """Compute the derivative fingerprint of an image file (or its encoded bytes).

    The image is decoded by :func:`takeback.imageio.load_rgb` (limits, EXIF
    orientation, RGB), then passed to :func:`derivative_from_pixels`.
    """
    return derivative_from_pixels(load_rgb(path, limits=limits))


def edge_bands(grey: np.ndarray) -> np.ndarray:
    """Borders and caption bars along the edges of an image: a boolean mask.

    A band is found from a line (row or column) of one grey level across
    :data:`_BAND_UNIFORM` of it, at most :data:`_BAND_MAX` of the side in from
    an edge, provided every line between it and the edge keeps that level on
    at least :data:`_BAND_KEEP` of it (the rows of a caption's text below its
    top margin do). The band runs from the edge inward while the lines keep
    the level (text does not stop it; up to 4 lines that do not are bridged).

    A small re-compressed caption bar has no such line: JPEG noise and the
    text's blur reach every line. It is found from the picture side instead:
    the bar's level is its outermost line's (median); every line keeps it,
    within :data:`_CAPTION_TOL`, on at least :data:`_CAPTION_KEEP` of it (its
    text lines do) until a line that hardly does (:data:`_CAPTION_GONE`): the
    picture. The bar must end straight, as a bar does and a sky or a wall does
    not: within the last 4 lines before that, one keeps the level on
    :data:`_CAPTION_MARGIN` of it (the margin under the text), and at most 2
    lines of blur come between.

    Bands may stack (a caption bar outside a border; up to 3 per side). Top
    and bottom are searched first, and a side's lines count only their pixels
    outside the bands already found. A flat sky along the top edge is taken
    as a band too, which costs little: it has few features. The search is
    compiled (:func:`._consensus.edge_band_mask`).
    """
    from ._consensus import edge_band_mask  # numba: not needed to compute fingerprints

    arr = np.ascontiguousarray(grey, np.uint8)
    if arr.ndim != 2:
        raise ValueError(f"expected an (M, N) grey image, not shape {arr.shape}")
    return edge_band_mask(
        arr,
        _BAND_MAX,
        (float(_BAND_TOL), _BAND_UNIFORM, _BAND_KEEP),
        (float(_CAPTION_TOL), _CAPTION_KEEP, _CAPTION_GONE, _CAPTION_MARGIN),
    )


_CAPTION_TOL: Final = 10
_CAPTION_KEEP: Final = 0.15
_CAPTION_GONE: Final = 0.1
_CAPTION_MARGIN: Final = 0.6
_BAND_UNIFORM: Final = 0.9
_BAND_KEEP: Final = 0.3
_BAND_TOL: Final = 6
_BAND_MAX: Final = 0.25


def suspect_features(rgb: np.ndarray) -> SuspectFeatures:
    """Extract a suspect's features as-is and mirrored (once per query).

    Features inside borders and caption bars along the edges
    (:func:`edge_bands`) are dropped: a caption's text is shared by many
    unrelated reposts and would otherwise match a registered image carrying
    the same text.

    Parameters
    ----------
    rgb : (M, N, 3) or (M, N) uint8 array
        The suspect image.
    """
    arr = np.asarray(rgb)
    grey, scale = _grey_working(arr, SUSPECT_SIZE)
    bands = edge_bands(grey)
    # OpenCV leaves out keypoints in the bands (the pixel their position rounds
    # to) after keeping its best SUSPECT_FEATURES and before describing them
    mask = np.where(bands, 0, 255).astype(np.uint8) if bands.any() else None
    kps, desc = _sift(grey, SUSPECT_FEATURES, SUSPECT_CONTRAST, mask)
    pts, sizes, angles = _keypoint_arrays(kps)
    mpts = pts.copy()
    mpts[:, 0] = grey.shape[1] - 1 - mpts[:, 0]
    h, w = arr.shape[:2]
    return SuspectFeatures(
        w,
        h,
        scale,
        (project(desc), project(desc[:, _MIRROR_PERM])),
        (pts, mpts),
        sizes,
        (angles, np.mod(180.0 - angles, 360.0).astype(np.float32)),
    )


def score_of_inliers(inliers: int) -> float:
    """Calibrated score of an inlier count: ``-log10 P_null(>= inliers) / 8`` in [0, 1]."""
    if inliers < _NULL_N0:
        return 0.0
    return float(np.clip((_NULL_B * inliers - _NULL_A) / 8.0, 0.0, 1.0))


def tentative_matches(reg: np.ndarray, sus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Registered -> suspect correspondences passing Lowe's ratio test (index arrays)."""
    if len(sus) < 2 or len(reg) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    from ._consensus import ratio_matches  # numba: not needed to compute fingerprints

    reg = np.ascontiguousarray(reg, np.float32)
    sus = np.ascontiguousarray(sus, np.float32)
    products = reg @ (-2 * sus).T
    return ratio_matches(products, (reg * reg).sum(1), (sus * sus).sum(1), RATIO)


def consensus(
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The similarity transform most correspondences agree on.

    Parameters
    ----------
    rp, rs, ra : (N, 2), (N,), (N,) arrays
        Registered positions, sizes and angles (degrees) of N correspondences.
    sp, ss, sa : arrays
        The matched suspect positions, sizes and angles.

    Returns
    -------
    inliers : (N,) bool array
        Correspondences consistent with the transform, each registered and each
        suspect feature used at most once.
    matrix : (2, 3) float64 array or None
        Registered -> suspect transform (None with fewer than 2 inliers).
    """
    n = len(rp)
    none = np.zeros(n, bool)
    if n < 2:
        return none, None
    rp = rp.astype(np.float64)
    sp = sp.astype(np.float64)
    rs, ra, ss, sa = (np.asarray(v, np.float64) for v in (rs, ra, ss, sa))
    # Every correspondence is a hypothesis; score all of them against all.
    # numba: not needed to compute fingerprints
    from ._consensus import agreeing, best_proposal, one_to_one, proposal

    pairs = (rp, rs, ra, sp, ss, sa)
    tolerances = (SCALE_TOLERANCE, ANGLE_TOLERANCE)
    h, _ = best_proposal(*pairs, 0, n, REPROJ_THRESHOLD, *tolerances)
    best = agreeing(proposal(*pairs, h, REPROJ_THRESHOLD), *pairs, *tolerances)
    if best.sum() < 2:
        return none, None
    matrix, _ = cv2.estimateAffinePartial2D(
        rp[best].astype(np.float32), sp[best].astype(np.float32), method=cv2.LMEDS
    )
    if matrix is None or not np.all(np.isfinite(matrix)):
        return none, None
    fit = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if not 0.05 <= fit <= 20:
        return none, None
    # The fitted transform in proposal's terms: a similarity's matrix is
    # [[c, -s, tx], [s, c, ty]] (estimateAffinePartial2D builds it so exactly).
    (c, _, tx), (s, _, ty) = matrix.tolist()
    rot = float(np.degrees(np.arctan2(s, c)))
    fitted = (c, s, tx, ty, float(np.log2(fit)), rot, REPROJ_THRESHOLD * max(fit, 0.3))
    inl = agreeing(fitted, *pairs, *tolerances)
    return one_to_one(inl, rp, sp), matrix


def _not_the_scene(
    reg_points: np.ndarray,
    reg_frame: tuple[int, int],
    sus_points: np.ndarray,
    sus_frame: tuple[int, int],
) -> bool:
    """Whether a group of inliers is what unrelated images share, not a scene.

    Working-size positions of the inliers in the original and the suspect, and
    the two working frames (width, height). A thin strip (smallest standard
    deviation in the original under :data:`MIN_SPREAD`: a line of text), a
    small patch (largest under :data:`MIN_EXTENT`: a sign, lettering), a group
    whose bounding box covers under :data:`MIN_BOX_SHARE` of the suspect (a
    stamped watermark), or a group within :data:`EDGE_SHARE` of one edge of
    both frames (a caption, a watermark). Fewer than 3 inliers are a strip.
    """
    if len(reg_points) < 3:
        return True
    cov = np.cov(reg_points.T.astype(np.float64))
    small, large = np.sqrt(np.maximum(np.linalg.eigvalsh(cov), 0))
    if small < MIN_SPREAD or large < MIN_EXTENT:
        return True
    box = np.ptp(sus_points[:, 0]) * np.ptp(sus_points[:, 1])
    if box < MIN_BOX_SHARE * sus_frame[0] * sus_frame[1]:
        return True
    edge = max(_edge_share(reg_points, *reg_frame), _edge_share(sus_points, *sus_frame))
    return edge < EDGE_SHARE


def _edge_share(points: np.ndarray, width: float, height: float) -> float:
    """Smallest share of the frame, in from one of its edges, that holds all ``points``."""
    x, y = points[:, 0], points[:, 1]
    return float(
        min(
            (x.max() + 0.5) / width,
            (width - 0.5 - x.min()) / width,
            (y.max() + 0.5) / height,
            (height - 0.5 - y.min()) / height,
        )
    )


@dataclass(frozen=True, eq=False)
class _Registered:
    """A fingerprint's features at working size (cached per fingerprint)."""

    desc: np.ndarray
    points: np.ndarray
    sizes: np.ndarray
    angles: np.ndarray
    scale: float
    frame: tuple[int, int]  # working-size width and height


def working_scale(width: int, height: int) -> float:
    """Original pixels per working-size pixel of a photo, as its extraction used."""
    return width / round(width * WORKING_SIZE / max(width, height))


def to_working(
    points: np.ndarray, sizes: np.ndarray, angles: np.ndarray, scale: float | np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Full-size feature geometry -> working size (float32); ``scale`` is
    :func:`working_scale`, one for all features or one per feature."""
    s = np.asarray(scale, np.float64)
    return (
        ((points + 0.5) / s[..., None] - 0.5).astype(np.float32),
        (sizes / s).astype(np.float32),
        angles.astype(np.float32),
    )


def _registered(fp: DerivativeFingerprint) -> _Registered:
    cached = fp._cache.get("reg")
    if not isinstance(cached, _Registered):
        scale = working_scale(fp.width, fp.height)
        cached = _Registered(
            dequantize(fp.descriptors),
            *to_working(fp.points, fp.sizes, fp.angles, scale),
            scale,
            (round(fp.width / scale), round(fp.height / scale)),
        )
        fp._cache["reg"] = cached
    return cached


def _group(
    reg: _Registered, feats: SuspectFeatures, i: int, src: np.ndarray, dst: np.ndarray
) -> tuple[np.ndarray, np.ndarray | None, int, int]:
    """The consensus of correspondences ``src`` -> ``dst`` (suspect orientation
    ``i``): its inliers, its matrix, the inliers it counts for (at most
    :data:`_STRIP_CAP` when :func:`_not_the_scene`) and how many it has."""
    inl, wmat = consensus(
        reg.points[src],
        reg.sizes[src],
        reg.angles[src],
        feats.points[i][dst],
        feats.sizes[dst],
        feats.angles[i][dst],
    )
    count = group = int(inl.sum()) if wmat is not None else 0
    if count > _STRIP_CAP and _not_the_scene(
        reg.points[src][inl], reg.frame, feats.points[i][dst][inl], feats.frame
    ):
        count = _STRIP_CAP
    return inl, wmat, count, group


def verify_derivative(
    suspect: np.ndarray | SuspectFeatures,
    fingerprint: DerivativeFingerprint,
    *,
    threshold: float = DECISION_SCORE,
    orientations: tuple[bool, ...] = (False, True),
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
    orientations : tuple of bool, optional
        Which orientations to try (``True`` = mirrored); both by default.

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
    reg = _registered(fingerprint)
    best: tuple[int, int, np.ndarray | None, bool, int] = (0, 0, None, False, 0)
    held = np.zeros((0, 2), np.float32)  # the best orientation's inliers, suspect side
    for mirrored in orientations:
        i = int(mirrored)
        src, dst = tentative_matches(reg.desc, feats.descriptors[i])
        tentative = len(src)
        inl, wmat, count, group = _group(reg, feats, i, src, dst)
        if count < group:
            # What unrelated images share (a badge, a caption) won the
            # consensus; the scene may still agree on a transform of its own
            # among the correspondences left. It is kept only if it is a
            # match: the capped group stays otherwise, a witness for
            # shared_content.
            rest = np.flatnonzero(~inl)
            inl2, wmat2, count2, group2 = _group(reg, feats, i, src[rest], dst[rest])
            if count2 == group2 > _STRIP_CAP and score_of_inliers(count2) >= threshold:
                src, dst, inl, wmat = src[rest], dst[rest], inl2, wmat2
                count = group = count2
        if count > best[0] or (best[2] is None and tentative > best[1]):
            best = (
                count,
                tentative,
                None if wmat is None else np.vstack([wmat, [0, 0, 1]]),
                mirrored,
                group,
            )
            held = feats.points[i][dst][inl] if wmat is not None else held[:0]
    inliers, tentative, wmat, mirrored, group = best
    matrix = None
    coverage = 0.0
    region = core = None
    if wmat is not None:
        s, fp_scale = feats.scale, reg.scale
        # original full-res -> original working -> suspect working (maybe mirrored) -> suspect
        to_work = np.array(
            [
                [1 / fp_scale, 0, 0.5 / fp_scale - 0.5],
                [0, 1 / fp_scale, 0.5 / fp_scale - 0.5],
                [0, 0, 1],
            ]
        )
        work_w = round(feats.width / s)
        flip = np.array([[-1.0, 0, work_w - 1], [0, 1, 0], [0, 0, 1]]) if mirrored else np.eye(3)
        to_full = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1]])
        matrix = to_full @ flip @ wmat @ to_work
        coverage = _coverage(
            matrix, fingerprint.width, fingerprint.height, feats.width, feats.height
        )
        if len(held):  # the inliers, in the suspect's own pixels
            xy = np.sort(np.c_[held, np.ones(len(held))] @ (to_full @ flip)[:2].T, axis=0)
            out = len(xy) // CORE_TRIM  # left out on each side of each axis, for the core
            (x0, y0), (x1, y1) = xy[0], xy[-1]
            region = (float(x0), float(y0), float(x1), float(y1))
            (x0, y0), (x1, y1) = xy[out], xy[len(xy) - 1 - out]
            core = (float(x0), float(y0), float(x1), float(y1))
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
        region=region,
        group=group,
        core=core,
    )


def shared_content(
    matches: Sequence[DerivativeMatch],
    fingerprints: Sequence[DerivativeFingerprint],
    width: int,
    height: int,
) -> np.ndarray:
    """Which matches of one suspect are content another registered photo shares, not a scene.

    Parameters
    ----------
    matches : sequence of DerivativeMatch
        One suspect's verifications, one per registered photo. Its matches
        count, and, as witnesses, the groups the rules for what unrelated
        images share capped (``group`` over ``inliers``); other verifications
        are ignored.
    fingerprints : sequence of DerivativeFingerprint
        The registered photo each was verified against.
    width, height : int
        The suspect's size in pixels.

    Returns
    -------
    (N,) bool array
        True for a match whose inliers' core (``DerivativeMatch.core``: their
        box without strays) covers under :data:`SHARED_BOX` of the suspect and
        is alike another such group's (in the same orientation, overlapping on
        :data:`SHARED_OVERLAP` of the smaller core)
        from a photo that is not a copy of the same scene
        (:func:`_same_scene`, either way round).
    """
    out = np.zeros(len(matches), bool)
    small = []  # (position, core, its area) of small groups
    for k, m in enumerate(matches):
        r = m.core  # set with the matrix, when there are inliers
        if r is None or not (m.matched or m.group > m.inliers):
            continue
        area = (r[2] - r[0]) * (r[3] - r[1])
        if area < SHARED_BOX * width * height:
            small.append((k, r, area))
    for a, (i, ra, area_a) in enumerate(small):
        for j, rb, area_b in small[a + 1 :]:
            mi, mj = matches[i], matches[j]
            if not (mi.matched or mj.matched) or mi.mirrored != mj.mirrored:
                continue
            across = min(ra[2], rb[2]) - max(ra[0], rb[0])
            down = min(ra[3], rb[3]) - max(ra[1], rb[1])
            if min(across, down) <= 0 or across * down < SHARED_OVERLAP * min(area_a, area_b):
                continue
            if not (_same_scene(fingerprints[i], fingerprints[j]) or
                    _same_scene(fingerprints[j], fingerprints[i])):  # fmt: skip
                out[i] = out[j] = True
    return out


def _same_scene(a: DerivativeFingerprint, b: DerivativeFingerprint) -> bool:
    """Whether ``b``, taken as a suspect, is a copy of ``a`` (a second
    registration, a crop, a burst): it matches over at least
    :data:`SHARED_BOX` of ``b``'s frame, or its inliers are at least
    :data:`SHARED_SAME` of ``a``'s features that land in ``b``'s frame (all
    that two copies of a photo with one small detailed part can share; two
    photos sharing a badge match on a few of many)."""
    return is_same_scene(mutual_shares(a, b))


def is_same_scene(shares: tuple[float, float] | None) -> bool:
    """Whether :func:`mutual_shares` says two photos are copies of one scene."""
    return shares is not None and (shares[0] >= SHARED_BOX or shares[1] >= SHARED_SAME)


def mutual_shares(a: DerivativeFingerprint, b: DerivativeFingerprint) -> tuple[float, float] | None:
    """How ``b``, taken as a suspect as it is, matches ``a``: the share of
    ``b``'s frame its inliers' box covers and the inliers' share of ``a``'s
    features that land in ``b``'s frame; None when it does not match."""
    reg = _registered(b)
    # b's own features as a suspect's (the mirrored slot is not used)
    feats = SuspectFeatures(
        b.width, b.height, reg.scale, (reg.desc, reg.desc), (reg.points, reg.points),
        reg.sizes, (reg.angles, reg.angles),
    )  # fmt: skip
    m = verify_derivative(feats, a, orientations=(False,))
    if not m.matched or m.region is None or m.matrix is None:
        return None
    x0, y0, x1, y1 = m.region
    xy = np.c_[a.points, np.ones(len(a.points))] @ m.matrix.T
    x, y = xy[:, 0] / xy[:, 2], xy[:, 1] / xy[:, 2]
    landing = (x >= -0.5) & (x < b.width - 0.5) & (y >= -0.5) & (y < b.height - 0.5)
    box = (x1 - x0) * (y1 - y0) / (b.width * b.height)
    return float(box), m.inliers / max(int(landing.sum()), 1)


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
