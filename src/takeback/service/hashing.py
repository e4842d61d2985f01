"""Uploaded images: read into memory, hashed in worker processes, then dropped.

An upload is read from the request stream into memory (never a temporary
file: the multipart body is parsed here rather than by Starlette, which spools
file parts over 1 MB to disk), with its size checked while it arrives. The
bytes go to a worker process over a pipe, are fingerprinted through the
canonical pipeline (:func:`~takeback.imageio.pdq_pixels`, with the
:class:`~takeback.imageio.ImageLimits` of the settings) and only the
fingerprint comes back. Nothing is logged but the error code of a bad image.

The upload's own PDQ hash (``fingerprint.pdq``, the ``original`` variant) and
quality are exactly those of ``takeback hash`` (computed by the compiled PDQ
of :mod:`takeback.fingerprint._pdq_compiled`, which gives ``pdqhash``'s bits).
The 7 flipped and turned variants come from :func:`fast_variants`: one
``pdqhash.compute_dihedral`` on a :data:`VARIANT_SIZE`-pixel square of the
image's luminance, where PDQ's sampling grid is symmetric so that all 8
outputs are exact hashes of that square. They differ from the hashes of the
transformed full-size pixels (``pdq_from_pixels(..., dihedral=True)``, 4
hashes of the whole image, 3 times the CPU) by a few bits: median 4, at most
14-16 on 84 real 0.5-megapixel photos (docs/benchmarks.md, section 7), which
matching at distance 31 absorbs.

Workers are started with ``forkserver`` (``spawn`` off Linux): forking a
process that runs threads (replicas, database connections) is unsafe.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import threading
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Final

import numpy as np
import pdqhash
from PIL import Image
from python_multipart.multipart import MultipartParser, parse_options_header

from .. import errors
from ..errors import ImageTooLargeError, TakeBackError
from ..fingerprint.pdq import pdq_from_pixels, use_compiled
from ..fingerprint.types import Fingerprint, PdqHash
from ..imageio import ImageLimits, pdq_pixels
from .errors import ApiError

__all__ = [
    "UPLOAD_FIELD",
    "VARIANT_SIZE",
    "UploadHasher",
    "fast_variants",
    "fingerprint_upload",
    "read_upload",
]

#: Name of the multipart field that carries the image.
UPLOAD_FIELD: Final = "file"
#: Side of the square the variants are hashed from: PDQ samples a side of 64·k
#: pixels symmetrically when k and its filter window ceil(side / 128) are odd
#: (64, 320, 576...), which makes all 8 outputs of ``compute_dihedral`` exact.
VARIANT_SIZE: Final = 320
_RAW_TYPES: Final = ("application/octet-stream", "image/")


def fast_variants(pixels: np.ndarray) -> list[PdqHash]:
    """The 8 dihedral PDQ hashes of an image from one DCT, in ``DIHEDRAL_VARIANTS`` order.

    The ``(M, N, 3)`` uint8 RGB image is reduced to its luminance (ITU-R 601,
    PDQ's own weights) on a :data:`VARIANT_SIZE` square (bilinear, antialiased:
    the same in every orientation), then hashed once with
    ``pdqhash.compute_dihedral``; each hash is exactly the PDQ of the square
    flipped or turned.
    """
    square = Image.fromarray(pixels).convert("L")
    square = square.resize((VARIANT_SIZE, VARIANT_SIZE), Image.Resampling.BILINEAR)
    luma = np.asarray(square)
    vectors, _ = pdqhash.compute_dihedral(np.ascontiguousarray(np.stack([luma] * 3, axis=2)))
    return [PdqHash.from_bits(v) for v in vectors]


def fingerprint_upload(data: bytes, limits: ImageLimits, *, variants: bool = True) -> Fingerprint:
    """An upload's fingerprint: exact PDQ and digests, and (if asked) :func:`fast_variants`."""
    canonical = pdq_pixels(data, name="the upload", limits=limits)
    [pdq], quality = pdq_from_pixels(canonical.pixels)
    turned = (pdq, *fast_variants(canonical.pixels)[1:]) if variants else ()
    return Fingerprint(
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        pdq=pdq,
        quality=quality,
        width=canonical.width,
        height=canonical.height,
        variants=turned,
    )


def _fingerprint_job(
    data: bytes, limits: ImageLimits, variants: bool
) -> tuple[Fingerprint | None, tuple[str, str] | None]:
    """Runs in a worker: the fingerprint (with its 8 variants if asked), or the error's parts."""
    try:
        return fingerprint_upload(data, limits, variants=variants), None
    except TakeBackError as exc:
        # Exceptions with keyword-only fields do not pickle faithfully: send the parts.
        return None, (type(exc).__name__, exc.message)


def _start_worker() -> None:
    """Runs as a worker starts: it lives for many uploads, so PDQ hashes with the
    compiled code (the same bits as ``pdqhash``, ~5 ms less per 0.5-MP upload)."""
    use_compiled()


def _warm_job() -> int:
    """Runs in a worker: imports are done and the compiled PDQ is loaded (~0.7 s,
    not on the first upload); returns the worker's pid."""
    pdq_from_pixels(np.full((96, 96, 3), 128, np.uint8))
    return os.getpid()


def _rebuild_error(parts: tuple[str, str]) -> TakeBackError:
    cls = getattr(errors, parts[0], TakeBackError)
    if not (isinstance(cls, type) and issubclass(cls, TakeBackError)):
        cls = TakeBackError
    return cls(parts[1])


