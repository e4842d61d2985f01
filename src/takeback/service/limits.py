"""Request-size limits, enforced before and while a body is read (pure ASGI)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Final

from .errors import RequestTooLargeError

__all__ = ["MULTIPART_SLACK", "BodyLimit"]

#: Room for multipart headers and boundaries around an upload of the maximum size.
MULTIPART_SLACK: Final = 64 * 1024

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[Message], Any]


class BodyLimit:
    """Refuse bodies over a limit with ``413 request_too_large``.

    A declared ``Content-Length`` over the limit is refused before anything is
    read; a body that grows past it while streaming (chunked encoding) raises
    :class:`~takeback.service.errors.RequestTooLargeError` from ``receive``.

    Parameters
    ----------
    app : ASGI app
    default : int
        Limit of every request.
    upload : int
        Limit of requests to paths that ``is_upload`` accepts.
    is_upload : callable
        Whether a path takes image uploads.
    """

    def __init__(
        self, app: Any, *, default: int, upload: int, is_upload: Callable[[str], bool]
    ) -> None:
        self.app = app
        self.default = default
        self.upload = upload
        self.is_upload = is_upload

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload if self.is_upload(scope.get("path", "")) else self.default
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > limit:
                    await _refuse(send, limit)
                    return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message: Message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise RequestTooLargeError(limit)
            return message

        await self.app(scope, limited, send)


async def _refuse(send: Send, limit: int) -> None:
    body = json.dumps(
        {
            "error": {
                "code": "request_too_large",
                "message": f"the request body is over the {limit:,}-byte limit",
            }
        }
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
