"""Plain helpers for tests: real photos in, benign edits made in code."""

from __future__ import annotations

import io
from pathlib import Path

import cv2
import numpy as np
from PIL import Image


def rgb(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def encode(img: Image.Image, fmt: str = "JPEG", **kwargs: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kwargs)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def doctored_copy(
    original: np.ndarray,
    donor: np.ndarray | None,
    *,
    replaced: float = 0.3,
    flip: bool = False,
    rotate: float = 0.0,
    crop: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    scale: float = 1.0,
    border: int = 0,
    quality: int = 85,
) -> tuple[bytes, np.ndarray]:
    """A benign doctored repost of ``original`` and its replaced region.

    A lower-central ellipse covering about ``replaced`` of the frame is filled
    with ``donor`` (another photo, colour-matched) or, when None, left as is (an
    untouched repost); then rotation (degrees, about the centre), a crop
    ``(left, top, right, bottom)`` in fractions, a mirror flip, a resize, a
    border and JPEG. Returns the JPEG bytes and the ``(M, N)`` bool mask of the
    replaced pixels in the suspect's grid.
    """
    img = original.astype(np.float32)
    h, w = img.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    rx = np.sqrt(replaced * w * h / (np.pi * 0.8))
    ry = rx * 0.8
    inside = ((xx - w / 2) / rx) ** 2 + ((yy - min(h - ry, 0.62 * h)) / ry) ** 2 <= 1
    alpha = np.zeros((h, w), np.float32)
    if donor is not None:
        fill = cv2.resize(donor, (w, h), interpolation=cv2.INTER_AREA).astype(np.float32)
        ring = cv2.dilate(inside.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
        ref = img[ring & ~inside]
        src = fill[inside]
        fill = (fill - src.mean(0)) * (ref.std(0) / (src.std(0) + 1e-3)) + ref.mean(0)
        alpha = cv2.GaussianBlur(inside.astype(np.float32), (0, 0), 3)
        img = img * (1 - alpha[..., None]) + fill * alpha[..., None]
    out = np.clip(img, 0, 255).astype(np.uint8)
    if rotate:
        m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), rotate, 1.0)
        out = cv2.warpAffine(out, m, (w, h), borderMode=cv2.BORDER_REFLECT)
        alpha = cv2.warpAffine(alpha, m, (w, h))
    left, top, right, bottom = crop
    box = (round(left * w), round(top * h), round(right * w), round(bottom * h))
    out = out[box[1] : box[3], box[0] : box[2]]
    alpha = alpha[box[1] : box[3], box[0] : box[2]]
    if flip:
        out, alpha = out[:, ::-1], alpha[:, ::-1]
    if scale != 1.0:
        size = (round(out.shape[1] * scale), round(out.shape[0] * scale))
        out = cv2.resize(np.ascontiguousarray(out), size, interpolation=cv2.INTER_AREA)
        alpha = cv2.resize(np.ascontiguousarray(alpha), size, interpolation=cv2.INTER_AREA)
    if border:
        out = cv2.copyMakeBorder(
            out, border, border, border, border, cv2.BORDER_CONSTANT, value=(250, 250, 250)
        )
        alpha = cv2.copyMakeBorder(
            alpha, border, border, border, border, cv2.BORDER_CONSTANT, value=0
        )
    return encode(Image.fromarray(np.ascontiguousarray(out)), quality=quality), alpha > 0.5
