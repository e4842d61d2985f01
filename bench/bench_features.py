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
the median inlier count of doctored copies and how many reach 3, 4, 5 or 6
inliers (after the caps: how far a lower decision could take recall), the
doctored copies the caps on shared content hold under the decision
(``doctored_held_by_caps``: ``"any"``, those that match with every rule
lifted, and per rule those that match with that rule alone lifted), and,
on the null side, how many of the pairs of each suspect with 10 unrelated
tune originals (not its scene, not its donor's) hold a group of 3, 4, 5 or
6 inliers or more in either orientation, counted before the caps on strips,
patches, badges and edges (the calibration counts them after: this tally
is the harsher one).

Trials (each a comma-separated list of settings; ``base`` alone is the shipped
extraction)::

    register-cap=N   originals: OpenCV keeps its N strongest keypoints (by
                     response) before the grid selection, so only they are
                     described (REGISTER_KEYPOINTS)
    suspect-cap=N    suspects: at most N features (SUSPECT_FEATURES)
    suspect-size=N   suspects brought to N px on the longer side (SUSPECT_SIZE)
    edge=N           both sides: SIFT's edge threshold (EDGE_THRESHOLD)
    no-double        both sides: SIFT without its doubled first octave (the
                     working image is halved; OpenCV's doubling brings it back)
    keep=N           originals keep up to N features, past the 16 KB a
                     fingerprint may have: what more features would give,
                     not a fingerprint that could ship (raise register-cap
                     and suspect-cap with it)
    working-size=N   both sides brought to N px on the longer side
                     (WORKING_SIZE and SUSPECT_SIZE; the tolerances stay in
                     working pixels)

Example::

    python bench/bench_features.py base edge=20 register-cap=512 \\
        --out bench/out/features.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from itertools import count
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos
import suite
from bench_derivative import _stem, calibration_case

from takeback.fingerprint import derivative as dv
from takeback.imageio import load_rgb
from takeback.threads import limit_blas_threads

_SIFT = dv._sift
_Sift = Callable[..., tuple[list[cv2.KeyPoint], np.ndarray]]


def _halved(sift: _Sift) -> _Sift:
    """SIFT on the image halved, keypoints scaled back: no doubled first octave."""

    def run(
        grey: np.ndarray, n: int, contrast: float = dv.CONTRAST, mask: np.ndarray | None = None
    ) -> tuple[list[cv2.KeyPoint], np.ndarray]:
        h, w = grey.shape
        small = cv2.resize(grey, ((w + 1) // 2, (h + 1) // 2), interpolation=cv2.INTER_AREA)
        if mask is not None:
            mask = cv2.resize(mask, small.shape[::-1], interpolation=cv2.INTER_NEAREST)
        kps, desc = sift(small, n, contrast, mask)
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


_FLAGS = ("no-double",)
_NUMBERS = ("register-cap", "suspect-cap", "suspect-size", "edge", "keep", "working-size")
#: Working sizes a trial may ask for (px, longer side): larger ones would
#: upscale every photo, and SIFT's doubled first octave with it.
_SIZE_RANGE = (64, 2048)
_SIZES = ("suspect-size", "working-size")


def parse_trial(text: str) -> dict[str, int | bool]:
    """``"register-cap=512,no-double"`` -> settings; ``"base"`` -> none."""
    settings: dict[str, int | bool] = {}
    for part in filter(None, text.split(",")):
        key, _, value = part.partition("=")
        if key == "base" and not value:
            continue
        if key in _FLAGS and not value:
            settings[key] = True
        elif key in _NUMBERS and value.isdigit():
            if int(value) < 1:
                raise ValueError(f"{key} must be at least 1")
            low, high = _SIZE_RANGE
            if key in _SIZES and not low <= int(value) <= high:
                raise ValueError(f"{key} must be {low}-{high} px, not {value}")
            settings[key] = int(value)
        else:
            raise ValueError(f"unknown trial setting {part!r} (see --help)")
    return settings


@contextmanager
def patched(values: dict[str, Any]) -> Iterator[None]:
    """Module settings of :mod:`takeback.fingerprint.derivative` set to ``values``,
    restored after (they are read when called, so the code runs with them)."""
    saved = {name: getattr(dv, name) for name in values}
    try:
        for name, value in values.items():
            setattr(dv, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(dv, name, value)


def extraction(settings: dict[str, int | bool], side: str) -> AbstractContextManager[None]:
    """The module's extraction changed for one ``side`` ("register" or "suspect")."""
    values: dict[str, Any] = {
        "EDGE_THRESHOLD": float(settings.get("edge", dv.EDGE_THRESHOLD)),
        # registration's working size, and working_scale's
        "WORKING_SIZE": int(settings.get("working-size", dv.WORKING_SIZE)),
    }
    if settings.get("no-double"):
        values["_sift"] = _halved(_SIFT)
    if side == "register":
        values["REGISTER_KEYPOINTS"] = int(settings.get("register-cap", dv.REGISTER_KEYPOINTS))
        if "keep" in settings:
            values |= {"MAX_FEATURES": int(settings["keep"]), "MAX_BYTES": 1 << 30}
    else:
        values["SUSPECT_FEATURES"] = int(settings.get("suspect-cap", dv.SUSPECT_FEATURES))
        values["SUSPECT_SIZE"] = int(
            settings.get("suspect-size", settings.get("working-size", dv.SUSPECT_SIZE))
        )
    return patched(values)


def decision_inliers() -> int:
    """Inliers the default decision needs (6): the fewest whose score reaches
    :data:`~takeback.fingerprint.derivative.DECISION_SCORE`."""
    return next(n for n in count(1) if dv.score_of_inliers(n) >= dv.DECISION_SCORE)


#: Unrelated originals each suspect is also verified against (the null side).
UNRELATED = 10


def make_cases(paths: list[Path], per_photo: int) -> tuple[list[np.ndarray], list[tuple]]:
    originals = [load_rgb(p) for p in paths]
    rng = np.random.default_rng(5)
    cases = []
    for i, p in enumerate(paths):
        for j in range(per_photo):
            for kind in suite.KINDS:
                case, donor = calibration_case(0, paths, originals, i, j, kind)
                rgb = load_rgb(case.jpeg, name=f"{p.name}:{kind}:{j}")
                # unrelated originals to verify it against: not its scene, not its donor's
                scenes = {_stem(p.name), _stem(paths[donor].name)}
                others = [o for o in rng.permutation(len(paths))
                          if _stem(paths[o].name) not in scenes][:UNRELATED]  # fmt: skip
                cases.append((i, kind, rgb, others))
    return originals, cases


#: The rules that cap a group of inliers as content unrelated images share,
#: each with the value that lifts it alone.
_CAPS = {"MIN_SPREAD": 0.0, "MIN_EXTENT": 0.0, "MIN_BOX_SHARE": 0.0, "EDGE_SHARE": -1.0}


def _held_by(feats: dv.SuspectFeatures, fp: dv.DerivativeFingerprint) -> list[str]:
    """Whether the caps hold an unmatched copy under the decision: ``"any"`` if
    it matches with every rule lifted, and each rule whose lifting alone lets
    it match (either orientation: the verification keeps the one with more
    inliers after the caps)."""
    found = []
    for rules in [tuple(_CAPS), *((rule,) for rule in _CAPS)]:
        with patched({rule: _CAPS[rule] for rule in rules}):
            if dv.verify_derivative(feats, fp).matched:
                found.append("any" if len(rules) > 1 else rules[0])
        if not found:  # not held by all of them together: by none alone either
            break
    return found


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
    held = Counter[str]()
    suspect_s, suspect_features = 0.0, []
    unrelated: list[int] = []
    with extraction(settings, "suspect"):
        for i, kind, rgb, others in cases:
            t0 = time.perf_counter()
            feats = dv.suspect_features(rgb)
            suspect_s += time.perf_counter() - t0
            suspect_features.append(len(feats.sizes))
            fp = fps[i]
            match = None if fp is None else dv.verify_derivative(feats, fp)
            inliers.append((kind, 0 if match is None else match.inliers))
            if match is not None and kind != "repost" and not match.matched:
                held.update(_held_by(feats, fp))
            for o in others:
                other = fps[o]
                if other is not None:  # the larger group of the two orientations, uncapped
                    unrelated.append(max(
                        dv.verify_derivative(feats, other, orientations=(m,)).group
                        for m in (False, True)
                    ))  # fmt: skip
    doctored = [n for kind, n in inliers if kind != "repost"]
    reposts = [n for kind, n in inliers if kind == "repost"]
    decision = decision_inliers()
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
        "doctored_at_least": {n: sum(d >= n for d in doctored) for n in range(3, 7)},
        "doctored_held_by_caps": dict(held),
        "unrelated_pairs": len(unrelated),
        "unrelated_at_least": {n: sum(u >= n for u in unrelated) for n in range(3, 7)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Feature-extraction trials on the tune half: doctored copies still "
        "verifiable against their own original, and extraction time, per trial.",
        epilog="Trials: base, register-cap=N, suspect-cap=N, suspect-size=N, edge=N, "
        "no-double, keep=N, working-size=N; combine settings with commas "
        "(e.g. edge=20,register-cap=512,suspect-cap=1000).",
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
            f"{r['doctored_verifiable']}/{r['doctored']} (>= 3/4/5/6 inliers "
            f"{'/'.join(str(v) for v in r['doctored_at_least'].values())}), reposts "
            f"{r['reposts_verifiable']}/{r['reposts']}; median inliers "
            f"{r['doctored_median_inliers']:.1f}; unrelated pairs with >= 3/4/5/6 inliers "
            f"{'/'.join(str(v) for v in r['unrelated_at_least'].values())} "
            f"of {r['unrelated_pairs']}",
            flush=True,
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
