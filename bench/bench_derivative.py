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
    same suspects in the same run. With ``--swap-halves`` the halves change
    places (the tune photos registered and queried, the distractors made
    from the held-out ones): a check of retrieval settings on the tune half.

Run ``python bench/bench_derivative.py --help``. Results are printed and, with
``--out``, written as JSON. The machine's load average is recorded with each
timing.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import zipfile
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos  # noqa: E402
import suite  # noqa: E402

from takeback.fingerprint import derivative as dv  # noqa: E402
from takeback.fingerprint.derivative_index import (  # noqa: E402
    MAX_HAMMING,
    SMALL_SUSPECT,
    TOP_K,
    DerivativeIndex,
    assign_words,
)
from takeback.imageio import load_rgb  # noqa: E402
from takeback.threads import limit_blas_threads  # noqa: E402

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


def register_all(
    originals: Sequence[np.ndarray],
) -> tuple[list[dv.DerivativeFingerprint | None], DerivativeIndex]:
    """Each original's derivative fingerprint (None: too little detail) and an
    index of them, keyed by their position."""
    fps: list[dv.DerivativeFingerprint | None] = []
    for rgb in originals:
        try:
            fps.append(dv.derivative_from_pixels(rgb))
        except dv.TooLittleDetailError:
            fps.append(None)
    index = DerivativeIndex()
    for i, fp in enumerate(fps):
        if fp is not None:
            index.add(i, fp)
    return fps, index


def popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint32 (signature distances from XORed signatures)."""
    x = np.ascontiguousarray(x, np.uint32)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 4), axis=-1).sum(-1)


def calibrate(args: argparse.Namespace) -> dict[str, Any]:
    paths = photos.photo_paths(split="tune")
    originals = [_load(p) for p in paths]
    fps, index = register_all(originals)
    pos: dict[str, list[int]] = defaultdict(list)
    neg: list[int] = []
    hard: list[int] = []
    high: list[tuple[str, str, str, int]] = []
    rng0 = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    for i, p in enumerate(paths):
        if fps[i] is None:
            continue
        for j in range(args.per_photo):
            for kind in suite.KINDS:
                case, d_i = calibration_case(args.seed, paths, originals, i, j, kind)
                feats, _ = _query_features(case.jpeg)
                pos[kind].append(dv.verify_derivative(feats, fps[i]).inliers)
                # the donor is left out: a donor-filled copy really holds part of it
                picks = rng0.choice(len(paths), args.negatives + 2, replace=False)
                others = [o for o in picks if o not in (i, d_i)]
                for o in others[: args.negatives]:
                    if fps[o] is not None:
                        inl = dv.verify_derivative(feats, fps[o]).inliers
                        neg.append(inl)
                        if inl >= 6:
                            high.append((p.name, kind, paths[o].name, inl))
                # hard negatives: the unrelated photos retrieval would verify
                for o, mirrored, _votes in index.candidates(feats, 10):
                    if o not in (i, d_i):
                        m = dv.verify_derivative(feats, fps[o], orientations=(mirrored,))
                        hard.append(m.inliers)
                        if m.inliers >= 6:
                            high.append((p.name, kind, paths[o].name, m.inliers))
    n = np.array(neg + hard)
    tail = {k: float((n >= k).mean()) for k in range(0, int(n.max()) + 2)}
    ks = [k for k, v in tail.items() if v > 0 and k >= dv._NULL_N0]
    points = [(k, float(np.log10(tail[k]))) for k in ks]
    bound = 3 / len(n)  # 95 % upper bound of a rate none of len(n) pairs reached
    if len(points) == 1 and bound < tail[ks[0]]:  # none past one count: the line
        # through it and the bound one count further (no line when the bound is higher)
        points.append((ks[0] + 1, float(np.log10(bound))))
    fit = np.polyfit(*zip(*points, strict=True), 1) if len(points) >= 2 else [0.0, 0.0]
    res = {
        "mode": "calibrate",
        "photos": len(paths),
        "negatives": len(neg),
        "hard_negatives": len(hard),
        "neg_inlier_counts": dict(sorted(Counter(neg).items())),
        "hard_neg_inlier_counts": dict(sorted(Counter(hard).items())),
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


def _stem(name: str) -> str:
    """A photo's scene: its name without extension and trailing shot number."""
    return re.sub(r"(-\d+)?\.\w+$", "", name)


