"""The registration log: an append-only Merkle log of registered photos.

Each entry commits to one registered photo's fingerprints (SHA-256, PDQ, a
digest of the derivative fingerprint), a salted hash of its label and its
registration time (:class:`~takeback.provenance.log_format.EntryData`). The
tree is RFC 9162's; checkpoints are C2SP ``tlog-checkpoint`` bodies signed as
Ed25519 C2SP signed notes; proofs are C2SP ``tlog-proof`` files that verify
with no bank present (:func:`verify_proof`).

Storage
-------
``log.sqlite3`` in the bank directory, WAL mode, ``synchronous=FULL``, one
``BEGIN IMMEDIATE`` transaction per append batch. Tables:

``entries(idx, data, salt, bank_id)``
    the 138-byte entry, its private 16-byte label salt and the bank's id.
``nodes(id, hash)``
    the hash of every *perfect* subtree, leaves included, keyed by its in-order
    number (:func:`~takeback.provenance.log_merkle.node_id`). Any range hash is
    a fold of at most ~2 log2(n) of them, so roots, inclusion and consistency
    proofs are a single batched look-up, never a rebuild.
``checkpoints(size, note, created_at, tsa_token, tsa_url)``
    every signed checkpoint, with its RFC 3161 token when one was obtained.

The signing key is ``log-signing.key`` (mode 0600; the note private-key
string) beside ``log.vkey`` (the verifier key to publish).

Examples
--------
>>> import tempfile
>>> with tempfile.TemporaryDirectory() as tmp, RegistrationLog.create(tmp) as log:
...     [e] = log.append([EntryData(1700000000, bytes(32), None, None, bytes(32))])
...     proof, key = log.proof_file(e.index), log.verifier
>>> str(verify_proof(proof, key).verdict)
'verified'
"""

from __future__ import annotations

import enum
import os
import secrets
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final, Self

from .. import _sqlite
from .log_errors import (
    LogCorruptError,
    LogEntryNotFoundError,
    LogError,
    LogNotFoundError,
    ProofFormatError,
    TimestampError,
)
from .log_format import EntryData, TlogProof, label_commitment, parse_time
from .log_merkle import (
    EMPTY_ROOT,
    consistency_ranges,
    hashes_for_ranges,
    inclusion_ranges,
    leaf_hash,
    node_hash,
    node_id,
    perfect_decomposition,
    verify_consistency,
    verify_inclusion,
)
from .log_note import Checkpoint, NoteSigner, NoteVerifier, SignedNote
from .log_tsa import TimestampCheck, TsaClient, check_token, token_time

if TYPE_CHECKING:
    from ..bank.model import BankEntry

__all__ = [
    "DB_NAME",
    "KEY_NAME",
    "VKEY_NAME",
    "ConsistencyResult",
    "LogEntry",
    "ProofResult",
    "RegistrationLog",
    "StoredCheckpoint",
    "Verdict",
    "check_consistency",
    "log_registrations",
    "parse_consistency_proof",
    "verify_consistency_proof",
    "verify_proof",
]

