#!/usr/bin/env python
"""Registration speed (``takeback bank add``) on one core, stage by stage.

Pinned to one CPU, over every corpus photo (``bench/photos.py fetch``) for
``--rounds`` rounds, each photo goes through what registration does, each
stage timed apart:

1. read the file, SHA-256 and MD5 of its bytes;
2. the canonical decode (``takeback.imageio.pdq_pixels``);
3. PDQ, side by side: ``pdqhash.compute`` (the reference binding) and
   TakeBack's compiled PDQ (``takeback.fingerprint._pdq_compiled``), whose
   bits and quality are checked equal on every photo;
4. the derivative fingerprint (``derivative_from_pixels`` on the canonical
   pixels: grey working image, SIFT, grid selection, projection).

Registration per photo is 1 + 2 + 3 + 4 with either PDQ; photos/s is the
steady state of a long batch (imports and compilation happen before timing).
Then the whole command, ``takeback bank add DIR --jobs 1`` (start-up, numba's
cached code, SQLite writes included), runs ``--commands`` times with the
derivative fingerprint and with ``--privacy pdq-only``. With ``--copies K``
it registers a folder holding K byte-distinct copies of every corpus photo
(the photo's bytes, then for all but the first a few bytes after the image
data, which decoders ignore): K times as many distinct files as the corpus
has, each as much work as its photo, a long batch whose start-up is spread
thinner. The command must register every file, or the bench stops.

Example::

    python bench/bench_register.py --rounds 3 --out bench/out/register.md
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from itertools import count
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pdqhash

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos
from bench_hash import Timing, environment, publish

from takeback import imageio
from takeback.fingerprint import derivative
from takeback.fingerprint._pdq_compiled import pdq_bits
from takeback.threads import limit_blas_threads

STAGES = (
    "read + SHA-256 + MD5",
    "canonical decode (pdq_pixels)",
    "PDQ: pdqhash.compute",
    "PDQ: compiled",
    "derivative fingerprint",
)


_turn = count()


def _clock() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def register_once(path: Path, stages: dict[str, Timing]) -> bool:
    """Time one photo's registration stage by stage; True when both PDQs agree."""
    marks = [_clock()]
    data = imageio.read_bytes(path)
    hashlib.sha256(data).hexdigest()
    hashlib.md5(data, usedforsecurity=False).hexdigest()
    marks.append(_clock())
    canonical = imageio.pdq_pixels(data, name=path.name)
    pixels = np.ascontiguousarray(canonical.pixels)
    marks.append(_clock())
    # Each PDQ on its own clock; which goes first alternates from call to call
    # (the one that runs second finds the pixels in the cache).
    pdqs = [(2, lambda: pdqhash.compute(pixels)), (3, lambda: pdq_bits(pixels))]
    first = next(_turn) % 2
    outputs: dict[int, Any] = {}
    for slot, run in pdqs[first:] + pdqs[:first]:
        w0, c0 = _clock()
        outputs[slot] = run()
        w1, c1 = _clock()
        stages[STAGES[slot]].add(w1 - w0, c1 - c0)
    reference, compiled = outputs[2], outputs[3]
    marks.append(_clock())
    # A photo with too little detail is registered with PDQ alone; finding out still counts.
    with contextlib.suppress(derivative.TooLittleDetailError):
        derivative.derivative_from_pixels(pixels, size=(canonical.width, canonical.height))
    marks.append(_clock())
    # marks: start, read, decoded, both PDQs done, derivative done
    for name, (start, end) in zip(
        (STAGES[0], STAGES[1], STAGES[4]), ((0, 1), (1, 2), (3, 4)), strict=True
    ):
        (w0, c0), (w1, c1) = marks[start], marks[end]
        stages[name].add(w1 - w0, c1 - c0)
    return (
        compiled is not None
        and np.array_equal(compiled[0], reference[0])
        and compiled[1] == reference[1]
    )


def in_process(files: Sequence[Path], rounds: int) -> dict[str, Any]:
    cv2.setNumThreads(1)
    limit_blas_threads()  # as the command does (cli.py): one BLAS thread
    for path in files[:3]:  # imports, numba's compiled code, first-call costs
        register_once(path, {name: Timing() for name in STAGES})
    stages = {name: Timing() for name in STAGES}
    agree = 0
    for _ in range(rounds):
        for path in files:
            agree += register_once(path, stages)
    ms = {name: float(np.sum(t.wall)) * 1000 / len(t.wall) for name, t in stages.items()}
    common = ms[STAGES[0]] + ms[STAGES[1]] + ms[STAGES[4]]
    per_photo = {
        "with pdqhash.compute": common + ms["PDQ: pdqhash.compute"],
        "with the compiled PDQ": common + ms["PDQ: compiled"],
    }
    return {
        "photos": len(files),
        "rounds": rounds,
        "stages": {name: t.summary() for name, t in stages.items()},
        "mean_ms": ms,
        "registration_ms": per_photo,
        "photos_per_s": {k: 1000 / v for k, v in per_photo.items()},
        "pdq_identical": agree,
        "pdq_compared": rounds * len(files),
    }


