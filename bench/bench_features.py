#!/usr/bin/env python
"""Feature-extraction trials on the tune half: what a cheaper extraction costs in matches.

Each trial changes how derivative features are extracted, on the registered
side, the suspect side or both. For every tune photo (``bench/photos.py``,
split ``tune``) and every trial, the original is fingerprinted with the
trial's settings; two edits of every suite kind per photo
(``bench/suite.py``, seed 0, the calibration draws of
``bench_derivative.py --calibrate``) are made once, and each is extracted with
the trial's settings and verified against its own original only (no bank, no
retrieval: what the extraction alone allows). Originals are decoded at full
resolution, as in ``bench_derivative.py --calibrate`` (``bank add`` extracts
from the canonical PDQ decode: the counts are comparable from trial to trial,
not to registration's exactly). Reported per trial, one core:
extraction time per original and per suspect, features per original and per
suspect, doctored copies that reach the decision (6 inliers), reposts that do,
and the median inlier count of doctored copies.

Trials (each a comma-separated list of settings; ``base`` alone is the shipped
extraction)::

    register-cap=N   originals: OpenCV keeps its N strongest keypoints (by
                     response) before the grid selection, so fewer are described
    suspect-cap=N    suspects: at most N features (SUSPECT_FEATURES)
    suspect-size=N   suspects brought to N px on the longer side (SUSPECT_SIZE)
    no-double        both sides: SIFT without its doubled first octave (the
                     working image is halved; OpenCV's doubling brings it back)

Example::

    python bench/bench_features.py base register-cap=512 suspect-cap=1000 \\
        suspect-size=256 no-double --out bench/out/features.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos
import suite
from bench_derivative import calibration_case

from takeback.fingerprint import derivative as dv
from takeback.imageio import load_rgb
from takeback.threads import limit_blas_threads

_SIFT = dv._sift
_Sift = Callable[..., tuple[list[cv2.KeyPoint], np.ndarray]]


def _halved(sift: _Sift) -> _Sift:
    """SIFT on the image halved, keypoints scaled back: no doubled first octave."""

    def run(
        grey: np.ndarray, n: int, contrast: float = dv.CONTRAST
    ) -> tuple[list[cv2.KeyPoint], np.ndarray]:
        h, w = grey.shape
        small = cv2.resize(grey, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        kps, desc = sift(small, n, contrast)
        fx, fy = w / small.shape[1], h / small.shape[0]
        scaled = [
            cv2.KeyPoint(
                (k.pt[0] + 0.5) * fx - 0.5,
                (k.pt[1] + 0.5) * fy - 0.5,
                k.size * fx,
                k.angle,
                k.response,
                k.octave,
                k.class_id,
            )
            for k in kps
        ]
        return scaled, desc

    return run


def parse_trial(text: str) -> dict[str, int | bool]:
    """``"register-cap=512,no-double"`` -> settings; ``"base"`` -> none."""
    settings: dict[str, int | bool] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key == "base" and not value:
            continue
        if key == "no-double" and not value:
            settings[key] = True
        elif key in ("register-cap", "suspect-cap", "suspect-size") and value.isdigit():
            if int(value) < 1:
                raise ValueError(f"{key} must be at least 1")
            settings[key] = int(value)
        else:
            raise ValueError(f"unknown trial setting {part!r} (see --help)")
    return settings


@contextmanager
def extraction(settings: dict[str, int | bool], side: str) -> Iterator[None]:
    """The module's extraction changed for one ``side`` ("register" or "suspect")."""
    saved = (dv._sift, dv.SUSPECT_FEATURES, dv.SUSPECT_SIZE)
    sift: _Sift = _SIFT
    if settings.get("no-double"):
        sift = _halved(sift)
    cap = settings.get(f"{side}-cap")
    if side == "register" and cap:
        inner = sift
        sift = lambda grey, n, contrast=dv.CONTRAST: inner(grey, min(n, int(cap)), contrast)  # noqa: E731
    dv._sift = sift
    if side == "suspect":
        dv.SUSPECT_FEATURES = int(settings.get("suspect-cap", dv.SUSPECT_FEATURES))
        dv.SUSPECT_SIZE = int(settings.get("suspect-size", dv.SUSPECT_SIZE))
    try:
        yield
    finally:
        dv._sift, dv.SUSPECT_FEATURES, dv.SUSPECT_SIZE = saved