#: File name of the log database inside a bank directory.
DB_NAME: Final = "log.sqlite3"
#: File name of the private signing key (mode 0600).
KEY_NAME: Final = "log-signing.key"
#: File name of the public verifier key.
VKEY_NAME: Final = "log.vkey"
SCHEMA_VERSION: Final = 1
_APPLICATION_ID: Final = 0x54424C47  # "TBLG"
_SALT_SIZE: Final = 16
_CONSISTENCY_HEADER: Final = "takeback/consistency-proof@v1"

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE entries (
    idx      INTEGER PRIMARY KEY,
    data     BLOB NOT NULL,
    salt     BLOB,
    bank_id  INTEGER
);
CREATE TABLE nodes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE checkpoints (
    size        INTEGER PRIMARY KEY,
    note        BLOB NOT NULL,
    created_at  TEXT NOT NULL,
    tsa_token   BLOB,
    tsa_url     TEXT
);
"""

_KIND: Final = _sqlite.DatabaseKind(
    what="registration log",
    application_id=_APPLICATION_ID,
    version=SCHEMA_VERSION,
    schema=_SCHEMA,
    error=LogError,
    not_found=LogNotFoundError,
    corrupt=LogCorruptError,
)


class Verdict(enum.StrEnum):
    """Outcome of checking a proof or checkpoint (a result, never an exception)."""

    #: Everything checks out.
    VERIFIED = "verified"
    #: The file cannot be parsed (truncated, garbled, not a proof).
    MALFORMED = "malformed"
    #: The checkpoint is not signed by the given key (forged, or another key).
    BAD_SIGNATURE = "bad_signature"
    #: The checkpoint is for another log (origin differs from the key's name).
    WRONG_ORIGIN = "wrong_origin"
    #: The entry does not match the leaf the proof is for (modified entry).
    ENTRY_MISMATCH = "entry_mismatch"
    #: The entry is not what the verifier expected (another photo).
    WRONG_ENTRY = "wrong_entry"
    #: The inclusion proof does not lead to the checkpoint's root.
    NOT_INCLUDED = "not_included"
    #: The checkpoint is older than one already known (a replay).
    STALE = "stale"
    #: Two checkpoints of the log disagree: the log was forked or rewritten.
    FORKED = "forked"


@dataclass(frozen=True)
class LogEntry:
    """One entry of the log, with its position.

    Attributes
    ----------
    index : int
        Zero-based position in the log.
    data : EntryData
        The public content (the leaf data).
    bank_id : int or None
        The bank entry it registers, when known.
    salt : bytes or None
        The private label salt (``None`` for entries read from a proof).
    """

    index: int
    data: EntryData
    bank_id: int | None = None
    salt: bytes | None = None

    @property
    def leaf_hash(self) -> bytes:
        return self.data.leaf_hash

    def reveals(self, label: str) -> bool:
        """Whether ``label`` is the label this entry committed to."""
        return self.salt is not None and label_commitment(label, self.salt) == (
            self.data.label_commitment
        )

    def to_dict(self, *, reveal: bool = False) -> dict[str, object]:
        """JSON form (``log show --json``); the salt only with ``reveal``."""
        out: dict[str, object] = {
            "index": self.index,
            "leaf_hash": self.leaf_hash.hex(),
            "bank_id": self.bank_id,
            **self.data.to_dict(),
        }
        if reveal:
            out["label_salt"] = None if self.salt is None else self.salt.hex()
        return out


@dataclass(frozen=True)
class StoredCheckpoint:
    """A signed checkpoint as kept in the log, with its timestamp token if any."""

    checkpoint: Checkpoint
    note: SignedNote
    created_at: str
    tsa_token: bytes | None = None
    tsa_url: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "origin": self.checkpoint.origin,
            "size": self.checkpoint.size,
            "root": self.checkpoint.root.hex(),
            "note": str(self.note),
            "created_at": self.created_at,
            "timestamp": None if self.tsa_token is None else token_time(self.tsa_token),
            "tsa_url": self.tsa_url,
        }


@dataclass(frozen=True)
class ProofResult:
    """The verdict on a proof file.

    Attributes
    ----------
    verdict : Verdict
    message : str
        What the verdict means, in plain words.
    index : int or None
    entry : EntryData or None
    checkpoint : Checkpoint or None
    timestamp : TimestampCheck or None
        The check of a ``.tsr`` token given with the proof.
    """

    verdict: Verdict
    message: str
    index: int | None = None
    entry: EntryData | None = None
    checkpoint: Checkpoint | None = None
    timestamp: TimestampCheck | None = None

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VERIFIED

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": str(self.verdict),
            "ok": self.ok,
            "message": self.message,
            "index": self.index,
            "entry": None if self.entry is None else self.entry.to_dict(),
            "origin": None if self.checkpoint is None else self.checkpoint.origin,
            "tree_size": None if self.checkpoint is None else self.checkpoint.size,
            "root": None if self.checkpoint is None else self.checkpoint.root.hex(),
            "timestamp": None if self.timestamp is None else self.timestamp.to_dict(),
        }


@dataclass(frozen=True)
class ConsistencyResult:
    """The verdict on whether a newer checkpoint extends an older one."""

    verdict: Verdict
    message: str
    old: Checkpoint | None = None
    new: Checkpoint | None = None
    hashes: tuple[bytes, ...] = ()

    @property
    def ok(self) -> bool:
        return self.verdict is Verdict.VERIFIED

    def to_dict(self) -> dict[str, object]:
        return {
            "verdict": str(self.verdict),
            "ok": self.ok,
            "message": self.message,
            "old_size": None if self.old is None else self.old.size,
            "new_size": None if self.new is None else self.new.size,
            "old_root": None if self.old is None else self.old.root.hex(),
            "new_root": None if self.new is None else self.new.root.hex(),
            "proof": [h.hex() for h in self.hashes],
        }

    def proof_text(self) -> str:
        """The consistency proof as a small text file (see docs/log.md)."""
        if self.old is None or self.new is None:
            raise LogError("no consistency proof to write: the checkpoints did not verify")
        lines = [_CONSISTENCY_HEADER, f"old {self.old.size}", f"new {self.new.size}"]
        import base64

        lines += [base64.b64encode(h).decode() for h in self.hashes]
        return "\n".join(lines) + "\n"


def parse_consistency_proof(text: str) -> tuple[int, int, tuple[bytes, ...]]:
    """Parse a consistency proof file; raises :class:`ProofFormatError`."""
    import base64
    import binascii

    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 3 or lines[0] != _CONSISTENCY_HEADER:
        raise ProofFormatError(f"not a consistency proof (first line is not {_CONSISTENCY_HEADER})")
    try:
        old = int(lines[1].removeprefix("old "))
        new = int(lines[2].removeprefix("new "))
        hashes = tuple(base64.b64decode(line, validate=True) for line in lines[3:])
    except (ValueError, binascii.Error) as exc:
        raise ProofFormatError("the consistency proof is garbled") from exc
    if not lines[1].startswith("old ") or not lines[2].startswith("new "):
        raise ProofFormatError("the consistency proof has no old/new size lines")
    return old, new, hashes


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


class RegistrationLog:
    """The append-only registration log of one bank.

    Use :meth:`open` (an existing log) or :meth:`create` (new or existing).
    A context manager; :meth:`close` is idempotent.
    """

    def __init__(self, conn: sqlite3.Connection, directory: Path) -> None:
        self._conn: sqlite3.Connection | None = conn
        self.directory = directory
        self.path = directory / DB_NAME
        self._signer: NoteSigner | None = None
        self._origin: str | None = None

    # -- opening --------------------------------------------------------------
    @classmethod
    def open(cls, bank_dir: str | os.PathLike[str], *, busy_timeout: float = 5.0) -> Self:
        """Open the log of ``bank_dir``; raises :class:`LogNotFoundError`."""
        directory = Path(bank_dir)
        if not (directory / DB_NAME).is_file():
            raise LogNotFoundError(
                f"no registration log in {directory}: run `takeback log init` "
                "or register photos with `takeback bank add --log`",
                path=str(directory),
            )
        return cls._connect(directory, create=False, origin=None, busy_timeout=busy_timeout)

    @classmethod
    def create(
        cls,
        bank_dir: str | os.PathLike[str],
        *,
        origin: str | None = None,
        busy_timeout: float = 5.0,
    ) -> Self:
        """Open the log of ``bank_dir``, creating it (and its signing key) if needed.

        Parameters
        ----------
        origin : str, optional
            The log's name in checkpoints, for a new log (default
            ``takeback-log/<16 random hex digits>``). Ignored for an existing log.
        """
        directory = Path(bank_dir)
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise LogError(
                f"cannot create the bank directory {directory} ({exc.strerror})",
                path=str(directory),
            ) from exc
        log = cls._connect(directory, create=True, origin=origin, busy_timeout=busy_timeout)
        try:
            log.signer  # noqa: B018 - create the key now, not at the first checkpoint
        except BaseException:
            log.close()
            raise
        return log

    @classmethod
    def _connect(
        cls, directory: Path, *, create: bool, origin: str | None, busy_timeout: float
    ) -> Self:
        path = directory / DB_NAME

        def initialise(conn: sqlite3.Connection) -> None:
            name = origin or f"takeback-log/{secrets.token_hex(8)}"
            if any(c.isspace() or c == "+" for c in name):
                raise ProofFormatError(f"{name!r} cannot be a log origin: no spaces or '+'")
            conn.execute("INSERT INTO meta VALUES ('origin', ?)", (name,))

        conn = _sqlite.connect(path, _KIND, busy_timeout=busy_timeout)
        try:
            _sqlite.prepare(conn, path, _KIND, create=create, initialise=initialise)
            log = cls(conn, directory)
            with log._translate("open"):
                conn.execute("PRAGMA cache_size=-32768")  # 32 MiB: the upper tree levels stay hot
                row = conn.execute("SELECT value FROM meta WHERE key = 'origin'").fetchone()
            if row is None:
                raise LogCorruptError(f"{path} has no origin: the log is damaged", path=str(path))
            log._origin = row[0]
        except BaseException:
            conn.close()
            raise
        return log

    @property
    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise LogError("the registration log has been closed")
        return self._conn

    def _translate(self, action: str) -> _sqlite.SqliteErrors:
        return _sqlite.SqliteErrors(str(self.path), action, _KIND)

    def close(self) -> None:
        """Close the database; calling it twice is harmless."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys -----------------------------------------------------------------
    @property
    def origin(self) -> str:
        """The log's origin line (also the name of its signing key)."""
        if self._origin is None:
            raise LogError("the registration log has been closed")
        return self._origin

    @property
    def signer(self) -> NoteSigner:
        """The signing key, created (mode 0600) on first use."""
        if self._signer is None:
            key_path = self.directory / KEY_NAME
            try:
                text = key_path.read_text(encoding="ascii")
            except FileNotFoundError:
                signer = NoteSigner.generate(self.origin)
                try:
                    _write_private(key_path, signer.skey + "\n")
                except FileExistsError:  # another process made it first
                    text = key_path.read_text(encoding="ascii")
                else:
                    (self.directory / VKEY_NAME).write_text(signer.verifier.vkey + "\n")
                    text = signer.skey
            except (OSError, UnicodeDecodeError) as exc:
                raise LogCorruptError(
                    f"cannot read the log signing key {key_path} ({exc})", path=str(key_path)
                ) from exc
            try:
                signer = NoteSigner.from_skey(text)
            except ProofFormatError as exc:
                raise LogCorruptError(exc.message, path=str(key_path)) from exc
            if signer.name != self.origin:
                raise LogCorruptError(
                    f"the signing key {key_path} belongs to log {signer.name!r}, "
                    f"not {self.origin!r}",
                    path=str(key_path),
                )
            self._signer = signer
        return self._signer

    @property
    def verifier(self) -> NoteVerifier:
        """The public key to give verifiers (``.vkey`` is its string form)."""
        return self.signer.verifier

    # -- appending ------------------------------------------------------------
    @property
    def size(self) -> int:
        """The number of entries."""
        with self._translate("read"):
            return self._size(self._c)

    @staticmethod
    def _size(conn: sqlite3.Connection) -> int:
        row = conn.execute("SELECT max(idx) FROM entries").fetchone()
        return 0 if row[0] is None else row[0] + 1

    def append(
        self,
        entries: Iterable[EntryData],
        *,
        salts: Sequence[bytes | None] | None = None,
        bank_ids: Sequence[int | None] | None = None,
    ) -> list[LogEntry]:
        """Append entries in one transaction; returns them with their indices.

        Parameters
        ----------
        entries : iterable of EntryData
        salts, bank_ids : sequence, optional
            The private label salt and the bank id of each entry.
        """
        batch = list(entries)
        if not batch:
            return []
        salts = list(salts) if salts is not None else [None] * len(batch)
        bank_ids = list(bank_ids) if bank_ids is not None else [None] * len(batch)
        if len(salts) != len(batch) or len(bank_ids) != len(batch):
            raise ValueError("salts and bank_ids must match the entries one to one")
        return self._append_raw([e.encode() for e in batch], batch, salts, bank_ids)

    def _append_raw(
        self,
        encoded: list[bytes],
        batch: Sequence[EntryData] | None = None,
        salts: Sequence[bytes | None] | None = None,
        bank_ids: Sequence[int | None] | None = None,
    ) -> list[LogEntry]:
        """Append leaf data as is (entries, or raw leaves for the RFC test vectors)."""
        salts = salts if salts is not None else [None] * len(encoded)
        bank_ids = bank_ids if bank_ids is not None else [None] * len(encoded)
        with self._translate("append to"), _sqlite.write_transaction(self._c) as conn:
            start = self._size(conn)
            frontier = self._frontier(conn, start)
            rows = self._grow(frontier, start, encoded)
            conn.executemany(
                "INSERT INTO entries (idx, data, salt, bank_id) VALUES (?, ?, ?, ?)",
                zip(range(start, start + len(encoded)), encoded, salts, bank_ids, strict=True),
            )
            conn.executemany("INSERT INTO nodes (id, hash) VALUES (?, ?)", rows)
        if batch is None:
            return []
        return [LogEntry(start + i, e, bank_ids[i], salts[i]) for i, e in enumerate(batch)]

    def _frontier(self, conn: sqlite3.Connection, size: int) -> list[tuple[int, int, bytes]]:
        """The perfect subtrees ``(level, index, hash)`` that make up ``[0, size)``."""
        if size == 0:
            return []
        plan = perfect_decomposition(0, size)
        stored = self._lookup(conn, [node_id(lv, ix) for lv, ix in plan])
        return [(lv, ix, stored[node_id(lv, ix)]) for lv, ix in plan]

    @staticmethod
    def _grow(
        stack: list[tuple[int, int, bytes]], start: int, encoded: list[bytes]
    ) -> list[tuple[int, bytes]]:
        """Add leaves to the frontier ``stack``; returns the new node rows, sorted."""
        rows: list[tuple[int, bytes]] = []
        for i, data in enumerate(encoded, start):
            h = leaf_hash(data)
            rows.append((i << 1, h))
            level, idx = 0, i
            while stack and stack[-1][0] == level:
                _, left_idx, left = stack.pop()
                h = node_hash(left, h)
                level, idx = level + 1, left_idx >> 1
                rows.append((node_id(level, idx), h))
            stack.append((level, idx, h))
        rows.sort()
        return rows

    def append_bank_entry(
        self, entry: BankEntry, derivative_digest: bytes | None = None
    ) -> LogEntry:
        """Register one bank entry (see :meth:`append_bank_entries`)."""
        return self.append_bank_entries([entry], [derivative_digest])[0]

    def append_bank_entries(
        self,
        entries: Sequence[BankEntry],
        derivative_digests: Sequence[bytes | None] | None = None,
    ) -> list[LogEntry]:
        """Register bank entries: fingerprints, salted label and ``added_at`` time."""
        digests = list(derivative_digests or [None] * len(entries))
        data, salts = [], []
        for entry, digest in zip(entries, digests, strict=True):
            salt = secrets.token_bytes(_SALT_SIZE)
            salts.append(salt)
            data.append(
                EntryData(
                    registered_at=parse_time(entry.added_at),
                    sha256=None if entry.sha256 is None else bytes.fromhex(entry.sha256),
                    pdq=None if entry.pdq is None else entry.pdq.value,
                    derivative_digest=digest,
                    label_commitment=label_commitment(entry.label, salt),
                )
            )
        return self.append(data, salts=salts, bank_ids=[e.id for e in entries])

    # -- reading --------------------------------------------------------------
    def entry(self, index: int) -> LogEntry:
        """One entry; raises :class:`LogEntryNotFoundError`."""
        with self._translate("read"):
            row = self._c.execute(
                "SELECT data, salt, bank_id FROM entries WHERE idx = ?", (index,)
            ).fetchone()
        if row is None:
            raise LogEntryNotFoundError(
                f"the log has no entry {index} (it has {self.size}; indices start at 0)"
            )
        try:
            data = EntryData.decode(row[0])
        except ProofFormatError as exc:
            raise LogCorruptError(f"log entry {index} is damaged: {exc.message}") from exc
        return LogEntry(index, data, row[2], row[1])

    def find_sha256(self, sha256_hex: str) -> list[LogEntry]:
        """Entries registering the photo with this SHA-256 (a full scan)."""
        try:
            digest = bytes.fromhex(sha256_hex)
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ProofFormatError(f"{sha256_hex!r} is not a SHA-256 hex digest")
        with self._translate("read"):
            rows = self._c.execute(
                "SELECT idx FROM entries WHERE substr(data, 11, 32) = ? ORDER BY idx", (digest,)
            ).fetchall()
        return [self.entry(r[0]) for r in rows]

    def _lookup(self, conn: sqlite3.Connection, ids: list[int]) -> dict[int, bytes]:
        stored: dict[int, bytes] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ",".join("?" * len(chunk))
            stored.update(conn.execute(f"SELECT id, hash FROM nodes WHERE id IN ({marks})", chunk))
        if len(stored) != len(set(ids)):
            raise LogCorruptError(f"the log {self.path} is missing tree hashes: it is damaged")
        return stored

    def _check_size(self, size: int | None) -> int:
        current = self._size(self._c)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LogEntryNotFoundError(f"the log has {current} entries, not {size}")
        return size

    def root(self, size: int | None = None) -> bytes:
        """The root hash of the first ``size`` entries (default: all)."""
        with self._translate("read"):
            size = self._check_size(size)
            if size == 0:
                return EMPTY_ROOT
            [root] = hashes_for_ranges([(0, size)], lambda ids: self._lookup(self._c, ids))
        return root

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """The RFC 9162 inclusion proof of entry ``index`` in the tree of ``size``."""
        with self._translate("read"):
            size = self._check_size(size)
            if not 0 <= index < size:
                raise LogEntryNotFoundError(
                    f"entry {index} is not in the first {size} entries of the log"
                )
            return hashes_for_ranges(
                inclusion_ranges(index, size), lambda ids: self._lookup(self._c, ids)
            )

    def consistency_proof(self, old: int, new: int | None = None) -> list[bytes]:
        """The RFC 9162 consistency proof from size ``old`` to size ``new``."""
        with self._translate("read"):
            new = self._check_size(new)
            if not 0 <= old <= new:
                raise LogEntryNotFoundError(f"cannot prove size {old} grew into size {new}")
            return hashes_for_ranges(
                consistency_ranges(old, new), lambda ids: self._lookup(self._c, ids)
            )

    # -- checkpoints ----------------------------------------------------------
    def checkpoint(self, *, tsa: TsaClient | bool | None = True) -> StoredCheckpoint:
        """Sign (and keep) a checkpoint of the current tree.

        Parameters
        ----------
        tsa : TsaClient, None or bool
            ``True`` (default): timestamp with the authority configured by
            ``TAKEBACK_TSA_URL``, if any; ``False``/``None``: no timestamp.
        """
        client = TsaClient.from_env() if tsa is True else (tsa or None)
        with self._translate("read"):
            size = self._size(self._c)
        cp = Checkpoint(self.origin, size, self.root(size))
        existing = self._stored_checkpoint(size)
        if existing is not None:
            if existing.checkpoint.root != cp.root:
                raise LogCorruptError(
                    f"the log {self.path} was rewritten: its tree of size {size} no longer "
                    "matches the checkpoint it signed"
                )
            if existing.tsa_token is not None or client is None:
                return existing
        note = existing.note if existing is not None else self.signer.sign(cp.text())
        token = None if client is None else client.request(note.to_bytes())
        from ..bank.model import utc_now

        with self._translate("write"), _sqlite.write_transaction(self._c) as conn:
            conn.execute(
                "INSERT INTO checkpoints (size, note, created_at, tsa_token, tsa_url) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (size) DO UPDATE SET "
                "tsa_token = excluded.tsa_token, tsa_url = excluded.tsa_url",
                (
                    size,
                    note.to_bytes(),
                    utc_now(),
                    token,
                    None if client is None else client.url,
                ),
            )
        stored = self._stored_checkpoint(size)
        if stored is None:  # pragma: no cover - just written
            raise LogCorruptError("the checkpoint just written is gone")
        return stored

    def _stored_checkpoint(self, size: int) -> StoredCheckpoint | None:
        with self._translate("read"):
            row = self._c.execute(
                "SELECT note, created_at, tsa_token, tsa_url FROM checkpoints WHERE size = ?",
                (size,),
            ).fetchone()
        if row is None:
            return None
        try:
            note = SignedNote.parse(row[0])
            cp = Checkpoint.parse(note.text)
        except ProofFormatError as exc:
            raise LogCorruptError(f"stored checkpoint {size} is damaged: {exc.message}") from exc
        return StoredCheckpoint(cp, note, row[1], row[2], row[3])

    def checkpoints(self) -> Iterator[StoredCheckpoint]:
        """Every stored checkpoint, smallest first."""
        with self._translate("read"):
            sizes = [r[0] for r in self._c.execute("SELECT size FROM checkpoints ORDER BY size")]
        for size in sizes:
            cp = self._stored_checkpoint(size)
            if cp is not None:
                yield cp

    def latest_checkpoint(self) -> StoredCheckpoint:
        """The checkpoint of the current tree, signing one if there is none yet."""
        stored = self._stored_checkpoint(self.size)
        return stored if stored is not None else self.checkpoint()

    # -- proofs ---------------------------------------------------------------
    def proof_file(self, index: int, *, checkpoint: StoredCheckpoint | None = None) -> bytes:
        """An offline C2SP ``tlog-proof`` for entry ``index`` (entry bytes as ``extra``)."""
        cp = checkpoint or self.latest_checkpoint()
        entry = self.entry(index)
        hashes = self.inclusion_proof(index, cp.checkpoint.size)
        return TlogProof(index, tuple(hashes), cp.note.to_bytes(), entry.data.encode()).marshal()

    def prove_consistency(
        self, old_note: bytes, new_note: bytes | None = None
    ) -> ConsistencyResult:
        """Check that ``new_note`` (default: the current checkpoint) extends ``old_note``.

        Both checkpoints must carry this log's signature. A split view (two
        signed trees that cannot both be prefixes of one log) is ``forked``.
        """
        new_bytes = new_note if new_note is not None else self.latest_checkpoint().note.to_bytes()
        parsed = _parse_checkpoints(old_note, new_bytes, self.verifier)
        if isinstance(parsed, ConsistencyResult):
            return parsed
        old, new = parsed
        current = self.size
        if new.size > current:
            return ConsistencyResult(
                Verdict.FORKED,
                f"the newer checkpoint claims {new.size} entries but this log has only {current}: "
                "the log was rolled back or the checkpoint comes from a fork",
                old,
                new,
            )
        if old.size > new.size:
            return ConsistencyResult(
                Verdict.STALE,
                f"the 'newer' checkpoint ({new.size} entries) is older than the other "
                f"({old.size}); swap them",
                old,
                new,
            )
        hashes = tuple(self.consistency_proof(old.size, new.size))
        return check_consistency(old, new, hashes)


