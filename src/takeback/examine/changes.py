"""Find the pixels of a suspect that differ from its aligned original.

Given the transform from :mod:`takeback.examine.align`, the original is warped
into the suspect's grid and compared pixel by pixel. Reposting changes every
pixel a little (resampling, gamma, re-compression) and nothing a lot; a
replaced region changes colour, texture or both. The steps:

1. **Warp** the original into the suspect's grid (area-averaged to the right
   scale first, so no aliasing), with the mask of pixels that show the
   original (``compared``): borders, caption bars and outside areas are left out.
2. **Refine** the transform with ECC (``cv2.findTransformECC``) on the pixels
   not (yet) found altered.
3. **Compensate colour**: a monotone lookup table per channel fitted on unchanged
   pixels (undoes gamma, brightness, contrast and colour casts), then
   re-compress the warped original at the suspect's JPEG quality.
4. **Measure** three disagreements, each tolerant to a one-pixel misalignment
   (the suspect is compared with the range of the original in a 3x3
   neighbourhood): colour distance ΔE in CIELAB, local structure (1 - SSIM) and
   gradient magnitude difference. Each is divided by its threshold; the
   per-pixel maximum is the *change strength* (the heatmap; 1 = threshold).
5. **Clean up**: smooth, threshold at 1, open and close, drop components
   smaller than :data:`MIN_REGION` of the compared area, fill holes.
6. **Grow** (last pass): each region grows into connected pixels over
   :data:`GROW_STRENGTH` where the suspect has lost fine texture
   (:data:`SMOOTHER`): inpainting leaves pixels close to what it replaced but
   smooths away the grain.
7. **Reach the edge**: the unjudged strip along the edge of the compared area
   takes the verdict of the nearest compared pixel.

Steps 2-5 run three times: near the feature correspondences only, then
everywhere but the first mask and clear changes, then everywhere but the
previous mask, so a large replaced region cannot bias the colour fit. ECC runs
in the first and last passes only, and a correction that moves the alignment's
inliers more than :data:`ECC_MAX_PX` is refused.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Final

import cv2
import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

__all__ = [
    "THRESHOLDS",
    "ChangeMap",
    "detect_changes",
    "frame_mask",
    "warp_original",
]

#: Change thresholds: ΔE (CIELAB, after colour compensation), 1 - SSIM, and
#: gradient-magnitude difference (0-255 grey levels per pixel).
THRESHOLDS: Final = {"delta_e": 6.0, "dssim": 0.3, "gradient": 25.0, "texture": 0.6}
#: Components smaller than this share of the compared area are dropped.
MIN_REGION: Final = 0.002
#: Pixels next to the edge of the compared area that are not judged.
EDGE_PX: Final = 8
#: Holes up to this share of the compared area inside a region are filled.
MAX_HOLE: Final = 0.02
#: Images with a short side of twice this are refined by ECC at half size.
ECC_MIN_SIDE: Final = 240
#: Most an ECC correction may move the alignment's inliers, pixels of the grid.
ECC_MAX_PX: Final = 4.0
#: Change strength excluded from the colour fit of the middle pass.
CLEAR_CHANGE: Final = 3.0
#: Change strength to which an altered region grows from where it exceeds 1.
GROW_STRENGTH: Final = 0.4
#: The suspect's fine texture (high-pass spread) under this share of the original's
#: counts as smoothed: the only places a region may grow into.
SMOOTHER: Final = 0.8
#: Fewest pixels near the alignment's inliers for the first pass to fit on them only.
TRUSTED_MIN: Final = 300
#: Colour tolerance (0-255 per channel) of a border or caption bar.
FRAME_TOLERANCE: Final = 14
#: Share of the first line of a border or caption bar that has its colour.
FRAME_UNIFORM: Final = 0.8
#: Share of a line of caption text that keeps its bar's colour.
FRAME_TEXT_KEEP: Final = 0.2
#: Least difference (0-255 per channel) of caption text from its bar.
FRAME_INK: Final = 64
#: Share of a caption's text lines, outside the bar's colour, that is ink.
FRAME_TEXT_INK: Final = 0.4
#: A border or caption bar is at most this share of a side.
FRAME_MAX: Final = 0.25
#: Longest side the comparison runs at; larger suspects are compared downscaled.
COMPARE_SIDE: Final = 1024


@dataclass(slots=True)
class ChangeMap:
    """Per-pixel comparison of suspect and original, in the comparison grid.

    Attributes
    ----------
    mask : (M, N) bool
        Altered pixels.
    compared : (M, N) bool
        Pixels that show the original.
    strength : (M, N) float32
        Change strength, 1.0 at the threshold.
    aligned : (M, N, 3) uint8
        The original warped and colour-compensated into the grid.
    matrix : (3, 3) float
        The refined transform from the original's working image to this grid.
    """

    mask: np.ndarray
    compared: np.ndarray
    strength: np.ndarray
    aligned: np.ndarray
    matrix: np.ndarray


def _at_scale(
    original: np.ndarray, matrix: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The original area-averaged to about the grid's scale, the matching matrix, and the
    resize matrix (from the given original to the smaller one)."""
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    if scale >= 0.8:
        return original, matrix, np.eye(3)
    h, w = original.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(original, (nw, nh), interpolation=cv2.INTER_AREA)
    pre = np.array([[nw / w, 0, 0.5 * nw / w - 0.5], [0, nh / h, 0.5 * nh / h - 0.5], [0, 0, 1.0]])
    return small, matrix @ np.linalg.inv(pre), pre


