"""Exact Hamming-radius search over PDQ hashes, held in memory.

One small interface, :class:`MatchIndex`, and two named implementations:

``"bruteforce"`` (:class:`BruteForceIndex`)
    numpy only: every query is compared with every entry. It is the oracle the
    tests compare every fast path with, and what small banks use (no JIT
    compilation is paid). About 15 ms per query at 1M entries.
``"mih"`` (:class:`MihIndex`)
    Multi-index hashing (Norouzi, Punjani and Fleet, "Fast Exact Search in
    Hamming Space with Multi-Index Hashing", TPAMI 2014), compiled with numba.
    Exact, with incremental adds and removals; the one to use for large banks.

:func:`build_index` picks one by bank size. Every search is exact: the result of
a query is every entry within the radius, sorted by (distance, id), nothing
approximate.

Codes are PDQ hashes as ``(n, 32)`` uint8 arrays (the layout of
:meth:`takeback.fingerprint.types.PdqHash.to_array`); ids are int64.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> codes = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
>>> ids = np.arange(1000, dtype=np.int64)
>>> query = codes[7].copy()
>>> query[0] ^= 0b111                       # 3 bits away from entry 7
>>> with build_index(ids, codes) as index:
...     [(found, dists)] = index.search(query, 31)
>>> found.tolist(), dists.tolist()
([7], [3])
"""

from __future__ import annotations

import abc
import itertools
import math
import operator
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, ClassVar, Final, Self

import numpy as np

__all__ = [
    "AUTO_MIH_MIN_ENTRIES",
    "CODE_BYTES",
    "INDEX_KINDS",
    "MAX_RADIUS",
    "BruteForceIndex",
    "MatchIndex",
    "MihIndex",
    "build_index",
]

#: Bytes in one code (a 256-bit PDQ hash).
CODE_BYTES: Final = 32
#: Largest meaningful search radius (every code is within 256 bits of every other).
MAX_RADIUS: Final = 256
#: ``build_index(kind="auto")`` uses :class:`MihIndex` from this many entries up,
#: :class:`BruteForceIndex` below.
AUTO_MIH_MIN_ENTRIES: Final = 100_000

_WORDS: Final = CODE_BYTES // 8
_EMPTY_IDS = np.zeros(0, dtype=np.int64)
_EMPTY_DISTS = np.zeros(0, dtype=np.int32)


# --------------------------------------------------------------------------
# Input validation (programmer errors: ValueError with a clear message)
# --------------------------------------------------------------------------


def _check_ids(ids: Any, what: str = "ids") -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{what} must be a 1-D array of int64, got shape {arr.shape}")
    if arr.size == 0:
        return _EMPTY_IDS
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must be integers (int64), got dtype {arr.dtype}")
    if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 and int(arr.max()) > 2**63 - 1:
        raise ValueError(f"{what} must fit in int64; the largest is {int(arr.max())}")
    return arr.astype(np.int64, copy=False)


def _check_codes(codes: Any, n: int) -> np.ndarray:
    if not isinstance(codes, np.ndarray):
        raise ValueError(
            f"codes must be a numpy uint8 array of shape (n, {CODE_BYTES}), "
            f"got {type(codes).__name__}; build rows with PdqHash.to_array()"
        )
    if codes.dtype != np.uint8:
        raise ValueError(
            f"codes must have dtype uint8 (PdqHash.to_array() layout), got {codes.dtype}"
        )
    if codes.ndim != 2 or codes.shape[1] != CODE_BYTES:
        raise ValueError(f"codes must have shape (n, {CODE_BYTES}), got {codes.shape}")
    if codes.shape[0] != n:
        raise ValueError(f"got {n} ids but {codes.shape[0]} codes; they must pair up one to one")
    return codes


def _check_queries(queries: Any) -> np.ndarray:
    if not isinstance(queries, np.ndarray):
        raise ValueError(
            f"queries must be a numpy uint8 array of shape (q, {CODE_BYTES}) or "
            f"({CODE_BYTES},), got {type(queries).__name__}"
        )
    if queries.dtype != np.uint8:
        raise ValueError(f"queries must have dtype uint8, got {queries.dtype}")
    if queries.ndim == 1 and queries.shape[0] == CODE_BYTES:
        queries = queries.reshape(1, CODE_BYTES)
    if queries.ndim != 2 or queries.shape[1] != CODE_BYTES:
        raise ValueError(
            f"queries must have shape (q, {CODE_BYTES}) or ({CODE_BYTES},), got {queries.shape}"
        )
    return queries


def _check_radius(radius: Any) -> int:
    if isinstance(radius, bool) or not isinstance(radius, int | np.integer):
        raise ValueError(f"radius must be an int from 0 to {MAX_RADIUS}, got {radius!r}")
    r = int(radius)
    if not 0 <= r <= MAX_RADIUS:
        raise ValueError(f"radius must be from 0 to {MAX_RADIUS} bits, got {r}")
    return r


def _removal_ids(ids: Iterable[int]) -> np.ndarray:
    if isinstance(ids, np.ndarray):
        return _check_ids(ids)
    try:
        values = [operator.index(i) for i in ids]
    except TypeError as exc:
        raise ValueError(f"ids to remove must be integers: {exc}") from exc
    try:
        return np.array(values, dtype=np.int64)
    except OverflowError as exc:
        raise ValueError("ids to remove must fit in int64") from exc


def _last_wins(ids: np.ndarray) -> np.ndarray:
    """Positions of the last occurrence of each distinct id, in ascending id order."""
    rev = ids[::-1]
    _, first_in_rev = np.unique(rev, return_index=True)
    return ids.shape[0] - 1 - first_in_rev


