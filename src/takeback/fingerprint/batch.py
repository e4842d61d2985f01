"""Fingerprinting many files, on all cores, in input order."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Final

from .. import errors
from ..errors import TakeBackError
from ..imageio import ImageLimits
from .pdq import fingerprint_file
from .types import Fingerprint

__all__ = ["BatchItem", "default_jobs", "fingerprint_paths"]

# Below this many files a worker pool costs more than it saves.
_POOL_MIN_FILES: Final = 4


@dataclass(frozen=True, slots=True)
class BatchItem:
    """The outcome for one path: a fingerprint or the error that prevented it."""

    path: str
    fingerprint: Fingerprint | None = None
    error: TakeBackError | None = None


def default_jobs() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _work(
    args: tuple[str, ImageLimits, bool],
) -> tuple[str, Fingerprint | None, tuple[str, str, str | None] | None]:
    path, limits, variants = args
    try:
        return path, fingerprint_file(path, limits=limits, variants=variants), None
    except TakeBackError as exc:
        # Exceptions with keyword-only fields do not pickle faithfully: send the parts.
        return path, None, (type(exc).__name__, exc.message, exc.path)


def _rebuild(path: str, parts: tuple[str, str, str | None]) -> TakeBackError:
    cls = getattr(errors, parts[0], TakeBackError)
    if not (isinstance(cls, type) and issubclass(cls, TakeBackError)):
        cls = TakeBackError
    return cls(parts[1], path=parts[2] or path)


def fingerprint_paths(
    paths: Sequence[str],
    *,
    jobs: int | None = None,
    limits: ImageLimits | None = None,
    variants: bool = False,
    on_done: Callable[[BatchItem], None] | None = None,
) -> Iterator[BatchItem]:
    """Fingerprint files in parallel, yielding results in the order of ``paths``.

    A file that fails yields a :class:`BatchItem` with ``error`` set; the others
    go on. ``jobs`` defaults to all cores; 1 hashes in this process.
    ``variants`` also computes the 8 dihedral hashes (for matching).
    """
    limits = limits or ImageLimits()
    jobs = default_jobs() if jobs is None else max(1, jobs)
    work = [(p, limits, variants) for p in paths]
    if jobs == 1 or len(work) < _POOL_MIN_FILES:
        results: Iterator[tuple[str, Fingerprint | None, tuple[str, str, str | None] | None]] = (
            _work(w) for w in work
        )
        yield from _wrap(results, on_done)
        return
    context = multiprocessing.get_context("fork" if os.name == "posix" else "spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(work)), mp_context=context) as pool:
        chunk = max(1, min(16, len(work) // (jobs * 8)))
        yield from _wrap(pool.map(_work, work, chunksize=chunk), on_done)


def _wrap(
    results: Iterator[tuple[str, Fingerprint | None, tuple[str, str, str | None] | None]],
    on_done: Callable[[BatchItem], None] | None,
) -> Iterator[BatchItem]:
    for path, fp, failure in results:
        item = BatchItem(path, fp, None if failure is None else _rebuild(path, failure))
        if on_done is not None:
            on_done(item)
        yield item
