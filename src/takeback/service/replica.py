"""An in-memory PDQ index of one bank that follows the bank's change feed.

Start-up
    A background thread opens the bank, reads a snapshot of its PDQ hashes and
    the last change-sequence number the snapshot includes
    (:meth:`~takeback.bank.store_postgres.PostgresStore.pdq_snapshot`; on SQLite
    the sequence number is read first and the changes after it are replayed,
    which is harmless because ids are never reused), builds the index and
    warms it up (numba compilation, search plans) before it answers anything.

Following
    It then reads :meth:`~takeback.bank.store.Store.changes` after the last
    sequence number it applied, every ``poll_interval`` seconds, at once when
    PostgreSQL sends ``NOTIFY takeback_bank`` (a second thread ``LISTEN``\\ s on
    its own connection), and at once when this process wrote to the bank
    (:meth:`BankReplica.wait_synced`). Adds and removals are applied to the
    index incrementally: nothing is rebuilt.

Rebuilds
    A :class:`~takeback.bank.index.MihIndex` buffers adds in a delta that every
    search scans and masks removals. Once ``compact_after`` changes are pending
    (or a brute-force index of an ``auto`` replica has grown past
    :data:`~takeback.bank.index.AUTO_MIH_MIN_ENTRIES`), a second thread builds a
    fresh index from a new snapshot while the old one keeps answering and keeps
    following the feed; the new one is caught up from the feed and swapped in
    under the lock. No compaction or compilation ever runs inside a request.

Concurrency
    Searches and index mutations take turns on one lock; mutations hold it
    for the delta append or mask only (microseconds), a swap for a pointer
    assignment.

Readiness
    :meth:`BankReplica.ready` is true once the index is loaded and a poll of
    the feed has completed within ``ready_max_lag`` seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from ..bank.index import AUTO_MIH_MIN_ENTRIES, BruteForceIndex, MatchIndex, MihIndex
from ..bank.model import Change
from ..bank.open import is_postgres_url, open_store, redact_url
from ..bank.store import Store
from ..errors import TakeBackError

__all__ = ["BankReplica", "IndexNotReadyError", "LabelCache", "ReplicaStatus"]

_LOG = logging.getLogger("takeback.service.replica")
_FEED_PAGE: Final = 1000
_NO_AUTO_COMPACT: Final = 1 << 62  # MihIndex never compacts itself: we rebuild off-lock
_EMPTY_CODES = np.zeros((0, 32), dtype=np.uint8)


class IndexNotReadyError(Exception):
    """The replica has not loaded its index yet (the service answers 503)."""


class LabelCache:
    """Entry labels by id, least recently used dropped first.

    Match answers need the label of each matched entry; reading it from the
    bank on every match would put a database round trip on the hot path. The
    replica fills the cache with the labels of entries it adds and drops the
    labels of withdrawn entries; misses are read from the bank by the caller.

    Parameters
    ----------
    size : int
        Labels kept (0 keeps none).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self._labels: OrderedDict[int, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, ids: Iterable[int]) -> dict[int, str]:
        """The cached labels among ``ids``."""
        found: dict[int, str] = {}
        with self._lock:
            for entry_id in ids:
                label = self._labels.get(entry_id)
                if label is not None:
                    self._labels.move_to_end(entry_id)
                    found[entry_id] = label
        return found

    def put(self, labels: dict[int, str]) -> None:
        """Remember labels (the oldest are dropped beyond ``size``)."""
        if self.size <= 0 or not labels:
            return
        with self._lock:
            self._labels.update(labels)
            for entry_id in labels:
                self._labels.move_to_end(entry_id)
            while len(self._labels) > self.size:
                self._labels.popitem(last=False)

    def forget(self, ids: Iterable[int]) -> None:
        """Drop labels of withdrawn entries."""
        with self._lock:
            for entry_id in ids:
                self._labels.pop(entry_id, None)


@dataclass(frozen=True, slots=True)
class ReplicaStatus:
    """What ``/readyz`` reports for one bank."""

    loaded: bool
    ready: bool
    seq: int
    entries: int
    index: str | None
    synced_seconds_ago: float | None
    rebuilding: bool
    error: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "loaded": self.loaded,
            "ready": self.ready,
            "seq": self.seq,
            "entries": self.entries,
            "index": self.index,
            "synced_seconds_ago": self.synced_seconds_ago,
            "rebuilding": self.rebuilding,
            "error": self.error,
        }


