"""PDQ fingerprints through the canonical pipeline of :mod:`takeback.imageio`."""

from __future__ import annotations

import hashlib
import os
from typing import Final

import numpy as np
import pdqhash

from ..imageio import ImageLimits, pdq_pixels, read_bytes
from .types import Fingerprint, PdqHash

__all__ = ["HASHER_NAME", "fingerprint_bytes", "fingerprint_file", "pdq_from_pixels"]

#: Name of this hasher, recorded with results.
HASHER_NAME: Final = "pdq"


def pdq_from_pixels(pixels: np.ndarray, *, dihedral: bool = True) -> tuple[list[PdqHash], int]:
    """PDQ hash(es) and quality of an ``(M, N, 3)`` uint8 RGB array.

    Returns the 8 dihedral hashes (``dihedral=True``) or just the original, and
    the quality.
    """
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (M, N, 3) RGB array, got shape {arr.shape}")
    if dihedral:
        vectors, quality = pdqhash.compute_dihedral(arr)
        return [PdqHash.from_bits(v) for v in vectors], int(quality)
    vector, quality = pdqhash.compute(arr)
    return [PdqHash.from_bits(vector)], int(quality)


def fingerprint_bytes(
    data: bytes, *, name: str = "<image>", limits: ImageLimits | None = None
) -> Fingerprint:
    """Fingerprint an encoded image held in memory.

    Parameters
    ----------
    data : bytes
        The file's bytes; they are hashed as they are and decoded through the
        canonical PDQ pipeline.
    name : str
        Used in error messages.
    limits : ImageLimits, optional

    Raises
    ------
    takeback.errors.ImageError
        The bytes are not a usable image.
    """
    canonical = pdq_pixels(data, name=name, limits=limits)
    hashes, quality = pdq_from_pixels(canonical.pixels)
    return Fingerprint(
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        pdq=hashes[0],
        quality=quality,
        width=canonical.width,
        height=canonical.height,
        variants=tuple(hashes),
    )


def fingerprint_file(
    path: str | os.PathLike[str], *, limits: ImageLimits | None = None
) -> Fingerprint:
    """Fingerprint an image file (see :func:`fingerprint_bytes`).

    Examples
    --------
    >>> from pathlib import Path
    >>> from skimage import data_dir
    >>> fp = fingerprint_file(Path(data_dir) / "astronaut.png")
    >>> (fp.width, fp.height, fp.quality >= 50)
    (512, 512, True)
    """
    data = read_bytes(path, limits)
    return fingerprint_bytes(data, name=os.fspath(path), limits=limits)
