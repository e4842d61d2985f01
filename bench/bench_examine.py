#!/usr/bin/env python
"""Benchmark ``takeback examine``: pixel F1, false alarms, verdicts and time.

Runs the library's :func:`takeback.examine.pipeline.examine` (the same code as
the command) on the held-out doctored-copy suite (``bench/suite.py``):

* **doctored** cases (donor, skin, inpaint fills; 25-55 % replaced, then
  reposting transforms): pixel F1 of the altered-pixel mask against the true
  replaced region, per fill; a case that does not align counts as F1 = 0;
* **repost** cases (reposting transforms only): false-alarm area, the share of
  the compared area marked altered, per transform present;
* **unrelated** pairs (a suspect against another photo of the corpus): how
  often the verdict is ``not_derived``;
* side by side, the best a blind map can do on the same doctored cases: the
  error-level and noise-residual maps thresholded at the true altered share of
  each case (an oracle threshold, so an upper bound for blind localisation);
* time per pair on one core for 12-megapixel originals (``bench/data/12mp``)
  with doctored copies made by the suite's code, and the PDF report time.

Usage::

    python bench/photos.py fetch
    python bench/suite.py build --split heldout
    python bench/bench_examine.py [--suite bench/data/suite] [--limit N] [--unrelated 100]

Writes ``bench/out/examine.json`` and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos  # noqa: E402
import suite  # noqa: E402

from takeback.examine.pipeline import examine  # noqa: E402
from takeback.imageio import load_rgb  # noqa: E402

REPOST_EDITS = ("rotate_deg", "crop", "flip", "border_px", "caption", "gamma")


def _f1(mask: np.ndarray, truth: np.ndarray) -> float:
    tp = int((mask & truth).sum())
    denom = int(mask.sum()) + int(truth.sum())
    return 1.0 if denom == 0 else 2 * tp / denom


def _oracle_f1(score: np.ndarray, truth: np.ndarray, region: np.ndarray) -> float:
    """F1 of ``score`` thresholded so that it marks as many pixels as the truth."""
    if not region.any() or not truth.any():
        return 0.0
    k = int(truth[region].sum())
    vals = score[region]
    thr = np.partition(vals, len(vals) - k)[len(vals) - k]
    return _f1((score >= thr) & region, truth & region)


def run_suite(suite_dir: Path, limit: int | None) -> dict[str, Any]:
    cases = [json.loads(line) for line in (suite_dir / "cases.jsonl").read_text().splitlines()]
    if limit:
        cases = cases[:limit]
    f1: dict[str, list[float]] = collections.defaultdict(list)
    blind_f1: dict[str, list[float]] = collections.defaultdict(list)
    aligned: dict[str, list[bool]] = collections.defaultdict(list)
    verdicts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    fa: list[tuple[float, dict[str, Any]]] = []
    times: list[float] = []
    per_case: list[dict[str, Any]] = []
    for i, c in enumerate(cases):
        truth = cv2.imread(str(suite_dir / c["mask"]), cv2.IMREAD_GRAYSCALE) > 127
        t = time.perf_counter()
        ex = examine(suite_dir / c["suspect"], original=photos.DEFAULT_DEST / c["original"])
        times.append(time.perf_counter() - t)
        kind = c["kind"]
        verdicts[kind][ex.verdict.value] += 1
        aligned[kind].append(ex.alignment is not None)
        mask = ex.mask if ex.mask is not None else np.zeros_like(truth)
        if kind == "repost":
            area = int(ex.compared.sum()) if ex.compared is not None else 0
            fa.append((float(mask.sum()) / max(1, area), c["params"]))
        else:
            f1[kind].append(_f1(mask, truth))
            per_case.append(
                {
                    "id": c["id"],
                    "kind": kind,
                    "f1": round(f1[kind][-1], 4),
                    "aligned": ex.alignment is not None,
                    "replaced_in_suspect": c["params"]["replaced_in_suspect"],
                }
            )
            region = ex.compared if ex.compared is not None else np.ones_like(truth)
            for name, m in ex.blind_maps.items():
                blind_f1[name].append(_oracle_f1(m, truth, region))
        if (i + 1) % 25 == 0:
            print(f"  {i + 1}/{len(cases)} cases", file=sys.stderr, flush=True)
    per_edit: dict[str, list[float]] = collections.defaultdict(list)
    for share, params in fa:
        per_edit["all"].append(share)
        for e in REPOST_EDITS:
            if e in params:
                per_edit[e].append(share)
    doctored = [v for k in ("donor", "skin", "inpaint") for v in f1[k]]
    by_share = {
        "aligned_only": _summary([r["f1"] for r in per_case if r["aligned"]]),
        "replaced_in_suspect_25_55": _summary(
            [r["f1"] for r in per_case if 0.25 <= r["replaced_in_suspect"] <= 0.55]
        ),
        "replaced_in_suspect_over_55": _summary(
            [r["f1"] for r in per_case if r["replaced_in_suspect"] > 0.55]
        ),
        "replaced_in_suspect_under_25": _summary(
            [r["f1"] for r in per_case if r["replaced_in_suspect"] < 0.25]
        ),
    }
    return {
        "cases": len(cases),
        "f1": {k: _summary(v) for k, v in f1.items()} | {"all": _summary(doctored)},
        "f1_breakdown": by_share,
        "per_case": per_case,
        "aligned": {k: sum(v) / len(v) for k, v in aligned.items()},
        "verdicts": {k: dict(v) for k, v in verdicts.items()},
        "false_alarm": {
            k: _summary(v) | {"over_0.5%": sum(x > 0.005 for x in v)} for k, v in per_edit.items()
        },
        "blind_oracle_f1": {k: _summary(v) for k, v in blind_f1.items()},
        "seconds_per_pair": _summary(times),
    }


def run_unrelated(suite_dir: Path, n: int) -> dict[str, Any]:
    cases = [json.loads(line) for line in (suite_dir / "cases.jsonl").read_text().splitlines()]
    names = sorted({c["original"] for c in cases})
    rng = np.random.default_rng(7)
    counts: collections.Counter[str] = collections.Counter()
    for k in range(n):
        c = cases[int(rng.integers(len(cases)))]
        other = names[
            (names.index(c["original"]) + 1 + int(rng.integers(len(names) - 1))) % len(names)
        ]
        ex = examine(
            suite_dir / c["suspect"], original=photos.DEFAULT_DEST / other, marks=False, blind=False
        )
        counts[ex.verdict.value] += 1
        del k
    return {
        "pairs": n,
        "verdicts": dict(counts),
        "not_derived_rate": counts["not_derived"] / max(1, n),
    }


def run_12mp(rounds: int) -> dict[str, Any]:
    from takeback.evidence import CaseInfo, write_package

    paths = photos.twelve_mp_paths()
    if not paths:
        return {"skipped": "no 12-megapixel photos: run `python bench/photos.py fetch`"}
    totals: list[float] = []
    stages: dict[str, list[float]] = collections.defaultdict(list)
    pdf: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            original = load_rgb(path)
            donor = load_rgb(paths[(i + 1) % len(paths)])
            rng = suite.rng_for(0, path.name, "12mp")
            case = suite.make_case(original, donor, "donor", rng)
            sp = Path(tmp) / f"suspect-{i}.jpg"
            sp.write_bytes(case.jpeg)
            for _ in range(rounds):
                t = time.perf_counter()
                ex = examine(sp, original=path)
                totals.append(time.perf_counter() - t)
                for k, v in ex.timings.items():
                    stages[k].append(v)
            t = time.perf_counter()
            write_package(
                Path(tmp) / f"report-{i}.pdf",
                ex,
                suspect_path=sp,
                original_path=path,
                case=CaseInfo(case_id=f"bench-{i}"),
            )
            pdf.append(time.perf_counter() - t)
    return {
        "pairs": len(paths),
        "rounds": rounds,
        "seconds_per_pair": _summary(totals),
        "stages_median": {k: round(statistics.median(v), 4) for k, v in stages.items()},
        "pdf_seconds": _summary(pdf),
    }


def _summary(v: list[float]) -> dict[str, float]:
    if not v:
        return {"n": 0}
    a = np.asarray(v, float)
    return {
        "n": len(v),
        "mean": round(float(a.mean()), 4),
        "median": round(float(np.median(a)), 4),
        "p90": round(float(np.percentile(a, 90)), 4),
        "min": round(float(a.min()), 4),
        "max": round(float(a.max()), 4),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--suite", type=Path, default=suite.DEFAULT_OUT)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--unrelated", type=int, default=100)
    p.add_argument("--rounds", type=int, default=3, help="timing rounds per 12-MP pair")
    p.add_argument("--skip-suite", action="store_true")
    p.add_argument("--skip-12mp", action="store_true")
    p.add_argument("--out", type=Path, default=None, help="JSON file (default under bench/out)")
    args = p.parse_args(argv)
    cv2.setNumThreads(1)
    out: dict[str, Any] = {
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "load_before": os.getloadavg(),
        },
        "command": "python bench/bench_examine.py " + " ".join(argv or sys.argv[1:]),
    }
    if not args.skip_suite:
        out["suite"] = run_suite(args.suite, args.limit)
        out["unrelated"] = run_unrelated(args.suite, args.unrelated)
    if not args.skip_12mp:
        out["12mp"] = run_12mp(args.rounds)
    out["machine"]["load_after"] = os.getloadavg()
    parts = ("" if not args.skip_suite else "-timing") + ("" if not args.skip_12mp else "-suite")
    dest = args.out or HERE / "out" / f"examine{parts}.json"
    dest.parent.mkdir(exist_ok=True)
    dest.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