def make_cases(paths: list[Path], per_photo: int) -> tuple[list[np.ndarray], list[tuple]]:
    originals = [load_rgb(p) for p in paths]
    cases = []
    for i, p in enumerate(paths):
        for j in range(per_photo):
            for kind in suite.KINDS:
                case, _ = calibration_case(0, paths, originals, i, j, kind)
                cases.append((i, kind, load_rgb(case.jpeg, name=f"{p.name}:{kind}:{j}")))
    return originals, cases


def run_trial(
    settings: dict[str, int | bool], originals: Sequence[np.ndarray], cases: Sequence[tuple]
) -> dict[str, Any]:
    fps: list[dv.DerivativeFingerprint | None] = []
    with extraction(settings, "register"):
        t0 = time.perf_counter()
        for rgb in originals:
            try:
                fps.append(dv.derivative_from_pixels(rgb))
            except dv.TooLittleDetailError:
                fps.append(None)
        register_ms = (time.perf_counter() - t0) * 1000 / len(originals)
    inliers: list[tuple[str, int]] = []
    suspect_s, suspect_features = 0.0, []
    with extraction(settings, "suspect"):
        for i, kind, rgb in cases:
            t0 = time.perf_counter()
            feats = dv.suspect_features(rgb)
            suspect_s += time.perf_counter() - t0
            suspect_features.append(len(feats.sizes))
            fp = fps[i]
            inliers.append((kind, 0 if fp is None else dv.verify_derivative(feats, fp).inliers))
    doctored = [n for kind, n in inliers if kind != "repost"]
    reposts = [n for kind, n in inliers if kind == "repost"]
    decision = int(np.ceil((dv._NULL_A + 8 * dv.DECISION_SCORE) / dv._NULL_B))
    kept = [len(fp) for fp in fps if fp is not None]
    return {
        "register_ms": register_ms,
        "suspect_ms": suspect_s * 1000 / len(cases),
        "features_per_original_median": float(np.median(kept)),
        "originals_without_fingerprint": sum(fp is None for fp in fps),
        "suspect_features_mean": float(np.mean(suspect_features)),
        "suspect_features_p90": float(np.percentile(suspect_features, 90)),
        "decision_inliers": decision,
        "doctored_verifiable": sum(n >= decision for n in doctored),
        "doctored": len(doctored),
        "reposts_verifiable": sum(n >= decision for n in reposts),
        "reposts": len(reposts),
        "doctored_median_inliers": float(np.median(doctored)),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Feature-extraction trials on the tune half: doctored copies still "
        "verifiable against their own original, and extraction time, per trial.",
        epilog="Trials: base, register-cap=N, suspect-cap=N, suspect-size=N, no-double; "
        "combine settings with commas (e.g. register-cap=512,suspect-cap=1000).",
    )
    parser.add_argument("trials", nargs="+", help="trials to run, in order (see below)")
    parser.add_argument("--per-photo", type=int, default=2, help="edits per kind per photo")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    try:
        trials = {t: parse_trial(t) for t in args.trials}
    except ValueError as exc:
        parser.error(str(exc))
    if args.per_photo < 1:
        parser.error("--per-photo must be at least 1")
    paths = photos.photo_paths(split="tune")
    if not paths:
        print("no photos found: run 'python bench/photos.py fetch' first", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    limit_blas_threads()  # as the command does: one BLAS thread
    allowed = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {allowed[-1]})
    print(
        f"making {args.per_photo} edits per kind of {len(paths)} tune photos ...", file=sys.stderr
    )
    originals, cases = make_cases(paths, args.per_photo)
    results: dict[str, Any] = {"load_average_at_start": os.getloadavg(), "trials": {}}
    for name, settings in trials.items():
        r = run_trial(settings, originals, cases)
        results["trials"][name] = r
        print(
            f"{name}: register {r['register_ms']:.1f} ms, suspect {r['suspect_ms']:.1f} ms; "
            f"features {r['features_per_original_median']:.0f} per original (median), "
            f"{r['suspect_features_mean']:.0f} per suspect (mean); doctored copies verifiable "
            f"{r['doctored_verifiable']}/{r['doctored']}, reposts "
            f"{r['reposts_verifiable']}/{r['reposts']}; median inliers "
            f"{r['doctored_median_inliers']:.1f}",
            flush=True,
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