def _batch_to_add(ids: Any, codes: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validated ids and codes of an ``add`` call, the last occurrence of an id winning,
    codes as ``(n, 4)`` uint64 words."""
    new_ids = _check_ids(ids)
    codes = _check_codes(codes, new_ids.shape[0])
    keep = _last_wins(new_ids)
    return new_ids[keep], _as_words(codes[keep])


def _as_words(codes: np.ndarray) -> np.ndarray:
    """``(n, 32)`` uint8 codes as ``(n, 4)`` uint64 words (a copy, C-contiguous)."""
    return np.ascontiguousarray(codes).view(np.uint64).reshape(-1, _WORDS).copy()


def _split_results(
    counts: np.ndarray, ids: np.ndarray, dists: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    bounds = np.zeros(counts.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=bounds[1:])
    b = bounds.tolist()
    return [(ids[b[i] : b[i + 1]], dists[b[i] : b[i + 1]]) for i in range(counts.shape[0])]


# --------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------


class MatchIndex(abc.ABC):
    """Exact Hamming-radius search over 256-bit codes, in memory.

    Implementations are named (:attr:`name`) and registered in
    :data:`INDEX_KINDS`. An index is a resource: use it as a context manager or
    call :meth:`close` (idempotent); every other method raises ``ValueError``
    once it is closed.

    Mutations (:meth:`add`, :meth:`remove`, :meth:`compact`) are visible to the
    next search at once. An index is not locked internally: searches may run
    from several threads at a time, but a caller that mutates while other
    threads search must serialize the two (e.g. with a readers-writer lock).
    """

    #: Unique implementation name, the ``kind`` of :func:`build_index`.
    name: ClassVar[str]

    @abc.abstractmethod
    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        """Add entries; an id already present is replaced.

        Parameters
        ----------
        ids : (n,) int64 ndarray
            Entry ids. Within one call, the last occurrence of an id wins.
        codes : (n, 32) uint8 ndarray
            PDQ hashes in :meth:`~takeback.fingerprint.types.PdqHash.to_array` layout.
        """

    @abc.abstractmethod
    def remove(self, ids: Iterable[int]) -> int:
        """Remove entries by id; unknown ids are ignored.

        Parameters
        ----------
        ids : iterable of int

        Returns
        -------
        int
            How many of the given (distinct) ids were present.
        """

    @abc.abstractmethod
    def search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Every entry within ``radius`` bits of each query.

        Parameters
        ----------
        queries : (q, 32) or (32,) uint8 ndarray
            A single ``(32,)`` query is treated as ``q = 1``.
        radius : int
            Hamming radius, 0 to 256, inclusive (PDQ matches at
            :data:`~takeback.fingerprint.types.PDQ_MATCH_THRESHOLD` = 31).

        Returns
        -------
        list of (ids, distances)
            One pair per query: int64 ids and int32 distances of every entry at
            distance ``<= radius``, sorted by (distance, id). Exact.
        """

    @abc.abstractmethod
    def __len__(self) -> int:
        """Number of entries present."""

    @abc.abstractmethod
    def memory_bytes(self) -> int:
        """Bytes held by the index's arrays."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the arrays; idempotent."""

    def compact(self) -> None:  # noqa: B027 - a no-op unless an implementation buffers changes
        """Fold buffered changes into the main structure (no-op when there are none)."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if getattr(self, "_closed", False) else f"{len(self)} entries"
        return f"<{type(self).__name__} {self.name!r}: {state}>"


# --------------------------------------------------------------------------
# Brute force (numpy): the oracle and the small-bank index
# --------------------------------------------------------------------------


class BruteForceIndex(MatchIndex):
    """Compare every query with every entry, in numpy (``np.bitwise_count``).

    The oracle of the tests and the index of small banks: no compilation, no
    build step, memory = the codes and ids. Entries are kept in insertion
    order; a removal or replacement rewrites the arrays (O(n)).

    Parameters
    ----------
    ids : (n,) int64 ndarray, optional
    codes : (n, 32) uint8 ndarray, optional
        Initial entries (see :meth:`add`).

    Examples
    --------
    >>> import numpy as np
    >>> codes = np.zeros((2, 32), dtype=np.uint8)
    >>> codes[1, :4] = 0xFF                     # 32 bits away from the zero hash
    >>> index = BruteForceIndex(np.array([10, 11]), codes)
    >>> [(ids, d)] = index.search(np.zeros(32, dtype=np.uint8), 31)
    >>> ids.tolist(), d.tolist()
    ([10], [0])
    """

    name: ClassVar[str] = "bruteforce"

    #: Rows compared per numpy step (bounds temporary memory to a few MB).
    BLOCK_ROWS: ClassVar[int] = 1 << 16

    def __init__(self, ids: np.ndarray | None = None, codes: np.ndarray | None = None) -> None:
        self._closed = False
        self._n = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._words = np.zeros((0, _WORDS), dtype=np.uint64)
        if ids is not None or codes is not None:
            if ids is None or codes is None:
                raise ValueError("pass both ids and codes, or neither")
            self.add(ids, codes)

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this {self.name} index is closed")

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        self._check_open()
        new_ids, new_words = _batch_to_add(ids, codes)
        if new_ids.size == 0:
            return
        self._drop(new_ids)
        n, k = self._n, new_ids.shape[0]
        if n + k > self._ids.shape[0]:
            cap = max(n + k, 2 * self._ids.shape[0], 1024)
            ids_buf = np.empty(cap, dtype=np.int64)
            words_buf = np.empty((cap, _WORDS), dtype=np.uint64)
            ids_buf[:n] = self._ids[:n]
            words_buf[:n] = self._words[:n]
            self._ids, self._words = ids_buf, words_buf
        self._ids[n : n + k] = new_ids
        self._words[n : n + k] = new_words
        self._n = n + k

    def _drop(self, ids: np.ndarray) -> int:
        if self._n == 0 or ids.size == 0:
            return 0
        hit = np.isin(self._ids[: self._n], ids)
        found = int(np.count_nonzero(hit))
        if found:
            keep = ~hit
            live = int(self._n - found)
            self._ids[:live] = self._ids[: self._n][keep]
            self._words[:live] = self._words[: self._n][keep]
            self._n = live
        return found

    def remove(self, ids: Iterable[int]) -> int:
        self._check_open()
        return self._drop(np.unique(_removal_ids(ids)))

    def search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        self._check_open()
        qwords = _as_words(_check_queries(queries))
        r = _check_radius(radius)
        ids, words, n = self._ids, self._words, self._n
        out: list[tuple[np.ndarray, np.ndarray]] = []
        step = self.BLOCK_ROWS
        for q in qwords:
            found_rows: list[np.ndarray] = []
            found_dists: list[np.ndarray] = []
            for start in range(0, n, step):
                block = words[start : min(start + step, n)]
                bits = np.bitwise_count(block ^ q)  # (rows, 4) uint8
                dist = bits[:, 0].astype(np.int32)  # adding columns beats .sum(axis=1) 3x
                dist += bits[:, 1]
                dist += bits[:, 2]
                dist += bits[:, 3]
                hit = np.flatnonzero(dist <= r)
                if hit.size:
                    found_rows.append(hit + start)
                    found_dists.append(dist[hit])
            if not found_rows:
                out.append((_EMPTY_IDS.copy(), _EMPTY_DISTS.copy()))
                continue
            rows = np.concatenate(found_rows)
            dists = np.concatenate(found_dists)
            hit_ids = ids[rows]
            order = np.lexsort((hit_ids, dists))
            out.append((hit_ids[order], dists[order]))
        return out

    def __len__(self) -> int:
        return 0 if self._closed else self._n

    def memory_bytes(self) -> int:
        return 0 if self._closed else int(self._ids.nbytes + self._words.nbytes)

    def close(self) -> None:
        self._closed = True
        self._n = 0
        self._ids = np.zeros(0, dtype=np.int64)
        self._words = np.zeros((0, _WORDS), dtype=np.uint64)


# --------------------------------------------------------------------------
# Multi-index hashing (numba)
# --------------------------------------------------------------------------

_KERNELS: SimpleNamespace | None = None
_KERNELS_LOCK = threading.Lock()


def _kernels() -> SimpleNamespace:
    """Compile (or load from numba's on-disk cache) the MIH kernels, once.

    numba is imported here, not at module import, so that importing TakeBack
    and using :class:`BruteForceIndex` never pays for it.
    """
    global _KERNELS
    with _KERNELS_LOCK:
        if _KERNELS is None:
            import numba
            from numba.extending import register_jitable

            for helper in (_popcount64, _chunk_key, _reserve, _scan_rows, _distance, _sort_pairs):
                register_jitable(helper)
            jit = numba.njit(cache=True, nogil=True)
            _KERNELS = SimpleNamespace(build_chunk=jit(_build_chunk), search=jit(_search))
        return _KERNELS


# The kernels below are plain Python functions (correct but slow when called
# directly); _kernels() hands them to numba. Codes are (4,) uint64 words: bit b
# of a code is bit b % 64 of word b // 64 (any fixed bit order works, as long
# as tables and queries use the same one).

#: Rows per step of a full scan (the size of its hit buffer).
_SCAN_BLOCK: Final = 4096


def _popcount64(x: np.uint64) -> np.int64:
    """Set bits of a uint64 (LLVM turns this into one ``popcnt``)."""
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return np.int64((x * np.uint64(0x0101010101010101)) >> np.uint64(56))


def _chunk_key(w0, w1, w2, w3, start, width, mask):
    """Bits ``[start, start + width)`` of a code given as 4 uint64 words, as int64."""
    k = start >> 6
    off = start & 63
    if k == 0:
        lo, hi = w0, w1
    elif k == 1:
        lo, hi = w1, w2
    elif k == 2:
        lo, hi = w2, w3
    else:
        lo, hi = w3, w3
    v = lo >> np.uint64(off)
    if off + width > 64:
        v |= hi << np.uint64(64 - off)
    return np.int64(v & mask)


def _build_chunk(words, start, width, shift, offsets, table):
    """Counting sort of the rows by one chunk's bucket (its top bits).

    A chunk's key has ``width`` bits: the top ``width - shift`` bits select a
    bucket, the low ``shift`` bits (the suffix) are stored in the entry. Fills
    ``offsets`` ((2**(width - shift) + 1,) uint32) and ``table`` ((n,) uint32)
    so that ``table[offsets[b]:offsets[b + 1]]`` are the entries
    ``row << shift | suffix`` of bucket ``b``, rows ascending.
    """
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    smask = (np.int64(1) << shift) - 1
    n = words.shape[0]
    nb = offsets.shape[0] - 1
    counts = np.zeros(nb + 1, np.int64)
    for row in range(n):
        w0, w1, w2, w3 = words[row, 0], words[row, 1], words[row, 2], words[row, 3]
        key = _chunk_key(w0, w1, w2, w3, start, width, mask)
        counts[(key >> shift) + 1] += 1
    for b in range(nb):
        counts[b + 1] += counts[b]
    for b in range(nb + 1):
        offsets[b] = counts[b]
    for row in range(n):
        w0, w1, w2, w3 = words[row, 0], words[row, 1], words[row, 2], words[row, 3]
        key = _chunk_key(w0, w1, w2, w3, start, width, mask)
        bucket = key >> shift
        table[counts[bucket]] = (np.int64(row) << shift) | (key & smask)
        counts[bucket] += 1


def _reserve(out_ids, out_d, total, need):
    """The output buffers, grown if needed to hold ``need`` pairs (first ``total`` kept).

    Called outside the hot loops: an array reassigned inside a numba loop
    costs reference counting on every iteration.
    """
    if need <= out_ids.shape[0]:
        return out_ids, out_d
    size = max(need, 2 * out_ids.shape[0])
    grown_ids = np.empty(size, np.int64)
    grown_d = np.empty(size, np.int32)
    for i in range(total):  # explicit loops: numba's slice assignment compiles slowly
        grown_ids[i] = out_ids[i]
        grown_d[i] = out_d[i]
    return grown_ids, grown_d


def _scan_rows(words, start, stop, q0, q1, q2, q3, radius, hits):
    """Rows in ``[start, stop)`` within ``radius`` of the query, into ``hits``; their count.

    Branch-free; ``hits`` must hold ``stop - start`` rows.
    """
    n_hits = 0
    for row in range(start, stop):
        d = (
            _popcount64(words[row, 0] ^ q0) + _popcount64(words[row, 1] ^ q1)
            + _popcount64(words[row, 2] ^ q2) + _popcount64(words[row, 3] ^ q3)
        )  # fmt: skip
        hits[n_hits] = row
        n_hits += d <= radius
    return n_hits


def _distance(words, row, q0, q1, q2, q3):
    return (
        _popcount64(words[row, 0] ^ q0) + _popcount64(words[row, 1] ^ q1)
        + _popcount64(words[row, 2] ^ q2) + _popcount64(words[row, 3] ^ q3)
    )  # fmt: skip


def _sort_pairs(ids, dists):
    """Sort ``(dists, ids)`` pairs in place by (distance, id): a bottom-up merge sort.

    (Hand-written: numba's ``np.argsort`` costs seconds of compile time.)
    """
    k = ids.shape[0]
    src_i = ids.copy()
    src_d = dists.copy()
    dst_i = np.empty_like(src_i)
    dst_d = np.empty_like(src_d)
    width = 1
    while width < k:
        for lo in range(0, k, 2 * width):
            mid = min(lo + width, k)
            hi = min(lo + 2 * width, k)
            a, b, out = lo, mid, lo
            while a < mid and b < hi:
                if src_d[b] < src_d[a] or (src_d[b] == src_d[a] and src_i[b] < src_i[a]):
                    dst_i[out] = src_i[b]
                    dst_d[out] = src_d[b]
                    b += 1
                else:
                    dst_i[out] = src_i[a]
                    dst_d[out] = src_d[a]
                    a += 1
                out += 1
            while a < mid:
                dst_i[out] = src_i[a]
                dst_d[out] = src_d[a]
                a += 1
                out += 1
            while b < hi:
                dst_i[out] = src_i[b]
                dst_d[out] = src_d[b]
                b += 1
                out += 1
        src_i, dst_i = dst_i, src_i
        src_d, dst_d = dst_d, src_d
        width *= 2
    for i in range(k):
        ids[i] = src_i[i]
        dists[i] = src_d[i]


def _search(
    qwords, radius, scan, words, row_ids, deleted, starts, width, shift, chunk_radius,
    offsets, table, flips, flip_count, n_probes_max, dwords, dids, dlive,
):  # fmt: skip
    """Search kernel: per query, the main rows (probed or scanned), then the delta.

    Returns per-query result counts and the concatenated (id, distance) pairs,
    each query's sorted by (distance, id).
    """
    nq = qwords.shape[0]
    n = words.shape[0]
    m = starts.shape[0]
    bucket_bits = width - shift
    mask = (np.uint64(1) << np.uint64(width)) - np.uint64(1)
    smask = (np.int64(1) << shift) - 1
    counts = np.zeros(nq, np.int64)
    out_ids = np.empty(256, np.int64)
    out_d = np.empty(256, np.int32)
    total = 0
    lo = np.empty(n_probes_max, np.int64)
    hi = np.empty(n_probes_max, np.int64)
    budget = np.empty(n_probes_max, np.int64)
    probe_chunk = np.empty(n_probes_max, np.int64)
    qlow = np.empty(m, np.int64)
    touched = np.zeros(1, np.int64)
    hits = np.empty(_SCAN_BLOCK, np.int64)
    cand = np.empty(4096, np.int64)
    cand_chunk = np.empty(4096, np.int64)
    cand_d = np.empty(4096, np.int64)
    for qi in range(nq):
        q0 = qwords[qi, 0]
        q1 = qwords[qi, 1]
        q2 = qwords[qi, 2]
        q3 = qwords[qi, 3]
        begin = total
        if scan:
            for start in range(0, n, _SCAN_BLOCK):
                stop = min(start + _SCAN_BLOCK, n)
                n_hits = _scan_rows(words, start, stop, q0, q1, q2, q3, radius, hits)
                out_ids, out_d = _reserve(out_ids, out_d, total, total + n_hits)
                for h in range(n_hits):
                    row = hits[h]
                    if not deleted[row]:
                        out_ids[total] = row_ids[row]
                        out_d[total] = _distance(words, row, q0, q1, q2, q3)
                        total += 1
        else:
            # Tight loops with independent loads, so that many cache misses are
            # in flight at once: (1) the bounds of every probed bucket, (2) the
            # entries whose suffix is close enough, (3) their full distances,
            # (4) the matches.
            n_probes = 0
            for c in range(m):
                rc = chunk_radius[c]
                if rc < 0:
                    continue
                qkey = _chunk_key(q0, q1, q2, q3, starts[c], width, mask)
                qhigh = qkey >> shift
                qlow[c] = qkey & smask
                for f in range(flip_count[min(rc, bucket_bits)]):
                    bucket = qhigh ^ flips[f]
                    lo[n_probes] = offsets[c, bucket]
                    hi[n_probes] = offsets[c, bucket + 1]
                    budget[n_probes] = rc - _popcount64(np.uint64(flips[f]))
                    probe_chunk[n_probes] = c
                    n_probes += 1
            n_cand = 0
            for i in range(n_probes):
                n_cand += hi[i] - lo[i]
            if n_cand > cand.shape[0]:
                cand = np.empty(2 * n_cand, np.int64)
                cand_chunk = np.empty(2 * n_cand, np.int64)
                cand_d = np.empty(2 * n_cand, np.int64)
            # Touch the first and last entry of every bucket first: a loop
            # without unpredictable branches keeps many misses in flight.
            sink = 0
            if n > 0:
                for i in range(n_probes):
                    c = probe_chunk[i]
                    sink += table[c, min(lo[i], n - 1)] + table[c, max(min(hi[i], n) - 1, 0)]
            touched[0] += sink
            n_cand = 0
            for i in range(n_probes):
                c = probe_chunk[i]
                ql = qlow[c]
                room = budget[i]
                for p in range(lo[i], hi[i]):
                    entry = np.int64(table[c, p])
                    cand[n_cand] = entry >> shift
                    cand_chunk[n_cand] = c
                    # Branch-free: keep the entry only if its suffix is close enough.
                    n_cand += _popcount64(np.uint64((entry ^ ql) & smask)) <= room
            for j in range(n_cand):
                cand_d[j] = _distance(words, cand[j], q0, q1, q2, q3)
            if hits.shape[0] < n_cand:
                hits = np.empty(2 * n_cand, np.int64)
            n_hits = 0
            for j in range(n_cand):
                hits[n_hits] = j
                n_hits += cand_d[j] <= radius
            out_ids, out_d = _reserve(out_ids, out_d, total, total + n_hits)
            for h in range(n_hits):
                j = hits[h]
                d = cand_d[j]
                row = cand[j]
                if deleted[row]:
                    continue
                # Report a match from the first chunk that probes it only.
                c = cand_chunk[j]
                x0 = words[row, 0] ^ q0
                x1 = words[row, 1] ^ q1
                x2 = words[row, 2] ^ q2
                x3 = words[row, 3] ^ q3
                seen = False
                for c2 in range(c):
                    r2 = chunk_radius[c2]
                    if r2 >= 0:
                        k2 = _chunk_key(x0, x1, x2, x3, starts[c2], width, mask)
                        if _popcount64(np.uint64(k2)) <= r2:
                            seen = True
                            break
                if seen:
                    continue
                out_ids[total] = row_ids[row]
                out_d[total] = d
                total += 1
        n_delta = dwords.shape[0]
        if n_delta:
            if hits.shape[0] < n_delta:
                hits = np.empty(n_delta, np.int64)
            n_hits = _scan_rows(dwords, 0, n_delta, q0, q1, q2, q3, radius, hits)
            out_ids, out_d = _reserve(out_ids, out_d, total, total + n_hits)
            for h in range(n_hits):
                j = hits[h]
                if dlive[j]:
                    out_ids[total] = dids[j]
                    out_d[total] = _distance(dwords, j, q0, q1, q2, q3)
                    total += 1
        k = total - begin
        if k > 1:
            _sort_pairs(out_ids[begin:total], out_d[begin:total])
        counts[qi] = k
    return counts, out_ids[:total], out_d[:total]


_FLIPS_CACHE: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
_FLIPS_LOCK = threading.Lock()

#: Most bucket probes per substring before a search scans all codes instead.
_MAX_PROBES: Final = 1 << 20
#: One bucket probe or candidate costs about this many codes of a full scan
#: (measured: probing and scanning break even near radius 42 at 100k entries
#: and radius 52 at 1M, where n / (2 * probes + candidates) is 6 to 11).
_MISS_COST: Final = 8.0


def _flip_masks(bits: int, max_weight: int) -> tuple[np.ndarray, np.ndarray]:
    """All ``bits``-bit masks of at most ``max_weight`` set bits, lightest first.

    Returns the masks (int64) and ``count`` with ``count[k]`` = number of masks
    of weight ``<= k``.
    """
    key = (bits, max_weight)
    with _FLIPS_LOCK:
        cached = _FLIPS_CACHE.get(key)
        if cached is None:
            masks = [0]
            count = [1]
            for k in range(1, max_weight + 1):
                for chosen in itertools.combinations(range(bits), k):
                    masks.append(sum(1 << b for b in chosen))
                count.append(len(masks))
            cached = (np.array(masks, dtype=np.int64), np.array(count, dtype=np.int64))
            _FLIPS_CACHE[key] = cached
        return cached


def _ball(bits: int, radius: int) -> int:
    """Number of ``bits``-bit strings within ``radius`` of a given one."""
    return sum(math.comb(bits, k) for k in range(min(radius, bits) + 1))


@dataclass(frozen=True, slots=True)
class _Geometry:
    """How the 256 bits are cut: ``chunks`` substrings of ``chunk_bits`` bits,
    each indexed by its top ``bucket_bits`` bits (the rest are stored in the
    table entries and checked there)."""

    chunks: int
    chunk_bits: int
    bucket_bits: int

    @property
    def shift(self) -> int:
        return self.chunk_bits - self.bucket_bits

    @classmethod
    def for_size(cls, n: int) -> _Geometry:
        """The default for ``n`` entries: 11 chunks of 23 bits, ~4 entries per bucket.

        11 substrings let radius 31 be probed at 2 bits per substring (10 of
        them) and 1 bit (the last); 23 bits is the widest such a split allows.
        Buckets of about 4 entries keep the offsets small (2**21 per substring
        at 10M entries). Chosen by measurement, see docs/benchmarks.md.
        """
        bucket_bits = round(math.log2(max(n, 1))) - 2
        return cls(11, 23, min(23, max(15, bucket_bits)))


@dataclass(frozen=True, slots=True)
class _Plan:
    """How to run one radius: probe radius per substring, masks, or a full scan."""

    scan: bool
    chunk_radius: np.ndarray
    flips: np.ndarray
    flip_count: np.ndarray
    n_probes: int


class MihIndex(MatchIndex):
    """Exact multi-index hashing over 256-bit codes, compiled with numba.

    The 256 bits are cut into ``chunks`` disjoint substrings of ``chunk_bits``
    bits (they need not cover every bit). By the pigeonhole principle a code
    within ``r = chunks * r' + a`` bits of a query is within ``r'`` bits of it
    on one of the first ``a + 1`` substrings or within ``r' - 1`` bits on one
    of the others (Norouzi et al.), so looking up those neighbourhoods in one
    table per substring finds every match; each candidate is then verified on
    all 256 bits, and each match is reported once (by the first substring
    that finds it).

    A substring's table is a bucket array over its top ``bucket_bits`` bits
    (CSR offsets and entries, built by a counting sort in O(n)); each entry
    holds the row number and the substring's remaining low bits, which are
    checked before the row's code is read. That gives the selectivity of wide
    substrings (few candidates) at the memory of narrow ones.

    Changes do not rebuild the tables: added entries go to a small delta
    buffer scanned in full by every search, removed ones are masked out.
    :meth:`compact` folds both into fresh tables; it runs by itself when the
    delta holds ``delta_limit`` entries or a quarter of the rows are masked.

    When probing would cost more than reading every code (a large radius,
    a small bank), a search scans all codes instead (``scan_fallback``).

    Parameters
    ----------
    ids : (n,) int64 ndarray, optional
    codes : (n, 32) uint8 ndarray, optional
        Initial entries; the tables are built from them at once.
    chunks, chunk_bits, bucket_bits : int, optional
        The geometry: ``chunks * chunk_bits <= 256``; ``bucket_bits`` from 4 to
        26 and at most ``chunk_bits``, which may exceed it by up to 16. Give
        all three or none; by default 11 chunks of 23 bits and about 4
        entries per bucket (recomputed at every rebuild). Memory:
        ``chunks * (2**bucket_bits + n) * 4`` bytes of tables plus the codes
        and ids (40 bytes per entry).
    threads : int, optional
        Worker threads for batched searches and the build (default: the CPUs
        this process may use). A single query always runs in the calling
        thread.
    delta_limit : int
        Entries the delta buffer holds before an automatic :meth:`compact`.
    scan_fallback : bool
        Allow the full scan when it is estimated cheaper (``False`` forces
        table probing, for tests).

    Notes
    -----
    The first use in a process compiles the kernels with numba (a few
    seconds; well under a second when loaded from numba's on-disk cache).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> codes = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    >>> index = MihIndex(np.arange(5000), codes, chunks=16, chunk_bits=16, bucket_bits=12)
    >>> index.remove([3])
    1
    >>> [(ids, d)] = index.search(codes[3], 31)
    >>> ids.tolist()
    []
    >>> index.close()
    """

    name: ClassVar[str] = "mih"

    def __init__(
        self,
        ids: np.ndarray | None = None,
        codes: np.ndarray | None = None,
        *,
        chunks: int | None = None,
        chunk_bits: int | None = None,
        bucket_bits: int | None = None,
        threads: int | None = None,
        delta_limit: int = 16_384,
        scan_fallback: bool = True,
    ) -> None:
        self._closed = False
        self._fixed_geometry = self._check_geometry(chunks, chunk_bits, bucket_bits)
        if threads is None:
            threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive int, got {threads!r}")
        if isinstance(delta_limit, bool) or not isinstance(delta_limit, int) or delta_limit < 1:
            raise ValueError(f"delta_limit must be a positive int, got {delta_limit!r}")
        self.threads = threads
        self.delta_limit = delta_limit
        self.scan_fallback = bool(scan_fallback)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._k = _kernels()
        new_ids, new_words = _EMPTY_IDS, np.zeros((0, _WORDS), dtype=np.uint64)
        if ids is not None or codes is not None:
            if ids is None or codes is None:
                raise ValueError("pass both ids and codes, or neither")
            new_ids = _check_ids(ids)
            codes = _check_codes(codes, new_ids.shape[0])
            if np.all(new_ids[1:] > new_ids[:-1]):  # already ascending and unique (a store)
                new_ids, new_words = new_ids.copy(), _as_words(codes)
            else:
                keep = _last_wins(new_ids)  # ascending ids, last occurrence wins
                new_ids, new_words = new_ids[keep], _as_words(codes[keep])
        self._set_main(new_ids, new_words)
        self._clear_delta()

    # ---- geometry and construction ------------------------------------------

    @staticmethod
    def _check_geometry(
        chunks: int | None, chunk_bits: int | None, bucket_bits: int | None
    ) -> _Geometry | None:
        given = {"chunks": chunks, "chunk_bits": chunk_bits, "bucket_bits": bucket_bits}
        if all(v is None for v in given.values()):
            return None
        for label, value in given.items():
            if value is None:
                raise ValueError("give chunks, chunk_bits and bucket_bits together, or none")
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{label} must be an int, got {value!r}")
        geometry = _Geometry(chunks, chunk_bits, bucket_bits)  # type: ignore[arg-type]
        if not 1 <= geometry.chunk_bits <= 32 or geometry.chunks < 1:
            raise ValueError(f"need chunks >= 1 and chunk_bits from 1 to 32, got {geometry}")
        if geometry.chunks * geometry.chunk_bits > 256:
            raise ValueError(
                f"{chunks} chunks of {chunk_bits} bits do not fit in 256 bits "
                "(need chunks * chunk_bits <= 256)"
            )
        if not 1 <= geometry.bucket_bits <= min(26, geometry.chunk_bits):
            raise ValueError(
                f"bucket_bits must be from 1 to min(26, chunk_bits), got {bucket_bits}"
            )
        if geometry.shift > 16:
            raise ValueError(f"chunk_bits may exceed bucket_bits by 16 at most, got {geometry}")
        return geometry

    def _set_main(self, ids: np.ndarray, words: np.ndarray) -> None:
        """Build the tables over ``ids`` (ascending, unique) and their ``words``."""
        n = ids.shape[0]
        geometry = self._fixed_geometry or _Geometry.for_size(n)
        if n >= 1 << (32 - geometry.shift):
            raise ValueError(
                f"{n} entries do not fit in 32-bit table entries with {geometry.shift} "
                "suffix bits; use fewer chunk_bits beyond bucket_bits"
            )
        offsets = np.zeros((geometry.chunks, (1 << geometry.bucket_bits) + 1), dtype=np.uint32)
        table = np.empty((geometry.chunks, n), dtype=np.uint32)
        starts = np.arange(geometry.chunks, dtype=np.int64) * geometry.chunk_bits
        if n:
            build = self._k.build_chunk
            jobs = [
                (words, int(starts[c]), geometry.chunk_bits, geometry.shift, offsets[c], table[c])
                for c in range(geometry.chunks)
            ]
            if self.threads > 1 and n >= 50_000:
                list(self._executor().map(lambda job: build(*job), jobs))
            else:
                for job in jobs:
                    build(*job)
        self._ids = ids
        self._words = words
        self._deleted = np.zeros(n, dtype=np.bool_)
        self._n_deleted = 0
        self._geometry = geometry
        self._starts = starts
        self._offsets = offsets
        self._table = table
        self._plans: dict[int, _Plan] = {}

    def _clear_delta(self) -> None:
        self._delta_words = np.zeros((0, _WORDS), dtype=np.uint64)
        self._delta_ids = np.zeros(0, dtype=np.int64)
        self._delta_live = np.zeros(0, dtype=np.bool_)
        self._delta_used = 0
        self._delta_slot: dict[int, int] = {}

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="takeback-mih")
            return self._pool

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"this {self.name} index is closed")

    @property
    def geometry(self) -> tuple[int, int, int]:
        """``(chunks, chunk_bits, bucket_bits)`` of the current tables."""
        g = self._geometry
        return g.chunks, g.chunk_bits, g.bucket_bits

    @property
    def pending(self) -> int:
        """Changes not yet folded in: delta slots in use plus masked rows."""
        return self._delta_used + self._n_deleted

    # ---- changes --------------------------------------------------------------

    def _main_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows of the main tables holding ``ids`` and not yet masked out."""
        if self._ids.shape[0] == 0 or ids.size == 0:
            return np.zeros(0, dtype=np.int64)
        pos = np.searchsorted(self._ids, ids)
        pos[pos == self._ids.shape[0]] = 0
        rows = pos[self._ids[pos] == ids]
        return rows[~self._deleted[rows]]

    def _mask_rows(self, rows: np.ndarray) -> None:
        self._deleted[rows] = True
        self._n_deleted += int(rows.shape[0])

    def add(self, ids: np.ndarray, codes: np.ndarray) -> None:
        self._check_open()
        new_ids, new_words = _batch_to_add(ids, codes)
        if new_ids.size == 0:
            return
        self._mask_rows(self._main_rows(new_ids))
        slot_of = self._delta_slot
        fresh = []
        for i, entry_id in enumerate(new_ids.tolist()):
            slot = slot_of.get(entry_id)
            if slot is None:
                fresh.append(i)
            else:
                self._delta_words[slot] = new_words[i]
        if fresh:
            k = len(fresh)
            used = self._delta_used
            if used + k > self._delta_ids.shape[0]:
                cap = max(used + k, 2 * self._delta_ids.shape[0], 64)
                grown_w = np.zeros((cap, _WORDS), dtype=np.uint64)
                grown_i = np.zeros(cap, dtype=np.int64)
                grown_l = np.zeros(cap, dtype=np.bool_)
                grown_w[:used] = self._delta_words[:used]
                grown_i[:used] = self._delta_ids[:used]
                grown_l[:used] = self._delta_live[:used]
                self._delta_words, self._delta_ids, self._delta_live = grown_w, grown_i, grown_l
            sel = np.asarray(fresh, dtype=np.int64)
            self._delta_words[used : used + k] = new_words[sel]
            self._delta_ids[used : used + k] = new_ids[sel]
            self._delta_live[used : used + k] = True
            for j, entry_id in enumerate(new_ids[sel].tolist()):
                slot_of[entry_id] = used + j
            self._delta_used = used + k
        self._maybe_compact()

    def remove(self, ids: Iterable[int]) -> int:
        self._check_open()
        gone = np.unique(_removal_ids(ids))
        rows = self._main_rows(gone)
        self._mask_rows(rows)
        found = int(rows.shape[0])
        for entry_id in gone.tolist():
            slot = self._delta_slot.pop(entry_id, None)
            if slot is not None:
                self._delta_live[slot] = False
                found += 1
        self._maybe_compact()
        return found

    def _maybe_compact(self) -> None:
        if self._delta_used >= self.delta_limit or self._n_deleted > max(
            self.delta_limit, self._ids.shape[0] // 4
        ):
            self.compact()

    def compact(self) -> None:
        """Rebuild the tables with the delta folded in and removed rows dropped.

        O(n) per substring (a counting sort), run on :attr:`threads` threads.
        The old tables are released first, so the peak memory is the index
        plus a copy of the codes and ids (40 bytes per entry). Should the
        rebuild fail (out of memory), the index is closed rather than left
        half-built: build a new one.
        """
        self._check_open()
        if self.pending == 0:
            return
        try:
            self._offsets = np.zeros((0, 1), dtype=np.uint32)
            self._table = np.zeros((0, 0), dtype=np.uint32)
            live = ~self._deleted
            ids = self._ids[live]
            words = self._words[live]
            self._ids = self._words = _EMPTY_IDS  # release the old copies
            used = self._delta_used
            dlive = self._delta_live[:used]
            if dlive.any():
                d_ids = self._delta_ids[:used][dlive]
                d_words = self._delta_words[:used][dlive]
                order = np.argsort(d_ids)
                d_ids, d_words = d_ids[order], d_words[order]
                at = np.searchsorted(ids, d_ids)
                ids = np.insert(ids, at, d_ids)
                words = np.insert(words, at, d_words, axis=0)
            self._set_main(np.ascontiguousarray(ids), np.ascontiguousarray(words))
        except BaseException:
            self.close()
            raise
        self._clear_delta()

    # ---- search ---------------------------------------------------------------

    def _plan(self, radius: int) -> _Plan:
        """Probe radius per substring and masks for ``radius``, or a full scan."""
        plan = self._plans.get(radius)
        if plan is not None:
            return plan
        g = self._geometry
        base, extra = divmod(radius, g.chunks)
        chunk_radius = np.full(g.chunks, base - 1, dtype=np.int64)
        chunk_radius[: extra + 1] = base
        np.minimum(chunk_radius, g.chunk_bits, out=chunk_radius)
        top = min(int(chunk_radius.max()), g.bucket_bits)
        per_chunk = [_ball(g.bucket_bits, int(r)) if r >= 0 else 0 for r in chunk_radius]
        n = self._ids.shape[0]
        scan = max(per_chunk) > _MAX_PROBES
        if not scan and self.scan_fallback:
            probes = sum(per_chunk)
            candidates = sum(
                _ball(g.chunk_bits, int(r)) * n / 2.0**g.chunk_bits for r in chunk_radius if r >= 0
            )
            scan = _MISS_COST * (2 * probes + candidates) > n
        if scan:
            one = np.ones(1, dtype=np.int64)
            plan = _Plan(True, chunk_radius, one, one, 0)
        else:
            flips, count = _flip_masks(g.bucket_bits, top)
            plan = _Plan(False, chunk_radius, flips, count, sum(per_chunk))
        self._plans[radius] = plan
        return plan

    def _run(self, qwords: np.ndarray, radius: int, plan: _Plan) -> tuple[np.ndarray, ...]:
        used = self._delta_used
        g = self._geometry
        return self._k.search(
            qwords, radius, plan.scan, self._words, self._ids, self._deleted, self._starts,
            g.chunk_bits, g.shift, plan.chunk_radius, self._offsets, self._table, plan.flips,
            plan.flip_count, plan.n_probes,
            self._delta_words[:used], self._delta_ids[:used], self._delta_live[:used],
        )  # fmt: skip

    def search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        self._check_open()
        qwords = _as_words(_check_queries(queries))
        r = _check_radius(radius)
        plan = self._plan(r)
        q = qwords.shape[0]
        if q == 0:
            return []
        if self.threads == 1 or q < 2 * self.threads:
            return _split_results(*self._run(qwords, r, plan))
        parts = min(q, 8 * self.threads)
        bounds = np.linspace(0, q, parts + 1).astype(np.int64).tolist()
        pieces = list(
            self._executor().map(
                lambda ab: self._run(qwords[ab[0] : ab[1]], r, plan),
                itertools.pairwise(bounds),
            )
        )
        counts = np.concatenate([p[0] for p in pieces])
        ids = np.concatenate([p[1] for p in pieces])
        dists = np.concatenate([p[2] for p in pieces])
        return _split_results(counts, ids, dists)

    # ---- bookkeeping --------------------------------------------------------------

    def __len__(self) -> int:
        if self._closed:
            return 0
        return self._ids.shape[0] - self._n_deleted + len(self._delta_slot)

    def memory_bytes(self) -> int:
        if self._closed:
            return 0
        arrays = (
            self._ids, self._words, self._deleted, self._starts, self._offsets, self._table,
            self._delta_words, self._delta_ids, self._delta_live,
        )  # fmt: skip
        return int(sum(a.nbytes for a in arrays))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._pool_lock:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
        self._ids = _EMPTY_IDS
        self._words = np.zeros((0, _WORDS), dtype=np.uint64)
        self._deleted = np.zeros(0, dtype=np.bool_)
        self._n_deleted = 0
        self._offsets = np.zeros((0, 1), dtype=np.uint32)
        self._table = np.zeros((0, 0), dtype=np.uint32)
        self._starts = np.zeros(0, dtype=np.int64)
        self._plans = {}
        self._clear_delta()


#: Implementations by :attr:`MatchIndex.name`.
INDEX_KINDS: Final[dict[str, type[MatchIndex]]] = {
    BruteForceIndex.name: BruteForceIndex,
    MihIndex.name: MihIndex,
}


def build_index(ids: np.ndarray, codes: np.ndarray, *, kind: str = "auto") -> MatchIndex:
    """An index over ``codes``, of the named kind.

    Parameters
    ----------
    ids : (n,) int64 ndarray
    codes : (n, 32) uint8 ndarray
    kind : str
        ``"auto"`` (brute force below :data:`AUTO_MIH_MIN_ENTRIES` entries, where
        it is fast and needs no compilation; multi-index hashing from there up)
        or a name from :data:`INDEX_KINDS`.

    Returns
    -------
    MatchIndex

    Examples
    --------
    >>> import numpy as np
    >>> index = build_index(np.zeros(0, dtype=np.int64), np.zeros((0, 32), dtype=np.uint8))
    >>> index.name, len(index)
    ('bruteforce', 0)
    """
    if kind == "auto":
        n = _check_ids(ids).shape[0]
        kind = MihIndex.name if n >= AUTO_MIH_MIN_ENTRIES else BruteForceIndex.name
    cls: Any = INDEX_KINDS.get(kind)
    if cls is None:
        known = ", ".join(sorted([*INDEX_KINDS, "auto"]))
        raise ValueError(f"unknown index kind {kind!r}; choose one of: {known}")
    return cls(ids, codes)
