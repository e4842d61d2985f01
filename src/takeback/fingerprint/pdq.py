"""PDQ fingerprints through the canonical pipeline of :mod:`takeback.imageio`."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
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
    "frequency_bits",
    "pdq_from_pixels",
    "use_compiled",
]

#: Name of this hasher, recorded with results.
HASHER_NAME: Final = "pdq"

_LOG = logging.getLogger(__name__)


#: Whether :func:`pdq_from_pixels` hashes with the compiled PDQ (:func:`use_compiled`).
_compiled = False
#: Machines the compiled PDQ has been checked bit for bit on. Elsewhere a C++
#: compiler may fuse PDQ's multiply-adds (GCC does on aarch64) and numba not.
_CHECKED_MACHINES: Final = frozenset({"x86_64", "AMD64"})


def use_compiled(on: bool = True) -> bool:
    """Hash with the compiled PDQ of :mod:`takeback.fingerprint._pdq_compiled`;
    returns the previous setting, for the caller to restore.

    The bits and the quality are exactly ``pdqhash``'s (``tests/test_interop.py``
    checks every bit). A photo hashes ~2x faster (a suspect's 8 dihedral
    hashes too), but loading numba's compiled code costs ~0.7 s once per
    process (several seconds the first time after an install, to compile), so
    this pays for batches of ~150 photos and more, or ~64 suspects hashed with
    their 8 variants:
    :func:`~takeback.fingerprint.batch.fingerprint_paths` turns it on by itself
    for such batches. On a machine it has not been checked on (not x86-64),
    hashing stays with ``pdqhash``; where numba cannot load or cache its code
    (a read-only install without a writable ``NUMBA_CACHE_DIR``), it goes back
    to ``pdqhash`` with a logged warning.
    """
    global _compiled
    previous, _compiled = _compiled, on and platform.machine() in _CHECKED_MACHINES
    return previous


def _frequencies(rgb: np.ndarray) -> tuple[np.ndarray, int] | None:
    """The compiled PDQ's frequencies and quality, or None to hash with ``pdqhash``."""
    global _compiled
    if not _compiled:
        return None
    try:
        from ._pdq_compiled import pdq_frequencies

        return pdq_frequencies(rgb)
    except (ImportError, RuntimeError, OSError) as exc:  # numba cannot load, compile or cache
        _compiled = False
        _LOG.warning("the compiled PDQ is unavailable (%s); hashing with pdqhash", exc)
        return None


def frequency_bits(frequencies: np.ndarray) -> np.ndarray:
    """PDQ's 256 bits from its 16 x 16 DCT frequencies, in ``pdqhash``'s vector order.

    A bit is set where a frequency exceeds the median; Torben's median of 256
    values, which PDQ uses, is always the 128th smallest. The transposed
    frequencies stand for the transposed image (as in
    ``pdqhash.compute_dihedral``; see :func:`pdq_from_pixels`).
    """
    flat = np.ascontiguousarray(frequencies, dtype=np.float32).ravel()
    return (flat > np.partition(flat, 127)[127])[::-1].astype(np.uint8)


def pdq_from_pixels(pixels: np.ndarray, *, dihedral: bool = False) -> tuple[list[PdqHash], int]:
    """PDQ hash(es) and quality of an ``(M, N, 3)`` uint8 RGB array.

    With ``dihedral=True``, returns the hashes of the 8 flipped / rotated
    versions of the image in :data:`~takeback.fingerprint.types.DIHEDRAL_VARIANTS`
    order.

    ``pdqhash.compute_dihedral`` derives all 8 from one DCT, but only two of
    them are near-exact for every image size: the original and its transpose
    (the others can be off by dozens of bits where PDQ's sampling grid is not
    symmetric). Hashing the image, its two mirrors and its 180-degree turn
    gives those 4 exactly, and each one's transposed DCT stands for its
    transpose, for the cost of four hashes. The transposed image's own PDQ
    filters columns first, which rounds differently: all 1,144 variants of the
    143 benchmark photos are nonetheless exact (``bench/bench_hash.py``), but
    on synthetic checkerboard crops, whose frequencies tie around the median,
    up to 76 bits differ.
    """
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"expected an (M, N, 3) RGB array, got shape {arr.shape}")
    if not dihedral:
        found = _frequencies(arr)
        if found is None:
            vector, quality = pdqhash.compute(arr)
        else:
            vector, quality = frequency_bits(found[0]), found[1]
        return [PdqHash.from_bits(vector)], int(quality)
    exact: dict[str, np.ndarray] = {}
    quality = 0
    # (view, its name, the name of its transpose): the transpose's frequencies
    # are the view's transposed (index 6 of compute_dihedral).
    for view, name, transposed in (
        (arr, "original", "rotate90_flip_vertical"),
        (arr[:, ::-1], "flip_horizontal", "rotate90"),
        (arr[::-1], "flip_vertical", "rotate270"),
        (arr[::-1, ::-1], "rotate180", "rotate90_flip_horizontal"),
    ):
        view = np.ascontiguousarray(view)
        found = _frequencies(view)
        if found is None:
            vectors, q = pdqhash.compute_dihedral(view)
            exact[name], exact[transposed] = vectors[0], vectors[6]
        else:
            exact[name] = frequency_bits(found[0])
            exact[transposed] = frequency_bits(found[0].T)
            q = found[1]
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
