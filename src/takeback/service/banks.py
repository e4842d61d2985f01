"""One served bank: its store, its replica, and the operations the routers call.

The store is used from one thread of its own (a SQLite connection belongs to
the thread that opened it; PostgreSQL calls take turns anyway), so no database
call ever runs on the event loop. Matching a PDQ hash touches no database:
the replica's index answers, and labels come from the :class:`LabelCache`
(read from the bank only on a miss).

The order and shape of results are those of :class:`~takeback.bank.matcher.Matcher`:
exact copies (SHA-256, then MD5) first, then PDQ by distance, one result per
entry, each carrying its distance, threshold and score.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final, Literal, TypeVar

import numpy as np

from ..bank.matcher import Match, pdq_score
from ..bank.model import AddResult, BankEntry, Change
from ..bank.open import open_store
from ..bank.store import Store
from ..errors import BankError
from ..fingerprint.types import DIHEDRAL_VARIANTS, PdqHash
from .replica import BankReplica, IndexNotReadyError, LabelCache
from .settings import ServiceSettings

__all__ = ["BankRuntime", "MatchAnswer"]

T = TypeVar("T")
Method = Literal["sha256", "md5", "pdq"]
_ORDER: Final = {"sha256": 0, "md5": 1, "pdq": 2}
_SYNC_WAIT: Final = 2.0  # seconds a write waits for this node's index to show it


@dataclass(frozen=True, slots=True)
class MatchAnswer:
    """Matches of one query, best first, and whether PDQ was searched."""

    matches: list[Match]
    pdq_searched: bool


class BankRuntime:
    """A bank as the service uses it.

    Parameters
    ----------
    name : str
    location : str
        Directory or ``postgresql://`` URL.
    settings : ServiceSettings
    """

    def __init__(self, name: str, location: str, settings: ServiceSettings) -> None:
        self.name = name
        self.location = location
        self.settings = settings
        self.labels = LabelCache(settings.label_cache_size)
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"takeback-bank-{name}")
        self._store: Store | None = None
        self._closed = False
        self.replica: BankReplica | None = None
        if settings.serves_matching:
            self.replica = BankReplica(
                name,
                location,
                labels=self.labels,
                min_quality=settings.min_quality,
                index_kind=settings.index_kind,
                index_threads=settings.index_threads,
                compact_after=settings.compact_after,
                poll_interval=settings.poll_interval,
                ready_max_lag=settings.ready_max_lag,
                warm_radii=(settings.match_threshold, settings.max_threshold),
                bank_timeout=settings.bank_timeout,
            )

    # -- life cycle ----------------------------------------------------------
    def open(self) -> None:
        """Open (or create) the bank; raises :class:`~takeback.errors.BankError`."""
        self._executor.submit(self._open).result()
        if self.replica is not None:
            self.replica.start()

    def _open(self) -> None:
        self._store = open_store(
            self.location, create=True, busy_timeout=self.settings.bank_timeout
        )

    def close(self) -> None:
        """Stop the replica and close the store; idempotent."""
        if self._closed:
            return
        self._closed = True
        if self.replica is not None:
            self.replica.stop()
        self._executor.submit(self._close).result()
        self._executor.shutdown(wait=True)

    def _close(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def ready(self) -> bool:
        """Open, and (on a matching node) the index loaded and in sync."""
        if self._store is None:
            return False
        return self.replica is None or self.replica.ready()

    async def _call(self, fn: Callable[[Store], T]) -> T:
        def run() -> T:
            if self._store is None:
                raise BankError(f"the bank {self.name!r} is not open")
            return fn(self._store)

        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    async def _synced(self) -> None:
        """Let this node's index catch up with a write it just made (bounded wait)."""
        if self.replica is not None:
            await asyncio.to_thread(self.replica.wait_synced, _SYNC_WAIT)

    # -- writes --------------------------------------------------------------
    async def add(self, entries: list[BankEntry]) -> list[AddResult]:
        """Store entries in one transaction (see :meth:`Store.add`)."""
        results = await self._call(lambda s: s.add(entries))
        await self._synced()
        return results

    async def remove(self, ids: list[int]) -> list[int]:
        """Delete entries for good; returns the ids that existed."""
        removed = await self._call(lambda s: s.remove(ids))
        self.labels.forget(removed)
        if removed:
            await self._synced()
        return removed

    # -- reads ---------------------------------------------------------------
    async def get(self, entry_id: int) -> BankEntry:
        """One entry (:class:`~takeback.errors.EntryNotFoundError` when there is none)."""
        return await self._call(lambda s: s.get(entry_id))

    async def changes(self, since: int, limit: int) -> list[Change]:
        """The change feed after ``since``."""
        return await self._call(lambda s: s.changes(since=since, limit=limit))

    async def match(
        self,
        *,
        pdq: list[PdqHash],
        quality: int | None,
        sha256: str | None,
        md5: str | None,
        threshold: int,
    ) -> MatchAnswer:
        """Match one fingerprint.

        Parameters
        ----------
        pdq : list of PdqHash
            Nothing, the hash, or its 8 dihedral variants (original first).
        quality : int or None
            The query's PDQ quality; below ``min_quality`` PDQ is not searched.
        sha256, md5 : str or None
            Exact file digests (canonical hex).
        threshold : int
            PDQ distance threshold.

        Raises
        ------
        IndexNotReadyError
            PDQ was asked for before the index was loaded.
        """
        best: dict[int, tuple[tuple[int, int], Method, int, str | None]] = {}
        labels: dict[int, str] = {}
        if sha256 or md5:
            for entry in await self._call(lambda s: s.find_exact(sha256=sha256, md5=md5)):
                if entry.id is None:
                    continue
                method: Method = "sha256" if sha256 and entry.sha256 == sha256 else "md5"
                best[entry.id] = ((_ORDER[method], 0), method, 0, None)
                labels[entry.id] = entry.label

        searched = bool(pdq) and (quality is None or quality >= self.settings.min_quality)
        if searched:
            if self.replica is None:
                raise IndexNotReadyError(f"this node does not match (bank {self.name!r})")
            queries = np.stack([h.to_array() for h in pdq])
            names = DIHEDRAL_VARIANTS if len(pdq) == len(DIHEDRAL_VARIANTS) else ("original",)
            for name, (ids, dists) in zip(
                names, self.replica.search(queries, threshold), strict=False
            ):
                for entry_id, dist in zip(ids.tolist(), dists.tolist(), strict=True):
                    key = (_ORDER["pdq"], int(dist))
                    if entry_id not in best or key < best[entry_id][0]:
                        best[entry_id] = (key, "pdq", int(dist), name)

        missing = [i for i in best if i not in labels]
        if missing:
            labels.update(self.labels.get(missing))
            unknown = [i for i in missing if i not in labels]
            if unknown:
                found = await self._call(lambda s: s.get_many(unknown))
                fetched = {i: e.label for i, e in found.items()}
                self.labels.put(fetched)
                labels.update(fetched)
        matches = [
            Match(
                id=entry_id,
                label=labels[entry_id],
                method=method,
                distance=dist,
                threshold=0 if method != "pdq" else threshold,
                variant=variant,
                score=1.0 if method != "pdq" else pdq_score(dist),
            )
            for entry_id, (_, method, dist, variant) in sorted(
                best.items(), key=lambda kv: (kv[1][0], kv[0])
            )
            if entry_id in labels  # withdrawn since the index saw it
        ]
        return MatchAnswer(matches, searched)
