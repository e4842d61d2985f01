#!/usr/bin/env python
"""Benchmark of the derivative fingerprint against PDQ (dihedral) and pHash.

Two modes:

``--calibrate`` (tune half only)
    Registers the tune photos, makes doctored copies and reposts of them
    (``bench/suite.py``), verifies each against its own original (positives)
    and against ``--negatives`` other tune originals (unrelated pairs), and
    prints the inlier distributions and the fitted null tail
    ``log10 P(inliers >= n) = a - b n`` used by ``score_of_inliers``.

default (held-out half)
    Donors of the ``donor`` fill are strangers too (a donor-filled copy holds
    part of its donor, which would otherwise be found as a second match).
    Bank: the registered held-out photos (all but the "strangers", a fixed
    fifth of the held-out half that is never registered) plus ``--distractors``
    images derived from the tune photos (random crops, rotations, mosaics of
    crops of several photos, and doctored copies). Queries: doctored copies and
    reposts of the registered photos (recall: the top result must be the right
    original) and edits of strangers and of the registered photos; any accepted
    match to a wrong entry is a false match. PDQ (8 dihedral variants, match at
    <= 31 bits) and pHash (imagehash, 64 bits, match at <= 10 bits) run on the
    same suspects in the same run.

Run ``python bench/bench_derivative.py --help``. Results are printed and, with
``--out``, written as JSON. The machine's load average is recorded with each
timing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos  # noqa: E402
import suite  # noqa: E402

from takeback.fingerprint import derivative as dv  # noqa: E402
from takeback.fingerprint.derivative_index import DerivativeIndex  # noqa: E402
from takeback.imageio import load_rgb  # noqa: E402

PHASH_THRESHOLD = 10


def _load(path: Path) -> np.ndarray:
    return load_rgb(path)


def _small(rgb: np.ndarray, side: int = 1024) -> np.ndarray:
    h, w = rgb.shape[:2]
    s = side / max(h, w)
    if s >= 1:
        return rgb
    return cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)


def _loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _pdq(rgb: np.ndarray, variants: bool) -> np.ndarray:
    from takeback.fingerprint.pdq import pdq_from_pixels

    hashes, _ = pdq_from_pixels(_small(rgb, 1024), dihedral=variants)
    return np.stack([h.to_array() for h in hashes])


def _phash(rgb: np.ndarray) -> np.ndarray:
    import imagehash
    from PIL import Image

    bits = imagehash.phash(Image.fromarray(_small(rgb, 512))).hash.reshape(-1)
    return np.packbits(bits)


_POP = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _ham(a: np.ndarray, bank: np.ndarray) -> np.ndarray:
    """Hamming distances of (V, B) query variants against (N, B) bank -> (N,) min over variants."""
    d = _POP[np.bitwise_xor(bank[None, :, :], a[:, None, :])].sum(-1, dtype=np.int32)
    return d.min(0)


def distractor(tune: list[np.ndarray], rng: np.random.Generator) -> tuple[np.ndarray, str]:
    """An image derived from the tune photos: a crop, a mosaic or a doctored copy."""
    kind = ["crop", "mosaic", "edit"][int(rng.choice(3, p=[0.5, 0.3, 0.2]))]

    def crop(img: np.ndarray, area: float) -> np.ndarray:
        h, w = img.shape[:2]
        cw = int(w * np.sqrt(area) * rng.uniform(0.8, 1.2))
        cw = min(w, max(32, cw))
        ch = min(h, max(32, int(area * w * h / cw)))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        out = img[y : y + ch, x : x + cw]
        deg = float(rng.uniform(-20, 20))
        if abs(deg) > 2:
            m = cv2.getRotationMatrix2D((cw / 2, ch / 2), deg, 1.0)
            out = cv2.warpAffine(out, m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
        if rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    if kind == "crop":
        img = crop(tune[int(rng.integers(len(tune)))], float(rng.uniform(0.15, 0.6)))
    elif kind == "mosaic":
        rows, cols = [(1, 2), (2, 1), (2, 2)][int(rng.integers(3))]
        th, tw = int(rng.integers(200, 400)), int(rng.integers(200, 400))
        tiles = []
        for _ in range(rows * cols):
            t = crop(tune[int(rng.integers(len(tune)))], float(rng.uniform(0.1, 0.4)))
            tiles.append(cv2.resize(t, (tw, th), interpolation=cv2.INTER_AREA))
        img = np.vstack([np.hstack(tiles[r * cols : (r + 1) * cols]) for r in range(rows)])
    else:
        a, b = rng.choice(len(tune), 2, replace=False)
        img = suite.make_case(crop(tune[int(a)], float(rng.uniform(0.3, 0.8))), tune[int(b)],
                              str(rng.choice(suite.FILLS)), rng).image  # fmt: skip
    # colour jitter and a random working size
    img = np.clip(
        img.astype(np.float32) * rng.uniform(0.8, 1.2, 3) + rng.uniform(-20, 20), 0, 255
    ).astype(np.uint8)
    side = int(rng.integers(400, 1025))
    h, w = img.shape[:2]
    s = side / max(h, w)
    img = cv2.resize(
        img, (max(64, round(w * s)), max(64, round(h * s))), interpolation=cv2.INTER_AREA
    )
    return img, kind


def _query_features(jpeg: bytes) -> tuple[dv.SuspectFeatures, np.ndarray]:
    rgb = load_rgb(jpeg, name="suspect")
    return dv.suspect_features(rgb), rgb


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    paths = photos.photo_paths(split="tune")
    originals = [_load(p) for p in paths]
    fps = []
    for rgb in originals:
        try:
            fps.append(dv.derivative_from_pixels(rgb))
        except dv.TooLittleDetailError:
            fps.append(None)
    pos: dict[str, list[int]] = defaultdict(list)
    neg: list[int] = []
    high: list[tuple[str, str, str, int]] = []
    rng0 = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        if fps[i] is None:
            continue
        for j in range(args.per_photo):
            for kind in suite.KINDS:
                rng = suite.rng_for(args.seed, "cal", p.name, j, kind)
                d_i = (i + 1 + int(rng.integers(len(paths) - 1))) % len(paths)
                donor = originals[d_i]
                case = suite.make_case(originals[i], donor, kind, rng)
                feats, _ = _query_features(case.jpeg)
                pos[kind].append(dv.verify_derivative(feats, fps[i]).inliers)
                # the donor is left out: a donor-filled copy really holds part of it
                picks = rng0.choice(len(paths), args.negatives + 2, replace=False)
                others = [o for o in picks if o not in (i, d_i)]
                for o in others[: args.negatives]:
                    if fps[o] is not None:
                        inl = dv.verify_derivative(feats, fps[o]).inliers
                        neg.append(inl)
                        if inl >= 8:
                            high.append((p.name, kind, paths[o].name, inl))
    n = np.array(neg)
    tail = {k: float((n >= k).mean()) for k in range(0, int(n.max()) + 2)}
    ks = [k for k, v in tail.items() if v > 0 and k >= dv._NULL_N0]
    fit = np.polyfit(ks, [np.log10(tail[k]) for k in ks], 1) if len(ks) >= 2 else [0.0, 0.0]
    res = {
        "mode": "calibrate",
        "photos": len(paths),
        "negatives": len(neg),
        "neg_inlier_counts": dict(sorted(Counter(neg).items())),
        "neg_tail": tail,
        "neg_high_pairs": high,
        "fit_log10_tail": {"a": round(float(fit[1]), 3), "b": round(float(-fit[0]), 3)},
        "pos_inliers_percentiles": {
            k: np.percentile(v, [5, 10, 25, 50]).round(1).tolist() for k, v in pos.items()
        },
        "pos_recall_at_current_threshold": {
            k: float(np.mean([dv.score_of_inliers(x) >= dv.DECISION_SCORE for x in v]))
            for k, v in pos.items()
        },
        "seconds": round(time.perf_counter() - t0, 1),
        "loadavg": _loadavg(),
    }
    return res


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    held = photos.photo_paths(split="heldout")
    tune_paths = photos.photo_paths(split="tune")
    strangers = {
        p.name for p in held if suite.rng_for(args.seed, "stranger", p.name).random() < 0.2
    }
    registered = [p for p in held if p.name not in strangers]
    print(
        f"held-out {len(held)} ({len(registered)} registered, {len(strangers)} strangers); "
        f"tune {len(tune_paths)}"
    )
    originals = {p.name: _load(p) for p in held}
    tune = [_small(_load(p)) for p in tune_paths]

    index = DerivativeIndex()
    pdq_bank, ph_bank, bank_names = [], [], []
    skipped = []
    add_times = []
    for p in registered:
        rgb = originals[p.name]
        t = time.perf_counter()
        try:
            fp = dv.derivative_from_pixels(rgb)
        except dv.TooLittleDetailError:
            skipped.append(p.name)
            continue
        index.add(p.name, fp)
        add_times.append(time.perf_counter() - t)
        pdq_bank.append(_pdq(rgb, False)[0])
        ph_bank.append(_phash(rgb))
        bank_names.append(p.name)
    rng = np.random.default_rng([args.seed, 7])
    kinds: Counter[str] = Counter()
    sizes = []
    la_add = _loadavg()
    scale_points: dict[int, dict[str, float]] = {}
    for n in range(args.distractors):
        img, kind = distractor(tune, rng)
        t = time.perf_counter()
        try:
            fp = dv.derivative_from_pixels(img)
        except dv.TooLittleDetailError:
            continue
        index.add(f"distractor-{n}", fp)
        add_times.append(time.perf_counter() - t)
        sizes.append(fp.size_bytes)
        kinds[kind] += 1
        pdq_bank.append(_pdq(img, False)[0])
        ph_bank.append(_phash(img))
        bank_names.append(f"distractor-{n}")
        if (n + 1) % 1000 == 0:
            print(f"  bank {len(index)}", flush=True)
    pdq_arr, ph_arr = np.stack(pdq_bank), np.stack(ph_bank)
    print(
        f"bank: {len(index)} fingerprints; derivative add {np.mean(add_times) * 1000:.1f} ms/photo"
    )

    recall: dict[str, Counter[str]] = defaultdict(Counter)
    fm = Counter()
    fm_examples = []
    lat, lat_retr, lat_ver, lat_feat = [], [], [], []
    nq = 0
    la_q = _loadavg()
    queries: list[tuple[str, str, bool]] = []  # (photo, kind, registered)
    for p in registered:
        if p.name in skipped:
            continue
        for j in range(args.per_photo):
            for kind in suite.KINDS:
                queries.append((p.name, f"{kind}:{j}", True))
    j = 0
    hold_names = [p.name for p in held]
    while len(queries) < args.queries:
        name = hold_names[j % len(hold_names)]
        kind = suite.KINDS[(j // len(hold_names)) % len(suite.KINDS)]
        queries.append((name, f"{kind}:x{j}", name not in strangers and name not in skipped))
        j += 1
    t_all = time.perf_counter()
    for qi, (name, tag, reg) in enumerate(queries):
        kind, rep = tag.split(":")
        r = suite.rng_for(args.seed, "query", name, tag)
        # Donors are strangers: never registered and not in the distractors, so
        # a donor-filled copy matches nothing but its own original.
        donors = [n for n in sorted(strangers) if n != name]
        donor = originals[donors[int(r.integers(len(donors)))]]
        case = suite.make_case(originals[name], donor, kind, r)
        t0 = time.perf_counter()
        rgb = load_rgb(case.jpeg, name="suspect")
        feats = dv.suspect_features(rgb)
        t1 = time.perf_counter()
        cands = index.candidates(feats, args.k)
        t2 = time.perf_counter()
        results = []
        for pos, _votes in cands:
            m = dv.verify_derivative(feats, index._fps[pos])
            if m.matched:
                results.append((index._keys[pos], m))
        results.sort(key=lambda km: (-km[1].score, -km[1].inliers))
        t3 = time.perf_counter()
        lat.append(t3 - t0)  # decode + extraction + retrieval + verification
        lat_feat.append(t1 - t0)
        lat_retr.append(t2 - t1)
        lat_ver.append(t3 - t2)
        nq += 1
        wrong = [(k, m) for k, m in results if k != name]
        if wrong:
            fm["derivative"] += 1
            if len(fm_examples) < 20:
                k0, m0 = wrong[0]
                fm_examples.append(
                    {
                        "query": f"{name}/{tag}",
                        "matched": k0,
                        "inliers": m0.inliers,
                        "score": m0.score,
                    }
                )
        pdq_q = _pdq(case.image, True)
        ph_q = _phash(case.image)
        dp = _ham(pdq_q, pdq_arr)
        dph = _ham(ph_q[None], ph_arr)
        own = bank_names.index(name) if reg else -1
        wrong_p = dp <= 31
        wrong_h = dph <= PHASH_THRESHOLD
        if own >= 0:
            wrong_p[own] = False
            wrong_h[own] = False
        fm["pdq"] += int(wrong_p.any())
        fm["phash"] += int(wrong_h.any())
        if reg and not rep.startswith("x"):
            top = results[0][0] if results else None
            rec = recall[kind]
            rec["n"] += 1
            rec["derivative"] += int(top == name)
            rec["retrieved"] += int(any(index._keys[c] == name for c, _ in cands))
            rec["pdq"] += int(dp[own] <= 31)
            rec["phash"] += int(dph[own] <= PHASH_THRESHOLD)
            rec["replaced_ge_25"] += int(case.params.get("replaced_fraction", 0) >= 0.25)
        if (qi + 1) % 100 == 0:
            print(
                f"  queries {qi + 1}/{len(queries)}  derivative false {fm['derivative']}",
                flush=True,
            )
    la_end = _loadavg()
    # retrieval-only latency at 1k registered (a subset index), for the scaling curve
    sub = DerivativeIndex()
    for key, fp in list(zip(index._keys, index._fps, strict=True))[:1000]:
        sub.add(key, fp)
    tt = []
    for name, tag, _ in queries[:200]:
        kind, _rep = tag.split(":")
        case = suite.make_case(
            originals[name], tune[0], kind, suite.rng_for(args.seed, "query", name, tag)
        )
        feats = dv.suspect_features(load_rgb(case.jpeg))
        t = time.perf_counter()
        sub.candidates(feats, args.k)
        tt.append(time.perf_counter() - t)
    scale_points[len(sub)] = {"retrieval_ms_mean": round(1000 * float(np.mean(tt)), 2)}
    scale_points[len(index)] = {"retrieval_ms_mean": round(1000 * float(np.mean(lat_retr)), 2)}

    def pct(v: list[float]) -> dict[str, float]:
        return {
            q: round(1000 * float(np.percentile(v, int(q[1:]))), 1) for q in ("p50", "p95", "p99")
        } | {"mean": round(1000 * float(np.mean(v)), 1)}

    total = Counter()
    for c in recall.values():
        total.update(c)
    per_photo_mem = index.memory_bytes / max(1, len(index))
    return {
        "mode": "evaluate",
        "seed": args.seed,
        "heldout_registered": len(registered) - len(skipped),
        "strangers": sorted(strangers),
        "skipped_too_little_detail": skipped,
        "bank_size": len(index),
        "distractor_kinds": dict(kinds),
        "queries": nq,
        "recall": {k: dict(v) for k, v in recall.items()} | {"all": dict(total)},
        "false_matches": dict(fm),
        "false_match_examples": fm_examples,
        "rule_of_three_bound": {
            k: (3 / nq if fm[k] == 0 else None) for k in ("derivative", "pdq", "phash")
        },
        "latency_ms_total": pct(lat),
        "latency_ms_extraction": pct(lat_feat),
        "latency_ms_retrieval": pct(lat_retr),
        "latency_ms_verification": pct(lat_ver),
        "loadavg_bank_start": la_add,
        "loadavg_queries_start": la_q,
        "loadavg_end": la_end,
        "query_seconds": round(time.perf_counter() - t_all, 1),
        "add_ms_mean": round(1000 * float(np.mean(add_times)), 2),
        "fingerprint_bytes": {"mean": round(float(np.mean(sizes)), 1), "max": int(np.max(sizes))},
        "index_memory_bytes_per_photo": round(per_photo_mem, 1),
        "projected_memory_1M_GB": round(per_photo_mem * 1e6 / 1e9, 2),
        "retrieval_scaling": scale_points,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--calibrate", action="store_true", help="fit the null model on the tune half"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--per-photo", type=int, default=3, help="suspects per photo and kind")
    parser.add_argument(
        "--negatives", type=int, default=20, help="unrelated originals per query (calibrate)"
    )
    parser.add_argument("--distractors", type=int, default=10_000, help="distractor bank entries")
    parser.add_argument(
        "--queries", type=int, default=10_000, help="total queries (recall ones included)"
    )
    parser.add_argument("-k", type=int, default=8, help="candidates verified per query")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    res = calibrate(args) if args.calibrate else evaluate(args)
    text = json.dumps(res, indent=1, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
