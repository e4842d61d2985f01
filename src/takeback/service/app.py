"""The FastAPI application: :func:`create_app` wires the library into HTTP.

Routes by role (:attr:`~takeback.service.settings.ServiceSettings.role`):

=========================================  =====  =======  =========
route                                      all    matcher  submitter
=========================================  =====  =======  =========
``/livez``, ``/readyz``                    yes    yes      yes
``GET /v1/banks``, ``GET .../hashes/{id}``  yes    yes      yes
``GET /v1/banks/{bank}/changes``           yes    yes      yes
``POST /v1/banks/{bank}/match[/image]``    yes    yes      no
``POST /v1/banks/{bank}/hashes``,          yes    no       yes
withdrawals, ``/v1/admin/...``
=========================================  =====  =======  =========

The interactive API documentation is at ``/docs`` (OpenAPI at ``/openapi.json``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from .errors import install_error_handlers
from .limits import MULTIPART_SLACK, BodyLimit
from .routers import admin, changes, hashes, health, match
from .settings import ServiceSettings, get_settings
from .state import ServiceState

__all__ = ["create_app"]

_DESCRIPTION = """\
Register PDQ fingerprints (never photos) in named hash banks, withdraw them,
and match fingerprints or uploaded images against them.

Every `/v1` route needs an API key: `Authorization: Bearer tbk_...`. Errors are
`{"error": {"code", "message"}}`. See docs/service.md.
"""


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The service as an ASGI app.

    Nothing is opened here: the banks, the service database, the replicas and
    the hashing workers start in the app's lifespan (``with TestClient(app)``,
    or when uvicorn starts it) and stop with it.

    Parameters
    ----------
    settings : ServiceSettings, optional
        Default: :func:`~takeback.service.settings.get_settings` (the environment).

    Returns
    -------
    fastapi.FastAPI
        ``app.state.takeback`` is the :class:`~takeback.service.state.ServiceState`.
    """
    settings = settings or get_settings()
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
    app.add_middleware(
        BodyLimit,
        default=settings.max_request_bytes,
        upload=settings.max_upload_bytes + MULTIPART_SLACK,
        is_upload=lambda path: path.endswith("/match/image"),
    )
    return app
