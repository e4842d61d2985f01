"""Benchmark of the bank's stores of record: SQLite and PostgreSQL at 1M entries.

For each store, through the public :class:`~takeback.bank.store.Store` API:

* bulk add: ``--entries`` random entries (SHA-256, MD5, PDQ, quality, size) in
  batches of ``--batch``, each batch one ``add`` (one transaction); entries/s.
  Making the entries is not timed;
* ``pdq_arrays()`` at full size (what a matcher replica loads at start), all
  entries and only those of PDQ quality >= 50; median of 3;
* the change feed: one ``changes(since=<head>)`` poll that finds nothing (p50,
  p99), one ``remove`` of a single entry (p50), and how long a withdrawal takes
  to reach a replica (another store object, in another thread) that polls every
  ``--poll-interval`` seconds, measured from the return of ``remove``; for
  PostgreSQL also for a replica woken by ``LISTEN``/``NOTIFY``.

PostgreSQL runs in a private server started for the run (``tests/pg.py``, with
``fsync`` and ``synchronous_commit`` on, stock memory settings) unless ``--url``
names an empty database. SQLite runs in a temporary directory (``synchronous=FULL``).

Example::

    python bench/bench_store.py --entries 1000000 --out bench/out/store.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from takeback.bank.model import BankEntry
from takeback.bank.open import open_store, redact_url
from takeback.bank.store import Store
from takeback.bank.store_postgres import NOTIFY_CHANNEL
from takeback.fingerprint.types import PDQ_MIN_QUALITY, PdqHash

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pg import private_postgres


def _batches(n: int, batch: int, seed: int) -> Iterator[list[BankEntry]]:
    """Random entries, the same for every store (fixed seed); ~5 % of low quality."""
    rng = np.random.default_rng(seed)
    for start in range(0, n, batch):
        size = min(batch, n - start)
        sha, md5, pdq = rng.bytes(32 * size), rng.bytes(16 * size), rng.bytes(32 * size)
        quality = np.where(rng.random(size) < 0.05, 30, rng.integers(60, 101, size))
        yield [
            BankEntry(
                label=f"photo-{start + i:07d}.jpg",
                sha256=sha[32 * i : 32 * i + 32].hex(),
                md5=md5[16 * i : 16 * i + 16].hex(),
                pdq=PdqHash(pdq[32 * i : 32 * i + 32]),
                quality=int(quality[i]),
                width=4032,
                height=3024,
                source="bench",
            )
            for i in range(size)
        ]


def _ms(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_ms": round(statistics.median(s) * 1e3, 3),
        "p99_ms": round(s[min(len(s) - 1, int(0.99 * len(s)))] * 1e3, 3),
        "max_ms": round(s[-1] * 1e3, 3),
    }


def _bulk_add(store: Store, n: int, batch: int, seed: int) -> dict[str, float]:
    elapsed = 0.0
    for entries in _batches(n, batch, seed):
        start = time.perf_counter()
        store.add(entries)
        elapsed += time.perf_counter() - start
    return {"entries": n, "batch": batch, "seconds": round(elapsed, 2), "per_s": round(n / elapsed)}


def _pdq_arrays(store: Store, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, min_quality in (("all", 0), ("quality_ok", PDQ_MIN_QUALITY)):
        times = []
        for _ in range(3):
            start = time.perf_counter()
            ids, codes = store.pdq_arrays(min_quality=min_quality)
            times.append(time.perf_counter() - start)
        if name == "all" and (len(ids) != n or codes.shape != (n, 32)):
            raise RuntimeError(f"pdq_arrays returned {len(ids)} rows, expected {n}")
        out[name] = {"rows": len(ids), "median_s": round(statistics.median(times), 3)}
    return out


def _empty_polls(store: Store, rounds: int = 500) -> dict[str, float]:
    head = store.stats().last_seq
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        if store.changes(since=head):
            raise RuntimeError("the feed moved during the benchmark")
        times.append(time.perf_counter() - start)
    return _ms(times)


def _propagation(
    open_replica: Callable[[], Store],
    writer: Store,
    victims: list[int],
    wait: Callable[[Store, threading.Event], None],
) -> tuple[list[float], list[float]]:
    """Remove ``victims`` one by one; time remove() and the replica's first sight of it."""
    seen_at: dict[int, float] = {}
    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def replica() -> None:
        try:
            with open_replica() as s:
                since = s.stats().last_seq
                ready.set()
                while not stop.is_set():
                    wait(s, stop)
                    for change in s.changes(since=since):
                        since = change.seq
                        if change.op == "remove":
                            seen_at[change.entry_id] = time.perf_counter()
        except BaseException as exc:  # reported by the caller
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=replica)
    thread.start()
    ready.wait()
    rng = np.random.default_rng(1)
    removes, returned = [], {}
    for victim in victims:
        time.sleep(float(rng.uniform(0.05, 0.25)))  # uncorrelated with the poll phase
        start = time.perf_counter()
        writer.remove([victim])
        returned[victim] = time.perf_counter()
        removes.append(returned[victim] - start)
    deadline = time.monotonic() + 5
    while len(seen_at) < len(victims) and time.monotonic() < deadline and not errors:
        time.sleep(0.01)
    stop.set()
    thread.join()
    if errors:
        raise errors[0]
    if len(seen_at) < len(victims):
        raise RuntimeError(f"the replica saw {len(seen_at)} of {len(victims)} removals")
    return removes, [max(0.0, seen_at[v] - returned[v]) for v in victims]


