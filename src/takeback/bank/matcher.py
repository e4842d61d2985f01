"""Matching a fingerprint against a bank: exact bytes, then PDQ, then derivative.

The order is fixed and every match says how it was found:

1. ``sha256`` / ``md5``: the suspect file is byte-for-byte a registered file.
2. ``pdq``: the PDQ hash of the suspect (or of one of its 8 dihedral variants:
   flips and quarter turns) is within ``threshold`` bits of a registered hash.
3. ``derivative``: local features of the suspect are found in a registered
   photo's derivative fingerprint (:mod:`takeback.fingerprint.derivative`)
   where one similarity transform (scale, rotation, shift, perhaps a mirror)
   puts them: a doctored copy with part of the picture replaced, cropped,
   turned or bordered, which PDQ misses. The match carries the calibrated
   ``score``, the 3x3 ``matrix`` from the original's full-resolution pixels
   to the suspect's, ``mirrored``, ``coverage`` (the share of the suspect's
   area the original explains) and ``inliers``. A collage of several
   registered photos matches each of them.

Thresholds travel with the result: each :class:`Match` records the distance, the
threshold and the variant used. Hashes of quality below ``min_quality`` are
neither searched for nor matched (they describe featureless images and match
each other by chance) unless the caller lowers ``min_quality``.

When the derivative step runs
-----------------------------
Derivative matching needs the suspect's pixels (``Matcher.match(fp,
suspect=...)``) and an index of the bank's derivative fingerprints. Building
that index reads and parses every stored fingerprint (about 15 KB each), which
costs far more than a PDQ lookup, so by default (``derivative="auto"``) it is
built lazily, the first time a suspect found nothing by exact bytes or PDQ,
then kept for the following suspects; the suspect's pixels are decoded only
then too. ``"always"`` also looks for derivative matches when PDQ found
something (a collage whose one part is an untouched copy); ``"never"``
skips the step. A stored fingerprint that cannot be read (a damaged bank, or
one written by an incompatible TakeBack) is skipped with a warning naming the
entry: that entry can still be matched by its digests and PDQ.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal, Self, cast

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

if TYPE_CHECKING:
    from ..fingerprint.derivative import DerivativeMatch
    from ..fingerprint.derivative_index import DerivativeIndex

__all__ = [
    "DerivativeMode",
    "Match",
    "MatchResult",
    "Matcher",
    "SuspectPixels",
    "load_derivative_index",
    "pdq_score",
]

Method = Literal["sha256", "md5", "pdq", "derivative"]
#: When the derivative step runs (see the module documentation).
DerivativeMode = Literal["auto", "always", "never"]
#: A suspect's ``(M, N, 3)`` uint8 pixels, or a function that decodes them when needed.
SuspectPixels = np.ndarray | Callable[[], np.ndarray]
_EXACT_ORDER: Final = {"sha256": 0, "md5": 1, "pdq": 2, "derivative": 3}
#: Damaged derivative fingerprints named one by one before the rest are counted.
_NAMED_DAMAGE: Final = 5
_LOG = logging.getLogger("takeback.bank")


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
    method : ``"sha256"``, ``"md5"``, ``"pdq"`` or ``"derivative"``.
    distance : Hamming distance in bits (0 for exact matches; None for derivative).
    threshold : the PDQ threshold in force (0 for exact matches); for
        derivative matches the decision score (``DECISION_SCORE``, 0-1).
    variant : for PDQ, the dihedral transform of the suspect that matched
        (``"original"``, ``"flip_horizontal"``, ...); ``None`` for the others.
    score : in [0, 1]: 1.0 for exact matches, :func:`pdq_score` for PDQ, the
        calibrated derivative score for derivative matches (``-log10`` of the
        chance that an unrelated photo aligns as well, divided by 8).
    matrix : derivative only: 3x3, maps the original's full-resolution pixel
        ``(x, y, 1)`` to the suspect's pixels (pixel centres at integers),
        the mirror included when ``mirrored``.
    mirrored : derivative only: the suspect is a mirror image of the original.
    coverage : derivative only: share of the suspect's area covered by the
        original's frame, 0-1 (a border, caption or collage lowers it).
    inliers : derivative only: feature correspondences consistent with ``matrix``.
    """

    id: int
    label: str
    method: Method
    distance: int | None
    threshold: float
    variant: str | None
    score: float
    matrix: tuple[tuple[float, float, float], ...] | None = None
    mirrored: bool | None = None
    coverage: float | None = None
    inliers: int | None = None

    def to_dict(self) -> dict[str, object]:
        """The ``takeback match --json`` form; derivative matches add four keys."""
        out: dict[str, object] = {
            "id": self.id,
            "label": self.label,
            "method": self.method,
            "distance": self.distance,
            "threshold": self.threshold,
            "variant": self.variant,
            "score": self.score,
        }
        if self.method == "derivative":
            out["matrix"] = None if self.matrix is None else [list(r) for r in self.matrix]
            out["mirrored"] = self.mirrored
            out["coverage"] = self.coverage
            out["inliers"] = self.inliers
        return out


