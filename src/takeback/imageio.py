"""The one way images come into TakeBack.

Every caller that needs pixels (fingerprinting, matching, the service, the
examiner) goes through this module, so a photo hashed on a person's device, on
a platform's server and by a partner gives the same result.

Input is treated as hostile: the file size is checked before reading, the
declared pixel count before decoding (decompression bombs), and every decoder
error is translated into a :class:`~takeback.errors.ImageError` that names the
file and says what to do.

Supported: JPEG, PNG, WebP, TIFF, GIF (first frame), BMP, HEIC/HEIF (via
``pillow-heif``). EXIF orientation is applied; transparency is flattened on
white; palette, CMYK, 16-bit and grey-with-alpha images are converted to 8-bit
RGB.

The canonical PDQ pipeline
--------------------------
:func:`pdq_pixels` fixes how an image becomes the array handed to ``pdqhash``:

1. read the bytes (size limit), open with Pillow (pixel limit);
2. for JPEG, DCT-domain draft decode (``Image.draft``) to the smallest scale
   (1/1, 1/2, 1/4 or 1/8) that keeps both sides at least
   :data:`PDQ_WORKING_SIZE` pixels;
3. apply the EXIF orientation; convert the mode to RGB (flatten alpha on white);
4. if the shorter side is still at least twice :data:`PDQ_WORKING_SIZE`, shrink
   by the largest whole factor that keeps it at least that (``Image.reduce``: a
   box average over k x k blocks). A fractional resize to a fixed size moved the
   hash by up to 26 bits from full-resolution PDQ on real photos, because PDQ's
   own filter window is a whole number of pixels (ceil(side / 128)); whole
   factors, like the DCT-domain draft, keep it in step (``docs/benchmarks.md``);
5. ``pdqhash.compute`` on the ``(M, N, 3)`` uint8 array.

PDQ itself reduces the image to 64 x 64 with tent filters, so steps 2 and 4
change the hash by a few bits only (measured in ``docs/benchmarks.md``) while
making a 12-megapixel JPEG an order of magnitude cheaper to hash.
"""

from __future__ import annotations

import io
import os
import stat
import threading
import warnings
from dataclasses import dataclass
from struct import error as struct_error
from typing import Final, NamedTuple

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptImageError,
    FileAccessError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
)

__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "DEFAULT_MAX_PIXELS",
    "MIN_SIDE",
    "PDQ_WORKING_SIZE",
    "ImageLimits",
    "PdqInput",
    "load_rgb",
    "open_image",
    "pdq_pixels",
    "read_bytes",
]

#: Shortest side, in pixels, that steps 2 and 4 above keep (when the image has it).
PDQ_WORKING_SIZE: Final = 512
#: Default limit on the decoded pixel count (width x height): 120 megapixels.
DEFAULT_MAX_PIXELS: Final = 120_000_000
#: Default limit on the size of an image file: 200 MiB.
DEFAULT_MAX_FILE_BYTES: Final = 200 * 1024 * 1024
#: Shortest side, in pixels, an image must have to be fingerprinted.
MIN_SIDE: Final = 64

# Pillow refuses outright above twice this; our own limit is checked first.
_PILLOW_HARD_LIMIT: Final = 2 * (Image.MAX_IMAGE_PIXELS or 89_478_485)

_heif_lock = threading.Lock()
_heif_registered = False