def _feed(location: str | Path, rounds: int, interval: float) -> dict[str, Any]:
    out: dict[str, Any] = {}

    def poll(s: Store, stop: threading.Event) -> None:
        stop.wait(interval)

    with open_store(location) as writer:
        out["empty_poll"] = _empty_polls(writer)
        victims = writer.pdq_arrays()[0][: 2 * rounds].tolist()
        removes, delays = _propagation(lambda: open_store(location), writer, victims[:rounds], poll)
        out["remove_one"] = _ms(removes)
        out[f"seen_by_replica_polling_every_{interval}s"] = _ms(delays)
        if isinstance(location, str):  # PostgreSQL: a replica that LISTENs
            with psycopg.connect(location, autocommit=True) as listener:
                listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))

                def listen(s: Store, stop: threading.Event) -> None:
                    for _ in listener.notifies(timeout=0.2, stop_after=1):
                        pass

                _, delays = _propagation(
                    lambda: open_store(location), writer, victims[rounds:], listen
                )
            out["seen_by_replica_woken_by_notify"] = _ms(delays)
    return out


def _run(kind: str, location: str | Path, args: argparse.Namespace) -> dict[str, Any]:
    print(f"[{kind}] adding {args.entries} entries ...", file=sys.stderr, flush=True)
    with open_store(location, create=True, busy_timeout=60) as store:
        result: dict[str, Any] = {"add": _bulk_add(store, args.entries, args.batch, args.seed)}
        print(f"[{kind}] pdq_arrays, feed ...", file=sys.stderr, flush=True)
        result["pdq_arrays"] = _pdq_arrays(store, args.entries)
        result["database_bytes"] = store.stats().database_bytes
    result["feed"] = _feed(location, args.rounds, args.poll_interval)
    return result


def _table(results: dict[str, dict[str, Any]], interval: float) -> str:
    def row(name: str, get: Callable[[dict[str, Any]], object]) -> str:
        cells = []
        for r in results.values():
            try:
                cells.append(str(get(r)))
            except KeyError:
                cells.append("-")
        return f"| {name} | " + " | ".join(cells) + " |"

    feed = "seen_by_replica_polling_every_" + f"{interval}s"
    lines = [
        "| | " + " | ".join(results) + " |",
        "|---" * (len(results) + 1) + "|",
        row("bulk add (entries/s)", lambda r: f"{r['add']['per_s']:,}"),
        row("bulk add, total (s)", lambda r: r["add"]["seconds"]),
        row("pdq_arrays() all rows (s)", lambda r: r["pdq_arrays"]["all"]["median_s"]),
        row(
            f"pdq_arrays(min_quality={PDQ_MIN_QUALITY}) (s)",
            lambda r: r["pdq_arrays"]["quality_ok"]["median_s"],
        ),
        row("database size (MB)", lambda r: round(r["database_bytes"] / 1e6)),
        row(
            "changes(since=head), empty: p50 / p99 (ms)",
            lambda r: f"{r['feed']['empty_poll']['p50_ms']} / {r['feed']['empty_poll']['p99_ms']}",
        ),
        row("remove one entry: p50 (ms)", lambda r: r["feed"]["remove_one"]["p50_ms"]),
        row(
            f"withdrawal seen by a replica polling every {interval}s: p50 / p99 / max (ms)",
            lambda r: "{p50_ms} / {p99_ms} / {max_ms}".format(**r["feed"][feed]),
        ),
        row(
            "withdrawal seen by a replica woken by NOTIFY: p50 / p99 / max (ms)",
            lambda r: "{p50_ms} / {p99_ms} / {max_ms}".format(
                **r["feed"]["seen_by_replica_woken_by_notify"]
            ),
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000, help="entries per add()")
    parser.add_argument("--rounds", type=int, default=40, help="withdrawals timed per mode")
    parser.add_argument("--poll-interval", type=float, default=0.5, help="replica poll (s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stores", default="postgres,sqlite", help="comma-separated")
    parser.add_argument("--url", default=None, help="an empty PostgreSQL database to use")
    parser.add_argument("--out", type=Path, default=Path("bench/out/store.json"))
    args = parser.parse_args(argv)

    results: dict[str, dict[str, Any]] = {}
    env: dict[str, Any] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "sqlite": sqlite3.sqlite_version,
        "psycopg": psycopg.__version__,
    }
    for kind in args.stores.split(","):
        if kind == "sqlite":
            tmp = Path(tempfile.mkdtemp(prefix="takeback-bench-store-"))
            try:
                results[kind] = _run(kind, tmp / "bank", args)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
        elif kind == "postgres":
            with contextlib.ExitStack() as stack:
                url = args.url
                if url is None:
                    server = stack.enter_context(private_postgres(durable=True))
                    url = server.create_database("bench")
                    env["postgres_server"] = f"private, version {server.version}, fsync on"
                with psycopg.connect(url) as conn:
                    row = conn.execute("SHOW server_version").fetchone()
                    env["postgres"] = row[0] if row else None
                results[kind] = _run(kind, url, args)
        else:
            parser.error(f"unknown store {kind!r}")
    shown = {k: str(v) for k, v in vars(args).items() if v is not None}
    if args.url:
        shown["url"] = redact_url(args.url)
    report = {"env": env, "args": shown, "results": results}
    print(_table(results, args.poll_interval))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
