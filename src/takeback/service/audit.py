"""The audit log: append-only, hash-chained, never holding image data.

Each record says who (the API key id), when, what (the action), on which bank,
the HTTP status and how many results (entries stored, removed or matched). It
never holds hashes, labels, images or anything a request carried.

Records are chained: ``hash = SHA-256(prev_hash || "\\n" || canonical JSON of the
record)``, starting from 64 zeros. Editing, deleting or reordering any record
breaks the chain at that point, which :func:`verify_audit` reports. Deleting the
newest records leaves a valid but shorter chain: keep the head hash that
:func:`verify_audit` prints somewhere else (a ticket, a transparency log) to
detect that too.

Writing is off the request path: :meth:`AuditLog.record` queues a record and a
background thread appends the queue every ``flush_seconds`` in one transaction
(several nodes sharing a PostgreSQL service database take turns on an advisory
lock, so they extend one chain). A crash can lose the last fraction of a second
of records; writes of the bank wait for their record (:meth:`AuditLog.flush`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from ..bank.model import utc_now
from ..errors import TakeBackError
from .db import ServiceDb

__all__ = [
    "GENESIS",
    "AuditLog",
    "AuditRecord",
    "AuditVerification",
    "chain_hash",
    "verify_audit",
]

#: ``prev_hash`` of the first record.
GENESIS: Final = "0" * 64
_LOG = logging.getLogger("takeback.service.audit")
_PAGE: Final = 5000
_MAX_QUEUED: Final = 100_000  # unwritten records kept while the database is away


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One audited action.

    Attributes
    ----------
    at : str
        ISO 8601 UTC time.
    key_id : str or None
        The API key that acted (``None``: no valid key, or the local CLI).
    action : str
        ``submit``, ``withdraw``, ``match``, ``match_batch``, ``match_image``, ``changes``,
        ``entry_read``, ``key_create``, ``key_revoke``, ``key_list``,
        ``audit_verify``, ``denied``, ``auth_failed``...
    bank : str or None
    result_count : int or None
    status : int
        The HTTP status of the answer.
    """

    at: str
    key_id: str | None
    action: str
    bank: str | None
    result_count: int | None
    status: int

    def canonical(self) -> bytes:
        """The bytes the chain hashes (keys sorted, no spaces, UTF-8)."""
        return json.dumps(
            {
                "at": self.at,
                "key_id": self.key_id,
                "action": self.action,
                "bank": self.bank,
                "result_count": self.result_count,
                "status": self.status,
            },
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")


def chain_hash(prev_hash: str, seq: int, record: AuditRecord) -> str:
    """The hash of record number ``seq`` following ``prev_hash``."""
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii") + b"\n" + str(seq).encode("ascii") + b"\n")
    digest.update(record.canonical())
    return digest.hexdigest()


@dataclass(frozen=True, slots=True)
class AuditVerification:
    """What :func:`verify_audit` found.

    Attributes
    ----------
    ok : bool
        Every record is in its place and unchanged.
    records : int
        Records checked.
    head : str
        Hash of the last good record (:data:`GENESIS` for an empty log).
    first_bad : int or None
        Sequence number of the first record that breaks the chain.
    reason : str or None
        What is wrong with it.
    """

    ok: bool
    records: int
    head: str
    first_bad: int | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "records": self.records,
            "head": self.head,
            "first_bad": self.first_bad,
            "reason": self.reason,
        }


def _rows(db: ServiceDb) -> Iterator[tuple[int, AuditRecord, str, str]]:
    last = 0
    while True:
        rows = db.query(
            "SELECT seq, at, key_id, action, bank, result_count, status, prev_hash, hash"
            f" FROM {db.audit_table} WHERE seq > ? ORDER BY seq LIMIT ?",
            (last, _PAGE),
        )
        if not rows:
            return
        for r in rows:
            yield r[0], AuditRecord(r[1], r[2], r[3], r[4], r[5], r[6]), r[7], r[8]
        last = rows[-1][0]