@dataclass(frozen=True, slots=True)
class ImageLimits:
    """Limits applied to every image before it is decoded.

    Parameters
    ----------
    max_pixels : int
        Largest accepted width x height, as declared in the file header.
    max_file_bytes : int
        Largest accepted file size in bytes.

    Examples
    --------
    >>> ImageLimits.from_env({"TAKEBACK_MAX_PIXELS": "1000000"}).max_pixels
    1000000
    """

    max_pixels: int = DEFAULT_MAX_PIXELS
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES

    def __post_init__(self) -> None:
        if self.max_pixels < MIN_SIDE * MIN_SIDE:
            raise ValueError(f"max_pixels must be at least {MIN_SIDE * MIN_SIDE}")
        if self.max_pixels > _PILLOW_HARD_LIMIT:
            raise ValueError(f"max_pixels can be at most {_PILLOW_HARD_LIMIT}")
        if self.max_file_bytes < 1:
            raise ValueError("max_file_bytes must be positive")

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> ImageLimits:
        """Limits from ``TAKEBACK_MAX_PIXELS`` and ``TAKEBACK_MAX_FILE_BYTES``."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, int] = {}
        for field, var in (
            ("max_pixels", "TAKEBACK_MAX_PIXELS"),
            ("max_file_bytes", "TAKEBACK_MAX_FILE_BYTES"),
        ):
            raw = env.get(var)
            if raw:
                try:
                    kwargs[field] = int(raw)
                except ValueError:
                    raise ValueError(f"{var} must be a whole number, not {raw!r}") from None
        return cls(**kwargs)


def _register_heif() -> None:
    global _heif_registered
    with _heif_lock:
        if not _heif_registered:
            import pillow_heif

            pillow_heif.register_heif_opener()
            _heif_registered = True


def read_bytes(path: str | os.PathLike[str], limits: ImageLimits | None = None) -> bytes:
    """Read a file's bytes, refusing what is not a readable regular file or is too large.

    Raises
    ------
    FileAccessError
        The file is missing, unreadable, a directory or otherwise not a regular file.
    ImageTooLargeError
        The file is larger than ``limits.max_file_bytes``.
    """
    limits = limits or ImageLimits()
    name = os.fspath(path)
    try:
        info = os.stat(name)
    except FileNotFoundError as exc:
        raise FileAccessError(f"{name}: no such file", path=name) from exc
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot be read ({exc.strerror})", path=name) from exc
    if stat.S_ISDIR(info.st_mode):
        raise FileAccessError(f"{name} is a directory, not an image file", path=name)
    if not stat.S_ISREG(info.st_mode):
        raise FileAccessError(f"{name} is not a regular file", path=name)
    if info.st_size > limits.max_file_bytes:
        raise ImageTooLargeError(
            f"{name} is {info.st_size:,} bytes; the limit is {limits.max_file_bytes:,} "
            "(raise TAKEBACK_MAX_FILE_BYTES if the file is genuine)",
            path=name,
        )
    try:
        with open(name, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except PermissionError as exc:
        raise FileAccessError(
            f"{name}: permission denied; check the file's permissions", path=name
        ) from exc
    except OSError as exc:
        raise FileAccessError(f"{name}: cannot be read ({exc.strerror})", path=name) from exc
    if len(data) > limits.max_file_bytes:
        raise ImageTooLargeError(
            f"{name} grew past the {limits.max_file_bytes:,}-byte limit while being read",
            path=name,
        )
    return data


class PdqInput(NamedTuple):
    """The canonical PDQ input and the size of the full-resolution oriented image."""

    pixels: np.ndarray
    width: int
    height: int


def open_image(
    data: bytes,
    *,
    name: str = "<image>",
    limits: ImageLimits | None = None,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode image bytes into an oriented 8-bit RGB Pillow image.

    Parameters
    ----------
    data : bytes
        The encoded file.
    name : str
        Used in error messages (usually the file's path).
    limits : ImageLimits, optional
        Size limits; defaults to :class:`ImageLimits()`.
    draft_size : int, optional
        For JPEG, decode in the DCT domain at the smallest scale that keeps both
        sides at least this many pixels (before orientation).

    Returns
    -------
    PIL.Image.Image
        Mode ``"RGB"``, EXIF orientation applied, transparency flattened on white.

    Raises
    ------
    NotAnImageError, CorruptImageError, ImageTooLargeError, ImageTooSmallError
    """
    return _decode(data, name, limits or ImageLimits(), draft_size)[0]


