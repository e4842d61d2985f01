"""Matcher replicas: in-memory indexes that follow a bank's change feed.

In process: a :class:`BankReplica` on SQLite and on PostgreSQL applies adds and
removals incrementally (the index is not rebuilt), agrees with a brute-force
oracle at distances 0, 30, 31, 32 and 33, and swaps in a rebuilt index in the
background. Across processes: two real ``takeback serve`` processes share one
PostgreSQL bank; a fingerprint submitted to one is matched by both within 2 s,
and once withdrawn, by neither within 2 s.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import psycopg
import pytest

from takeback.bank.index import BruteForceIndex, MihIndex
from takeback.bank.model import BankEntry
from takeback.bank.open import open_store
from takeback.bank.store import Store
from takeback.fingerprint.types import PdqHash
from takeback.service.auth import KeyStore
from takeback.service.db import PG_SCHEMA, open_service_db
from takeback.service.replica import BankReplica, IndexNotReadyError, LabelCache

from . import pg

postgres_server, postgres_url = pg.postgres_server, pg.postgres_url  # fixtures

Location = Path | str


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    if request.param == "sqlite":
        return tmp_path / "bank"
    url: str = request.getfixturevalue("postgres_url")
    return url


def _entries(rng: np.random.Generator, n: int, *, quality: int = 90) -> list[BankEntry]:
    return [BankEntry(label=f"e{i}", pdq=PdqHash(rng.bytes(32)), quality=quality) for i in range(n)]


def _flip_bits(code: np.ndarray, bits: int, rng: np.random.Generator) -> np.ndarray:
    out = code.copy()
    for bit in rng.choice(256, size=bits, replace=False):
        out[bit // 8] ^= np.uint8(1 << (bit % 8))
    return out


def _wait(predicate: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _replica(location: Location, **kwargs: object) -> BankReplica:
    options: dict[str, object] = {
        "labels": LabelCache(1000),
        "min_quality": 50,
        "index_kind": "mih",
        "poll_interval": 0.1,
        **kwargs,
    }
    return BankReplica("default", os.fspath(location), **options)  # type: ignore[arg-type]


def _agrees_with_oracle(replica: BankReplica, store: Store, rng: np.random.Generator) -> None:
    ids, codes = store.pdq_arrays(min_quality=50)
    oracle = BruteForceIndex(ids, codes)
    picks = rng.choice(len(ids), size=min(10, len(ids)), replace=False)
    queries = np.stack(
        [_flip_bits(codes[i], d, rng) for i in picks for d in (0, 30, 31, 32, 33)]
        + [rng.integers(0, 256, 32, dtype=np.uint8)]
    )
    for radius in (31, 0):
        got = replica.search(queries, radius)
        want = oracle.search(queries, radius)
        for (gi, gd), (wi, wd) in zip(got, want, strict=True):
            assert gi.tolist() == wi.tolist() and gd.tolist() == wd.tolist()


def test_replica_follows_the_feed_incrementally(location: Location) -> None:
    rng = np.random.default_rng(6)
    with open_store(location, create=True) as store:
        store.add(_entries(rng, 300))
        replica = _replica(location, compact_after=1_000_000)
        with pytest.raises(IndexNotReadyError):
            replica.search(np.zeros(32, dtype=np.uint8), 31)
        assert not replica.ready()
        replica.start()
        try:
            _wait(replica.ready, what="the replica to load")
            index = replica._index
            assert isinstance(index, MihIndex) and len(index) == 300
            _agrees_with_oracle(replica, store, rng)

            # adds (one of low quality: not indexed) and removals, several batches
            added = store.add([*_entries(rng, 40), *_entries(rng, 1, quality=10)])
            removed = store.remove([r.id for r in added[:5]] + [1, 2, 3])
            assert replica.wait_synced(5.0)
            assert replica._index is index  # applied in place: no rebuild
            assert index.pending > 0
            status = replica.status()
            assert status.entries == 300 + 40 - len(removed)
            assert status.seq == store.stats().last_seq and status.ready
            _agrees_with_oracle(replica, store, rng)
            # labels of added entries are cached; withdrawn ones are forgotten
            assert replica.labels.get([added[10].id]) == {added[10].id: "e10"}
            assert replica.labels.get([added[0].id]) == {}
        finally:
            replica.stop()
    assert replica._index is None and not replica.ready()


def test_replica_rebuilds_in_the_background(location: Location) -> None:
    rng = np.random.default_rng(7)
    with open_store(location, create=True) as store:
        store.add(_entries(rng, 200))
        replica = _replica(location, compact_after=20)
        replica.start()
        try:
            _wait(replica.ready, what="the replica to load")
            first = replica._index
            for _ in range(3):  # keep changing the bank while the rebuild runs
                ids = [r.id for r in store.add(_entries(rng, 15))]
                store.remove(ids[:3])
                assert replica.wait_synced(5.0)
            _wait(lambda: replica._index is not first, what="the rebuilt index")
            _wait(lambda: replica._rebuild is None, what="the rebuild to finish")
            assert replica.wait_synced(5.0)
            index = replica._index
            assert isinstance(index, MihIndex)
            _agrees_with_oracle(replica, store, rng)
            assert replica.status().entries == len(store.pdq_arrays(min_quality=50)[0])
        finally:
            replica.stop()


# -- two service processes on one PostgreSQL bank ---------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def service_url(postgres_url: str) -> str:
    """The test database, without a service schema left by an earlier test."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {PG_SCHEMA} CASCADE")
    return postgres_url


