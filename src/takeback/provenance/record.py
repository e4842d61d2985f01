"""What TakeBack can prove about an original: its Content Credentials and its log entry.

:func:`original_record` gathers, for the evidence package of ``takeback
examine``, the original's C2PA verification and, when the bank holds a
registration log that registered the original's SHA-256, the log entry, an
offline inclusion proof (C2SP ``tlog-proof``) against the latest signed
checkpoint, and the result of verifying that proof with the log's own key,
exactly as ``takeback log verify`` would offline.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..imageio import ImageLimits
from .c2pa import verify_photo
from .log import RegistrationLog, verify_proof
from .log_errors import LogNotFoundError

__all__ = ["original_record"]


def original_record(
    original: str | os.PathLike[str],
    sha256: str,
    *,
    bank_dir: str | os.PathLike[str] | None = None,
    trust_anchors: str | os.PathLike[str] | bytes | None = None,
    limits: ImageLimits | None = None,
) -> dict[str, Any]:
    """The provenance section of an evidence package for ``original``.

    Returns
    -------
    dict
        ``{"c2pa": Verification.to_dict(), "log": {...} or None}``; the log part
        has ``entry``, ``proof`` (text), ``checkpoint`` (signed note text),
        ``verified`` (bool) and ``verdict``. ``log`` is None when there is no
        log in ``bank_dir`` or it never registered this photo.

    Raises
    ------
    LogError
        The log exists but is damaged or locked.
    """
    record: dict[str, Any] = {
        "c2pa": verify_photo(original, trust_anchors=trust_anchors, limits=limits).to_dict(),
        "log": None,
    }
    if bank_dir is None:
        return record
    try:
        log = RegistrationLog.open(Path(bank_dir))
    except LogNotFoundError:
        return record
    with log:
        found = log.find_sha256(sha256)
        if not found:
            return record
        entry = found[0]
        cp = log.latest_checkpoint()
        proof = log.proof_file(entry.index, checkpoint=cp)
        check = verify_proof(proof, log.verifier, sha256=sha256)
        record["log"] = {
            "entry": entry.to_dict(),
            "proof": proof.decode(),
            "checkpoint": cp.to_dict(),
            "verified": check.ok,
            "verdict": check.to_dict(),
        }
    return record
