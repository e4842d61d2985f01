"""Key administration and audit verification (admin keys only).

The first admin key is made on the server with ``takeback admin keys create
--role admin``; it can then make the others here.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from ..audit import verify_audit
from ..deps import Caller, admin_caller
from ..errors import ApiError
from ..schemas import ErrorResponse, KeyCreate, KeyCreated, KeyOut

__all__ = ["router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], responses={
    401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 429: {"model": ErrorResponse},
})  # fmt: skip

Admin = Annotated[Caller, Depends(admin_caller)]


@router.post("/keys", summary="Create a key (its token is shown once)", status_code=201)
async def create_key(body: KeyCreate, caller: Admin) -> KeyCreated:
    caller.action = "key_create"
    state = caller.state
    if state.keys is None or state.keyring is None:  # pragma: no cover - set at start-up
        raise ApiError(503, "index_loading", "the service is starting")
    keys, keyring = state.keys, state.keyring
    key, token = await asyncio.to_thread(keys.create, body.role, body.banks, body.label)
    await asyncio.to_thread(keyring.reload)
    await caller.audit_durably(1)
    return KeyCreated(**key.to_dict(), token=token)  # type: ignore[arg-type]


@router.get("/keys", summary="Every key (never a secret)")
async def list_keys(caller: Admin) -> dict[str, list[KeyOut]]:
    caller.action = "key_list"
    if caller.state.keys is None:  # pragma: no cover
        raise ApiError(503, "index_loading", "the service is starting")
    keys = await asyncio.to_thread(caller.state.keys.list_keys)
    caller.audit(len(keys))
    return {"keys": [KeyOut(**k.to_dict()) for k in keys]}  # type: ignore[arg-type]


@router.delete(
    "/keys/{key_id}", summary="Revoke a key for good", responses={404: {"model": ErrorResponse}}
)
async def revoke_key(key_id: str, caller: Admin) -> KeyOut:
    caller.action = "key_revoke"
    state = caller.state
    if state.keys is None or state.keyring is None:  # pragma: no cover
        raise ApiError(503, "index_loading", "the service is starting")
    key = await asyncio.to_thread(state.keys.revoke, key_id)
    if key is None:
        raise ApiError(404, "key_missing", f"no key {key_id!r}")
    state.keyring.forget(key_id)
    await caller.audit_durably(1)
    return KeyOut(**key.to_dict())  # type: ignore[arg-type]


@router.get("/audit/verify", summary="Check the audit log's hash chain")
async def verify(caller: Admin) -> dict[str, object]:
    caller.action = "audit_verify"
    state = caller.state
    if state.db is None or state.audit is None:  # pragma: no cover
        raise ApiError(503, "index_loading", "the service is starting")
    await asyncio.to_thread(state.audit.flush)
    result = await asyncio.to_thread(verify_audit, state.db)
    caller.audit(result.records)
    return result.to_dict()
