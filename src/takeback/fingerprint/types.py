"""Fingerprint value types: the PDQ hash and the fingerprint of one file."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

import numpy as np

from ..errors import InvalidHashError

__all__ = [
    "DIHEDRAL_VARIANTS",
    "PDQ_BITS",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "Fingerprint",
    "PdqHash",
]

#: Bits in a PDQ hash.
PDQ_BITS: Final = 256
#: Hamming distance at or below which two PDQ hashes match (Meta's recommendation,
#: ``PDQ_CONFIDENT_MATCH_THRESHOLD`` in python-threatexchange).
PDQ_MATCH_THRESHOLD: Final = 31
#: PDQ quality below which a hash is too featureless to match reliably.
PDQ_MIN_QUALITY: Final = 50

#: Names of the 8 dihedral variants, in ``pdqhash.compute_dihedral`` order. A
#: match under variant ``v`` means: the suspect, transformed by ``v``, looks like
#: the registered photo. In numpy terms, for an image ``x``: ``original`` x,
#: ``rotate90`` ``np.rot90(x, 1)`` (a quarter turn counter-clockwise),
#: ``rotate180`` ``np.rot90(x, 2)``, ``rotate270`` ``np.rot90(x, 3)``,
#: ``flip_vertical`` ``x[::-1]`` (upside down), ``flip_horizontal`` ``x[:, ::-1]``
#: (mirrored), ``rotate90_flip_vertical`` the transpose,
#: ``rotate90_flip_horizontal`` the anti-transpose.
DIHEDRAL_VARIANTS: Final = (
    "original",
    "rotate90",
    "rotate180",
    "rotate270",
    "flip_vertical",
    "flip_horizontal",
    "rotate90_flip_vertical",
    "rotate90_flip_horizontal",
)

_HEX_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


@dataclass(frozen=True, slots=True)
class PdqHash:
    """A 256-bit PDQ hash.

    The canonical text form is 64 lower-case hex digits, most significant bit
    first, exactly as python-threatexchange, StopNCII and HMA write it.

    Examples
    --------
    >>> a = PdqHash.from_hex("f" * 64)
    >>> b = PdqHash.from_hex("0" * 63 + "1")
    >>> a.distance(b)
    255
    >>> str(PdqHash.from_hex(str(a))) == str(a)
    True
    """

    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.value, bytes) or len(self.value) != PDQ_BITS // 8:
            raise InvalidHashError("a PDQ hash is exactly 32 bytes (64 hex digits)")

    @classmethod
    def from_hex(cls, text: str) -> PdqHash:
        """Parse 64 hex digits; raises :class:`InvalidHashError` otherwise."""
        if not isinstance(text, str) or not _HEX_RE.match(text.strip()):
            shown = text if isinstance(text, str) and len(text) <= 80 else f"{str(text)[:80]}..."
            raise InvalidHashError(f"{shown!r} is not a PDQ hash: expected 64 hex digits")
        return cls(bytes.fromhex(text.strip()))

    @classmethod
    def from_bits(cls, bits: np.ndarray) -> PdqHash:
        """From the 256 0/1 values ``pdqhash.compute`` returns (most significant first)."""
        arr = np.asarray(bits).reshape(-1)
        if arr.size != PDQ_BITS:
            raise InvalidHashError(f"a PDQ hash has {PDQ_BITS} bits, not {arr.size}")
        return cls(np.packbits(arr.astype(bool)).tobytes())

    def to_array(self) -> np.ndarray:
        """The hash as a ``(32,)`` uint8 array (the layout of bank indexes)."""
        return np.frombuffer(self.value, dtype=np.uint8)

    def distance(self, other: PdqHash) -> int:
        """Hamming distance in bits to ``other``."""
        x = np.bitwise_xor(self.to_array(), other.to_array())
        return int(_POPCOUNT[x].sum())

    def __str__(self) -> str:
        return self.value.hex()

    def __repr__(self) -> str:
        return f"PdqHash('{self.value.hex()}')"


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """What TakeBack keeps of one image file: hashes and size, never pixels.

    Attributes
    ----------
    sha256, md5 : str
        Hex digests of the file's bytes (exact-copy matching; MD5 is what
        StopNCII uses for video and some partners still exchange).
    pdq : PdqHash
        PDQ hash of the canonical pixels (see :mod:`takeback.imageio`).
    quality : int
        PDQ quality, 0-100; below :data:`PDQ_MIN_QUALITY` the hash is too
        featureless to match reliably.
    width, height : int
        Size in pixels after EXIF orientation.
    variants : tuple of PdqHash
        The 8 dihedral PDQ hashes in :data:`DIHEDRAL_VARIANTS` order
        (``variants[0] == pdq``), each exact; empty unless asked for (matching
        needs them, registration does not).
    """

    sha256: str
    md5: str
    pdq: PdqHash
    quality: int
    width: int
    height: int
    variants: tuple[PdqHash, ...] = ()

    @property
    def low_quality(self) -> bool:
        """True when the PDQ quality is below :data:`PDQ_MIN_QUALITY`."""
        return self.quality < PDQ_MIN_QUALITY

    def to_dict(self) -> dict[str, object]:
        """The JSON form used by ``takeback hash --json``."""
        return {
            "sha256": self.sha256,
            "md5": self.md5,
            "pdq": str(self.pdq),
            "quality": self.quality,
            "width": self.width,
            "height": self.height,
        }
