"""``takeback examine``: align a suspect with its original and say what was altered.

The steps, each timed in :attr:`Examination.timings`:

1. read the suspect (limits of :mod:`takeback.imageio`, EXIF orientation);
2. read its marks (:mod:`takeback.examine.marks`) and weak blind signals
   (:mod:`takeback.examine.blind`), with or without an original;
3. decode the original at about twice the comparison size (JPEG DCT scaling);
4. align (:mod:`takeback.examine.align`) and compare
   (:mod:`takeback.examine.changes`) at most :data:`COMPARE_SIDE` px long;
5. bring the mask back to the suspect's full grid, list regions, decide.

The verdict and its confidence are documented in ``docs/examine.md``.
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from ..bank.store import Store
from ..errors import TakeBackError
from ..imageio import ImageLimits, _decode, load_rgb, read_bytes
from . import align as _align
from .changes import COMPARE_SIDE, MIN_REGION, THRESHOLDS, detect_changes
from .model import Alignment, Examination, ExamineVerdict, Region

__all__ = [
    "DERIVED_MIN_FRACTION",
    "closest_original",
    "examine",
    "find_original",
    "regions_of",
]

#: Altered share of the compared area from which a suspect is called ``derived``.
DERIVED_MIN_FRACTION: Final = 0.005
#: Below this share of the suspect showing the original, no verdict on pixels.
MIN_COVERAGE: Final = 0.1
#: The original is decoded at least this many times the comparison size.
ORIGINAL_OVERSAMPLE: Final = 2.0

_LIMITATIONS: Final = (
    "The comparison finds what differs between the suspect and the given original; "
    "it does not say who made the change or with which tool.",
    "Areas of the suspect that do not show the original (borders, caption bars, parts "
    "outside the original's frame) are not judged.",
    "A replaced area that closely resembles what it replaced (e.g. plain sky replaced by "
    "plain sky) can go undetected.",
)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(
    data: bytes, name: str, limits: ImageLimits, draft: int | None
) -> tuple[np.ndarray, tuple[int, int]]:
    img, full = _decode(data, name, limits, draft)
    return np.asarray(img), full


def regions_of(mask: np.ndarray, compared_area: int) -> list[Region]:
    """Connected regions of a ``(M, N)`` bool mask, largest first."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    out = [
        Region(
            bbox=(int(x), int(y), int(w), int(h)),
            area=int(a),
            share=float(a) / max(1, compared_area),
        )
        for x, y, w, h, a in stats[1:]
    ]
    return sorted(out, key=lambda r: -r.area)


def _confidence_derived(
    alignment: Alignment, strength: np.ndarray, mask: np.ndarray, compared: np.ndarray
) -> float:
    """Alignment support times the separation of altered from unaltered strength."""
    c_align = 1.0 - float(np.exp(-alignment.inliers / 25))
    inside = float(np.median(strength[mask])) if mask.any() else 0.0
    rest = compared & ~mask
    outside = float(np.percentile(strength[rest], 95)) if rest.any() else 0.0
    c_sep = float(np.clip((inside - outside) / 2.0, 0.0, 1.0))
    return c_align * c_sep


def _confidence_identical(
    alignment: Alignment, strength: np.ndarray, compared: np.ndarray
) -> float:
    c_align = 1.0 - float(np.exp(-alignment.inliers / 25))
    p99 = float(np.percentile(strength[compared], 99)) if compared.any() else 1.0
    return c_align * float(np.clip(1.0 - p99, 0.0, 1.0)) ** 0.5