# Set before the query workers fork (copy-on-write), read by _run_query.
_STATE: dict[str, Any] = {}


def _run_query(q: tuple[str, str, bool]) -> dict[str, Any]:
    """Make one suspect, look it up with all three methods, time the derivative lookup."""
    st = _STATE
    name, tag, reg = q
    kind = tag.split(":")[0]
    case = _suspect_case(st["seed"], name, tag)
    index: DerivativeIndex = st["index"]
    t0 = time.perf_counter()
    rgb = load_rgb(case.jpeg, name="suspect")
    feats = dv.suspect_features(rgb)
    t1 = time.perf_counter()
    cands = index.candidates(feats, st["k"])
    t2 = time.perf_counter()
    results = index.search(feats, k=st["k"]) if cands else []
    t3 = time.perf_counter()
    names = st["bank_names"]
    diag: dict[str, Any] = {}
    if reg and kind != "repost" and not tag.split(":")[1].startswith("x"):
        diag = _diagnose(index, feats, name)
    dp = _ham(_pdq(case.image, True), st["pdq"])
    dph = _ham(_phash(case.image)[None], st["phash"])
    own = st["bank_pos"].get(name, -1) if reg else -1
    wrong_p, wrong_h = dp <= 31, dph <= PHASH_THRESHOLD
    if own >= 0:
        wrong_p[own] = wrong_h[own] = False
    return {
        "name": name,
        "tag": tag,
        "kind": kind,
        "registered": reg,
        "results": [
            (str(k), round(m.score, 3), m.inliers, round(m.coverage, 3)) for k, m in results
        ],
        "retrieved": any(names[c] == name for c, _, _ in cands),
        "pdq_own": int(dp[own]) if own >= 0 else None,
        "phash_own": int(dph[own]) if own >= 0 else None,
        "pdq_wrong": bool(wrong_p.any()),
        "phash_wrong": bool(wrong_h.any()),
        "replaced": case.params.get("replaced_fraction", 0.0),
        **diag,
        "ms": [round(1000 * x, 2) for x in (t1 - t0, t2 - t1, t3 - t2, t3 - t0)],
    }


def _diagnose(index: DerivativeIndex, feats: dv.SuspectFeatures, name: str) -> dict[str, Any]:
    """For a doctored copy of a registered photo: where retrieval ranks its original,
    how many inliers verification finds against it, how many of those inlier
    pairs share a word (nearest word, or one of the suspect's two nearest),
    and how many vote (in one of the two words, signatures within
    ``MAX_HAMMING`` bits, in a run of the list the lookup scans)."""
    own = index._pos[name]
    fp = index._fps[own]
    assert fp is not None
    cands = index.candidates(feats, 20)
    rank = next((i for i, c in enumerate(cands) if c[0] == own), None)
    match = dv.verify_derivative(feats, fp)
    reg = dv._registered(fp)
    o = int(match.mirrored)
    src, dst = dv.tentative_matches(reg.desc, feats.descriptors[o])
    inl, _ = dv.consensus(reg.points[src], reg.sizes[src], reg.angles[src],
                          feats.points[o][dst], feats.sizes[dst], feats.angles[o][dst])  # fmt: skip
    rw, rs, _, _ = assign_words(reg.desc[src[inl]])
    sw, ss, _, sure = assign_words(feats.descriptors[o][dst[inl]], 2)
    sw, ss, sure = sw.reshape(-1, 2), ss.reshape(-1, 2), sure.reshape(-1, 2)
    diff = ss ^ rs[:, None]
    votes = (sw == rw[:, None]) & (popcount(diff) <= MAX_HAMMING) & ((diff & sure) == 0)
    return {
        "own_rank": rank,
        "own_inliers": match.inliers,
        "inlier_pairs": int(inl.sum()),
        "same_word": int((sw[:, 0] == rw).sum()) if len(rw) else 0,
        "same_word_of_two": int((sw == rw[:, None]).any(axis=1).sum()) if len(rw) else 0,
        "voting": int(votes.any(axis=1).sum()) if len(rw) else 0,
    }


