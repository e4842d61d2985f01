"""Banks and their fingerprints: list banks, submit, read, withdraw.

Withdrawal deletes the entry from the bank (no flag, no tombstone beyond the
id in the change feed); every replica drops it from its index when it reads
the feed.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import APIRouter, Depends, Path

from ...bank.model import BankEntry
from ...fingerprint.derivative import DerivativeFingerprint, InvalidDerivativeError
from ...fingerprint.types import PdqHash
from ..deps import BankCaller, KeyDep, StateDep, bank_caller
from ..errors import ApiError
from ..schemas import (
    MAX_ID,
    EntryOut,
    ErrorResponse,
    HashIn,
    SubmitRequest,
    SubmitResponse,
    SubmitResult,
    WithdrawRequest,
    WithdrawResponse,
    parse_digest,
)

__all__ = ["router", "write_router"]

_ERRORS: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 429: {"model": ErrorResponse},
}  # fmt: skip
#: Routes every node serves.
router = APIRouter(prefix="/v1", tags=["banks"], responses=_ERRORS)
#: Routes that change a bank (nodes of role ``all`` and ``submitter``).
write_router = APIRouter(prefix="/v1", tags=["banks"], responses=_ERRORS)

Submitter = Annotated[BankCaller, Depends(bank_caller("submit", "submit"))]
Withdrawer = Annotated[BankCaller, Depends(bank_caller("withdraw", "withdraw"))]
Reader = Annotated[BankCaller, Depends(bank_caller("read", "entry_read"))]
EntryPath = Annotated[int, Path(ge=1, le=MAX_ID, description="The entry's id.")]


@router.get("/banks", summary="The banks this key may use")
async def list_banks(state: StateDep, key: KeyDep) -> dict[str, list[dict[str, object]]]:
    banks: list[dict[str, object]] = []
    for name, runtime in state.banks.items():
        if not any(key.allows(p, name) for p in ("submit", "match", "changes", "read")):
            continue
        info: dict[str, object] = {"name": name}
        if runtime.replica is not None:
            status = runtime.replica.status()
            info.update(entries=status.entries, seq=status.seq, ready=status.ready)
        banks.append(info)
    return {"banks": banks}


def _derivative(text: str | None) -> bytes | None:
    """The submitted derivative fingerprint's bytes, validated."""
    if text is None:
        return None
    try:
        blob = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_derivative", "'derivative' is not valid base64") from None
    try:
        DerivativeFingerprint.from_bytes(blob)
    except InvalidDerivativeError as exc:
        raise ApiError(422, "invalid_derivative", exc.message) from None
    return blob


def _entry(item: HashIn, min_quality: int) -> tuple[BankEntry, bool]:
    derivative = _derivative(item.derivative)
    pdq = None if item.pdq is None else PdqHash.from_hex(item.pdq)
    entry = BankEntry(
        label=item.label,
        sha256=parse_digest("sha256", item.sha256),
        md5=parse_digest("md5", item.md5),
        pdq=pdq,
        quality=item.quality,
        source=item.partner_ref,
        derivative=derivative,
    )
    indexed = pdq is not None and (item.quality is None or item.quality >= min_quality)
    return entry, indexed


@write_router.post(
    "/banks/{bank}/hashes",
    summary="Register fingerprints (one transaction)",
    responses={422: {"model": ErrorResponse}},
)
async def submit(body: SubmitRequest, caller: Submitter) -> SubmitResponse:
    settings = caller.state.settings
    if len(body.entries) > settings.max_batch:
        raise ApiError(
            422,
            "invalid_request",
            f"{len(body.entries)} entries in one request; send at most {settings.max_batch}",
        )
    parsed = [_entry(item, settings.min_quality) for item in body.entries]
    results = await caller.bank_runtime.add([entry for entry, _ in parsed])
    await caller.audit_durably(sum(1 for r in results if r.duplicate_of is None))
    return SubmitResponse(
        results=[
            SubmitResult(id=r.id, duplicate_of=r.duplicate_of, indexed=indexed)
            for r, (_, indexed) in zip(results, parsed, strict=True)
        ]
    )


@router.get(
    "/banks/{bank}/hashes/{entry_id}",
    summary="One registered fingerprint",
    responses={404: {"model": ErrorResponse}},
)
async def get_entry(entry_id: EntryPath, caller: Reader) -> EntryOut:
    entry = await caller.bank_runtime.get(entry_id)
    caller.audit(1)
    return EntryOut(
        id=entry_id,
        label=entry.label,
        pdq=None if entry.pdq is None else str(entry.pdq),
        quality=entry.quality,
        sha256=entry.sha256,
        md5=entry.md5,
        partner_ref=entry.source,
        added_at=entry.added_at,
        seq=entry.seq,
    )


@write_router.delete(
    "/banks/{bank}/hashes/{entry_id}",
    summary="Withdraw one fingerprint (deleted for good)",
    responses={404: {"model": ErrorResponse}},
)
async def withdraw_one(entry_id: EntryPath, caller: Withdrawer) -> WithdrawResponse:
    removed = await caller.bank_runtime.remove([entry_id])
    if not removed:
        raise ApiError(
            404, "entry_missing", f"no fingerprint with id {entry_id} in bank {caller.bank!r}"
        )
    await caller.audit_durably(len(removed))
    return WithdrawResponse(removed=removed, missing=[])


@write_router.post(
    "/banks/{bank}/withdrawals",
    summary="Withdraw several fingerprints (deleted for good)",
    responses={422: {"model": ErrorResponse}},
)
async def withdraw_many(body: WithdrawRequest, caller: Withdrawer) -> WithdrawResponse:
    settings = caller.state.settings
    if len(body.ids) > settings.max_batch:
        raise ApiError(
            422,
            "invalid_request",
            f"{len(body.ids)} ids in one request; send at most {settings.max_batch}",
        )
    removed = await caller.bank_runtime.remove(body.ids)
    await caller.audit_durably(len(removed))
    gone = set(removed)
    return WithdrawResponse(
        removed=removed, missing=[i for i in dict.fromkeys(body.ids) if i not in gone]
    )
