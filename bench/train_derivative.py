#!/usr/bin/env python
"""Train the derivative fingerprint's model: a PCA of RootSIFT and a visual vocabulary.

The model is small data, not learned weights of a network: the mean and 32
principal axes of RootSIFT descriptors (how 128-number descriptors are
shortened to 32 bytes), the per-axis spread used to quantize them, and a
two-level k-means vocabulary (128 coarse x 128 fine words) used by the
retrieval index. It is trained on the **tune** half of the benchmark corpus
only (``bench/photos.py``), from features of the photos and of random crops,
turns and resizes of them, and written to
``src/takeback/fingerprint/derivative_model.npz`` (shipped in the package).

Usage: ``python bench/train_derivative.py [--out PATH] [--seed N]``. Deterministic
for a given corpus and seed (faiss k-means with a fixed seed, one thread).
``--coarse``, ``--fine`` and ``--variants`` try other vocabularies;
``--keep-projection MODEL`` retrains only the vocabulary, keeping MODEL's axes
(registered fingerprints store their descriptors on those axes, so a new
vocabulary needs the index rebuilt, not the bank).
"""

from __future__ import annotations

import argparse
import sys
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos  # noqa: E402

from takeback.fingerprint import derivative as dv  # noqa: E402
from takeback.imageio import load_rgb  # noqa: E402

DEFAULT_OUT = HERE.parent / "src" / "takeback" / "fingerprint" / "derivative_model.npz"
DIMS = 32
COARSE = 128
FINE = 128


def _variants(rgb: np.ndarray, rng: np.random.Generator, n: int = 3) -> list[np.ndarray]:
    """The photo and ``n`` random crops / turns / resizes of it."""
    out = [rgb]
    h, w = rgb.shape[:2]
    for _ in range(n):
        keep = rng.uniform(0.4, 0.9)
        cw, ch = int(w * np.sqrt(keep)), int(h * np.sqrt(keep))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = rgb[y : y + ch, x : x + cw]
        m = cv2.getRotationMatrix2D((cw / 2, ch / 2), float(rng.uniform(-15, 15)), 1.0)
        crop = cv2.warpAffine(crop, m, (cw, ch), borderMode=cv2.BORDER_REFLECT)
        s = rng.uniform(0.4, 1.0)
        out.append(cv2.resize(crop, (max(64, int(cw * s)), max(64, int(ch * s)))))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--coarse", type=int, default=COARSE, help="coarse words")
    p.add_argument("--fine", type=int, default=FINE, help="fine words under each coarse word")
    p.add_argument(
        "--variants", type=int, default=3, help="random crops / turns / resizes per photo"
    )
    p.add_argument(
        "--keep-projection",
        type=Path,
        metavar="MODEL",
        help="retrain the vocabulary only: keep this model's mean, axes and spread "
        "(registered fingerprints store descriptors on those axes)",
    )
    args = p.parse_args(argv)
    if min(args.coarse, args.fine) < 1 or args.variants < 0:
        p.error("--coarse and --fine must be at least 1, --variants at least 0")
    if args.keep_projection:
        try:
            with np.load(args.keep_projection) as z:
                kept = {k: z[k].astype(np.float64) for k in ("mean", "axes", "spread")}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            p.error(f"{args.keep_projection}: not a derivative model ({exc})")
        if kept["axes"].shape != (DIMS, 128) or kept["mean"].shape != (128,):
            p.error(f"{args.keep_projection}: axes {kept['axes'].shape}, expected {(DIMS, 128)}")
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    paths = photos.photo_paths(split="tune")
    t0 = time.perf_counter()
    descs = []
    for i, path in enumerate(paths):
        for img in _variants(load_rgb(path), rng, args.variants):
            grey, _ = dv._grey_working(img, dv.WORKING_SIZE)
            _, d = dv._sift(grey, dv.SUSPECT_FEATURES)
            descs.append(d)
        print(f"\r{i + 1}/{len(paths)} photos", end="", file=sys.stderr)
    x = np.concatenate(descs).astype(np.float64)
    print(f"\n{len(x):,} RootSIFT descriptors in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    if args.keep_projection:
        mean, axes, spread = kept["mean"], kept["axes"], kept["spread"]
        y = ((x - mean) @ axes.T).astype(np.float32)
    else:
        mean = x.mean(0)
        _, _, vt = np.linalg.svd(x - mean, full_matrices=False)
        axes = vt[:DIMS]
        y = ((x - mean) @ axes.T).astype(np.float32)
        spread = y.std(0)
    coarse_n, fine_n = args.coarse, args.fine
    km = faiss.Kmeans(DIMS, coarse_n, niter=25, seed=args.seed, verbose=False)
    km.train(y)
    coarse = km.centroids.copy()
    _, c1 = km.index.search(y, 1)
    fine = np.zeros((coarse_n, fine_n, DIMS), np.float32)
    for c in range(coarse_n):
        part = y[c1[:, 0] == c]
        if len(part) >= fine_n:
            k2 = faiss.Kmeans(DIMS, fine_n, niter=20, seed=args.seed + c, verbose=False)
            k2.train(part)
            fine[c] = k2.centroids
        else:  # too few points: repeat them with tiny offsets so every word exists
            reps = (
                part[rng.integers(0, max(1, len(part)), fine_n)]
                if len(part)
                else coarse[[c] * fine_n]
            )
            fine[c] = reps + rng.normal(0, 1e-4, reps.shape).astype(np.float32)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out,
        mean=mean.astype(np.float32),
        axes=axes.astype(np.float32),
        spread=spread.astype(np.float32),
        coarse=coarse.astype(np.float32),
        fine=fine.astype(np.float16),
        trained_on=np.array(
            f"{len(paths)} tune photos, {args.variants} variants each, {len(x)} descriptors, "
            f"seed {args.seed}, {coarse_n} x {fine_n} words"
            + (", projection kept" if args.keep_projection else "")
        ),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
