"""The FastAPI application: :func:`create_app` wires the library into HTTP.

Routes by role (:attr:`~takeback.service.settings.ServiceSettings.role`):

=========================================  =====  =======  =========
route                                      all    matcher  submitter
=========================================  =====  =======  =========
``/livez``, ``/readyz``                    yes    yes      yes
``GET /v1/banks``, ``GET .../hashes/{id}``  yes    yes      yes
``GET /v1/banks/{bank}/changes``           yes    yes      yes
``POST /v1/banks/{bank}/match[/...]``      yes    yes      no
``POST /v1/banks/{bank}/hashes``,          yes    no       yes
withdrawals, ``/v1/admin/...``
=========================================  =====  =======  =========

The interactive API documentation is at ``/docs`` (OpenAPI at ``/openapi.json``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Final

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]

from fastapi import FastAPI

from .. import __version__
from .errors import install_error_handlers
from .fastmatch import FastMatch
from .limits import MULTIPART_SLACK, BodyLimit
from .routers import admin, changes, hashes, health, match
from .settings import ServiceSettings, get_settings
from .state import ServiceState

__all__ = [
    "WORKER_LOAD_LOCK_ENV",
    "WORKER_SETTINGS_ENV",
    "create_app",
    "load_turn",
    "worker_app",
]

#: Environment variable through which ``takeback serve --workers N`` hands its
#: settings (JSON) to the worker processes (see :func:`worker_app`).
WORKER_SETTINGS_ENV: Final = "_TAKEBACK_SERVE_SETTINGS"
#: Environment variable naming the file the worker processes lock in turn while
#: they load their indexes (see :func:`load_turn`).
WORKER_LOAD_LOCK_ENV: Final = "_TAKEBACK_SERVE_LOAD_LOCK"
_LOG = logging.getLogger("takeback.service")

_DESCRIPTION = """\
Register PDQ fingerprints (never photos) in named hash banks, withdraw them,
and match fingerprints or uploaded images against them.

Every `/v1` route needs an API key: `Authorization: Bearer tbk_...`. Errors are
`{"error": {"code", "message"}}`. See docs/service.md.
"""


def create_app(
    settings: ServiceSettings | None = None,
    *,
    wait_ready: bool = False,
    load_lock: str | None = None,
) -> FastAPI:
    """The service as an ASGI app.

    Nothing is opened here: the banks, the service database, the replicas and
    the hashing workers start in the app's lifespan (``with TestClient(app)``,
    or when uvicorn starts it) and stop with it.

    Parameters
    ----------
    settings : ServiceSettings, optional
        Default: :func:`~takeback.service.settings.get_settings` (the environment).
    wait_ready : bool
        Finish starting (and so accept connections) only once every index is
        loaded, or after :attr:`~ServiceSettings.startup_wait` seconds: for one of
        several worker processes sharing a socket, so that none is handed
        requests while it is still loading.
    load_lock : str, optional
        With ``wait_ready``: a file the workers lock in turn while they load
        (:func:`load_turn`), so that the first is ready as soon as one process
        alone would be, instead of all of them sharing the cores until late.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.takeback`` is the :class:`~takeback.service.state.ServiceState`.
    """
    settings = settings or get_settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if wait_ready:
            await asyncio.to_thread(_start_in_turn, state, load_lock)
        else:
            await asyncio.to_thread(state.start)
        try:
            yield
        finally:
            await asyncio.to_thread(state.stop)

    app = FastAPI(
        title="TakeBack hash bank",
        version=__version__,
        description=_DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.takeback = state
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(hashes.router)
    app.include_router(changes.router)
    if settings.serves_matching:
        app.include_router(match.router)
    if settings.serves_writes:
        app.include_router(hashes.write_router)
        app.include_router(admin.router)
    if settings.serves_matching and settings.fast_match:
        app.add_middleware(FastMatch, state=state)
    app.add_middleware(  # outermost: limits apply to the hot path too
        BodyLimit,
        default=settings.max_request_bytes,
        upload=settings.max_upload_bytes + MULTIPART_SLACK,
        is_upload=lambda path: path.endswith("/match/image"),
    )
    return app


def _start_in_turn(state: ServiceState, load_lock: str | None) -> None:
    wait = state.settings.startup_wait
    with load_turn(load_lock, wait):
        state.start()
        ready = state.wait_ready(wait)
    if not ready:
        _LOG.warning("indexes not loaded after %.0f s; serving anyway (503 until loaded)", wait)


@contextmanager
def load_turn(path: str | None, timeout: float) -> Iterator[bool]:
    """Hold an exclusive lock on the file ``path`` (waiting at most ``timeout`` s).

    Yields whether the lock was obtained; without it (no path, no ``fcntl``,
    or the wait ran out) the caller goes ahead anyway. The kernel releases the
    lock of a process that dies.
    """
    if path is None or fcntl is None:
        yield False
        return
    with open(path, "a+b") as fh:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
                continue
            try:
                yield True
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
            return


def worker_app() -> FastAPI:
    """The app of one worker process of ``takeback serve --workers N`` (a uvicorn factory).

    The settings are those the command resolved (environment and options),
    handed over as JSON in :data:`WORKER_SETTINGS_ENV`; without it, the
    environment's (:func:`get_settings`).
    """
    handed = os.environ.pop(WORKER_SETTINGS_ENV, None)  # not passed on to hashing processes
    settings = ServiceSettings.model_validate_json(handed) if handed else get_settings()
    return create_app(settings, wait_ready=True, load_lock=os.environ.get(WORKER_LOAD_LOCK_ENV))
