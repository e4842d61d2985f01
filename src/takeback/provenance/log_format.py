"""Byte formats of the registration log: the entry (leaf data) and the proof file.

Entry, version 1 (138 bytes, big-endian, every field always present)::

    offset size  field
    0      1     version            0x01
    1      1     flags              0x01 SHA-256 present, 0x02 PDQ present,
                                    0x04 derivative digest present; other bits 0
    2      8     registered_at      seconds since 1970-01-01T00:00:00Z, unsigned
    10     32    sha256             SHA-256 of the photo file (zeros when absent)
    42     32    pdq                the 256-bit PDQ hash (zeros when absent)
    74     32    derivative_digest  digest of the derivative fingerprint (zeros when absent)
    106    32    label_commitment   SHA-256("takeback/label/v1" || 0x00 || salt || UTF-8 label)

An absent field must be all zeros, so each entry has exactly one encoding. The
16-byte random salt stays in the log database: the label is hidden until its
owner reveals label and salt.

Proof file: the C2SP ``tlog-proof`` form (https://c2sp.org/tlog-proof) with
the entry bytes as its ``extra`` data::

    c2sp.org/tlog-proof@v1
    extra <base64 entry bytes>
    index <decimal>
    <base64 proof hash, one per line, leaf sibling first>

    <signed checkpoint, verbatim>
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from .log_errors import ProofFormatError
from .log_merkle import HASH_SIZE, leaf_hash

__all__ = [
    "ENTRY_SIZE",
    "ENTRY_VERSION",
    "PROOF_HEADER",
    "EntryData",
    "TlogProof",
    "label_commitment",
    "parse_time",
]

#: Version byte of the entry encoding below.
ENTRY_VERSION: Final = 1
#: Size in bytes of a version-1 entry.
ENTRY_SIZE: Final = 138
#: First line of a proof file.
PROOF_HEADER: Final = "c2sp.org/tlog-proof@v1"
_LABEL_DOMAIN: Final = b"takeback/label/v1\x00"
_F_SHA, _F_PDQ, _F_DER = 0x01, 0x02, 0x04
_ZERO: Final = bytes(32)
_STRUCT = struct.Struct(">BBQ32s32s32s32s")
_MAX_PROOF_FILE: Final = 1 << 20


def label_commitment(label: str, salt: bytes) -> bytes:
    """``SHA-256("takeback/label/v1" || 0x00 || salt || UTF-8 label)``."""
    return hashlib.sha256(_LABEL_DOMAIN + salt + label.encode("utf-8")).digest()


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def parse_time(text: str) -> int:
    """Seconds since the epoch of an ISO 8601 time (``Z`` or an offset; naive = UTC)."""
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ProofFormatError(f"{text!r} is not an ISO 8601 time") from exc
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp())


@dataclass(frozen=True, slots=True)
class EntryData:
    """The public content of one log entry (what the leaf hash commits to).

    Attributes
    ----------
    registered_at : int
        Registration time, seconds since the Unix epoch (UTC), as claimed by the
        registrant: the log proves order, not time.
    sha256, pdq, derivative_digest : bytes or None
        32-byte fingerprints of the photo; ``None`` when absent.
    label_commitment : bytes
        Salted hash of the label (:func:`label_commitment`).
    """

    registered_at: int
    sha256: bytes | None
    pdq: bytes | None
    derivative_digest: bytes | None
    label_commitment: bytes

    def __post_init__(self) -> None:
        for name in ("sha256", "pdq", "derivative_digest"):
            value = getattr(self, name)
            if value is not None and len(value) != 32:
                raise ProofFormatError(f"{name} must be 32 bytes, not {len(value)}")
        if len(self.label_commitment) != 32:
            raise ProofFormatError("label_commitment must be 32 bytes")
        if not 0 <= self.registered_at < 1 << 64:
            raise ProofFormatError("registered_at is out of range")

    def encode(self) -> bytes:
        """The canonical version-1 bytes (the leaf data)."""
        flags = (
            (_F_SHA if self.sha256 is not None else 0)
            | (_F_PDQ if self.pdq is not None else 0)
            | (_F_DER if self.derivative_digest is not None else 0)
        )
        return _STRUCT.pack(
            ENTRY_VERSION,
            flags,
            self.registered_at,
            self.sha256 or _ZERO,
            self.pdq or _ZERO,
            self.derivative_digest or _ZERO,
            self.label_commitment,
        )

    @classmethod
    def decode(cls, data: bytes) -> EntryData:
        """Parse entry bytes; anything but a canonical encoding is refused."""
        if len(data) < 1 or data[0] != ENTRY_VERSION:
            version = data[0] if data else None
            raise ProofFormatError(f"unknown log entry version {version}")
        if len(data) != ENTRY_SIZE:
            raise ProofFormatError(f"a log entry has {ENTRY_SIZE} bytes, not {len(data)}")
        _, flags, ts, sha, pdq, der, label = _STRUCT.unpack(data)
        if flags & ~(_F_SHA | _F_PDQ | _F_DER):
            raise ProofFormatError("a log entry has unknown flags set")

        def field(value: bytes, bit: int, name: str) -> bytes | None:
            if flags & bit:
                return value
            if value != _ZERO:
                raise ProofFormatError(f"a log entry's absent {name} is not zero")
            return None

        return cls(
            ts,
            field(sha, _F_SHA, "sha256"),
            field(pdq, _F_PDQ, "pdq"),
            field(der, _F_DER, "derivative digest"),
            label,
        )

    @property
    def leaf_hash(self) -> bytes:
        return leaf_hash(self.encode())

    def to_dict(self) -> dict[str, object]:
        """JSON form: hex digests (``null`` when absent) and an ISO time."""
        return {
            "registered_at": _iso(self.registered_at),
            "sha256": None if self.sha256 is None else self.sha256.hex(),
            "pdq": None if self.pdq is None else self.pdq.hex(),
            "derivative_digest": (
                None if self.derivative_digest is None else self.derivative_digest.hex()
            ),
            "label_commitment": self.label_commitment.hex(),
        }


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A parsed C2SP ``tlog-proof`` file.

    Attributes
    ----------
    index : int
    hashes : tuple of bytes
        The inclusion proof.
    checkpoint : bytes
        The signed checkpoint note, verbatim.
    extra : bytes or None
        Unauthenticated extra data; here the entry bytes, bound by the proof
        once their leaf hash is recomputed.
    """

    index: int
    hashes: tuple[bytes, ...]
    checkpoint: bytes
    extra: bytes | None = None

    def marshal(self) -> bytes:
        lines = [PROOF_HEADER]
        if self.extra is not None:
            lines.append("extra " + base64.b64encode(self.extra).decode())
        lines.append(f"index {self.index}")
        lines.extend(base64.b64encode(h).decode() for h in self.hashes)
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint

    @classmethod
    def unmarshal(cls, data: bytes) -> TlogProof:
        """Parse a proof file; raises :class:`ProofFormatError` (never anything else)."""
        if len(data) > _MAX_PROOF_FILE:
            raise ProofFormatError("the proof file is too large to be a tlog-proof")
        head, sep, checkpoint = data.partition(b"\n\n")
        if not sep:
            raise ProofFormatError(
                "the proof file is truncated: no checkpoint after the proof hashes"
            )
        try:
            lines = head.decode("ascii").split("\n")
        except UnicodeDecodeError as exc:
            raise ProofFormatError("the proof file's header is not ASCII text") from exc
        if lines[0] != PROOF_HEADER:
            raise ProofFormatError(f"not a tlog-proof file (the first line is not {PROOF_HEADER})")
        pos = 1
        extra = None
        if pos < len(lines) and lines[pos].startswith("extra "):
            try:
                extra = base64.b64decode(lines[pos][6:], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProofFormatError("the proof file's extra data is not base64") from exc
            pos += 1
        if pos >= len(lines) or not lines[pos].startswith("index "):
            raise ProofFormatError("the proof file has no index line")
        idx = lines[pos][6:]
        if not idx.isdigit() or (idx != "0" and idx.startswith("0")):
            raise ProofFormatError(f"bad index in the proof file: {idx[:30]!r}")
        hashes = []
        for line in lines[pos + 1 :]:
            try:
                h = base64.b64decode(line, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ProofFormatError("a proof hash in the file is not base64") from exc
            if len(h) != HASH_SIZE:
                raise ProofFormatError("a proof hash in the file is not 32 bytes")
            hashes.append(h)
        if not checkpoint:
            raise ProofFormatError("the proof file is truncated: the checkpoint is missing")
        return cls(int(idx), tuple(hashes), checkpoint, extra)
