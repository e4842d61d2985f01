"""Retrieval of candidate originals among many derivative fingerprints.

An inverted file over a visual vocabulary with Hamming embedding:

* every registered feature is assigned to one of 16,384 *words* (a two-level
  k-means vocabulary, 128 coarse x 128 fine, shipped in
  ``derivative_model.npz``) and stored in that word's posting list with its
  photo and a 32-bit *signature* (on which side of the word's centre the
  descriptor lies along each of the 32 axes);
* a suspect's features, as-is and mirrored, look up the posting lists of their
  :data:`MULTIPLE_ASSIGNMENT` nearest words under their coarse centre;
  a posting votes for its photo (weighted by how rare the word is) only when
  the signatures differ in at most :data:`MAX_HAMMING` bits, which filters out
  almost all chance collisions;
* each word's list is kept in 64 runs by the first :data:`PROBE_BITS`
  signature bits (the model's six widest axes), and a suspect feature skips
  the runs that differ from it on a bit where it lies clearly to one side of
  the word's centre (more than :data:`PROBE_MARGIN` of the axis' spread): a
  copy's descriptor seldom crosses the centre there, so few true votes are
  lost while the scan shrinks to about a third and the chance votes to two
  thirds (multi-probe; measured on the tune half, docs/benchmarks.md);
* votes are *weakly geometrically consistent* (Jegou, Douze and Schmid, ECCV
  2008): each posting also keeps its feature's orientation and scale, a vote
  goes into a histogram of the rotation and one of the scale change it implies,
  and a photo's score is the smaller of the two histograms' peaks (two
  neighbouring bins). The features of a copy agree on one rotation and one
  scale change; chance matches, and the many features a doctored copy's
  replaced region brings, spread over all bins;
* the :data:`SHORTLIST` best-voted photos of each orientation are re-ranked
  by their *word correspondences* (the postings that voted, which also keep
  their feature's number): how many of them agree on one similarity
  transform, by the same 1-point test as the verification;
* the :data:`TOP_K` best re-ranked photos are verified geometrically with
  :func:`~.derivative.verify_derivative`, in the orientation that found them;
* a suspect with few features (:data:`SMALL_SUSPECT`), whose descriptors are
  the least sure of their word, also looks up a second coarse cell and keeps
  :data:`SMALL_EFFORT` times the shortlist and the candidates: its lookup
  is still cheaper than a full suspect's. The candidates past the first
  ``k`` (:data:`TOP_K` by default) match only with one inlier more than
  the decision asks (:data:`EXTRA_INLIERS`), so that a query's chance of a
  false match stays under 2e-6, as with 5 verifications.

The voting loop is compiled with numba. :meth:`DerivativeIndex.search` has a
brute-force twin, ``exhaustive=True``, which verifies every registered
fingerprint.
"""

from __future__ import annotations

from collections.abc import Hashable
from functools import cache
from typing import Final, NamedTuple

import numba
import numpy as np

from ._consensus import agreement
from .derivative import (
    ANGLE_TOLERANCE,
    DECISION_SCORE,
    REPROJ_THRESHOLD,
    SCALE_TOLERANCE,
    DerivativeFingerprint,
    DerivativeMatch,
    SuspectFeatures,
    dequantize,
    model,
    score_of_inliers,
    shared_content,
    suspect_features,
    to_working,
    verify_derivative,
    working_scale,
)

__all__ = [
    "EXTRA_INLIERS",
    "MAX_HAMMING",
    "PROBE_BITS",
    "PROBE_MARGIN",
    "SMALL_EFFORT",
    "SMALL_SUSPECT",
    "TOP_K",
    "DerivativeIndex",
    "Words",
    "assign_words",
]

