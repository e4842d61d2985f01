"""C2SP signed notes with Ed25519 keys, and C2SP ``tlog-checkpoint`` bodies.

A *signed note* (https://c2sp.org/signed-note) is a UTF-8 text ending in a
newline, a blank line, then one signature line per signer::

    <text>\\n
    \\n
    — <key name> base64(key ID [4 bytes] || Ed25519 signature [64 bytes])\\n

The key ID is the first four bytes of ``SHA-256(name || 0x0A || 0x01 ||
public key)``; keys travel as *verifier keys* ``name+<8 hex key ID>+base64(0x01
|| public key)`` and, privately, as ``PRIVATE+KEY+name+<key ID>+base64(0x01 ||
seed)`` (the strings the Go ``golang.org/x/mod/sumdb/note`` package uses).

A *checkpoint* (https://c2sp.org/tlog-checkpoint) is the note text::

    <origin>\\n
    <tree size, decimal>\\n
    <root hash, base64>\\n
    [extension lines]
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import unicodedata
from dataclasses import dataclass, field
from typing import Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from .log_errors import ProofFormatError
from .log_merkle import HASH_SIZE

__all__ = [
    "ALG_ED25519",
    "Checkpoint",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "key_id",
]

#: Signature-type byte of Ed25519 keys in signed notes.
ALG_ED25519: Final = 0x01
_DASH: Final = "\u2014 "  # an em dash and a space start every signature line
_MAX_NOTE: Final = 1 << 20


def _valid_name(name: str) -> bool:
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise ProofFormatError(f"{what} is not valid base64") from exc


def key_id(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID of an Ed25519 note key."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class NoteVerifier:
    """A public note key: a name and an Ed25519 public key.

    Examples
    --------
    >>> signer = NoteSigner.generate("example.org/log")
    >>> NoteVerifier.from_vkey(signer.verifier.vkey) == signer.verifier
    True
    """

    name: str
    public_key: bytes

    @property
    def key_id(self) -> bytes:
        return key_id(self.name, self.public_key)

    @property
    def vkey(self) -> str:
        """The verifier-key string ``name+keyid+base64(0x01||pubkey)``."""
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_id.hex()}+{raw}"

    @classmethod
    def from_vkey(cls, vkey: str) -> NoteVerifier:
        """Parse a verifier-key string; raises :class:`ProofFormatError`."""
        parts = vkey.strip().split("+", 2)
        if len(parts) != 3 or not _valid_name(parts[0]) or len(parts[1]) != 8:
            raise ProofFormatError(
                "a log key looks like NAME+KEYID+BASE64 (the line `takeback log init` prints)"
            )
        name, kid, raw_b64 = parts
        raw = _b64decode(raw_b64, "the log key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ProofFormatError("the log key is not an Ed25519 note key")
        verifier = cls(name, raw[1:])
        if verifier.key_id.hex() != kid.lower():
            raise ProofFormatError("the log key's ID does not match its name and public key")
        return verifier

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


@dataclass(frozen=True)
class NoteSigner:
    """A private note key: a name and an Ed25519 seed (keep it secret)."""

    name: str
    seed: bytes = field(repr=False)

    @classmethod
    def generate(cls, name: str) -> NoteSigner:
        """A fresh random key named ``name``."""
        if not _valid_name(name):
            raise ProofFormatError(f"{name!r} cannot name a key: no spaces or '+'")
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        seed = Ed25519PrivateKey.generate().private_bytes(
            Encoding.Raw, PrivateFormat.Raw, NoEncryption()
        )
        return cls(name, seed)

    @property
    def _key(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(self.seed)

    @property
    def verifier(self) -> NoteVerifier:
        pub = self._key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        return NoteVerifier(self.name, pub)

    @property
    def skey(self) -> str:
        """The private-key string ``PRIVATE+KEY+name+keyid+base64(0x01||seed)``."""
        raw = base64.b64encode(bytes([ALG_ED25519]) + self.seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.verifier.key_id.hex()}+{raw}"

    @classmethod
    def from_skey(cls, skey: str) -> NoteSigner:
        """Parse a private-key string; raises :class:`ProofFormatError`."""
        parts = skey.strip().split("+", 4)
        if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not _valid_name(parts[2]):
            raise ProofFormatError("the log signing key file is damaged (not PRIVATE+KEY+...)")
        raw = _b64decode(parts[4], "the log signing key")
        if len(raw) != 33 or raw[0] != ALG_ED25519:
            raise ProofFormatError("the log signing key is not an Ed25519 note key")
        signer = cls(parts[2], raw[1:])
        if signer.verifier.key_id.hex() != parts[3].lower():
            raise ProofFormatError("the log signing key's ID does not match the key")
        return signer

    def sign(self, text: str) -> SignedNote:
        """Sign a note text (which must end in a newline)."""
        _check_text(text)
        sig = self._key.sign(text.encode())
        return SignedNote(text, (NoteSignature(self.name, self.verifier.key_id, sig),))


@dataclass(frozen=True)
class NoteSignature:
    """One signature line: key name, 4-byte key ID and signature bytes."""

    name: str
    key_id: bytes
    signature: bytes

    def line(self) -> str:
        return f"{_DASH}{self.name} {base64.b64encode(self.key_id + self.signature).decode()}\n"


def _check_text(text: str) -> None:
    if not text.endswith("\n") or "\n\n" in text:
        raise ProofFormatError("a note text must end in one newline and have no blank line")
    if any(unicodedata.category(c) == "Cc" and c != "\n" for c in text):
        raise ProofFormatError("a note text must not contain control characters")


@dataclass(frozen=True)
class SignedNote:
    """A note text and its signatures.

    Attributes
    ----------
    text : str
        The signed text, ending in a newline.
    signatures : tuple of NoteSignature
    """

    text: str
    signatures: tuple[NoteSignature, ...]

    def __str__(self) -> str:
        return self.text + "\n" + "".join(s.line() for s in self.signatures)

    def to_bytes(self) -> bytes:
        return str(self).encode()

    @classmethod
    def parse(cls, data: bytes | str) -> SignedNote:
        """Parse a signed note; raises :class:`ProofFormatError`."""
        if isinstance(data, bytes):
            if len(data) > _MAX_NOTE:
                raise ProofFormatError("the signed note is too large")
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ProofFormatError("the signed note is not UTF-8 text") from exc
        split = data.rfind("\n\n")
        if split < 0:
            raise ProofFormatError("the signed note has no signature block")
        text, block = data[: split + 1], data[split + 2 :]
        _check_text(text)
        if not block.endswith("\n"):
            raise ProofFormatError("the signed note is truncated (no final newline)")
        sigs = []
        for line in block[:-1].split("\n"):
            if not line.startswith(_DASH):
                raise ProofFormatError(f"not a signature line: {line[:40]!r}")
            name, _, b64 = line[len(_DASH) :].partition(" ")
            if not _valid_name(name) or not b64 or " " in b64:
                raise ProofFormatError(f"malformed signature line: {line[:40]!r}")
            raw = _b64decode(b64, "a note signature")
            if len(raw) < 5:
                raise ProofFormatError("a note signature is too short")
            sigs.append(NoteSignature(name, raw[:4], raw[4:]))
        if not sigs:
            raise ProofFormatError("the signed note has no signatures")
        return cls(text, tuple(sigs))

    def verified_by(self, verifier: NoteVerifier) -> bool:
        """Whether exactly one signature line is ``verifier``'s and it is valid."""
        mine = [
            s for s in self.signatures if s.name == verifier.name and s.key_id == verifier.key_id
        ]
        if len(mine) != 1:
            return False
        return verifier.verify(self.text.encode(), mine[0].signature)