def warp_original(
    original: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Warp ``original`` by ``matrix`` into a grid of ``shape`` = (rows, cols).

    Downscales with area averaging first when the transform shrinks, so the
    warp itself only interpolates at about 1:1. Returns the warped image and the
    mask of grid pixels inside the original.
    """
    a = matrix[:2, :2]
    scale = float(np.sqrt(abs(np.linalg.det(a))))
    src = original
    m = matrix
    if scale < 0.8:
        h, w = original.shape[:2]
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        src = cv2.resize(original, (nw, nh), interpolation=cv2.INTER_AREA)
        pre = np.array(
            [[nw / w, 0, 0.5 * nw / w - 0.5], [0, nh / h, 0.5 * nh / h - 0.5], [0, 0, 1.0]]
        )
        m = matrix @ np.linalg.inv(pre)
    rows, cols = shape
    warped = cv2.warpAffine(
        src, m[:2], (cols, rows), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    inside = cv2.warpAffine(
        np.full(src.shape[:2], 255, np.uint8),
        m[:2],
        (cols, rows),
        flags=cv2.INTER_NEAREST,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return warped, inside > 0


def _ecc_refine(
    original: np.ndarray,
    matrix: np.ndarray,
    suspect_grey: np.ndarray,
    valid: np.ndarray,
    anchors: np.ndarray | None = None,
) -> np.ndarray:
    """Refine ``matrix`` (original -> grid) by ECC on the ``valid`` pixels.

    The correction is refused when it moves any of the ``anchors`` (suspect
    points ``(x, y)`` the feature fit placed, its inliers) by more than
    :data:`ECC_MAX_PX`, or a corner of the grid by more than twice that: ECC
    drawn by a replaced region can drift by pixels.
    """
    if valid.sum() < 2000:
        return matrix
    warped, _ = warp_original(original, matrix, suspect_grey.shape)
    wg: np.ndarray = cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY).astype(np.float32)
    sg: np.ndarray = suspect_grey.astype(np.float32)
    vm: np.ndarray = valid.astype(np.uint8)
    h, w = sg.shape
    half = min(h, w) >= 2 * ECC_MIN_SIDE
    if half:  # ECC on a half-size copy: a quarter of the cost, sub-pixel all the same
        size = (w // 2, h // 2)
        sg = cv2.resize(sg, size, interpolation=cv2.INTER_AREA)
        wg = cv2.resize(wg, size, interpolation=cv2.INTER_AREA)
        vm = cv2.resize(vm, size, interpolation=cv2.INTER_NEAREST)
    # find a small correction C with warped(C x) ~ suspect(x); then matrix' = C^-1 matrix
    c: np.ndarray = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 40, 1e-4)
    try:
        _, c = cv2.findTransformECC(sg, wg, c, cv2.MOTION_AFFINE, criteria, vm, 3)
    except cv2.error:
        return matrix
    c3 = np.vstack([c.astype(np.float64), [0, 0, 1.0]])
    if half:
        s2 = np.array(
            [
                [w // 2 / w, 0, 0.5 * (w // 2) / w - 0.5],
                [0, h // 2 / h, 0.5 * (h // 2) / h - 0.5],
                [0, 0, 1.0],
            ]
        )
        c3 = np.linalg.inv(s2) @ c3 @ s2
    if np.abs(c3[:2, 2]).max() > 6 or np.abs(c3[:2, :2] - np.eye(2)).max() > 0.03:
        return matrix  # ECC wandered off; keep the feature fit
    inv = np.linalg.inv(c3)

    def moved(points: np.ndarray) -> float:
        pts = np.hstack([points.astype(np.float64), np.ones((len(points), 1))])
        return float(np.linalg.norm((inv @ pts.T).T[:, :2] - pts[:, :2], axis=1).max())

    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64)
    if moved(corners) > 2 * ECC_MAX_PX:
        return matrix
    if anchors is not None and len(anchors) and moved(anchors) > ECC_MAX_PX:
        return matrix
    return inv @ matrix


def _gamma_fit(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Fit ``y = a * x**g + b`` (0-1 scale; g on a grid, a and b by least squares).

    Returns the 256-entry curve. A smooth global model: it extrapolates sanely to
    levels the fitting pixels do not cover (a sky with no features in it).
    """
    xs = x / 255.0
    ys = y / 255.0
    gammas = np.geomspace(0.5, 2.0, 25)
    xg = xs[None, :] ** gammas[:, None]  # (G, N)
    # closed-form least squares of y = a * xg + b for every gamma at once
    mx, my = xg.mean(axis=1), ys.mean()
    cov = (xg * ys[None, :]).mean(axis=1) - mx * my
    var = (xg * xg).mean(axis=1) - mx * mx
    a = cov / np.maximum(var, 1e-9)
    b = my - a * mx
    resid = np.abs(a[:, None] * xg + b[:, None] - ys[None, :]).mean(axis=1)
    k = int(np.argmin(resid))
    grid = np.arange(256) / 255.0
    return np.asarray(255.0 * (a[k] * grid ** gammas[k] + b[k]))


def _colour_lut(src: np.ndarray, dst: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Per-channel monotone LUT taking ``src`` values to ``dst`` on ``valid`` pixels.

    Levels with enough valid pixels take the mean of ``dst`` there; other
    levels follow a gamma-gain-offset curve fitted on the same pixels, so levels
    absent from the fitting area are mapped plausibly rather than clamped.
    """
    out = np.empty_like(src)
    rng = np.random.default_rng(0)
    for ch in range(3):
        s = src[..., ch][valid].astype(np.int64)
        d = dst[..., ch][valid].astype(np.float64)
        if s.size < 500:
            out[..., ch] = src[..., ch]
            continue
        pick = rng.choice(s.size, min(s.size, 20000), replace=False)
        curve = _gamma_fit(s[pick].astype(np.float64), d[pick])
        count = np.bincount(s, minlength=256).astype(np.float64)
        total = np.bincount(s, weights=d, minlength=256)
        levels = np.nonzero(count >= 5)[0]
        lut = curve.copy()
        if levels.size >= 4:
            means = total[levels] / count[levels]
            lut[levels[0] : levels[-1] + 1] = np.interp(
                np.arange(levels[0], levels[-1] + 1), levels, means
            )
            # continue the fitted curve beyond the covered range, joined without a step
            lut[: levels[0]] += means[0] - curve[levels[0]]
            lut[levels[-1] + 1 :] += means[-1] - curve[levels[-1]]
        lut = np.maximum.accumulate(lut)  # monotone
        out[..., ch] = np.clip(lut + 0.5, 0, 255).astype(np.uint8)[src[..., ch]]
    return out


def _near(points: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pixels within a small radius of ``points`` (x, y)."""
    out = np.zeros(shape, np.uint8)
    r = max(4, round(min(shape) / 25))
    for x, y in np.round(points).astype(int):
        cv2.circle(out, (int(x), int(y)), r, 1, -1)
    return out > 0


def _uniform(line: np.ndarray) -> bool:
    ref = np.median(line, axis=0)
    return bool((np.abs(line - ref).max(axis=1) <= FRAME_TOLERANCE).mean() >= FRAME_UNIFORM)


def _next_band(s: np.ndarray, start: int, limit: int, ref: np.ndarray | None) -> int | None:
    """The first line of one colour at or after ``start``, or None.

    Up to 4 lines of anything may come first. After a band of colour ``ref``,
    more may, when they look like caption text on it: every line keeps at least
    :data:`FRAME_TEXT_KEEP` of that colour, and across the lines most of the
    rest is ink at least :data:`FRAME_INK` away from it (not a smooth picture).
    """
    if ref is None:
        return _first_uniform(s, start, min(limit, start + 4))
    kept: list[float] = []
    ink: list[float] = []
    for k in range(start, limit):
        if _uniform(s[k]):
            if k - start <= 4:
                return k
            rest = len(kept) - sum(kept)
            return k if sum(ink) >= FRAME_TEXT_INK * rest else None
        off = np.abs(s[k] - ref).max(axis=1)
        kept.append(float((off <= FRAME_TOLERANCE).mean()))
        ink.append(float((off >= FRAME_INK).mean()))
        if kept[-1] < FRAME_TEXT_KEEP:
            return None if k - start >= 3 else _first_uniform(s, k + 1, min(limit, start + 4))
    return None


def _first_uniform(s: np.ndarray, start: int, stop: int) -> int | None:
    return next((k for k in range(start, stop) if _uniform(s[k])), None)


def frame_mask(suspect: np.ndarray, aligned: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """Borders and caption bars added around the picture: bands along an edge.

    A line (row or column) counting inward from an edge belongs to a band while
    at least half of its pixels have the colour of the band's outermost line
    (within ``FRAME_TOLERANCE``) and at least half differ from the original
    there, so the original's own flat sky or wall is not mistaken for a frame.
    A band starts with a line of one colour across :data:`FRAME_UNIFORM` of it
    (so a replaced region reaching the edge is not taken for a border); a few
    lines of caption text do not stop a band, and more lead on to the next band
    when they look like text on the band's colour (:func:`_next_band`); a band
    may be followed by another (a caption bar outside a border). Up to
    :data:`FRAME_MAX` of each side.
    """
    h, w = compared.shape
    frame = np.zeros((h, w), bool)
    s16 = suspect.astype(np.int16)
    a16 = aligned.astype(np.int16)
    for side in range(4):
        s = np.rot90(s16, side)
        a = np.rot90(a16, side)
        limit = int(s.shape[0] * FRAME_MAX)
        depth = 0
        ref = None
        for _ in range(6):  # stacked bands: caption bar, border, a text line between
            start = depth
            if start >= limit:
                break
            # a border or bar starts with a line of one colour edge to edge, after at
            # most a few lines of anything or, after a band, after the lines of
            # caption text that stopped it (they keep some of the band's colour)
            first = _next_band(s, start, limit, ref)
            if first is None:
                break
            ref = np.median(s[first], axis=0)
            misses = 0
            for i in range(first, limit):
                same = (np.abs(s[i] - ref).max(axis=1) <= FRAME_TOLERANCE).mean()
                differs = (np.abs(s[i] - a[i]).max(axis=1) > FRAME_TOLERANCE).mean()
                if same >= 0.5 and differs >= 0.5:
                    depth = i + 1
                    misses = 0
                else:
                    misses += 1
                    if misses > 2:
                        break
            if depth == start:
                break
        if depth:
            band = np.zeros_like(np.rot90(frame, side))
            band[:depth] = True
            frame |= np.rot90(band, -side)
    return frame


def _recompress(image: np.ndarray, quality: int | None) -> np.ndarray:
    if quality is None:
        return image
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=int(quality))
    return np.asarray(Image.open(buf).convert("RGB"))


def _range_distance(s: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Distance of ``s`` from the 3x3 neighbourhood range of ``o`` (per channel, >= 0)."""
    k = np.ones((3, 3), np.uint8)
    lo = cv2.erode(o, k)
    hi = cv2.dilate(o, k)
    return np.maximum(np.maximum(lo - s, s - hi), 0)


def components(suspect: np.ndarray, aligned: np.ndarray) -> dict[str, np.ndarray]:
    """The three disagreement maps of two aligned RGB images, in their own units."""
    s = cv2.GaussianBlur(suspect, (0, 0), 1.0)
    o = cv2.GaussianBlur(aligned, (0, 0), 1.0)
    sl = cv2.cvtColor(s.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    ol = cv2.cvtColor(o.astype(np.float32) / 255, cv2.COLOR_RGB2LAB)
    d = _range_distance(sl, ol)
    delta_e = np.sqrt((d**2).sum(axis=2))
    sg = cv2.cvtColor(suspect, cv2.COLOR_RGB2GRAY)
    og = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
    _, ssim = structural_similarity(sg, og, win_size=7, full=True, data_range=255)
    dssim = np.clip(1.0 - ssim, 0, 2).astype(np.float32)
    sgf, og_f = sg.astype(np.float32), og.astype(np.float32)
    gs = cv2.magnitude(cv2.Sobel(sgf, cv2.CV_32F, 1, 0), cv2.Sobel(sgf, cv2.CV_32F, 0, 1))
    go = cv2.magnitude(cv2.Sobel(og_f, cv2.CV_32F, 1, 0), cv2.Sobel(og_f, cv2.CV_32F, 0, 1))
    # Sobel magnitudes are about 4x grey-level differences
    grad = _range_distance(cv2.GaussianBlur(gs, (0, 0), 1.5), cv2.GaussianBlur(go, (0, 0), 1.5)) / 4
    # texture: local contrast lost or gained (inpainting smooths, a pasted photo adds)
    k = (9, 9)
    std_s = np.sqrt(np.maximum(cv2.blur(sgf * sgf, k) - cv2.blur(sgf, k) ** 2, 0))
    std_o = np.sqrt(np.maximum(cv2.blur(og_f * og_f, k) - cv2.blur(og_f, k) ** 2, 0))
    texture = np.abs(np.log((std_s + 2.0) / (std_o + 2.0)))
    return {"delta_e": delta_e, "dssim": dssim, "gradient": grad, "texture": texture}


def combine(maps: dict[str, np.ndarray], thresholds: dict[str, float] = THRESHOLDS) -> np.ndarray:
    """Change strength: the per-pixel maximum of each map over its threshold, smoothed."""
    strength = np.maximum.reduce([maps[k] / thresholds[k] for k in thresholds])
    return cv2.GaussianBlur(strength.astype(np.float32), (0, 0), 2.0)


def _strength_at(suspect: np.ndarray, aligned: np.ndarray, scale: float) -> np.ndarray:
    """Change strength computed at ``scale`` (the early passes only steer the fits)."""
    h, w = suspect.shape[:2]
    if scale >= 1.0 or min(h, w) < 256:
        return combine(components(suspect, aligned))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = combine(
        components(
            cv2.resize(suspect, size, interpolation=cv2.INTER_AREA),
            cv2.resize(aligned, size, interpolation=cv2.INTER_AREA),
        )
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _smoother(suspect: np.ndarray, aligned: np.ndarray) -> np.ndarray:
    """1 where the suspect has lost fine texture against the original, else 0 (float32)."""
    sg = cv2.cvtColor(suspect, cv2.COLOR_RGB2GRAY).astype(np.float32)
    og = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY).astype(np.float32)

    def fine(g: np.ndarray) -> np.ndarray:
        hp = g - cv2.GaussianBlur(g, (0, 0), 1.5)
        return np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 4.0))

    return (fine(sg) + 0.5 < SMOOTHER * (fine(og) + 0.5)).astype(np.float32)


def _hysteresis(strength: np.ndarray, seeds: np.ndarray, low: float) -> np.ndarray:
    """``seeds`` and the pixels over ``low`` connected to them (as Canny's edges)."""
    n, labels = cv2.connectedComponents((strength >= low).astype(np.uint8), connectivity=8)
    keep = np.zeros(n, bool)
    keep[np.unique(labels[seeds])] = True
    keep[0] = False
    return keep[labels] | seeds


def _clean(raw: np.ndarray, compared: np.ndarray) -> np.ndarray:
    """Open, close, drop small components and fill holes."""
    h, w = raw.shape
    r = max(1, round(min(h, w) / 200))
    disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    m = cv2.morphologyEx(raw.astype(np.uint8), cv2.MORPH_OPEN, disk)
    m = cv2.morphologyEx(m, cv2.MORPH_CLOSE, disk, iterations=2) & compared.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    min_area = MIN_REGION * max(1, int(compared.sum()))
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_area
    m = keep[labels].astype(np.uint8)
    # fill holes: background not reachable from the border
    inv = 1 - m
    n2, lab2, st2, _ = cv2.connectedComponentsWithStats(inv, connectivity=4)
    border = set(np.unique(np.concatenate([lab2[0], lab2[-1], lab2[:, 0], lab2[:, -1]])).tolist())
    max_hole = MAX_HOLE * max(1, int(compared.sum()))
    holes = np.array([i not in border and st2[i, cv2.CC_STAT_AREA] <= max_hole for i in range(n2)])
    filled = m.astype(bool) | (holes[lab2] & (inv > 0))
    return filled & compared


def _to_edge(
    mask: np.ndarray, compared: np.ndarray, shown: np.ndarray, reach: int
) -> tuple[np.ndarray, np.ndarray]:
    """Carry the verdict of the outermost compared pixels out to the picture's edge.

    The comparison leaves a strip of ``reach`` pixels along the edges of what
    shows the original (``shown``) unjudged, because its windows would reach
    past the edge. Each pixel of that strip takes the verdict of the nearest
    compared pixel, so a region that reaches the strip reaches the edge.
    Returns the new mask and compared area.
    """
    if not compared.any():
        return mask, compared
    dist, labels = cv2.distanceTransformWithLabels(
        (~compared).astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
    )
    strip = shown & ~compared & (dist <= reach)
    # labels number the compared pixels in raster order, from 1
    verdict = np.concatenate([[False], mask[compared]])
    return mask | (strip & verdict[labels]), compared | strip


def detect_changes(
    original: np.ndarray,
    matrix: np.ndarray,
    suspect: np.ndarray,
    *,
    jpeg_quality: int | None = None,
    trusted_points: np.ndarray | None = None,
    passes: int = 3,
) -> ChangeMap:
    """Compare ``suspect`` with ``original`` mapped into its grid by ``matrix``.

    Parameters
    ----------
    original : (P, Q, 3) uint8 array
    matrix : (3, 3) float array
        From ``original`` pixel coordinates to ``suspect`` ones.
    suspect : (M, N, 3) uint8 array
        Compared as given (the caller downscales big suspects).
    jpeg_quality : int, optional
        The suspect's estimated JPEG quality; the warped original is
        re-compressed at it so both carry the same artefacts.
    trusted_points : (K, 2) float array, optional
        Suspect points ``(x, y)`` known to show the original (the alignment's
        inliers); the first pass fits colour near them only, so a large
        replaced region cannot pull the colour fit towards itself.
    passes : int
        Detection passes: the first fits alignment and colour near the trusted
        points, the middle ones (colour only) everywhere but the previous mask
        and clear changes (:data:`CLEAR_CHANGE`), the last everywhere but the
        previous mask; the last grows regions into smoothed pixels.
    """
    grey = cv2.cvtColor(suspect, cv2.COLOR_RGB2GRAY)
    original, matrix, pre = _at_scale(original, matrix)
    _, inside = warp_original(original, matrix, grey.shape)
    # the comparison's blurs and windows reach EDGE_PX into the picture from a border
    erode = max(EDGE_PX, round(min(grey.shape) / 150))
    compared = cv2.erode(inside.astype(np.uint8), np.ones((2 * erode + 1,) * 2, np.uint8)) > 0
    mask = np.zeros_like(compared)
    strength = np.zeros(grey.shape, np.float32)
    aligned = suspect
    trusted = _near(trusted_points, grey.shape) & compared if trusted_points is not None else None
    warped, _ = warp_original(original, matrix, grey.shape)
    frame = frame_mask(suspect, warped, compared)
    if frame.any():
        edge = cv2.dilate(frame.astype(np.uint8), np.ones((2 * erode + 1,) * 2, np.uint8)) > 0
        compared &= ~edge
    for i in range(max(1, passes)):
        middle = 0 < i < passes - 1
        if i == 0 and trusted is not None and trusted.sum() >= TRUSTED_MIN:
            valid = trusted
        else:
            # the middle pass also leaves out clear changes the first mask missed, so
            # a first fit from too few places cannot lock itself in; the last leaves
            # out the mask
            out = (strength >= CLEAR_CHANGE) | mask if middle else mask
            keep_out = cv2.dilate(out.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
            valid = compared & ~keep_out
        if not middle:  # a replaced region left in would pull ECC off by pixels
            matrix = _ecc_refine(original, matrix, grey, valid, trusted_points)
        warped, _ = warp_original(original, matrix, grey.shape)
        final = i == max(1, passes) - 1
        aligned = _recompress(_colour_lut(warped, suspect, valid), jpeg_quality if final else None)
        strength = _strength_at(suspect, aligned, 1.0 if final else 0.5)
        strength[~compared] = 0
        mask = _clean(strength >= 1.0, compared)
        if final and mask.any() and GROW_STRENGTH < 1.0:
            grow = strength * _smoother(suspect, aligned)
            mask = _clean(_hysteresis(grow, mask, GROW_STRENGTH), compared)
    mask, compared = _to_edge(mask, compared, inside & ~frame, 3 * erode)
    return ChangeMap(
        mask=mask, compared=compared, strength=strength, aligned=aligned, matrix=matrix @ pre
    )
