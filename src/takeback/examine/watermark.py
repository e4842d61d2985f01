"""Invisible watermarks of image generators: the DWT-DCT mark of ``invisible-watermark``.

Stable Diffusion's reference scripts (1.x, 2.x), Stability's SDXL code, the
``diffusers`` SDXL pipelines and Black Forest Labs' FLUX reference code hide a
fixed payload in every picture they make, with method ``"dwtDct"`` of
``invisible-watermark`` 0.2.0 (``imwatermark/maxDct.py``). This module reads
that mark with numpy and OpenCV only (no torch, no ``imwatermark`` import).

The algorithm, as the reference implements it:

1. convert BGR to YUV (OpenCV) and keep the U channel, cropped to a multiple of 4;
2. one level of the Haar wavelet transform; keep the approximation band ``cA``
   (``pywt.dwt2(u, "haar")[0]``: each value is half the sum of a 2 x 2 pixel block);
3. cut ``cA`` into 4 x 4 blocks, row by row; block ``k`` carries payload bit
   ``k mod n``;
4. in each block take the coefficient of largest magnitude, excluding the
   top-left one; the block reads 1 when ``|value| mod 36 > 18`` (the encoder
   moves it to ``9`` for a 0 and ``27`` for a 1, modulo 36);
5. a payload bit is 1 when more than 127/255 of its blocks read 1.

Despite the name, the reference applies no DCT in this method: the "coefficient"
is a Haar approximation value, half the integer sum ``S`` of four U values, so
:func:`block_scores` works on exact integer sums (a block reads 1 when
``S mod 72 > 36``). Only where the reference's floating-point rounding could
tip a reading (the chosen ``S`` a multiple of 36, exactly on a boundary) is the
block recomputed with PyWavelets' own operations (products ``h * x`` of the
filter tap ``h = 1/sqrt(2)``, summed pairwise). :func:`decode_bits` therefore
gives the reference decoder's bits exactly, ties and all; ``tests/test_marks.py``
checks this against the installed reference.

Two lattices
------------
The reference encoder quantizes whatever U values it is given. SD 1.x and 2.x
scripts pass 8-bit pixels, whose U channel is offset by 128 (the
``"reference"`` lattice, which the reference decoder reads). The SDXL and FLUX
reference code passes ``float32`` pixels in 0-255, for which OpenCV offsets U
by 0.5 instead: after the picture is saved as 8-bit, every Haar value is shifted
by ``2 x 127.5 = 255`` from where the encoder put it, and the mark of a block
with a negative U value reads inverted. The ``"float"`` lattice undoes that shift
(``|cA - 255|``) and reads those marks as they were written. SDXL and FLUX are
checked on both lattices, SD 1.x and 2.x on the reference lattice only; the
number of looks enters the ``p_value`` of each payload.

Thresholds
----------
An unmarked picture agrees with an ``n``-bit payload on about ``n/2`` bits, as
``Binomial(n, 1/2)``. For SDXL's 48 bits, 34 agreeing bits are "likely" and 36
"very likely" (chance per look 0.28 % and 0.036 %); the other lengths use the
smallest count whose binomial tail is no larger (see :data:`PAYLOADS` and
``docs/marks.md``).

Scale
-----
The mark lives on the exact pixel grid it was written on: any resampling,
a crop that is not a multiple of 8 pixels from the top-left corner, or 4:2:0
JPEG destroys it. So the image is read once, at its own size, whatever that
size (generators write at most about 2048 px; a larger picture was either
upscaled, which kills the mark, or never marked). Reading is linear in the pixel
count: about 40-60 ms for 12 megapixels on one core (``docs/marks.md``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from math import comb
from typing import Any, Final

import cv2
import numpy as np

__all__ = [
    "BLOCK",
    "METHOD",
    "MIN_PIXELS",
    "PAYLOADS",
    "P_LIKELY",
    "P_VERY_LIKELY",
    "SCALE",
    "Lattice",
    "WatermarkLevel",
    "WatermarkMatch",
    "WatermarkPayload",
    "WatermarkScan",
    "binomial_tail",
    "block_scores",
    "decode_bits",
    "decode_watermarks",
    "threshold_for",
]

#: What is decoded, for reports.
METHOD: Final = "invisible-watermark 0.2.0 dwtDct (Haar cA of U, 4x4 blocks, scale 36)"
#: The reference refuses pictures with fewer pixels than this (256 x 256).
MIN_PIXELS: Final = 256 * 256
#: Quantization step of the reference (``scales=[0, 36, 36]``: U channel only).
SCALE: Final = 36
#: Side of a ``cA`` block; one block covers 8 x 8 pixels.
BLOCK: Final = 4
#: Chance per look (one payload, one lattice) that SDXL's "likely" threshold accepts
#: an unmarked picture: ``P(Binomial(48, 1/2) >= 34)``.
P_LIKELY: Final = 0.0027576007427505544
#: The same for "very likely": ``P(Binomial(48, 1/2) >= 36)``.
P_VERY_LIKELY: Final = 0.00035863483669729135

# PyWavelets' Haar analysis filter tap, exactly as ``pywt.Wavelet("haar").dec_lo``.
_HAAR: Final = 0.7071067811865476
# h * x for every 8-bit value: the first Haar stage as a table lookup.
_HAAR_LUT: Final = _HAAR * np.arange(256, dtype=np.float64)
# Shift of cA between 8-bit U (offset 128) and float U (offset 0.5): 2 x 127.5.
_FLOAT_SHIFT: Final = 255.0
# Block rows handled at once: keeps the working set in cache.
_STRIP: Final = 32


class Lattice(enum.StrEnum):
    """Which quantization grid a payload is read on (see the module documentation)."""

    REFERENCE = "reference"
    FLOAT = "float"


class WatermarkLevel(enum.StrEnum):
    """How strongly a payload's bit agreement says the mark is there."""

    VERY_LIKELY = "very_likely"
    LIKELY = "likely"
    NOT_FOUND = "not_found"


def _bits_of_bytes(data: bytes) -> tuple[int, ...]:
    return tuple(int(b) for b in np.unpackbits(np.frombuffer(data, dtype=np.uint8)))


def _bits_of_int(value: int) -> tuple[int, ...]:
    # As the reference code does: bin(x)[2:], which drops leading zeros.
    return tuple(int(c) for c in bin(value)[2:])


@dataclass(frozen=True, slots=True)
class WatermarkPayload:
    """A known payload and the agreement it takes to report it.

    Attributes
    ----------
    name : str
        Short stable name: ``"sd1"``, ``"sd2"``, ``"sdxl"``, ``"flux"``.
    generator : str
        The software that writes it, in plain words.
    bits : tuple of int
        The payload, most significant bit first, as the encoder receives it.
    lattices : tuple of Lattice
        Lattices it is read on (each one is a look).
    likely, very_likely : int
        Smallest bit agreement reported as "likely" and "very likely".
    source : str
        Where the payload is defined.
    """

    name: str
    generator: str
    bits: tuple[int, ...]
    lattices: tuple[Lattice, ...]
    likely: int
    very_likely: int
    source: str

    @property
    def length(self) -> int:
        """Number of bits."""
        return len(self.bits)


#: The payloads checked, with thresholds derived from :data:`P_LIKELY` and
#: :data:`P_VERY_LIKELY` by :func:`threshold_for` (a test keeps them in step).
PAYLOADS: Final[tuple[WatermarkPayload, ...]] = (
    WatermarkPayload(
        name="sd1",
        generator="Stable Diffusion 1.x reference scripts",
        bits=_bits_of_bytes(b"StableDiffusionV1"),
        lattices=(Lattice.REFERENCE,),
        likely=85,
        very_likely=89,
        source='CompVis/stable-diffusion scripts/txt2img.py: bytes "StableDiffusionV1"',
    ),
    WatermarkPayload(
        name="sd2",
        generator="Stable Diffusion 2.x reference scripts",
        bits=_bits_of_bytes(b"SDV2"),
        lattices=(Lattice.REFERENCE,),
        likely=25,
        very_likely=26,
        source='Stability-AI/stablediffusion scripts/txt2img.py: bytes "SDV2"',
    ),
    WatermarkPayload(
        name="sdxl",
        generator="Stable Diffusion XL (Stability AI code, diffusers)",
        bits=_bits_of_int(0xB3EC907BB19E),
        lattices=(Lattice.REFERENCE, Lattice.FLOAT),
        likely=34,
        very_likely=36,
        source="Stability-AI/generative-models and diffusers: WATERMARK_MESSAGE 0xB3EC907BB19E",
    ),
    WatermarkPayload(
        name="flux",
        generator="FLUX.1 (Black Forest Labs reference code)",
        bits=_bits_of_int(0b001010101111111010000111100111001111010100101110),
        lattices=(Lattice.REFERENCE, Lattice.FLOAT),
        likely=33,
        very_likely=35,
        source="black-forest-labs/flux src/flux/util.py: WATERMARK_MESSAGE 0x2AFE879CF52E "
        "(46 bits: bin() drops the two leading zeros)",
    ),
)


def binomial_tail(n: int, k: int) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, 1/2)``: the chance of ``k`` agreeing bits.

    Examples
    --------
    >>> round(binomial_tail(48, 34), 5)
    0.00276
    """
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    return sum(comb(n, i) for i in range(k, n + 1)) / 2**n


def threshold_for(n: int, p: float) -> int:
    """Smallest agreement ``k`` whose chance :func:`binomial_tail` ``(n, k)`` is at most ``p``.

    Examples
    --------
    >>> threshold_for(48, P_LIKELY), threshold_for(32, P_LIKELY)
    (34, 25)
    """
    return next(k for k in range(n + 2) if binomial_tail(n, k) <= p)


@dataclass(frozen=True, slots=True)
class WatermarkMatch:
    """How well one payload agrees with what the picture carries.

    Attributes
    ----------
    payload : WatermarkPayload
    agreement : int
        Best bit agreement over the payload's lattices.
    lattice : Lattice
        The lattice that gave it.
    by_lattice : dict of str to int
        Agreement on each lattice read.
    level : WatermarkLevel
    p_value : float
        Chance that an unmarked picture agrees this well on some lattice:
        ``min(1, looks x binomial_tail(n, agreement))``.
    """

    payload: WatermarkPayload
    agreement: int
    lattice: Lattice
    by_lattice: dict[str, int]
    level: WatermarkLevel
    p_value: float

    @property
    def found(self) -> bool:
        """Whether the agreement reaches "likely"."""
        return self.level is not WatermarkLevel.NOT_FOUND

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``docs/marks.md``)."""
        return {
            "payload": self.payload.name,
            "generator": self.payload.generator,
            "bits": self.payload.length,
            "agreement": self.agreement,
            "lattice": self.lattice.value,
            "by_lattice": dict(self.by_lattice),
            "level": self.level.value,
            "thresholds": {
                "likely": self.payload.likely,
                "very_likely": self.payload.very_likely,
            },
            "p_value": float(f"{self.p_value:.3g}"),
        }


@dataclass(frozen=True, slots=True)
class WatermarkScan:
    """The result of :func:`decode_watermarks`.

    Attributes
    ----------
    checked : bool
        False when the picture is too small to carry the mark.
    reason : str or None
        Why it was not checked.
    width, height : int
        Size of the pixel grid read.
    matches : tuple of WatermarkMatch
        One per payload, in :data:`PAYLOADS` order (empty when not checked).
    """

    checked: bool
    width: int
    height: int
    matches: tuple[WatermarkMatch, ...] = ()
    reason: str | None = None

    @property
    def found(self) -> tuple[WatermarkMatch, ...]:
        """The matches at "likely" or above."""
        return tuple(m for m in self.matches if m.found)

    def to_dict(self) -> dict[str, Any]:
        """JSON form (see ``docs/marks.md``)."""
        return {
            "method": METHOD,
            "checked": self.checked,
            "reason": self.reason,
            "size": {"width": self.width, "height": self.height},
            "found": [m.payload.name for m in self.found],
            "payloads": [m.to_dict() for m in self.matches],
        }


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8:
        raise TypeError("expected a uint8 numpy array of shape (M, N, 3)")
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an RGB array of shape (M, N, 3), not {rgb.shape}")
    return np.ascontiguousarray(rgb)


