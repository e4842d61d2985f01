"""Load benchmark of ``takeback serve`` (issue 6): a 1M-hash bank under HTTP load.

What it does, in one run (every server is a real ``python -m takeback serve``
process on 127.0.0.1, driven by ``wrk``):

SQLite
    Seeds a bank of ``--hashes`` random PDQ hashes through the store API
    (``Store.add`` in batches of 10,000), plus the fingerprints of about half of
    the benchmark photos (``bench/photos.py fetch``; scikit-image's photos
    otherwise), as registered from the original files. Then:

    * **match by fingerprint**: ``wrk`` posts ``{"pdq", "quality"}`` bodies, 1%
      of them a registered hash with 0-24 bits flipped (must match that entry),
      99% random codes (must match nothing); once with one server process
      pinned to ``--server-cpus`` and ``wrk`` to ``--client-cpus`` (the cost per
      core), once with ``--workers`` server processes and ``wrk`` sharing every
      core (the machine's throughput);
    * **image uploads**: ``wrk`` posts 0.5-megapixel JPEGs re-encoded from real
      photos (raw ``image/jpeg`` bodies), half of them copies of registered
      photos; hashed (with the 8 dihedral PDQ variants) and matched; once on the
      pinned server, once on the server using every core (``--workers``
      processes, each with ``--hash-workers`` hashing processes);
    * **soak** (``--soak`` seconds): fingerprint and image load at once, plus a
      writer submitting and withdrawing entries every second; the server's RSS
      (and its hashing processes') sampled every ``--rss-every`` seconds;
    * **restarts** of the server using every core: SIGTERM, start again, time
      until ``/readyz`` answers 200 (each worker accepts connections once its
      index is loaded).

    Answers are checked before and after the load: every planted query matches
    its entry, no random query matches anything.

PostgreSQL (a private server from ``tests/pg.py``, fsync on)
    Seeds the same bank, starts a node of role ``all`` and a replica of role
    ``matcher``, then withdraws planted entries one at a time through the first
    and polls both with match requests until the entry is gone (time from the
    ``DELETE`` being sent); restarts the replica and times it back to ready.

HMA's approach, same run, same database
    In a separate process: reads the 1M hashes from PostgreSQL as hex strings,
    builds python-threatexchange's PDQ index (``PdqSignal.get_index_cls()``, the
    class HMA builds), pickles it into a PostgreSQL ``bytea`` and reads it back
    as a matcher would, then times single lookups; memory is the process's RSS.

The 1-minute load average is recorded before and after every phase; a phase
waits (up to ``--max-wait`` seconds) for it to fall below ``--max-load``, since
the machine is shared. The per-key rate limit is raised for the run (one key
makes all requests); everything else is the service's default unless set here
(``TAKEBACK_INDEX_KIND=mih``, ``TAKEBACK_WORKERS``, ``TAKEBACK_HASH_WORKERS``).

Needs ``wrk`` (Debian: ``apt-get install wrk``) and, for the PostgreSQL part,
the server binaries (``install.sh`` installs them).

Examples
--------
::

    python bench/bench_service.py --hashes 1000000 --duration 30 --soak 300
    python bench/bench_service.py --hashes 100000 --duration 10 --soak 0      # quick check
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image, ImageOps

from takeback.bank.model import BankEntry
from takeback.bank.open import open_store
from takeback.fingerprint.pdq import fingerprint_file
from takeback.fingerprint.types import PdqHash

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

BANK = "default"
#: Set by --server-pythonpath: a patched copy of src/ (and extra modules) for the servers.
SERVER_PYTHONPATH: str | None = None
SEED_BATCH = 10_000
#: Bits flipped in a planted query (well inside the threshold of 31).
PLANT_FLIPS = (0, 24)
UPLOAD_PIXELS = 500_000
UPLOAD_QUALITY = 85
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "motorcycle_right.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "page.png",
)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def wait_quiet(max_load: float, max_wait: float, what: str) -> dict[str, Any]:
    """Wait until the 1-minute load average is below ``max_load`` (at most ``max_wait`` s)."""
    start = time.monotonic()
    first = loadavg()
    while os.getloadavg()[0] > max_load and time.monotonic() - start < max_wait:
        time.sleep(10)
    waited = round(time.monotonic() - start)
    now = loadavg()
    if now[0] > max_load:
        log(f"{what}: load {now[0]} still above {max_load} after {waited} s; running anyway")
    elif waited:
        log(f"{what}: waited {waited} s for the load to drop ({first[0]} -> {now[0]})")
    return {"load_at_request": first, "load_before": now, "waited_s": waited}


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def ms_summary(seconds: list[float]) -> dict[str, float]:
    if not seconds:
        return {}
    return {
        "n": len(seconds),
        "p50_ms": round(statistics.median(seconds) * 1e3, 2),
        "p99_ms": round(pct(seconds, 99) * 1e3, 2),
        "max_ms": round(max(seconds) * 1e3, 2),
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# ---------------------------------------------------------------------------
# Workload: photos, bank entries, query bodies
# ---------------------------------------------------------------------------


@dataclass
class Photo:
    name: str
    upload: Path  # the 0.5 MP JPEG that is uploaded
    entry: BankEntry | None  # what is registered (from the original file), or None
    entry_id: int | None = None


def source_photos(photo_dir: Path | None) -> list[Path]:
    """Real photos of at least 0.5 MP: the fetched corpus, else scikit-image's."""
    paths: list[Path] = []
    try:
        import photos as corpus

        paths = corpus.photo_paths(photo_dir or corpus.DEFAULT_DEST)
    except Exception as exc:  # no manifest, no corpus: fall back
        log(f"photo corpus not available ({exc}); using scikit-image's photos")
    if not paths:
        import skimage.data

        paths = [Path(skimage.data.data_dir) / n for n in SKIMAGE_PHOTOS]
        paths = [p for p in paths if p.is_file()]
    big = []
    for p in paths:
        with Image.open(p) as im:
            if im.width * im.height >= 0.8 * UPLOAD_PIXELS:
                big.append(p)
    return big