def _parse_checkpoints(
    old_note: bytes, new_note: bytes, verifier: NoteVerifier
) -> tuple[Checkpoint, Checkpoint] | ConsistencyResult:
    out = []
    for which, raw in (("older", old_note), ("newer", new_note)):
        try:
            note = SignedNote.parse(raw)
            cp = Checkpoint.parse(note.text)
        except ProofFormatError as exc:
            return ConsistencyResult(Verdict.MALFORMED, f"the {which} checkpoint: {exc.message}")
        if cp.origin != verifier.name:
            return ConsistencyResult(
                Verdict.WRONG_ORIGIN,
                f"the {which} checkpoint is for log {cp.origin!r}, not {verifier.name!r}",
            )
        if not note.verified_by(verifier):
            return ConsistencyResult(
                Verdict.BAD_SIGNATURE,
                f"the {which} checkpoint is not signed by the log key {verifier.vkey}",
            )
        out.append(cp)
    return out[0], out[1]


def check_consistency(
    old: Checkpoint, new: Checkpoint, hashes: Sequence[bytes]
) -> ConsistencyResult:
    """Verdict on a consistency proof between two (already authenticated) checkpoints."""
    if old.size == new.size and old.root != new.root:
        return ConsistencyResult(
            Verdict.FORKED,
            f"two signed checkpoints of size {old.size} have different roots: "
            "the log showed different histories (a split view)",
            old,
            new,
        )
    if old.size > new.size:
        return ConsistencyResult(
            Verdict.STALE, "the older checkpoint is larger than the newer one", old, new
        )
    if not verify_consistency(old.size, new.size, old.root, new.root, hashes):
        return ConsistencyResult(
            Verdict.FORKED,
            f"the tree of {new.size} entries does not extend the tree of {old.size}: "
            "entries were changed or removed, or the checkpoints come from a fork",
            old,
            new,
            tuple(hashes),
        )
    return ConsistencyResult(
        Verdict.VERIFIED,
        f"the log of {new.size} entries extends the log of {old.size}: nothing was rewritten",
        old,
        new,
        tuple(hashes),
    )


