"""Retrieval of candidate originals among many derivative fingerprints.

An inverted file over a visual vocabulary with Hamming embedding:

* every registered feature is assigned to one of 16,384 *words* (a two-level
  k-means vocabulary, 128 coarse x 128 fine, shipped in
  ``derivative_model.npz``) and stored in that word's posting list with its
  photo and a 32-bit *signature* (on which side of the word's centre the
  descriptor lies along each of the 32 axes);
* a suspect's features, as-is and mirrored, look up their word's posting list;
  a posting votes for its photo (weighted by how rare the word is) only when
  the signatures differ in at most :data:`MAX_HAMMING` bits, which filters out
  almost all chance collisions;
* the :data:`TOP_K` photos with most votes are verified geometrically with
  :func:`~.derivative.verify_derivative`, in the orientation that voted for them.

The voting loop is compiled with numba. :meth:`DerivativeIndex.search` has a
brute-force twin, ``exhaustive=True``, which verifies every registered
fingerprint.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

import numba
import numpy as np

from .derivative import (
    DECISION_SCORE,
    DerivativeFingerprint,
    DerivativeMatch,
    SuspectFeatures,
    dequantize,
    model,
    suspect_features,
    verify_derivative,
)

__all__ = ["MAX_HAMMING", "TOP_K", "DerivativeIndex", "assign_words"]

#: Largest signature distance (bits of 32) at which a posting votes.
MAX_HAMMING: Final = 9
#: Candidates verified per query by default.
TOP_K: Final = 10
#: Fewest votes a candidate needs to be verified.
MIN_VOTES: Final = 1.5


def assign_words(y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Words (int32) and 32-bit signatures (uint32) of projected descriptors ``(L, 32)``."""
    m = model()
    y = np.ascontiguousarray(y, np.float32)
    if len(y) == 0:
        return np.zeros(0, np.int32), np.zeros(0, np.uint32)
    nfine = m.fine.shape[1]
    d1 = (m.coarse**2).sum(1)[None, :] - 2 * y @ m.coarse.T
    c1 = np.argmin(d1, axis=1)
    fine = m.fine[c1]  # (L, F, 32)
    d2 = (fine**2).sum(2) - 2 * np.einsum("lfd,ld->lf", fine, y)
    c2 = np.argmin(d2, axis=1)
    centre = fine[np.arange(len(y)), c2]
    bits = (y > centre).astype(np.uint64) << np.arange(32, dtype=np.uint64)
    return (c1 * nfine + c2).astype(np.int32), bits.sum(axis=1).astype(np.uint32)


@numba.njit(cache=True, nogil=True)
def _vote(
    offsets: np.ndarray,
    post_photo: np.ndarray,
    post_sig: np.ndarray,
    words: np.ndarray,
    sigs: np.ndarray,
    weights: np.ndarray,
    alive: np.ndarray,
    max_ham: int,
    votes: np.ndarray,
    touched: np.ndarray,
) -> int:  # pragma: no cover - compiled
    n = 0
    for i in range(len(words)):
        w = words[i]
        s = sigs[i]
        wt = weights[w]
        for p in range(offsets[w], offsets[w + 1]):
            x = post_sig[p] ^ s
            x = x - ((x >> 1) & 0x55555555)
            x = (x & 0x33333333) + ((x >> 2) & 0x33333333)
            x = (x + (x >> 4)) & 0x0F0F0F0F
            bits = ((x * 0x01010101) & 0xFFFFFFFF) >> 24
            if bits <= max_ham:
                ph = post_photo[p]
                if alive[ph]:
                    if votes[ph] == 0.0:
                        touched[n] = ph
                        n += 1
                    votes[ph] += wt
    return n