def make_photos(photo_dir: Path | None, work: Path) -> list[Photo]:
    """0.5 MP JPEG uploads; every other photo's original fingerprint is registered."""
    out: list[Photo] = []
    (work / "uploads").mkdir(parents=True, exist_ok=True)
    for i, path in enumerate(source_photos(photo_dir)):
        with Image.open(path) as im:
            img = ImageOps.exif_transpose(im) or im
            img = img.convert("RGB")
            scale = min(1.0, (UPLOAD_PIXELS / (img.width * img.height)) ** 0.5)
            if scale < 1.0:
                size = (round(img.width * scale), round(img.height * scale))
                img = img.resize(size, Image.Resampling.LANCZOS)
            target = work / "uploads" / f"{i:03d}-{path.stem}.jpg"
            img.save(target, "JPEG", quality=UPLOAD_QUALITY)
        entry = None
        if i % 2 == 0:
            fp = fingerprint_file(path)
            entry = BankEntry.from_fingerprint(fp, label=f"photo-{path.name}", source="bench")
        out.append(Photo(path.name, target, entry))
    return out


def random_codes(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 32), dtype=np.uint8)


def seed_bank(location: str | Path, n: int, codes: np.ndarray, photos: list[Photo]) -> dict:
    """Fill a fresh bank: the registered photos first, then ``n`` random entries."""
    rng = np.random.default_rng(11)
    start = time.perf_counter()
    stored = 0
    with open_store(location, create=True, busy_timeout=60) as store:
        planted = [p for p in photos if p.entry is not None]
        for photo, result in zip(
            planted, store.add([p.entry for p in planted if p.entry]), strict=True
        ):
            photo.entry_id = result.id if result.duplicate_of is None else result.duplicate_of
        first_id = None
        for begin in range(0, n, SEED_BATCH):
            size = min(SEED_BATCH, n - begin)
            sha = rng.bytes(32 * size)
            quality = rng.integers(60, 101, size)
            batch = [
                BankEntry(
                    label=f"bench-{begin + i:07d}",
                    sha256=sha[32 * i : 32 * i + 32].hex(),
                    pdq=PdqHash(codes[begin + i].tobytes()),
                    quality=int(quality[i]),
                    width=4032,
                    height=3024,
                    source="bench",
                )
                for i in range(size)
            ]
            results = store.add(batch)
            if first_id is None:
                first_id = results[0].id
            stored += sum(1 for r in results if r.duplicate_of is None)
            if begin and begin % 200_000 == 0:
                log(f"  seeded {begin:,} of {n:,}")
    if first_id is None or stored != n:
        raise RuntimeError(f"seeding stored {stored} of {n} entries")
    seconds = time.perf_counter() - start
    return {"entries": n + len(planted), "seconds": round(seconds, 1), "first_id": first_id}


@dataclass
class Queries:
    path: Path  # one JSON body per line
    expected: list[int | None]  # entry id each body must match, or None
    bodies: list[str]


def make_queries(
    codes: np.ndarray, first_id: int, count: int, planted_share: float, path: Path, seed: int
) -> Queries:
    rng = np.random.default_rng(seed)
    n = codes.shape[0]
    bodies, expected = [], []
    planted = set(rng.choice(count, size=max(1, round(count * planted_share)), replace=False))
    for i in range(count):
        if i in planted:
            row = int(rng.integers(0, n))
            code = np.unpackbits(codes[row].copy())
            flips = rng.choice(
                256, size=int(rng.integers(*PLANT_FLIPS, endpoint=True)), replace=False
            )
            code[flips] ^= 1
            hexcode = np.packbits(code).tobytes().hex()
            expected.append(first_id + row)
        else:
            hexcode = rng.bytes(32).hex()
            expected.append(None)
        bodies.append(json.dumps({"pdq": hexcode, "quality": 90}))
    path.write_text("\n".join(bodies) + "\n")
    return Queries(path, expected, bodies)


# ---------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    kids = [int(k) for k in fh.read().split()]
                out += kids
                todo += kids
        except OSError:
            continue
    return out


def cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read()
    except OSError:
        return b""


