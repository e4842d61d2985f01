"""The hot path of ``POST /v1/banks/{bank}/match``: the common request without FastAPI.

A platform asks this route once per upload, thousands of times a second. The
index answers in about 0.1 ms; FastAPI's general machinery around it
(dependency injection, pydantic validation of the body and of the answer, the
exception middleware) cost several times that. :class:`FastMatch`, a pure ASGI
middleware, answers the common request itself:

* a JSON body whose ``Content-Length`` is at most :data:`FAST_BODY_MAX` bytes,
  holding only ``pdq`` or ``variants``, ``quality``, ``threshold``, ``sha256``
  and ``md5``, each of exactly the type and form the schema asks for;
* a valid key allowed to match that bank, with a token left in its bucket;
* a bank served here whose index is loaded.

It does what the route does, in the same order: authenticate, check the scope,
take a token, match, queue the audit record (``match``, the key, the bank, the
number of matches, status 200) and answer the same JSON. Every other request
(no key, a wrong or revoked one, a scope refusal, an empty bucket, a body that
does not fit the schema, an index still loading, a bank error) is handed to the
FastAPI route untouched, its body replayed, and answered (and audited) there
as documented. The route stays the reference: ``tests/test_service.py`` sends
the same requests with and without this middleware and compares the answers
and the audit records.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, Final

from ..errors import TakeBackError
from ..fingerprint.types import PdqHash
from .replica import IndexNotReadyError
from .schemas import parse_digest
from .settings import BANK_NAME_PATTERN
from .state import ServiceState

__all__ = ["FAST_BODY_MAX", "FastMatch"]

#: Largest body the hot path reads (8 variants and both digests fit in about 900 bytes).
FAST_BODY_MAX: Final = 4096

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_PATH: Final = re.compile(r"/v1/banks/(" + BANK_NAME_PATTERN.strip("^$") + r")/match")
_FIELDS: Final = frozenset({"pdq", "variants", "quality", "threshold", "sha256", "md5"})
_MAX_STR: Final = 80  # max_length of the hash fields in MatchRequest
_VARIANTS: Final = 8
_HEADERS: Final = [(b"content-type", b"application/json")]


class _Fallback(Exception):
    """This request is not the common case: let the FastAPI route answer it."""


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _hash_text(value: object) -> str:
    if not isinstance(value, str) or len(value) > _MAX_STR:
        raise _Fallback
    return value


def _int_or_none(value: object, high: int) -> int | None:
    if value is None:
        return None
    if type(value) is not int or not 0 <= value <= high:
        raise _Fallback
    return value


class _Query:
    """A match body that fits the schema exactly (else :class:`_Fallback`)."""

    __slots__ = ("md5", "pdq", "quality", "sha256", "threshold")

    def __init__(self, body: bytes, max_threshold: int) -> None:
        try:
            data = json.loads(body)
        except ValueError:
            raise _Fallback from None
        if not isinstance(data, dict) or not data.keys() <= _FIELDS:
            raise _Fallback
        one, many = data.get("pdq"), data.get("variants")
        try:
            if many is not None:
                if one is not None or not isinstance(many, list) or len(many) != _VARIANTS:
                    raise _Fallback
                self.pdq = [PdqHash.from_hex(_hash_text(v)) for v in many]
            elif one is not None:
                self.pdq = [PdqHash.from_hex(_hash_text(one))]
            else:
                self.pdq = []
            sha256, md5 = data.get("sha256"), data.get("md5")
            self.sha256 = parse_digest("sha256", None if sha256 is None else _hash_text(sha256))
            self.md5 = parse_digest("md5", None if md5 is None else _hash_text(md5))
        except TakeBackError:
            raise _Fallback from None
        if not self.pdq and self.sha256 is None and self.md5 is None:
            raise _Fallback
        self.quality = _int_or_none(data.get("quality"), 100)
        self.threshold = _int_or_none(data.get("threshold"), max_threshold)


class FastMatch:
    """Answer common fingerprint match requests directly (see the module documentation).

    Parameters
    ----------
    app : ASGI app
        The FastAPI application (everything else goes there).
    state : ServiceState
    """

    def __init__(self, app: ASGIApp, *, state: ServiceState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = _PATH.fullmatch(scope["path"]) if scope["type"] == "http" else None
        length = _header(scope, b"content-length") if path and scope["method"] == "POST" else None
        if path is None or length is None or not length.isdigit() or int(length) > FAST_BODY_MAX:
            await self.app(scope, receive, send)
            return
        received: list[Message] = []
        body = b""
        while True:
            message = await receive()
            received.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            if not message.get("more_body", False):
                try:
                    await self._answer(scope, path.group(1), body, send)
                    return
                except _Fallback:
                    break

        async def replay() -> Message:
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    async def _answer(self, scope: Scope, bank: str, body: bytes, send: Send) -> None:
        state, settings = self.state, self.state.settings
        media = (_header(scope, b"content-type") or b"").split(b";", 1)[0].strip().lower()
        scheme, _, token = (_header(scope, b"authorization") or b"").partition(b" ")
        if media != b"application/json" or scheme.lower() != b"bearer" or state.keyring is None:
            raise _Fallback
        key = state.keyring.authenticate(token.decode("latin-1"))
        runtime = state.banks.get(bank)
        if key is None or runtime is None or not key.allows("match", bank):
            raise _Fallback
        query = _Query(body, settings.max_threshold)
        if state.limiter.take(key.key_id) > 0:
            raise _Fallback
        threshold = settings.match_threshold if query.threshold is None else query.threshold
        try:
            answer = await runtime.match(
                pdq=query.pdq,
                quality=query.quality,
                sha256=query.sha256,
                md5=query.md5,
                threshold=threshold,
            )
        except (IndexNotReadyError, TakeBackError):
            state.limiter.give_back(key.key_id)  # the route takes it again
            raise _Fallback from None
        if state.audit is not None:
            state.audit.record(
                "match", key_id=key.key_id, bank=bank, result_count=len(answer.matches)
            )
        content = json.dumps(
            {
                "matches": [m.to_dict() for m in answer.matches],
                "pdq_searched": answer.pdq_searched,
                "quality": query.quality,
                "threshold": threshold,
                "min_quality": settings.min_quality,
            },
            ensure_ascii=False,
            allow_nan=False,
            separators=(",", ":"),
        ).encode("utf-8")
        headers = [*_HEADERS, (b"content-length", str(len(content)).encode("ascii"))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": content})
