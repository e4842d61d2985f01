"""One BLAS thread for the small matrix products of per-image work.

TakeBack's numpy products are small (a few hundred descriptors times a
128 x 32 projection, say). OpenBLAS splits such a product over all cores
anyway, and when those cores are busy (a second worker process, another job)
its threads wait for each other: on a loaded 2-core machine a 384 x 128 by
128 x 32 product took 20 ms with two BLAS threads and 0.17 ms with one. The
``takeback`` command, the service and the batch workers therefore call
:func:`limit_blas_threads` before any work. Library users who embed TakeBack
in a program with large matrix work of its own can leave it uncalled, or set
``OPENBLAS_NUM_THREADS`` themselves: an explicit value is respected.
"""

from __future__ import annotations

import os
from typing import Final

__all__ = ["limit_blas_threads"]

#: Environment variables read by the BLAS libraries numpy may be built with.
_ENV: Final = ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads() -> int:
    """Run numpy's BLAS on one thread (or on ``OPENBLAS_NUM_THREADS`` if set).

    Sets the environment variable too, so child processes (batch workers,
    service workers) start the same way. Returns the thread count in force.
    """
    raw = os.environ.get(_ENV[0], "")
    threads = int(raw) if raw.isdigit() and int(raw) > 0 else 1
    for name in _ENV:
        os.environ.setdefault(name, str(threads))
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads, user_api="blas")
    return threads