def rss_mib(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Server:
    """One ``python -m takeback serve`` process (with ``workers`` worker processes)."""

    name: str
    env: dict[str, str]
    port: int
    cpus: str | None
    log_path: Path
    workers: int = 1
    log_level: str = "info"
    proc: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    starts: list[dict[str, float]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            **self.env,
            "TAKEBACK_PORT": str(self.port),
            "TAKEBACK_WORKERS": str(self.workers),
        }
        if SERVER_PYTHONPATH:
            env["PYTHONPATH"] = os.pathsep.join(
                p for p in (SERVER_PYTHONPATH, os.environ.get("PYTHONPATH")) if p
            )
        cmd = [sys.executable, "-m", "takeback", "serve", "--log-level", self.log_level]
        if self.cpus:
            cmd = ["taskset", "-c", self.cpus, *cmd]
        logfile = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(cmd, env=env, stdout=logfile, stderr=subprocess.STDOUT)
        logfile.close()

    def wait_ready(self, timeout: float = 300) -> float:
        """Seconds from ``start()`` until ``/readyz`` answers 200 (every worker, roughly)."""
        assert self.proc is not None
        needed = 1 if self.workers == 1 else 4 * self.workers
        ok = 0
        with httpx.Client(timeout=2) as client:
            while time.perf_counter() - self.started_at < timeout:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited; see {self.log_path}")
                try:
                    ok = ok + 1 if client.get(f"{self.url}/readyz").status_code == 200 else 0
                except httpx.HTTPError:
                    ok = 0
                if ok >= needed:
                    return time.perf_counter() - self.started_at
                time.sleep(0.02 if ok else 0.05)
        raise RuntimeError(f"{self.name} not ready after {timeout} s; see {self.log_path}")

    def stop(self) -> float:
        """SIGTERM and wait; seconds until the process is gone."""
        if self.proc is None:
            return 0.0
        start = time.perf_counter()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        return time.perf_counter() - start

    def restart(self) -> dict[str, float]:
        stop = self.stop()
        self.start()
        ready = self.wait_ready()
        result = {"stop_s": round(stop, 2), "start_to_ready_s": round(ready, 2)}
        self.starts.append(result)
        return result

    def rss(self) -> tuple[float, float]:
        """RSS of the server processes (the main one and its uvicorn workers), and of
        them plus their hashing processes, MiB."""
        assert self.proc is not None
        pid = self.proc.pid
        workers = [p for p in descendants(pid) if b"spawn_main" in cmdline(p)]
        main = rss_mib(pid) + sum(rss_mib(p) for p in workers)
        return main, rss_mib(pid) + sum(rss_mib(p) for p in descendants(pid))

    def loaded_log(self) -> list[str]:
        text = self.log_path.read_text(errors="replace")
        return [line.strip() for line in text.splitlines() if "loaded" in line and "hashes" in line]


def base_env(home: Path) -> dict[str, str]:
    return {
        "TAKEBACK_HOME": str(home),
        "TAKEBACK_HOST": "127.0.0.1",
        "TAKEBACK_INDEX_KIND": "mih",
        # One key makes every request of the run: lift its token bucket.
        "TAKEBACK_RATE_LIMIT_PER_SECOND": "1000000",
        "TAKEBACK_RATE_LIMIT_BURST": "1000000",
    }


def create_key(service_db: str, role: str = "admin") -> str:
    from takeback.service.auth import KeyStore
    from takeback.service.db import open_service_db

    store = KeyStore(open_service_db(service_db))
    with store.db:
        _, token = store.create(role, ["*"], f"bench-{role}")
    return token


# ---------------------------------------------------------------------------
# Load generation (wrk) and checks (httpx)
# ---------------------------------------------------------------------------


def wrk(
    url: str,
    script: str,
    data_file: Path,
    token: str,
    content_type: str,
    *,
    duration: float,
    connections: int,
    cpus: str | None,
    threads: int = 1,
) -> subprocess.Popen[str]:
    cmd = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{int(duration)}s",
        "--timeout",
        "10s",
        "-s",
        str(HERE / "service" / script),
        "-H",
        f"Authorization: Bearer {token}",
        "-H",
        f"Content-Type: {content_type}",
        url,
        "--",
        str(data_file),
    ]
    if cpus:
        cmd = ["taskset", "-c", cpus, *cmd]
    env = {**os.environ, "TAKEBACK_WRK_SUMMARY": str(HERE / "service" / "summary.lua")}
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wrk_result(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate()
    for line in out.splitlines():
        if line.startswith("WRK_JSON "):
            raw = json.loads(line[len("WRK_JSON ") :])
            seconds = raw["duration_us"] / 1e6
            lat = {k: round(v / 1e3, 2) for k, v in raw["latency_us"]["percentiles"].items()}
            errors = raw["errors"]
            return {
                "requests": raw["requests"],
                "seconds": round(seconds, 2),
                "per_s": round(raw["requests"] / seconds, 1),
                "latency_ms": {
                    "mean": round(raw["latency_us"]["mean"] / 1e3, 2),
                    **{f"p{k}": v for k, v in lat.items()},
                    "max": round(raw["latency_us"]["max"] / 1e3, 2),
                },
                "errors": errors,
                "error_total": sum(errors.values()),
            }
    raise RuntimeError(f"wrk printed no summary (exit {proc.returncode}): {err.strip()[:500]}")


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


class CpuMeter:
    """Where the CPU went during a phase: the server (and its children), the load
    generators (children of this process that exited), this process, everyone else."""

    def __init__(self, server: Server) -> None:
        self.server = server

    def _now(self) -> tuple[float, float, float, float, float]:
        assert self.server.proc is not None
        pid = self.server.proc.pid
        srv = proc_cpu_s(pid) + sum(proc_cpu_s(p) for p in descendants(pid))
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        me = resource.getrusage(resource.RUSAGE_SELF)
        return (time.perf_counter(), machine_busy_s(), srv, kids.ru_utime + kids.ru_stime,
                me.ru_utime + me.ru_stime)  # fmt: skip

    def __enter__(self) -> CpuMeter:
        self.start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end = self._now()

    def summary(self, requests: int) -> dict[str, float]:
        wall, busy, srv, kids, me = (b - a for a, b in zip(self.start, self.end, strict=True))
        return {
            "wall_s": round(wall, 1),
            "server_cores": round(srv / wall, 2),
            "server_cpu_ms_per_request": round(srv * 1e3 / max(1, requests), 3),
            "load_generator_cores": round(kids / wall, 2),
            "bench_process_cores": round(me / wall, 2),
            "other_processes_cores": round(max(0.0, busy - srv - kids - me) / wall, 2),
        }


def run_wrk(*args: Any, server: Server, **kwargs: Any) -> dict[str, Any]:
    with CpuMeter(server) as meter:
        result = wrk_result(wrk(*args, **kwargs))
    result["cpu"] = meter.summary(result["requests"])
    return result


def match_ids(answer: dict[str, Any]) -> list[int]:
    return [m["id"] for m in answer.get("matches", [])]


def check_fingerprints(
    server: Server, token: str, queries: Queries, withdrawn: set[int], sample: int = 300
) -> dict[str, int]:
    """Every planted query matches its entry; random queries match nothing."""
    planted = [i for i, e in enumerate(queries.expected) if e is not None]
    rand = [i for i, e in enumerate(queries.expected) if e is None][: max(0, sample - len(planted))]
    result = {"planted": 0, "planted_found": 0, "random": 0, "random_matched": 0, "errors": 0}
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=10) as client:
        for i in planted + rand:
            r = client.post(f"/v1/banks/{BANK}/match", content=queries.bodies[i])
            if r.status_code != 200:
                result["errors"] += 1
                continue
            ids = match_ids(r.json())
            expected = queries.expected[i]
            if expected is None:
                result["random"] += 1
                result["random_matched"] += bool(ids)
            elif expected not in withdrawn:
                result["planted"] += 1
                result["planted_found"] += expected in ids
    return result