def _synthetic(pool: dict[str, np.ndarray], rng: np.random.Generator) -> dv.DerivativeFingerprint:
    """A fingerprint made of features of many real ones (for the scaling curve only)."""
    n = len(pool["desc"])
    pick = rng.integers(0, n, dv.MAX_FEATURES)
    w, h = int(rng.integers(400, 4000)), int(rng.integers(400, 4000))
    pts = rng.random((dv.MAX_FEATURES, 2)) * [w - 1, h - 1]
    return dv.DerivativeFingerprint._build(
        w, h, pool["desc"][pick], pts, pool["sizes"][pick], pool["angles"][pick]
    )


def _save_bank(path: Path, index: DerivativeIndex, pdq_bank: list[np.ndarray],
               ph_bank: list[np.ndarray], names: list[str], skipped: list[str],
               add_times: list[float], kinds: Counter[str], swap: bool) -> None:  # fmt: skip
    """Keep the built bank, so a later run can time lookups without rebuilding it."""
    blobs = [index._fps[index._pos[n]].to_bytes() for n in names]  # type: ignore[union-attr]
    np.savez(path, names=np.array(names), blobs=np.array(blobs, dtype=object), recipe=_recipe(swap),
             pdq=np.stack(pdq_bank), phash=np.stack(ph_bank), skipped=np.array(skipped, dtype=str),
             add_times=np.array(add_times), kinds=np.array(json.dumps(dict(kinds))))  # fmt: skip


def _recipe(swap: bool = False) -> str:
    """What registered fingerprints depend on: a cache built otherwise is rebuilt."""
    return (
        f"format {dv.FORMAT_VERSION}, size {dv.WORKING_SIZE}, features {dv.MAX_FEATURES}, "
        f"contrast {dv.CONTRAST}, edge {dv.EDGE_THRESHOLD}, keypoints {dv.REGISTER_KEYPOINTS}"
        + (_SWAPPED if swap else "")
    )


_SWAPPED = ", halves swapped"


def _cache_fits(path: Path, swap: bool = False) -> bool:
    """Whether the bank cache can be read and was built by this code (else it is
    rebuilt); a bank of the other halves stops the run instead."""
    recipe = _recipe(swap)
    try:  # the recipe is plain text: nothing of the file is unpickled to check it
        with np.load(path, allow_pickle=False) as z:
            built = str(z["recipe"]) if "recipe" in z.files else "an older recipe"
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        print(f"{path}: cannot be read ({exc}): rebuilding it", flush=True)
        return False
    if built != recipe:
        if built.removesuffix(_SWAPPED) == recipe.removesuffix(_SWAPPED):
            # the other halves' bank: rebuilding would throw away a good one
            swapped = "" if built.endswith(_SWAPPED) else "not "
            raise SystemExit(
                f"{path} was built with the halves {swapped}swapped: give this run "
                "its own --bank-cache"
            )
        print(f"{path}: built with {built}, not {recipe}: rebuilding it", flush=True)
        return False
    return True


def _load_bank(path: Path) -> tuple[Any, ...]:
    z = np.load(path, allow_pickle=True)
    index = DerivativeIndex()
    names = [str(n) for n in z["names"]]
    fps = [dv.DerivativeFingerprint.from_bytes(b) for b in z["blobs"]]
    for n, fp in zip(names, fps, strict=True):
        index.add(n, fp)
    return (index, list(z["pdq"]), list(z["phash"]), names, list(z["skipped"]),
            list(z["add_times"]), [fp.size_bytes for fp in fps],
            Counter(json.loads(str(z["kinds"]))))  # fmt: skip


def _rss_mib() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def calibration_case(
    seed: int, paths: list[Path], originals: list[np.ndarray], i: int, j: int, kind: str
) -> tuple[suite.Case, int]:
    """Edit ``j`` of ``kind`` of tune photo ``i`` for calibration: the case and
    the index of its donor photo (another tune photo)."""
    rng = suite.rng_for(seed, "cal", paths[i].name, j, kind)
    d_i = (i + 1 + int(rng.integers(len(paths) - 1))) % len(paths)
    return suite.make_case(originals[i], originals[d_i], kind, rng), d_i


