"""API keys: roles, bank scopes, stored only as hashes.

A key is shown once, when it is created, in the form ``tbk_<key id>_<secret>``:
a 12-hex-digit key id (not secret; it names the key in the audit log) and a
secret of 256 random bits (43 base64url characters). The service database
keeps the key id, the SHA-256 of the secret, the role, the bank scopes, a label
and the creation and revocation times; never the secret. A 256-bit random
secret needs no slow password hash: nobody can guess it, and its SHA-256 does
not help anyone who reads the database.

Requests carry the key as ``Authorization: Bearer tbk_...``. Checking it is a
dictionary look-up and a constant-time comparison of digests
(:func:`hmac.compare_digest`) against the in-memory :class:`KeyRing`, which is
reloaded from the database every few seconds so that keys created or revoked
on another node take effect there too.

Roles
-----
``submitter``
    submit and withdraw fingerprints, read entries, follow the change feed.
``matcher``
    match fingerprints and images, follow the change feed.
``admin``
    everything above, plus key administration and audit verification.

Scopes are bank names, or ``*`` for every bank; a key may use only the banks
in its scopes, whatever its role.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import threading
from dataclasses import dataclass
from typing import Final, Literal, get_args

from ..bank.model import utc_now
from ..errors import InputError
from .db import ServiceDb
from .settings import BANK_NAME_PATTERN

__all__ = [
    "ALL_BANKS",
    "KEY_PREFIX",
    "PERMISSIONS",
    "ApiKey",
    "KeyRing",
    "KeyRole",
    "KeyStore",
    "Permission",
    "hash_secret",
    "new_token",
    "parse_token",
]

#: Prefix of every key string.
KEY_PREFIX: Final = "tbk"
#: The scope that covers every bank.
ALL_BANKS: Final = "*"

KeyRole = Literal["submitter", "matcher", "admin"]
Permission = Literal["submit", "withdraw", "read", "match", "changes", "admin"]

#: What each role may do.
PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "submitter": frozenset({"submit", "withdraw", "read", "changes"}),
    "matcher": frozenset({"match", "changes"}),
    "admin": frozenset(get_args(Permission)),
}

_TOKEN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
_SCOPE = re.compile(BANK_NAME_PATTERN)
# A digest no secret has: compared against when the key id is unknown, so that
# both paths take the same time.
_NO_DIGEST: Final = "0" * 64


def hash_secret(secret: str) -> str:
    """The stored form of a key's secret: its SHA-256, hex."""
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A fresh key: ``(key_id, secret, token)``; the token is what the client sends.

    Examples
    --------
    >>> key_id, secret, token = new_token()
    >>> parse_token(token) == (key_id, secret)
    True
    """
    key_id = secrets.token_hex(6)
    secret = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
    return key_id, secret, f"{KEY_PREFIX}_{key_id}_{secret}"


def parse_token(token: str) -> tuple[str, str] | None:
    """``(key_id, secret)`` of a well-formed key string, else ``None``."""
    match = _TOKEN.match(token.strip())
    return (match.group(1), match.group(2)) if match else None


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One API key as stored (never its secret).

    Attributes
    ----------
    key_id : str
    role : {"submitter", "matcher", "admin"}
    banks : tuple of str
        Bank names the key may use, or ``("*",)``.
    label : str
        Who holds it ("platform X moderation").
    created_at : str
    revoked_at : str or None
    """

    key_id: str
    role: KeyRole
    banks: tuple[str, ...]
    label: str
    created_at: str
    revoked_at: str | None = None

    def allows(self, permission: str, bank: str | None = None) -> bool:
        """Whether the key's role grants ``permission`` (on ``bank``, when given)."""
        if self.revoked_at is not None or permission not in PERMISSIONS[self.role]:
            return False
        return bank is None or ALL_BANKS in self.banks or bank in self.banks

    def to_dict(self) -> dict[str, object]:
        """The JSON form (``admin keys list --json``, the admin API)."""
        return {
            "key_id": self.key_id,
            "role": self.role,
            "banks": list(self.banks),
            "label": self.label,
            "created_at": self.created_at,
            "revoked_at": self.revoked_at,
        }


