#!/usr/bin/env python
"""The doctored-copy edit suite: benign body-region replacements and reposting transforms.

Every case starts from a real photo of the corpus (``bench/photos.py``). A
*doctored* case replaces a body-shaped region (a union of ellipses in the
lower-central part of the frame: torso, hips, two legs, two arms; 25-55% of the
frame; feathered edges) with one of three benign fills:

``donor``
    another photo's content, colour-matched (mean and spread per Lab channel) to
    a ring of surrounding pixels;
``skin``
    a smooth skin-tone-like fill: a flat tone from a fixed palette, a soft
    vertical shading and mild noise, its lightness matched to the surroundings;
``inpaint``
    classical inpainting (``cv2.inpaint``, TELEA or NS) of the region.

No body, nudity or sexual content is generated anywhere: the fills are other
photos, flat colour and diffusion of the surrounding pixels.

Then reposting transforms are drawn at random: rotation 3-9 degrees with the
largest inner crop of the same aspect, a crop keeping 55-92% of the area,
horizontal flip, a 45-95% resize, a border, a caption bar with text, gamma, and
JPEG 55-90. A *repost* case applies only the reposting transforms.

Each case records the original, the edit parameters, the true transform (a 3x3
matrix from the original's full-resolution pixel coordinates ``(x, y, 1)`` to
the suspect's, pixel centres at integers) and whether it mirrors, and the
replaced region as a boolean mask in the suspect's pixel grid.

Usage
-----
``python bench/suite.py build [--out DIR] [--seed N] [--per-photo N] [--split heldout]``
    Write ``DIR/cases.jsonl`` and, per case, ``<id>.jpg`` (the suspect) and
    ``<id>-mask.png`` (the replaced region, 255 = replaced). Default
    ``bench/data/suite`` (git-ignored).

Other scripts import :func:`make_case` and :data:`KINDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

HERE: Final = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import photos  # noqa: E402

#: Replacement fills; ``repost`` applies reposting transforms only.
FILLS: Final = ("donor", "skin", "inpaint")
KINDS: Final = (*FILLS, "repost")
#: Longest side the doctoring works at (apps work at 512-1024 px); larger
#: originals are first resized, and the resize is part of the recorded transform.
EDIT_SIZE: Final = 1024
DEFAULT_OUT: Final = HERE / "data" / "suite"

_SKIN_TONES: Final = (
    (224, 172, 140),
    (198, 134, 102),
    (241, 194, 164),
    (141, 85, 54),
    (176, 120, 88),
)


@dataclass
class Case:
    """One generated suspect."""

    image: np.ndarray  # (M, N, 3) uint8 RGB, before the final JPEG
    jpeg: bytes
    mask: np.ndarray  # (M, N) bool, replaced region in the suspect grid
    matrix: np.ndarray  # (3, 3) original -> suspect
    mirrored: bool
    kind: str
    params: dict[str, Any] = field(default_factory=dict)


def _translate(tx: float, ty: float) -> np.ndarray:
    return np.array([[1.0, 0, tx], [0, 1.0, ty], [0, 0, 1.0]])


def _scale_matrix(sx: float, sy: float) -> np.ndarray:
    # cv2.resize maps pixel centres: x' = (x + 0.5) * s - 0.5
    return np.array([[sx, 0, 0.5 * sx - 0.5], [0, sy, 0.5 * sy - 0.5], [0, 0, 1.0]])


def _body_mask(h: int, w: int, target: float, rng: np.random.Generator) -> np.ndarray:
    """A body-shaped union of ellipses covering about ``target`` of the frame (float 0/1)."""
    cx = w * rng.uniform(0.42, 0.58)
    parts = [  # (dx, dy, rx, ry) in units of a body scale u, relative to the torso centre
        (0.0, 0.0, 0.55, 0.75),  # torso
        (0.0, 0.65, 0.6, 0.45),  # hips
        (-0.28, 1.35, 0.24, 0.8),  # legs
        (0.28, 1.35, 0.24, 0.8),
        (-0.7, 0.1, 0.18, 0.65),  # arms
        (0.7, 0.1, 0.18, 0.65),
    ]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)

    def render(u: float) -> np.ndarray:
        cy = h - 1.1 * u
        cy = max(cy, h * 0.45)
        m = np.zeros((h, w), bool)
        for dx, dy, rx, ry in parts:
            m |= ((xx - (cx + dx * u)) / (rx * u)) ** 2 + (
                (yy - (cy + dy * u)) / (ry * u)
            ) ** 2 <= 1
        return m

    lo, hi = 0.05 * min(h, w), 2.0 * max(h, w)
    for _ in range(18):
        mid = (lo + hi) / 2
        if render(mid).mean() < target:
            lo = mid
        else:
            hi = mid
    return render(hi).astype(np.float32)


def _lab_match(fill: np.ndarray, ref_pixels: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Match mean and spread per Lab channel of ``fill`` inside ``region`` to ``ref_pixels``."""
    lab = cv2.cvtColor(fill, cv2.COLOR_RGB2LAB).astype(np.float32)
    ref = (
        cv2.cvtColor(ref_pixels.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB)
        .astype(np.float32)
        .reshape(-1, 3)
    )
    src = lab[region]
    for c in range(3):
        lab[..., c] = (lab[..., c] - src[:, c].mean()) * (
            ref[:, c].std() / (src[:, c].std() + 1e-3)
        ) + ref[:, c].mean()
    return cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def _replace(
    img: np.ndarray, donor: np.ndarray | None, fill: str, target: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Replace a body-shaped region; returns the edit, the feathered alpha and parameters."""
    h, w = img.shape[:2]
    hard = _body_mask(h, w, target, rng)
    region = hard > 0.5
    feather = max(3.0, 0.012 * max(h, w)) * rng.uniform(0.7, 1.5)
    alpha = cv2.GaussianBlur(hard, (0, 0), feather)
    ring = (
        cv2.dilate(region.astype(np.uint8), np.ones((31, 31), np.uint8), iterations=2).astype(bool)
        & ~region
    )
    ref = img[ring] if ring.any() else img.reshape(-1, 3)
    params: dict[str, Any] = {
        "fill": fill,
        "target_fraction": round(target, 4),
        "feather_px": round(feather, 2),
    }
    if fill == "donor":
        if donor is None:
            raise ValueError("the donor fill needs a donor photo")
        dn = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA)
        out = _lab_match(dn, ref, region)
    elif fill == "skin":
        tone = np.array(_SKIN_TONES[int(rng.integers(len(_SKIN_TONES)))], np.float32)
        shade = np.linspace(1.06, 0.9, h, dtype=np.float32)[:, None, None]
        out_f = np.broadcast_to(tone, (h, w, 3)) * shade
        noise = cv2.GaussianBlur(rng.normal(0, 3, (h, w)).astype(np.float32), (0, 0), 1.5)
        out_f = out_f + noise[..., None]
        # keep the tone and its smoothness; pull only its mean lightness halfway to the surroundings
        lab = cv2.cvtColor(np.clip(out_f, 0, 255).astype(np.uint8), cv2.COLOR_RGB2LAB).astype(
            np.float32
        )
        ref_l = (
            cv2.cvtColor(ref.reshape(-1, 1, 3), cv2.COLOR_RGB2LAB)[..., 0].astype(np.float32).mean()
        )
        lab[..., 0] += (ref_l - lab[..., 0][region].mean()) / 2
        out = cv2.cvtColor(np.clip(lab, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        params["tone"] = tone.astype(int).tolist()
    elif fill == "inpaint":
        method = ("telea", cv2.INPAINT_TELEA) if rng.random() < 0.5 else ("ns", cv2.INPAINT_NS)
        s = min(1.0, 256 / max(h, w))  # inpaint at low resolution (bounded time), upsample the fill
        small = cv2.resize(
            img, (max(8, round(w * s)), max(8, round(h * s))), interpolation=cv2.INTER_AREA
        )
        sm = cv2.resize(
            region.astype(np.uint8), small.shape[1::-1], interpolation=cv2.INTER_NEAREST
        )
        filled = cv2.inpaint(small, sm, 5, method[1])
        out = cv2.resize(filled, (w, h), interpolation=cv2.INTER_CUBIC)
        params["inpaint"] = method[0]
    else:
        raise ValueError(f"unknown fill {fill!r}")
    a = alpha[..., None]
    edited = np.clip(img.astype(np.float32) * (1 - a) + out.astype(np.float32) * a, 0, 255).astype(
        np.uint8
    )
    params["replaced_fraction"] = round(float(region.mean()), 4)
    return edited, alpha, params


def _warp(
    img: np.ndarray, mask: np.ndarray, a: np.ndarray, size: tuple[int, int], border: int
) -> tuple[np.ndarray, np.ndarray]:
    flags = cv2.INTER_LINEAR
    out = cv2.warpAffine(img, a[:2], size, flags=flags, borderMode=border)
    m = cv2.warpAffine(
        mask, a[:2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return out, m


def _repost(
    img: np.ndarray,
    mask: np.ndarray,
    matrix: np.ndarray,
    rng: np.random.Generator,
    params: dict[str, Any],
) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, int]:
    """Apply random reposting transforms; returns image, mask, matrix, mirrored, JPEG quality."""
    mirrored = False
    h, w = img.shape[:2]
    if rng.random() < 0.5:  # rotation with the largest inner crop of the same aspect
        deg = float(rng.uniform(3, 9)) * (1 if rng.random() < 0.5 else -1)
        t = np.deg2rad(abs(deg))
        f = min(w / (w * np.cos(t) + h * np.sin(t)), h / (w * np.sin(t) + h * np.cos(t)))
        nw, nh = int(w * f), int(h * f)
        r = np.vstack([cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), deg, 1.0), [0, 0, 1]])
        a = _translate(-(w - nw) / 2, -(h - nh) / 2) @ r
        img, mask = _warp(img, mask, a, (nw, nh), cv2.BORDER_REFLECT)
        matrix = a @ matrix
        h, w = nh, nw
        params["rotate_deg"] = round(deg, 3)
    if rng.random() < 0.8:  # crop keeping 55-92% of the area
        keep = float(rng.uniform(0.55, 0.92))
        aspect = float(rng.uniform(0.8, 1.25))
        cw = int(min(w, round(w * np.sqrt(keep) * aspect)))
        ch = int(min(h, round(keep * w * h / cw)))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        img, mask = img[top : top + ch, left : left + cw], mask[top : top + ch, left : left + cw]
        matrix = _translate(-left, -top) @ matrix
        h, w = ch, cw
        params["crop"] = {
            "left": left,
            "top": top,
            "width": cw,
            "height": ch,
            "kept_area": round(keep, 4),
        }
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
        matrix = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]]) @ matrix
        mirrored = True
        params["flip"] = True
    s = float(rng.uniform(0.45, 0.95))
    nw, nh = max(64, round(w * s)), max(64, round(h * s))
    img = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_AREA)
    mask = cv2.resize(np.ascontiguousarray(mask), (nw, nh), interpolation=cv2.INTER_AREA)
    matrix = _scale_matrix(nw / w, nh / h) @ matrix
    h, w = nh, nw
    params["resize"] = round(s, 4)
    if rng.random() < 0.3:
        b = int(rng.integers(max(2, w // 50), max(3, w // 12)))
        colour = [int(v) for v in rng.integers(0, 256, 3)]
        img = cv2.copyMakeBorder(img, b, b, b, b, cv2.BORDER_CONSTANT, value=colour)
        mask = cv2.copyMakeBorder(mask, b, b, b, b, cv2.BORDER_CONSTANT, value=0)
        matrix = _translate(b, b) @ matrix
        h, w = img.shape[:2]
        params["border_px"] = b
    if rng.random() < 0.3:
        bar = int(h * rng.uniform(0.08, 0.14))
        top = bool(rng.random() < 0.5)
        canvas = np.full((h + bar, w, 3), 20 if rng.random() < 0.5 else 235, np.uint8)
        canvas_mask = np.zeros((h + bar, w), mask.dtype)
        y0 = bar if top else 0
        canvas[y0 : y0 + h], canvas_mask[y0 : y0 + h] = img, mask
        ink = (255, 255, 255) if canvas[0 if top else -1, 0, 0] < 128 else (0, 0, 0)
        text = "".join(chr(int(c)) for c in rng.integers(97, 123, 12))
        ty = (bar * 2) // 3 if top else h + (bar * 2) // 3
        cv2.putText(
            canvas,
            f"@{text} #repost",
            (max(2, w // 30), ty),
            cv2.FONT_HERSHEY_SIMPLEX,
            bar / 40,
            ink,
            max(1, bar // 20),
        )
        img, mask = canvas, canvas_mask
        if top:
            matrix = _translate(0, bar) @ matrix
        h = h + bar
        params["caption"] = {"height": bar, "top": top}
    if rng.random() < 0.5:
        g = float(rng.uniform(0.75, 1.35))
        lut = np.clip(255 * (np.arange(256) / 255) ** g + 0.5, 0, 255).astype(np.uint8)
        img = lut[img]
        params["gamma"] = round(g, 3)
    q = int(rng.integers(55, 91))
    params["jpeg_quality"] = q
    return np.ascontiguousarray(img), mask, matrix, mirrored, q


def make_case(
    original: np.ndarray,
    donor: np.ndarray | None,
    kind: str,
    rng: np.random.Generator,
) -> Case:
    """Make one suspect from an original.

    Parameters
    ----------
    original : (M, N, 3) uint8 array
        The original photo, full resolution.
    donor : (P, Q, 3) uint8 array or None
        Another photo (needed by the ``donor`` fill).
    kind : str
        One of :data:`KINDS`.
    rng : numpy.random.Generator
        The only source of randomness.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    img = np.ascontiguousarray(original[..., :3])
    h, w = img.shape[:2]
    matrix = np.eye(3)
    params: dict[str, Any] = {"kind": kind}
    if max(h, w) > EDIT_SIZE:
        s = EDIT_SIZE / max(h, w)
        nw, nh = round(w * s), round(h * s)
        img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA)
        matrix = _scale_matrix(nw / w, nh / h) @ matrix
        params["edit_size"] = [nw, nh]
    if kind == "repost":
        alpha = np.zeros(img.shape[:2], np.float32)
    else:
        img, alpha, fill_params = _replace(img, donor, kind, float(rng.uniform(0.25, 0.55)), rng)
        params.update(fill_params)
    img, alpha, matrix, mirrored, q = _repost(img, alpha, matrix, rng, params)
    ok, enc = cv2.imencode(
        ".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, q]
    )
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    jpeg = enc.tobytes()
    decoded = cv2.cvtColor(cv2.imdecode(enc, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    mask = alpha > 0.5
    params["replaced_in_suspect"] = round(float(mask.mean()), 4)
    return Case(decoded, jpeg, mask, matrix, mirrored, kind, params)


def rng_for(seed: int, *parts: str | int) -> np.random.Generator:
    """A generator fixed by the seed and names (independent of run order)."""
    key = [seed] + [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(key)


def build(out: Path, *, seed: int, per_photo: int, split: str | None) -> int:
    """Write the suite for one split; returns the number of cases."""
    from takeback.imageio import load_rgb

    paths = photos.photo_paths(split=split)
    if not paths:
        raise SystemExit("no photos: run `python bench/photos.py fetch` first")
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    with open(out / "cases.jsonl", "w", encoding="utf-8") as log:
        for i, path in enumerate(paths):
            original = load_rgb(path)
            for j in range(per_photo):
                for kind in KINDS:
                    rng = rng_for(seed, path.name, j, kind)
                    donor_path = paths[(i + 1 + int(rng.integers(len(paths) - 1))) % len(paths)]
                    donor = load_rgb(donor_path) if kind == "donor" else None
                    case = make_case(original, donor, kind, rng)
                    cid = f"{Path(path.name).stem}-{kind}-{j}"
                    (out / f"{cid}.jpg").write_bytes(case.jpeg)
                    cv2.imwrite(str(out / f"{cid}-mask.png"), case.mask.astype(np.uint8) * 255)
                    record = {
                        "id": cid,
                        "original": path.name,
                        "split": photos.split_of(path.name),
                        "kind": kind,
                        "donor": donor_path.name if kind == "donor" else None,
                        "suspect": f"{cid}.jpg",
                        "mask": f"{cid}-mask.png",
                        "matrix": np.round(case.matrix, 8).tolist(),
                        "mirrored": case.mirrored,
                        "size": [int(case.image.shape[1]), int(case.image.shape[0])],
                        "params": case.params,
                        "seed": seed,
                    }
                    log.write(json.dumps(record) + "\n")
                    n += 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="write the suite")
    b.add_argument("--out", type=Path, default=DEFAULT_OUT)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--per-photo", type=int, default=1, help="cases per photo and kind")
    b.add_argument("--split", choices=photos.SPLITS, default=None)
    args = parser.parse_args(argv)
    n = build(args.out, seed=args.seed, per_photo=args.per_photo, split=args.split)
    print(f"{n} cases in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
