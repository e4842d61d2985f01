#!/usr/bin/env python
"""Shared watermarks against the derivative fingerprint: do they make unrelated photos match?

Reposting sites stamp their logo on everything they carry, so a suspect and
an unrelated registered photo may share one: the same lettering and emblem,
at another size and place. The verification caps a group of inliers that is a
small patch or hugs one edge (``docs/derivative.md``, "not the scene"); this
benchmark measures what gets through.

Bank: the held-out benchmark bank (``--bank-cache``, as built by
``bench_derivative.py``: the registered held-out photos and 10,000
distractors made from the tune photos) plus ``--bank-logos`` more distractors
made the same way, each stamped with one of four watermarks drawn here (a
badge with a site name and an emblem; benign). Queries: ``--queries`` edits of
the held-out photos that are never registered (the "strangers"): a doctored
copy or a repost (``bench/suite.py``), stamped with one of the same four
watermarks at a random size (15-35 % of the width), place (a corner or the
middle) and opacity (50-100 %), then saved as JPEG. Every accepted derivative
match of such a query is false. Recall: one doctored copy of each kind of
every registered held-out photo, looked up with and without a watermark
(found: its original ranked first; wrong: a match to any other entry too).
Carriers: the same for a copy of each registered photo that itself carries
one of the watermarks (stamped before it is fingerprinted), whose doctored
copies are verified against that fingerprint alone, as they are and stamped
again with the same watermark elsewhere (a fake posted back on the site it
was taken from): the verification keeps one transform, and the rule that
caps a badge group must not hide the scene behind it.

``--tune`` (the tune half only) is how ``MIN_BOX_SHARE`` was set: the share
of the suspect's frame that the inliers' bounding box covers, for doctored
copies (plain and stamped) against their own original, and for stamped
copies against unrelated stamped tune photos, with the rule switched off.

Usage::

    python bench/bench_watermark.py --bank-cache bench/data/derivative-bank-10k.npz \\
        --out bench/out/derivative-watermarks.json
    python bench/bench_watermark.py --tune --out bench/out/derivative-watermarks-tune.json
    python bench/bench_watermark.py --same-scene --out bench/out/derivative-same-scene.json

``--same-scene`` (the tune half) is how ``SHARED_SAME`` was checked: see
:func:`same_scene`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from scipy.stats import beta

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_derivative as bd  # noqa: E402
import photos  # noqa: E402
import suite  # noqa: E402

from takeback.fingerprint import derivative as dv  # noqa: E402
from takeback.imageio import load_rgb  # noqa: E402
from takeback.threads import limit_blas_threads  # noqa: E402

#: (site name, badge colour, text colour), RGB.
_MARKS = [
    ("photoshare.example", (20, 20, 20), (255, 255, 255)),
    ("@repost_hub", (250, 250, 250), (30, 30, 30)),
    ("PicBoard", (200, 30, 40), (255, 255, 255)),
    ("imgdump.example", (30, 60, 160), (255, 230, 120)),
]


def watermarks() -> list[np.ndarray]:
    """The four watermarks: ``(h, w, 4)`` float32 RGBA in [0, 1]."""
    out = []
    for text, badge, ink in _MARKS:
        h, w = 120, 520
        rgb = np.zeros((h, w, 3), np.uint8)
        alpha = np.zeros((h, w), np.uint8)
        for img, fill in ((rgb, badge), (alpha, 255)):
            cv2.rectangle(img, (30, 0), (w - 31, h - 1), fill, -1)
            cv2.circle(img, (30, 30), 30, fill, -1)
            cv2.circle(img, (30, h - 31), 30, fill, -1)
            cv2.circle(img, (w - 31, 30), 30, fill, -1)
            cv2.circle(img, (w - 31, h - 31), 30, fill, -1)
            cv2.rectangle(img, (0, 30), (w - 1, h - 31), fill, -1)
        # the emblem: a ring and a five-pointed star
        cv2.circle(rgb, (65, h // 2), 40, ink, 5)
        t = np.linspace(-np.pi / 2, 3.5 * np.pi, 10, endpoint=False)
        r = np.where(np.arange(10) % 2 == 0, 32, 13)
        star = np.stack([65 + r * np.cos(t), h // 2 + r * np.sin(t)], 1).astype(np.int32)
        cv2.fillPoly(rgb, [star], ink)
        cv2.putText(rgb, text, (118, h // 2 + 14), cv2.FONT_HERSHEY_DUPLEX, 1.15, ink, 2,
                    cv2.LINE_AA)  # fmt: skip
        out.append(np.dstack([rgb, alpha]).astype(np.float32) / 255)
    return out


def stamp(img: np.ndarray, mark: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` with ``mark`` laid over it at a random size, place and opacity."""
    h, w = img.shape[:2]
    mw = max(16, round(w * rng.uniform(0.15, 0.35)))
    mh = max(4, round(mw * mark.shape[0] / mark.shape[1]))
    if mh >= h or mw >= w:
        return img
    m = cv2.resize(mark, (mw, mh), interpolation=cv2.INTER_AREA)
    margin = round(min(h, w) * rng.uniform(0.02, 0.05))
    if rng.random() < 0.6:  # a corner
        x = margin if rng.random() < 0.5 else w - mw - margin
        y = margin if rng.random() < 0.5 else h - mh - margin
    else:
        x, y = (w - mw) // 2, (h - mh) // 2
    x, y = min(max(x, 0), w - mw), min(max(y, 0), h - mh)
    a = m[..., 3:] * rng.uniform(0.5, 1.0)
    out = img.astype(np.float32)
    patch = out[y : y + mh, x : x + mw]
    out[y : y + mh, x : x + mw] = patch * (1 - a) + 255 * m[..., :3] * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _jpeg(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``img`` saved as JPEG (quality 60-90) and decoded as a suspect is."""
    q = int(rng.integers(60, 91))
    ok, enc = cv2.imencode(".jpg", img[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, q])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return load_rgb(enc.tobytes(), name="suspect")


def _carriers(
    seed: int,
    registered: list[str],
    originals: dict[str, np.ndarray],
    strangers: list[str],
    marks: list[np.ndarray],
) -> dict[str, int]:
    """Doctored copies of watermarked registered photos verified against their
    fingerprint: ``copy`` as they are, ``restamped`` with the same mark again."""
    out = {"copy": 0, "restamped": 0, "n": 0, "photos": 0}
    for name in registered:
        rng = suite.rng_for(seed, "watermark-carrier", name)
        mark = marks[int(rng.integers(len(marks)))]
        carried = stamp(originals[name], mark, rng)
        try:
            fp = dv.derivative_from_pixels(carried)
        except dv.TooLittleDetailError:
            continue
        out["photos"] += 1
        for kind in suite.FILLS:
            donor = originals[strangers[int(rng.integers(len(strangers)))]]
            case = suite.make_case(carried, donor, kind, rng)
            plain = load_rgb(case.jpeg, name="suspect")
            restamped = _jpeg(stamp(case.image, mark, rng), rng)
            out["n"] += 1
            out["copy"] += int(dv.verify_derivative(plain, fp).matched)
            out["restamped"] += int(dv.verify_derivative(restamped, fp).matched)
    return out


def upper_95(k: int, n: int) -> float:
    """One-sided 95 % upper bound of a rate seen ``k`` times in ``n`` (Clopper-Pearson)."""
    return 1.0 if k >= n else float(beta.ppf(0.95, k + 1, n - k))


def _box_shares(feats: dv.SuspectFeatures, fp: dv.DerivativeFingerprint) -> tuple[int, float, bool]:
    """Inliers of a verification with ``MIN_BOX_SHARE`` off, the share of the
    suspect's frame their bounding box covers (1.0 under 4 inliers), and
    whether the group is mirrored."""
    seen: list[float] = []
    rule = dv._not_the_scene

    def recording(rp: np.ndarray, rf: Any, sp: np.ndarray, sf: tuple[int, int]) -> bool:
        seen.append(float(np.ptp(sp[:, 0]) * np.ptp(sp[:, 1]) / (sf[0] * sf[1])))
        return rule(rp, rf, sp, sf)

    dv._not_the_scene = recording  # type: ignore[assignment]
    try:
        m = dv.verify_derivative(feats, fp)
    finally:
        dv._not_the_scene = rule
    if m.inliers <= dv._STRIP_CAP or not seen:
        return m.inliers, 1.0, m.mirrored
    return m.inliers, seen[-1] if len(seen) == 1 else seen[int(m.mirrored)], m.mirrored


def tune_half(args: argparse.Namespace) -> dict[str, Any]:
    """Box shares of true and of watermark groups of 6 inliers or more, tune half."""
    min_share = dv.MIN_BOX_SHARE
    dv.MIN_BOX_SHARE = 0.0  # type: ignore[misc]
    marks = watermarks()
    paths = photos.photo_paths(split="tune")
    originals = [load_rgb(q) for q in paths]
    clean: list[dv.DerivativeFingerprint | None] = []
    stamped: list[dv.DerivativeFingerprint | None] = []
    for i, rgb in enumerate(originals):
        marked_photo = stamp(rgb, marks[i % 4], suite.rng_for(7, "wmreg", i))
        for out, img in ((clean, rgb), (stamped, marked_photo)):
            try:
                out.append(dv.derivative_from_pixels(img))
            except dv.TooLittleDetailError:
                out.append(None)
    true, marked = [], []
    true_mirrored: list[bool] = []
    marked_mirrored: list[tuple[bool, int]] = []
    for j, q in enumerate(paths):
        for rep in range(2):
            for kind in suite.KINDS:
                rng = suite.rng_for(args.seed, "cal", q.name, rep, kind)
                d = (j + 1 + int(rng.integers(len(paths) - 1))) % len(paths)
                case = suite.make_case(originals[j], originals[d], kind, rng)
                k = int(rng.integers(4))
                with_mark = _jpeg(stamp(case.image, marks[k], rng), rng)
                for img in (load_rgb(case.jpeg, name="suspect"), with_mark):
                    own = clean[j]
                    if own is not None:
                        n, share, mirrored = _box_shares(dv.suspect_features(img), own)
                        if n >= 6:
                            true.append(share)
                            true_mirrored.append(mirrored)
                feats = dv.suspect_features(with_mark)
                for i, fp in enumerate(stamped):
                    if i not in (j, d) and i % 4 == k and fp is not None:
                        n, share, mirrored = _box_shares(feats, fp)
                        if n >= 6:
                            marked.append(share)
                            marked_mirrored.append((mirrored, n))
        print(f"\r{j + 1}/{len(paths)} tune photos", end="", file=sys.stderr)
    print(file=sys.stderr)
    t, m = np.array(true), np.array(marked)
    t_mir = np.array(true_mirrored, bool)
    m_mir = np.array([x for x, _ in marked_mirrored], bool)
    return {
        "mode": "tune",
        "true_groups": len(t),
        "watermark_groups": len(m),
        "true_smallest": [round(float(x), 4) for x in np.sort(t)[:10]],
        "watermark_largest": [round(float(x), 4) for x in np.sort(m)[::-1][:10]],
        "at_threshold": {
            str(x): {"true_capped": int((t < x).sum()), "watermark_kept": int((m >= x).sum())}
            for x in (0.015, 0.02, 0.025, 0.03, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2)
        },
        # watermarks are stamped after a repost's flip, yet a symmetric badge
        # can match its mirror image: how many groups of each kind were
        # mirrored, and the true ones MIN_BOX_SHARE caps
        "mirrored": {
            "true_groups": int(t_mir.sum()),
            "true_capped": int((t_mir & (t < min_share)).sum()),
            "watermark_groups": int(m_mir.sum()),
            "watermark_inliers": sorted(n for x, n in marked_mirrored if x),
        },
    }


def same_scene(args: argparse.Namespace) -> dict[str, Any]:
    """What tells two copies of one scene from two photos sharing a badge, tune half.

    ``derivative.mutual_shares`` (one registered photo taken as a suspect of
    the other: the share of its frame the inliers' box covers, and the
    inliers' share of the other's features landing in it), both ways round,
    for each tune photo against copies of it resized to 0.8, 0.6 and 0.45;
    for the same photo shrunk to 28 % of the sides on a plain grey ground (a
    photo whose detail is one small object) against that resized to 0.6; and
    for every two tune photos stamped with the same watermark (as ``--tune``
    stamps them). Only pairs that match and whose box covers under
    ``SHARED_BOX`` need the inlier share (``SHARED_SAME``).
    """
    marks = watermarks()
    paths = photos.photo_paths(split="tune")
    shares: dict[str, list[tuple[float, float]]] = {"resized": [], "small_object": [], "badge": []}

    def fingerprint(img: np.ndarray) -> dv.DerivativeFingerprint | None:
        try:
            return dv.derivative_from_pixels(img)
        except dv.TooLittleDetailError:
            return None

    def both_ways(kind: str, a: dv.DerivativeFingerprint | None,
                  b: dv.DerivativeFingerprint | None) -> None:  # fmt: skip
        if a is not None and b is not None:
            shares[kind] += [x for x in (dv.mutual_shares(a, b), dv.mutual_shares(b, a)) if x]

    def resized(img: np.ndarray, f: float) -> np.ndarray:
        return cv2.resize(img, None, fx=f, fy=f, interpolation=cv2.INTER_AREA)

    stamped = []
    for i, q in enumerate(paths):
        rgb = load_rgb(q)
        fp = fingerprint(rgb)
        for f in (0.8, 0.6, 0.45):
            both_ways("resized", fp, fingerprint(resized(rgb, f)))
        ground = np.full((900, 1200, 3), 128, np.uint8)
        ground[300:552, 500:836] = cv2.resize(rgb, (336, 252), interpolation=cv2.INTER_AREA)
        both_ways("small_object", fingerprint(ground), fingerprint(resized(ground, 0.6)))
        stamped.append(fingerprint(stamp(rgb, marks[i % 4], suite.rng_for(7, "wmreg", i))))
        print(f"\r{i + 1}/{len(paths)} tune photos", end="", file=sys.stderr)
    print(file=sys.stderr)
    for i in range(len(stamped)):
        for j in range(i + 4, len(stamped), 4):  # the same watermark
            both_ways("badge", stamped[i], stamped[j])
    out: dict[str, Any] = {"mode": "same-scene", "shared_box": dv.SHARED_BOX,
                           "shared_same": dv.SHARED_SAME}  # fmt: skip
    for kind, v in shares.items():
        small = np.array([inl for box, inl in v if box < dv.SHARED_BOX])
        out[kind] = {
            "matched": len(v),
            "box_under_shared_box": len(small),
            "inlier_share": None
            if len(small) == 0
            else {
                "min": round(float(small.min()), 3),
                "p5": round(float(np.percentile(small, 5)), 3),
                "p95": round(float(np.percentile(small, 95)), 3),
                "max": round(float(small.max()), 3),
            },
            "same_scene": sum(dv.is_same_scene(x) for x in v),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bank-cache", type=Path,
                   help="the bank bench_derivative.py built (--bank-cache there)")  # fmt: skip
    p.add_argument("--tune", action="store_true", help="how MIN_BOX_SHARE was set (tune half)")
    p.add_argument("--same-scene", action="store_true",
                   help="how SHARED_SAME was set (tune half)")  # fmt: skip
    p.add_argument("--bank-logos", type=int, default=1000, help="stamped distractors added")
    p.add_argument("--queries", type=int, default=3000, help="stamped queries of strangers")
    p.add_argument(
        "--first",
        type=int,
        default=0,
        help=(
            "skip the queries before this one (each query is drawn from its number: "
            "--first 6000 --queries 12000 runs the second half of a 12,000-query run)"
        ),
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="write the results as JSON")
    args = p.parse_args(argv)
    limit_blas_threads()
    cv2.setNumThreads(1)
    if args.tune:
        return _write(tune_half(args), args.out)
    if args.same_scene:
        return _write(same_scene(args), args.out)
    if not 0 <= args.first <= args.queries:
        p.error(f"--first {args.first}: must be at least 0 and at most --queries {args.queries}")
    if args.bank_cache is None or not args.bank_cache.exists():
        p.error(f"{args.bank_cache}: no such bank; build it with bench_derivative.py --bank-cache")
    if not bd._cache_fits(args.bank_cache):  # says why; this script does not rebuild it
        p.error(f"{args.bank_cache}: rebuild it with bench_derivative.py --bank-cache")
    held, tune_paths, strangers = bd.split(args.seed)
    originals = {q.name: load_rgb(q) for q in held}
    tune = [bd._small(load_rgb(q)) for q in tune_paths]
    index, _, _, names, skipped, *_ = bd._load_bank(args.bank_cache)
    registered = [n for n in names if n in originals and n not in skipped]
    marks = watermarks()
    t0 = time.perf_counter()
    added = 0
    for j in range(args.bank_logos):
        rng = suite.rng_for(args.seed, "watermark-bank", j)
        img, _ = bd.distractor(tune, rng)
        try:
            index.add(f"stamped-{j}", dv.derivative_from_pixels(stamp(img, marks[j % 4], rng)))
            added += 1
        except dv.TooLittleDetailError:
            continue
    print(f"bank: {len(index)} ({added} stamped); {time.perf_counter() - t0:.0f} s", flush=True)

    t0 = time.perf_counter()
    false: list[dict[str, Any]] = []
    for q in range(args.first, args.queries):
        name = strangers[q % len(strangers)]
        kind = suite.KINDS[(q // len(strangers)) % len(suite.KINDS)]
        rng = suite.rng_for(args.seed, "watermark-query", name, q)
        donors = [n for n in strangers if n != name]
        case = suite.make_case(originals[name], originals[rng.choice(donors)], kind, rng)
        suspect = _jpeg(stamp(case.image, marks[int(rng.integers(4))], rng), rng)
        hits = index.search(suspect)
        if hits:
            key, m = hits[0]
            false.append({"query": f"{name}/{kind}:{q}", "matched": str(key),
                          "inliers": m.inliers, "score": round(m.score, 3)})  # fmt: skip
        if (q + 1) % 500 == 0:
            print(f"  queries {q + 1}/{args.queries}, false matches {len(false)}", flush=True)
    query_s = time.perf_counter() - t0

    # found: the right photo first; wrong: any match to another entry as well
    recall = {"plain": 0, "stamped": 0, "plain_wrong": 0, "stamped_wrong": 0, "n": 0}
    for name in registered:
        for kind in suite.FILLS:
            rng = suite.rng_for(args.seed, "watermark-recall", name, kind)
            donor = originals[strangers[int(rng.integers(len(strangers)))]]
            case = suite.make_case(originals[name], donor, kind, rng)
            plain = load_rgb(case.jpeg, name="suspect")
            stamped = _jpeg(stamp(case.image, marks[int(rng.integers(4))], rng), rng)
            recall["n"] += 1
            for label, img in (("plain", plain), ("stamped", stamped)):
                hits = index.search(img)
                recall[label] += int(bool(hits) and hits[0][0] == name)
                recall[f"{label}_wrong"] += int(any(key != name for key, _ in hits))
    carriers = _carriers(args.seed, registered, originals, strangers, marks)
    res = {
        "mode": "watermarks",
        "seed": args.seed,
        "bank_size": len(index),
        "stamped_bank_entries": added,
        "first_query": args.first,
        "queries": args.queries - args.first,
        "false_matches": len(false),
        "false_match_upper_95": round(upper_95(len(false), args.queries - args.first), 6),
        "false_match_examples": false[:20],
        "recall_doctored": recall,
        "carriers": carriers,
        "query_seconds": round(query_s, 1),
        "loadavg": bd._loadavg(),
    }
    return _write(res, args.out)


def _write(res: dict[str, Any], out: Path | None) -> int:
    text = json.dumps(res, indent=1)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