def verify_consistency_proof(
    old_note: bytes, new_note: bytes, proof_text: str, verifier: NoteVerifier
) -> ConsistencyResult:
    """Offline check of a consistency proof file between two signed checkpoints."""
    parsed = _parse_checkpoints(old_note, new_note, verifier)
    if isinstance(parsed, ConsistencyResult):
        return parsed
    old, new = parsed
    try:
        old_size, new_size, hashes = parse_consistency_proof(proof_text)
    except ProofFormatError as exc:
        return ConsistencyResult(Verdict.MALFORMED, exc.message, old, new)
    if (old_size, new_size) != (old.size, new.size):
        return ConsistencyResult(
            Verdict.MALFORMED,
            f"the proof is for sizes {old_size} to {new_size}, "
            f"the checkpoints for {old.size} to {new.size}",
            old,
            new,
        )
    return check_consistency(old, new, hashes)


def verify_proof(
    data: bytes,
    verifier: NoteVerifier,
    *,
    sha256: str | None = None,
    label: tuple[str, bytes] | None = None,
    known: bytes | None = None,
    tsa_token: bytes | None = None,
    tsa_ca: str | None = None,
) -> ProofResult:
    """Verify an offline proof file with no bank: a verdict, never an exception.

    Steps (C2SP ``tlog-proof``): parse; recompute the leaf hash from the entry
    bytes in ``extra``; check the checkpoint's origin and signature against
    ``verifier``; check the inclusion proof leads to the signed root.

    Parameters
    ----------
    data : bytes
        The proof file.
    verifier : NoteVerifier
        The log's public key (its name is the expected origin).
    sha256 : str, optional
        Hex SHA-256 of the photo the entry must register.
    label : (str, bytes), optional
        A revealed label and its salt (``log show --reveal``): the entry must
        commit to exactly that label.
    known : bytes, optional
        A signed checkpoint of the same log the verifier already trusts: a
        proof against an older tree is ``stale``, one whose tree of the same
        size has another root is ``forked``.
    tsa_token, tsa_ca : optional
        An RFC 3161 token over the checkpoint, and the CA to check it with.
    """
    try:
        proof = TlogProof.unmarshal(data)
        if proof.extra is None:
            raise ProofFormatError("the proof carries no entry data (no extra line)")
        entry = EntryData.decode(proof.extra)
        note = SignedNote.parse(proof.checkpoint)
        cp = Checkpoint.parse(note.text)
    except ProofFormatError as exc:
        return ProofResult(Verdict.MALFORMED, f"the proof file is unusable: {exc.message}")
    if cp.origin != verifier.name:
        return ProofResult(
            Verdict.WRONG_ORIGIN,
            f"the checkpoint is for log {cp.origin!r}, but the key is for {verifier.name!r}",
            proof.index,
            entry,
            cp,
        )
    if not note.verified_by(verifier):
        return ProofResult(
            Verdict.BAD_SIGNATURE,
            "the checkpoint is not signed by the given log key: forged, or another log's",
            proof.index,
            entry,
            cp,
        )
    if not verify_inclusion(proof.index, cp.size, leaf_hash(proof.extra), proof.hashes, cp.root):
        return ProofResult(
            Verdict.ENTRY_MISMATCH if proof.index < cp.size else Verdict.NOT_INCLUDED,
            f"the entry is not entry {proof.index} of the signed tree of {cp.size}: "
            "the entry or the proof was altered",
            proof.index,
            entry,
            cp,
        )
    if sha256 is not None and (entry.sha256 is None or entry.sha256.hex() != sha256.lower()):
        return ProofResult(
            Verdict.WRONG_ENTRY,
            "the proof is valid, but for another photo (its SHA-256 differs)",
            proof.index,
            entry,
            cp,
        )
    if label is not None and label_commitment(label[0], label[1]) != entry.label_commitment:
        return ProofResult(
            Verdict.WRONG_ENTRY,
            "the proof is valid, but the entry does not commit to that label and salt",
            proof.index,
            entry,
            cp,
        )
    if known is not None:
        stale = _against_known(cp, known, verifier)
        if stale is not None:
            return ProofResult(stale[0], stale[1], proof.index, entry, cp)
    ts = None
    if tsa_token is not None:
        ts = check_token(tsa_token, proof.checkpoint, ca_file=tsa_ca)
    return ProofResult(
        Verdict.VERIFIED,
        f"entry {proof.index} is in the log {cp.origin} of {cp.size} entries, "
        "signed by the given key",
        proof.index,
        entry,
        cp,
        ts,
    )