def examine(
    suspect: str | os.PathLike[str],
    *,
    original: str | os.PathLike[str] | None = None,
    match: dict[str, Any] | None = None,
    limits: ImageLimits | None = None,
    marks: bool = True,
    blind: bool = True,
) -> Examination:
    """Examine ``suspect``, against ``original`` when given.

    Parameters
    ----------
    suspect, original : path
    match : dict, optional
        How the original was found in a bank (``Match.to_dict()``), recorded.
    limits : ImageLimits, optional
    marks, blind : bool
        Read the file's marks / compute the weak blind signals.

    Returns
    -------
    Examination
        ``inconclusive`` without an original; ``not_derived`` when the two do not
        align; else ``derived`` or ``identical``.

    Raises
    ------
    FileAccessError, ImageError
        A file cannot be read or decoded.
    """
    limits = limits or ImageLimits()
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    s_name = os.fspath(suspect)
    s_data = read_bytes(suspect, limits)
    s_rgb, _ = _load(s_data, s_name, limits, None)
    sh, sw = s_rgb.shape[:2]
    result = Examination(
        verdict=ExamineVerdict.INCONCLUSIVE,
        confidence=0.0,
        suspect_name=Path(s_name).name,
        suspect_sha256=_sha256(s_data),
        suspect_size=(sw, sh),
        match=match,
        suspect=s_rgb,
        parameters={
            "thresholds": dict(THRESHOLDS),
            "derived_min_fraction": DERIVED_MIN_FRACTION,
            "min_region": MIN_REGION,
            "min_inliers": _align.MIN_INLIERS,
            "compare_side": COMPARE_SIDE,
        },
    )
    timings["read_suspect"] = time.perf_counter() - t0

    quality: int | None = None
    if marks:
        t = time.perf_counter()
        from .marks import read_marks

        result.marks = read_marks(s_data, name=s_name).to_dict()
        timings["marks"] = time.perf_counter() - t
    t = time.perf_counter()
    from .blind import blind_signals, jpeg_quality

    jq = jpeg_quality(s_data)
    quality = jq.quality if jq is not None and jq.standard else None
    if blind:
        signals = blind_signals(s_data, s_rgb)
        result.blind = signals.to_dict()
        result.blind_maps = dict(signals.maps)
        timings["blind"] = time.perf_counter() - t

    if original is None:
        result.notes.append(
            "No original was given, so nothing can be said about which pixels were altered; "
            "only the marks in the file were read."
        )
        result.timings = timings
        return result

    t = time.perf_counter()
    o_name = os.fspath(original)
    o_data = read_bytes(original, limits)
    grid = _compare_grid(s_rgb)  # the suspect at most COMPARE_SIDE long
    ch, cw = grid.shape[:2]
    want = ORIGINAL_OVERSAMPLE * max(cw, ch)
    # a JPEG original much bigger than needed is decoded smaller, in the DCT domain;
    # its short side stays at least 0.7 x want (the long side of a 4:3 photo ~ want)
    o_rgb, (ow, oh) = _load(o_data, o_name, limits, int(0.7 * want))
    result.original_name = Path(o_name).name
    result.original_sha256 = _sha256(o_data)
    result.original_size = (ow, oh)
    dh, dw = o_rgb.shape[:2]
    decoded = _align.scale_matrix(dw / ow, dh / oh)  # full original -> decoded original
    timings["read_original"] = time.perf_counter() - t

    t = time.perf_counter()
    alignment = _align.align(o_rgb, grid)
    timings["align"] = time.perf_counter() - t
    result.notes.extend(_LIMITATIONS)
    if alignment is None or alignment.coverage < MIN_COVERAGE:
        if alignment is None:
            result.verdict = ExamineVerdict.NOT_DERIVED
            result.confidence = 0.9
            result.notes.insert(
                0,
                "No consistent correspondence between suspect and original "
                "was found: the suspect does not show this original.",
            )
        else:
            result.notes.insert(0, "Too little of the suspect shows the original to compare.")
        result.timings = timings
        return result

    if alignment.inliers < _align.MIN_INLIERS:
        result.notes.insert(
            0,
            f"Suspect and original were aligned from few correspondences "
            f"({alignment.inliers}), confirmed by their pixels agreeing in textured places.",
        )
    t = time.perf_counter()
    changes = detect_changes(
        o_rgb, alignment.matrix, grid, jpeg_quality=quality, trusted_points=alignment.inlier_points
    )
    timings["compare"] = time.perf_counter() - t

    t = time.perf_counter()
    to_suspect = _align.scale_matrix(sw / cw, sh / ch)
    full = to_suspect @ changes.matrix @ decoded
    rot, scale, mirrored = _align._decompose(full)
    result.alignment = Alignment(
        matrix=full,
        mirrored=mirrored,
        coverage=_align.coverage(full, (oh, ow), (sh, sw)),
        inliers=alignment.inliers,
        rotation_deg=rot,
        scale=scale,
    )

    def up(a: np.ndarray, interp: int) -> np.ndarray:
        return a if (cw, ch) == (sw, sh) else cv2.resize(a, (sw, sh), interpolation=interp)

    mask = up(changes.mask.astype(np.uint8) * 255, cv2.INTER_LINEAR) >= 128
    compared = up(changes.compared.astype(np.uint8) * 255, cv2.INTER_LINEAR) >= 128
    mask &= compared
    result.mask = mask
    result.compared = compared
    result.heatmap = np.clip(up(changes.strength, cv2.INTER_LINEAR) / 2.0, 0, 1).astype(np.float32)
    result.aligned_original = up(changes.aligned, cv2.INTER_LINEAR)
    area = int(compared.sum())
    fraction = float(mask.sum()) / max(1, area)
    result.regions = regions_of(mask, area)
    if fraction >= DERIVED_MIN_FRACTION:
        result.verdict = ExamineVerdict.DERIVED
        result.altered_fraction = fraction
        result.confidence = _confidence_derived(
            alignment, changes.strength, changes.mask, changes.compared
        )
    else:
        result.verdict = ExamineVerdict.IDENTICAL
        result.altered_fraction = 0.0
        result.confidence = _confidence_identical(alignment, changes.strength, changes.compared)
    if quality is None and s_data[:2] == b"\xff\xd8":
        result.notes.append(
            "The suspect's JPEG tables are not standard; the original was "
            "not re-compressed to match, which can raise the change map."
        )
    timings["finish"] = time.perf_counter() - t
    result.timings = timings
    return result