@dataclass(frozen=True)
class Checkpoint:
    """A C2SP ``tlog-checkpoint`` body: origin, tree size, root hash, extensions.

    Examples
    --------
    >>> cp = Checkpoint("example.org/log", 1, bytes(32))
    >>> Checkpoint.parse(cp.text()) == cp
    True
    """

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def text(self) -> str:
        """The note text of the checkpoint."""
        lines = [self.origin, str(self.size), base64.b64encode(self.root).decode()]
        return "\n".join([*lines, *self.extensions]) + "\n"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        """Parse a checkpoint body; raises :class:`ProofFormatError`."""
        lines = text.split("\n")
        if len(lines) < 4 or lines[-1] != "":
            raise ProofFormatError("a checkpoint has an origin, a size and a root hash line")
        origin, size_s, root_s, *ext = lines[:-1]
        if not origin or not size_s.isdigit() or (size_s != "0" and size_s.startswith("0")):
            raise ProofFormatError("malformed checkpoint origin or tree size")
        if not size_s.isascii():
            raise ProofFormatError("malformed checkpoint tree size")
        root = _b64decode(root_s, "the checkpoint root hash")
        if len(root) != HASH_SIZE:
            raise ProofFormatError("the checkpoint root hash is not 32 bytes")
        if any(not line for line in ext):
            raise ProofFormatError("a checkpoint extension line is empty")
        return cls(origin, int(size_s), root, tuple(ext))
