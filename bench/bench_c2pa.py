#!/usr/bin/env python
"""Content Credentials benchmark: sign and verify ~12-megapixel JPEGs.

Measures, per photo and in total, the wall time of

* ``sign_photo(..., embed=False)``: sidecar manifest (read, hash, sign, write);
* ``sign_photo(..., embed=True)``: a new signed copy of the photo;
* ``verify_photo`` on the sidecar-signed photo and on the embedded copy, with the
  local CA as trust anchor (the result must be ``trusted``);

with a P-256 key from ``init_keys`` (the default of ``takeback keys init``),
reporting median and p95 over all runs, and the machine's load average before
and after (other work on the machine slows every figure).

Photos: ``bench/data/12mp/*.jpg`` when present (``python bench/photos.py
fetch``), else a 4000 x 3000 JPEG made in code from scikit-image's astronaut
photo. Example::

    python bench/bench_c2pa.py --runs 20 --out bench/out/c2pa.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from takeback.provenance.c2pa import Verdict, sign_photo, verify_photo
from takeback.provenance.keys import LocalSigner, init_keys
from takeback.samples import sample_photo

TARGET_SECONDS = 0.3
DEFAULT_PHOTOS = Path(__file__).resolve().parent / "data" / "12mp"


def _made_photo(directory: Path) -> Path:
    """A 12 MP JPEG made from a real photo (when the corpus is not fetched)."""
    with Image.open(sample_photo("astronaut.png")) as img:
        big = img.convert("RGB").resize((4000, 3000), Image.Resampling.LANCZOS)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "astronaut-12mp.jpg"
    big.save(path, "JPEG", quality=90)
    return path


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def run(photos: list[Path], runs: int, work: Path) -> dict[str, Any]:
    files = init_keys(work / "keys", name="Benchmark")
    signer = LocalSigner.from_files(files.key, files.certificate)
    anchors = files.ca_certificate
    timings: dict[str, list[float]] = {
        "sign sidecar": [],
        "sign embedded": [],
        "verify sidecar": [],
        "verify embedded": [],
    }
    sizes = []
    load_before = os.getloadavg()
    for source in photos:
        photo = Path(shutil.copy(source, work / source.name))
        with Image.open(photo) as img:
            sizes.append({"photo": source.name, "size": img.size, "bytes": photo.stat().st_size})
        embedded = work / f"{photo.stem}.signed.jpg"
        # One warm-up of each (first use loads the native library).
        sign_photo(photo, signer, force=True)
        sign_photo(photo, signer, embed=True, output=embedded, force=True)
        for _ in range(runs):
            start = time.perf_counter()
            sign_photo(photo, signer, force=True)
            timings["sign sidecar"].append(time.perf_counter() - start)
            start = time.perf_counter()
            sign_photo(photo, signer, embed=True, output=embedded, force=True)
            timings["sign embedded"].append(time.perf_counter() - start)
            start = time.perf_counter()
            plain = verify_photo(photo, trust_anchors=anchors)
            timings["verify sidecar"].append(time.perf_counter() - start)
            start = time.perf_counter()
            inside = verify_photo(embedded, trust_anchors=anchors)
            timings["verify embedded"].append(time.perf_counter() - start)
            if plain.status is not Verdict.TRUSTED or inside.status is not Verdict.TRUSTED:
                raise SystemExit(f"{photo}: verification did not say trusted: {plain}, {inside}")
    load_after = os.getloadavg()
    summary = {
        name: {
            "runs": len(values),
            "median_s": statistics.median(values),
            "p95_s": _percentile(values, 0.95),
            "max_s": max(values),
            "meets_target": _percentile(values, 0.95) <= TARGET_SECONDS,
        }
        for name, values in timings.items()
    }
    import c2pa

    return {
        "photos": sizes,
        "runs_per_photo": runs,
        "results": summary,
        "target_s": TARGET_SECONDS,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "c2pa_python": c2pa.__version__,
        "c2pa_rs": c2pa.sdk_version(),
        "command": "python bench/bench_c2pa.py " + " ".join(sys.argv[1:]),
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "| operation | runs | median (s) | p95 (s) | max (s) | p95 <= 0.3 s |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, r in report["results"].items():
        lines.append(
            f"| {name} | {r['runs']} | {r['median_s']:.4f} | {r['p95_s']:.4f} | "
            f"{r['max_s']:.4f} | {'yes' if r['meets_target'] else 'NO'} |"
        )
    photos = ", ".join(
        f"{p['photo']} ({p['size'][0]}x{p['size'][1]}, {p['bytes'] / 1e6:.1f} MB)"
        for p in report["photos"]
    )
    before = ", ".join(f"{x:.2f}" for x in report["load_average_before"])
    after = ", ".join(f"{x:.2f}" for x in report["load_average_after"])
    lines += [
        "",
        f"Photos: {photos}.",
        f"Load average (1, 5, 15 min) before: {before}; after: {after}; "
        f"{report['cpu_count']} CPUs. c2pa-python {report['c2pa_python']} "
        f"(c2pa-rs {report['c2pa_rs']}), Python {report['python']}.",
        f"Command: `{report['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time C2PA signing and verification of ~12 MP JPEGs (target 0.3 s each)."
    )
    parser.add_argument(
        "--photos",
        type=Path,
        default=DEFAULT_PHOTOS,
        help="folder of JPEGs [default: bench/data/12mp, else one made in code]",
    )
    parser.add_argument("--limit", type=int, default=None, help="use at most this many photos")
    parser.add_argument("--runs", type=int, default=10, help="timed runs per photo (>= 10)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here (and FILE.json)")
    args = parser.parse_args(argv)
    if args.runs < 10:
        parser.error("--runs must be at least 10")
    with tempfile.TemporaryDirectory(prefix="takeback-bench-c2pa-") as tmp:
        work = Path(tmp)
        photos = sorted(args.photos.glob("*.jpg")) if args.photos.is_dir() else []
        if not photos:
            photos = [_made_photo(work / "made")]
        photos = photos[: args.limit] if args.limit else photos
        report = run(photos, args.runs, work)
    text = markdown(report)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        args.out.with_suffix(".json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