def _snapshot(store: Store, min_quality: int) -> tuple[int, np.ndarray, np.ndarray]:
    """PDQ arrays and a sequence number from which following the feed misses nothing."""
    snapshot = getattr(store, "pdq_snapshot", None)
    if snapshot is not None:
        seq, ids, codes = snapshot(min_quality=min_quality)
        return int(seq), ids, codes
    # No single snapshot: take the sequence number first, so the arrays hold at
    # least every change up to it; replaying later changes is idempotent.
    seq = store.stats().last_seq
    ids, codes = store.pdq_arrays(min_quality=min_quality)
    return int(seq), ids, codes


class _Rebuild:
    """A fresh index being built on its own thread."""

    def __init__(self, replica: BankReplica) -> None:
        self.result: tuple[int, MatchIndex] | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(replica,), name=f"takeback-rebuild-{replica.name}", daemon=True
        )
        self.thread.start()

    def _run(self, replica: BankReplica) -> None:
        try:
            with open_store(replica.location, busy_timeout=replica.bank_timeout) as store:
                seq, ids, codes = _snapshot(store, replica.min_quality)
            index = replica.make_index(ids, codes)
            replica.warm(index)
            self.result = (seq, index)
        except BaseException as exc:  # reported by the follower thread
            self.error = exc
        finally:
            self.done.set()

    def discard(self) -> None:
        self.thread.join(timeout=120)
        if self.result is not None:
            self.result[1].close()
            self.result = None


