#!/usr/bin/env python
"""How far the derivative fingerprint could go: recall's ceiling from the suite's true transforms.

The held-out run (``bench_derivative.py``) counts a doctored copy found when
its original's fingerprint verifies it, with 6 inliers at the default
decision. This script asks, for the same doctored copies, how many inliers a
perfect matcher could have found, knowing the true transform the suite
recorded (``suite.Case.matrix``). For every copy and its own original, with
the original's registered features mapped into the suspect by that transform
(working-size pixels, in the copy's orientation), it counts registered
features that are:

``present``
    inside the suspect's frame and outside its replaced region (what is left
    of the original in the copy, feature by feature);
``repeated``
    present, and a suspect keypoint lies where verification would count it:
    within its position tolerance (``REPROJ_THRESHOLD`` working pixels times
    the transform's scale, taken as at least 0.3) and its scale tolerance
    (``SCALE_TOLERANCE``), in the largest one-to-one pairing. No descriptor
    is compared: about what any pairing of these features could find (a
    feature must be present to count here, not in ``matched``);
``matched``
    the pairs of Lowe's ratio test (as verification makes them) that agree
    with the true transform in position, scale and orientation, each place
    once (``one_to_one``), or the consensus's own group in the copy's
    orientation when that is larger (its fitted transform can gather a few
    more): the inliers of a perfect consensus, before the caps on shared
    content (strips, patches, edges, badges);
``verified``
    the inliers verification finds itself, without the true transform
    (after the caps).

A copy reaches a count when at least 6 (the decision) of its features are in
that class; 3 is also reported. ``repeated`` and ``matched`` are also
counted with every keypoint on both sides (every SIFT keypoint of the
original described, past the 16 KB a fingerprint may have, and no cap on
the suspect's), and at each ``--tolerance`` factor (2 doubles all three
tolerances: a looser ceiling). ``--working-size`` changes the working size
of both sides, as ``bench_features.py``'s ``working-size=N`` does.

The copies are the held-out run's (``bench_derivative.py`` with the same
``--seed`` and ``--per-photo``: 459 doctored copies of the 51 registered
held-out photos with the defaults), or with ``--swap-halves`` the tune
half's (the same construction on the tune photos). ``--misses`` takes a
held-out run's JSON output and reports its missed copies class by class.

Example::

    python bench/bench_ceiling.py --misses bench/out/derivative-heldout-round58.json \\
        --out bench/out/ceiling-heldout.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_derivative as bd
import suite
from bench_features import decision_inliers, extraction, patched

from takeback.examine.align import scale_matrix
from takeback.fingerprint import derivative as dv
from takeback.fingerprint._consensus import agreeing, one_to_one
from takeback.imageio import load_rgb
from takeback.threads import limit_blas_threads

#: Inliers the default decision needs (6), and the fewest the score's null
#: model describes (3).
DECISION = decision_inliers()
FEWEST = dv._NULL_N0
#: What each copy's registered features are counted as (module documentation).
CLASSES = ("present", "repeated", "matched")
#: Registered features per block when comparing positions (bounds memory).
_BLOCK = 512


@contextmanager
def every_keypoint(size: int) -> Iterator[None]:
    """Every SIFT keypoint described on both sides, at working size ``size``."""
    settings: dict[str, int | bool] = {"working-size": size}
    lift = {"MAX_FEATURES": 1 << 20, "MAX_BYTES": 1 << 40, "REGISTER_KEYPOINTS": 1 << 20}
    with (
        extraction(settings, "register"),
        extraction(settings, "suspect"),
        patched(lift | {"SUSPECT_FEATURES": 1 << 20}),
    ):
        yield


@contextmanager
def shipped(size: int) -> Iterator[None]:
    """The shipped extraction, at working size ``size`` on both sides."""
    settings: dict[str, int | bool] = {"working-size": size}
    with extraction(settings, "register"), extraction(settings, "suspect"):
        yield


def working_transform(case: suite.Case, fp_scale: float, feats: dv.SuspectFeatures) -> np.ndarray:
    """The true transform, original working pixels -> suspect working pixels,
    in the copy's orientation (mirrored copies: the mirrored suspect frame)."""

    m = scale_matrix(1 / feats.scale, 1 / feats.scale) @ case.matrix
    m = m @ scale_matrix(fp_scale, fp_scale)  # working -> full size of the original
    if case.mirrored:
        m = np.array([[-1.0, 0, feats.frame[0] - 1], [0, 1, 0], [0, 0, 1]]) @ m
    return m


