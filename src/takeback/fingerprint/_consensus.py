"""The compiled ratio test and 1-point consensus of the derivative fingerprint.

:func:`ratio_matches` pairs each registered feature with its nearest suspect
feature when that one is clearly nearer than the second nearest (Lowe's
ratio test); these pairs are the correspondences the consensus weighs.

Every correspondence between a registered and a suspect feature proposes a
similarity transform by itself (scale change from the two sizes, rotation from
the two orientations, shift from the positions); a correspondence agrees with
a proposal when the transform puts it within ``reproj`` pixels (scaled with
the transform) and its own scale change and rotation are within tolerance.
:func:`~.derivative.consensus` refines the winning proposal, testing the
correspondences with :func:`agreeing` against it and against the refined
transform; :class:`~.derivative_index.DerivativeIndex` re-ranks candidates by
the count (:func:`agreement`). One test of agreement, :func:`_agrees`, serves all.
:func:`line_medians` serves the suspect's border and caption-bar search
(:func:`~.derivative.edge_bands`). Kept apart so that computing a fingerprint
never imports numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = [
    "agreeing",
    "agreement",
    "best_proposal",
    "line_medians",
    "one_to_one",
    "proposal",
    "ratio_matches",
]


@numba.njit(cache=True, nogil=True)
def ratio_matches(
    products: np.ndarray, reg_norms: np.ndarray, sus_norms: np.ndarray, ratio: float
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Registered -> suspect pairs passing the ratio test, from the products.

    ``products`` is ``-2 reg @ sus.T`` (one matrix product), the norms are the
    rows' squared lengths: a squared distance is ``reg_norm + product +
    sus_norm``. A pair passes when its distance is under ``ratio`` times the
    registered feature's second-nearest distance.
    """
    n = products.shape[0]
    src = np.empty(n, np.int64)
    dst = np.empty(n, np.int64)
    k = 0
    limit = ratio * ratio
    for r in range(n):
        first = np.inf
        second = np.inf
        at = -1
        for j in range(products.shape[1]):
            v = products[r, j] + sus_norms[j]
            if v < second:
                if v < first:
                    second = first
                    first = v
                    at = j
                else:
                    second = v
        first = max(first + reg_norms[r], 0.0)
        second = max(second + reg_norms[r], 0.0)
        if first < limit * second:
            src[k] = r
            dst[k] = at
            k += 1
    return src[:k], dst[:k]


@numba.njit(cache=True, nogil=True, inline="always")
def proposal(
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
    i: int,
    reproj: float,
) -> tuple[float, float, float, float, float, float, float]:  # pragma: no cover - compiled
    """The similarity transform correspondence ``i`` implies: ``(c, s, tx, ty)``
    (scale times cosine and sine of the rotation, translation), its log2 scale,
    its rotation in degrees and its reprojection tolerance."""
    sc = max(ss[i], 1e-3) / max(rs[i], 1e-3)
    th = np.radians(sa[i] - ra[i])
    c, s = sc * np.cos(th), sc * np.sin(th)
    tx = sp[i, 0] - (c * rp[i, 0] - s * rp[i, 1])
    ty = sp[i, 1] - (s * rp[i, 0] + c * rp[i, 1])
    return c, s, tx, ty, np.log2(sc), sa[i] - ra[i], reproj * max(sc, 0.3)


@numba.njit(cache=True, nogil=True, inline="always")
def _agrees(
    t: tuple[float, float, float, float, float, float, float],
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
    j: int,
    scale_tol: float,
    angle_tol: float,
) -> bool:  # pragma: no cover - compiled
    """Whether correspondence ``j`` agrees with transform ``t`` (:func:`proposal`)."""
    c, s, tx, ty, lsc, deg, tol = t
    px = c * rp[j, 0] - s * rp[j, 1] + tx - sp[j, 0]
    py = s * rp[j, 0] + c * rp[j, 1] + ty - sp[j, 1]
    if np.hypot(px, py) >= tol:
        return False
    if abs(np.log2(max(ss[j], 1e-3) / max(rs[j], 1e-3)) - lsc) >= scale_tol:
        return False
    return abs(((sa[j] - ra[j]) - deg + 180.0) % 360.0 - 180.0) < angle_tol


@numba.njit(cache=True, nogil=True)
def agreeing(
    t: tuple[float, float, float, float, float, float, float],
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
    scale_tol: float,
    angle_tol: float,
) -> np.ndarray:  # pragma: no cover - compiled
    """Which correspondences agree with transform ``t`` (:func:`proposal`): a bool mask."""
    out = np.zeros(len(rp), np.bool_)
    for j in range(len(rp)):
        out[j] = _agrees(t, rp, rs, ra, sp, ss, sa, j, scale_tol, angle_tol)
    return out


