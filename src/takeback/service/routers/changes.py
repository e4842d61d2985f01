"""The change feed of a bank: ``add`` / ``remove`` steps with ids only, never hashes.

A partner or an external cache follows it with ``since=<next_since of the
last answer>``; the order is the bank's commit order with no gaps.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from ..deps import BankCaller, bank_caller
from ..schemas import MAX_ID, ChangeOut, ChangesResponse, ErrorResponse

__all__ = ["MAX_FEED_PAGE", "router"]

#: Most changes in one answer.
MAX_FEED_PAGE = 10_000

router = APIRouter(prefix="/v1", tags=["changes"], responses={
    401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 429: {"model": ErrorResponse},
})  # fmt: skip


@router.get("/banks/{bank}/changes", summary="The change feed after a sequence number")
async def changes(
    caller: Annotated[BankCaller, Depends(bank_caller("changes", "changes"))],
    since: Annotated[
        int, Query(ge=0, le=MAX_ID, description="Last sequence number already seen.")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_FEED_PAGE)] = 1000,
) -> ChangesResponse:
    page = await caller.bank_runtime.changes(since, limit + 1)
    more = len(page) > limit
    page = page[:limit]
    caller.audit(len(page))
    return ChangesResponse(
        changes=[ChangeOut(seq=c.seq, op=c.op, id=c.entry_id, at=c.at) for c in page],
        next_since=page[-1].seq if page else since,
        more=more,
    )
