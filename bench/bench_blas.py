#!/usr/bin/env python
"""Why TakeBack runs numpy's BLAS on one thread: a small product, one thread against all.

Times the projection TakeBack makes for every fingerprint (384 RootSIFT
descriptors, 128 values each, onto the model's 32 axes) in fresh processes
with ``OPENBLAS_NUM_THREADS`` set to 1 and to the number of cores, first on the
machine as it is (its load average is recorded), then while one more busy
process per core runs (another worker, say).

Run ``python bench/bench_blas.py``; ``--out FILE`` writes the results as JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path

_CHILD = """
import time, numpy as np
from takeback.fingerprint.derivative import project
x = np.random.default_rng(0).random((384, 128), dtype=np.float32)
project(x)
t = time.perf_counter()
for _ in range({n}):
    project(x)
print((time.perf_counter() - t) / {n} * 1000)
"""


def _spin(stop: float) -> None:
    while time.time() < stop:
        pass


def _time(threads: int, n: int) -> float:
    env = {**os.environ, "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _CHILD.format(n=n)], env=env, check=True,
                         capture_output=True, text=True).stdout  # fmt: skip
    return round(float(out.strip()), 3)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="products timed per run")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    res: dict[str, object] = {"cores": cores, "loadavg_before": os.getloadavg()}
    for label in ("as_is", "busy"):
        procs = []
        if label == "busy":
            stop = time.time() + 600
            procs = [multiprocessing.Process(target=_spin, args=(stop,)) for _ in range(cores)]
            for p in procs:
                p.start()
        try:
            res[label] = {f"{t} thread(s) ms": _time(t, args.n) for t in sorted({1, cores})}
        finally:
            for p in procs:
                p.terminate()
    print(json.dumps(res, indent=1))
    if args.out:
        args.out.write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
