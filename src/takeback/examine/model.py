"""Value types of an examination: verdict, alignment, altered regions.

An :class:`Examination` is what ``takeback examine`` produces and what the
evidence package (:mod:`takeback.evidence`) is written from. Arrays are in the
*suspect's* pixel grid, ``(M, N)`` with coordinates ``(row, col)``; masks are
``bool``. :meth:`Examination.to_dict` is the versioned JSON object documented in
``docs/cli.md`` (``examine --json``); the arrays travel beside it as images.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "EXAMINATION_SCHEMA",
    "Alignment",
    "Examination",
    "ExamineVerdict",
    "Region",
]

#: Version of the JSON object of :meth:`Examination.to_dict`.
EXAMINATION_SCHEMA = "takeback.examination/1"


class ExamineVerdict(enum.StrEnum):
    """What the comparison with the original found.

    ``derived``
        The suspect is the original with a part replaced (``altered_fraction`` > 0).
    ``identical``
        The suspect shows the original with no change beyond re-encoding, resizing,
        cropping, flipping, rotation, borders or captions.
    ``not_derived``
        The suspect does not show the original.
    ``inconclusive``
        No original to compare with, or alignment too weak to say.
    """

    DERIVED = "derived"
    IDENTICAL = "identical"
    NOT_DERIVED = "not_derived"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, slots=True)
class Alignment:
    """The geometric relation between original and suspect.

    Attributes
    ----------
    matrix : (3, 3) float array
        Maps the original's full-resolution pixel coordinates ``(x, y, 1)`` (pixel
        centres at integers) to the suspect's.
    mirrored : bool
        Whether the mapping includes a reflection (the suspect is flipped).
    coverage : float
        Share of the suspect's area that shows the original (0-1); borders,
        caption bars and outside-the-original areas are the rest.
    inliers : int
        Feature correspondences that agree with ``matrix``.
    rotation_deg, scale : float
        Rotation and scale read from ``matrix`` (original to suspect).
    """

    matrix: np.ndarray
    mirrored: bool
    coverage: float
    inliers: int
    rotation_deg: float
    scale: float
    #: (K, 2) suspect points of the agreeing correspondences (x, y); not in the JSON.
    inlier_points: np.ndarray | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "matrix": [[round(float(v), 8) for v in row] for row in self.matrix],
            "mirrored": self.mirrored,
            "coverage": round(self.coverage, 4),
            "inliers": self.inliers,
            "rotation_deg": round(self.rotation_deg, 3),
            "scale": round(self.scale, 5),
        }


@dataclass(frozen=True, slots=True)
class Region:
    """One connected altered region in the suspect's grid.

    ``bbox`` is ``(x, y, width, height)`` in suspect pixels; ``area`` in pixels;
    ``share`` of the compared area (the part of the suspect showing the original).
    """

    bbox: tuple[int, int, int, int]
    area: int
    share: float

    def to_dict(self) -> dict[str, Any]:
        x, y, w, h = self.bbox
        return {
            "bbox": {"x": x, "y": y, "width": w, "height": h},
            "area": self.area,
            "share": round(self.share, 4),
        }


@dataclass(slots=True)
class Examination:
    """The result of examining a suspect, with or without its original.

    Attributes
    ----------
    verdict : ExamineVerdict
    confidence : float
        0-1 on the scale documented in ``docs/examine.md`` (how strongly the
        measurements support the verdict; not a probability of authorship).
    altered_fraction : float
        Share of the compared area found altered (0 unless ``derived``).
    suspect_name, original_name : str or None
        File names (never paths) of what was compared.
    suspect_sha256, original_sha256 : str or None
    suspect_size, original_size : (width, height) or None
    alignment : Alignment or None
    regions : list of Region
    mask : (M, N) bool array or None
        Altered pixels, white in ``--mask-out``.
    compared : (M, N) bool array or None
        Pixels of the suspect that show the original (what could be compared).
    heatmap : (M, N) float32 array in 0-1 or None
        Per-pixel change strength before thresholding.
    aligned_original : (M, N, 3) uint8 array or None
        The original warped into the suspect's grid, colour-compensated.
    suspect : (M, N, 3) uint8 array or None
        The suspect's pixels as examined (EXIF orientation applied).
    marks : dict
        The marks found in the suspect file (``takeback.examine.marks``), as JSON.
    blind : dict
        Weak blind signals (JPEG quality, double compression) as JSON; their
        maps in ``blind_maps``.
    blind_maps : dict of str to (M, N) float32 array
    parameters : dict
        Thresholds and settings used, so the result can be reproduced.
    notes : list of str
        Plain-language limitations specific to this result.
    timings : dict of str to float
        Seconds per stage.
    """

    verdict: ExamineVerdict
    confidence: float
    altered_fraction: float = 0.0
    suspect_name: str | None = None
    original_name: str | None = None
    suspect_sha256: str | None = None
    original_sha256: str | None = None
    suspect_size: tuple[int, int] | None = None
    original_size: tuple[int, int] | None = None
    match: dict[str, Any] | None = None
    alignment: Alignment | None = None
    regions: list[Region] = field(default_factory=list)
    mask: np.ndarray | None = None
    compared: np.ndarray | None = None
    heatmap: np.ndarray | None = None
    aligned_original: np.ndarray | None = None
    suspect: np.ndarray | None = None
    marks: dict[str, Any] = field(default_factory=dict)
    blind: dict[str, Any] = field(default_factory=dict)
    blind_maps: dict[str, np.ndarray] = field(default_factory=dict)
    parameters: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``takeback examine --json`` (schema :data:`EXAMINATION_SCHEMA`)."""

        def size(s: tuple[int, int] | None) -> dict[str, int] | None:
            return None if s is None else {"width": s[0], "height": s[1]}

        return {
            "schema": EXAMINATION_SCHEMA,
            "verdict": self.verdict.value,
            "confidence": round(self.confidence, 3),
            "altered_fraction": round(self.altered_fraction, 4),
            "suspect": {
                "name": self.suspect_name,
                "sha256": self.suspect_sha256,
                "size": size(self.suspect_size),
            },
            "original": None
            if self.original_name is None and self.original_sha256 is None
            else {
                "name": self.original_name,
                "sha256": self.original_sha256,
                "size": size(self.original_size),
            },
            "match": self.match,
            "alignment": None if self.alignment is None else self.alignment.to_dict(),
            "regions": [r.to_dict() for r in self.regions],
            "marks": self.marks,
            "blind": self.blind,
            "parameters": self.parameters,
            "notes": list(self.notes),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }
