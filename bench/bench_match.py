"""Benchmark exact radius-31 PDQ lookups: TakeBack's indexes against faiss and pytx.

Builds banks of PDQ hashes that look like real ones (hashes of real photos and
of edits made in code, dense clusters of near-duplicates, filled up with random
codes), then measures, for each structure in a separate process:

* build time, index memory and the process's peak RSS;
* single-lookup latency (one query per call, one thread): p50, p99;
* batched throughput (all queries in one call, both cores);
* that results equal the brute-force oracle's on a sample of queries.

Structures: ``mih`` and ``bruteforce`` (:mod:`takeback.bank.index`),
``faiss-flat`` (faiss ``IndexBinaryFlat``), ``pdqindex2`` (python-threatexchange
``PDQIndex2``, what HMA uses) and ``pdqindex`` (python-threatexchange
``PDQIndex``, faiss ``IndexBinaryMultiHash``). Slow peers are measured on a
subset of the queries at large sizes; the table says how many.

A lookup is one 256-bit query. Matching an upload costs 8 lookups (its 8
dihedral PDQ variants), and the query set is made that way.

Examples
--------
::

    python bench/bench_match.py --sizes 1000000,10000000 --out bench/out/match.md
    python bench/bench_match.py --sizes 100000 --structures mih,bruteforce --quick
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RADIUS = 31
STRUCTURES = ("bruteforce", "mih", "faiss-flat", "pdqindex", "pdqindex2")

#: Real photos shipped with scikit-image: registered in the bank (with edits)...
BANK_PHOTOS = (
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "rocket.jpg",
    "motorcycle_left.png", "moon.png", "coins.png", "grass.png", "gravel.png",
    "brick.png", "ihc.png", "cell.png", "clock_motion.png",
)  # fmt: skip
#: ... and never registered (their hashes are queries that should not match).
UNRELATED_PHOTOS = ("hubble_deep_field.jpg", "retina.jpg", "motorcycle_right.png", "page.png")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def _edit(img: Any, rng: np.random.Generator) -> Any:
    """A random repost-like edit: crop, resize, brightness, flip, small turn, JPEG."""
    from PIL import Image, ImageEnhance

    w, h = img.size
    if rng.random() < 0.7:  # crop keeping 80-100% of each side
        cw, ch = int(w * rng.uniform(0.8, 1.0)), int(h * rng.uniform(0.8, 1.0))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img = img.crop((x, y, x + cw, y + ch))
    if rng.random() < 0.7:
        scale = rng.uniform(0.3, 1.0)
        img = img.resize((max(64, int(img.width * scale)), max(64, int(img.height * scale))))
    if rng.random() < 0.5:
        img = ImageEnhance.Brightness(img).enhance(rng.uniform(0.7, 1.3))
    if rng.random() < 0.2:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if rng.random() < 0.15:
        img = img.rotate(rng.uniform(-3, 3), resample=Image.Resampling.BILINEAR)
    if rng.random() < 0.8:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=int(rng.integers(40, 96)))
        buf.seek(0)
        with Image.open(buf) as jpeg:
            img = jpeg.convert("RGB")
    return img


def photo_hashes(names: tuple[str, ...], edits: int, seed: int) -> np.ndarray:
    """8 dihedral PDQ hashes of each photo and of ``edits`` random edits of it."""
    from PIL import Image
    from skimage import data_dir

    from takeback.fingerprint.pdq import pdq_from_pixels

    rng = np.random.default_rng(seed)
    rows: list[np.ndarray] = []
    for name in names:
        path = Path(data_dir) / name
        if not path.is_file():
            continue
        with Image.open(path) as opened:
            base = opened.convert("RGB")
        base.thumbnail((512, 512))
        for k in range(edits + 1):
            img = base if k == 0 else _edit(base, rng)
            hashes, _quality = pdq_from_pixels(np.asarray(img), dihedral=True)
            rows.extend(h.to_array() for h in hashes)
    return np.stack(rows)


def flip_random_bits(codes: np.ndarray, counts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Each row of ``codes`` with ``counts[i]`` distinct random bits flipped."""
    bits = np.unpackbits(codes, axis=1)
    for i, k in enumerate(counts.tolist()):
        bits[i, rng.choice(256, size=k, replace=False)] ^= 1
    return np.packbits(bits, axis=1)


