"""Matching: a fingerprint (JSON) or an image (upload), against one bank.

PDQ is searched in this node's in-memory index (no database round trip);
SHA-256 / MD5 are looked up in the bank. An uploaded image is read into
memory, hashed in a worker process and dropped: it is never written to disk
or to a log.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from ...fingerprint.types import PdqHash
from ..deps import BankCaller, bank_caller
from ..errors import ApiError
from ..hashing import UPLOAD_FIELD, read_upload
from ..schemas import (
    ErrorResponse,
    FingerprintOut,
    ImageMatchResponse,
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


@router.post("/banks/{bank}/match", summary="Match a fingerprint")
async def match_fingerprint(body: MatchRequest, caller: Matcher) -> MatchResponse:
    threshold = _threshold(caller, body.threshold)
    if body.variants is not None:
        pdq = [PdqHash.from_hex(v) for v in body.variants]
    elif body.pdq is not None:
        pdq = [PdqHash.from_hex(body.pdq)]
    else:
        pdq = []
    answer = await caller.bank_runtime.match(
        pdq=pdq,
        quality=body.quality,
        sha256=parse_digest("sha256", body.sha256),
        md5=parse_digest("md5", body.md5),
        threshold=threshold,
    )
    matches = [MatchOut(**m.to_dict()) for m in answer.matches]  # type: ignore[arg-type]
    return _answer(caller, matches, answer.pdq_searched, body.quality, threshold)


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
        fp = await hasher.fingerprint(data)
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