@dataclass(frozen=True, slots=True)
class MatchResult:
    """All matches of one suspect, best first; empty when nothing matched.

    ``pdq_searched`` is False when the suspect's PDQ quality was below the
    minimum, so only exact matching was tried. ``derivative_searched`` is True
    when the suspect was compared with the bank's derivative fingerprints;
    ``derivative_note`` says why it was not when it could have been (the
    suspect has too little detail, the bank holds no derivative fingerprints).
    """

    matches: list[Match]
    quality: int
    pdq_searched: bool
    derivative_searched: bool = False
    derivative_note: str | None = None


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
    derivative : {"auto", "always", "never"}
        When the derivative step runs (see the module documentation).
    derivative_threshold : float, optional
        Decision score of derivative matches [default: the calibrated
        ``takeback.fingerprint.derivative.DECISION_SCORE``].
    on_warning : callable, optional
        Receives warnings in plain words (a damaged derivative fingerprint);
        by default they are logged to the ``takeback.bank`` logger.
    """

    def __init__(
        self,
        store: Store,
        *,
        threshold: int = PDQ_MATCH_THRESHOLD,
        all_variants: bool = True,
        min_quality: int = PDQ_MIN_QUALITY,
        index_kind: str = "auto",
        derivative: DerivativeMode = "auto",
        derivative_threshold: float | None = None,
        on_warning: Callable[[str], None] | None = None,
    ) -> None:
        if not 0 <= threshold <= PDQ_BITS:
            raise ValueError(f"threshold must be between 0 and {PDQ_BITS} bits, not {threshold}")
        if not 0 <= min_quality <= 100:
            raise ValueError(f"min_quality must be between 0 and 100, not {min_quality}")
        if derivative not in ("auto", "always", "never"):
            raise ValueError(f"derivative must be auto, always or never, not {derivative!r}")
        if derivative_threshold is not None and not 0 <= derivative_threshold <= 1:
            raise ValueError(f"derivative_threshold must be in [0, 1], not {derivative_threshold}")
        self.store = store
        self.threshold = threshold
        self.all_variants = all_variants
        self.min_quality = min_quality
        self.index_kind = index_kind
        self.derivative = derivative
        self.derivative_threshold = derivative_threshold
        self._warn = on_warning or _LOG.warning
        self._index: MatchIndex | None = None
        self._derivatives: DerivativeIndex | None = None
        self._derivative_sizes: dict[int, tuple[int, int]] = {}

    @property
    def index(self) -> MatchIndex:
        if self._index is None:
            ids, codes = self.store.pdq_arrays(min_quality=self.min_quality)
            self._index = build_index(ids, codes, kind=self.index_kind)
        return self._index

    @property
    def derivative_index(self) -> DerivativeIndex:
        """The index of the bank's derivative fingerprints, loaded on first use."""
        if self._derivatives is None:
            self._derivatives, self._derivative_sizes = load_derivative_index(
                self.store, on_warning=self._warn
            )
        return self._derivatives

    def reload(self) -> None:
        """Drop the in-memory indexes; the next match loads them again."""
        if self._index is not None:
            self._index.close()
            self._index = None
        if self._derivatives is not None:
            self._derivatives.close()
            self._derivatives = None
            self._derivative_sizes = {}

    def match(self, fp: Fingerprint, *, suspect: SuspectPixels | None = None) -> MatchResult:
        """Match one fingerprint; see the module documentation for the order.

        Parameters
        ----------
        fp : Fingerprint
            The suspect's fingerprint (with its dihedral ``variants`` to match
            flipped and turned copies by PDQ).
        suspect : (M, N, 3) uint8 array or callable returning one, optional
            The suspect's pixels, for derivative matching (skipped without
            them): the full-resolution image, or the same image reduced (such
            as the canonical PDQ pixels); a callable is called only when the
            derivative step runs. Matrices are reported in the full-resolution
            frame ``fp.width`` x ``fp.height``.
        """
        # entry id -> (sort key, method, distance, variant); best evidence first
        best: dict[int, tuple[tuple[int, float, int], Method, int, str | None]] = {}
        labels: dict[int, str] = {}
        for entry in self.store.find_exact(sha256=fp.sha256, md5=fp.md5):
            if entry.id is None:  # not a stored entry; cannot happen with a real store
                continue
            method: Method = "sha256" if entry.sha256 == fp.sha256 else "md5"
            best[entry.id] = ((_EXACT_ORDER[method], 0, 0), method, 0, None)
            labels[entry.id] = entry.label

        pdq_searched = fp.quality >= self.min_quality
        if pdq_searched:
            variants = fp.variants if (self.all_variants and fp.variants) else (fp.pdq,)
            queries = np.stack([v.to_array() for v in variants])
            for vi, (ids, dists) in enumerate(self.index.search(queries, self.threshold)):
                name = DIHEDRAL_VARIANTS[vi] if len(variants) > 1 else "original"
                for entry_id, dist in zip(ids.tolist(), dists.tolist(), strict=True):
                    key = (_EXACT_ORDER["pdq"], float(dist), 0)
                    if entry_id not in best or key < best[entry_id][0]:
                        best[entry_id] = (key, "pdq", int(dist), name)

        derivative: dict[int, DerivativeMatch] = {}
        note = None
        shape = (fp.height, fp.width)
        wanted = self.derivative == "always" or (self.derivative == "auto" and not best)
        if wanted and suspect is not None:
            found_by_features, note, shape = self._search_derivatives(suspect, shape)
            for entry_id, dm in found_by_features:
                if entry_id not in best:
                    key = (_EXACT_ORDER["derivative"], -float(dm.score), -int(dm.inliers))
                    best[entry_id] = (key, "derivative", 0, None)
                    derivative[entry_id] = dm

        missing = [i for i in best if i not in labels or i in derivative]
        found: dict[int, BankEntry] = self.store.get_many(missing) if missing else {}
        labels.update({i: e.label for i, e in found.items()})
        matches = []
        for entry_id, (_, method, dist, variant) in sorted(
            best.items(), key=lambda kv: (kv[1][0], kv[0])
        ):
            if entry_id not in labels:  # removed between the index load and now
                continue
            if method == "derivative":
                dm = derivative[entry_id]
                matrix = None
                if dm.matrix is not None:
                    matrix = self._full_resolution(dm.matrix, entry_id, found, fp, shape)
                matches.append(
                    Match(
                        id=entry_id,
                        label=labels[entry_id],
                        method="derivative",
                        distance=None,
                        threshold=dm.threshold,
                        variant=None,
                        score=round(float(dm.score), 4),
                        matrix=matrix,
                        mirrored=bool(dm.mirrored),
                        coverage=round(float(dm.coverage), 4),
                        inliers=int(dm.inliers),
                    )
                )
                continue
            matches.append(
                Match(
                    id=entry_id,
                    label=labels[entry_id],
                    method=method,
                    distance=dist,
                    threshold=0 if method != "pdq" else self.threshold,
                    variant=variant,
                    score=1.0 if method != "pdq" else pdq_score(dist),
                )
            )
        return MatchResult(
            matches=matches,
            quality=fp.quality,
            pdq_searched=pdq_searched,
            derivative_searched=wanted and suspect is not None and note is None,
            derivative_note=note,
        )

    def _search_derivatives(
        self, suspect: SuspectPixels, shape: tuple[int, int]
    ) -> tuple[list[tuple[int, DerivativeMatch]], str | None, tuple[int, int]]:
        """Derivative matches of the suspect, best first, or why there can be none;
        and the ``(rows, cols)`` of the pixels they were found in."""
        from ..fingerprint.derivative import DECISION_SCORE, DerivativeError, suspect_features

        index = self.derivative_index
        if len(index) == 0:
            return [], "the bank holds no derivative fingerprints", shape
        pixels = np.asarray(suspect() if callable(suspect) else suspect)
        rows, cols = pixels.shape[:2]
        try:
            features = suspect_features(pixels)
        except DerivativeError as exc:
            note = f"the suspect cannot be matched by local features ({exc.message})"
            return [], note, (rows, cols)
        threshold = self.derivative_threshold
        hits = index.search(features, threshold=DECISION_SCORE if threshold is None else threshold)
        return [(cast(int, key), dm) for key, dm in hits], None, (rows, cols)

    def _full_resolution(
        self,
        matrix: np.ndarray,
        entry_id: int,
        entries: dict[int, BankEntry],
        fp: Fingerprint,
        shape: tuple[int, int],
    ) -> tuple[tuple[float, float, float], ...]:
        """A derivative matrix moved to full-resolution frames on both sides.

        A fingerprint registered by ``bank add`` is computed from the canonical
        PDQ pixels, and the suspect's features may be too: both are the full
        image reduced by some factor, and the bank entry and ``fp`` record the
        full-resolution sizes.
        """
        m = np.asarray(matrix, np.float64)
        entry, size = entries.get(entry_id), self._derivative_sizes.get(entry_id)
        if entry is not None and entry.width and entry.height and size is not None:
            m = m @ _frame_change((entry.width, entry.height), size)
        rows, cols = shape
        if (cols, rows) != (fp.width, fp.height):
            m = _frame_change((cols, rows), (fp.width, fp.height)) @ m
        m = m / m[2, 2]
        return tuple((float(a), float(b), float(c)) for a, b, c in np.round(m, 6).tolist())

    def close(self) -> None:
        """Release the indexes; idempotent."""
        self.reload()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_change(src: tuple[int, int], dst: tuple[int, int]) -> np.ndarray:
    """Maps pixel coordinates of an image ``src = (width, height)`` to the same
    image resized to ``dst`` (pixel centres at integers)."""
    sx, sy = dst[0] / src[0], dst[1] / src[1]
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def load_derivative_index(
    store: Store, *, on_warning: Callable[[str], None] | None = None
) -> tuple[DerivativeIndex, dict[int, tuple[int, int]]]:
    """An index of every derivative fingerprint in ``store``, keyed by entry id.

    A stored fingerprint that does not parse (damaged bytes, a format this
    TakeBack does not read) is left out and reported to ``on_warning``, naming
    the entry; it never stops the others from loading.

    Returns
    -------
    (DerivativeIndex, dict)
        The index, and each indexed entry's fingerprint size ``(width,
        height)``: the frame its matrices are in.
    """
    from ..fingerprint.derivative import DerivativeFingerprint, InvalidDerivativeError
    from ..fingerprint.derivative_index import DerivativeIndex

    warn = on_warning or _LOG.warning
    index = DerivativeIndex()
    sizes: dict[int, tuple[int, int]] = {}
    damaged: list[tuple[int, str]] = []
    try:
        for entry_id, blob in store.derivatives():
            try:
                fp = DerivativeFingerprint.from_bytes(blob)
            except InvalidDerivativeError as exc:
                damaged.append((entry_id, exc.message))
                continue
            index.add(entry_id, fp)
            sizes[entry_id] = (fp.width, fp.height)
    except BaseException:
        index.close()
        raise
    if damaged:
        named = damaged[:_NAMED_DAMAGE]
        entries = store.get_many(i for i, _ in named)
        for entry_id, reason in named:
            label = f" ({entries[entry_id].label})" if entry_id in entries else ""
            warn(
                f"entry #{entry_id}{label}: its derivative fingerprint cannot be read "
                f"({reason}); it was skipped, so doctored copies of this photo are found "
                "only by PDQ: withdraw the entry and register the photo again"
            )
        if len(damaged) > len(named):
            warn(
                f"... and {len(damaged) - len(named):,} more entries whose derivative "
                "fingerprints cannot be read"
            )
    return index, sizes