class DerivativeIndex:
    """An in-memory inverted index of derivative fingerprints.

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
        self._pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        self._word = np.zeros(0, np.int32)
        self._photo = np.zeros(0, np.int32)
        self._sig = np.zeros(0, np.uint32)
        self._offsets = np.zeros(self._nwords + 1, np.int64)
        self._weights = np.ones(self._nwords, np.float32)
        self._removed = 0
        self._votes = np.zeros(0, np.float32)
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
            self._word = self._photo = np.zeros(0, np.int32)
            self._sig = np.zeros(0, np.uint32)
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
        words, sigs = assign_words(dequantize(fingerprint.descriptors))
        self._pending.append((words, np.full(len(words), pos, np.int32), sigs))

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
        postings = len(self._photo) * (4 + 4)  # photo id + signature
        fps = sum(fp.size_bytes for fp in self._fps if fp is not None)
        return postings + self._offsets.nbytes + fps + self._votes.nbytes

    def _build(self) -> None:
        """Merge pending additions and drop removed photos (sorted by word)."""
        if not self._pending and len(self._alive) == len(self._keys) and not self._removed:
            return
        alive = np.zeros(len(self._keys), np.bool_)
        alive[list(self._pos.values())] = True
        parts = [(self._word, self._photo, self._sig), *self._pending]
        word = np.concatenate([p[0] for p in parts])
        photo = np.concatenate([p[1] for p in parts])
        sig = np.concatenate([p[2] for p in parts])
        keep = alive[photo]
        word, photo, sig = word[keep], photo[keep], sig[keep]
        order = np.argsort(word, kind="stable")
        self._word, self._photo, self._sig = word[order], photo[order], sig[order]
        counts = np.bincount(self._word, minlength=self._nwords)
        self._offsets = np.r_[0, np.cumsum(counts)].astype(np.int64)
        n = max(int(alive.sum()), 1)
        # Rare words weigh more (idf over photos, approximated by postings).
        self._weights = np.log1p(n / np.maximum(counts, 1)).astype(np.float32)
        self._alive = alive
        self._pending.clear()
        self._removed = 0
        self._votes = np.zeros(len(self._keys), np.float32)

    def candidates(
        self, features: SuspectFeatures, k: int = TOP_K
    ) -> list[tuple[int, bool, float]]:
        """The ``k`` best-voted ``(position, mirrored, votes)``, most votes first."""
        self._build()
        if not self._pos or len(features) == 0:
            return []
        found: list[tuple[int, bool, float]] = []
        touched = np.zeros(len(self._keys), np.int32)
        for mirrored in (False, True):
            words, sigs = assign_words(features.descriptors[int(mirrored)])
            n = _vote(
                self._offsets, self._photo, self._sig, words, sigs, self._weights,
                self._alive, MAX_HAMMING, self._votes, touched,
            )  # fmt: skip
            hit = touched[:n]
            v = self._votes[hit]
            top = np.argsort(-v, kind="stable")[:k]
            found.extend((int(hit[t]), mirrored, float(v[t])) for t in top if v[t] >= MIN_VOTES)
            self._votes[hit] = 0.0
        found.sort(key=lambda c: -c[2])
        return found[:k]

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
            Candidates verified (ignored when ``exhaustive``).
        threshold : float, optional
            Decision score.
        exhaustive : bool, optional
            Verify against every registered fingerprint (the brute-force twin).

        Returns
        -------
        list of (key, DerivativeMatch)
            Only matches at or above ``threshold``; empty when none (a collage
            of two registered photos returns both).
        """
        feats = suspect if isinstance(suspect, SuspectFeatures) else suspect_features(suspect)
        if exhaustive:
            todo = {pos: (False, True) for pos in self._pos.values()}
        else:
            todo = {}
            for pos, mirrored, _ in self.candidates(feats, k):
                todo[pos] = (*todo.get(pos, ()), mirrored)
        out = []
        for pos, orientations in todo.items():
            fp = self._fps[pos]
            if fp is None:
                continue
            match = verify_derivative(feats, fp, threshold=threshold, orientations=orientations)
            if match.matched:
                out.append((self._keys[pos], match))
        out.sort(key=lambda km: (-km[1].score, -km[1].inliers))
        return out
