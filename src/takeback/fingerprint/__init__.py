"""Fingerprints of images: exact digests and PDQ, computed on the person's own device."""

from .pdq import fingerprint_bytes, fingerprint_file, pdq_from_pixels
from .types import (
    DIHEDRAL_VARIANTS,
    PDQ_BITS,
    PDQ_MATCH_THRESHOLD,
    PDQ_MIN_QUALITY,
    Fingerprint,
    PdqHash,
)

__all__ = [
    "DIHEDRAL_VARIANTS",
    "PDQ_BITS",
    "PDQ_MATCH_THRESHOLD",
    "PDQ_MIN_QUALITY",
    "Fingerprint",
    "PdqHash",
    "fingerprint_bytes",
    "fingerprint_file",
    "pdq_from_pixels",
]