def make_data(n: int, seed: int, *, edits: int, clusters: int, cluster_size: int) -> dict:
    """The bank (ids 1..n in order, as a store hands them out) and the query sets."""
    rng = np.random.default_rng(seed)
    real_bank = photo_hashes(BANK_PHOTOS, edits, seed)
    edited = photo_hashes(BANK_PHOTOS, edits // 2, seed + 1)
    real_queries = np.concatenate([edited, photo_hashes(UNRELATED_PHOTOS, edits, seed + 2)])
    real_bank = real_bank[: n // 2]
    # Clusters around random centres (so that the realistic query mix does not
    # land in them; cluster_queries() aims at them on purpose).
    size = min(cluster_size, max(0, (n - real_bank.shape[0]) // (10 * max(clusters, 1))))
    centres = rng.integers(0, 256, size=(clusters, 32), dtype=np.uint8)
    cluster = flip_random_bits(
        np.repeat(centres, size, axis=0), rng.integers(0, 25, clusters * size), rng
    )
    fill = n - real_bank.shape[0] - cluster.shape[0]
    codes = np.concatenate(
        [real_bank, cluster, rng.integers(0, 256, size=(fill, 32), dtype=np.uint8)]
    )
    codes = codes[rng.permutation(n)]
    ids = np.arange(1, n + 1, dtype=np.int64)
    return {
        "ids": ids,
        "codes": np.ascontiguousarray(codes),
        "real_queries": real_queries,
        "centres": centres,
        "real_in_bank": real_bank.shape[0],
        "cluster_entries": cluster.shape[0],
    }


def query_mix(data: dict, count: int, seed: int) -> np.ndarray:
    """Lookups: 60% hashes of real photos (edited bank photos and unrelated ones,
    in dihedral groups of 8 as an upload is matched), 40% random codes; shuffled."""
    rng = np.random.default_rng(seed)
    real = data["real_queries"]
    groups = real[: real.shape[0] // 8 * 8].reshape(-1, 8, 32)
    n_real = int(count * 0.6) // 8
    picked = groups[rng.integers(0, groups.shape[0], n_real)].reshape(-1, 32)
    noise = rng.integers(0, 256, size=(count - picked.shape[0], 32), dtype=np.uint8)
    mix = np.concatenate([picked, noise])
    return np.ascontiguousarray(mix[rng.permutation(mix.shape[0])])


def cluster_queries(data: dict, count: int, seed: int) -> np.ndarray:
    """Lookups a few bits from a cluster centre: thousands of matches each."""
    rng = np.random.default_rng(seed)
    centres = data["centres"]
    base = centres[rng.integers(0, centres.shape[0], count)]
    return flip_random_bits(base, rng.integers(0, 10, count), rng)


# ---------------------------------------------------------------------------
# Measurement helpers (run inside the worker processes)
# ---------------------------------------------------------------------------


def proc_status(field: str) -> float:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in MiB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def mem_available_mib() -> float:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def latencies(fn, queries: np.ndarray) -> tuple[np.ndarray, list]:
    """Wall-clock seconds of ``fn(query)`` for each query, and the results."""
    out, times = [], np.empty(queries.shape[0])
    for i in range(queries.shape[0]):
        t = time.perf_counter()
        out.append(fn(queries[i]))
        times[i] = time.perf_counter() - t
    return times, out


def canonical(ids: np.ndarray, dists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ids = np.asarray(ids, dtype=np.int64)
    dists = np.asarray(dists, dtype=np.int32)
    order = np.lexsort((ids, dists))
    return ids[order], dists[order]


def save_results(path: Path, results: list[tuple[np.ndarray, np.ndarray]]) -> None:
    counts = np.array([len(r[0]) for r in results], dtype=np.int64)
    ids = np.concatenate([r[0] for r in results]) if results else np.zeros(0, np.int64)
    dists = np.concatenate([r[1] for r in results]) if results else np.zeros(0, np.int32)
    np.savez(path, counts=counts, ids=ids.astype(np.int64), dists=dists.astype(np.int32))


def load_results(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    z = np.load(path)
    bounds = np.concatenate([[0], np.cumsum(z["counts"])])
    return [(z["ids"][a:b], z["dists"][a:b]) for a, b in itertools.pairwise(bounds.tolist())]


# ---------------------------------------------------------------------------
# Workers: one structure per process
# ---------------------------------------------------------------------------


class Adapter:
    """Build one structure and answer lookups as (ids, distances) sorted pairs."""

    batched = False

    def build(self, ids: np.ndarray, codes: np.ndarray) -> None:
        raise NotImplementedError

    def single(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def batch(self, qs: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.single(q) for q in qs]

    def memory(self) -> float | None:
        return None


class OursAdapter(Adapter):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.batched = kind == "mih"  # brute force answers a batch one query at a time

    def build(self, ids, codes) -> None:
        from takeback.bank.index import build_index

        self.index = build_index(ids, codes, kind=self.kind)

    def single(self, q):
        return self.index.search(q, RADIUS)[0]

    def batch(self, qs):
        return self.index.search(qs, RADIUS)

    def memory(self) -> float:
        return self.index.memory_bytes() / 2**20


class FaissFlatAdapter(Adapter):
    batched = True

    def build(self, ids, codes) -> None:
        import faiss

        self.faiss = faiss
        self.ids = ids
        self.index = faiss.IndexBinaryFlat(256)
        self.index.add(codes)

    def _range(self, qs):
        lims, dists, labels = self.index.range_search(qs, RADIUS + 1)  # faiss: distance < radius
        return [
            canonical(self.ids[labels[a:b]], dists[a:b])
            for a, b in itertools.pairwise(lims.tolist())
        ]

    def single(self, q):
        self.faiss.omp_set_num_threads(1)
        return self._range(q[None, :])[0]

    def batch(self, qs):
        self.faiss.omp_set_num_threads(os.cpu_count() or 1)
        return self._range(qs)

    def memory(self) -> float:
        return self.index.ntotal * 32 / 2**20


class PytxAdapter(Adapter):
    """python-threatexchange's PDQ indexes: hex strings in, (match, distance) out."""

    def __init__(self, which: str) -> None:
        self.which = which

    def build(self, ids, codes) -> None:
        import faiss

        faiss.omp_set_num_threads(1)
        if self.which == "pdqindex2":
            from threatexchange.signal_type.pdq.pdq_index2 import PDQIndex2 as cls
        else:
            from threatexchange.signal_type.pdq.pdq_index import PDQIndex as cls
        self.index = cls(entries=zip(self.hexes, ids.tolist(), strict=True))

    def prepare(self, codes: np.ndarray) -> None:
        self.hexes = [bytes(row).hex() for row in codes]

    def single(self, q):
        matches = self.index.query(bytes(q).hex())
        return canonical(
            np.array([m.metadata for m in matches], dtype=np.int64),
            np.array([m.similarity_info.distance for m in matches], dtype=np.int32),
        )


def make_adapter(name: str) -> Adapter:
    if name in ("mih", "bruteforce"):
        return OursAdapter(name)
    if name == "faiss-flat":
        return FaissFlatAdapter()
    return PytxAdapter(name)


def run_worker(args: argparse.Namespace) -> dict:
    """Measure one structure at one size; print and return a JSON-able dict."""
    data = Path(args.data)
    ids = np.load(data / "ids.npy")
    codes = np.load(data / "codes.npy")
    mix = np.load(data / "mix.npy")
    clus = np.load(data / "cluster.npy")
    name = args.worker
    adapter = make_adapter(name)
    out: dict[str, Any] = {"structure": name, "n": int(ids.shape[0])}
    if isinstance(adapter, PytxAdapter):
        adapter.prepare(codes)
    if name == "mih":
        # Compile the kernels (or load them from numba's cache) before timing the build.
        t = time.perf_counter()
        warm = OursAdapter("mih")
        warm.build(ids[:200_000], codes[:200_000])
        warm.single(mix[0])
        warm.index.close()
        out["warmup_s"] = time.perf_counter() - t
    rss0 = proc_status("VmRSS")
    t = time.perf_counter()
    adapter.build(ids, codes)
    out["build_s"] = time.perf_counter() - t
    out["rss_growth_mib"] = proc_status("VmRSS") - rss0
    out["index_mib"] = adapter.memory()

    n_single = min(args.single, mix.shape[0])
    if name != "mih":
        n_single = min(n_single, args.peer_single)
    adapter.single(mix[0])  # warm-up: first-call costs are not lookup latency
    cpu = time.process_time()
    times, single_results = latencies(adapter.single, mix[:n_single])
    out["single_cpu_ms"] = (time.process_time() - cpu) / n_single * 1e3
    out["single_n"] = n_single
    out["single_p50_ms"] = float(np.percentile(times, 50) * 1e3)
    out["single_p99_ms"] = float(np.percentile(times, 99) * 1e3)
    out["single_mean_ms"] = float(times.mean() * 1e3)
    out["single_max_ms"] = float(times.max() * 1e3)

    if adapter.batched:
        n_batch = mix.shape[0] if name == "mih" else min(mix.shape[0], args.peer_batch)
        runs, cpu = [], []
        for _ in range(3 if name == "mih" else 1):
            t, c = time.perf_counter(), time.process_time()
            batch_results = adapter.batch(mix[:n_batch])
            runs.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out["batch_n"] = n_batch
        out["batch_qps"] = n_batch / float(np.median(runs))
        out["batch_qps_runs"] = [n_batch / r for r in runs]
        # CPU seconds over wall seconds: below 2 when other processes took a core.
        out["batch_cores_used"] = [c / r for c, r in zip(cpu, runs, strict=True)]
        if name == "mih":
            # Batched and single answers must agree.
            out["batch_equals_single"] = all(
                np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
                for a, b in zip(batch_results[:n_single], single_results, strict=True)
            )
    n_check = min(args.check, n_single)
    check = [canonical(*r) for r in single_results[:n_check]]
    n_clus = min(args.cluster_queries, clus.shape[0]) if name in ("mih", "bruteforce") else 0
    n_clus = min(n_clus, args.peer_single) if name == "bruteforce" else n_clus
    if n_clus:
        ctimes, cres = latencies(adapter.single, clus[:n_clus])
        out["cluster_n"] = n_clus
        out["cluster_p50_ms"] = float(np.percentile(ctimes, 50) * 1e3)
        out["cluster_p99_ms"] = float(np.percentile(ctimes, 99) * 1e3)
        out["cluster_mean_results"] = float(np.mean([len(r[0]) for r in cres]))
        check_clus = [canonical(*r) for r in cres]
        save_results(data / f"result-{name}-cluster.npz", check_clus)
    save_results(data / f"result-{name}-mix.npz", check)
    out["matches_per_lookup"] = float(np.mean([len(r[0]) for r in single_results]))

    if name == "mih" and not args.quick:
        out.update(incremental(adapter.index, codes, args.seed))
    out["peak_rss_mib"] = proc_status("VmHWM")
    if name == "mih" and args.geometries:
        adapter.index.close()
        out["geometries"] = geometry_sweep(args.geometries, ids, codes, mix[:2000])
    return out


def geometry_sweep(spec: str, ids: np.ndarray, codes: np.ndarray, queries: np.ndarray) -> list:
    """Build time, memory and CPU time per single lookup of other MIH geometries."""
    from takeback.bank.index import MihIndex

    rows = []
    for item in spec.split(","):
        chunks, chunk_bits, bucket_bits = (int(v) for v in item.split("x"))
        t = time.perf_counter()
        index = MihIndex(ids, codes, chunks=chunks, chunk_bits=chunk_bits, bucket_bits=bucket_bits)
        build_s = time.perf_counter() - t
        index.search(queries[0], RADIUS)
        cpu = time.process_time()
        for q in queries:
            index.search(q, RADIUS)
        cpu_ms = (time.process_time() - cpu) / queries.shape[0] * 1e3
        rows.append(
            {"geometry": item, "build_s": build_s, "index_mib": index.memory_bytes() / 2**20,
             "cpu_ms": cpu_ms, "n_queries": int(queries.shape[0])}
        )  # fmt: skip
        index.close()
    return rows


def incremental(index, codes: np.ndarray, seed: int) -> dict:
    """Change-feed costs on the large index: single adds, removals, compaction."""
    rng = np.random.default_rng(seed + 5)
    n = len(index)
    new_codes = rng.integers(0, 256, size=(10_000, 32), dtype=np.uint8)
    new_ids = np.arange(n + 1, n + 10_001, dtype=np.int64)
    t = time.perf_counter()
    for i in range(new_ids.shape[0]):
        index.add(new_ids[i : i + 1], new_codes[i : i + 1])
    add_us = (time.perf_counter() - t) / new_ids.shape[0] * 1e6
    probe = rng.integers(0, 256, size=(2000, 32), dtype=np.uint8)
    times, _ = latencies(lambda q: index.search(q, RADIUS), probe)
    gone = rng.choice(np.arange(1, n + 1), size=10_000, replace=False)
    t = time.perf_counter()
    removed = index.remove(gone)
    remove_ms = (time.perf_counter() - t) * 1e3
    t = time.perf_counter()
    index.compact()
    compact_s = time.perf_counter() - t
    return {
        "inc_add_us": add_us,
        "inc_delta": 10_000,
        "inc_p50_ms": float(np.percentile(times, 50) * 1e3),
        "inc_p99_ms": float(np.percentile(times, 99) * 1e3),
        "inc_remove_ms": remove_ms,
        "inc_removed": removed,
        "inc_compact_s": compact_s,
    }


def run_compile_worker(args: argparse.Namespace) -> dict:
    """Time the first MIH search in a fresh process (cold or warm numba cache)."""
    t0 = time.perf_counter()
    from takeback.bank.index import MihIndex

    rng = np.random.default_rng(0)
    codes = rng.integers(0, 256, size=(1000, 32), dtype=np.uint8)
    t = time.perf_counter()
    index = MihIndex(np.arange(1000), codes, scan_fallback=False)
    index.search(codes[0], RADIUS)
    return {"first_use_s": time.perf_counter() - t, "with_import_s": time.perf_counter() - t0}


def run_sqlite_worker(args: argparse.Namespace) -> dict:
    """Fill a SQLite bank through the store, then time loading it into an index."""
    from takeback.bank.index import build_index
    from takeback.bank.model import BankEntry
    from takeback.bank.store import SqliteStore
    from takeback.fingerprint.types import PdqHash

    data = Path(args.data)
    codes = np.load(data / "codes.npy")
    bank_dir = data / "sqlite-bank"
    t = time.perf_counter()
    with SqliteStore.create(bank_dir) as store:
        for start in range(0, codes.shape[0], 100_000):
            block = codes[start : start + 100_000]
            store.add(
                BankEntry(label=f"h{start + i}", pdq=PdqHash(bytes(row)), quality=100)
                for i, row in enumerate(block)
            )
    fill_s = time.perf_counter() - t
    db_mib = sum(p.stat().st_size for p in bank_dir.iterdir()) / 2**20
    t = time.perf_counter()
    with SqliteStore.open(bank_dir) as store:
        ids, loaded = store.pdq_arrays()
    read_s = time.perf_counter() - t
    t = time.perf_counter()
    index = build_index(ids, loaded)
    build_s = time.perf_counter() - t
    index.search(loaded[0], RADIUS)
    ready_s = read_s + build_s
    shutil.rmtree(bank_dir)
    return {
        "n": int(codes.shape[0]),
        "fill_s": fill_s,
        "db_mib": db_mib,
        "read_s": read_s,
        "build_s": build_s,
        "ready_s": ready_s,
        "kind": index.name,
        "peak_rss_mib": proc_status("VmHWM"),
    }


# ---------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------


def spawn(args: argparse.Namespace, mode: str, data: Path, extra_env=None, timeout=1800) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--data", str(data)]
    command += mode.split()
    for flag in ("single", "peer_single", "peer_batch", "check", "cluster_queries", "seed"):
        command += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    if args.geometries:
        command += ["--geometries", args.geometries]
    if args.quick:
        command.append("--quick")
    env = dict(os.environ, **(extra_env or {}))
    try:
        proc = subprocess.run(
            command, capture_output=True, text=True, env=env, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:]
        return {"error": f"exit {proc.returncode}: {' | '.join(tail)}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def compare(data: Path, name: str, which: str) -> tuple[int, int]:
    """(identical, compared) for one structure's results against brute force."""
    mine = data / f"result-{name}-{which}.npz"
    oracle = data / f"result-bruteforce-{which}.npz"
    if not mine.exists() or not oracle.exists():
        return 0, 0
    a, b = load_results(mine), load_results(oracle)
    k = min(len(a), len(b))
    same = sum(
        np.array_equal(x[0], y[0]) and np.array_equal(x[1], y[1])
        for x, y in zip(a[:k], b[:k], strict=True)
    )
    return same, k


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def fmt(value: Any, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark exact radius-31 PDQ lookups (TakeBack MIH and brute force, faiss "
            "IndexBinaryFlat, python-threatexchange PDQIndex2 and PDQIndex) on banks of "
            "realistic PDQ hashes. Each structure runs in its own process."
        )
    )
    parser.add_argument("--sizes", default="1000000,10000000", help="bank sizes, comma-separated")
    parser.add_argument(
        "--structures",
        default=",".join(STRUCTURES),
        help=f"subset of {','.join(STRUCTURES)}, or none (with --sqlite)",
    )
    parser.add_argument("--queries", type=int, default=20_000, help="lookups in the query mix")
    parser.add_argument("--single", type=int, default=5000, help="single lookups timed (ours)")
    parser.add_argument("--peer-single", type=int, default=0, help="single lookups for others "
                        "(0 = automatic: fewer at larger sizes)")  # fmt: skip
    parser.add_argument("--peer-batch", type=int, default=0, help="batched lookups for faiss "
                        "(0 = automatic)")  # fmt: skip
    parser.add_argument(
        "--check", type=int, default=200, help="lookups checked against brute force"
    )
    parser.add_argument("--cluster-queries", type=int, default=200, help="lookups near clusters")
    parser.add_argument("--edits", type=int, default=24, help="random edits per real photo")
    parser.add_argument("--clusters", type=int, default=4, help="clusters of near-duplicates")
    parser.add_argument("--cluster-size", type=int, default=20_000, help="entries per cluster")
    parser.add_argument("--sqlite", action="store_true", help="also time filling a SQLite bank "
                        "through SqliteStore and loading it into an index")  # fmt: skip
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--workdir", help="where to put temporary data (default: a temp dir)")
    parser.add_argument("--out", help="also write the markdown report to this file")
    parser.add_argument("--quick", action="store_true", help="skip the change-feed measurements")
    parser.add_argument(
        "--geometries",
        help="also time these MIH geometries, CHUNKSxCHUNK_BITSxBUCKET_BITS comma-separated "
        "(e.g. 11x23x21,12x21x21): build, memory, CPU per single lookup",
    )
    # Internal: worker modes.
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--compile-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--sqlite-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker or args.compile_worker or args.sqlite_worker:
        if args.compile_worker:
            result = run_compile_worker(args)
        elif args.sqlite_worker:
            result = run_sqlite_worker(args)
        else:
            result = run_worker(args)
        print(json.dumps(result))
        return 0

    sizes = [int(s) for s in args.sizes.split(",") if s]
    structures = [s for s in args.structures.split(",") if s and s != "none"]
    unknown = set(structures) - set(STRUCTURES)
    if unknown:
        parser.error(f"unknown structures: {', '.join(sorted(unknown))}")
    if structures and "bruteforce" not in structures:
        structures.insert(0, "bruteforce")  # the oracle is always run
    structures.sort(key=STRUCTURES.index)

    started = time.perf_counter()
    lines: list[str] = []
    notes: list[str] = []
    base = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-match-"))
    base.mkdir(parents=True, exist_ok=True)
    print(f"# load average at start: {loadavg()}", file=sys.stderr)
    try:
        compile_runs = []
        cache = base / "numba-cache"
        for label in ("cold", "warm"):
            r = spawn(args, "--compile-worker", base, {"NUMBA_CACHE_DIR": str(cache)}, 600)
            compile_runs.append((label, r))
        rows = []
        sqlite_rows = []
        for n in sizes:
            data = base / f"n{n}"
            data.mkdir(exist_ok=True)
            t = time.perf_counter()
            d = make_data(n, args.seed, edits=args.edits, clusters=args.clusters,
                          cluster_size=args.cluster_size)  # fmt: skip
            np.save(data / "ids.npy", d["ids"])
            np.save(data / "codes.npy", d["codes"])
            np.save(data / "mix.npy", query_mix(d, args.queries, args.seed + 10))
            np.save(data / "cluster.npy", cluster_queries(d, args.cluster_queries, args.seed + 11))
            gen_s = time.perf_counter() - t
            notes.append(
                f"n={n:,}: {d['real_in_bank']:,} hashes of real photos and edits, "
                f"{d['cluster_entries']:,} in {args.clusters} clusters of near-duplicates, "
                f"the rest random; {d['real_queries'].shape[0]:,} distinct real query hashes; "
                f"data made in {gen_s:.0f} s"
            )
            del d
            sub = argparse.Namespace(**vars(args))
            sub.peer_single = args.peer_single or (1000 if n <= 1_000_000 else 200)
            sub.peer_batch = args.peer_batch or (2000 if n <= 1_000_000 else 500)
            for name in structures:
                s2 = argparse.Namespace(**vars(sub))
                if name == "pdqindex2":
                    s2.peer_single = min(sub.peer_single, 100 if n <= 1_000_000 else 20)
                    need = n * 1.6e3 / 2**20 + 2048
                    if mem_available_mib() < need:
                        rows.append({"structure": name, "n": n, "error":
                                     f"skipped: needs ~{need:,.0f} MiB, "
                                     f"{mem_available_mib():,.0f} available"})  # fmt: skip
                        continue
                print(f"# n={n:,} {name} ... ({time.perf_counter() - started:.0f} s)",
                      file=sys.stderr)  # fmt: skip
                r = spawn(s2, f"--worker {name}", data)
                r.setdefault("structure", name)
                r.setdefault("n", n)
                r["same"], r["compared"] = compare(data, name, "mix")
                if name in ("mih", "bruteforce"):
                    r["same_cluster"], r["compared_cluster"] = compare(data, name, "cluster")
                rows.append(r)
                print(f"#   {json.dumps(r)}", file=sys.stderr)
            if args.sqlite:
                print(f"# n={n:,} sqlite ...", file=sys.stderr)
                sqlite_rows.append(spawn(args, "--sqlite-worker", data, timeout=3600))
            shutil.rmtree(data)
    finally:
        if not args.workdir:
            shutil.rmtree(base, ignore_errors=True)
    elapsed = time.perf_counter() - started

    lines.append("| structure | bank | build s | index MiB | peak RSS MiB | single p50 ms | "
                 "single p99 ms | single lookups/s (1 thread) | batched lookups/s (2 threads) | "
                 "= brute force |")  # fmt: skip
    lines.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['structure']} | {r['n']:,} | {r['error']} |||||||||")
            continue
        mem = r.get("index_mib")
        mem_txt = fmt(mem, 0) if mem is not None else f"~{fmt(r['rss_growth_mib'], 0)} (RSS)"
        batch = fmt(r.get("batch_qps"), 0)
        if r.get("batch_n"):
            cores = float(np.median(r["batch_cores_used"]))
            counted = f"{r['batch_n']:,} lookups, " if r["structure"] != "mih" else ""
            batch += f" ({counted}{cores:.2f} cores used)"
        single_qps = 1e3 / r["single_mean_ms"]
        single_txt = f"{single_qps:,.0f}"
        if r["structure"] != "mih":
            single_txt += f" ({r['single_n']:,} lookups)"
        same = f"{r['same']}/{r['compared']}"
        if r.get("compared_cluster"):
            same += f", clusters {r['same_cluster']}/{r['compared_cluster']}"
        lines.append(
            f"| {r['structure']} | {r['n']:,} | {fmt(r['build_s'])} | {mem_txt} | "
            f"{fmt(r['peak_rss_mib'], 0)} | {fmt(r['single_p50_ms'], 3)} | "
            f"{fmt(r['single_p99_ms'], 3)} | {single_txt} | {batch} | {same} |"
        )
    lines.append("")
    for r in rows:
        if r.get("structure") == "mih" and "error" not in r:
            lines.append(
                f"- mih at {r['n']:,}: single lookups mean {fmt(r['single_mean_ms'], 3)} ms "
                f"({fmt(r.get('single_cpu_ms'), 3)} ms of CPU), "
                f"max {fmt(r['single_max_ms'], 2)} ms over {r['single_n']:,}; batched runs "
                f"{', '.join(f'{q:,.0f}' for q in r['batch_qps_runs'])} lookups/s over "
                f"{r['batch_n']:,} lookups, using "
                f"{', '.join(f'{c:.2f}' for c in r['batch_cores_used'])} cores (CPU s / wall s; "
                f"batched = single: {r.get('batch_equals_single')}); "
                f"{fmt(r['matches_per_lookup'], 2)} matches per lookup; "
                f"kernel warm-up {fmt(r.get('warmup_s'), 2)} s before the build."
            )
            if "cluster_n" in r:
                lines.append(
                    f"  Lookups near a cluster ({fmt(r['cluster_mean_results'], 0)} matches each): "
                    f"p50 {fmt(r['cluster_p50_ms'], 2)} ms, p99 {fmt(r['cluster_p99_ms'], 2)} ms."
                )
            if "inc_add_us" in r:
                lines.append(
                    f"  Change feed: {r['inc_delta']:,} single-entry adds at "
                    f"{fmt(r['inc_add_us'], 0)} µs each; with them in the delta, lookups p50 "
                    f"{fmt(r['inc_p50_ms'], 3)} ms, p99 {fmt(r['inc_p99_ms'], 3)} ms; removing "
                    f"{r['inc_removed']:,} ids {fmt(r['inc_remove_ms'], 1)} ms; compact() "
                    f"{fmt(r['inc_compact_s'], 2)} s."
                )
    for r in rows:
        for g in r.get("geometries", []):
            lines.append(
                f"- geometry {g['geometry']} at {r['n']:,}: build {fmt(g['build_s'], 2)} s, "
                f"{fmt(g['index_mib'], 0)} MiB, {fmt(g['cpu_ms'], 3)} ms of CPU per single "
                f"lookup ({g['n_queries']:,} lookups of the mix)."
            )
    for label, r in compile_runs:
        if "error" in r:
            lines.append(f"- numba first use ({label} cache): {r['error']}")
        else:
            lines.append(
                f"- numba first use ({label} cache): {fmt(r['first_use_s'], 2)} s "
                f"({fmt(r['with_import_s'], 2)} s with imports)."
            )
    for r in sqlite_rows:
        if "error" in r:
            lines.append(f"- SQLite: {r['error']}")
        else:
            lines.append(
                f"- SQLite bank of {r['n']:,}: filled through SqliteStore.add in "
                f"{fmt(r['fill_s'], 0)} s ({fmt(r['db_mib'], 0)} MiB on disk); pdq_arrays() "
                f"{fmt(r['read_s'], 2)} s, build_index ({r['kind']}) {fmt(r['build_s'], 2)} s: "
                f"ready in {fmt(r['ready_s'], 2)} s."
            )
    lines.extend(f"- {note}" for note in notes)
    lines.append(
        f"- Machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, numpy {np.__version__}; load average at end "
        f"{loadavg()}; whole run {elapsed / 60:.1f} min."
    )
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
