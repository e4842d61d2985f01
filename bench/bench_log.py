"""Benchmark of the registration log: append rate, proof latency, storage.

Builds a log of ``--entries`` synthetic entries (random fingerprints, fixed
seed) with batched appends through the public API, then times inclusion and
consistency proofs from the stored subtree hashes, checks every timed proof
verifies, and reports the database size per entry.

Example::

    python bench/bench_log.py --entries 10000000 --out bench/out/log-10m.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

from takeback.provenance.log import RegistrationLog, verify_proof
from takeback.provenance.log_format import EntryData
from takeback.provenance.log_merkle import leaf_hash, verify_consistency, verify_inclusion


def _entries(rng: random.Random, n: int, t0: int) -> list[EntryData]:
    rb = rng.randbytes
    return [EntryData(t0 + i, rb(32), rb(32), None, rb(32)) for i in range(n)]


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "median_ms": round(statistics.median(s) * 1e3, 4),
        "p95_ms": round(s[int(0.95 * (len(s) - 1))] * 1e3, 4),
        "p99_ms": round(s[int(0.99 * (len(s) - 1))] * 1e3, 4),
        "max_ms": round(s[-1] * 1e3, 4),
        "mean_ms": round(statistics.fmean(s) * 1e3, 4),
    }


def _append_rate(directory: Path, n: int, batch: int, seed: int) -> dict[str, float]:
    """Entries per second for ``n`` entries appended in batches of ``batch``."""
    rng = random.Random(seed)
    batches = [_entries(rng, min(batch, n - i), 1_700_000_000 + i) for i in range(0, n, batch)]
    with RegistrationLog.create(directory) as log:
        start = time.perf_counter()
        for b in batches:
            log.append(b)
        elapsed = time.perf_counter() - start
    return {
        "entries": n,
        "batch": batch,
        "seconds": round(elapsed, 3),
        "entries_per_s": round(n / elapsed),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000_000, help="log size to build")
    parser.add_argument("--batch", type=int, default=100_000, help="entries per append")
    parser.add_argument("--proofs", type=int, default=2000, help="proofs of each kind to time")
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="where to build the log [default: a temporary directory, removed]",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)

    own_tmp = args.dir is None
    root = Path(tempfile.mkdtemp(prefix="bench-log-")) if own_tmp else args.dir
    results: dict[str, object] = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_start": os.getloadavg(),
    }
    try:
        # 1. append rate with small batches on a fresh log
        results["append_small_batches"] = [
            _append_rate(root / f"rate-{b}", 100_000, b, args.seed) for b in (100, 1000, 10_000)
        ]
        print(json.dumps(results["append_small_batches"]), flush=True)

        # 2. build the big log
        bank = root / "big"
        rng = random.Random(args.seed)
        start = time.perf_counter()
        gen_time = 0.0
        with RegistrationLog.create(bank, origin="bench.takeback/log") as log:
            done = 0
            while done < args.entries:
                g0 = time.perf_counter()
                batch = _entries(rng, min(args.batch, args.entries - done), 1_700_000_000 + done)
                gen_time += time.perf_counter() - g0
                log.append(batch)
                done += len(batch)
                if done % (args.batch * 10) == 0:
                    rate = done / (time.perf_counter() - start)
                    print(f"  {done:,} entries, {rate:,.0f}/s", file=sys.stderr, flush=True)
            build = time.perf_counter() - start
            log._c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        results["build"] = {
            "entries": args.entries,
            "batch": args.batch,
            "seconds": round(build, 1),
            "seconds_generating_entries": round(gen_time, 1),
            "entries_per_s": round(args.entries / build),
            "entries_per_s_excluding_generation": round(args.entries / (build - gen_time)),
        }
        print(json.dumps(results["build"]), flush=True)
        db = bank / "log.sqlite3"
        size = db.stat().st_size
        storage: dict[str, object] = {
            "database_bytes": size,
            "bytes_per_entry": round(size / args.entries, 1),
        }
        with RegistrationLog.open(bank) as log:
            try:
                per_table = dict(
                    log._c.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name")
                )
                storage["bytes_per_entry_by_table"] = {
                    k: round(v / args.entries, 1) for k, v in per_table.items()
                }
            except Exception:  # dbstat is an optional SQLite feature
                storage["bytes_per_entry_by_table"] = None
        results["storage"] = storage

        # 3. proofs at full size, from a freshly opened log
        n = args.entries
        prng = random.Random(args.seed + 1)
        with RegistrationLog.open(bank) as log:
            t0 = time.perf_counter()
            root_hash = log.root(n)
            results["root_ms"] = round((time.perf_counter() - t0) * 1e3, 3)
            inc, bad = [], 0
            for _ in range(args.proofs):
                i = prng.randrange(n)
                t0 = time.perf_counter()
                p = log.inclusion_proof(i, n)
                inc.append(time.perf_counter() - t0)
                leaf = log.entry(i).leaf_hash
                bad += not verify_inclusion(i, n, leaf, p, root_hash)
            results["inclusion_proof"] = {"size": n, **_percentiles(inc), "failed": bad}
            cons, bad = [], 0
            old_roots: dict[int, bytes] = {}
            for _ in range(args.proofs):
                old = prng.randrange(1, n)
                t0 = time.perf_counter()
                p = log.consistency_proof(old, n)
                cons.append(time.perf_counter() - t0)
                if len(old_roots) < 200:
                    old_roots[old] = log.root(old)
                    bad += not verify_consistency(old, n, old_roots[old], root_hash, p)
            results["consistency_proof"] = {
                "new_size": n,
                **_percentiles(cons),
                "failed": bad,
                "verified_sample": len(old_roots),
            }
            cp = log.checkpoint(tsa=False)
            t0 = time.perf_counter()
            files = [log.proof_file(prng.randrange(n), checkpoint=cp) for _ in range(200)]
            file_ms = (time.perf_counter() - t0) / len(files) * 1e3
            key = log.verifier
        t0 = time.perf_counter()
        ok = sum(verify_proof(f, key).ok for f in files)
        verify_ms = (time.perf_counter() - t0) / len(files) * 1e3
        results["proof_file"] = {
            "write_ms": round(file_ms, 3),
            "verify_ms": round(verify_ms, 3),
            "verified": ok,
            "of": len(files),
            "bytes": len(files[0]),
        }
        results["leaf_hash_check"] = leaf_hash(b"").hex()[:8] == "6e340b9c"
    finally:
        results["load_average_end"] = os.getloadavg()
        if own_tmp:
            shutil.rmtree(root, ignore_errors=True)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