class UploadHasher:
    """A pool of worker processes that fingerprint uploads.

    Parameters
    ----------
    workers : int
        Processes.
    queue : int
        Uploads in progress or waiting, per worker, before ``503 busy``.
    limits : ImageLimits
    """

    def __init__(self, workers: int, queue: int, limits: ImageLimits) -> None:
        self.workers = workers
        self.limits = limits
        self._slots = workers * queue
        self._in_flight = 0
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _get_pool(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._closed:
                raise ApiError(503, "busy", "the service is stopping", headers={"Retry-After": "1"})
            if self._pool is None:
                method = (
                    "forkserver"
                    if "forkserver" in multiprocessing.get_all_start_methods()
                    else "spawn"
                )
                self._pool = ProcessPoolExecutor(
                    self.workers,
                    mp_context=multiprocessing.get_context(method),
                    initializer=_start_worker,
                )
            return self._pool

    def warm_up(self) -> None:
        """Start the workers now (in the background) rather than on the first upload."""
        if self._closed:
            return
        pool = self._get_pool()
        for _ in range(self.workers):
            pool.submit(_warm_job)

    async def fingerprint(self, data: bytes, *, variants: bool = True) -> Fingerprint:
        """Fingerprint an image held in memory, in a worker process
        (:func:`fingerprint_upload`; ``variants``: with the 8 dihedral hashes).

        Raises
        ------
        TakeBackError
            The image cannot be used (its :mod:`takeback.errors` class and message).
        ApiError
            ``503 busy`` when too many uploads are in progress, or when a worker died.
        """
        with self._lock:
            if self._in_flight >= self._slots:
                raise ApiError(
                    503,
                    "busy",
                    "too many images are being hashed; try again shortly",
                    headers={"Retry-After": "1"},
                )
            self._in_flight += 1
        try:
            pool = self._get_pool()
            loop = asyncio.get_running_loop()
            try:
                fp, error = await loop.run_in_executor(
                    pool, _fingerprint_job, data, self.limits, variants
                )
            except BrokenProcessPool:
                self._reset(pool)
                raise ApiError(
                    503,
                    "busy",
                    "an image worker stopped while hashing; try again",
                    headers={"Retry-After": "1"},
                ) from None
        finally:
            with self._lock:
                self._in_flight -= 1
        if error is not None:
            raise _rebuild_error(error)
        if fp is None:  # pragma: no cover - the job returns one or the other
            raise TakeBackError("the image worker returned nothing")
        return fp

    def _reset(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the workers; idempotent."""
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


class _FileField:
    """Callbacks of :class:`MultipartParser` that keep one field's bytes in memory."""

    def __init__(self, field: bytes, max_bytes: int, too_large: TakeBackError) -> None:
        self.field, self.max_bytes, self.too_large = field, max_bytes, too_large
        self.data = bytearray()
        self.found = False
        self._name = b""
        self._header = b""
        self._value = b""
        self._inside = False

    def callbacks(self) -> Any:
        return {
            "on_part_begin": self._part_begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": self._headers_finished,
            "on_part_data": self._part_data,
            "on_part_end": self._part_end,
        }

    def _part_begin(self) -> None:
        self._name = b""

    def _header_field(self, buf: bytes, start: int, end: int) -> None:
        self._header += buf[start:end]

    def _header_value(self, buf: bytes, start: int, end: int) -> None:
        self._value += buf[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            _, opts = parse_options_header(self._value)
            self._name = opts.get(b"name", b"")
        self._header = self._value = b""

    def _headers_finished(self) -> None:
        self._inside = self._name == self.field and not self.found
        self.found = self.found or self._inside

    def _part_data(self, buf: bytes, start: int, end: int) -> None:
        if self._inside:
            self.data += buf[start:end]
            if len(self.data) > self.max_bytes:
                raise self.too_large

    def _part_end(self) -> None:
        self._inside = False


async def read_upload(
    content_type: str | None, stream: AsyncIterator[bytes], *, max_bytes: int
) -> bytes:
    """The image bytes of an upload: a ``multipart/form-data`` field named ``file``,
    or a raw body (``application/octet-stream`` or ``image/*``).

    Raises
    ------
    ImageTooLargeError
        Over ``max_bytes`` (checked while reading).
    ApiError
        ``415`` for another content type, ``422`` for a form without the field.
    """
    media, options = parse_options_header(content_type or "")
    kind = media.decode("latin-1").lower()
    too_large = ImageTooLargeError(
        f"the upload is over the {max_bytes:,}-byte limit; send a smaller image"
    )
    if kind.startswith(_RAW_TYPES):
        raw = bytearray()
        async for chunk in stream:
            raw += chunk
            if len(raw) > max_bytes:
                raise too_large
        return bytes(raw)
    if kind != "multipart/form-data" or b"boundary" not in options:
        raise ApiError(
            415,
            "unsupported_media",
            f"send the image as multipart/form-data (field {UPLOAD_FIELD!r}) or as "
            "application/octet-stream",
        )

    form = _FileField(UPLOAD_FIELD.encode("ascii"), max_bytes, too_large)
    parser = MultipartParser(options[b"boundary"], form.callbacks())
    try:
        async for chunk in stream:
            parser.write(chunk)
        parser.finalize()
    except TakeBackError:
        raise
    except ValueError as exc:  # python_multipart's MultipartParseError is a ValueError
        raise ApiError(422, "invalid_request", f"malformed multipart body ({exc})") from None
    if not form.found:
        raise ApiError(422, "invalid_request", f"the form has no file field named {UPLOAD_FIELD!r}")
    return bytes(form.data)