#: Largest signature distance (bits of 32) at which a posting votes.
MAX_HAMMING: Final = 9
#: Candidates verified per query by default.
TOP_K: Final = 5
#: Words each suspect feature looks up (multiple assignment; registered features have one).
MULTIPLE_ASSIGNMENT: Final = 2
#: Signature bits (the first axes) that split each word's posting list into runs.
PROBE_BITS: Final = 6
#: A suspect feature skips the runs that differ on a bit where it lies further
#: than this share of the axis' spread from the word's centre.
PROBE_MARGIN: Final = 0.4
#: Best-voted photos per orientation re-ranked by their correspondences' agreement.
SHORTLIST: Final = 50
#: Fewest votes a candidate needs to be verified.
MIN_VOTES: Final = 1.5
#: Suspects with fewer features than this (a small or smooth picture, whose
#: descriptors are also the least sure of their word) get more retrieval
#: effort: each feature also looks up its nearest word under its
#: second-nearest coarse centre, and :data:`SMALL_EFFORT` times the
#: shortlist and the candidates are kept. Their lookup stays cheaper than
#: a suspect's with :data:`~.derivative.SUSPECT_FEATURES` (docs/benchmarks.md, "Small suspects").
SMALL_SUSPECT: Final = 200
SMALL_EFFORT: Final = 4
#: Inliers a candidate past the first ``k`` needs beyond what the decision
#: asks (with one fewer it must still reach the threshold: 7 at
#: :data:`~.derivative.DECISION_SCORE`). The null model puts an unrelated
#: pair at 7 inliers at about a twentieth of 6's chance (1.7e-8 against
#: 3.3e-7 per verification, both extrapolated from the fitted line), so a
#: small suspect's 15 extra verifications add 2.5e-7 and its query stays
#: under 2e-6, as a full suspect's. They still count as witnesses of shared
#: content at the plain decision.
EXTRA_INLIERS: Final = 1
#: Rotation histogram: 16 bins of 22.5 degrees (angles are stored in 1/256 turns).
_ANGLE_SHIFT: Final = 4
_BINS: Final = 16
#: Scale change histogram: 16 bins of half an octave, from -4 to +4 octaves
#: (feature sizes are stored as round(8 log2(size in working pixels))).
_SCALE_STEPS: Final = 8


_Postings = tuple[np.ndarray, np.ndarray, np.ndarray]
#: Votes one orientation of a query holds at first (the buffers grow when needed).
_VOTES_CAPACITY: Final = 1 << 16


def _angle_codes(angles: np.ndarray) -> np.ndarray:
    return (np.rint(np.mod(angles, 360.0) / 360.0 * 256) % 256).astype(np.uint8)


def _scale_codes(sizes: np.ndarray) -> np.ndarray:
    logs = _SCALE_STEPS * np.log2(np.maximum(sizes, 1.0))
    return np.clip(np.rint(logs), 0, 255).astype(np.uint8)


class Words(NamedTuple):
    """Words of projected descriptors (see :func:`assign_words`)."""

    words: np.ndarray  # (L * nearest,) int32
    signatures: np.ndarray  # (L * nearest,) uint32
    rows: np.ndarray  # (L * nearest,) int64
    sure: np.ndarray  # (L * nearest,) uint8


