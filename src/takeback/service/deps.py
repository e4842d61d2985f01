"""Request dependencies: the service state, the caller's key, its rate and its rights.

Order per request: authenticate (``401``), take a token from the key's bucket
(``429``), check the role and the bank scope (``403``), find the bank
(``404``). Everything after authentication is audited, failures included:
:class:`Caller` leaves a hook on ``request.state`` that the error handlers call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request

from .auth import ApiKey, parse_token
from .banks import BankRuntime
from .errors import ApiError
from .ratelimit import RateLimiter
from .settings import BANK_NAME_PATTERN
from .state import ServiceState

__all__ = [
    "BankCaller",
    "Caller",
    "KeyDep",
    "StateDep",
    "admin_caller",
    "authenticate",
    "bank_caller",
    "get_state",
]

_VERBS = {
    "submit": "submit to",
    "withdraw": "withdraw from",
    "read": "read entries of",
    "match": "match against",
    "changes": "read the change feed of",
    "admin": "administer",
}


async def get_state(request: Request) -> ServiceState:
    """The running service (set by the app's lifespan).

    A coroutine on purpose: FastAPI runs plain functions in a thread pool, which
    cost more than the rest of a match request.
    """
    state: ServiceState = request.app.state.takeback
    return state


@dataclass
class Caller:
    """An authenticated request and its audit record to be."""

    key: ApiKey
    state: ServiceState
    action: str
    bank: str | None = None
    recorded: bool = field(default=False)

    def audit(self, result_count: int | None = None, status: int = 200) -> int:
        """Queue the audit record of this request (once); returns its ticket."""
        if self.recorded or self.state.audit is None:
            return 0
        self.recorded = True
        return self.state.audit.record(
            self.action,
            key_id=self.key.key_id,
            bank=self.bank,
            result_count=result_count,
            status=status,
        )

    async def audit_durably(self, result_count: int | None = None) -> None:
        """Audit a change of state and wait until the record is written."""
        ticket = self.audit(result_count)
        if ticket and self.state.audit is not None:
            await asyncio.to_thread(self.state.audit.flush, ticket)


@dataclass
class BankCaller(Caller):
    """A caller allowed to act on one bank."""

    runtime: BankRuntime | None = None

    @property
    def bank_runtime(self) -> BankRuntime:
        if self.runtime is None:  # pragma: no cover - set by bank_caller
            raise RuntimeError("no bank")
        return self.runtime


StateDep = Annotated[ServiceState, Depends(get_state)]


async def authenticate(request: Request, state: StateDep) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "send an API key: Authorization: Bearer tbk_...",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if state.keyring is None:  # pragma: no cover - the lifespan sets it
        raise ApiError(503, "index_loading", "the service is starting")
    key = state.keyring.authenticate(token)
    if key is None:
        parsed = parse_token(token)
        if parsed is not None and state.keyring.known(parsed[0]) and state.audit is not None:
            state.audit.record("auth_failed", key_id=parsed[0], status=401)
        raise ApiError(
            401,
            "unauthorized",
            "the API key is unknown, revoked or wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )
    wait = state.limiter.take(key.key_id)
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"too many requests with key {key.key_id}; slow down",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )
    return key


KeyDep = Annotated[ApiKey, Depends(authenticate)]


def _deny(caller: Caller, request: Request, message: str) -> ApiError:
    request.state.audit_failure = None
    caller.action = "denied"
    caller.audit(status=403)
    return ApiError(403, "forbidden", message)


def bank_caller(permission: str, action: str) -> Callable[..., Awaitable[BankCaller]]:
    """A dependency admitting keys with ``permission`` on the path's ``{bank}``."""

    async def dependency(
        request: Request,
        key: KeyDep,
        state: StateDep,
        bank: Annotated[str, Path(pattern=BANK_NAME_PATTERN, description="The bank's name.")],
    ) -> BankCaller:
        caller = BankCaller(key=key, state=state, action=action, bank=bank)
        if not key.allows(permission, bank):
            verb = _VERBS.get(permission, permission)
            raise _deny(
                caller, request, f"key {key.key_id} ({key.role}) may not {verb} bank {bank!r}"
            )
        caller.runtime = state.banks.get(bank)
        request.state.audit_failure = lambda status: caller.audit(status=status)
        if caller.runtime is None:
            raise ApiError(404, "bank_missing", f"no bank named {bank!r} is served here")
        return caller

    return dependency


async def admin_caller(request: Request, key: KeyDep, state: StateDep) -> Caller:
    """A dependency admitting admin keys (key administration, audit verification)."""
    caller = Caller(key=key, state=state, action="admin")
    if not key.allows("admin"):
        raise _deny(caller, request, f"key {key.key_id} ({key.role}) is not an admin key")
    request.state.audit_failure = lambda status: caller.audit(status=status)
    return caller
