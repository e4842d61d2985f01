"""Matching: a fingerprint (JSON) or an image (upload), against one bank.

PDQ is searched in this node's in-memory index (no database round trip);
SHA-256 / MD5 are looked up in the bank. An uploaded image is read into
memory, hashed in a worker process and dropped: it is never written to disk
or to a log.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Final

from fastapi import APIRouter, Depends, Query, Request

from ...fingerprint.types import PdqHash
from ..deps import BankCaller, bank_caller
from ..errors import ApiError
from ..hashing import UPLOAD_FIELD, read_upload
from ..ratelimit import RateLimiter
from ..schemas import (
    ErrorResponse,
    FingerprintOut,
    ImageMatchResponse,
    MatchBatchRequest,
    MatchBatchResponse,
    MatchOut,
    MatchRequest,
    MatchResponse,
    parse_digest,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["match"], responses={
    401: {"model": ErrorResponse}, 403: {"model": ErrorResponse}, 422: {"model": ErrorResponse},
    429: {"model": ErrorResponse}, 503: {"model": ErrorResponse},
})  # fmt: skip

Matcher = Annotated[BankCaller, Depends(bank_caller("match", "match"))]
BatchMatcher = Annotated[BankCaller, Depends(bank_caller("match", "match_batch"))]
ImageMatcher = Annotated[BankCaller, Depends(bank_caller("match", "match_image"))]


def _threshold(caller: BankCaller, asked: int | None) -> int:
    settings = caller.state.settings
    if asked is None:
        return settings.match_threshold
    if asked > settings.max_threshold:
        raise ApiError(
            422,
            "invalid_request",
            f"threshold {asked} is above this service's maximum of {settings.max_threshold} bits",
        )
    return asked


def _answer(caller: BankCaller, answer_matches: list[MatchOut], searched: bool,
            quality: int | None, threshold: int) -> MatchResponse:  # fmt: skip
    caller.audit(len(answer_matches))
    return MatchResponse(
        matches=answer_matches,
        pdq_searched=searched,
        quality=quality,
        threshold=threshold,
        min_quality=caller.state.settings.min_quality,
    )


#: Queries of a batch matched between two yields to the event loop.
_BATCH_SLICE: Final = 32


class _Parsed:
    """A match request with its hashes parsed and its threshold checked."""

    def __init__(self, caller: BankCaller, body: MatchRequest) -> None:
        self.threshold = _threshold(caller, body.threshold)
        if body.variants is not None:
            self.pdq = [PdqHash.from_hex(v) for v in body.variants]
        elif body.pdq is not None:
            self.pdq = [PdqHash.from_hex(body.pdq)]
        else:
            self.pdq = []
        self.quality = body.quality
        self.sha256 = parse_digest("sha256", body.sha256)
        self.md5 = parse_digest("md5", body.md5)

    async def run(self, caller: BankCaller) -> tuple[list[MatchOut], bool]:
        answer = await caller.bank_runtime.match(
            pdq=self.pdq,
            quality=self.quality,
            sha256=self.sha256,
            md5=self.md5,
            threshold=self.threshold,
        )
        matches = [MatchOut(**m.to_dict()) for m in answer.matches]  # type: ignore[arg-type]
        return matches, answer.pdq_searched


@router.post("/banks/{bank}/match", summary="Match a fingerprint")
async def match_fingerprint(body: MatchRequest, caller: Matcher) -> MatchResponse:
    query = _Parsed(caller, body)
    matches, searched = await query.run(caller)
    return _answer(caller, matches, searched, query.quality, query.threshold)


@router.post(
    "/banks/{bank}/match/batch",
    summary="Match several fingerprints (one answer each, in order)",
    responses={429: {"model": ErrorResponse}},
)
async def match_batch(body: MatchBatchRequest, caller: BatchMatcher) -> MatchBatchResponse:
    state = caller.state
    most = min(state.settings.max_batch, state.limiter.burst)
    if len(body.queries) > most:
        raise ApiError(
            422, "invalid_request", f"{len(body.queries)} queries: send at most {most} per batch"
        )
    queries = [_Parsed(caller, q) for q in body.queries]  # every hash checked first
    wait = state.limiter.take(caller.key.key_id, len(queries) - 1)  # one was taken already
    if wait > 0:
        raise ApiError(
            429,
            "rate_limited",
            f"{len(queries)} queries are more than key {caller.key.key_id} may make now; "
            "slow down or send smaller batches",
            headers={"Retry-After": RateLimiter.retry_after(wait)},
        )
    results, total = [], 0
    for i, query in enumerate(queries):
        if i and i % _BATCH_SLICE == 0:
            await asyncio.sleep(0)  # let other requests in between slices
        matches, searched = await query.run(caller)
        total += len(matches)
        results.append(
            MatchResponse(
                matches=matches,
                pdq_searched=searched,
                quality=query.quality,
                threshold=query.threshold,
                min_quality=state.settings.min_quality,
            )
        )
    caller.audit(total)
    return MatchBatchResponse(results=results)


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [UPLOAD_FIELD],
                    "properties": {UPLOAD_FIELD: {"type": "string", "format": "binary"}},
                }
            },
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@router.post(
    "/banks/{bank}/match/image",
    summary="Match an uploaded image (hashed in memory, never stored)",
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"model": ErrorResponse}, 415: {"model": ErrorResponse}},
)
async def match_image(
    request: Request,
    caller: ImageMatcher,
    threshold: Annotated[int | None, Query(ge=0, le=256)] = None,
    all_variants: Annotated[
        bool, Query(description="Also match flipped and quarter-turned copies.")
    ] = True,
) -> ImageMatchResponse:
    limit = _threshold(caller, threshold)
    hasher = caller.state.hasher
    if hasher is None:
        raise ApiError(404, "not_found", "this node does not match images")
    data = await read_upload(
        request.headers.get("content-type"),
        request.stream(),
        max_bytes=caller.state.settings.max_upload_bytes,
    )
    try:
        fp = await hasher.fingerprint(data, variants=all_variants)
    finally:
        del data  # the image itself goes no further
    pdq = list(fp.variants) if all_variants and fp.variants else [fp.pdq]
    answer = await caller.bank_runtime.match(
        pdq=pdq, quality=fp.quality, sha256=fp.sha256, md5=fp.md5, threshold=limit
    )
    matches = [MatchOut(**m.to_dict()) for m in answer.matches]  # type: ignore[arg-type]
    base = _answer(caller, matches, answer.pdq_searched, fp.quality, limit)
    return ImageMatchResponse(
        **base.model_dump(),
        fingerprint=FingerprintOut(
            pdq=str(fp.pdq),
            quality=fp.quality,
            sha256=fp.sha256,
            md5=fp.md5,
            width=fp.width,
            height=fp.height,
        ),
    )