def assign_words(y: np.ndarray, nearest: int = 1, second_cell: bool = False) -> Words:
    """Words and signatures of projected descriptors ``(L, 32)``.

    Each descriptor goes to its nearest coarse centre, then to the ``nearest``
    closest fine words under it (more than one for a suspect's features:
    *multiple assignment*, which finds the right word when a descriptor lies
    near a border between two). With ``second_cell``, each descriptor also
    goes to the nearest fine word under its second-nearest coarse centre
    (after all the others, rows ``0 .. L-1`` in order).

    Returns
    -------
    Words
        ``words``: the word ids; ``signatures``: on which side of the word's
        centre the descriptor lies along each axis (bit ``d`` for axis ``d``);
        ``rows``: the descriptor each word belongs to; ``sure``: the bits among
        the first :data:`PROBE_BITS` on which the descriptor lies further than
        :data:`PROBE_MARGIN` spreads from the centre (the runs of the word's
        list a lookup may skip).
    """
    m = model()
    y = np.ascontiguousarray(y, np.float32)
    nfine = m.fine.shape[1]
    nearest = max(1, min(nearest, nfine))
    if len(y) == 0:
        return Words(
            np.zeros(0, np.int32), np.zeros(0, np.uint32), np.zeros(0, np.int64),
            np.zeros(0, np.uint8),
        )  # fmt: skip
    coarse = _coarse_norms() - 2 * y @ m.coarse.T
    first = np.argmin(coarse, axis=1)
    todo = [(first, nearest)]  # (coarse cell of each descriptor, words in it)
    if second_cell:
        coarse[np.arange(len(y)), first] = np.inf
        todo.append((np.argmin(coarse, axis=1), 1))
    parts = []
    for c, n in todo:
        words = np.empty(len(y) * n, np.int32)
        sigs = np.empty(len(y) * n, np.uint32)
        sure = np.empty(len(y) * n, np.uint8)
        _fine_words(y, c, m.fine, _fine_by_axis(), _fine_norms(), _margins(), n, words, sigs,
                    sure)  # fmt: skip
        parts.append(Words(words, sigs, np.repeat(np.arange(len(y)), n), sure))
    if len(parts) == 1:
        return parts[0]
    return Words(*(np.concatenate(field) for field in zip(*parts, strict=True)))


@numba.njit(cache=True, nogil=True)
def _fine_words(
    y: np.ndarray,
    cells: np.ndarray,
    fine: np.ndarray,
    by_axis: np.ndarray,
    norms: np.ndarray,
    margins: np.ndarray,
    nearest: int,
    words: np.ndarray,
    sigs: np.ndarray,
    sure: np.ndarray,
) -> None:  # pragma: no cover - compiled
    """The ``nearest`` fine words of each descriptor under its coarse cell, nearest
    first (ties: the lower word), its signature against each, and which of the
    first ``len(margins)`` bits are sure (further than the margin from the centre).

    ``by_axis`` is ``fine`` with its last two axes swapped: the products with
    all the cell's words are summed axis by axis, each word's in the order of
    the axes, which the compiler runs several words at a time.
    """
    nfine, dims = fine.shape[1], fine.shape[2]
    best = np.empty(nearest, np.float32)
    which = np.empty(nearest, np.int64)
    dots = np.empty(nfine, np.float32)
    for r in range(len(y)):
        c = cells[r]
        best[:] = np.inf
        which[:] = 0
        dots[:] = np.float32(0.0)
        for d in range(dims):
            yd = y[r, d]
            for j in range(nfine):
                dots[j] += yd * by_axis[c, d, j]
        for j in range(nfine):
            v = norms[c, j] - np.float32(2.0) * dots[j]  # squared distance less |y|^2
            if v < best[nearest - 1]:
                k = nearest - 1
                while k > 0 and v < best[k - 1]:
                    best[k] = best[k - 1]
                    which[k] = which[k - 1]
                    k -= 1
                best[k] = v
                which[k] = j
        for k in range(nearest):
            j = which[k]
            bits = 0
            for d in range(dims):
                if y[r, d] > fine[c, j, d]:
                    bits |= 1 << d
            clear = 0
            for d in range(len(margins)):
                if abs(y[r, d] - fine[c, j, d]) > margins[d]:
                    clear |= 1 << d
            words[r * nearest + k] = c * nfine + j
            sigs[r * nearest + k] = bits
            sure[r * nearest + k] = clear


@cache
def _coarse_norms() -> np.ndarray:
    return (model().coarse ** 2).sum(1)[None, :]


@cache
def _fine_by_axis() -> np.ndarray:
    return np.ascontiguousarray(model().fine.transpose(0, 2, 1))


@cache
def _fine_norms() -> np.ndarray:
    return (model().fine ** 2).sum(2)