def variant_accuracy(photos: list[Photo]) -> dict[str, Any]:
    """How far the service's upload variants are from those hashed at full size.

    For every upload: the largest distance, over the 7 flipped and turned
    variants, between :func:`~takeback.service.hashing.fingerprint_upload` (one
    DCT of a 320-pixel square) and ``fingerprint_bytes(..., variants=True)`` (4
    full-size hashes), and the CPU time of each. For every registered photo, its
    upload turned or flipped 7 ways and re-encoded (JPEG, same quality): the best
    distance of either set of variants to the registered hash (lower is better).
    """
    from takeback.fingerprint.pdq import fingerprint_bytes
    from takeback.imageio import ImageLimits
    from takeback.service.hashing import fingerprint_upload

    limits = ImageLimits()
    gaps: list[int] = []
    cpu = {"full_size_ms": 0.0, "service_ms": 0.0}
    turned: dict[str, list[int]] = {"full_size": [], "service": []}
    for photo in photos:
        data = photo.upload.read_bytes()
        copies = [data]
        if photo.entry is not None and photo.entry.pdq is not None:
            with Image.open(io.BytesIO(data)) as im:
                for op in range(7):
                    buf = io.BytesIO()
                    im.transpose(Image.Transpose(op)).save(buf, "JPEG", quality=UPLOAD_QUALITY)
                    copies.append(buf.getvalue())
        for i, copy in enumerate(copies):
            start = time.process_time()
            full = fingerprint_bytes(copy, limits=limits, variants=True)
            mid = time.process_time()
            fast = fingerprint_upload(copy, limits)
            cpu["full_size_ms"] += (mid - start) * 1e3
            cpu["service_ms"] += (time.process_time() - mid) * 1e3
            if i == 0:
                gaps.append(
                    max(a.distance(b) for a, b in zip(full.variants, fast.variants, strict=True))
                )
            else:
                registered = photo.entry.pdq  # type: ignore[union-attr]
                for name, fp in (("full_size", full), ("service", fast)):
                    turned[name].append(min(v.distance(registered) for v in fp.variants))
    hashed = len(gaps) + len(turned["service"])

    def dist(values: list[int]) -> dict[str, float]:
        return {
            "median": statistics.median(values),
            "p90": pct(values, 90),
            "max": max(values),
            "n": len(values),
        }

    return {
        "variant_gap_bits": dist(gaps),
        "turned_copies_best_distance": {k: dist(v) for k, v in turned.items() if v},
        "cpu_ms_per_image": {k: round(v / hashed, 2) for k, v in cpu.items()},
    }


def check_images(server: Server, token: str, photos: list[Photo]) -> dict[str, Any]:
    """Upload each photo once: registered ones must match their entry."""
    result: dict[str, Any] = {
        "registered": 0,
        "registered_found": 0,
        "unregistered": 0,
        "unregistered_matched": 0,
        "errors": 0,
    }
    times = []
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=30) as client:
        for photo in photos:
            data = photo.upload.read_bytes()
            start = time.perf_counter()
            r = client.post(f"/v1/banks/{BANK}/match/image", content=data)
            times.append(time.perf_counter() - start)
            if r.status_code != 200:
                result["errors"] += 1
                continue
            ids = match_ids(r.json())
            if photo.entry_id is None:
                result["unregistered"] += 1
                result["unregistered_matched"] += bool(ids)
            else:
                result["registered"] += 1
                result["registered_found"] += photo.entry_id in ids
    result["sequential"] = ms_summary(times)
    return result