def split(seed: int, swap: bool = False) -> tuple[list[Path], list[Path], list[str]]:
    """The held-out photos, the tune photos distractors are made from, and the
    held-out photos never registered (the "strangers", a fixed fifth).

    ``swap`` exchanges the halves: the tune photos are registered and queried,
    the distractors are made from the held-out ones (a retrieval check that
    looks at no held-out result).
    """
    held = photos.photo_paths(split="heldout")
    held_stems = {_stem(p.name) for p in held}
    # Same scene shot twice (kpa-bar55 / kpa-bar55-2) must not sit on both sides.
    tune_paths = [p for p in photos.photo_paths(split="tune") if _stem(p.name) not in held_stems]
    if swap:
        held, tune_paths = tune_paths, held
    strangers = sorted(
        p.name for p in held if suite.rng_for(seed, "stranger", p.name).random() < 0.2
    )
    return held, tune_paths, strangers


def evaluate(args: argparse.Namespace) -> dict[str, Any]:
    import multiprocessing

    import faiss

    faiss.omp_set_num_threads(1)
    cv2.setNumThreads(1)
    held, tune_paths, strangers = split(args.seed, args.swap_halves)
    registered = [p for p in held if p.name not in strangers]
    sides = ("tune", "held-out") if args.swap_halves else ("held-out", "tune")
    print(
        f"{sides[0]} {len(held)} ({len(registered)} registered, {len(strangers)} strangers); "
        f"distractor sources: {len(tune_paths)} {sides[1]} photos"
    )
    originals = {p.name: _load(p) for p in held}
    tune = [_small(_load(p)) for p in tune_paths]

    cache = args.bank_cache
    cache_stale = False
    if cache is not None and cache.exists() and not _cache_fits(cache, args.swap_halves):
        cache.unlink()
    if cache is not None and cache.exists():
        index, pdq_bank, ph_bank, bank_names, skipped, add_times, sizes, kinds = _load_bank(cache)
        la_add = la_add_end = _loadavg()
    else:
        index = DerivativeIndex()
        pdq_bank, ph_bank, bank_names = [], [], []
        skipped, add_times, sizes = [], [], []
        kinds = Counter()

    def bank_add(key: str, img: np.ndarray) -> bool:
        """Register one image with all three methods; False when it has too little detail."""
        t = time.perf_counter()
        try:
            fp = dv.derivative_from_pixels(img)
        except dv.TooLittleDetailError:
            return False
        index.add(key, fp)
        add_times.append(time.perf_counter() - t)
        sizes.append(fp.size_bytes)
        pdq_bank.append(_pdq(img, False)[0])
        ph_bank.append(_phash(img))
        bank_names.append(key)
        return True

    if cache is None or not cache.exists():
        la_add = _loadavg()
        skipped += [p.name for p in registered if not bank_add(p.name, originals[p.name])]
        rng = np.random.default_rng([args.seed, 7])
        t_bank = time.perf_counter()
        for n in range(args.distractors):
            img, kind = distractor(tune, rng)
            kinds[kind] += bank_add(f"distractor-{n}", img)
            if (n + 1) % 1000 == 0:
                print(f"  bank {len(index)} ({time.perf_counter() - t_bank:.0f} s)", flush=True)
        la_add_end = _loadavg()

    # Flat distractors get no derivative fingerprint: top up to the bank size asked
    # for (a second random stream, so a cached bank is extended, not changed).
    top_up = np.random.default_rng([args.seed, 7, 1])
    n = sum(1 for b in bank_names if b.startswith("distractor-"))
    while len(index) < args.bank_size:
        img, kind = distractor(tune, top_up)
        if bank_add(f"distractor-x{n}", img):
            kinds[kind] += 1
            cache_stale = True
        n += 1
    if cache is not None and (not cache.exists() or cache_stale):
        _save_bank(
            cache, index, pdq_bank, ph_bank, bank_names, skipped, add_times, kinds, args.swap_halves
        )
    print(f"bank: {len(index)}; derivative add {np.mean(add_times) * 1000:.1f} ms/photo")

    queries: list[tuple[str, str, bool]] = []  # (photo, kind:rep, registered)
    for p in registered:
        if p.name not in skipped:
            queries += [(p.name, f"{kind}:{j}", True) for j in range(args.per_photo)
                        for kind in suite.KINDS]  # fmt: skip
    hold_names = [p.name for p in held]
    j = 0
    while len(queries) < args.queries:  # further edits of every held-out photo
        name = hold_names[j % len(hold_names)]
        kind = suite.KINDS[(j // len(hold_names)) % len(suite.KINDS)]
        queries.append((name, f"{kind}:x{j}", name not in strangers and name not in skipped))
        j += 1
    _STATE.update(
        seed=args.seed, strangers=strangers, originals=originals, index=index, k=args.k,
        bank_names=bank_names, bank_pos={n: i for i, n in enumerate(bank_names)},
        pdq=np.stack(pdq_bank), phash=np.stack(ph_bank),
    )  # fmt: skip
    if args.timing_only:
        timed = [q for q in queries if q[2]][: args.timed]
        return {"mode": "timing", "bank_size": len(index), "scaling": _scaling(args, index, timed)}
    _run_query(queries[0])  # compile and warm up before forking
    t_all = time.perf_counter()
    la_q = _loadavg()
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(args.workers) as pool:
        recs = []
        for i, rec in enumerate(pool.imap(_run_query, queries, chunksize=16)):
            recs.append(rec)
            if (i + 1) % 500 == 0:
                print(f"  queries {i + 1}/{len(queries)}", flush=True)
    la_end = _loadavg()
    query_seconds = time.perf_counter() - t_all

    recall: dict[str, Counter[str]] = defaultdict(Counter)
    fm: Counter[str] = Counter()
    fm_examples = []
    for rec in recs:
        wrong = [r for r in rec["results"] if r[0] != rec["name"]]
        fm["derivative"] += int(bool(wrong))
        fm["pdq"] += int(rec["pdq_wrong"])
        fm["phash"] += int(rec["phash_wrong"])
        if not rec["registered"]:
            fm["unrelated_queries"] += 1
            fm["unrelated_derivative"] += int(bool(wrong))
        if wrong and len(fm_examples) < 20:
            fm_examples.append({"query": f"{rec['name']}/{rec['tag']}", "matched": wrong[0]})
        if rec["registered"] and not rec["tag"].split(":")[1].startswith("x"):
            r = recall[rec["kind"]]
            top = rec["results"][0][0] if rec["results"] else None
            r["n"] += 1
            r["derivative"] += int(top == rec["name"])
            r["retrieved"] += int(rec["retrieved"])
            r["pdq"] += int(rec["pdq_own"] <= 31)
            r["phash"] += int(rec["phash_own"] <= PHASH_THRESHOLD)
    total: Counter[str] = Counter()
    for kind in suite.FILLS:
        total.update(recall[kind])
    diag = [r for r in recs if "own_rank" in r]
    ranks = [r["own_rank"] for r in diag if r["own_inliers"] >= 6]
    retrieval = {
        "doctored_copies": len(diag),
        "verifiable": len(ranks),
        "own_first": sum(1 for x in ranks if x == 0),
        **{f"own_in_top_{k}": sum(1 for x in ranks if x is not None and x < k)
           for k in (5, 10, 20)},
        "inlier_pairs": sum(r["inlier_pairs"] for r in diag),
        "same_word": sum(r["same_word"] for r in diag),
        "same_word_of_two": sum(r["same_word_of_two"] for r in diag),
        "voting": sum(r["voting"] for r in diag),
    }  # fmt: skip
    doctored = [
        r for r in recs
        if r["registered"] and r["kind"] != "repost" and not r["tag"].split(":")[1].startswith("x")
    ]  # fmt: skip
    found = {id(r) for r in doctored if r["results"] and r["results"][0][0] == r["name"]}
    misses = [
        {"query": f"{r['name']}/{r['tag']}", "replaced": r["replaced"], "retrieved": r["retrieved"]}
        for r in doctored
        if id(r) not in found
    ]
    # the threat is a photo of a person: recall on the photos with people apart
    people = {p.name for p in photos.photo_paths(tag="people")}
    by_group: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in doctored:
        group = by_group["people" if rec["name"] in people else "other"]
        group["n"] += 1
        group["derivative"] += int(id(rec) in found)
    nq = len(recs)
    res: dict[str, Any] = {
        "mode": "evaluate",
        "halves": "swapped: tune photos registered" if args.swap_halves else "held-out registered",
        "seed": args.seed,
        "heldout_registered": len(registered) - len(skipped),
        "strangers": strangers,
        "skipped_too_little_detail": skipped,
        "bank_size": len(index),
        "distractor_kinds": dict(kinds),
        "queries": nq,
        "workers": args.workers,
        "recall": {k: dict(v) for k, v in recall.items()} | {"doctored": dict(total)},
        "doctored_by_group": {k: dict(v) for k, v in sorted(by_group.items())},
        "doctored_misses": misses,
        "doctored_misses_by_photo": dict(
            Counter(r["name"] for r in doctored if id(r) not in found).most_common()
        ),
        "retrieval": retrieval,
        "false_matches": dict(fm),
        "false_match_examples": fm_examples,
        "false_match_upper_95": {
            k: (3 / nq if fm[k] == 0 else None) for k in ("derivative", "pdq", "phash")
        },
        "query_seconds": round(query_seconds, 1),
        "loadavg_bank": [la_add, la_add_end],
        "loadavg_queries": [la_q, la_end],
        "add_ms_mean": round(1000 * float(np.mean(add_times)), 2),
        "fingerprint_bytes": {"mean": round(float(np.mean(sizes)), 1), "max": int(np.max(sizes))},
    }
    res["scaling"] = _scaling(args, index, [q for q in queries if q[2]][: args.timed])
    return res


def _suspect_case(seed: int, name: str, tag: str) -> suite.Case:
    """The suspect of one query ``(name, "kind:rep")``: the same on every run."""
    r = suite.rng_for(seed, "query", name, tag)
    donors = [n for n in _STATE["strangers"] if n != name]
    donor = _STATE["originals"][donors[int(r.integers(len(donors)))]]
    return suite.make_case(_STATE["originals"][name], donor, tag.split(":")[0], r)


#: What a lookup spends its time on: (stage, the profiled function, its file).
_STAGES: list[tuple[str, str, str]] = [
    ("decode", "load_rgb", "imageio.py"),
    ("suspect features (all)", "suspect_features", "derivative.py"),
    ("  SIFT: detect and describe", "detectAndCompute", "~"),
    ("  caption bands", "edge_bands", "derivative.py"),
    ("word assignment", "assign_words", "derivative_index.py"),
    ("vote", "_vote", "derivative_index.py"),
    ("shortlist", "_best", "derivative_index.py"),
    ("re-ranking", "_rerank", "derivative_index.py"),
    ("verification", "verify_derivative", "derivative.py"),
    ("whole lookup", "search", "derivative_index.py"),
]


def _profile(
    args: argparse.Namespace, index: DerivativeIndex, suspects: list[bytes]
) -> dict[str, float]:
    """Mean milliseconds per lookup spent in each stage (cumulative, cProfile)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    for jpeg in suspects:
        prof.enable()
        index.search(load_rgb(jpeg, name="suspect"), k=args.k)
        prof.disable()
    stats: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for stage, func, file in _STAGES:
        # A built-in's "file" is "~" and its name "<method 'name' of ...>"; a
        # compiled function of the same name as its Python caller (numba's
        # _vote) is listed too, inside its caller's time: the larger is taken.
        cum = max(
            (
                v[3]
                for (f, _, fn), v in stats.items()
                if f.endswith(file) and (fn == func or f"'{func}'" in fn)
            ),
            default=0.0,
        )
        out[stage] = round(1000 * cum / len(suspects), 2)
    return out


def _ms_of(seconds: np.ndarray) -> dict[str, Any]:
    """How many lookups, their mean and longest time in ms (None when there are none)."""
    if not len(seconds):
        return {"suspects": 0, "mean": None, "max": None}
    ms = 1000 * seconds
    return {
        "suspects": len(ms),
        "mean": round(float(ms.mean()), 1),
        "max": round(float(ms.max()), 1),
    }


def _scaling(
    args: argparse.Namespace, index: DerivativeIndex, queries: list[tuple[str, str, bool]]
) -> dict[str, Any]:
    """One process, one core: whole-lookup time and memory at 1k, 10k and 100k photos."""
    keys = [k for k in index._keys if k in index]
    fps = {k: index._fps[index._pos[k]] for k in keys}
    regs = [k for k in keys if not str(k).startswith("distractor-")]
    rng = np.random.default_rng([args.seed, 11])
    pool_fps = [fps[k] for k in keys]
    pool = {
        "desc": np.concatenate([f.descriptors for f in pool_fps]),
        "sizes": np.concatenate([f.sizes for f in pool_fps]),
        "angles": np.concatenate([f.angles for f in pool_fps]),
    }
    suspects = [_suspect_case(args.seed, name, tag).jpeg for name, tag, _ in queries]
    # which suspects retrieval gives more effort (few features), counted untimed
    small = np.array(
        [len(dv.suspect_features(load_rgb(j, name="suspect"))) < SMALL_SUSPECT for j in suspects],
        bool,
    )
    out: dict[str, Any] = {}
    for size in args.scale:
        rss0 = _rss_mib()
        sub = DerivativeIndex()
        t = time.perf_counter()
        for k in regs:
            sub.add(k, fps[k])
        real = [k for k in keys if k not in set(regs)]
        for k in real[: max(0, size - len(regs))]:
            sub.add(k, fps[k])
        synth = 0
        while len(sub) < size:
            sub.add(f"synthetic-{synth}", _synthetic(pool, rng))
            synth += 1
        sub._build()
        build_s = time.perf_counter() - t
        la0 = _loadavg()
        lat, found = [], 0
        for (name, _, _), jpeg in zip(queries, suspects, strict=True):
            t0 = time.perf_counter()
            res = sub.search(load_rgb(jpeg, name="suspect"), k=args.k)
            lat.append(time.perf_counter() - t0)
            found += int(bool(res) and res[0][0] == name)
        out[str(size)] = {
            "photos": len(sub),
            "synthetic": synth,
            "build_s": round(build_s, 1),
            "lookup_ms": {
                "mean": round(1000 * float(np.mean(lat)), 1),
                "p50": round(1000 * float(np.percentile(lat, 50)), 1),
                "p95": round(1000 * float(np.percentile(lat, 95)), 1),
            },
            "lookup_ms_by_features": {
                f"under {SMALL_SUSPECT}": _ms_of(np.array(lat)[small]),
                f"at least {SMALL_SUSPECT}": _ms_of(np.array(lat)[~small]),
            },
            "top1_right": f"{found}/{len(queries)}",
            "index_bytes": sub.memory_bytes,
            "rss_growth_mib": round(_rss_mib() - rss0, 1),
            "loadavg": [la0, _loadavg()],
        }
        if args.profile:  # a second pass over the same suspects, not in the times above
            out[str(size)]["stages_ms"] = _profile(args, sub, suspects)
        print(f"  scale {size}: {out[str(size)]}", flush=True)
        sub.close()
        del sub
    return out


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
        "--bank-size", type=int, default=10_000, help="top the bank up to at least this many"
    )
    parser.add_argument(
        "--queries", type=int, default=10_000, help="total queries (recall ones included)"
    )
    parser.add_argument("-k", type=int, default=TOP_K, help="candidates verified per query")
    parser.add_argument(
        "--bank-cache", type=Path, help="save the built bank here, or load it if the file exists"
    )
    parser.add_argument(
        "--timing-only", action="store_true", help="only the timing curve (with --bank-cache)"
    )
    parser.add_argument(
        "--workers", type=int, default=2, help="query processes (recall, false matches)"
    )
    parser.add_argument(
        "--timed", type=int, default=300, help="queries timed per bank size (one process)"
    )
    parser.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[1000, 10_000, 100_000],
        help="bank sizes of the timing curve (real entries first, then synthetic)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="also profile the timed lookups by stage (a second, untimed pass)",
    )
    parser.add_argument(
        "--swap-halves",
        action="store_true",
        help="register and query the tune photos, with distractors made from the held-out "
        "ones: a check of retrieval settings that looks at no held-out result "
        "(give it its own --bank-cache)",
    )
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    if args.swap_halves and args.calibrate:
        parser.error("--swap-halves is for the default mode, not --calibrate")
    limit_blas_threads()
    res = calibrate(args) if args.calibrate else evaluate(args)
    text = json.dumps(res, indent=1, default=str)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