class BankReplica:
    """The in-memory index of one bank, following its change feed (see the module doc).

    Parameters
    ----------
    name : str
        The bank's name in the service.
    location : str
        Its directory or ``postgresql://`` URL.
    labels : LabelCache
        Filled with the labels of added entries, emptied of withdrawn ones.
    min_quality : int
        Hashes below this PDQ quality are not indexed.
    index_kind : {"auto", "mih", "bruteforce"}
    index_threads : int
    compact_after : int
        Pending changes of a multi-index hashing index that start a rebuild.
    poll_interval : float
    ready_max_lag : float
    warm_radii : sequence of int
        Radii searched once at load, so their plans and kernels are ready.
    bank_timeout : float
    listen : bool or None
        ``LISTEN`` for ``NOTIFY`` (default: for PostgreSQL banks).
    """

    def __init__(
        self,
        name: str,
        location: str,
        *,
        labels: LabelCache,
        min_quality: int,
        index_kind: str = "auto",
        index_threads: int = 1,
        compact_after: int = 16_384,
        poll_interval: float = 0.5,
        ready_max_lag: float = 15.0,
        warm_radii: Sequence[int] = (31,),
        bank_timeout: float = 5.0,
        listen: bool | None = None,
    ) -> None:
        self.name = name
        self.location = location
        self.labels = labels
        self.min_quality = min_quality
        self.index_kind = index_kind
        self.index_threads = index_threads
        self.compact_after = compact_after
        self.poll_interval = poll_interval
        self.ready_max_lag = ready_max_lag
        self.warm_radii = tuple(sorted(set(warm_radii)))
        self.bank_timeout = bank_timeout
        self.listen = is_postgres_url(location) if listen is None else listen

        self._lock = threading.Lock()  # the index: searches vs mutations and swaps
        self._index: MatchIndex | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._last_sync: float | None = None
        self._error: str | None = None
        self._rebuild: _Rebuild | None = None
        self._threads: list[threading.Thread] = []

    # -- life cycle ----------------------------------------------------------
    def start(self) -> None:
        """Start loading and following in the background."""
        if self._threads:
            return
        follower = threading.Thread(
            target=self._follow, name=f"takeback-replica-{self.name}", daemon=True
        )
        self._threads.append(follower)
        if self.listen:
            self._threads.append(
                threading.Thread(
                    target=self._listen, name=f"takeback-listen-{self.name}", daemon=True
                )
            )
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stop the threads and release the index; idempotent."""
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=60)
        self._threads = []
        if self._rebuild is not None:
            self._rebuild.discard()
            self._rebuild = None
        with self._lock:
            index, self._index = self._index, None
        if index is not None:
            index.close()

    # -- queries -------------------------------------------------------------
    def search(self, queries: np.ndarray, radius: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """:meth:`MatchIndex.search` on the current index.

        Raises
        ------
        IndexNotReadyError
            The index is not loaded yet.
        """
        with self._lock:
            if self._index is None:
                raise IndexNotReadyError(f"the index of bank {self.name!r} is still loading")
            return self._index.search(queries, radius)

    def ready(self) -> bool:
        """Loaded, and the feed was read within ``ready_max_lag`` seconds."""
        last = self._last_sync
        return (
            self._index is not None
            and last is not None
            and time.monotonic() - last <= self.ready_max_lag
        )

    def status(self) -> ReplicaStatus:
        """Loading state, position in the feed, size, freshness."""
        with self._lock:
            index = self._index
            entries = len(index) if index is not None else 0
            kind = index.name if index is not None else None
            seq = self._seq
        last = self._last_sync
        return ReplicaStatus(
            loaded=index is not None,
            ready=self.ready(),
            seq=seq,
            entries=entries,
            index=kind,
            synced_seconds_ago=None if last is None else round(time.monotonic() - last, 3),
            rebuilding=self._rebuild is not None,
            error=self._error,
        )

    def wait_synced(self, timeout: float = 2.0) -> bool:
        """Poll the feed now and wait until a poll that started after this call is done.

        Called after this process wrote to the bank, so that its own matches
        see the write at once. Returns False on timeout.
        """
        with self._cond:
            self._requested += 1
            ticket = self._requested
        self._wake.set()
        with self._cond:
            return self._cond.wait_for(lambda: self._completed >= ticket, timeout=timeout)

    # -- building ------------------------------------------------------------
    def make_index(self, ids: np.ndarray, codes: np.ndarray) -> MatchIndex:
        """A new index of this replica's kind over ``ids`` and ``codes``."""
        kind = self.index_kind
        if kind == "auto":
            kind = "mih" if ids.shape[0] >= AUTO_MIH_MIN_ENTRIES else "bruteforce"
        if kind == "mih":
            return MihIndex(ids, codes, threads=self.index_threads, delta_limit=_NO_AUTO_COMPACT)
        return BruteForceIndex(ids, codes)

    def warm(self, index: MatchIndex) -> None:
        """Search once at each warm radius: compiles kernels and caches plans."""
        rng = np.random.default_rng(0)
        queries = rng.integers(0, 256, size=(8, 32), dtype=np.uint8)
        for radius in self.warm_radii:
            index.search(queries, radius)
            index.search(queries[0], radius)

    # -- the follower thread -------------------------------------------------
    def _follow(self) -> None:
        store: Store | None = None
        try:
            while not self._stop.is_set():
                self._wake.clear()
                with self._cond:
                    target = self._requested
                failed = False
                try:
                    if store is None:
                        store = open_store(self.location, busy_timeout=self.bank_timeout)
                    if self._index is None:
                        self._load(store)
                    self._poll(store)
                    self._manage_rebuild(store)
                except TakeBackError as exc:
                    failed = True
                    if self._error != exc.message:
                        _LOG.warning("bank %r: %s", self.name, exc.message)
                    self._error = exc.message
                else:
                    with self._cond:
                        self._completed = max(self._completed, target)
                        self._last_sync = time.monotonic()
                        self._error = None
                        self._cond.notify_all()
                self._wake.wait(max(self.poll_interval, 1.0) if failed else self.poll_interval)
        except Exception:
            _LOG.exception("the replica of bank %r stopped", self.name)
            self._error = "the replica stopped on an internal error; see the server log"
        finally:
            if store is not None:
                store.close()

    def _load(self, store: Store) -> None:
        started = time.monotonic()
        seq, ids, codes = _snapshot(store, self.min_quality)
        index = self.make_index(ids, codes)
        try:
            self.warm(index)
        except BaseException:
            index.close()
            raise
        with self._lock:
            self._index, self._seq = index, seq
        _LOG.info(
            "bank %r: loaded %d hashes into a %s index in %.1f s (feed at #%d)",
            self.name,
            len(index),
            index.name,
            time.monotonic() - started,
            seq,
        )

    def _poll(self, store: Store) -> None:
        while not self._stop.is_set():
            batch = store.changes(since=self._seq, limit=_FEED_PAGE)
            if not batch:
                return
            index = self._index
            if index is None:  # pragma: no cover - _load ran first
                return
            self._apply(store, batch, index, live=True)
            if len(batch) < _FEED_PAGE:
                return

    def _apply(self, store: Store, batch: list[Change], index: MatchIndex, *, live: bool) -> int:
        """Apply one page of the feed to ``index``; returns its last sequence number."""
        removed = [c.entry_id for c in batch if c.op == "remove"]
        gone = set(removed)
        added = [c.entry_id for c in batch if c.op == "add" and c.entry_id not in gone]
        # An entry withdrawn after this page was read is simply not found: its
        # removal comes in a later page.
        found = store.get_many(added) if added else {}
        keep = [
            e
            for i in added
            if (e := found.get(i)) is not None
            and e.pdq is not None
            and (e.quality is None or e.quality >= self.min_quality)
        ]
        ids = np.array([e.id for e in keep], dtype=np.int64)
        codes = np.stack([e.pdq.to_array() for e in keep if e.pdq]) if keep else _EMPTY_CODES
        last = batch[-1].seq
        self.labels.forget(removed)
        if live:
            with self._lock:
                if removed:
                    index.remove(removed)
                if keep:
                    index.add(ids, codes)
                self._seq = last
        else:
            if removed:
                index.remove(removed)
            if keep:
                index.add(ids, codes)
        self.labels.put({i: e.label for i, e in found.items()})
        return last

    def _needs_rebuild(self) -> bool:
        index = self._index
        if isinstance(index, MihIndex):
            return index.pending >= self.compact_after
        return (
            self.index_kind == "auto"
            and isinstance(index, BruteForceIndex)
            and len(index) >= AUTO_MIH_MIN_ENTRIES
        )

    def _manage_rebuild(self, store: Store) -> None:
        rebuild = self._rebuild
        if rebuild is None:
            if self._needs_rebuild():
                _LOG.info("bank %r: rebuilding the index in the background", self.name)
                self._rebuild = _Rebuild(self)
            return
        if not rebuild.done.is_set():
            return
        self._rebuild = None
        if rebuild.error is not None or rebuild.result is None:
            error = rebuild.error
            message = error.message if isinstance(error, TakeBackError) else repr(error)
            _LOG.warning("bank %r: the index rebuild failed (%s); will retry", self.name, message)
            return
        seq, fresh = rebuild.result
        rebuild.result = None
        try:
            while True:  # catch the fresh index up with the feed, off the lock
                batch = store.changes(since=seq, limit=_FEED_PAGE)
                if not batch:
                    break
                seq = self._apply(store, batch, fresh, live=False)
        except BaseException:
            fresh.close()
            raise
        with self._lock:
            old, self._index = self._index, fresh
            self._seq = max(self._seq, seq)
        if old is not None:
            old.close()
        _LOG.info("bank %r: swapped in a rebuilt %s index", self.name, fresh.name)

    # -- the listener thread (PostgreSQL) ------------------------------------
    def _listen(self) -> None:
        import psycopg
        from psycopg import errors as pgerrors

        from ..bank.store_postgres import NOTIFY_CHANNEL

        shown = redact_url(self.location)
        while not self._stop.is_set():
            try:
                conn: Any = psycopg.connect(
                    self.location,
                    autocommit=True,
                    connect_timeout=10,
                    application_name="takeback-replica",
                )
                with conn:
                    conn.execute(f"LISTEN {NOTIFY_CHANNEL}")
                    self._wake.set()  # anything missed while not listening
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self._wake.set()
            except (pgerrors.FeatureNotSupported, pgerrors.ReadOnlySqlTransaction):
                # A hot standby cannot LISTEN (and NOTIFY is not replicated).
                _LOG.info(
                    "bank %r: %s is a standby; polling it every %s s",
                    self.name,
                    shown,
                    self.poll_interval,
                )
                return
            except psycopg.Error as exc:
                text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
                _LOG.warning(
                    "bank %r: LISTEN on %s failed (%s); polling meanwhile",
                    self.name,
                    shown,
                    text.replace(self.location, shown),
                )
                self._stop.wait(2.0)