class RssSampler:
    """Samples a server's RSS every ``every`` seconds in a thread."""

    def __init__(self, server: Server, every: float) -> None:
        self.server, self.every = server, every
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        start = time.monotonic()
        while not self._stop.is_set():
            main, total = self.server.rss()
            self.samples.append(
                (round(time.monotonic() - start, 1), round(main, 1), round(total, 1))
            )
            self._stop.wait(self.every)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> dict[str, Any]:
        if not self.samples:
            return {}
        main = [s[1] for s in self.samples]
        total = [s[2] for s in self.samples]
        tail = max(1, len(main) // 10)
        return {
            "samples": len(main),
            "every_s": self.every,
            "main_mib": {
                "start": main[0],
                "end": main[-1],
                "max": max(main),
                "min": min(main),
                "first_10pct_mean": round(statistics.mean(main[:tail]), 1),
                "last_10pct_mean": round(statistics.mean(main[-tail:]), 1),
            },
            "with_children_mib": {"start": total[0], "end": total[-1], "max": max(total)},
            "series": self.samples,
        }


class Writer:
    """Submits ``per_s`` random entries and withdraws one of them every second."""

    def __init__(self, server: Server, token: str, per_s: int = 10) -> None:
        self.server, self.token, self.per_s = server, token, per_s
        self.submitted = self.withdrawn = self.errors = 0
        self.ids: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._rng = np.random.default_rng(99)

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(base_url=self.server.url, headers=headers, timeout=10) as client:
            while not self._stop.wait(1.0):
                entries = [
                    {
                        "pdq": self._rng.bytes(32).hex(),
                        "quality": 90,
                        "sha256": self._rng.bytes(32).hex(),
                        "label": "soak",
                    }
                    for _ in range(self.per_s)
                ]
                try:
                    r = client.post(f"/v1/banks/{BANK}/hashes", json={"entries": entries})
                    if r.status_code != 200:
                        self.errors += 1
                        continue
                    self.ids += [x["id"] for x in r.json()["results"]]
                    self.submitted += len(entries)
                    victim = self.ids.pop(0)
                    r = client.delete(f"/v1/banks/{BANK}/hashes/{victim}")
                    if r.status_code != 200:
                        self.errors += 1
                    else:
                        self.withdrawn += 1
                except httpx.HTTPError:
                    self.errors += 1

    def __enter__(self) -> Writer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---------------------------------------------------------------------------
# Phases
# ---------------------------------------------------------------------------


def phase(args: argparse.Namespace, what: str, fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    conditions = wait_quiet(args.max_load, args.max_wait, what)
    log(f"{what} (load {conditions['load_before'][0]}) ...")
    result = fn()
    conditions["load_after"] = loadavg()
    return {**result, "conditions": conditions}


def sqlite_part(args: argparse.Namespace, work: Path, w: Workload) -> dict[str, Any]:
    out: dict[str, Any] = {}
    bank = work / "sqlite-bank"
    log(f"seeding SQLite with {args.hashes:,} hashes ...")
    out["seed"] = seed_bank(bank, args.hashes, w.codes, w.photos)
    queries = make_queries(
        w.codes,
        out["seed"]["first_id"],
        args.queries,
        args.planted,
        work / "bodies-sqlite.jsonl",
        seed=3,
    )
    token = create_key(str(bank / "service.sqlite3"))
    env = {**base_env(work / "home"), "TAKEBACK_BANK": str(bank)}
    url = f"http://127.0.0.1:{{}}/v1/banks/{BANK}/match"

    # 1. The cost per core: one server process pinned, wrk on the other core.
    pinned = Server(
        "sqlite-pinned",
        {**env, "TAKEBACK_HASH_WORKERS": "1"},
        free_port(),
        args.server_cpus,
        work / "server-sqlite-pinned.log",
        workers=1,
        log_level=args.log_level,
    )
    pinned.start()
    out["first_start_to_ready_s"] = round(pinned.wait_ready(), 2)
    out["server_log_loaded"] = pinned.loaded_log()
    try:
        out["check_before"] = check_fingerprints(pinned, token, queries, set())
    except BaseException:
        pinned.stop()
        raise
    try:
        if "match" in args.phases:
            out["match"] = match_phase(args, pinned, url.format(pinned.port), token, queries)
        if "images" in args.phases:
            out["images_one_core"] = phase(
                args,
                "image uploads, server on one core",
                lambda: run_wrk(
                    url.format(pinned.port) + "/image",
                    "upload.lua",
                    w.upload_list,
                    token,
                    "image/jpeg",
                    duration=args.duration,
                    connections=args.upload_connections,
                    cpus=args.client_cpus,
                    server=pinned,
                ),
            )
    finally:
        pinned.stop()
    if not args.phases & {"match", "images", "restarts"} and not (
        "soak" in args.phases and args.soak > 0
    ):
        return out

    # 2. The machine: --workers processes and wrk on every core; restarts, the soak.
    both = Server(
        "sqlite-both",
        {**env, "TAKEBACK_HASH_WORKERS": str(args.hash_workers)},
        free_port(),
        None,
        work / "server-sqlite-both.log",
        workers=args.workers,
        log_level=args.log_level,
    )
    both.start()
    out["both_first_start_to_ready_s"] = round(both.wait_ready(), 2)
    try:
        out["images_check"] = check_images(both, token, w.photos)
        out["check_before_both"] = check_fingerprints(both, token, queries, set())
    except BaseException:
        both.stop()
        raise
    try:
        if "match" in args.phases:
            out["match_both"] = match_phase(
                args, both, url.format(both.port), token, queries, cpus=None
            )
        if "images" in args.phases:
            out.update(image_phases(args, both, url.format(both.port), token, w))
        if "restarts" in args.phases:
            restarts = [both.restart() for _ in range(args.restarts)]
            out["restarts"] = {"runs": restarts, "loaded": both.loaded_log()[-args.restarts :]}
        if "soak" in args.phases and args.soak > 0:
            out["soak"] = phase(
                args, f"soak, {args.soak} s", lambda: soak(args, both, token, queries, w)
            )
    finally:
        both.stop()
    return out


def match_phase(
    args: argparse.Namespace,
    server: Server,
    url: str,
    token: str,
    queries: Queries,
    cpus: str | None = "",
) -> dict[str, Any]:
    result = phase(
        args,
        f"match by fingerprint, {server.workers} server process(es)",
        lambda: run_wrk(
            url,
            "match.lua",
            queries.path,
            token,
            "application/json",
            duration=args.duration,
            connections=args.connections,
            cpus=args.client_cpus if cpus == "" else cpus,
            server=server,
        ),
    )
    result["rss_after_mib"] = server.rss()
    return result


def image_phases(
    args: argparse.Namespace, both: Server, url: str, token: str, w: Workload
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    out["images"] = phase(
        args,
        "image uploads, both cores",
        lambda: run_wrk(
            url + "/image",
            "upload.lua",
            w.upload_list,
            token,
            "image/jpeg",
            duration=args.duration,
            connections=args.upload_connections,
            cpus=None,
            server=both,
        ),
    )
    out["images_original_only"] = phase(
        args,
        "image uploads, both cores, all_variants=false",
        lambda: run_wrk(
            url + "/image?all_variants=false",
            "upload.lua",
            w.upload_list,
            token,
            "image/jpeg",
            duration=args.duration,
            connections=args.upload_connections,
            cpus=None,
            server=both,
        ),
    )
    return out


def soak(
    args: argparse.Namespace, server: Server, token: str, queries: Queries, w: Workload
) -> dict[str, Any]:
    url = f"{server.url}/v1/banks/{BANK}/match"
    with RssSampler(server, args.rss_every) as sampler, Writer(server, token) as writer:
        time.sleep(args.rss_every)  # a first sample before the load
        fp = wrk(
            url,
            "match.lua",
            queries.path,
            token,
            "application/json",
            duration=args.soak,
            connections=args.soak_connections,
            cpus=None,
        )
        img = wrk(
            url + "/image",
            "upload.lua",
            w.upload_list,
            token,
            "image/jpeg",
            duration=args.soak,
            connections=2,
            cpus=None,
        )
        with CpuMeter(server) as meter:
            fp_result, img_result = wrk_result(fp), wrk_result(img)
        time.sleep(args.rss_every)
    withdrawn = set()  # soak entries only; planted ones are untouched
    check = check_fingerprints(server, token, queries, withdrawn)
    return {
        "seconds": args.soak,
        "match": fp_result,
        "images": img_result,
        "writes": {
            "submitted": writer.submitted,
            "withdrawn": writer.withdrawn,
            "errors": writer.errors,
        },
        "errors_total": fp_result["error_total"] + img_result["error_total"] + writer.errors,
        "rss": sampler.summary(),
        "cpu": meter.summary(fp_result["requests"] + img_result["requests"]),
        "check_after": check,
    }


def postgres_part(args: argparse.Namespace, work: Path, w: Workload) -> dict[str, Any]:
    from tests.pg import private_postgres

    out: dict[str, Any] = {}
    with private_postgres(durable=True) as pg:
        url = pg.create_database("bench")
        out["server"] = f"private PostgreSQL {pg.version}, fsync on"
        log(f"seeding PostgreSQL with {args.hashes:,} hashes ...")
        photos = [Photo(p.name, p.upload, p.entry) for p in w.photos]
        out["seed"] = seed_bank(url, args.hashes, w.codes, photos)
        token = create_key(url)
        env = {
            **base_env(work / "home"),
            "TAKEBACK_BANK": url,
            "TAKEBACK_SERVICE_DB": url,
            "TAKEBACK_HASH_WORKERS": "1",
        }
        primary = Server(
            "pg-all",
            {**env, "TAKEBACK_ROLE": "all"},
            free_port(),
            None,
            work / "server-pg-all.log",
            log_level=args.log_level,
        )
        replica = Server(
            "pg-matcher",
            {**env, "TAKEBACK_ROLE": "matcher"},
            free_port(),
            None,
            work / "server-pg-matcher.log",
            log_level=args.log_level,
        )
        primary.start()
        replica.start()
        try:
            out["first_start_to_ready_s"] = {
                "all": round(primary.wait_ready(), 2),
                "matcher": round(replica.wait_ready(), 2),
            }
            if "withdrawal" not in args.phases:
                return out
            out["withdrawal"] = phase(
                args,
                "withdrawal visibility",
                lambda: withdrawals(
                    args, primary, [primary, replica], token, out["seed"]["first_id"], w
                ),
            )
            restarts = [replica.restart() for _ in range(args.restarts)]
            out["replica_restarts"] = {
                "runs": restarts,
                "loaded": replica.loaded_log()[-args.restarts :],
            }
        finally:
            replica.stop()
            primary.stop()
        if "hma" in args.phases and not args.skip_hma:
            out["hma"] = phase(
                args, "HMA-style index rebuild (threatexchange)", lambda: hma(url, work, args)
            )
    return out


def withdrawals(
    args: argparse.Namespace,
    writer: Server,
    nodes: list[Server],
    token: str,
    first_id: int,
    w: Workload,
) -> dict[str, Any]:
    """Withdraw random bank entries one at a time; time until each node stops matching."""
    rng = np.random.default_rng(21)
    rows = rng.choice(w.codes.shape[0], size=args.withdrawals, replace=False)
    headers = {"Authorization": f"Bearer {token}"}
    seen: dict[str, list[float]] = {n.name: [] for n in nodes}
    returned: list[float] = []
    failures = 0
    clients = {n.name: httpx.Client(base_url=n.url, headers=headers, timeout=10) for n in nodes}
    # Its own connection, made before any timing (making a client costs tens of ms).
    deleter = httpx.Client(base_url=writer.url, headers=headers, timeout=10)
    clients["deleter"] = deleter
    try:
        for row in rows:
            entry_id, body = first_id + int(row), {"pdq": w.codes[row].tobytes().hex()}
            path = f"/v1/banks/{BANK}/match"
            if not all(
                entry_id in match_ids(clients[n.name].post(path, json=body).json()) for n in nodes
            ):
                failures += 1
                continue
            time.sleep(float(rng.uniform(0.05, 0.3)))  # uncorrelated with any poll phase
            gone_at: dict[str, float] = {}  # perf_counter() of the first answer without it

            def poll(
                node: Server,
                entry_id: int = entry_id,
                body: dict[str, str] = body,
                gone_at: dict[str, float] = gone_at,
            ) -> None:
                deadline = time.perf_counter() + 10
                with httpx.Client(base_url=node.url, headers=headers, timeout=10) as c:
                    while time.perf_counter() < deadline:
                        answer = c.post(f"/v1/banks/{BANK}/match", json=body).json()
                        if entry_id not in match_ids(answer):
                            gone_at[node.name] = time.perf_counter()
                            return
                        time.sleep(0.002)

            threads = [threading.Thread(target=poll, args=(n,)) for n in nodes]
            for t in threads:  # polling from before the DELETE is sent
                t.start()
            time.sleep(0.05)
            start = time.perf_counter()
            r = deleter.delete(f"/v1/banks/{BANK}/hashes/{entry_id}")
            returned.append(time.perf_counter() - start)
            if r.status_code != 200:
                failures += 1
            for t in threads:
                t.join()
            for n in nodes:
                if n.name in gone_at and gone_at[n.name] >= start:
                    seen[n.name].append(gone_at[n.name] - start)
                else:
                    failures += 1
    finally:
        for c in clients.values():
            c.close()
    return {
        "rounds": len(rows),
        "failures": failures,
        "delete_returned": ms_summary(returned),
        "gone_from": {name: ms_summary(v) for name, v in seen.items()},
        "note": "seconds from sending DELETE to the first match answer without the entry",
    }


def hma(url: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    out_file = work / "hma.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--hma-worker",
        url,
        "--hma-out",
        str(out_file),
        "--hma-lookups",
        str(args.hma_lookups),
    ]
    if args.server_cpus:
        cmd = ["taskset", "-c", args.server_cpus, *cmd]
    subprocess.run(cmd, check=True)
    return json.loads(out_file.read_text())


def hma_worker(url: str, out_file: Path, lookups: int) -> None:
    """HMA's cycle on our PostgreSQL bank: read hex hashes, build, pickle, store, load, query."""
    import faiss
    import psycopg
    from threatexchange.signal_type.pdq.signal import PdqSignal

    faiss.omp_set_num_threads(1)

    def status(fieldname: str) -> float:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(fieldname + ":"):
                    return int(line.split()[1]) / 1024
        return float("nan")

    out: dict[str, Any] = {"index_class": None, "rss_start_mib": round(status("VmRSS"), 1)}
    with psycopg.connect(url, autocommit=True) as conn:
        t = time.perf_counter()
        rows = conn.execute(
            "SELECT encode(pdq, 'hex'), id FROM takeback.entries"
            " WHERE pdq IS NOT NULL AND (quality IS NULL OR quality >= 50) ORDER BY id"
        ).fetchall()
        out["read_hex_s"] = round(time.perf_counter() - t, 2)
        out["hashes"] = len(rows)
        cls = PdqSignal.get_index_cls()
        out["index_class"] = f"{cls.__module__}.{cls.__qualname__}"
        rss0 = status("VmRSS")
        t = time.perf_counter()
        index = cls.build(rows)
        out["build_s"] = round(time.perf_counter() - t, 2)
        out["index_rss_growth_mib"] = round(status("VmRSS") - rss0, 1)
        t = time.perf_counter()
        buf = io.BytesIO()
        index.serialize(buf)
        blob = buf.getvalue()
        out["pickle_s"] = round(time.perf_counter() - t, 2)
        out["pickle_mib"] = round(len(blob) / 2**20, 1)
        conn.execute("CREATE TABLE IF NOT EXISTS public.hma_index (id int PRIMARY KEY, data bytea)")
        t = time.perf_counter()
        conn.execute(
            "INSERT INTO public.hma_index VALUES (1, %s)"
            " ON CONFLICT (id) DO UPDATE SET data = excluded.data",
            (blob,),
        )
        out["store_s"] = round(time.perf_counter() - t, 2)
        del blob, buf
        t = time.perf_counter()
        row = conn.execute("SELECT data FROM public.hma_index WHERE id = 1").fetchone()
        assert row is not None
        fetched = bytes(row[0])
        out["download_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        loaded = cls.deserialize(io.BytesIO(fetched))
        out["unpickle_s"] = round(time.perf_counter() - t, 2)
        del fetched
        conn.execute("DROP TABLE public.hma_index")
    hexes = [r[0] for r in rows]
    ids = [r[1] for r in rows]
    rng = np.random.default_rng(5)
    times, found = [], 0
    planted = rng.choice(len(rows), size=lookups // 10, replace=False)
    queries = [hexes[i] for i in planted] + [
        rng.bytes(32).hex() for _ in range(lookups - len(planted))
    ]
    for k, q in enumerate(queries):
        start = time.perf_counter()
        matches = loaded.query(q)
        times.append(time.perf_counter() - start)
        if k < len(planted):
            found += ids[planted[k]] in [m.metadata for m in matches]
    out["lookup"] = ms_summary(times)
    out["lookup_planted_found"] = f"{found}/{len(planted)}"
    out["rebuild_cycle_s"] = round(
        out["read_hex_s"] + out["build_s"] + out["pickle_s"] + out["store_s"], 2
    )
    out["matcher_refresh_s"] = round(out["download_s"] + out["unpickle_s"], 2)
    out["rss_end_mib"] = round(status("VmRSS"), 1)
    out["peak_rss_mib"] = round(status("VmHWM"), 1)
    out["faiss"] = faiss.__version__
    out_file.write_text(json.dumps(out, indent=2))


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------


@dataclass
class Workload:
    codes: np.ndarray
    photos: list[Photo]
    upload_list: Path


def fmt_load(c: dict[str, Any], cpu: dict[str, float] | None = None) -> str:
    wait = f", waited {c['waited_s']} s" if c.get("waited_s") else ""
    text = f"{c['load_before'][0]} → {c['load_after'][0]}{wait}"
    if cpu:
        text += (
            f"; server {cpu['server_cores']} cores, wrk {cpu['load_generator_cores']}, "
            f"others {cpu['other_processes_cores']}"
        )
    return text


def scan_log(path: Path) -> dict[str, Any]:
    """Status codes in a server's access log, and its error lines."""
    statuses: dict[str, int] = {}
    problems: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        match = re.search(r'HTTP/1\.[01]" (\d{3})', line)
        if match:
            statuses[match.group(1)] = statuses.get(match.group(1), 0) + 1
        elif "Traceback" in line or line.startswith(("ERROR", "CRITICAL")):
            problems.append(line[:300])
    return {"statuses": statuses, "error_lines": problems[:20]}


def table(report: dict[str, Any]) -> str:
    a = report["args"]
    s = report.get("sqlite", {})
    p = report.get("postgres", {})
    rows: list[tuple[str, str, str, str]] = []

    def add(what: str, value: str, target: str = "", load: str = "") -> None:
        rows.append((what, value, target, load))

    n = f"{int(a['hashes']):,}"
    for key, label in (
        ("match_both", f"{a['workers']} server processes, wrk on the same 2 cores"),
        ("match", "1 server process pinned to one core, wrk on the other"),
    ):
        if key not in s:
            continue
        m = s[key]
        lat = m["latency_ms"]
        add(
            f"match by fingerprint, {n} hashes (SQLite), {label}: requests/s",
            f"**{m['per_s']:,.0f}**",
            "≥ 2,000",
            fmt_load(m["conditions"], m.get("cpu")),
        )
        add(
            "  latency p50 / p90 / p99 / max (ms)",
            f"{lat['p50']} / {lat['p90']} / **{lat['p99']}** / {lat['max']}",
            "p99 ≤ 20",
        )
        add("  errors (non-2xx, socket) / requests", f"{m['error_total']} / {m['requests']:,}")
        if "cpu" in m:
            add(
                "  server CPU per request (ms) → requests/s per fully available core",
                f"{m['cpu']['server_cpu_ms_per_request']} → "
                f"{1e3 / max(1e-9, m['cpu']['server_cpu_ms_per_request']):,.0f}",
            )
    for key, label in (
        ("images_one_core", "server on one core, 1 hashing process"),
        ("images", f"{a['workers']} server processes, {a['hash_workers']} hashing processes each"),
        ("images_original_only", "the same, `all_variants=false`"),
    ):
        if key in s:
            m = s[key]
            lat = m["latency_ms"]
            add(
                f"image uploads (0.5 MP JPEG), {label}: uploads/s",
                f"**{m['per_s']:,.1f}**",
                "≥ 50",
                fmt_load(m["conditions"], m.get("cpu")),
            )
            cpu = m.get("cpu", {}).get("server_cpu_ms_per_request", "-")
            add(
                "  latency p50 / p99 (ms); errors; server CPU ms per upload",
                f"{lat['p50']} / {lat['p99']}; {m['error_total']}; {cpu}",
            )
    if "soak" in s:
        k = s["soak"]
        rss = k["rss"]
        add(
            f"soak {k['seconds']} s: errors (match, uploads, writes)",
            f"**{k['errors_total']}** ({k['match']['error_total']}, "
            f"{k['images']['error_total']}, {k['writes']['errors']})",
            "0",
            fmt_load(k["conditions"], k.get("cpu")),
        )
        add(
            "  requests: matches, uploads, entries submitted / withdrawn",
            f"{k['match']['requests']:,} ({k['match']['per_s']:,.0f}/s), "
            f"{k['images']['requests']:,} ({k['images']['per_s']:,.1f}/s), "
            f"{k['writes']['submitted']:,} / {k['writes']['withdrawn']:,}",
        )
        mm, tt = rss["main_mib"], rss["with_children_mib"]
        add(
            f"  server RSS MiB start / end / max (every {rss['every_s']} s)",
            f"{mm['start']:.0f} / {mm['end']:.0f} / {mm['max']:.0f}",
            "flat",
        )
        add(
            "  with hashing processes: start / end / max",
            f"{tt['start']:.0f} / {tt['end']:.0f} / {tt['max']:.0f}",
        )
    if "restarts" in s:
        r = [x["start_to_ready_s"] for x in s["restarts"]["runs"]]
        add(
            f"restart to ready, SQLite {n}, {a['workers']} server processes (s)",
            " / ".join(map(str, r)),
            "≤ 10",
        )
    if "withdrawal" in p:
        wd = p["withdrawal"]
        for name, v in wd["gone_from"].items():
            add(
                f"withdrawal gone from `{name}` (PostgreSQL): p50 / max (ms)",
                f"{v.get('p50_ms')} / **{v.get('max_ms')}** ({v.get('n')} rounds)",
                "≤ 2,000",
                fmt_load(wd["conditions"]),
            )
    if "replica_restarts" in p:
        r = [x["start_to_ready_s"] for x in p["replica_restarts"]["runs"]]
        add(f"replica restart to ready, PostgreSQL {n} (s)", " / ".join(map(str, r)), "≤ 10")
    lines = [
        "| measure | result | target | load (1 min) before → after; CPU cores used |",
        "|---|---|---|---|",
    ]
    lines += [f"| {w} | {v} | {t} | {ld} |" for w, v, t, ld in rows]
    if "variants" in report:
        v = report["variants"]
        gap, cpu = v["variant_gap_bits"], v["cpu_ms_per_image"]
        lines += [
            "",
            f"Upload variants, {gap['n']} uploads: the service's (one DCT of a 320-pixel "
            "square) against 4 full-size hashes:",
            "",
            "| measure | full-size variants | the service's |",
            "|---|---|---|",
            f"| CPU per upload, hashing only (ms) | {cpu['full_size_ms']} | {cpu['service_ms']} |",
            f"| largest gap over the 7 variants (bits): median / p90 / max | 0 | "
            f"{gap['median']} / {gap['p90']} / {gap['max']} |",
        ]
        t = v["turned_copies_best_distance"]
        if t:
            full, fast = t["full_size"], t["service"]
            lines.append(
                f"| {full['n']} turned or flipped copies of registered photos: best distance "
                "to the registered hash, median / p90 / max | "
                f"{full['median']} / {full['p90']} / {full['max']} | "
                f"{fast['median']} / {fast['p90']} / {fast['max']} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=1_000_000)
    parser.add_argument("--duration", type=float, default=30, help="seconds per wrk run")
    parser.add_argument("--soak", type=float, default=300, help="soak seconds (0: none)")
    parser.add_argument("--connections", type=int, default=16, help="wrk, fingerprint matches")
    parser.add_argument("--upload-connections", type=int, default=4, help="wrk, uploads")
    parser.add_argument("--soak-connections", type=int, default=8)
    parser.add_argument("--queries", type=int, default=20_000, help="distinct match bodies")
    parser.add_argument("--planted", type=float, default=0.01, help="share of matching queries")
    parser.add_argument("--server-cpus", default="0", help="taskset list ('' for none)")
    parser.add_argument("--client-cpus", default="1", help="taskset list for wrk ('' for none)")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="server processes of the runs on every core (TAKEBACK_WORKERS)",
    )
    parser.add_argument("--hash-workers", type=int, default=2, help="for the two-core runs")
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--withdrawals", type=int, default=20)
    parser.add_argument("--rss-every", type=float, default=2.0)
    parser.add_argument("--max-load", type=float, default=1.0)
    parser.add_argument("--max-wait", type=float, default=300)
    parser.add_argument("--log-level", default="info", help="of the servers (info: access log)")
    parser.add_argument("--photos", type=Path, default=None, help="photo directory")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--skip-hma", action="store_true")
    parser.add_argument(
        "--phases",
        default="variants,match,images,restarts,soak,withdrawal,hma",
        help="comma-separated subset of variants,match,images,restarts,soak,withdrawal,hma",
    )
    parser.add_argument(
        "--server-pythonpath",
        default=None,
        help="prepended to the servers' PYTHONPATH (to measure a patched copy of src/)",
    )
    parser.add_argument("--hma-lookups", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/service.json"))
    parser.add_argument("--hma-worker", help=argparse.SUPPRESS)
    parser.add_argument("--hma-out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.phases = set(args.phases.split(","))
    global SERVER_PYTHONPATH
    SERVER_PYTHONPATH = args.server_pythonpath
    if args.hma_worker:
        hma_worker(args.hma_worker, args.hma_out, args.hma_lookups)
        return 0
    if shutil.which("wrk") is None:
        parser.error("wrk is not installed (Debian: apt-get install wrk)")

    import fastapi
    import uvicorn

    report: dict[str, Any] = {
        "env": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "wrk": subprocess.run(
                ["wrk", "--version"], capture_output=True, text=True
            ).stdout.splitlines()[0:1],
            "fastapi": fastapi.__version__,
            "uvicorn": uvicorn.__version__,
            "uvloop": _has("uvloop"),
            "httptools": _has("httptools"),
            "load_start": loadavg(),
        },
        "args": {
            k: (str(v) if isinstance(v, Path) else v)
            for k, v in vars(args).items()
            if not k.startswith("hma_w") and k != "hma_out"
        },
    }
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="takeback-bench-service-") as tmp:
        work = Path(tmp)
        log("making the 0.5 MP uploads and the bank's photo entries ...")
        photos = make_photos(args.photos, work)
        upload_list = work / "uploads.txt"
        upload_list.write_text("\n".join(str(p.upload) for p in photos) + "\n")
        w = Workload(random_codes(args.hashes, seed=7), photos, upload_list)
        sizes = [p.upload.stat().st_size for p in photos]
        report["uploads"] = {
            "photos": len(photos),
            "registered": sum(1 for p in photos if p.entry is not None),
            "median_bytes": int(statistics.median(sizes)),
            "pixels": UPLOAD_PIXELS,
            "jpeg_quality": UPLOAD_QUALITY,
        }
        if "variants" in args.phases:
            log("upload variants: one DCT of a 320-pixel square against full-size hashes ...")
            report["variants"] = variant_accuracy(photos)
        stores = args.stores.split(",")
        if "sqlite" in stores:
            report["sqlite"] = sqlite_part(args, work, w)
        if "postgres" in stores:
            report["postgres"] = postgres_part(args, work, w)
        for f in sorted(work.glob("server-*.log")):
            report.setdefault("server_logs", {})[f.name] = scan_log(f)
    report["env"]["load_end"] = loadavg()
    report["minutes"] = round((time.monotonic() - started) / 60, 1)
    md = table(report)
    print(md)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=sorted) + "\n")
    args.out.with_suffix(".md").write_text(md + "\n")
    log(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return 0


def _has(module: str) -> bool:
    with contextlib.suppress(ImportError):
        __import__(module)
        return True
    return False


if __name__ == "__main__":
    raise SystemExit(main())