@cache
def _margins() -> np.ndarray:
    return (PROBE_MARGIN * model().spread[:PROBE_BITS]).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _vote(
    offsets: np.ndarray,
    post_sig: np.ndarray,
    post_meta: np.ndarray,
    words: np.ndarray,
    sigs: np.ndarray,
    sure: np.ndarray,
    angles: np.ndarray,
    scales: np.ndarray,
    weights: np.ndarray,
    alive: np.ndarray,
    max_ham: int,
    count: np.ndarray,
    touched: np.ndarray,
    scores: np.ndarray,
    starts: np.ndarray,
    votes: np.ndarray,
    feats: np.ndarray,
    grouped: np.ndarray,
) -> int:  # pragma: no cover - compiled
    """Vote; returns ``n``, the number of photos voted for, or -1 when the vote
    buffers are too small.

    ``offsets`` delimit the runs of the posting lists: word ``w``'s run ``u``
    (postings whose first :data:`PROBE_BITS` signature bits are ``u``) is
    ``offsets[w * 2**PROBE_BITS + u]`` up to the next offset. Lookup ``i``
    scans the runs of its word that agree with its signature on its ``sure``
    bits, in run order.

    ``scores[:n]`` are the scores of ``touched[:n]`` (photos in the order of
    their first vote). Photo ``touched[t]``'s correspondences are
    ``grouped[starts[t]:starts[t + 1]]``, in the order of their votes, each
    ``row | code << 16 | feature << 24``: the suspect word's row, the rotation
    and scale bins, the registered feature. ``count`` (one per photo) must be
    zero, and is left so; ``votes``, ``feats`` and ``grouped`` hold every vote.
    """
    n = 0
    nv = 0
    runs = 1 << PROBE_BITS
    longest = 0
    for i in range(len(words)):
        w = np.int64(words[i])
        longest = max(longest, offsets[(w + 1) * runs] - offsets[w * runs])
    dist = np.empty(longest, np.int64)
    near = np.empty(longest, np.int64)
    metas = np.empty(longest, np.uint64)
    for i in range(len(words)):
        first = np.int64(words[i]) * runs
        s = sigs[i]
        fixed = np.int64(sure[i])
        qa = np.int64(angles[i])
        qs = np.int64(scales[i])
        # Two short loops per run: the distances (vectorized by the compiler),
        # then the few postings within max_ham, gathered without branches.
        m = 0
        for u in range(runs):
            if (u ^ np.int64(s)) & fixed:
                continue
            lo, hi = offsets[first + u], offsets[first + u + 1]
            for p in range(lo, hi):
                x = post_sig[p] ^ s
                x = x - ((x >> 1) & 0x55555555)
                x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
                x = (x + (x >> 4)) & 0x0F0F0F0F
                dist[p - lo] = ((x * 0x01010101) & 0xFFFFFFFF) >> 24
            for k in range(hi - lo):
                near[m] = lo + k
                m += dist[k] <= max_ham
        for k in range(m):  # loads that do not wait for one another: all miss the cache
            metas[k] = post_meta[near[k]]
        for k in range(m):
            meta = metas[k]  # photo | feature << 32 | angle << 48 | scale << 56
            ph = np.int64(meta & 0xFFFFFFFF)
            if not alive[ph]:
                continue
            if nv == len(votes):
                for t in range(n):
                    count[touched[t]] = 0
                return -1
            if count[ph] == 0:
                touched[n] = ph
                n += 1
            count[ph] += 1
            da = ((qa - np.int64((meta >> 48) & 255)) & 255) >> 4
            step = (qs - np.int64(meta >> 56) + 32) >> 2
            ds = 0 if step < 0 else (_BINS - 1 if step >= _BINS else step)
            # the rotation and scale bins beside the suspect feature's row
            votes[nv] = ph | (i << 32) | ((da | (ds << 4)) << 48)
            feats[nv] = (meta >> 32) & 0xFFFF
            nv += 1
    # The votes grouped by photo (in touched order, each photo's votes in their
    # order): a histogram per registered photo, updated in place, would miss
    # the cache on every vote.
    end = 0
    for t in range(n):
        ph = touched[t]
        c = count[ph]
        count[ph] = end
        starts[t] = end
        end += c
    starts[n] = end
    for v in range(nv):
        ph = votes[v] & 0xFFFFFFFF
        j = count[ph]
        count[ph] = j + 1
        grouped[j] = (votes[v] >> 32) | (np.int64(feats[v]) << 24)
    hist = np.zeros(2 * _BINS, np.float32)
    for t in range(n):
        count[touched[t]] = 0
        a, b = starts[t], starts[t + 1]
        if b - a == 1:  # most photos: one chance vote, both peaks are its weight
            scores[t] = weights[words[grouped[a] & 0xFFFF]]
            continue
        for j in range(a, b):
            wt = weights[words[grouped[j] & 0xFFFF]]
            code = (grouped[j] >> 16) & 255
            hist[code & 15] += wt
            hist[_BINS + (code >> 4)] += wt
        # A photo's score: the smaller of the two peaks (two neighbouring bins each).
        best_a = 0.0
        best_s = 0.0
        for k in range(_BINS):
            best_a = max(best_a, hist[k] + hist[(k + 1) % _BINS])
            if k + 1 < _BINS:
                best_s = max(best_s, hist[_BINS + k] + hist[_BINS + k + 1])
        hist[:] = 0.0
        scores[t] = min(best_a, best_s)
    return n


