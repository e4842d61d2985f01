"""The compiled ratio test and 1-point consensus of the derivative fingerprint.

:func:`ratio_matches` pairs each registered feature with its nearest suspect
feature when that one is clearly nearer than the second nearest (Lowe's
ratio test); these pairs are the correspondences the consensus weighs.

Every correspondence between a registered and a suspect feature proposes a
similarity transform by itself (scale change from the two sizes, rotation from
the two orientations, shift from the positions); a correspondence agrees with
a proposal when the transform puts it within ``reproj`` pixels (scaled with
the transform) and its own scale change and rotation are within tolerance.
:func:`~.derivative.consensus` refines the winning proposal;
:class:`~.derivative_index.DerivativeIndex` re-ranks candidates by its count.
:func:`line_medians` serves the suspect's border and caption-bar search
(:func:`~.derivative.edge_bands`). Kept apart so that computing a fingerprint
never imports numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["agreement", "best_proposal", "line_medians", "ratio_matches"]


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
        sc = max(ss[i], 1e-3) / max(rs[i], 1e-3)
        th = np.radians(sa[i] - ra[i])
        c, s = sc * np.cos(th), sc * np.sin(th)
        tx = sp[i, 0] - (c * rp[i, 0] - s * rp[i, 1])
        ty = sp[i, 1] - (s * rp[i, 0] + c * rp[i, 1])
        lsc = np.log2(sc)
        deg = sa[i] - ra[i]
        tol = reproj * max(sc, 0.3)
        count = 0
        for j in range(a, b):
            px = c * rp[j, 0] - s * rp[j, 1] + tx - sp[j, 0]
            py = s * rp[j, 0] + c * rp[j, 1] + ty - sp[j, 1]
            if np.hypot(px, py) >= tol:
                continue
            if abs(np.log2(max(ss[j], 1e-3) / max(rs[j], 1e-3)) - lsc) >= scale_tol:
                continue
            if abs(((sa[j] - ra[j]) - deg + 180.0) % 360.0 - 180.0) < angle_tol:
                count += 1
        if count > best_count:
            best, best_count = i, count
    return best, best_count


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
    """Per group ``bounds[g]:bounds[g + 1]``: the most correspondences that agree."""
    for g in range(len(bounds) - 1):
        if bounds[g + 1] > bounds[g]:
            out[g] = best_proposal(
                rp, rs, ra, sp, ss, sa, bounds[g], bounds[g + 1], reproj, scale_tol, angle_tol
            )[1]


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