def _extremes(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Largest and smallest of the 15 values after the top-left one of each 4 x 4 block."""
    high = grid[:, 0, :, 1].copy()
    low = high.copy()
    for i in range(BLOCK):
        for j in range(1 if i == 0 else 0, BLOCK):
            np.maximum(high, grid[:, i, :, j], out=high)
            np.minimum(low, grid[:, i, :, j], out=low)
    return high, low


def _reference_values(pixels: np.ndarray) -> np.ndarray:
    """The reference's chosen value for 8 x 8 pixel blocks ``(K, 8, 8)`` of U, in float64.

    Same operations as ``pywt.dwt2(x, "haar")[0]`` (along rows, then columns),
    then the largest of the 15 values after the top-left one.
    """
    pairs = _HAAR_LUT[pixels[:, 0::2, :]] + _HAAR_LUT[pixels[:, 1::2, :]]
    approx = _HAAR * pairs[:, :, 0::2] + _HAAR * pairs[:, :, 1::2]
    return np.asarray(approx.reshape(-1, BLOCK * BLOCK)[:, 1:].max(axis=1))


def block_scores(rgb: np.ndarray) -> dict[Lattice, np.ndarray]:
    """Read every 8 x 8-pixel block of a picture on both lattices.

    The Haar approximation of a 2 x 2 pixel block is half the sum ``S`` of its
    four U values, so the work is done on exact integer sums: a block reads 1
    when ``S mod 72 > 36``. Where PyWavelets' rounding could decide the reading
    (the chosen ``S`` a multiple of 36: exactly on a boundary), the block is
    recomputed with the reference's floating-point operations, so the
    reference lattice gives the reference decoder's reading in every block.

    Parameters
    ----------
    rgb : (M, N, 3) uint8 array
        The picture, RGB, at the size it was marked.

    Returns
    -------
    dict of Lattice to (B,) bool array
        Block scores in the reference's order (block rows top to bottom, each
        left to right), ``B = (M // 8) * (N // 8)``.

    Examples
    --------
    >>> scores = block_scores(np.zeros((64, 96, 3), np.uint8))
    >>> scores[Lattice.REFERENCE].shape
    (96,)
    """
    rgb = _check_rgb(rgb)
    u = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV)[:, :, 1]
    rows, cols = u.shape[0] // 8, u.shape[1] // 8
    out = {lattice: np.empty(rows * cols, dtype=bool) for lattice in Lattice}
    for top in range(0, rows, _STRIP):
        bottom = min(rows, top + _STRIP)
        strip = u[top * 8 : bottom * 8, : cols * 8]
        pairs = strip[0::2].astype(np.uint16) + strip[1::2]
        sums = pairs[:, 0::2] + pairs[:, 1::2]  # 2 x cA, exactly; at most 1020
        high, low = _extremes(sums.reshape(bottom - top, BLOCK, cols, BLOCK))
        where = slice(top * cols, bottom * cols)
        # Reference lattice: |cA| = cA (8-bit U is never negative); cA mod 36 > 18.
        reference = (high % (2 * SCALE)) > SCALE
        tied = np.flatnonzero(high % SCALE == 0)
        if tied.size:
            r, c = np.divmod(tied, cols)
            pixels = strip.reshape(bottom - top, 8, cols, 8)[r, :, c, :]
            reference.flat[tied] = (_reference_values(pixels) % SCALE) > 0.5 * SCALE
        out[Lattice.REFERENCE][where] = reference.ravel()
        # Float lattice: |cA - 255| mod 36 > 18, i.e. |S - 510| mod 72 > 36.
        shift = int(2 * _FLOAT_SHIFT)
        shifted = np.maximum(high.astype(np.int32) - shift, shift - low.astype(np.int32))
        out[Lattice.FLOAT][where] = ((shifted % (2 * SCALE)) > SCALE).ravel()
    return out


def _bits_from_scores(scores: np.ndarray, length: int) -> np.ndarray:
    """Majority of each payload bit's blocks (block ``k`` carries bit ``k mod length``)."""
    full, rest = divmod(scores.size, length)
    ones = np.zeros(length, dtype=np.int64)
    if full:
        ones += scores[: full * length].reshape(full, length).sum(axis=0, dtype=np.int64)
    ones[:rest] += scores[full * length :]
    counts = np.full(length, full, dtype=np.int64)
    counts[:rest] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = ones / counts
    # As the reference: np.mean of the 0/1 scores, then "* 255 > 127".
    return np.asarray(mean * 255 > 127)


def decode_bits(
    rgb: np.ndarray, length: int, *, lattice: Lattice = Lattice.REFERENCE
) -> np.ndarray:
    """Decode ``length`` bits as ``WatermarkDecoder("bits", length).decode(bgr, "dwtDct")`` does.

    Parameters
    ----------
    rgb : (M, N, 3) uint8 array
        RGB (the reference takes BGR; the channel order is handled here).
    length : int
        Payload length in bits.
    lattice : Lattice
        ``"reference"`` gives exactly the reference decoder's bits.

    Returns
    -------
    (length,) bool array
    """
    if length < 1:
        raise ValueError("length must be positive")
    return _bits_from_scores(block_scores(rgb)[lattice], length)


def _match(payload: WatermarkPayload, scores: dict[Lattice, np.ndarray]) -> WatermarkMatch:
    want = np.array(payload.bits, dtype=bool)
    by_lattice = {
        lattice: int(np.count_nonzero(_bits_from_scores(scores[lattice], payload.length) == want))
        for lattice in payload.lattices
    }
    lattice = max(payload.lattices, key=lambda la: by_lattice[la])
    agreement = by_lattice[lattice]
    if agreement >= payload.very_likely:
        level = WatermarkLevel.VERY_LIKELY
    elif agreement >= payload.likely:
        level = WatermarkLevel.LIKELY
    else:
        level = WatermarkLevel.NOT_FOUND
    p_value = min(1.0, len(payload.lattices) * binomial_tail(payload.length, agreement))
    return WatermarkMatch(
        payload=payload,
        agreement=agreement,
        lattice=lattice,
        by_lattice={la.value: n for la, n in by_lattice.items()},
        level=level,
        p_value=p_value,
    )


def decode_watermarks(
    rgb: np.ndarray, *, payloads: tuple[WatermarkPayload, ...] = PAYLOADS
) -> WatermarkScan:
    """Look for every known DWT-DCT payload in a picture.

    The picture is read once, at its own size; every payload is matched
    against the same block scores.

    Parameters
    ----------
    rgb : (M, N, 3) uint8 array
        The picture as decoded (EXIF orientation applied), RGB.
    payloads : tuple of WatermarkPayload
        What to look for; default :data:`PAYLOADS`.

    Returns
    -------
    WatermarkScan
        ``checked`` is False (with a ``reason``) for pictures under 256 x 256
        pixels, which the reference neither marks nor reads.

    Raises
    ------
    TypeError, ValueError
        ``rgb`` is not an ``(M, N, 3)`` uint8 array (a programming error).

    Examples
    --------
    >>> from skimage.data import astronaut
    >>> scan = decode_watermarks(astronaut())
    >>> scan.checked, scan.found
    (True, ())
    """
    rgb = _check_rgb(rgb)
    height, width = rgb.shape[:2]
    if height * width < MIN_PIXELS:
        return WatermarkScan(
            checked=False,
            width=width,
            height=height,
            reason=f"{width}x{height} px is under 256x256 px, too small to carry the mark",
        )
    blocks = (height // 8) * (width // 8)
    longest = max((p.length for p in payloads), default=0)
    if blocks < longest:
        return WatermarkScan(
            checked=False,
            width=width,
            height=height,
            reason=f"{width}x{height} px has {blocks} 8x8 blocks, fewer than the "
            f"{longest} payload bits",
        )
    scores = block_scores(rgb)
    return WatermarkScan(
        checked=True,
        width=width,
        height=height,
        matches=tuple(_match(p, scores) for p in payloads),
    )