def verify_audit(db: ServiceDb) -> AuditVerification:
    """Check the whole chain of the audit log in ``db``.

    Returns
    -------
    AuditVerification
        ``ok`` is False at the first record that was edited, deleted, inserted
        or moved (its sequence number and the reason are given).
    """
    head, expected, count = GENESIS, 1, 0
    for seq, record, prev_hash, stored in _rows(db):
        if seq != expected:
            return AuditVerification(
                False, count, head, expected, f"record {expected} is missing (next is {seq})"
            )
        if prev_hash != head:
            return AuditVerification(
                False, count, head, seq, f"record {seq} does not follow record {seq - 1}"
            )
        if chain_hash(prev_hash, seq, record) != stored:
            return AuditVerification(
                False, count, head, seq, f"record {seq} was changed after it was written"
            )
        head, expected, count = stored, expected + 1, count + 1
    return AuditVerification(True, count, head)


class AuditLog:
    """Queues audit records and appends them to the chain in the background.

    Parameters
    ----------
    db : ServiceDb
    flush_seconds : float
        Interval of the background writer.
    """

    def __init__(self, db: ServiceDb, *, flush_seconds: float = 0.2) -> None:
        self.db = db
        self.flush_seconds = flush_seconds
        self._queue: list[AuditRecord] = []
        self._cond = threading.Condition()
        self._written = 0  # records handed to the database so far
        self._queued = 0
        self._stop = False
        self._stopping = threading.Event()
        self._write_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._clock: tuple[int, str] = (-1, "")  # (whole second, its ISO 8601 text)

    def start(self) -> None:
        """Start the background writer."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="takeback-audit", daemon=True)
            self._thread.start()

    def record(
        self,
        action: str,
        *,
        key_id: str | None,
        bank: str | None = None,
        result_count: int | None = None,
        status: int = 200,
    ) -> int:
        """Queue a record; returns a ticket for :meth:`flush`."""
        now = int(time.time())
        if self._clock[0] != now:
            self._clock = (now, utc_now())  # formatted once a second, not per request
        rec = AuditRecord(self._clock[1], key_id, action, bank, result_count, status)
        with self._cond:
            self._queue.append(rec)
            self._queued += 1
            ticket = self._queued
            self._cond.notify_all()
        return ticket

    def flush(self, ticket: int | None = None, *, timeout: float = 5.0) -> bool:
        """Write the queue now (from the calling thread); True when ``ticket`` is written."""
        self._write()
        with self._cond:
            target = self._queued if ticket is None else ticket
            return self._cond.wait_for(lambda: self._written >= target, timeout=timeout)

    def _write(self) -> bool:
        """Append the queue; False when the database refused (the records stay queued)."""
        with self._write_lock:
            with self._cond:
                batch, self._queue = self._queue, []
            if not batch:
                return True
            try:
                self._append(batch)
            except TakeBackError as exc:
                with self._cond:
                    self._queue[:0] = batch  # keep them for the next attempt, in order
                    dropped = len(self._queue) - _MAX_QUEUED
                    if dropped > 0:
                        del self._queue[:dropped]
                        self._written += dropped
                _LOG.error("cannot write %d audit records: %s", len(batch), exc.message)
                if dropped > 0:
                    _LOG.error("dropped the %d oldest unwritten audit records", dropped)
                return False
            with self._cond:
                self._written += len(batch)
                self._cond.notify_all()
            return True

    def _append(self, batch: list[AuditRecord]) -> None:
        table = self.db.audit_table
        with self.db.exclusive() as tx:
            last = tx.query(f"SELECT seq, hash FROM {table} ORDER BY seq DESC LIMIT 1")
            seq, prev = (last[0][0], last[0][1]) if last else (0, GENESIS)
            rows: list[tuple[object, ...]] = []
            for rec in batch:
                seq += 1
                digest = chain_hash(prev, seq, rec)
                rows.append(
                    (seq, rec.at, rec.key_id, rec.action, rec.bank, rec.result_count,
                     rec.status, prev, digest)
                )  # fmt: skip
                prev = digest
            tx.many(
                f"INSERT INTO {table} (seq, at, key_id, action, bank, result_count, status,"
                " prev_hash, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._stop or bool(self._queue))
                if self._stop:
                    return  # close() writes the rest
            # Let a batch gather (close() interrupts the wait), then write it.
            self._stopping.wait(self.flush_seconds)
            if not self._write():
                self._stopping.wait(1.0)

    def close(self) -> None:
        """Write what is queued and stop the writer; idempotent."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        self._write()
