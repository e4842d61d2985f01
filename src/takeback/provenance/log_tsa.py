"""RFC 3161 timestamps on signed checkpoints.

A checkpoint proves order, not time. To pin *when* a checkpoint existed, its
signed-note bytes are hashed (SHA-256) and sent to a timestamp authority (TSA)
as a DER ``TimeStampReq``; the authority's signed ``TimeStampToken`` is kept
with the checkpoint and copied beside proof files (``PROOF.tsr``).

Configuration (read when a checkpoint is made, never at import):

``TAKEBACK_TSA_URL``
    The authority's HTTP(S) URL. Unset: no timestamps.
``TAKEBACK_TSA_CA``
    A PEM file with the authority's CA certificate(s), to verify tokens with
    ``openssl ts -verify``. Unset: tokens are checked for the right hash and
    nonce only, and reported as ``unverified``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import subprocess
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal

from asn1crypto import algos, cms, tsp

from .log_errors import TimestampError

__all__ = ["TimestampCheck", "TsaClient", "check_token", "token_time"]

_TIMEOUT: Final = 20.0
_MAX_RESPONSE: Final = 1 << 20


@dataclass(frozen=True)
class TimestampCheck:
    """The verdict on a timestamp token.

    Attributes
    ----------
    status : {"verified", "unverified", "invalid"}
        ``verified``: the hash matches and ``openssl ts -verify`` accepted the
        signature against the given CA; ``unverified``: the hash matches but no
        CA was given; ``invalid``: it does not match or the signature fails.
    time : str or None
        The authority's ``genTime`` (ISO 8601 UTC).
    message : str
    """

    status: Literal["verified", "unverified", "invalid"]
    time: str | None
    message: str

    def to_dict(self) -> dict[str, object]:
        return {"status": self.status, "time": self.time, "message": self.message}


def _parse_token(token: bytes) -> tsp.TSTInfo:
    info = cms.ContentInfo.load(token)
    signed = info["content"]
    tst = signed["encap_content_info"]["content"].parsed
    if not isinstance(tst, tsp.TSTInfo):
        raise ValueError("not a TSTInfo")
    return tst


def token_time(token: bytes) -> str | None:
    """The ``genTime`` of a timestamp token, or ``None`` if it cannot be read."""
    try:
        gen = _parse_token(token)["gen_time"].native
    except (ValueError, TypeError, KeyError):
        return None
    return gen.isoformat().replace("+00:00", "Z")


def check_token(token: bytes, message: bytes, *, ca_file: str | None = None) -> TimestampCheck:
    """Check that ``token`` timestamps ``message`` (and, with a CA, who signed it).

    Never raises: every problem is an ``invalid`` verdict.
    """
    digest = hashlib.sha256(message).digest()
    try:
        tst = _parse_token(token)
        imprint = tst["message_imprint"]
        algorithm = imprint["hash_algorithm"]["algorithm"].native
        hashed = imprint["hashed_message"].native
    except (ValueError, TypeError, KeyError) as exc:
        return TimestampCheck("invalid", None, f"the timestamp token cannot be parsed ({exc})")
    when = token_time(token)
    if algorithm != "sha256" or hashed != digest:
        return TimestampCheck("invalid", when, "the timestamp is for other data")
    if ca_file is None:
        return TimestampCheck(
            "unverified", when, "the timestamp covers this checkpoint; its signer was not checked"
        )
    ok, detail = _openssl_verify(token, digest, ca_file)
    if not ok:
        return TimestampCheck("invalid", when, f"the timestamp signature failed: {detail}")
    return TimestampCheck("verified", when, "timestamp verified against the given CA")


def _openssl_verify(token: bytes, digest: bytes, ca_file: str) -> tuple[bool, str]:
    openssl = shutil.which("openssl")
    if openssl is None:
        return False, "openssl is not installed, cannot check the signature"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "token.der"
        path.write_bytes(token)
        try:
            proc = subprocess.run(
                [
                    openssl,
                    "ts",
                    "-verify",
                    "-digest",
                    digest.hex(),
                    "-token_in",
                    "-in",
                    str(path),
                    "-CAfile",
                    ca_file,
                ],
                capture_output=True,
                text=True,
                timeout=_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return False, str(exc)
    if proc.returncode == 0 and "Verification: OK" in proc.stdout:
        return True, "ok"
    lines = (proc.stderr or proc.stdout).strip().splitlines()
    return False, lines[-1] if lines else f"openssl exit {proc.returncode}"


@dataclass(frozen=True)
class TsaClient:
    """Asks one RFC 3161 timestamp authority for tokens.

    Parameters
    ----------
    url : str
        The authority's URL (``application/timestamp-query`` over HTTP POST).
    ca_file : str, optional
        PEM CA file to verify the tokens with.
    """

    url: str
    ca_file: str | None = None

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> TsaClient | None:
        """The client configured by ``TAKEBACK_TSA_URL`` / ``TAKEBACK_TSA_CA``, if any."""
        env = os.environ if environ is None else environ
        url = env.get("TAKEBACK_TSA_URL", "").strip()
        if not url:
            return None
        return cls(url, env.get("TAKEBACK_TSA_CA") or None)

    def request(self, message: bytes) -> bytes:
        """Timestamp ``message``: returns the DER ``TimeStampToken``.

        Raises :class:`TimestampError` when the authority cannot be reached,
        refuses, or answers with a token for something else.
        """
        digest = hashlib.sha256(message).digest()
        nonce = secrets.randbits(63)
        req = tsp.TimeStampReq(
            {
                "version": "v1",
                "message_imprint": {
                    "hash_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
                    "hashed_message": digest,
                },
                "nonce": nonce,
                "cert_req": True,
            }
        )
        http = urllib.request.Request(
            self.url,
            data=req.dump(),
            headers={"Content-Type": "application/timestamp-query"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(http, timeout=_TIMEOUT) as resp:
                body = resp.read(_MAX_RESPONSE + 1)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise TimestampError(
                f"the timestamp authority {self.url} did not answer ({exc}); "
                "check TAKEBACK_TSA_URL or unset it to skip timestamps"
            ) from exc
        if len(body) > _MAX_RESPONSE:
            raise TimestampError(f"the timestamp authority {self.url} sent an oversized reply")
        try:
            parsed = tsp.TimeStampResp.load(body)
            status = parsed["status"]["status"].native
            token = parsed["time_stamp_token"]
            token_der = token.dump() if token.native is not None else b""
            tst = _parse_token(token_der) if token_der else None
        except (ValueError, TypeError, KeyError) as exc:
            raise TimestampError(
                f"the timestamp authority {self.url} sent something that is not an RFC 3161 reply"
            ) from exc
        if status not in ("granted", "granted_with_mods") or tst is None:
            raise TimestampError(f"the timestamp authority {self.url} refused: {status}")
        if tst["nonce"].native != nonce:
            raise TimestampError(f"the timestamp authority {self.url} replied to another request")
        check = check_token(token_der, message, ca_file=self.ca_file)
        if check.status == "invalid":
            raise TimestampError(f"the token from {self.url} is not valid: {check.message}")
        return token_der
