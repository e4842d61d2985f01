"""Fingerprinting many files, on all cores, in input order.

Registration (``takeback bank add``) computes two fingerprints per photo from
one decode (:func:`fingerprint_for_bank`): PDQ and, unless the photo is
registered PDQ-only, the derivative fingerprint
(:mod:`takeback.fingerprint.derivative`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from .. import errors
from ..errors import TakeBackError
from ..imageio import ImageLimits, pdq_pixels, read_bytes
from .pdq import fingerprint_canonical, fingerprint_file, use_compiled
from .types import Fingerprint

if TYPE_CHECKING:
    from .derivative import DerivativeFingerprint

__all__ = ["BatchItem", "default_jobs", "fingerprint_for_bank", "fingerprint_paths"]

# Below this many files a worker pool costs more than it saves.
_POOL_MIN_FILES: Final = 4
# From this many files per process, loading the compiled PDQ (~0.65 s) pays for
# itself: ~4.5 ms saved per photo hashed once (bank add, hash; docs/benchmarks.md,
# section 5), ~23 ms per suspect hashed with its 8 dihedral variants (match).
_COMPILED_MIN_FILES: Final = 150
_COMPILED_MIN_FILES_WITH_VARIANTS: Final = 64

# An error crosses the process boundary as (class name, message, path).
_Parts = tuple[str, str, str | None]
_Result = tuple[str, Fingerprint | None, _Parts | None, bytes | None, _Parts | None]


@dataclass(frozen=True, slots=True)
class BatchItem:
    """The outcome for one path: fingerprints or the error that prevented them.

    Attributes
    ----------
    path : str
    fingerprint : Fingerprint or None
        None when the file could not be fingerprinted at all (``error`` says why).
    error : TakeBackError or None
    derivative : DerivativeFingerprint or None
        Only when asked for (``fingerprint_paths(..., derivative=True)``) and
        the photo has enough detail.
    derivative_error : TakeBackError or None
        Why there is no derivative fingerprint although one was asked for
        (usually ``TooLittleDetailError``, code ``too_little_detail``); the
        PDQ fingerprint is still there.
    """

    path: str
    fingerprint: Fingerprint | None = None
    error: TakeBackError | None = None
    derivative: DerivativeFingerprint | None = None
    derivative_error: TakeBackError | None = None


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def fingerprint_for_bank(
    path: str | os.PathLike[str], *, limits: ImageLimits | None = None, variants: bool = False
) -> tuple[Fingerprint, DerivativeFingerprint | None, TakeBackError | None]:
    """A photo's PDQ fingerprint and derivative fingerprint, from one decode.

    The derivative fingerprint is computed from the canonical PDQ pixels
    (:func:`takeback.imageio.pdq_pixels`: for a JPEG the DCT-domain draft
    decode, then a whole-factor reduction that keeps the shorter side at least
    512 px), not from a second, full-resolution decode: extraction works at 640
    px on the longer side anyway. On the held-out edit suite (268 doctored and
    reposted copies of 67 photos) both ways verified the same copies (221 and
    220), with originals fingerprinted in 50 instead of 81 ms. The
    fingerprint's ``width`` and ``height`` are therefore those of the canonical
    pixels; ``Fingerprint.width`` and ``height`` (and the bank entry) keep the
    full-resolution size, and :class:`~takeback.bank.matcher.Matcher` reports
    derivative matrices in the full-resolution frame.

    Parameters
    ----------
    path : str or os.PathLike
    limits : ImageLimits, optional
        Bounds file size and pixel count (time and memory per photo).
    variants : bool
        Also compute the 8 dihedral PDQ hashes.

    Returns
    -------
    (Fingerprint, DerivativeFingerprint or None, TakeBackError or None)
        The third item says why there is no derivative fingerprint (too little
        detail: a flat, blank or very blurred image).

    Raises
    ------
    takeback.errors.ImageError
        The file is not a usable image (nothing can be registered).

    Examples
    --------
    >>> from takeback.samples import sample_photo
    >>> fp, derivative, why = fingerprint_for_bank(sample_photo("astronaut.png"))
    >>> fp.width, derivative is not None, why
    (512, True, None)
    """
    from .derivative import DerivativeError, derivative_from_pixels

    name = os.fspath(path)
    data = read_bytes(path, limits)
    canonical = pdq_pixels(data, name=name, limits=limits)
    fp = fingerprint_canonical(data, canonical, variants=variants)
    try:
        return fp, derivative_from_pixels(canonical.pixels, size=(fp.width, fp.height)), None
    except DerivativeError as exc:
        return fp, None, exc


def _parts(exc: TakeBackError) -> _Parts:
    # Exceptions with keyword-only fields do not pickle faithfully: send the parts.
    return (type(exc).__name__, exc.message, exc.path)


def _work(args: tuple[str, ImageLimits, bool, bool]) -> _Result:
    path, limits, variants, derivative = args
    try:
        if not derivative:
            return path, fingerprint_file(path, limits=limits, variants=variants), None, None, None
        fp, der, why = fingerprint_for_bank(path, limits=limits, variants=variants)
    except TakeBackError as exc:
        return path, None, _parts(exc), None, None
    blob = None if der is None else der.to_bytes()
    return path, fp, None, blob, None if why is None else _parts(why)


def _one_thread(compiled: bool) -> None:
    """In a worker of a pool that has a process per core, OpenCV and BLAS use one
    thread; with ``compiled``, PDQ hashes through the compiled code (:func:`use_compiled`).
    """
    import cv2

    from ..threads import limit_blas_threads

    cv2.setNumThreads(1)
    limit_blas_threads()
    use_compiled(compiled)


def _rebuild(path: str, parts: _Parts) -> TakeBackError:
    name, message, where = parts
    cls = getattr(errors, name, None)
    if cls is None:
        from . import derivative  # TooLittleDetailError and its kin live there

        cls = getattr(derivative, name, TakeBackError)
    if not (isinstance(cls, type) and issubclass(cls, TakeBackError)):
        cls = TakeBackError
    return cls(message, path=where or path)


def fingerprint_paths(
    paths: Sequence[str],
    *,
    jobs: int | None = None,
    limits: ImageLimits | None = None,
    variants: bool = False,
    derivative: bool = False,
    on_done: Callable[[BatchItem], None] | None = None,
) -> Iterator[BatchItem]:
    """Fingerprint files in parallel, yielding results in the order of ``paths``.

    A file that fails yields a :class:`BatchItem` with ``error`` set; the others
    go on. ``jobs`` defaults to all cores; 1 hashes in this process.
    ``variants`` also computes the 8 dihedral hashes (for matching);
    ``derivative`` also the derivative fingerprint (for registration, see
    :func:`fingerprint_for_bank`). From :data:`_COMPILED_MIN_FILES` files per
    process on (:data:`_COMPILED_MIN_FILES_WITH_VARIANTS` with ``variants``),
    PDQ hashes with the compiled code (the same bits, see
    :func:`~takeback.fingerprint.pdq.use_compiled`).
    """
    limits = limits or ImageLimits()
    jobs = default_jobs() if jobs is None else max(1, jobs)
    work = [(p, limits, variants, derivative) for p in paths]
    compiled_from = _COMPILED_MIN_FILES_WITH_VARIANTS if variants else _COMPILED_MIN_FILES
    if jobs == 1 or len(work) < _POOL_MIN_FILES:
        previous = use_compiled() if len(work) >= compiled_from else None
        try:
            yield from _wrap((_work(w) for w in work), on_done)
        finally:
            if previous is not None:
                use_compiled(previous)
        return
    # Not "fork": a child forked from a parent whose OpenCV / BLAS thread pools
    # have run can deadlock on its first call into them. The fork server is a
    # fresh process, forked before any such pool exists.
    context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(work)),
        mp_context=context,
        initializer=_one_thread,
        initargs=(len(work) >= compiled_from * min(jobs, len(work)),),
    ) as pool:
        chunk = max(1, min(16, len(work) // (jobs * 8)))
        yield from _wrap(pool.map(_work, work, chunksize=chunk), on_done)


def _wrap(
    results: Iterator[_Result], on_done: Callable[[BatchItem], None] | None
) -> Iterator[BatchItem]:
    for path, fp, failure, blob, why in results:
        der = None
        if blob is not None:
            from .derivative import DerivativeFingerprint

            der = DerivativeFingerprint.from_bytes(blob)
        item = BatchItem(
            path,
            fp,
            None if failure is None else _rebuild(path, failure),
            der,
            None if why is None else _rebuild(path, why),
        )
        if on_done is not None:
            on_done(item)
        yield item