def find_original(
    suspect: str | os.PathLike[str],
    store: Store,
    originals: list[str],
    *,
    limits: ImageLimits | None = None,
) -> tuple[dict[str, Any] | None, Path | None]:
    """Find the registered photo a suspect copies, and its file among ``originals``.

    The bank holds fingerprints, never photos: matching (exact bytes, then PDQ
    with flips and turns, then the derivative fingerprint for doctored copies)
    names the registered photo; its file is then looked for by SHA-256 in
    ``originals`` (files, folders or globs). When nothing in the bank matches
    (a photo registered PDQ-only, a copy with most of the picture replaced),
    the photos in ``originals`` are tried directly by :func:`closest_original`.

    Returns
    -------
    (match, path)
        ``match`` is the best :class:`~takeback.bank.matcher.Match` as a dict
        (with the entry's ``sha256``) or None; ``path`` the original's file or
        None when it was not found.
    """
    from ..bank.matcher import Matcher
    from ..fingerprint.pdq import fingerprint_file

    with Matcher(store) as matcher:
        # exact bytes, PDQ, then the derivative fingerprint (pixels decoded only if needed)
        result = matcher.match(
            fingerprint_file(suspect, limits=limits, variants=True),
            suspect=lambda: load_rgb(suspect, limits=limits),
        )
    if result.matches:
        best = result.matches[0]
        sha = store.get(best.id).sha256
        found: dict[str, Any] = {**best.to_dict(), "sha256": sha}
        for path in _image_files(originals):
            try:
                data = read_bytes(path, limits)
            except TakeBackError:
                continue
            if sha is not None and _sha256(data) == sha:
                return found, Path(path)
        return found, None
    return closest_original(suspect, _image_files(originals), limits=limits)


def _image_files(originals: list[str]) -> list[str]:
    from ..files import collect_inputs

    return [i.path for i in collect_inputs(originals) if i.error is None] if originals else []


def closest_original(
    suspect: str | os.PathLike[str],
    candidates: list[str],
    *,
    limits: ImageLimits | None = None,
) -> tuple[dict[str, Any] | None, Path | None]:
    """The candidate photo the suspect shows, by feature alignment (no bank needed).

    Used when matching fingerprints finds nothing, e.g. a fake with most of the
    picture replaced: each candidate is aligned with the suspect and the one
    with the most agreeing correspondences (at least ``MIN_INLIERS``) wins.
    Unreadable candidates are skipped.
    """
    limits = limits or ImageLimits()
    s_rgb, _ = _load(read_bytes(suspect, limits), os.fspath(suspect), limits, None)
    grid = _compare_grid(s_rgb)
    sf = _align.both_ways(grid)
    best: tuple[int, str] | None = None
    # the dense second try costs a second or so per candidate: only when no
    # candidate aligns from the ordinary features
    for dense in (False, True):
        for path in candidates:
            try:
                o_rgb, _ = _load(read_bytes(path, limits), path, limits, _align.FEATURE_SIDE)
            except TakeBackError:
                continue
            a = _align.align(o_rgb, grid, suspect_features=sf, dense=dense)
            if a is not None and (best is None or a.inliers > best[0]):
                best = (a.inliers, path)
        if best is not None:
            break
    if best is None:
        return None, None
    found = {"method": "features", "label": Path(best[1]).name, "inliers": best[0]}
    return found, Path(best[1])


def _compare_grid(s_rgb: np.ndarray) -> np.ndarray:
    sh, sw = s_rgb.shape[:2]
    cs = min(1.0, COMPARE_SIDE / max(sh, sw))
    if cs == 1.0:
        return s_rgb
    return cv2.resize(
        s_rgb, (max(1, round(sw * cs)), max(1, round(sh * cs))), interpolation=cv2.INTER_AREA
    )