def _present(case: suite.Case, fp: dv.DerivativeFingerprint) -> np.ndarray:
    """Registered features inside the suspect and outside its replaced region."""
    xy = np.c_[fp.points, np.ones(len(fp))] @ case.matrix.T
    xy = xy[:, :2] / xy[:, 2:]
    h, w = case.mask.shape
    inside = (xy[:, 0] > -0.5) & (xy[:, 1] > -0.5) & (xy[:, 0] < w - 0.5) & (xy[:, 1] < h - 0.5)
    col = np.clip(np.rint(xy[:, 0]).astype(int), 0, w - 1)
    row = np.clip(np.rint(xy[:, 1]).astype(int), 0, h - 1)
    return inside & ~case.mask[row, col]


def _repeated(
    rp: np.ndarray, rs: np.ndarray, sp: np.ndarray, ss: np.ndarray, tol: float, stol: float
) -> int:
    """Registered features (projected positions ``rp``, sizes ``rs`` at the
    suspect's scale) with a suspect keypoint within ``tol`` pixels and ``stol``
    in log2 size: the largest one-to-one pairing of them."""
    near: list[list[int]] = []
    for a in range(0, len(rp), _BLOCK):
        block = rp[a : a + _BLOCK]
        d = np.hypot(block[:, None, 0] - sp[None, :, 0], block[:, None, 1] - sp[None, :, 1])
        ok = (d < tol) & (np.abs(np.log2(ss[None, :] / rs[a : a + _BLOCK, None])) < stol)
        near += [np.flatnonzero(row).tolist() for row in ok]
    return _largest_pairing(near)


def _largest_pairing(near: Sequence[Sequence[int]]) -> int:
    """Size of a maximum matching: ``near[r]`` lists the suspect keypoints
    registered feature ``r`` may pair with (augmenting paths, Kuhn's method)."""
    owner: dict[int, int] = {}  # suspect keypoint -> registered feature
    partner: dict[int, int] = {}  # registered feature -> suspect keypoint
    for root, options in enumerate(near):
        if not options:
            continue
        seen: set[int] = set()
        came_from: dict[int, int] = {}  # suspect keypoint -> the feature that reached it
        stack = [(root, iter(options))]
        free = None
        while stack and free is None:
            r, todo = stack[-1]
            for v in todo:
                if v in seen:
                    continue
                seen.add(v)
                came_from[v] = r
                if v not in owner:
                    free = v
                else:
                    stack.append((owner[v], iter(near[owner[v]])))
                break
            else:
                stack.pop()
        while free is not None:  # flip the path's pairs, back to the root
            r = came_from[free]
            before = partner.get(r)
            owner[free], partner[r] = r, free
            free = before
    return len(partner)


