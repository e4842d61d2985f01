"""PDQ fingerprints through the canonical pipeline of :mod:`takeback.imageio`."""

from __future__ import annotations

import hashlib
import os
from typing import Final

import numpy as np
import pdqhash

from ..imageio import ImageLimits, PdqInput, pdq_pixels, read_bytes
from .types import DIHEDRAL_VARIANTS, Fingerprint, PdqHash

__all__ = [
    "HASHER_NAME",
    "fingerprint_bytes",
    "fingerprint_canonical",
    "fingerprint_file",
    "pdq_from_pixels",
]

#: Name of this hasher, recorded with results.
HASHER_NAME: Final = "pdq"


def pdq_from_pixels(pixels: np.ndarray, *, dihedral: bool = False) -> tuple[list[PdqHash], int]:
    """PDQ hash(es) and quality of an ``(M, N, 3)`` uint8 RGB array.

    With ``dihedral=True``, returns the hashes of the 8 flipped / rotated
    versions of the image in :data:`~takeback.fingerprint.types.DIHEDRAL_VARIANTS`
    order, each exactly equal to the PDQ of the physically transformed pixels.

    ``pdqhash.compute_dihedral`` derives all 8 from one DCT, but only two of
    them are exact for every image size: the original and its transpose (the
    others can be off by dozens of bits where PDQ's sampling grid is not
    symmetric). Calling it on the image, its two mirrors and its 180-degree turn
    gives each of the 8 exactly, for the cost of four hashes.
    """
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (M, N, 3) RGB array, got shape {arr.shape}")
    if not dihedral:
        vector, quality = pdqhash.compute(arr)
        return [PdqHash.from_bits(vector)], int(quality)
    exact: dict[str, np.ndarray] = {}
    quality = 0
    # (view, its name, the name of its transpose); index 6 of compute_dihedral is the transpose.
    for view, name, transposed in (
        (arr, "original", "rotate90_flip_vertical"),
        (arr[:, ::-1], "flip_horizontal", "rotate90"),
        (arr[::-1], "flip_vertical", "rotate270"),
        (arr[::-1, ::-1], "rotate180", "rotate90_flip_horizontal"),
    ):
        vectors, q = pdqhash.compute_dihedral(np.ascontiguousarray(view))
        exact[name], exact[transposed] = vectors[0], vectors[6]
        if name == "original":
            quality = int(q)
    ordered = [exact[name] for name in DIHEDRAL_VARIANTS]
    return [PdqHash.from_bits(v) for v in ordered], quality


def fingerprint_bytes(
    data: bytes,
    *,
    name: str = "<image>",
    limits: ImageLimits | None = None,
    variants: bool = False,
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
    variants : bool
        Also compute the 8 dihedral variants (needed to match flipped or turned
        copies of a suspect; registration does not need them).

    Raises
    ------
    takeback.errors.ImageError
        The bytes are not a usable image.
    """
    return fingerprint_canonical(
        data, pdq_pixels(data, name=name, limits=limits), variants=variants
    )


def fingerprint_canonical(
    data: bytes, canonical: PdqInput, *, variants: bool = False
) -> Fingerprint:
    """The fingerprint of a file whose bytes are ``data`` and whose canonical PDQ
    input (:func:`takeback.imageio.pdq_pixels` of the same bytes) is ``canonical``.

    For callers that decode once and compute more than PDQ from the pixels
    (:func:`takeback.fingerprint.batch.fingerprint_for_bank`).
    """
    hashes, quality = pdq_from_pixels(canonical.pixels, dihedral=variants)
    return Fingerprint(
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        pdq=hashes[0],
        quality=quality,
        width=canonical.width,
        height=canonical.height,
        variants=tuple(hashes) if variants else (),
    )


def fingerprint_file(
    path: str | os.PathLike[str], *, limits: ImageLimits | None = None, variants: bool = False
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
    return fingerprint_bytes(data, name=os.fspath(path), limits=limits, variants=variants)