def copies_folder(files: Sequence[Path], copies: int, dest: Path) -> int:
    """``copies`` byte-distinct copies of every file in ``dest``; returns how many."""
    for i, path in enumerate(files):
        data = path.read_bytes()
        for k in range(copies):
            trailer = b"" if k == 0 else f"takeback-bench-copy-{k}".encode()
            (dest / f"{i:04d}-{k}{path.suffix}").write_bytes(data + trailer)
    return len(files) * copies


def whole_command(folder: Path, runs: int, expected: int) -> dict[str, Any]:
    """Time ``bank add`` on ``folder``, which must register all ``expected`` files
    (a file that failed would finish early and flatter photos/s)."""
    out: dict[str, Any] = {}
    for label, extra in (("derivative", []), ("pdq-only", ["--privacy", "pdq-only"])):
        seconds = []
        for _ in range(runs):
            with tempfile.TemporaryDirectory() as tmp:
                cmd = [sys.executable, "-m", "takeback", "bank", "add", str(folder)]
                cmd += ["--bank", tmp, "--jobs", "1", *extra]
                t0 = time.perf_counter()
                done = subprocess.run(cmd, capture_output=True, text=True)
                seconds.append(time.perf_counter() - t0)
                stats = subprocess.run(
                    [sys.executable, "-m", "takeback", "bank", "stats", "--bank", tmp, "--json"],
                    capture_output=True,
                    text=True,
                )  # after the clock: what the bank holds
                entries = json.loads(stats.stdout)["entries"] if stats.returncode == 0 else None
            if done.returncode != 0 or entries != expected:
                raise SystemExit(
                    f"'{' '.join(cmd)}' registered {entries} of {expected} files "
                    f"(exit {done.returncode}):\n{done.stderr[-2000:]}"
                )
        out[label] = {"seconds": seconds, "best_s": min(seconds)}
    return out


def markdown(result: dict[str, Any], command: str) -> str:
    env = result["environment"]
    ip = result["in_process"]
    lines = [
        f"Command: `{command}`",
        "",
        f"{ip['photos']} corpus photos x {ip['rounds']} rounds, one process pinned to one CPU "
        f"({env['cpu']}); load average at start {env['load_average_at_start']}.",
        "",
        "| stage | mean ms | median ms | p95 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, s in ip["stages"].items():
        mean = ip["mean_ms"][name]
        lines.append(f"| {name} | {mean:.1f} | {s['median_ms']:.1f} | {s['p95_ms']:.1f} |")
    lines += [
        "",
        "| registration per photo (1 + 2 + PDQ + 4) | mean ms | photos/s per core |",
        "| --- | ---: | ---: |",
    ]
    for name, value in ip["registration_ms"].items():
        lines.append(f"| {name} | {value:.1f} | {ip['photos_per_s'][name]:.1f} |")
    lines += [
        "",
        f"Compiled PDQ = pdqhash, every bit and the quality: {ip['pdq_identical']} of "
        f"{ip['pdq_compared']} hashes.",
    ]
    if "command" in result:
        n = result.get("command_files", ip["photos"])
        lines += [
            "",
            f"| whole command, `bank add --jobs 1`, {n} files | runs (s) | photos/s (best) |",
        ]
        lines.append("| --- | --- | ---: |")
        for label, r in result["command"].items():
            runs = ", ".join(f"{s:.2f}" for s in r["seconds"])
            lines.append(f"| {label} | {runs} | {n / r['best_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time registration (bank add) on one core, stage by stage, with pdqhash "
        "and the compiled PDQ side by side (run 'python bench/photos.py fetch' first).",
    )
    parser.add_argument("--photos", type=Path, default=photos.DEFAULT_DEST, help="corpus folder")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the corpus (default 3)")
    parser.add_argument(
        "--commands",
        type=int,
        default=2,
        help="runs of the whole 'takeback bank add' command per mode (default 2; 0 skips it)",
    )
    parser.add_argument(
        "--copies",
        type=int,
        default=1,
        help="the whole command registers this many byte-distinct copies of every photo "
        "(default 1: the corpus folder itself)",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here (and FILE.json)")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.commands < 0 or args.copies < 1:
        parser.error("--rounds and --copies must be at least 1, --commands at least 0")
    files = photos.photo_paths(args.photos)
    if not files:
        print("no photos found: run 'python bench/photos.py fetch' first", file=sys.stderr)
        return 2
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})  # the command's process inherits the pin
    result: dict[str, Any] = {"environment": environment()}
    print(f"in process: {len(files)} photos x {args.rounds} rounds ...", file=sys.stderr)
    result["in_process"] = in_process(files, args.rounds)
    if args.commands:
        print(f"whole command: {args.commands} runs per mode ...", file=sys.stderr)
        if args.copies == 1:
            result["command_files"] = len(files)
            result["command"] = whole_command(args.photos, args.commands, len(files))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                n = result["command_files"] = copies_folder(files, args.copies, Path(tmp))
                result["command"] = whole_command(Path(tmp), args.commands, n)
    publish("bench_register.py", argv, result, markdown, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
