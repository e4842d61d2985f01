"""PDQ, compiled: the same hash and quality as ``pdqhash.compute``, bit for bit.

PDQ (Meta's ThreatExchange, "pdqhash-2017-10-09.pdf") blurs the luma with two
passes of a box filter along rows then columns (Jarosz's tent), samples a
64 x 64 grid, takes the 16 x 16 lowest DCT frequencies above DC and sets a bit
where a frequency exceeds their median. ``pdqhash.compute`` spends most of its
time in double-precision luma arrays and in column passes that stride across
memory. This module computes the same float32 arithmetic in the same order
(so the same bits, which interoperability needs), with the column passes run
across all columns at once, and the second column pass evaluated only on the
columns the grid samples. ``tests/test_interop.py`` checks every bit and the quality against
``pdqhash`` on photos of many sizes.

:func:`takeback.fingerprint.pdq.pdq_from_pixels` hashes through this module
once :func:`~takeback.fingerprint.pdq.use_compiled` is on (batches turn it
on: loading the compiled code costs ~0.7 s per process).
"""

from __future__ import annotations

import numba
import numpy as np

from .pdq import frequency_bits

__all__ = ["pdq_bits", "pdq_frequencies"]

#: Sides of the grid the blurred luma is sampled on.
_GRID = 64


def _dct_matrix() -> np.ndarray:
    """The 16 x 64 DCT-II rows PDQ projects on (frequencies 1-16), float32 as PDQ stores them."""
    scale = np.float64(np.float32(np.sqrt(2.0 / _GRID)))
    i = np.arange(1, 17, dtype=np.float64)[:, None]
    j = np.arange(_GRID, dtype=np.float64)[None, :]
    return (scale * np.cos((np.pi / 2.0 / _GRID) * i * (2 * j + 1))).astype(np.float32)


_DCT = _dct_matrix()


