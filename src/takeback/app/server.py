"""The local web page of TakeBack: :func:`create_app` wires :mod:`takeback.app.work` into HTTP.

Routes (everything under ``/api/`` needs the page's per-run token in the
``X-TakeBack-Token`` header; errors are ``{"error": {"code", "message",
"field"}}`` with the TakeBack error code and the form field that caused it):

=================================  ==============================================
``GET /``                          the page
``GET /static/...``                its CSS, JavaScript and icon (nothing external)
``GET /api/status``                the bank, the keys, the remembered originals
``POST /api/fingerprint``          one photo (``photo``) -> its fingerprints
``POST /api/register``             one photo + ``pdq_only``, ``sign``, ``log``
``POST /api/originals``            JSON ``{"folder", "photos": [{"sha256", "size"}]}``
``DELETE /api/originals``          forget where the originals are
``GET /api/export?format=jsonl``   the bank's fingerprints (jsonl, te-csv, pdq)
``GET /api/credentials/{sha256}``  the Content Credentials manifest of a photo
``POST /api/check``                ``suspect`` [+ ``original``] + ``adult=yes``
``POST /api/package``              the same + case fields [+ ``screenshot``]
``DELETE /api/package/{token}``    forget a package now
``GET /download/{token}/{name}``   the package's ZIP or PDF (unguessable token)
=================================  ==============================================

Privacy: uploads are parsed in memory; files a library call needs on disk go
to a private temporary folder removed when the response is made. A package
is kept in memory only, for :data:`PACKAGE_TTL` seconds or until forgotten.
The server answers only requests addressed to 127.0.0.1 / localhost (against
DNS rebinding) and coming from its own page (``Sec-Fetch-Site``, ``Origin``,
the token), and every response carries a strict Content-Security-Policy.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import jinja2
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import __version__
from ..errors import (
    BankError,
    BankLockedError,
    BankNotFoundError,
    FileAccessError,
    ImageTooLargeError,
    InputError,
    TakeBackError,
)
from . import work
from .config import AppConfig
from .uploads import FORM_SLACK, Upload, read_form

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "LOCAL_HOSTS",
    "PACKAGE_TTL",
    "TOKEN_HEADER",
    "create_app",
]

#: Host names the server answers to (any port).
LOCAL_HOSTS: Final = ("127.0.0.1", "localhost", "::1")
#: Header carrying the per-run token on every ``/api/`` request.
TOKEN_HEADER: Final = "x-takeback-token"
#: Seconds an evidence package stays downloadable (in memory only).
PACKAGE_TTL: Final = 30 * 60
#: Packages kept at once; the oldest is dropped first.
MAX_PACKAGES: Final = 8
#: Nothing is loaded from anywhere but this server; no inline script or style.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
_SECURITY_HEADERS: Final = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), interest-cohort=()",
    "cache-control": "no-store",
}
_HERE: Final = Path(__file__).resolve().parent
_TRUE: Final = frozenset({"1", "true", "on", "yes"})


def _hostname(host: str) -> str:
    """``127.0.0.1:8080`` -> ``127.0.0.1``; ``[::1]:8080`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class LocalOnly:
    """ASGI middleware: answer only this computer's own page, add the security headers.

    Parameters
    ----------
    app : ASGI app
    token : str
        The per-run secret every ``/api/`` request must send in ``X-TakeBack-Token``.
    hosts : tuple of str
        Host names accepted in the ``Host`` header.
    """

    def __init__(self, app: ASGIApp, *, token: str, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.token = token
        self.hosts = frozenset(h.lower() for h in hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        host = headers.get("host", "")
        refusal = None
        if _hostname(host) not in self.hosts:
            refusal = (421, "This page is served only to this computer: open http://127.0.0.1.")
        elif headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none") or (
            "origin" in headers and headers["origin"] != f"http://{host}"
        ):
            refusal = (403, "Only TakeBack's own page may use this server.")
        elif scope["path"].startswith("/api/") and not hmac.compare_digest(
            headers.get(TOKEN_HEADER, "").encode(), self.token.encode()
        ):
            refusal = (403, "This request did not come from TakeBack's page; reload the page.")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                out = MutableHeaders(scope=message)
                for key, value in _SECURITY_HEADERS.items():
                    out[key] = value
            await send(message)

        if refusal is not None:
            status, text = refusal
            body = {"error": {"code": "forbidden", "message": text, "field": None}}
            response = JSONResponse(body, status_code=status)
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


class _Packages:
    """Evidence packages waiting to be downloaded, in memory only."""

    def __init__(self) -> None:
        self._items: OrderedDict[str, tuple[float, work.PackageFiles]] = OrderedDict()
        self._lock = threading.Lock()

    def _prune(self, now: float) -> None:
        for key in [k for k, (t, _) in self._items.items() if now - t > PACKAGE_TTL]:
            del self._items[key]
        while len(self._items) > MAX_PACKAGES:
            self._items.popitem(last=False)

    def add(self, package: work.PackageFiles) -> str:
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._items[token] = (now, package)
            self._prune(now)
        return token

    def get(self, token: str) -> work.PackageFiles | None:
        with self._lock:
            self._prune(time.monotonic())
            item = self._items.get(token)
        return None if item is None else item[1]

    def forget(self, token: str) -> bool:
        with self._lock:
            return self._items.pop(token, None) is not None


def _status(error: TakeBackError) -> int:
    if isinstance(error, ImageTooLargeError):
        return 413
    if isinstance(error, FileAccessError | InputError):
        return 400
    if isinstance(error, BankNotFoundError):
        return 404
    if isinstance(error, BankLockedError):
        return 503
    if isinstance(error, BankError):
        return 500
    return 500


def _error(error: TakeBackError, field: str | None) -> JSONResponse:
    body = {"error": {**error.to_dict(), "field": field}}
    return JSONResponse(body, status_code=_status(error))


def _megabytes(size: int) -> str:
    """``209715200`` -> ``200 MB``; ``1500000`` -> ``1.4 MB``."""
    mb = size / 2**20
    return f"{mb:,.0f} MB" if mb >= 10 else f"{mb:.1f} MB"


def _flag(fields: dict[str, str], name: str) -> bool:
    return fields.get(name, "").strip().lower() in _TRUE


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=jinja2.select_autoescape(("html",)),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def create_app(
    config: AppConfig | None = None,
    *,
    token: str | None = None,
    hosts: tuple[str, ...] = LOCAL_HOSTS,
) -> FastAPI:
    """The local app as an ASGI application.

    Parameters
    ----------
    config : AppConfig, optional
        Default: :meth:`AppConfig.from_env`.
    token : str, optional
        The per-run secret of ``/api/`` requests (random by default); the page
        carries it.
    hosts : tuple of str
        Host names accepted (tests add ``testserver``).

    Returns
    -------
    fastapi.FastAPI
        ``app.state.config`` is the :class:`AppConfig`, ``app.state.token`` the token.
    """
    config = config or AppConfig.from_env()
    token = token or secrets.token_urlsafe(32)
    packages = _Packages()
    templates = _environment()
    limit = config.limits.max_file_bytes
    app = FastAPI(
        title="TakeBack",
        version=__version__,
        docs_url=None,  # the interactive docs would load scripts from a CDN
        redoc_url=None,
        openapi_url=None,
    )
    app.state.config = config
    app.state.token = token

    async def on_error(request: Request, exc: Exception) -> Response:
        if isinstance(exc, work.FieldError):
            return _error(exc.error, exc.field)
        if isinstance(exc, TakeBackError):
            return _error(exc, None)
        raise exc

    app.add_exception_handler(work.FieldError, on_error)
    app.add_exception_handler(TakeBackError, on_error)

    async def call(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kwargs)

    async def form(request: Request, files: int) -> tuple[dict[str, str], dict[str, Upload]]:
        return await read_form(request, max_bytes=files * limit + FORM_SLACK, max_files=files)

    def need(files: dict[str, Upload], name: str, what: str) -> Upload:
        if name not in files:
            raise work.FieldError(InputError(f"choose {what} first"), name)
        return files[name]

    @app.get("/", response_class=HTMLResponse)
    async def page() -> HTMLResponse:
        html = templates.get_template("index.html").render(
            token=token,
            version=__version__,
            max_file_bytes=limit,
            max_file_text=_megabytes(limit),
            export_formats=list(work.EXPORT_NAMES),
        )
        return HTMLResponse(html)

    @app.get("/api/status")
    async def status() -> dict[str, Any]:
        summary: dict[str, Any] = await call(work.bank_summary, config)
        return summary

    @app.post("/api/fingerprint")
    async def fingerprint(request: Request) -> dict[str, Any]:
        _, files = await form(request, 1)
        result: dict[str, Any] = await call(
            work.fingerprint_upload, config, need(files, "photo", "a photo")
        )
        return result

    @app.post("/api/register")
    async def register(request: Request) -> dict[str, Any]:
        fields, files = await form(request, 1)
        result: dict[str, Any] = await call(
            work.register_upload,
            config,
            need(files, "photo", "a photo"),
            pdq_only=_flag(fields, "pdq_only"),
            sign=_flag(fields, "sign"),
            log=_flag(fields, "log"),
            signer_name=fields.get("signer_name"),
        )
        return result

    @app.post("/api/originals")
    async def remember(request: Request) -> dict[str, Any]:
        try:
            body = json.loads(await request.body())
        except ValueError as exc:
            raise work.FieldError(InputError("expected JSON"), "folder") from exc
        if not isinstance(body, dict) or not isinstance(body.get("photos"), list):
            raise work.FieldError(InputError('expected {"folder", "photos": [...]}'), "folder")
        result: dict[str, Any] = await call(
            work.remember_originals, config, str(body.get("folder", "")), body["photos"]
        )
        return result

    @app.delete("/api/originals")
    async def forget_originals() -> dict[str, Any]:
        result: dict[str, Any] = await call(work.forget_originals, config)
        return result

    @app.get("/api/export")
    async def export(format: str = "jsonl") -> Response:
        data, name, media, count = await call(work.export_bank, config, format)
        return Response(
            data,
            media_type=media,
            headers={
                "content-disposition": f'attachment; filename="{name}"',
                "x-takeback-count": str(count),
            },
        )

    @app.get("/api/credentials/{sha256}")
    async def credentials(sha256: str) -> Response:
        data = await call(work.manifest_bytes, config, sha256.lower())
        if data is None:
            raise work.FieldError(
                FileAccessError("no Content Credentials were made for this photo"), "sha256"
            )
        return Response(
            data,
            media_type="application/c2pa",
            headers={"content-disposition": 'attachment; filename="photo.c2pa"'},
        )

    def confirmed_adult(fields: dict[str, str]) -> None:
        if fields.get("adult") != "yes":
            raise work.FieldError(
                InputError(
                    "confirm that the person shown is an adult; if they are or may be under "
                    "18, do not examine or keep the picture: report its address to a "
                    "child-protection hotline instead"
                ),
                "adult",
            )

    @app.post("/api/check")
    async def check(request: Request) -> dict[str, Any]:
        fields, files = await form(request, 2)
        confirmed_adult(fields)
        suspect = need(files, "suspect", "the picture you found")
        result: dict[str, Any] = await call(work.check, config, suspect, files.get("original"))
        return result

    @app.post("/api/package")
    async def package(request: Request) -> dict[str, Any]:
        fields, files = await form(request, 3)
        confirmed_adult(fields)
        suspect = need(files, "suspect", "the picture you found")
        built: work.PackageFiles = await call(
            work.make_package,
            config,
            suspect,
            files.get("original"),
            work.CaseFields.from_form(fields),
            files.get("screenshot"),
        )
        key = packages.add(built)
        return {
            "token": key,
            "name": built.name,
            "sha256": built.sha256,
            "verdict": built.verdict,
            "files": built.files,
            "zip": {"url": f"/download/{key}/{built.name}.zip", "bytes": len(built.zip)},
            "pdf": {"url": f"/download/{key}/{built.name}.pdf", "bytes": len(built.pdf)},
            "expires_in": PACKAGE_TTL,
        }

    @app.delete("/api/package/{key}")
    async def forget_package(key: str) -> dict[str, Any]:
        return {"forgotten": packages.forget(key)}

    @app.get("/download/{key}/{name}")
    async def download(key: str, name: str) -> Response:
        built = packages.get(key)
        if built is None or name not in (f"{built.name}.zip", f"{built.name}.pdf"):
            return JSONResponse(
                {
                    "error": {
                        "code": "file_unreadable",
                        "message": "this package is no longer here (it is kept for "
                        f"{PACKAGE_TTL // 60} minutes); make it again",
                        "field": None,
                    }
                },
                status_code=404,
            )
        is_zip = name.endswith(".zip")
        return Response(
            built.zip if is_zip else built.pdf,
            media_type="application/zip" if is_zip else "application/pdf",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    app.mount("/static", StaticFiles(directory=_HERE / "static"), name="static")
    app.add_middleware(LocalOnly, token=token, hosts=hosts)
    return app