@pytest.fixture
def two_servers(service_url: str, tmp_path: Path) -> Iterator[tuple[list[str], str]]:
    """Two ``takeback serve`` processes on random ports; their base URLs and an admin key."""
    with open_service_db(service_url) as db:
        _, token = KeyStore(db).create("admin", ["*"], "replica test")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAKEBACK_")}
    env.update(
        TAKEBACK_HOME=str(tmp_path / "home"),
        TAKEBACK_WARM_UP="0",
        # Polling alone (every 5 s) would be too slow: LISTEN/NOTIFY must wake node 2.
        TAKEBACK_POLL_INTERVAL="5",
        TAKEBACK_READY_MAX_LAG="60",
    )
    procs: list[tuple[subprocess.Popen[bytes], Path]] = []
    bases: list[str] = []
    try:
        for n in range(2):
            port = _free_port()
            log = tmp_path / f"serve{n}.log"
            with log.open("wb") as sink:
                proc = subprocess.Popen(
                    [sys.executable, "-m", "takeback", "serve", "--port", str(port),
                     "--bank", service_url, "--log-level", "warning"],
                    env=env, stdout=sink, stderr=subprocess.STDOUT,
                )  # fmt: skip
            procs.append((proc, log))
            bases.append(f"http://127.0.0.1:{port}")
        with httpx.Client(timeout=5.0) as client:
            for (proc, log), base in zip(procs, bases, strict=True):

                def ready(
                    proc: subprocess.Popen[bytes] = proc, base: str = base, log: Path = log
                ) -> bool:
                    if proc.poll() is not None:
                        raise AssertionError(f"serve exited early:\n{log.read_text()}")
                    try:
                        return client.get(f"{base}/readyz").status_code == 200
                    except httpx.TransportError:
                        return False

                _wait(ready, timeout=60, what=f"{base} to be ready")
        yield bases, token
        for proc, _ in procs:
            proc.send_signal(signal.SIGTERM)
        for proc, log in procs:
            assert proc.wait(timeout=30) == 0, log.read_text()
            text = log.read_text()
            assert "Traceback" not in text and "ERROR" not in text, text
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def test_two_servers_see_submissions_and_withdrawals_within_two_seconds(
    two_servers: tuple[list[str], str],
) -> None:
    bases, token = two_servers
    headers = {"Authorization": f"Bearer {token}"}
    pdq = np.random.default_rng(8).bytes(32).hex()
    with httpx.Client(timeout=5.0, headers=headers) as client:

        def matched(base: str) -> bool:
            r = client.post(f"{base}/v1/banks/default/match", json={"pdq": pdq})
            assert r.status_code == 200, r.text
            return bool(r.json()["matches"])

        assert not any(matched(b) for b in bases)
        started = time.monotonic()
        r = client.post(
            f"{bases[0]}/v1/banks/default/hashes",
            json={"entries": [{"pdq": pdq, "quality": 90, "label": "shared"}]},
        )
        assert r.status_code == 200, r.text
        entry_id = r.json()["results"][0]["id"]
        _wait(lambda: all(matched(b) for b in bases), timeout=2.0, what="a match on both")
        seen = time.monotonic() - started

        started = time.monotonic()
        r = client.delete(f"{bases[0]}/v1/banks/default/hashes/{entry_id}")
        assert r.status_code == 200, r.text
        _wait(lambda: not any(matched(b) for b in bases), timeout=2.0, what="no match on both")
        gone = time.monotonic() - started
        assert seen < 2.0 and gone < 2.0
        print(f"seen on both after {seen:.3f} s, gone from both after {gone:.3f} s")

        # the second node's feed and audit chain (shared, on the primary) agree
        feed = client.get(f"{bases[1]}/v1/banks/default/changes?since=0").json()
        assert [(c["op"], c["id"]) for c in feed["changes"]] == [
            ("add", entry_id),
            ("remove", entry_id),
        ]
        audit = client.get(f"{bases[1]}/v1/admin/audit/verify").json()
        assert audit["ok"] is True and audit["records"] >= 4
