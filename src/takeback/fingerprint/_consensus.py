"""The compiled 1-point consensus of the derivative fingerprint.

Every correspondence between a registered and a suspect feature proposes a
similarity transform by itself (scale change from the two sizes, rotation from
the two orientations, shift from the positions); a correspondence agrees with
a proposal when the transform puts it within ``reproj`` pixels (scaled with
the transform) and its own scale change and rotation are within tolerance.
:func:`~.derivative.consensus` refines the winning proposal;
:class:`~.derivative_index.DerivativeIndex` re-ranks candidates by its count.
Kept apart so that computing a fingerprint never imports numba.
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["agreement", "best_proposal"]


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
