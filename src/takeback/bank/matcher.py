"""Matching a fingerprint against a bank: exact bytes first, then PDQ.

The order is fixed and every match says how it was found:

1. ``sha256`` / ``md5``: the suspect file is byte-for-byte a registered file.
2. ``pdq``: the PDQ hash of the suspect (or of one of its 8 dihedral variants:
   flips and quarter turns) is within ``threshold`` bits of a registered hash.

Thresholds travel with the result: each :class:`Match` records the distance, the
threshold and the variant used. Hashes of quality below ``min_quality`` are
neither searched for nor matched (they describe featureless images and match
each other by chance) unless the caller lowers ``min_quality``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, Self

import numpy as np

from ..fingerprint.types import (
    DIHEDRAL_VARIANTS,
    PDQ_BITS,
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    Fingerprint,
)
from .index import MatchIndex, build_index
from .model import BankEntry
from .store import Store

__all__ = ["Match", "MatchResult", "Matcher", "pdq_score"]

Method = Literal["sha256", "md5", "pdq"]
_EXACT_ORDER: Final = {"sha256": 0, "md5": 1, "pdq": 2}


def pdq_score(distance: int) -> float:
    """Similarity in [0, 1] for a PDQ distance: ``1 - distance / 256``.

    1.0 is identical; the default threshold 31 corresponds to 0.879; unrelated
    photos (106-152 bits apart) score about 0.4-0.6.
    """
    return round(1.0 - distance / PDQ_BITS, 4)


@dataclass(frozen=True, slots=True)
class Match:
    """One registered fingerprint that the suspect matched, and how.

    Attributes
    ----------
    id, label : the bank entry.
    method : ``"sha256"``, ``"md5"`` or ``"pdq"``.
    distance : Hamming distance in bits (0 for exact matches).
    threshold : the PDQ threshold in force (0 for exact matches).
    variant : for PDQ, the dihedral transform of the suspect that matched
        (``"original"``, ``"flip_horizontal"``, ...); ``None`` for exact matches.
    score : similarity in [0, 1] (1.0 for exact matches, see :func:`pdq_score`).
    """

    id: int
    label: str
    method: Method
    distance: int
    threshold: int
    variant: str | None
    score: float

    def to_dict(self) -> dict[str, object]:
        return {
            "id": self.id,
            "label": self.label,
            "method": self.method,
            "distance": self.distance,
            "threshold": self.threshold,
            "variant": self.variant,
            "score": self.score,
        }


@dataclass(frozen=True, slots=True)
class MatchResult:
    """All matches of one suspect, best first; empty when nothing matched.

    ``pdq_searched`` is False when the suspect's PDQ quality was below the
    minimum, so only exact matching was tried.
    """

    matches: list[Match]
    quality: int
    pdq_searched: bool


class Matcher:
    """Matches fingerprints against a bank's store.

    The PDQ index is loaded from the store on first use and kept in memory;
    :meth:`reload` picks up changes made since.

    Parameters
    ----------
    store : Store
    threshold : int
        PDQ match threshold in bits, 0-256 (default 31).
    all_variants : bool
        Also search the 7 flipped / rotated variants of the suspect (default True).
    min_quality : int
        PDQ quality below which neither suspects nor bank hashes are PDQ-matched.
    index_kind : str
        Passed to :func:`~takeback.bank.index.build_index`.
    """

    def __init__(
        self,
        store: Store,
        *,
        threshold: int = PDQ_MATCH_THRESHOLD,
        all_variants: bool = True,
        min_quality: int = PDQ_MIN_QUALITY,
        index_kind: str = "auto",
    ) -> None:
        if not 0 <= threshold <= PDQ_BITS:
            raise ValueError(f"threshold must be between 0 and {PDQ_BITS} bits, not {threshold}")
        if not 0 <= min_quality <= 100:
            raise ValueError(f"min_quality must be between 0 and 100, not {min_quality}")
        self.store = store
        self.threshold = threshold
        self.all_variants = all_variants
        self.min_quality = min_quality
        self.index_kind = index_kind
        self._index: MatchIndex | None = None

    @property
    def index(self) -> MatchIndex:
        if self._index is None:
            ids, codes = self.store.pdq_arrays(min_quality=self.min_quality)
            self._index = build_index(ids, codes, kind=self.index_kind)
        return self._index

    def reload(self) -> None:
        """Drop the in-memory index; the next match loads it again."""
        if self._index is not None:
            self._index.close()
            self._index = None

    def match(self, fp: Fingerprint) -> MatchResult:
        """Match one fingerprint; see the module documentation for the order."""
        best: dict[int, tuple[tuple[int, int], Method, int, str | None]] = {}
        labels: dict[int, str] = {}
        for entry in self.store.find_exact(sha256=fp.sha256, md5=fp.md5):
            if entry.id is None:  # not a stored entry; cannot happen with a real store
                continue
            method: Method = "sha256" if entry.sha256 == fp.sha256 else "md5"
            best[entry.id] = ((_EXACT_ORDER[method], 0), method, 0, None)
            labels[entry.id] = entry.label

        pdq_searched = fp.quality >= self.min_quality
        if pdq_searched:
            variants = fp.variants if (self.all_variants and fp.variants) else (fp.pdq,)
            queries = np.stack([v.to_array() for v in variants])
            for vi, (ids, dists) in enumerate(self.index.search(queries, self.threshold)):
                name = DIHEDRAL_VARIANTS[vi] if len(variants) > 1 else "original"
                for entry_id, dist in zip(ids.tolist(), dists.tolist(), strict=True):
                    key = (_EXACT_ORDER["pdq"], int(dist))
                    if entry_id not in best or key < best[entry_id][0]:
                        best[entry_id] = (key, "pdq", int(dist), name)

        missing = [i for i in best if i not in labels]
        found: dict[int, BankEntry] = self.store.get_many(missing) if missing else {}
        labels.update({i: e.label for i, e in found.items()})
        matches = [
            Match(
                id=entry_id,
                label=labels[entry_id],
                method=method,
                distance=dist,
                threshold=0 if method != "pdq" else self.threshold,
                variant=variant,
                score=1.0 if method != "pdq" else pdq_score(dist),
            )
            for entry_id, (_, method, dist, variant) in sorted(
                best.items(), key=lambda kv: (kv[1][0], kv[0])
            )
            if entry_id in labels  # removed between the index load and now
        ]
        return MatchResult(matches=matches, quality=fp.quality, pdq_searched=pdq_searched)

    def close(self) -> None:
        """Release the index; idempotent."""
        self.reload()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
