"""Request and response bodies of the ``/v1`` API (pydantic models).

Hash strings are checked by the library (:meth:`~takeback.fingerprint.types.PdqHash.from_hex`
and :func:`parse_digest`), so a bad one is answered with the library's
``invalid_hash`` code rather than a schema error.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..errors import InvalidHashError
from .auth import KeyRole

__all__ = [
    "MAX_DERIVATIVE_BASE64",
    "MAX_ID",
    "ChangeOut",
    "ChangesResponse",
    "EntryId",
    "EntryOut",
    "ErrorBody",
    "ErrorResponse",
    "FingerprintOut",
    "HashIn",
    "ImageMatchResponse",
    "KeyCreate",
    "KeyCreated",
    "KeyOut",
    "MatchBatchRequest",
    "MatchBatchResponse",
    "MatchOut",
    "MatchRequest",
    "MatchResponse",
    "SubmitRequest",
    "SubmitResponse",
    "SubmitResult",
    "WithdrawRequest",
    "WithdrawResponse",
    "parse_digest",
]

#: Largest id or sequence number (SQLite and PostgreSQL store them as int64).
MAX_ID = 2**63 - 1
#: An entry id in a request.
EntryId = Annotated[int, Field(ge=1, le=MAX_ID)]
#: Longest ``derivative`` accepted (16 KiB once decoded, in base64).
MAX_DERIVATIVE_BASE64 = 4 * ((16 * 1024 + 2) // 3)
_DIGEST_LENGTHS = {"sha256": 64, "md5": 32}
_HEX = re.compile(r"^[0-9a-fA-F]+$")


def parse_digest(kind: Literal["sha256", "md5"], value: str | None) -> str | None:
    """A file digest in canonical lower-case hex, or ``None``.

    Raises
    ------
    InvalidHashError
        Not hex, or not 64 (SHA-256) / 32 (MD5) digits.
    """
    if value is None:
        return None
    text = value.strip()
    length = _DIGEST_LENGTHS[kind]
    if len(text) != length or not _HEX.match(text):
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise InvalidHashError(
            f"{shown!r} is not a {kind.upper()} digest: expected {length} hex digits"
        )
    return text.lower()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HashIn(_Model):
    """One fingerprint to register."""

    pdq: str | None = Field(None, max_length=80, description="PDQ hash, 64 hex digits.")
    quality: int | None = Field(None, ge=0, le=100, description="PDQ quality 0-100.")
    sha256: str | None = Field(None, max_length=80, description="SHA-256 of the file, hex.")
    md5: str | None = Field(None, max_length=80, description="MD5 of the file, hex.")
    label: str = Field("", max_length=256, description="A name; matchers see it.")
    partner_ref: str | None = Field(
        None, max_length=256, description="The submitter's own reference for this entry."
    )
    derivative: str | None = Field(
        None,
        max_length=MAX_DERIVATIVE_BASE64,
        description="Derivative fingerprint (`takeback.fingerprint.derivative`, format "
        "version 2), base64, at most 16 KiB. Stored with the entry and carried by the "
        "change feed; `takeback match` on the bank uses it to find doctored copies. "
        "A malformed one refuses the request with `invalid_derivative`.",
    )

    @model_validator(mode="after")
    def _some_hash(self) -> HashIn:
        if self.pdq is None and self.sha256 is None and self.md5 is None:
            raise ValueError("give at least one of pdq, sha256 and md5")
        if "\x00" in self.label or "\x00" in (self.partner_ref or ""):
            raise ValueError("label and partner_ref may not contain NUL characters")
        return self


class SubmitRequest(_Model):
    """Fingerprints to register in one transaction."""

    entries: list[HashIn] = Field(min_length=1)


class SubmitResult(_Model):
    id: int
    duplicate_of: int | None = Field(
        description="Set when the same SHA-256 (or PDQ, without one) was already registered."
    )
    indexed: bool = Field(description="Whether the PDQ hash is matched (quality high enough).")


class SubmitResponse(_Model):
    results: list[SubmitResult]


class WithdrawRequest(_Model):
    ids: list[EntryId] = Field(min_length=1)


class WithdrawResponse(_Model):
    removed: list[int]
    missing: list[int]


class EntryOut(_Model):
    id: int
    label: str
    pdq: str | None
    quality: int | None
    sha256: str | None
    md5: str | None
    partner_ref: str | None
    added_at: str
    seq: int | None


class MatchRequest(_Model):
    """A fingerprint to look up."""

    pdq: str | None = Field(None, max_length=80, description="PDQ hash, 64 hex digits.")
    quality: int | None = Field(
        None, ge=0, le=100, description="Its PDQ quality; below the minimum, PDQ is not searched."
    )
    variants: list[str] | None = Field(
        None,
        min_length=8,
        max_length=8,
        description="The 8 dihedral PDQ hashes (original first), to match flipped or "
        "turned copies; replaces `pdq`.",
    )
    sha256: str | None = Field(None, max_length=80)
    md5: str | None = Field(None, max_length=80)
    threshold: int | None = Field(
        None, ge=0, le=256, description="PDQ distance threshold (default 31)."
    )

    @model_validator(mode="after")
    def _some_hash(self) -> MatchRequest:
        if self.pdq is None and self.variants is None and self.sha256 is None and self.md5 is None:
            raise ValueError("give pdq (or variants), sha256 or md5")
        return self


class MatchOut(_Model):
    id: int
    label: str
    method: Literal["sha256", "md5", "pdq"]
    distance: int
    threshold: int
    variant: str | None
    score: float


class MatchResponse(_Model):
    matches: list[MatchOut]
    pdq_searched: bool = Field(description="False when the quality was below the minimum.")
    quality: int | None
    threshold: int
    min_quality: int


class MatchBatchRequest(_Model):
    """Several fingerprints to look up in one request (each as in a single match)."""

    queries: list[MatchRequest] = Field(
        min_length=1, description="At most `max_batch` (1000); each costs one rate-limit token."
    )


class MatchBatchResponse(_Model):
    results: list[MatchResponse] = Field(description="One answer per query, in order.")


class FingerprintOut(_Model):
    pdq: str
    quality: int
    sha256: str
    md5: str
    width: int
    height: int


class ImageMatchResponse(MatchResponse):
    fingerprint: FingerprintOut = Field(description="The uploaded image's fingerprint.")


class ChangeOut(_Model):
    seq: int
    op: Literal["add", "remove"]
    id: int
    at: str


class ChangesResponse(_Model):
    changes: list[ChangeOut]
    next_since: int = Field(description="Pass as `since` to read on.")
    more: bool = Field(description="Whether more changes are waiting now.")


class KeyCreate(_Model):
    role: KeyRole
    banks: list[str] = Field(min_length=1, description="Bank names, or ['*'].")
    label: str = Field("", max_length=200)


class KeyOut(_Model):
    key_id: str
    role: KeyRole
    banks: list[str]
    label: str
    created_at: str
    revoked_at: str | None


class KeyCreated(KeyOut):
    token: str = Field(description="The key itself: shown this once, never stored.")


class ErrorBody(_Model):
    code: str
    message: str


class ErrorResponse(_Model):
    error: ErrorBody