def _decode(
    data: bytes, name: str, limits: ImageLimits, draft_size: int | None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode to RGB; also return the full-resolution size after orientation."""
    if not data:
        raise NotAnImageError(f"{name} is empty (0 bytes); it is not an image", path=name)
    if len(data) > limits.max_file_bytes:
        raise ImageTooLargeError(
            f"{name} is {len(data):,} bytes; the limit is {limits.max_file_bytes:,}", path=name
        )
    if data[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypmsf1", b"ftyphevc", b"ftypavif"):
        _register_heif()
    with warnings.catch_warnings():
        # Our own limits replace Pillow's bomb warning; Pillow's warnings about
        # damaged metadata (e.g. "Corrupt EXIF data") are not errors of the pixels.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")
        return _decode_quietly(data, name, limits, draft_size)


def _decode_quietly(
    data: bytes, name: str, limits: ImageLimits, draft_size: int | None
) -> tuple[Image.Image, tuple[int, int]]:
    try:
        img: Image.Image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(name, None, limits) from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError(
            f"{name} is not an image TakeBack can read "
            "(JPEG, PNG, WebP, TIFF, GIF, BMP or HEIC expected)",
            path=name,
        ) from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise CorruptImageError(
            f"{name} is damaged and cannot be decoded ({exc})", path=name
        ) from exc

    try:
        width, height = img.size
        if width * height > limits.max_pixels:
            raise _too_many_pixels(name, (width, height), limits)
        if min(width, height) < MIN_SIDE:
            raise ImageTooSmallError(
                f"{name} is {width}x{height} px; fingerprinting needs at least "
                f"{MIN_SIDE} px on the short side",
                path=name,
            )
        try:
            orientation = int(img.getexif().get(0x0112, 1))
        except (OSError, ValueError, TypeError, SyntaxError):  # damaged EXIF: ignore it
            orientation = 1
        full_size = (height, width) if orientation in (5, 6, 7, 8) else (width, height)
        if draft_size is not None and img.format == "JPEG":
            img.draft("RGB", (draft_size, draft_size))
        img.load()
        if orientation != 1:  # (exif_transpose copies the pixels even when upright)
            img = ImageOps.exif_transpose(img) or img
        img = _to_rgb(img)
    except (ImageTooLargeError, ImageTooSmallError):
        raise
    except Image.DecompressionBombError as exc:
        raise _too_many_pixels(name, None, limits) from exc
    except (OSError, SyntaxError, ValueError, EOFError, struct_error, IndexError) as exc:
        raise CorruptImageError(
            f"{name} is truncated or damaged and cannot be decoded ({exc}); try the original file",
            path=name,
        ) from exc
    except MemoryError as exc:
        raise ImageTooLargeError(
            f"{name} needs more memory to decode than is free", path=name
        ) from exc
    return img, full_size


def _too_many_pixels(
    name: str, size: tuple[int, int] | None, limits: ImageLimits
) -> ImageTooLargeError:
    declared = f"declares {size[0]:,}x{size[1]:,} pixels" if size else "declares too many pixels"
    return ImageTooLargeError(
        f"{name} {declared}; the limit is {limits.max_pixels:,} pixels "
        "(a decompression bomb, or raise TAKEBACK_MAX_PIXELS if the photo is genuine)",
        path=name,
    )


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any Pillow mode to 8-bit RGB, flattening transparency on white."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if arr.max(initial=0) > 255 else 255.0
        grey = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(grey, "L").convert("RGB")
    has_alpha = (
        mode in ("RGBA", "LA", "PA", "RGBa", "La")
        or (mode == "P" and "transparency" in img.info)
        or (mode in ("L", "RGB") and "transparency" in img.info)
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def load_rgb(
    source: str | os.PathLike[str] | bytes,
    *,
    limits: ImageLimits | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Load an image as an ``(M, N, 3)`` uint8 RGB array at full resolution.

    Parameters
    ----------
    source : path or bytes
        A file path, or the encoded bytes of an image.
    limits : ImageLimits, optional
    name : str, optional
        Name used in error messages when ``source`` is bytes.

    Examples
    --------
    >>> from skimage import data_dir
    >>> load_rgb(Path(data_dir) / "astronaut.png").shape
    (512, 512, 3)
    """
    if isinstance(source, bytes):
        data, label = source, name or "<image>"
    else:
        data, label = read_bytes(source, limits), os.fspath(source)
    return np.asarray(open_image(data, name=label, limits=limits))


def pdq_pixels(
    data: bytes, *, name: str = "<image>", limits: ImageLimits | None = None
) -> PdqInput:
    """The canonical PDQ input: an ``(M, N, 3)`` uint8 array, shorter side under 1024.

    This is the single pipeline every PDQ hash in TakeBack is computed from (see
    the module documentation): draft decode, orientation, RGB, whole-factor box
    reduction.
    Also returns the width and height of the full-resolution oriented image.
    """
    img, (full_w, full_h) = _decode(data, name, limits or ImageLimits(), PDQ_WORKING_SIZE)
    factor = min(img.size) // PDQ_WORKING_SIZE
    if factor >= 2:
        img = img.reduce(factor)
    return PdqInput(np.asarray(img), full_w, full_h)