@numba.njit(cache=True, nogil=True)
def _luma(rgb: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Rec. 601 luma as ``pdqhash`` computes it: in double, then rounded to float."""
    rows, cols = rgb.shape[0], rgb.shape[1]
    out = np.empty((rows, cols), np.float32)
    for i in range(rows):
        for j in range(cols):
            out[i, j] = np.float32(
                rgb[i, j, 0] * 0.299 + rgb[i, j, 1] * 0.587 + rgb[i, j, 2] * 0.114
            )
    return out


@numba.njit(cache=True, nogil=True)
def _window(length: int) -> int:  # pragma: no cover - compiled
    """Box width along a side of ``length`` pixels: half a grid cell, rounded up."""
    return (length + 2 * _GRID - 1) // (2 * _GRID)


@numba.njit(cache=True, nogil=True)
def _box_down(
    src: np.ndarray, dst: np.ndarray, full: int, lanes: np.ndarray
) -> None:  # pragma: no cover - compiled
    """PDQ's 1-D box filter down axis 0 of ``src`` for the columns in ``lanes``.

    The running sum starts with the first half window, grows the window to
    ``full`` while writing, slides it, then shrinks it at the far end; every
    output is the running sum divided by the current width, in float32. Each
    column's operations are exactly those of PDQ's filter on that column.
    """
    length = src.shape[0]
    half = (full + 2) // 2
    sums = np.zeros(lanes.size, np.float32)
    for r in range(half - 1):
        for k in range(lanes.size):
            sums[k] += src[r, lanes[k]]
    width = half - 1
    out = 0
    for r in range(half - 1, full):
        width += 1
        w = np.float32(width)
        for k in range(lanes.size):
            sums[k] += src[r, lanes[k]]
            dst[out, lanes[k]] = sums[k] / w
        out += 1
    w = np.float32(width)
    for r in range(full, length):
        for k in range(lanes.size):
            c = lanes[k]
            sums[k] += src[r, c]
            sums[k] -= src[r - full, c]
            dst[out, c] = sums[k] / w
        out += 1
    for r in range(length - full, length - full + half - 1):
        width -= 1
        w = np.float32(width)
        for k in range(lanes.size):
            sums[k] -= src[r, lanes[k]]
            dst[out, lanes[k]] = sums[k] / w
        out += 1


@numba.njit(cache=True, nogil=True)
def _box_across(src: np.ndarray, dst: np.ndarray, full: int) -> None:  # pragma: no cover - compiled
    """PDQ's 1-D box filter along every row (axis 1), one row after another."""
    length = src.shape[1]
    half = (full + 2) // 2
    for i in range(src.shape[0]):
        row, out = src[i], dst[i]
        s = np.float32(0.0)
        for r in range(half - 1):
            s += row[r]
        width = half - 1
        o = 0
        for r in range(half - 1, full):
            width += 1
            s += row[r]
            out[o] = s / np.float32(width)
            o += 1
        w = np.float32(width)
        for r in range(full, length):
            s += row[r]
            s -= row[r - full]
            out[o] = s / w
            o += 1
        for r in range(length - full, length - full + half - 1):
            width -= 1
            s -= row[r]
            out[o] = s / np.float32(width)
            o += 1


@numba.njit(cache=True, nogil=True)
def _grid(length: int) -> np.ndarray:  # pragma: no cover - compiled
    """The 64 indices along a side PDQ samples: cell centres, truncated."""
    out = np.empty(_GRID, np.int64)
    for i in range(_GRID):
        out[i] = int(((i + 0.5) * length) / _GRID)
    return out


@numba.njit(cache=True, nogil=True)
def _sampled(luma: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """The 64 x 64 samples of the twice box-filtered luma (PDQ's Jarosz filter)."""
    rows, cols = luma.shape
    along_rows, along_cols = _window(cols), _window(rows)
    every_col = np.arange(cols)
    a = np.empty_like(luma)
    # Pass 1: every row, then every column.
    _box_across(luma, a, along_rows)
    _box_down(a, luma, along_cols, every_col)
    # Pass 2: only the sampled columns of the row pass are read by the column
    # pass, and only the sampled rows of that are kept.
    grid_rows, grid_cols = _grid(rows), _grid(cols)
    _box_across(luma, a, along_rows)  # rows of a: running sums need the whole row
    _box_down(a, luma, along_cols, grid_cols)
    out = np.empty((_GRID, _GRID), np.float32)
    for i in range(_GRID):
        for j in range(_GRID):
            out[i, j] = luma[grid_rows[i], grid_cols[j]]
    return out


@numba.njit(cache=True, nogil=True)
def _quality(a: np.ndarray) -> int:  # pragma: no cover - compiled
    """PDQ's image-domain quality: significant gradients of the 64 x 64 samples, 0-100."""
    total = 0
    hundred, full = np.float32(100.0), np.float32(255.0)
    for i in range(_GRID - 1):
        for j in range(_GRID):
            total += abs(int((a[i, j] - a[i + 1, j]) * hundred / full))
    for i in range(_GRID):
        for j in range(_GRID - 1):
            total += abs(int((a[i, j] - a[i, j + 1]) * hundred / full))
    return min(total // 90, 100)


@numba.njit(cache=True, nogil=True)
def _dct16(a: np.ndarray, d: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """``d @ a @ d.T`` with PDQ's float32 sums in PDQ's order."""
    t = np.empty((16, _GRID), np.float32)
    for i in range(16):
        for j in range(_GRID):
            s = np.float32(0.0)
            for k in range(_GRID):
                s += d[i, k] * a[k, j]
            t[i, j] = s
    b = np.empty((16, 16), np.float32)
    for i in range(16):
        for j in range(16):
            s = np.float32(0.0)
            for k in range(_GRID):
                s += t[i, k] * d[j, k]
            b[i, j] = s
    return b


@numba.njit(cache=True, nogil=True)
def _dct_and_quality(
    rgb: np.ndarray, d: np.ndarray
) -> tuple[np.ndarray, int]:  # pragma: no cover - compiled
    a = _sampled(_luma(rgb))
    return _dct16(a, d), _quality(a)


def pdq_frequencies(rgb: np.ndarray) -> tuple[np.ndarray, int] | None:
    """PDQ's 16 x 16 DCT frequencies and quality of an ``(M, N, 3)`` uint8 image.

    Exactly the float32 values ``pdqhash`` derives its bits from;
    :func:`~takeback.fingerprint.pdq.frequency_bits` turns them into a hash. None when the image is
    not one this path covers (64 px or less on a side: PDQ treats exactly
    64 x 64 and tiny images apart), for the caller to hand to ``pdqhash``.
    """
    if rgb.ndim != 3 or rgb.shape[2] != 3 or min(rgb.shape[:2]) <= _GRID:
        return None
    # One compiled signature: C-ordered and writable (a read-only decode is copied, ~0.2 ms).
    b, quality = _dct_and_quality(np.require(rgb, np.uint8, ["C", "W"]), _DCT)
    return b, int(quality)


def pdq_bits(rgb: np.ndarray) -> tuple[np.ndarray, int] | None:
    """PDQ hash bits and quality of an ``(M, N, 3)`` uint8 image, as ``pdqhash.compute``.

    The 256 bits come in ``pdqhash``'s vector order (most significant first);
    None as for :func:`pdq_frequencies`.
    """
    found = pdq_frequencies(rgb)
    return None if found is None else (frequency_bits(found[0]), found[1])
