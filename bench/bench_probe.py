#!/usr/bin/env python
"""Multi-probe runs of the derivative index, on the tune half: true votes kept
against postings scanned.

Each word's posting list is kept in runs by the first ``PROBE_BITS``
signature bits, and a lookup skips the runs that differ from the suspect
feature on a bit where it lies further than ``PROBE_MARGIN`` spreads from the
word's centre (``takeback.fingerprint.derivative_index``). This script
measures, for a grid of both settings, on the tune photos only
(``bench/photos.py``, split ``tune``):

* **true votes kept**: the inlier pairs of every doctored copy and repost that
  verification confirms against its own original (two edits per kind and
  photo, the calibration draws of ``bench_derivative.py --calibrate``) that
  vote without multi-probe (same word, one of the suspect feature's two,
  signatures within ``MAX_HAMMING`` bits), and the share of them that still
  vote;
* **postings scanned** and **chance votes**: every lookup of every suspect
  (as verified: its orientation, its two words) against an index of the tune
  originals, the share of the word's postings in the runs it scans, and the
  share of the postings of *other* photos that pass the Hamming test (the
  chance votes the vote then has to count).

The time the vote takes is measured by ``bench_derivative.py --timing-only``;
this script says what a setting costs in true votes. Example::

    python bench/bench_probe.py --out bench/out/probe.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import photos
from bench_derivative import popcount, register_all
from bench_features import make_cases

from takeback.fingerprint import derivative as dv
from takeback.fingerprint.derivative_index import MAX_HAMMING, assign_words

#: Most signature bits a run may be keyed on here (the offsets kept per lookup).
_MAX_BITS = 8


def _offsets(y: np.ndarray, words: np.ndarray, nearest: int) -> np.ndarray:
    """Each word's ``(L * nearest, 32)`` offsets from its centre, in axis spreads."""
    m = dv.model()
    nfine = m.fine.shape[1]
    rows = np.repeat(np.arange(len(y)), nearest)
    return (y[rows] - m.fine[words // nfine, words % nfine]) / m.spread


def _sure(off: np.ndarray, bits: int, margin: float) -> np.ndarray:
    """The sure bits of each lookup, as :func:`assign_words` sets them."""
    far = np.abs(off[:, :bits]) > margin
    return (far.astype(np.uint32) << np.arange(bits, dtype=np.uint32)).sum(1).astype(np.uint32)


def collect(originals: Sequence[np.ndarray], cases: Sequence[tuple]) -> dict[str, Any]:
    """True vote pairs, every lookup, and the postings each lookup's word holds."""
    fps, index = register_all(originals)
    index._build()
    pairs_off, pairs_xor = [], []  # a true vote: the suspect side's offsets, the signatures' XOR
    offs, sigs, words, owns = [], [], [], []  # every lookup
    for i, _kind, rgb in cases:
        fp = fps[i]
        if fp is None:
            continue
        feats = dv.suspect_features(rgb)
        reg = dv._registered(fp)
        match = dv.verify_derivative(feats, fp)
        o = int(match.mirrored)
        if match.inliers >= 6:
            src, dst = dv.tentative_matches(reg.desc, feats.descriptors[o])
            inl, _ = dv.consensus(reg.points[src], reg.sizes[src], reg.angles[src],
                                  feats.points[o][dst], feats.sizes[dst],
                                  feats.angles[o][dst])  # fmt: skip
            ry, sy = reg.desc[src[inl]], feats.descriptors[o][dst[inl]]
            rw, rs, _, _ = assign_words(ry)
            sw, ss, _, _ = assign_words(sy, 2)
            so = _offsets(sy, sw, 2).reshape(len(sy), 2, -1)[..., :_MAX_BITS]
            for a in range(2):
                xor = ss[a::2] ^ rs
                hit = (sw[a::2] == rw) & (popcount(xor) <= MAX_HAMMING)
                pairs_off.append(so[hit, a])
                pairs_xor.append(xor[hit])
        w, sg, _, _ = assign_words(feats.descriptors[o], 2)
        offs.append(_offsets(feats.descriptors[o], w, 2)[:, :_MAX_BITS])
        sigs.append(sg)
        words.append(w)
        owns.append(np.full(len(w), index._pos[i]))
    # each lookup against each posting of its word (the index's lists are by word)
    w = np.concatenate(words)
    starts = np.r_[0, np.cumsum(np.bincount(index._word, minlength=index._nwords))]
    lens = starts[w + 1] - starts[w]
    look = np.repeat(np.arange(len(w)), lens)
    first = np.repeat(np.cumsum(lens) - lens, lens)
    post = starts[w][look] + np.arange(int(lens.sum())) - first
    photo = (index._meta[post] & np.uint64(0xFFFFFFFF)).astype(np.int64)
    xor = index._sig[post] ^ np.concatenate(sigs)[look]
    return {
        "true_offsets": np.concatenate(pairs_off),
        "true_xor": np.concatenate(pairs_xor),
        "look": look,
        "xor": xor,
        "chance": (popcount(xor) <= MAX_HAMMING) & (photo != np.concatenate(owns)[look]),
        "offsets": np.concatenate(offs),
    }


def measure(data: dict[str, Any], bits: int, margin: float) -> dict[str, float]:
    """True votes kept, postings scanned and chance votes kept at one setting."""
    # a vote is lost, or a posting skipped, when the signatures differ on a sure bit
    lost = (data["true_xor"] & _sure(data["true_offsets"], bits, margin)) != 0
    sure = _sure(data["offsets"], bits, margin)[data["look"]]
    keep = (data["xor"] & sure) == 0
    chance = data["chance"]
    return {
        "probe_bits": bits,
        "margin": margin,
        "true_votes": len(lost),
        "true_votes_kept": round(1 - float(lost.mean()), 4),
        "postings_scanned": round(float(keep.mean()), 4),
        "chance_votes_kept": round(float((chance & keep).sum() / max(chance.sum(), 1)), 4),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bits", type=int, nargs="+", default=[4, 6, 8])
    parser.add_argument("--margins", type=float, nargs="+", default=[0.3, 0.4, 0.5])
    parser.add_argument("--per-photo", type=int, default=2, help="edits per kind per photo")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args(argv)
    if any(not 0 < b <= _MAX_BITS for b in args.bits) or any(m < 0 for m in args.margins):
        parser.error(f"--bits must be 1-{_MAX_BITS} and --margins non-negative")
    paths = photos.photo_paths(split="tune")
    if not paths:
        print("no photos found: run 'python bench/photos.py fetch' first", file=sys.stderr)
        return 2
    cv2.setNumThreads(1)
    print(f"making {args.per_photo} edits per kind of {len(paths)} tune photos", file=sys.stderr)
    originals, cases = make_cases(paths, args.per_photo)
    data = collect(originals, cases)
    rows = []
    for bits in args.bits:
        for margin in args.margins:
            r = measure(data, bits, margin)
            rows.append(r)
            print(
                f"bits {bits}, margin {margin}: true votes kept {r['true_votes_kept']:.3f} "
                f"of {r['true_votes']}, postings scanned {r['postings_scanned']:.3f}, "
                f"chance votes kept {r['chance_votes_kept']:.3f}",
                flush=True,
            )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"grid": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
