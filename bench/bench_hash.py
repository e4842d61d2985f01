#!/usr/bin/env python
"""PDQ hashing benchmark: TakeBack's canonical pipeline against ``threatexchange``.

Measures, on real ~12-megapixel JPEGs (made by ``bench/photos.py fetch``):

1. single-core throughput and per-image latency of
   (a) ``takeback.fingerprint.pdq.fingerprint_file`` (read, SHA-256, MD5,
       canonical decode, PDQ: what ``bank add`` does),
   (a2) the same with ``variants=True`` (plus the 8 exact dihedral hashes:
       what ``match`` does for a suspect),
   (b) TakeBack's PDQ-only path (read, ``pdq_pixels``, one ``pdqhash.compute``),
   (c) ``threatexchange`` ``PdqSignal.hash_from_file`` (full decode, naive PDQ),
   (d) ``imagehash.phash`` (full decode), for scale,
   interleaved file by file in the same run so that machine load hits all alike;
2. ``fingerprint_file`` through a fork ``ProcessPoolExecutor`` of 1 and 2 workers;
3. the drift of TakeBack's canonical PDQ from full-resolution PDQ
   (``pdqhash.compute`` on the fully decoded, oriented RGB image) over every
   corpus photo, the 12 MP JPEGs and those JPEGs re-saved as PNG (the non-JPEG
   path), and against ``threatexchange`` itself; ``--variants`` adds the drift of
   alternative resize rules (the evidence for the choice in ``takeback.imageio``).

Run ``python bench/photos.py fetch`` first. Example::

    python bench/bench_hash.py --rounds 5 --variants --out bench/out/hash.md
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import multiprocessing
import os
import platform
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pdqhash
import PIL
from PIL import Image, features

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos

from takeback import imageio
from takeback.fingerprint.pdq import fingerprint_file, pdq_from_pixels
from takeback.fingerprint.types import PDQ_MATCH_THRESHOLD, PdqHash

#: Distance within which independent PDQ implementations are said to agree.
AGREEMENT_BITS = 10


# --------------------------------------------------------------------------- the hashers


def _tx_hash_from_file() -> Callable[[Path], str]:
    from threatexchange.signal_type.pdq.signal import PdqSignal

    return PdqSignal.hash_from_file


def takeback_fingerprint(path: Path) -> str:
    return str(fingerprint_file(path).pdq)


def takeback_fingerprint_variants(path: Path) -> str:
    return str(fingerprint_file(path, variants=True).pdq)


def takeback_pdq_only(path: Path) -> str:
    data = imageio.read_bytes(path)
    pixels = imageio.pdq_pixels(data, name=str(path)).pixels
    bits, _quality = pdqhash.compute(np.ascontiguousarray(pixels))
    return str(PdqHash.from_bits(bits))


def imagehash_phash(path: Path) -> str:
    import imagehash

    with Image.open(path) as img:
        return str(imagehash.phash(img))


def full_resolution_pdq(data: bytes) -> tuple[PdqHash, int]:
    """PDQ of the fully decoded image: orientation and RGB as TakeBack, no draft, no resize."""
    pixels = np.asarray(imageio.open_image(data))
    bits, quality = pdqhash.compute(np.ascontiguousarray(pixels))
    return PdqHash.from_bits(bits), int(quality)


def canonical_pdq(data: bytes) -> PdqHash:
    pixels = imageio.pdq_pixels(data).pixels
    bits, _ = pdqhash.compute(np.ascontiguousarray(pixels))
    return PdqHash.from_bits(bits)


def _variant(rule: str) -> Callable[[bytes], PdqHash]:
    """Alternative canonical pipelines, to compare resize rules (``--variants``)."""
    size = imageio.PDQ_WORKING_SIZE

    def run(data: bytes) -> PdqHash:
        img = imageio.open_image(data, draft_size=size)
        w, h = img.size
        if rule == "box-longer" and max(w, h) > size:  # fractional box resize, longer side = size
            s = size / max(w, h)
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
        elif (
            rule == "box-shorter" and min(w, h) > size
        ):  # fractional box resize, shorter side = size
            s = size / min(w, h)
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BOX)
        elif rule == "reduce" and min(w, h) // size >= 2:  # integer box reduction
            img = img.reduce(min(w, h) // size)
        bits, _ = pdqhash.compute(np.ascontiguousarray(np.asarray(img)))
        return PdqHash.from_bits(bits)

    return run


VARIANTS = {
    "draft, then box resize to longer side 512 (fractional factor)": "box-longer",
    "draft, then box resize to shorter side 512 (fractional factor)": "box-shorter",
    "draft only, no resize": "none",
    "draft, then integer box reduction keeping the shorter side >= 512": "reduce",
}


#: The pixel operation each of ``pdqhash.compute_dihedral``'s 8 hashes stands for
#: (``takeback.fingerprint.types.DIHEDRAL_VARIANTS`` order).
DIHEDRAL_OPS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "original": lambda a: a,
    "rotate90": lambda a: np.rot90(a, 1),
    "rotate180": lambda a: np.rot90(a, 2),
    "rotate270": lambda a: np.rot90(a, -1),
    "flip_vertical": lambda a: a[::-1],
    "flip_horizontal": lambda a: a[:, ::-1],
    "rotate90_flip_vertical": lambda a: np.rot90(a, 1)[::-1],
    "rotate90_flip_horizontal": lambda a: np.rot90(a, 1)[:, ::-1],
}


def _pdq_bits(pixels: np.ndarray) -> PdqHash:
    return PdqHash.from_bits(pdqhash.compute(np.ascontiguousarray(pixels))[0])


def dihedral(files: Sequence[Path]) -> dict[str, Any]:
    """How far each DCT-domain variant lands from the PDQ of the physically transformed image.

    ``vs_full``: TakeBack's exact variant (canonical pixels) against full-resolution
    PDQ of the transformed full image. ``vs_same_pixels``: a single
    ``compute_dihedral`` call against ``compute`` of the transformed canonical
    pixels (PDQ's own DCT-domain approximation, which TakeBack does not use).
    ``takeback_vs_same_pixels``: TakeBack's variant against ``compute`` of the
    transformed canonical pixels (0 everywhere would make every variant exact;
    the 4 transposed ones come from a transposed DCT, see ``pdq_from_pixels``).
    """
    vs_full: dict[str, list[int]] = {k: [] for k in DIHEDRAL_OPS}
    vs_same: dict[str, list[int]] = {k: [] for k in DIHEDRAL_OPS}
    ours_same: dict[str, list[int]] = {k: [] for k in DIHEDRAL_OPS}
    over_31: dict[str, list[str]] = {}
    for path in files:
        data = path.read_bytes()
        canonical = np.ascontiguousarray(imageio.pdq_pixels(data).pixels)
        approx, _ = pdqhash.compute_dihedral(canonical)
        exact, _ = pdq_from_pixels(canonical, dihedral=True)
        full = np.asarray(imageio.open_image(data))
        for (label, op), bits, variant in zip(DIHEDRAL_OPS.items(), approx, exact, strict=True):
            vs_full[label].append(variant.distance(_pdq_bits(op(full))))
            if vs_full[label][-1] > PDQ_MATCH_THRESHOLD:
                over_31.setdefault(path.name, []).append(label)
            same = _pdq_bits(op(canonical))
            vs_same[label].append(PdqHash.from_bits(bits).distance(same))
            ours_same[label].append(variant.distance(same))
    return {
        "photos": len(files),
        "vs_full": {
            k: _stats(v) | {"over_31": sum(d > PDQ_MATCH_THRESHOLD for d in v)}
            for k, v in vs_full.items()
        },
        "vs_same_pixels": {k: _stats(v) for k, v in vs_same.items()},
        "takeback_vs_same_pixels": {
            k: {"differ": sum(d > 0 for d in v), "max": max(v, default=0)}
            for k, v in ours_same.items()
        },
        "photos_over_31": over_31,
    }


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    def summary(self) -> dict[str, float]:
        w = np.array(self.wall) * 1000
        c = np.array(self.cpu) * 1000
        return {
            "images": len(w),
            "images_per_s": len(w) / (w.sum() / 1000),
            "images_per_cpu_s": len(c) / (c.sum() / 1000),
            "median_ms": float(np.median(w)),
            "p95_ms": float(np.percentile(w, 95)),
            "min_ms": float(w.min()),
            "median_cpu_ms": float(np.median(c)),
        }


def _timed(fn: Callable[[Path], Any], path: Path) -> tuple[Any, float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(path)
    w1, c1 = time.perf_counter(), time.process_time()
    return out, w1 - w0, c1 - c0


def single_core(files: Sequence[Path], rounds: int, phash: bool) -> dict[str, Any]:
    methods: dict[str, Callable[[Path], Any]] = {
        "(a) TakeBack fingerprint_file (SHA-256 + MD5 + PDQ; bank add)": takeback_fingerprint,
        "(a2) TakeBack fingerprint_file(variants=True) (+ 8 exact dihedral; match)": (
            takeback_fingerprint_variants
        ),
        "(b) TakeBack canonical PDQ only (1 hash)": takeback_pdq_only,
        "(c) threatexchange PdqSignal.hash_from_file": _tx_hash_from_file(),
    }
    if phash:
        methods["(d) imagehash.phash (full decode)"] = imagehash_phash
    timings = {name: Timing() for name in methods}
    stages = {
        "read + SHA-256 + MD5": Timing(),
        "pdq_pixels (decode)": Timing(),
        "pdqhash.compute": Timing(),
    }
    agree: list[int] = []
    for path in files:  # warm-up: page cache, imports, first-call costs
        for fn in methods.values():
            fn(path)
    for _ in range(rounds):
        for path in files:
            results = {}
            for name, fn in methods.items():
                results[name], wall, cpu = _timed(fn, path)
                timings[name].add(wall, cpu)
            tx = results["(c) threatexchange PdqSignal.hash_from_file"]
            if tx:
                tb = PdqHash.from_hex(results[next(iter(methods))])
                agree.append(tb.distance(PdqHash.from_hex(tx)))
            _time_stages(path, stages)
    summary = {name: t.summary() for name, t in timings.items()}
    return {
        "methods": summary,
        "stages": {name: t.summary() for name, t in stages.items()},
        "takeback_vs_threatexchange": {
            "fingerprint_file": summary[next(iter(methods))]["images_per_s"]
            / summary["(c) threatexchange PdqSignal.hash_from_file"]["images_per_s"],
            "pdq_only": summary["(b) TakeBack canonical PDQ only (1 hash)"]["images_per_s"]
            / summary["(c) threatexchange PdqSignal.hash_from_file"]["images_per_s"],
        },
        "distance_to_threatexchange_bits": agree,
    }


def _time_stages(path: Path, stages: dict[str, Timing]) -> None:
    """Time the three stages of ``fingerprint_file`` one after the other."""
    c0, w0 = time.process_time(), time.perf_counter()
    data = imageio.read_bytes(path)
    hashlib.sha256(data).hexdigest()
    hashlib.md5(data, usedforsecurity=False).hexdigest()
    c1, w1 = time.process_time(), time.perf_counter()
    pixels = np.ascontiguousarray(imageio.pdq_pixels(data).pixels)
    c2, w2 = time.process_time(), time.perf_counter()
    pdqhash.compute(pixels)
    c3, w3 = time.process_time(), time.perf_counter()
    stages["read + SHA-256 + MD5"].add(w1 - w0, c1 - c0)
    stages["pdq_pixels (decode)"].add(w2 - w1, c2 - c1)
    stages["pdqhash.compute"].add(w3 - w2, c3 - c2)


def _pool_task(path: str) -> tuple[str, float]:
    c0 = time.process_time()
    pdq = str(fingerprint_file(path).pdq)
    return pdq, time.process_time() - c0


def pool_scaling(files: Sequence[Path], rounds: int, workers: Sequence[int]) -> dict[str, Any]:
    tasks = [str(p) for _ in range(rounds) for p in files]
    ctx = multiprocessing.get_context("fork")
    out: dict[str, Any] = {}
    for n in workers:
        with ProcessPoolExecutor(max_workers=n, mp_context=ctx) as pool:
            list(pool.map(_pool_task, [str(files[0])] * (2 * n)))  # start the workers
            t0 = time.perf_counter()
            results = list(pool.map(_pool_task, tasks, chunksize=1))
            wall = time.perf_counter() - t0
        cpu = sum(c for _, c in results)
        out[str(n)] = {
            "images": len(results),
            "seconds": wall,
            "images_per_s": len(results) / wall,
            "worker_cpu_seconds": cpu,
            "images_per_worker_cpu_s": len(results) / cpu,
        }
    base = out[str(workers[0])]["images_per_s"]
    for n in workers:
        out[str(n)]["speed_up"] = out[str(n)]["images_per_s"] / base
    return out


# --------------------------------------------------------------------------- drift


def _stats(values: Sequence[int]) -> dict[str, float]:
    v = np.array(values)
    return {
        "n": len(v),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "max": int(v.max()),
        "over_10": int((v > AGREEMENT_BITS).sum()),
    }


def drift(photo_files: Sequence[Path], twelve: Sequence[Path], variants: bool) -> dict[str, Any]:
    tx_hash = _tx_hash_from_file()
    items: list[tuple[str, str, bytes, Path | None]] = []
    items += [("corpus", p.name, p.read_bytes(), p) for p in photo_files]
    items += [("12 MP JPEG", p.name, p.read_bytes(), p) for p in twelve]
    for p in twelve:  # the non-JPEG path: same pixels, no draft decode
        buf = io.BytesIO()
        with Image.open(p) as img:
            img.save(buf, "PNG", compress_level=1)
        items.append(("12 MP as PNG", p.name.replace(".jpg", ".png"), buf.getvalue(), None))

    rules: dict[str, Callable[[bytes], PdqHash]] = {
        "canonical (takeback.imageio.pdq_pixels)": canonical_pdq
    }
    if variants:
        rules.update({label: _variant(rule) for label, rule in VARIANTS.items()})
    per_rule: dict[str, dict[str, list[int]]] = {r: {} for r in rules}
    worst: dict[str, list[tuple[int, str]]] = {r: [] for r in rules}
    vs_tx: list[int] = []
    tx_missing: list[str] = []
    low_quality: list[str] = []
    for group, name, data, path in items:
        ref, quality = full_resolution_pdq(data)
        if quality < 50:
            low_quality.append(name)
        for label, fn in rules.items():
            d = fn(data).distance(ref)
            per_rule[label].setdefault(group, []).append(d)
            worst[label].append((d, name))
        if path is not None:
            try:
                tx = tx_hash(path)
            except (OSError, ValueError, TypeError) as exc:  # the peer's own decode errors
                tx_missing.append(f"{name} ({type(exc).__name__})")
                continue
            if not tx:
                tx_missing.append(f"{name} (quality < 50)")
                continue
            vs_tx.append(canonical_pdq(data).distance(PdqHash.from_hex(tx)))
    out: dict[str, Any] = {"rules": {}, "low_quality_photos": low_quality}
    for label in rules:
        groups = per_rule[label]
        every = [d for g in groups.values() for d in g]
        out["rules"][label] = {
            "all": _stats(every),
            **{g: _stats(v) for g, v in groups.items()},
            "worst": [f"{n} {d}" for d, n in sorted(worst[label], reverse=True)[:5]],
        }
    out["canonical_vs_threatexchange"] = {
        **_stats(vs_tx),
        "no_hash_from_threatexchange": tx_missing,
    }
    return out


# --------------------------------------------------------------------------- report


def environment() -> dict[str, Any]:
    import threatexchange

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "load_average_at_start": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "python": platform.python_version(),
        "pillow": PIL.__version__,
        "libjpeg_turbo": features.version("libjpeg_turbo"),
        "pdqhash": _dist_version("pdqhash"),
        "threatexchange": getattr(threatexchange, "__version__", None)
        or _dist_version("threatexchange"),
        "numpy": np.__version__,
        "pdq_working_size": imageio.PDQ_WORKING_SIZE,
    }


def _dist_version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "?"


def _row(*cells: object) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


def markdown(result: dict[str, Any], command: str) -> str:
    env = result["environment"]
    load = ", ".join(f"{x:.2f}" for x in env["load_average_at_start"] or ())
    lines = [
        f"Command: `{command}`",
        "",
        f"Machine: {env['cpu']}, {env['cores']} cores, load average at start {load}; "
        f"Python {env['python']}, Pillow {env['pillow']} (libjpeg-turbo {env['libjpeg_turbo']}), "
        f"pdqhash {env['pdqhash']}, threatexchange {env['threatexchange']}, "
        f"PDQ_WORKING_SIZE {env['pdq_working_size']}.",
    ]
    if "single_core" in result:
        sc = result["single_core"]
        lines += [
            "",
            f"### Single core, {len(result['twelve_mp_files'])} real ~12 MP JPEGs x "
            f"{result['rounds']} rounds (process pinned to one CPU)",
            "",
            _row("method", "images/s", "median ms", "p95 ms", "min ms", "median CPU ms"),
            _row("---", "---:", "---:", "---:", "---:", "---:"),
        ]
        for name, s in sc["methods"].items():
            lines.append(
                _row(name, f"{s['images_per_s']:.1f}", f"{s['median_ms']:.1f}",
                     f"{s['p95_ms']:.1f}", f"{s['min_ms']:.1f}", f"{s['median_cpu_ms']:.1f}")
            )  # fmt: skip
        ratio = sc["takeback_vs_threatexchange"]
        d = sc["distance_to_threatexchange_bits"]
        spread = f"{min(d)}-{max(d)}" if d else "-"
        lines += [
            "",
            "Throughput ratio TakeBack / threatexchange: fingerprint_file "
            f"**{ratio['fingerprint_file']:.1f}x**, PDQ only **{ratio['pdq_only']:.1f}x**. "
            f"Hamming distance TakeBack vs threatexchange on these files: {spread} bits.",
            "",
            "Where fingerprint_file's time goes (same files, timed apart):",
            "",
            _row("stage", "median ms", "median CPU ms"),
            _row("---", "---:", "---:"),
        ]
        for name, s in sc["stages"].items():
            lines.append(_row(name, f"{s['median_ms']:.1f}", f"{s['median_cpu_ms']:.1f}"))
    if "pool" in result:
        lines += [
            "",
            "### fingerprint_file through a fork ProcessPoolExecutor",
            "",
            _row("workers", "images", "seconds", "images/s", "speed-up", "images per worker CPU-s"),
            _row("---:", "---:", "---:", "---:", "---:", "---:"),
        ]
        for n, s in result["pool"].items():
            lines.append(
                _row(n, s["images"], f"{s['seconds']:.2f}", f"{s['images_per_s']:.1f}",
                     f"{s['speed_up']:.2f}x", f"{s['images_per_worker_cpu_s']:.1f}")
            )  # fmt: skip
    if "drift" in result:
        lines += _drift_markdown(result["drift"])
    if "dihedral" in result:
        lines += _dihedral_markdown(result["dihedral"])
    return "\n".join(lines) + "\n"


def _dihedral_markdown(dh: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"### Dihedral variants vs PDQ of the physically turned/flipped image ({dh['photos']} "
        "photos, bits)",
        "",
        "TakeBack exact variant (canonical pixels) vs full-resolution PDQ of the "
        "transformed full image; in brackets, `compute_dihedral` vs `compute` on the same "
        "transformed canonical pixels (PDQ's own approximation).",
        "",
        _row("variant", "median", "p95", "max", "> 10 bits", "> 31 bits"),
        _row("---", "---:", "---:", "---:", "---:", "---:"),
    ]
    for label, s in dh["vs_full"].items():
        same = dh["vs_same_pixels"][label]
        lines.append(
            _row(label, f"{s['median']:.0f} ({same['median']:.0f})",
                 f"{s['p95']:.1f} ({same['p95']:.1f})", f"{s['max']} ({same['max']})",
                 f"{s['over_10']} ({same['over_10']})", s["over_31"])
        )  # fmt: skip
    ours = dh.get("takeback_vs_same_pixels")
    if ours:
        differ = sum(v["differ"] for v in ours.values())
        most = max(v["max"] for v in ours.values())
        lines += [
            "",
            f"TakeBack's variants against `compute` of the same transformed canonical pixels: "
            f"{differ} of {dh['photos'] * len(ours)} differ (at most {most} bits).",
        ]
    if dh["photos_over_31"]:
        worst = "; ".join(f"{n} ({', '.join(v)})" for n, v in dh["photos_over_31"].items())
        lines += ["", f"Variants more than 31 bits away (a turned copy would not match): {worst}."]
    return lines


def _drift_markdown(dr: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "### Drift from full-resolution PDQ, in bits",
        "",
        "Reference: full decode, EXIF orientation, RGB, `pdqhash.compute` (what threatexchange "
        "does, plus orientation and alpha flattening).",
        "",
        _row("pipeline", "photos", "median", "p95", "max", "> 10 bits", "largest"),
        _row("---", "---:", "---:", "---:", "---:", "---:", "---"),
    ]
    for label, r in dr["rules"].items():
        a = r["all"]
        lines.append(
            _row(label, a["n"], f"{a['median']:.0f}", f"{a['p95']:.1f}", a["max"], a["over_10"],
                 ", ".join(r["worst"][:3]))
        )  # fmt: skip
    canon = next(iter(dr["rules"].values()))
    lines += [
        "",
        "Canonical pipeline by group:",
        "",
        _row("group", "photos", "median", "p95", "max", "> 10 bits"),
        _row("---", "---:", "---:", "---:", "---:", "---:"),
    ]
    for g, s in canon.items():
        if g not in ("all", "worst"):
            lines.append(
                _row(g, s["n"], f"{s['median']:.0f}", f"{s['p95']:.1f}", s["max"], s["over_10"])
            )
    t = dr["canonical_vs_threatexchange"]
    missing = ", ".join(t["no_hash_from_threatexchange"]) or "none"
    lines += [
        "",
        "Canonical pipeline vs `threatexchange` `hash_from_file` on the same files "
        f"({t['n']} with a hash): median {t['median']:.0f}, p95 {t['p95']:.1f}, max {t['max']}, "
        f"> 10 bits: {t['over_10']}. No hash from threatexchange: {missing}.",
    ]
    if dr["low_quality_photos"]:
        low = ", ".join(dr["low_quality_photos"])
        lines.append(f"PDQ quality < 50 at full resolution: {low}.")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark TakeBack's PDQ hashing against threatexchange on real photos "
        "(run 'python bench/photos.py fetch' first).",
    )
    parser.add_argument("--photos", type=Path, default=photos.DEFAULT_DEST, help="corpus folder")
    parser.add_argument(
        "--twelve-mp",
        type=Path,
        default=photos.DEFAULT_DEST_12MP,
        help="folder of the ~12 MP JPEGs",
    )
    parser.add_argument(
        "--rounds", type=int, default=5, help="passes over the 12 MP files (default 5)"
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[1, 2],
        help="process-pool sizes to try (default 1 2)",
    )
    parser.add_argument("--skip-speed", action="store_true", help="only measure drift")
    parser.add_argument("--skip-drift", action="store_true", help="only measure speed")
    parser.add_argument(
        "--variants", action="store_true", help="also measure the drift of alternative resize rules"
    )
    parser.add_argument("--no-phash", action="store_true", help="leave imagehash.phash out")
    parser.add_argument(
        "--working-size",
        type=int,
        help="override takeback.imageio.PDQ_WORKING_SIZE for this run, to compare sizes",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here (and FILE.json)")
    args = parser.parse_args(argv)

    if args.working_size:
        imageio.PDQ_WORKING_SIZE = args.working_size  # read at call time
    twelve = photos.twelve_mp_paths(args.twelve_mp)
    corpus = photos.photo_paths(args.photos)
    if not twelve or not corpus:
        print("no photos found: run 'python bench/photos.py fetch' first", file=sys.stderr)
        return 2
    result: dict[str, Any] = {
        "environment": environment(),
        "twelve_mp_files": [p.name for p in twelve],
        "corpus_photos": len(corpus),
        "rounds": args.rounds,
    }
    if not args.skip_speed:
        allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
        if allowed:
            os.sched_setaffinity(0, {allowed[-1]})
        print(f"single core: {len(twelve)} files x {args.rounds} rounds ...", file=sys.stderr)
        result["single_core"] = single_core(twelve, args.rounds, not args.no_phash)
        if allowed:
            os.sched_setaffinity(0, set(allowed))
        print(f"process pool: {args.workers} workers ...", file=sys.stderr)
        result["pool"] = pool_scaling(twelve, args.rounds * 2, args.workers)
    if not args.skip_drift:
        print(
            f"drift: {len(corpus)} photos + {len(twelve)} 12 MP files (+ PNG) ...", file=sys.stderr
        )
        result["drift"] = drift(corpus, twelve, args.variants)
        print("dihedral variants ...", file=sys.stderr)
        result["dihedral"] = dihedral([*corpus, *twelve])

    publish("bench_hash.py", argv, result, markdown, args.out)
    return 0


def publish(
    script: str,
    argv: Sequence[str] | None,
    result: dict[str, Any],
    to_markdown: Callable[[dict[str, Any], str], str],
    out: Path | None,
) -> None:
    """Print the Markdown report (headed by the command that made it); with
    ``out``, also write it there and the raw ``result`` beside it as JSON."""
    command = f"python bench/{script} " + " ".join(
        a if not Path(a).is_absolute() else Path(a).name for a in (argv or sys.argv[1:])
    )
    report = to_markdown(result, command.strip())
    print(report)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(report, encoding="utf-8")
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str) + "\n")


if __name__ == "__main__":
    sys.exit(main())