def _check_new(role: str, banks: list[str], label: str) -> tuple[str, ...]:
    if role not in PERMISSIONS:
        raise InputError(f"unknown role {role!r}: choose submitter, matcher or admin")
    if not banks:
        raise InputError("give the banks the key may use (a bank name, or '*' for all)")
    for bank in banks:
        if bank != ALL_BANKS and not _SCOPE.match(bank):
            raise InputError(f"{bank!r} is not a bank name (or '*' for every bank)")
    if len(label) > 200:
        raise InputError("a key label may have at most 200 characters")
    return tuple(dict.fromkeys(banks))


class KeyStore:
    """Creates, lists and revokes keys in the service database.

    Parameters
    ----------
    db : ServiceDb
    """

    def __init__(self, db: ServiceDb) -> None:
        self.db = db

    def create(self, role: str, banks: list[str], label: str = "") -> tuple[ApiKey, str]:
        """A new key; returns it and its token (shown once, never stored).

        Raises
        ------
        InputError
            An unknown role, no scope, a malformed bank name or a label too long.
        """
        scopes = _check_new(role, banks, label)
        key_id, secret, token = new_token()
        key = ApiKey(key_id, role, scopes, label, utc_now())  # type: ignore[arg-type]
        self.db.query(
            f"INSERT INTO {self.db.keys_table} (key_id, secret_sha256, role, banks, label,"
            " created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (key_id, hash_secret(secret), role, json.dumps(list(scopes)), label, key.created_at),
        )
        return key, token

    def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key for good (its digest is erased); ``None`` when there is no such key."""
        self.db.query(
            f"UPDATE {self.db.keys_table} SET revoked_at = ?, secret_sha256 = ?"
            " WHERE key_id = ? AND revoked_at IS NULL",
            (utc_now(), _NO_DIGEST, key_id),
        )
        return next((k for k, _ in self._rows(key_id) if k.key_id == key_id), None)

    def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones included, oldest first."""
        return [key for key, _ in self._rows()]

    def _rows(self, key_id: str | None = None) -> list[tuple[ApiKey, str]]:
        sql = (
            f"SELECT key_id, role, banks, label, created_at, revoked_at, secret_sha256"
            f" FROM {self.db.keys_table}"
        )
        params: tuple[str, ...] = ()
        if key_id is not None:
            sql += " WHERE key_id = ?"
            params = (key_id,)
        rows = self.db.query(sql + " ORDER BY created_at, key_id", params)
        return [(ApiKey(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5]), r[6]) for r in rows]

    def digests(self) -> dict[str, tuple[ApiKey, str]]:
        """Active keys with their secret digests, by key id (for :class:`KeyRing`)."""
        return {k.key_id: (k, d) for k, d in self._rows() if k.revoked_at is None}


class KeyRing:
    """The active keys in memory: authentication without a database round trip.

    Parameters
    ----------
    store : KeyStore
    """

    def __init__(self, store: KeyStore) -> None:
        self.store = store
        self._keys: dict[str, tuple[ApiKey, str]] = {}
        self._lock = threading.Lock()

    def reload(self) -> None:
        """Read the keys again (picks up keys created or revoked elsewhere)."""
        keys = self.store.digests()
        with self._lock:
            self._keys = keys

    def forget(self, key_id: str) -> None:
        """Drop a key at once (it was just revoked on this node)."""
        with self._lock:
            self._keys.pop(key_id, None)

    def authenticate(self, token: str) -> ApiKey | None:
        """The key that ``token`` proves, or ``None``: unknown, revoked or a wrong secret."""
        parsed = parse_token(token)
        if parsed is None:
            return None
        key_id, secret = parsed
        with self._lock:
            found = self._keys.get(key_id)
        digest = found[1] if found else _NO_DIGEST
        ok = hmac.compare_digest(hash_secret(secret), digest)
        return found[0] if ok and found is not None else None

    def known(self, key_id: str) -> bool:
        """Whether ``key_id`` names an active key (for auditing failed attempts)."""
        with self._lock:
            return key_id in self._keys