def _against_known(
    cp: Checkpoint, known: bytes, verifier: NoteVerifier
) -> tuple[Verdict, str] | None:
    try:
        note = SignedNote.parse(known)
        trusted = Checkpoint.parse(note.text)
    except ProofFormatError:
        return Verdict.MALFORMED, "the known checkpoint given to compare with is unusable"
    if trusted.origin != verifier.name or not note.verified_by(verifier):
        return Verdict.BAD_SIGNATURE, "the known checkpoint is not signed by the log key"
    if trusted.size == cp.size and trusted.root != cp.root:
        return Verdict.FORKED, (
            f"the log signed two different trees of size {cp.size}: it equivocated (split view)"
        )
    if cp.size < trusted.size:
        return Verdict.STALE, (
            f"the checkpoint ({cp.size} entries) is older than the one already known "
            f"({trusted.size}): a replay; ask for a proof against the latest checkpoint"
        )
    return None


def log_registrations(
    bank_dir: str | os.PathLike[str],
    entries: Sequence[BankEntry],
    derivative_digests: Sequence[bytes | None] | None = None,
) -> list[LogEntry]:
    """Register freshly stored bank entries in the bank's log (``bank add --log``).

    Creates the log and its key on first use, appends all entries in one
    transaction and signs a new checkpoint, then timestamps it when
    ``TAKEBACK_TSA_URL`` is set. If the authority fails, the entries and the
    signed checkpoint are kept and :class:`TimestampError` says so (``takeback
    log checkpoint`` retries the timestamp).
    """
    if not entries:
        return []
    with RegistrationLog.create(bank_dir) as log:
        logged = log.append_bank_entries(entries, derivative_digests)
        log.checkpoint(tsa=False)
        try:
            log.checkpoint()
        except TimestampError as exc:
            raise TimestampError(
                f"registered as log entries {logged[0].index}-{logged[-1].index}, but the "
                f"checkpoint could not be timestamped: {exc.message} "
                "(run `takeback log checkpoint` to try again)",
                path=exc.path,
            ) from exc
    return logged
