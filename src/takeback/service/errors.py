"""Every error the service answers, as ``{"error": {"code", "message"}}``.

:class:`~takeback.errors.TakeBackError` codes keep their names (``invalid_hash``,
``not_an_image``, ``entry_missing``...); the service adds its own codes for what
only HTTP has:

=====================  ======  ==============================================
code                   status  meaning
=====================  ======  ==============================================
``unauthorized``       401     no API key, or an unknown, revoked or wrong one
``forbidden``          403     the key's role or bank scopes do not allow it
``not_found``          404     no such route
``bank_missing``       404     no bank of that name is served here
``entry_missing``      404     no fingerprint with that id
``request_too_large``  413     the body is over ``max_request_bytes``
``image_too_large``    413     the image is over ``max_upload_bytes`` / ``max_pixels``
``unsupported_media``  415     an upload that is neither multipart nor raw bytes
``invalid_request``    422     the JSON does not fit the schema
``invalid_hash``       422     a hash is not hex of the right length
``invalid_derivative`` 422     ``derivative`` is not base64 of a valid fingerprint
``not_an_image`` ...   422     the upload is not a usable image (imageio codes)
``rate_limited``       429     the key's token bucket is empty (``Retry-After``)
``index_loading``      503     the in-memory index is not loaded yet
``busy``               503     too many uploads are being hashed
``bank_locked``        503     another writer holds the bank's lock
``bank_error``         503     the bank's database cannot be reached
``internal``           500     a bug; the server log has the traceback
=====================  ======  ==============================================
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import (
    BankCorruptError,
    BankError,
    BankLockedError,
    BankNotFoundError,
    EntryNotFoundError,
    ImageTooLargeError,
    InputError,
    TakeBackError,
)
from .replica import IndexNotReadyError

__all__ = ["ApiError", "RequestTooLargeError", "error_response", "install_error_handlers"]

_LOG = logging.getLogger("takeback.service")
_HTTP_CODES: Final = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media",
    429: "rate_limited",
}


class ApiError(Exception):
    """An answer other than success, raised anywhere in a request.

    Parameters
    ----------
    status : int
    code : str
        Stable machine-readable code.
    message : str
        What happened and what to do.
    headers : dict, optional
        ``Retry-After``, ``WWW-Authenticate``...
    """

    def __init__(
        self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


class RequestTooLargeError(StarletteHTTPException):
    """The body grew past the limit while being read (an ``HTTPException``, so that
    FastAPI's body parsing passes it through unchanged)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is over the {limit:,}-byte limit")


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error answer."""
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def takeback_status(exc: TakeBackError) -> tuple[int, dict[str, str]]:
    """HTTP status (and headers) of a library error."""
    if isinstance(exc, ImageTooLargeError):
        return 413, {}
    if isinstance(exc, InputError):
        return 422, {}
    if isinstance(exc, EntryNotFoundError):
        return 404, {}
    if isinstance(exc, BankLockedError):
        return 503, {"Retry-After": "1"}
    if isinstance(exc, BankCorruptError):
        return 500, {}
    if isinstance(exc, BankNotFoundError | BankError):
        return 503, {"Retry-After": "5"}
    return 500, {}


def _audit_failure(request: Request, status: int) -> None:
    record = getattr(request.state, "audit_failure", None)
    if record is not None:
        record(status)


def install_error_handlers(app: FastAPI) -> None:
    """Map every exception to the JSON error form."""

    @app.exception_handler(ApiError)
    async def _api(request: Request, exc: ApiError) -> JSONResponse:
        _audit_failure(request, exc.status)
        return error_response(exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(TakeBackError)
    async def _library(request: Request, exc: TakeBackError) -> JSONResponse:
        status, headers = takeback_status(exc)
        if status >= 500:
            _LOG.warning("%s %s: %s", request.method, request.url.path, exc.message)
        _audit_failure(request, status)
        message = exc.message
        if status >= 500 and isinstance(exc, BankError):
            message = "the bank cannot be used right now; try again later"
        return error_response(status, exc.code, message, headers)

    @app.exception_handler(IndexNotReadyError)
    async def _loading(request: Request, exc: IndexNotReadyError) -> JSONResponse:
        _audit_failure(request, 503)
        return error_response(
            503, "index_loading", f"{exc}; try again shortly", {"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        _audit_failure(request, 422)
        problems = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            problems.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return error_response(422, "invalid_request", "; ".join(problems) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        _audit_failure(request, exc.status_code)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers: dict[str, Any] | None = getattr(exc, "headers", None)
        return error_response(exc.status_code, code, str(exc.detail), headers)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        _LOG.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        _audit_failure(request, 500)
        return error_response(500, "internal", "internal error; the server log has the details")
