"""Value types of the hash bank: entries, add results, statistics, changes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final, Literal

from ..errors import InvalidHashError
from ..fingerprint.types import Fingerprint, PdqHash

if TYPE_CHECKING:
    from ..fingerprint.derivative import DerivativeFingerprint

__all__ = ["DERIVATIVE_MAX_STORED", "AddResult", "BankEntry", "BankStats", "Change", "utc_now"]

#: Largest derivative fingerprint a store accepts, in bytes: a sanity bound well
#: above the format's own limit (``takeback.fingerprint.derivative.MAX_BYTES``).
DERIVATIVE_MAX_STORED: Final = 64 * 1024


def utc_now() -> str:
    """The current time as ISO 8601 UTC with seconds, e.g. ``2026-11-22T03:30:00Z``."""
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class BankEntry:
    """One registered fingerprint: hashes and a label, never pixels.

    An entry imported from a partner list may carry only some hashes (a PDQ hex
    line has no SHA-256); ``id`` and ``seq`` are assigned by the store.

    Attributes
    ----------
    id : int or None
        Local id, never reused after a removal.
    label : str
        A name the owner chose (defaults to the file name).
    sha256, md5 : str or None
        Hex digests of the registered file's bytes.
    pdq : PdqHash or None
    quality : int or None
        PDQ quality 0-100.
    width, height : int or None
    added_at : str
        ISO 8601 UTC time of registration.
    source : str or None
        Free-text provenance note ("imported from partner.csv", a partner reference).
    seq : int or None
        The change-sequence number at which the entry was added.
    derivative : bytes or None
        The serialized derivative fingerprint to store with the entry
        (:meth:`DerivativeFingerprint.to_bytes`). Only for adding: stores never
        read these blobs back with the entry (``Store.derivatives()`` and
        ``Store.get_derivatives()`` do), so it is None on entries read from a
        bank and is left out of comparisons.
    derivative_digest : str or None
        SHA-256 (hex) of the stored derivative fingerprint, None when the entry
        has none (``--privacy pdq-only``, too little detail, imported). Computed
        from ``derivative`` when that is given; filled in by stores on reads.
    """

    label: str
    sha256: str | None = None
    md5: str | None = None
    pdq: PdqHash | None = None
    quality: int | None = None
    width: int | None = None
    height: int | None = None
    added_at: str = field(default_factory=utc_now)
    source: str | None = None
    id: int | None = None
    seq: int | None = None
    derivative: bytes | None = field(default=None, repr=False, compare=False)
    derivative_digest: str | None = None

    def __post_init__(self) -> None:
        blob = self.derivative
        if blob is None:
            return
        if not isinstance(blob, bytes) or not 0 < len(blob) <= DERIVATIVE_MAX_STORED:
            raise InvalidHashError(
                f"the derivative fingerprint of {self.label!r} must be 1 to "
                f"{DERIVATIVE_MAX_STORED:,} bytes"
            )
        digest = hashlib.sha256(blob).hexdigest()
        if self.derivative_digest not in (None, digest):
            raise InvalidHashError(
                f"the derivative digest of {self.label!r} does not match its derivative fingerprint"
            )
        object.__setattr__(self, "derivative_digest", digest)

    @classmethod
    def from_fingerprint(
        cls,
        fp: Fingerprint,
        *,
        label: str,
        source: str | None = None,
        derivative: DerivativeFingerprint | None = None,
    ) -> BankEntry:
        """A new (unsaved) entry for a freshly computed fingerprint (and its derivative)."""
        return cls(
            label=label,
            sha256=fp.sha256,
            md5=fp.md5,
            pdq=fp.pdq,
            quality=fp.quality,
            width=fp.width,
            height=fp.height,
            source=source,
            derivative=None if derivative is None else derivative.to_bytes(),
        )

    def with_ids(self, id: int, seq: int) -> BankEntry:
        return replace(self, id=id, seq=seq)

    def to_dict(self) -> dict[str, object]:
        """The TakeBack JSON-lines form (export; ``bank list --json`` adds
        ``derivative_digest``, which exports leave out: see ``docs/formats.md``)."""
        return {
            "id": self.id,
            "label": self.label,
            "sha256": self.sha256,
            "md5": self.md5,
            "pdq": None if self.pdq is None else str(self.pdq),
            "quality": self.quality,
            "width": self.width,
            "height": self.height,
            "added_at": self.added_at,
            "source": self.source,
            "seq": self.seq,
        }


@dataclass(frozen=True, slots=True)
class AddResult:
    """Outcome of adding one entry: its id, and the id it duplicates, if any."""

    id: int
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class Change:
    """One step of the bank's change feed (``op`` is ``add`` or ``remove``)."""

    seq: int
    op: Literal["add", "remove"]
    entry_id: int
    at: str


@dataclass(frozen=True, slots=True)
class BankStats:
    """Counts describing a bank."""

    entries: int
    with_pdq: int
    low_quality: int
    with_sha256: int
    last_seq: int
    database_bytes: int
    path: str
    #: Entries with a derivative fingerprint.
    with_derivative: int = 0