def ceilings(
    case: suite.Case,
    fp: dv.DerivativeFingerprint,
    feats: dv.SuspectFeatures,
    factors: Sequence[float],
    group: int,
) -> dict[str, dict[str, int]]:
    """One copy's counts (see the module documentation) at each tolerance
    factor, keyed ``"x1"``, ``"x2"``...; ``group`` is the consensus's own
    group in the copy's orientation."""
    reg = dv._registered(fp)
    m = working_transform(case, reg.scale, feats)
    c, s = m[0, 0], m[1, 0]
    scale = float(np.hypot(c, s))
    o = int(case.mirrored)
    present = _present(case, fp)
    rp = (np.c_[reg.points, np.ones(len(fp))].astype(np.float64) @ m[:2].T)[present]
    rs = reg.sizes.astype(np.float64)[present] * scale
    sp, ss = feats.points[o].astype(np.float64), feats.sizes.astype(np.float64)
    src, dst = dv.tentative_matches(reg.desc, feats.descriptors[o])
    pairs = (
        reg.points[src].astype(np.float64),
        reg.sizes[src].astype(np.float64),
        reg.angles[src].astype(np.float64),
        feats.points[o][dst].astype(np.float64),
        feats.sizes[dst].astype(np.float64),
        feats.angles[o][dst].astype(np.float64),
    )
    out = {}
    for factor in factors:
        tol = dv.REPROJ_THRESHOLD * max(scale, 0.3) * factor
        stol = dv.SCALE_TOLERANCE * factor
        matched = 0
        if len(src):
            rot = float(np.degrees(np.arctan2(s, c)))
            t = (c, s, m[0, 2], m[1, 2], float(np.log2(scale)), rot, tol)
            inl = agreeing(t, *pairs, stol, dv.ANGLE_TOLERANCE * factor)
            matched = int(one_to_one(inl, pairs[0], pairs[3]).sum())
        # The consensus fits its own transform to its group, which can gather
        # a pair or three more than the true one does: a ceiling counts the larger.
        out[f"x{factor:g}"] = {
            "present": int(present.sum()),
            "repeated": _repeated(rp, rs, sp, ss, tol, stol),
            "matched": max(matched, group),
        }
    return out


def copies(
    seed: int, per_photo: int, swap: bool
) -> Iterator[tuple[str, str, suite.Case, np.ndarray, dv.DerivativeFingerprint]]:
    """The run's doctored copies: ``(photo, "kind:j", case, original, its
    fingerprint as shipped)``, in the run's order, for the photos it registered
    (those with a fingerprint at the shipped working size, whatever
    ``--working-size`` is: the same copies)."""
    held, _, strangers = bd.split(seed, swap)
    originals = {p.name: load_rgb(p) for p in held}
    bd._STATE.update(strangers=strangers, originals=originals)
    for p in held:
        fp = None if p.name in strangers else _fingerprint(originals[p.name])
        if fp is None:
            continue
        for j in range(per_photo):
            for kind in suite.FILLS:
                tag = f"{kind}:{j}"
                yield p.name, tag, bd._suspect_case(seed, p.name, tag), originals[p.name], fp


def _fingerprint(rgb: np.ndarray) -> dv.DerivativeFingerprint | None:
    """The fingerprint with the extraction in force; None with too little detail."""
    try:
        return dv.derivative_from_pixels(rgb)
    except dv.TooLittleDetailError:
        return None


_NOTHING = dict.fromkeys(CLASSES, 0)


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    t0 = time.perf_counter()
    fps: dict[tuple[str, str], dv.DerivativeFingerprint | None] = {}
    conditions = (("shipped", shipped), ("every", every_keypoint))
    for n, (name, tag, case, original, registered) in enumerate(
        copies(args.seed, args.per_photo, args.swap_halves), 1
    ):
        if args.working_size == dv.WORKING_SIZE:  # the shipped extraction: the same fingerprint
            fps.setdefault((name, "shipped"), registered)
        rgb = load_rgb(case.jpeg, name=f"{name}/{tag}")
        row: dict[str, Any] = {
            "query": f"{name}/{tag}",
            "mirrored": bool(case.mirrored),
            "verified": 0,
        }
        features = []
        for label, extraction_of in conditions:
            with extraction_of(args.working_size):
                if (name, label) not in fps:
                    fps[name, label] = _fingerprint(original)
                fp = fps[name, label]
                feats = dv.suspect_features(rgb)
                if fp is None:
                    row |= {f"{label} x{f:g}": _NOTHING for f in args.tolerance}
                else:
                    if label == "shipped":
                        row["verified"] = dv.verify_derivative(feats, fp).inliers
                    own = (bool(case.mirrored),)
                    group = dv.verify_derivative(feats, fp, orientations=own).group
                    counts = ceilings(case, fp, feats, args.tolerance, group)
                    row |= {f"{label} {k}": v for k, v in counts.items()}
                features += [0 if fp is None else len(fp), len(feats)]
        row["features"] = features  # registered, suspect: shipped, then every keypoint
        rows.append(row)
        if n % 50 == 0:
            print(f"  {n} copies ({time.perf_counter() - t0:.0f} s)", file=sys.stderr, flush=True)
    return rows


def summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Copies reaching the decision (and 3) in each class, per condition."""
    out: dict[str, Any] = {
        "copies": len(rows),
        "verified": {n: sum(r["verified"] >= n for r in rows) for n in (FEWEST, DECISION)},
    }
    conditions = [k for k in rows[0] if k.startswith(("shipped", "every"))] if rows else []
    for cond in conditions:
        out[cond] = {
            c: {n: sum(r[cond][c] >= n for r in rows) for n in (FEWEST, DECISION)} for c in CLASSES
        }
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Recall's ceiling for the derivative fingerprint: how many of the "
        "held-out run's doctored copies a perfect matcher could verify, knowing the "
        "suite's true transforms.",
    )
    parser.add_argument("--seed", type=int, default=0, help="the held-out run's --seed")
    parser.add_argument("--per-photo", type=int, default=3, help="the run's --per-photo")
    parser.add_argument("--swap-halves", action="store_true", help="the tune half's copies instead")
    parser.add_argument(
        "--working-size", type=int, default=dv.WORKING_SIZE,
        help=f"working size of both sides, px (default {dv.WORKING_SIZE}, the shipped)",
    )  # fmt: skip
    parser.add_argument(
        "--tolerance", type=float, nargs="+", default=[1.0, 2.0],
        help="factors on verification's position, scale and angle tolerances (default 1 2)",
    )  # fmt: skip
    parser.add_argument(
        "--misses", type=Path,
        help="a held-out run's JSON (bench_derivative.py --out): report its missed copies too",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, help="write the summary and every copy's counts")
    args = parser.parse_args(argv)
    if args.per_photo < 1 or min(args.tolerance) <= 0 or not 64 <= args.working_size <= 2048:
        parser.error("--per-photo >= 1, --tolerance > 0, --working-size 64-2048 px")
    missed: set[str] = set()
    if args.misses is not None:
        try:
            run = json.loads(args.misses.read_text())
            missed = {m["query"] for m in run["doctored_misses"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            parser.error(f"--misses {args.misses}: not a held-out run's JSON output ({exc})")
    if args.out is not None:  # before the run, not after it
        try:
            args.out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            parser.error(f"--out {args.out}: cannot make its folder ({exc})")
        if not os.access(args.out.parent, os.W_OK):
            parser.error(f"--out {args.out}: its folder is not writable")
    if not bd.photos.photo_paths():
        print("no photos found: run 'python bench/photos.py fetch' first", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    limit_blas_threads()
    rows = measure(args)
    result: dict[str, Any] = {
        "seed": args.seed,
        "per_photo": args.per_photo,
        "halves": "swapped (tune)" if args.swap_halves else "held-out",
        "working_size": args.working_size,
        "tolerance": args.tolerance,
        "load_average_at_end": os.getloadavg(),
        "all": summary(rows),
    }
    if missed:
        mine = [r for r in rows if r["query"] in missed]
        if len(mine) < len(missed):
            print(
                f"{len(missed) - len(mine)} of the {len(missed)} misses in {args.misses} are "
                "not among these copies: is it a run of these halves, seed and --per-photo?",
                file=sys.stderr,
            )
            return 2
        result["misses"] = {"file": str(args.misses), "found": len(mine), "of": len(missed)}
        result["misses"] |= summary(mine)
    print(json.dumps({k: v for k, v in result.items() if k in ("all", "misses")}, indent=1))
    if args.out:  # whole or not at all: an earlier output is replaced, never half-written
        part = args.out.with_name(args.out.name + ".part")
        part.write_text(json.dumps(result | {"copies": rows}, indent=1) + "\n")
        part.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
