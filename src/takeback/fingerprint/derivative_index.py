"""Retrieval of candidate originals among many derivative fingerprints.

Every descriptor of every registered fingerprint goes into a faiss
``IndexBinaryMultiHash`` (several 16-bit slices of the 256-bit descriptor used
as hash keys; no training). A suspect's descriptors (as-is and mirrored) look
up their nearest registered descriptors; each hit within
:data:`VOTE_DISTANCE` bits votes once for its photo; the photos with the most
votes are verified geometrically with :func:`~.derivative.verify_derivative`.

:meth:`DerivativeIndex.search` has a brute-force twin, ``exhaustive=True``,
which verifies against every registered fingerprint.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Final

import numpy as np

from .derivative import (
    DECISION_SCORE,
    DerivativeFingerprint,
    DerivativeMatch,
    SuspectFeatures,
    suspect_features,
    verify_derivative,
)

__all__ = ["DerivativeIndex"]

#: Largest Hamming distance (bits) between descriptors that counts as a vote.
VOTE_DISTANCE: Final = 64
#: Candidates verified per query by default.
TOP_K: Final = 8
#: Hash tables and bits per table of the multi-hash index.
NHASH: Final = 8
HASH_BITS: Final = 16


class DerivativeIndex:
    """An in-memory index of derivative fingerprints with vote-based retrieval.

    Parameters
    ----------
    nhash, hash_bits : int, optional
        Layout of the faiss multi-hash index.

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

    def __init__(self, *, nhash: int = NHASH, hash_bits: int = HASH_BITS) -> None:
        import faiss

        self._faiss = faiss
        self._index = faiss.IndexBinaryMultiHash(256, nhash, hash_bits)
        self._nhash = nhash
        self._owner: list[np.ndarray] = []
        self._owner_all: np.ndarray = np.zeros(0, np.int64)
        self._keys: list[Hashable] = []
        self._fps: list[DerivativeFingerprint] = []
        self._closed = False

    def __len__(self) -> int:
        return len(self._keys)

    def __enter__(self) -> DerivativeIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Free the index (idempotent)."""
        if not self._closed:
            self._index.reset()
            self._fps.clear()
            self._keys.clear()
            self._closed = True

    def add(self, key: Hashable, fingerprint: DerivativeFingerprint) -> None:
        """Register one fingerprint under ``key``."""
        if self._closed:
            raise ValueError("the index is closed")
        pos = len(self._keys)
        self._keys.append(key)
        self._fps.append(fingerprint)
        self._index.add(np.ascontiguousarray(fingerprint.descriptors))
        self._owner.append(np.full(len(fingerprint), pos, np.int64))

    @property
    def memory_bytes(self) -> int:
        """Approximate bytes held (descriptors, hash tables, owners)."""
        n = int(self._index.ntotal)
        nhash = self._nhash
        return n * 32 + n * nhash * 8 + n * 8

    def candidates(self, features: SuspectFeatures, k: int = TOP_K) -> list[tuple[int, int]]:
        """Positions of the ``k`` registered photos with most votes, with their votes."""
        if self._index.ntotal == 0:
            return []
        if len(self._owner_all) != self._index.ntotal:
            self._owner_all = np.concatenate(self._owner)
        votes = np.zeros(len(self._keys), np.int64)
        for desc in features.descriptors:
            if len(desc) == 0:
                continue
            dist, ids = self._index.search(np.ascontiguousarray(desc), 2)
            ok = (ids >= 0) & (dist <= VOTE_DISTANCE)
            owners = self._owner_all[ids[ok]]
            qidx = np.broadcast_to(np.arange(len(desc))[:, None], ids.shape)[ok]
            pairs = np.unique(owners * (len(desc) + 1) + qidx)  # one vote per (photo, query)
            np.add.at(votes, pairs // (len(desc) + 1), 1)
        top = np.argsort(-votes, kind="stable")[:k]
        return [(int(i), int(votes[i])) for i in top if votes[i] > 0]

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
        positions = (
            range(len(self._keys)) if exhaustive else [p for p, _ in self.candidates(feats, k)]
        )
        out = []
        for pos in positions:
            match = verify_derivative(feats, self._fps[pos], threshold=threshold)
            if match.matched:
                out.append((self._keys[pos], match))
        out.sort(key=lambda km: (-km[1].score, -km[1].inliers))
        return out