def _best(v: np.ndarray, k: int) -> np.ndarray:
    """``np.argsort(-v, kind="stable")[:k]`` without sorting all of ``v``."""
    if len(v) <= k:
        return np.argsort(-v, kind="stable")
    kth = np.partition(-v, k - 1)[k - 1]
    near = np.flatnonzero(-v <= kth)  # the k best and every tie of the k-th, in order
    return near[np.argsort(-v[near], kind="stable")][:k]


def _pack(photo: np.ndarray, feat: np.ndarray, angle: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Postings' photo, feature number, angle and scale codes in one uint64 each."""
    return (
        photo.astype(np.uint64)
        | (feat.astype(np.uint64) << np.uint64(32))
        | (angle.astype(np.uint64) << np.uint64(48))
        | (scale.astype(np.uint64) << np.uint64(56))
    )


class DerivativeIndex:
    """An in-memory inverted index of derivative fingerprints.

    One search at a time: the vote histograms and the correspondence buffer
    are the index's own, reused by every search (a process per core, as the
    service's workers are, each with its own index).

    Examples
    --------
    >>> from takeback.imageio import load_rgb
    >>> from takeback.samples import sample_photo
    >>> from takeback.fingerprint.derivative import derivative_from_pixels
    >>> index = DerivativeIndex()
    >>> for name in ("astronaut.png", "coffee.png"):
    ...     index.add(name, derivative_from_pixels(load_rgb(sample_photo(name))))
    >>> rgb = load_rgb(sample_photo("coffee.png"))
    >>> [key for key, match in index.search(rgb[50:, ::-1])]
    ['coffee.png']
    """

    def __init__(self) -> None:
        m = model()
        self._nwords = m.coarse.shape[0] * m.fine.shape[1]
        self._keys: list[Hashable] = []
        self._pos: dict[Hashable, int] = {}
        self._fps: list[DerivativeFingerprint | None] = []
        self._alive = np.zeros(0, np.bool_)
        # Postings, sorted by word: signature and packed photo, feature, angle
        # and scale (see _pack); pending additions (word, signature, meta) unsorted.
        self._pending: list[_Postings] = []
        self._word = np.zeros(0, np.int32)
        self._sig = np.zeros(0, np.uint32)
        self._meta = np.zeros(0, np.uint64)
        self._offsets = np.zeros((self._nwords << PROBE_BITS) + 1, np.int64)
        self._weights = np.ones(self._nwords, np.float32)
        self._removed = 0
        self._count = np.zeros(0, np.int32)
        self._votes = np.zeros(_VOTES_CAPACITY, np.int64)
        self._feats = np.zeros(_VOTES_CAPACITY, np.uint16)
        self._grouped = np.zeros(_VOTES_CAPACITY, np.int64)
        # Per-search scratch, sized with the index and reused (never allocated per query).
        self._touched = np.zeros(0, np.int64)
        self._score = np.zeros(0, np.float32)
        self._starts = np.zeros(1, np.int64)
        self._closed = False

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, key: object) -> bool:
        return key in self._pos

    def __enter__(self) -> DerivativeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the index (idempotent)."""
        if not self._closed:
            self._fps.clear()
            self._keys.clear()
            self._pos.clear()
            self._pending.clear()
            self._word = np.zeros(0, np.int32)
            self._sig = np.zeros(0, np.uint32)
            self._meta = np.zeros(0, np.uint64)
            self._count = np.zeros(0, np.int32)
            self._votes = np.zeros(0, np.int64)
            self._feats = np.zeros(0, np.uint16)
            self._grouped = np.zeros(0, np.int64)
            self._closed = True

    def add(self, key: Hashable, fingerprint: DerivativeFingerprint) -> None:
        """Register one fingerprint under ``key`` (replacing any under the same key)."""
        if self._closed:
            raise ValueError("the index is closed")
        if key in self._pos:
            self.remove(key)
        pos = len(self._keys)
        self._keys.append(key)
        self._pos[key] = pos
        self._fps.append(fingerprint)
        words, sigs, _, _ = assign_words(dequantize(fingerprint.descriptors))
        work = working_scale(fingerprint.width, fingerprint.height)
        meta = _pack(
            np.full(len(words), pos, np.uint32),
            np.arange(len(words), dtype=np.uint16),
            _angle_codes(fingerprint.angles),
            _scale_codes(fingerprint.sizes / work),
        )
        self._pending.append((words, sigs, meta))

    def remove(self, key: Hashable) -> bool:
        """Forget the fingerprint under ``key``; False when there was none."""
        pos = self._pos.pop(key, None)
        if pos is None:
            return False
        self._fps[pos] = None
        if pos < len(self._alive):
            self._alive[pos] = False
        self._removed += 1
        return True

    @property
    def memory_bytes(self) -> int:
        """Approximate bytes held by the posting lists and the fingerprints."""
        self._build()
        postings = self._sig.nbytes + self._meta.nbytes
        fps = sum(fp.size_bytes for fp in self._fps if fp is not None)
        work = sum(a.nbytes for a in (self._count, self._votes, self._feats, self._grouped))
        return postings + self._offsets.nbytes + fps + work

    def _build(self) -> None:
        """Merge pending additions and drop removed photos (sorted by word)."""
        if not self._pending and len(self._alive) == len(self._keys) and not self._removed:
            return
        alive = np.zeros(len(self._keys), np.bool_)
        alive[list(self._pos.values())] = True
        parts = [(self._word, self._sig, self._meta), *self._pending]
        word, sig, meta = (np.concatenate([p[c] for p in parts]) for c in range(3))
        keep = alive[(meta & np.uint64(0xFFFFFFFF)).astype(np.int64)]
        word, sig, meta = word[keep], sig[keep], meta[keep]
        # by word, then by run (the first PROBE_BITS signature bits)
        run = (word.astype(np.int64) << PROBE_BITS) | (sig & ((1 << PROBE_BITS) - 1))
        order = np.argsort(run, kind="stable")
        self._word, self._sig, self._meta = word[order], sig[order], meta[order]
        runs = np.bincount(run[order], minlength=self._nwords << PROBE_BITS)
        self._offsets = np.r_[0, np.cumsum(runs)].astype(np.int64)
        counts = runs.reshape(self._nwords, -1).sum(1)
        n = max(int(alive.sum()), 1)
        # Rare words weigh more (idf over photos, approximated by postings).
        self._weights = np.log1p(n / np.maximum(counts, 1)).astype(np.float32)
        self._alive = alive
        self._pending.clear()
        self._removed = 0
        self._count = np.zeros(len(self._keys), np.int32)
        self._touched = np.zeros(len(self._keys), np.int64)
        self._score = np.zeros(len(self._keys), np.float32)
        self._starts = np.zeros(len(self._keys) + 1, np.int64)

    def candidates(
        self, features: SuspectFeatures, k: int = TOP_K
    ) -> list[tuple[int, bool, float]]:
        """Up to ``k`` best candidates ``(position, mirrored, rank score)``, best first
        (up to ``k`` times :data:`SMALL_EFFORT` for a suspect with few features).

        The :data:`SHORTLIST` best-voted photos of each orientation are
        re-ranked by how many of their word correspondences agree on one
        similarity transform (:func:`._consensus.agreement`); the rank score is that
        count plus a thousandth of the votes. A suspect with fewer than
        :data:`SMALL_SUSPECT` features also looks up a second coarse cell,
        and both the shortlist and ``k`` are :data:`SMALL_EFFORT` times larger.
        """
        self._build()
        if not self._pos or len(features) == 0:
            return []
        found: list[tuple[int, bool, float]] = []
        touched, scores = self._touched, self._score
        scales = _scale_codes(features.sizes)
        small = len(features) < SMALL_SUSPECT
        effort = SMALL_EFFORT if small else 1
        for mirrored in (False, True):
            i = int(mirrored)
            words, sigs, rows, sure = assign_words(
                features.descriptors[i], MULTIPLE_ASSIGNMENT, second_cell=small
            )
            n = self._vote(words, sigs, sure, _angle_codes(features.angles[i])[rows], scales[rows])
            v = scores[:n]
            top = _best(v, SHORTLIST * effort)
            top = top[v[top] >= MIN_VOTES]
            short, votes = touched[top], v[top]
            agree = self._rerank(features, i, top, rows)
            found.extend(
                (int(ph), mirrored, float(a) + 1e-3 * float(vt))
                for ph, a, vt in zip(short, agree, votes, strict=True)
            )
        found.sort(key=lambda c: -c[2])
        return found[: k * effort]

    def _vote(
        self,
        words: np.ndarray,
        sigs: np.ndarray,
        sure: np.ndarray,
        angles: np.ndarray,
        scales: np.ndarray,
    ) -> int:
        """:func:`_vote` on this index, its vote buffers grown until they hold every vote."""
        if len(words) >= 1 << 16:  # a vote keeps its suspect row in 16 bits
            raise ValueError(f"{len(words)} suspect words, at most 65,535 per orientation")
        while True:
            n = _vote(
                self._offsets, self._sig, self._meta, words, sigs, sure, angles, scales,
                self._weights, self._alive, MAX_HAMMING, self._count, self._touched,
                self._score, self._starts, self._votes, self._feats, self._grouped,
            )  # fmt: skip
            if n >= 0:
                return n
            size = 2 * len(self._votes)
            self._votes = np.zeros(size, np.int64)
            self._feats = np.zeros(size, np.uint16)
            self._grouped = np.zeros(size, np.int64)

    def _rerank(
        self,
        features: SuspectFeatures,
        orientation: int,
        top: np.ndarray,
        rows: np.ndarray,
    ) -> np.ndarray:
        """Agreeing word correspondences of each shortlisted photo (at ``top``
        in the last vote's touched photos)."""
        out = np.zeros(len(top), np.int64)
        if len(top) == 0:
            return out
        short = self._touched[top]
        lo, hi = self._starts[top], self._starts[top + 1]
        bounds = np.r_[0, np.cumsum(hi - lo)]
        corr = np.concatenate([self._grouped[a:b] for a, b in zip(lo, hi, strict=True)])
        feat = corr >> 24
        # only the matched features' geometry: no descriptors are decoded for
        # a photo that is not verified
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        scales = np.empty(len(short), np.float64)
        for g, ph in enumerate(short):
            fp: DerivativeFingerprint = self._fps[int(ph)]  # type: ignore[assignment]
            f = feat[bounds[g] : bounds[g + 1]]
            parts.append((fp.points[f], fp.sizes[f], fp.angles[f]))
            scales[g] = working_scale(fp.width, fp.height)
        points, sizes, angles = (np.concatenate(c) for c in zip(*parts, strict=True))
        rp, rs, ra = to_working(points, sizes, angles, np.repeat(scales, np.diff(bounds)))
        q = rows[corr & 0xFFFF]
        agreement(
            bounds, rp, rs, ra, features.points[orientation][q], features.sizes[q],
            features.angles[orientation][q], REPROJ_THRESHOLD, SCALE_TOLERANCE,
            ANGLE_TOLERANCE, out,
        )  # fmt: skip
        return out

    def search(
        self,
        suspect: np.ndarray | SuspectFeatures,
        *,
        k: int = TOP_K,
        threshold: float = DECISION_SCORE,
        exhaustive: bool = False,
    ) -> list[tuple[Hashable, DerivativeMatch]]:
        """Registered photos the suspect is a (doctored) copy of, best first.

        Parameters
        ----------
        suspect : (M, N, 3) uint8 array or SuspectFeatures
        k : int, optional
            Candidates verified (:data:`SMALL_EFFORT` times as many for a
            suspect with fewer than :data:`SMALL_SUSPECT` features, those
            past the first ``k`` with :data:`EXTRA_INLIERS` more inliers
            than ``threshold`` asks; ignored when ``exhaustive``).
            A photo found first in the first ``k`` in one orientation and
            past them in the other is verified in both at ``threshold``
            (the null model's pairs were verified in both orientations).
        threshold : float, optional
            Decision score.
        exhaustive : bool, optional
            Verify against every registered fingerprint (the brute-force twin).

        Returns
        -------
        list of (key, DerivativeMatch)
            Only matches at or above ``threshold`` (a candidate past the
            first ``k`` with :data:`EXTRA_INLIERS` more inliers; its
            ``threshold`` field still reads ``threshold``); empty when none (a collage
            of two registered photos returns both). A match in a small part
            of the suspect where another verified photo, in the same
            orientation, also has a group of inliers much alike (a match, or
            a group the rules for shared content capped) is dropped unless
            the two photos are copies of one scene: that is content they
            share, such as a site's badge (:func:`~.derivative.shared_content`).
        """
        feats = suspect if isinstance(suspect, SuspectFeatures) else suspect_features(suspect)
        todo: dict[int, tuple[bool, ...]] = {}
        extra: set[int] = set()  # found past the first k: one inlier more to match
        if exhaustive:
            todo = {pos: (False, True) for pos in self._pos.values()}
        else:
            for rank, (pos, mirrored, _) in enumerate(self.candidates(feats, k)):
                if pos not in todo and rank >= k:
                    extra.add(pos)
                todo[pos] = (*todo.get(pos, ()), mirrored)
        seen: list[tuple[Hashable, DerivativeMatch, DerivativeFingerprint, bool]] = []
        for pos, orientations in todo.items():
            fp = self._fps[pos]
            if fp is None:
                continue
            match = verify_derivative(feats, fp, threshold=threshold, orientations=orientations)
            seen.append((self._keys[pos], match, fp, pos in extra))
        # the same small part of the suspect matched in two photos: shared
        # content (an extra candidate is a witness at the plain decision)
        shared = shared_content([s[1] for s in seen], [s[2] for s in seen], feats.width,
                                feats.height)  # fmt: skip
        out = []
        for (key, m, _, more), gone in zip(seen, shared, strict=True):
            # past the first k: with EXTRA_INLIERS fewer inliers it must still match
            counted = m.inliers - EXTRA_INLIERS if more else m.inliers
            if m.matched and not gone and score_of_inliers(counted) >= threshold:
                out.append((key, m))
        out.sort(key=lambda km: (-km[1].score, -km[1].inliers))
        return out