@numba.njit(cache=True, nogil=True)
def best_proposal(
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
    a: int,
    b: int,
    reproj: float,
    scale_tol: float,
    angle_tol: float,
) -> tuple[int, int]:  # pragma: no cover - compiled
    """The proposal among rows ``a:b`` most of them agree with, and their count."""
    best, best_count = a, -1
    for i in range(a, b):
        t = proposal(rp, rs, ra, sp, ss, sa, i, reproj)
        count = 0
        for j in range(a, b):
            if _agrees(t, rp, rs, ra, sp, ss, sa, j, scale_tol, angle_tol):
                count += 1
        if count > best_count:
            best, best_count = i, count
    return best, best_count


@numba.njit(cache=True, nogil=True)
def _first_per_place(points: np.ndarray, rows: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Those of ``rows`` (in order) whose position, rounded to 0.01 as
    ``np.round(p, 2)`` rounds float64 positions, no earlier one of them has
    (float32 positions round differently in numpy: pass float64)."""
    cells = np.rint(points * 100.0)  # in hundredths, rounded once
    keep = np.empty(len(rows), np.int64)
    kept = 0
    for j in rows:
        fresh = True
        for k in keep[:kept]:
            if cells[k, 0] == cells[j, 0] and cells[k, 1] == cells[j, 1]:
                fresh = False
                break
        if fresh:
            keep[kept] = j
            kept += 1
    return keep[:kept]


@numba.njit(cache=True, nogil=True)
def one_to_one(
    inliers: np.ndarray, rp: np.ndarray, sp: np.ndarray
) -> np.ndarray:  # pragma: no cover
    """The inliers that count, each suspect and each registered place once: the
    first inlier at each suspect position, then of those the first at each
    registered position (positions rounded to 0.01). A bool mask."""
    out = np.zeros(len(inliers), np.bool_)
    out[_first_per_place(rp, _first_per_place(sp, np.flatnonzero(inliers)))] = True
    return out


#: Positions closer than this (working-size pixels, on both axes) are one place
#: in the re-rank. The verification's :func:`one_to_one` rounds positions to
#: 0.01 instead and takes suspect places before registered ones: the two agree
#: on identical positions (SIFT's extra orientations), the case they exist for.
_SAME_PLACE = 0.05


@numba.njit(cache=True, nogil=True, inline="always")
def _same_place(points: np.ndarray, k: int, j: int) -> bool:  # pragma: no cover - compiled
    """Whether rows ``k`` and ``j`` of ``points`` are one place."""
    return (
        abs(points[k, 0] - points[j, 0]) < _SAME_PLACE
        and abs(points[k, 1] - points[j, 1]) < _SAME_PLACE
    )


@numba.njit(cache=True, nogil=True)
def agreement(
    bounds: np.ndarray,
    rp: np.ndarray,
    rs: np.ndarray,
    ra: np.ndarray,
    sp: np.ndarray,
    ss: np.ndarray,
    sa: np.ndarray,
    reproj: float,
    scale_tol: float,
    angle_tol: float,
    out: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """Per group ``bounds[g]:bounds[g + 1]``: how many correspondences agree with
    the transform most of them agree on (:func:`best_proposal`), each
    registered and each suspect position counted once.

    A repetitive or busy photo offers several features at one place (SIFT's
    extra orientations, a suspect feature's second word): counted one-to-one,
    as the verification counts inliers, such a photo no longer outranks a
    copy's original in the shortlist.
    """
    kept = np.empty(len(rp), np.int64)  # the rows counted so far, reused by every group
    for g in range(len(bounds) - 1):
        a, b = bounds[g], bounds[g + 1]
        if b <= a:
            continue
        h, _ = best_proposal(rp, rs, ra, sp, ss, sa, a, b, reproj, scale_tol, angle_tol)
        t = proposal(rp, rs, ra, sp, ss, sa, h, reproj)
        count = 0
        for j in range(a, b):
            if not _agrees(t, rp, rs, ra, sp, ss, sa, j, scale_tol, angle_tol):
                continue
            fresh = True
            for k in kept[:count]:
                if _same_place(sp, k, j) or _same_place(rp, k, j):
                    fresh = False
                    break
            if fresh:
                kept[count] = j
                count += 1
        out[g] = count


@numba.njit(cache=True, nogil=True)
def line_medians(lines: np.ndarray, free: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Median of each line's ``free`` values (grey levels 0-255), as ``np.median``
    gives it: the middle value, or the mean of the two middle values; found by
    counting levels instead of sorting. A line with none free gets 32767 (no
    grey level)."""
    out = np.empty(lines.shape[0], np.float64)
    hist = np.zeros(256, np.int64)
    for r in range(lines.shape[0]):
        hist[:] = 0
        k = 0
        for c in range(lines.shape[1]):
            if free[r, c]:
                hist[lines[r, c]] += 1
                k += 1
        if k == 0:
            out[r] = 32767.0
            continue
        lo_rank, hi_rank = (k - 1) // 2, k // 2
        lo = hi = -1
        seen = 0
        for v in range(256):
            seen += hist[v]
            if lo < 0 and seen > lo_rank:
                lo = v
            if seen > hi_rank:
                hi = v
                break
        out[r] = (lo + np.float64(hi)) / 2
    return out


@numba.njit(cache=True, nogil=True)
def _pixel(side: int, d: int, j: int, h: int, w: int) -> tuple[int, int]:  # pragma: no cover
    """Row and column of pixel ``j`` of line ``d`` in from one edge (0 top, 2
    bottom, 1 right, 3 left: line ``d`` of ``np.rot90(image, side)``, in some
    order along it)."""
    if side == 0:
        return d, j
    if side == 2:
        return h - 1 - d, j
    if side == 1:
        return j, w - 1 - d
    return j, d


@numba.njit(cache=True, nogil=True)
def _lines(
    grey: np.ndarray, mask: np.ndarray, side: int, depth: int, limit: int
) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover - compiled
    """Lines ``depth`` to ``limit - 1`` in from one edge (0 top, 2 bottom, 1
    right, 3 left: the first line of ``np.rot90(grey, side)``): their grey
    levels and whether each pixel is outside the bands found so far."""
    h, w = grey.shape
    length = w if side == 0 or side == 2 else h
    n = max(limit - depth, 0)
    vals = np.empty((n, length), np.int16)
    free = np.empty((n, length), np.bool_)
    for i in range(n):
        for j in range(length):
            r, c = _pixel(side, depth + i, j, h, w)
            vals[i, j] = grey[r, c]
            free[i, j] = not mask[r, c]
    return vals, free


@numba.njit(cache=True, nogil=True)
def _near(vals: np.ndarray, free: np.ndarray, level: float, tol: float) -> int:  # pragma: no cover
    """Free values of one line within ``tol`` of ``level``."""
    k = 0
    for j in range(len(vals)):
        if free[j] and abs(vals[j] - level) <= tol:
            k += 1
    return k


@numba.njit(cache=True, nogil=True)
def _band_end(
    vals: np.ndarray, free: np.ndarray, tol: float, uniform: float, keep: float
) -> int:  # pragma: no cover - compiled
    """Lines a band takes from the first of ``vals`` (0: no band): see
    :func:`~.derivative.edge_bands`."""
    n = vals.shape[0]
    if n == 0:
        return 0
    levels = line_medians(vals, free)
    count = np.maximum(free.sum(axis=1), 1)
    first = -1
    for i in range(n):
        if _near(vals[i], free[i], levels[i], tol) >= uniform * count[i]:
            first = i
            break
    if first < 0:
        return 0
    misses, end = 0, first + 1
    for i in range(n):
        keeps = _near(vals[i], free[i], levels[first], tol) >= keep * count[i]
        if i < first:
            if not keeps:
                return 0
        elif i > first:
            if keeps:
                end, misses = i + 1, 0
            else:
                misses += 1
                if misses > 4:
                    break
    return end if end >= 2 else 0


@numba.njit(cache=True, nogil=True)
def _caption_end(
    vals: np.ndarray, free: np.ndarray, tol: float, keep: float, gone: float, margin: float
) -> int:  # pragma: no cover - compiled
    """Lines a caption bar with no line of one grey level takes from the first
    of ``vals`` (0: none): see :func:`~.derivative.edge_bands`."""
    n = vals.shape[0]
    if n < 4 or not free[0].any():
        return 0
    level = line_medians(vals[:1], free[:1])[0]
    shares = np.empty(n, np.float64)
    end = -1
    for i in range(n):
        shares[i] = _near(vals[i], free[i], level, tol) / max(free[i].sum(), 1)
        if shares[i] < gone:
            end = i
            break
    if end < 3:
        return 0
    if shares[: end - 2].min() < keep or shares[max(0, end - 4) : end].max() < margin:
        return 0
    return end


@numba.njit(cache=True, nogil=True)
def edge_band_mask(
    grey: np.ndarray,
    deepest: float,
    band: tuple[float, float, float],
    caption: tuple[float, float, float, float],
) -> np.ndarray:  # pragma: no cover - compiled
    """The compiled search of :func:`~.derivative.edge_bands`: ``deepest`` is
    the share of a side a band may reach, ``band`` the tolerance and shares of
    a band of one grey level, ``caption`` those of a caption bar without one."""
    h, w = grey.shape
    mask = np.zeros((h, w), np.bool_)
    for side in (0, 2, 1, 3):  # top and bottom first: side bands skip caption bars
        lines = h if side == 0 or side == 2 else w
        limit = int(lines * deepest)
        depth = 0
        for _ in range(3):
            if limit <= depth:
                break
            vals, free = _lines(grey, mask, side, depth, limit)
            taken = _band_end(vals, free, band[0], band[1], band[2])
            if taken == 0:
                taken = _caption_end(vals, free, caption[0], caption[1], caption[2], caption[3])
            if taken == 0:
                break
            depth += taken
            for d in range(depth):
                for j in range(w if side == 0 or side == 2 else h):
                    mask[_pixel(side, d, j, h, w)] = True
    return mask
