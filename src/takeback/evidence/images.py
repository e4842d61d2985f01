"""The pictures of a report: side by side, aligned overlay, heatmap, thumbnails, redaction.

Arrays follow scikit-image conventions: images are ``(M, N, 3)`` uint8 RGB,
masks ``(M, N)`` bool in the suspect's pixel grid, coordinates ``(row, col)``.

Redaction (:func:`redact`) pixelates, then blurs: each block of the region is
replaced by its mean colour and the blocks are smoothed together, so the detail
is gone from the file, not hidden under a layer. It is applied to every picture
that shows the suspect (views and thumbnails), never to the evidentiary copies.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image

from ..examine.model import Examination, ExamineVerdict

__all__ = [
    "REDACT_BLOCKS",
    "ReportImages",
    "encode_jpeg",
    "encode_png",
    "fit",
    "heatmap_view",
    "overlay_view",
    "redact",
    "redaction_policy",
    "resize_mask",
    "side_by_side",
]

#: A redacted region is cut into blocks of 1/``REDACT_BLOCKS`` of the image's long side.
REDACT_BLOCKS = 32
#: The region is widened by this share of the long side, so its edges are covered too.
REDACT_MARGIN = 0.015
_JPEG_QUALITY = 88
_GAP = 12  # pixels between the two halves of the side-by-side picture
_ALTERED_RGB = (230, 30, 30)


def redaction_policy(examination: Examination, redact: bool) -> str:
    """Which part of the suspect the report pictures blur.

    ``"region"``
        The verdict is ``derived`` and there is a non-empty mask: blur the
        altered region (where the synthesized content is) and show the rest.
    ``"whole"``
        Redaction is on but there is no usable mask (no original, ``inconclusive``,
        ``not_derived``, ``identical``): the suspect's content is unknown or may
        be intimate, so the whole suspect is blurred.
    ``"none"``
        ``redact=False``.

    Examples
    --------
    >>> from takeback.examine import Examination, ExamineVerdict
    >>> redaction_policy(Examination(ExamineVerdict.INCONCLUSIVE, 0.0), True)
    'whole'
    """
    if not redact:
        return "none"
    mask = examination.mask
    if examination.verdict is ExamineVerdict.DERIVED and mask is not None and bool(mask.any()):
        return "region"
    return "whole"


def fit(image: np.ndarray, max_side: int) -> np.ndarray:
    """Downscale ``image`` so its longer side is at most ``max_side`` (never upscale).

    Parameters
    ----------
    image : (M, N[, C]) array
    max_side : int

    Returns
    -------
    (m, n[, C]) array of the same dtype.

    Examples
    --------
    >>> fit(np.zeros((100, 400, 3), np.uint8), 200).shape
    (50, 200, 3)
    """
    rows, cols = image.shape[:2]
    scale = max_side / max(rows, cols)
    if scale >= 1:
        return image
    size = (max(1, round(cols * scale)), max(1, round(rows * scale)))
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA))


def resize_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Resize a bool mask to ``shape``; a pixel is set if any part of it was set.

    Conservative on purpose: a redaction must never shrink.
    """
    if mask.shape == shape:
        return mask.astype(bool, copy=False)
    # 0/255 bytes: a pixel with even 1/255 of its area set stays set after averaging.
    scaled = mask.astype(bool, copy=False).view(np.uint8) * np.uint8(255)
    resized = cv2.resize(scaled, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)
    return np.asarray(resized > 0)


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    if radius < 1:
        return mask
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    return np.asarray(cv2.dilate(mask.astype(np.uint8), kernel) > 0)


def redact(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Pixelate and blur ``mask`` (widened a little), or the whole image.

    Parameters
    ----------
    image : (M, N, 3) uint8 array
    mask : (M, N) bool array, optional
        The region to hide; ``None`` hides everything.

    Returns
    -------
    (M, N, 3) uint8 array
        A new image; outside the widened mask it equals ``image``.

    Examples
    --------
    >>> img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    >>> out = redact(img)
    >>> out.shape, bool(np.abs(out.astype(int) - img).mean() > 20)
    ((64, 64, 3), True)
    """
    rows, cols = image.shape[:2]
    long_side = max(rows, cols)
    block = max(4, round(long_side / REDACT_BLOCKS))
    # Pixelate: one mean colour per block (the detail is gone from here on) ...
    small = cv2.resize(
        image,
        (max(1, -(-cols // block)), max(1, -(-rows // block))),
        interpolation=cv2.INTER_AREA,
    )
    # ... then blur: smooth the blocks into each other and back to full size.
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=0.8, sigmaY=0.8)
    hidden = np.asarray(cv2.resize(small, (cols, rows), interpolation=cv2.INTER_LINEAR))
    if mask is None:
        return hidden
    region = _dilate(mask, max(2, round(long_side * REDACT_MARGIN)))
    out = image.copy()
    out[region] = hidden[region]
    return out


def side_by_side(left: np.ndarray, right: np.ndarray, max_side: int) -> np.ndarray:
    """Two images at the same height, next to each other on white, fitting ``max_side``.

    Returns
    -------
    (m, n, 3) uint8 array with ``max(m, n) <= max_side``.
    """
    (h1, w1), (h2, w2) = left.shape[:2], right.shape[:2]
    height = min(h1, h2, max_side, (max_side - _GAP) / (w1 / h1 + w2 / h2))
    height = max(1, int(height))
    parts = []
    for img, (h, w) in ((left, (h1, w1)), (right, (h2, w2))):
        size = (max(1, round(w * height / h)), height)
        parts.append(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    canvas = np.full((height, parts[0].shape[1] + _GAP + parts[1].shape[1], 3), 255, np.uint8)
    canvas[:, : parts[0].shape[1]] = parts[0]
    canvas[:, parts[0].shape[1] + _GAP :] = parts[1]
    return canvas


def overlay_view(
    suspect: np.ndarray,
    mask: np.ndarray | None,
    compared: np.ndarray | None,
    regions: list[tuple[int, int, int, int]],
    scale: float,
) -> np.ndarray:
    """The (already redacted) suspect with the altered area tinted and outlined.

    Parameters
    ----------
    suspect : (M, N, 3) uint8 array
        At report size.
    mask, compared : (M, N) bool arrays or None
        At report size. Areas outside ``compared`` (borders, captions) are greyed.
    regions : list of (x, y, width, height)
        Region boxes in full-resolution suspect pixels, numbered 1, 2, ... in
        the picture as in the region table.
    scale : float
        Report size / full size.
    """
    out = suspect.astype(np.float32)
    if compared is not None:
        grey = out.mean(axis=2, keepdims=True) * 0.5 + 100
        out = np.where(compared[..., None], out, grey)
    if mask is not None:
        tint = np.array(_ALTERED_RGB, np.float32)
        out[mask] = out[mask] * 0.55 + tint * 0.45
    view = np.clip(out, 0, 255).astype(np.uint8)
    thickness = max(2, round(max(view.shape[:2]) / 500))
    if mask is not None and mask.any():
        contours, _ = cv2.findContours(
            mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
        )
        cv2.drawContours(view, contours, -1, (255, 220, 0), thickness)
    font_scale = max(0.5, max(view.shape[:2]) / 1200)
    for number, (x, y, w, h) in enumerate(regions, 1):
        p1 = (round(x * scale), round(y * scale))
        p2 = (round((x + w) * scale), round((y + h) * scale))
        cv2.rectangle(view, p1, p2, (255, 255, 255), thickness)
        origin = (p1[0] + 2 * thickness, p1[1] + round(28 * font_scale) + thickness)
        cv2.putText(
            view,
            str(number),
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (0, 0, 0),
            thickness + 2,
            cv2.LINE_AA,
        )
        cv2.putText(
            view,
            str(number),
            origin,
            cv2.FONT_HERSHEY_SIMPLEX,
            font_scale,
            (255, 255, 255),
            thickness,
            cv2.LINE_AA,
        )
    return view


def heatmap_view(heatmap: np.ndarray, base: np.ndarray | None) -> np.ndarray:
    """Change strength in colour (inferno: dark = unchanged, yellow = strong) over ``base``.

    Parameters
    ----------
    heatmap : (M, N) float array in 0-1
    base : (M, N, 3) uint8 array or None
        Shown in grey underneath (the aligned original: never the suspect).
    """
    heat = np.clip(np.nan_to_num(heatmap.astype(np.float32)), 0, 1)
    coloured = cv2.applyColorMap((heat * 255).astype(np.uint8), cv2.COLORMAP_INFERNO)
    coloured = cv2.cvtColor(coloured, cv2.COLOR_BGR2RGB).astype(np.float32)
    if base is None:
        return coloured.astype(np.uint8)
    grey = base.astype(np.float32).mean(axis=2, keepdims=True)
    alpha = 0.35 + 0.6 * heat[..., None]
    return np.clip(grey * (1 - alpha) + coloured * alpha, 0, 255).astype(np.uint8)


def encode_jpeg(image: np.ndarray) -> bytes:
    """JPEG bytes of an RGB uint8 image (quality 88, no metadata)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, "JPEG", quality=_JPEG_QUALITY)
    return buf.getvalue()


def encode_png(image: np.ndarray) -> bytes:
    """PNG bytes (fast compression): bool arrays as 1-bit, uint8 as grey or RGB."""
    if image.ndim == 3:  # OpenCV's encoder is the faster one for big colour images
        ok, buf = cv2.imencode(
            ".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1]
        )
        if ok:
            return bytes(buf)
    buf_io = io.BytesIO()
    Image.fromarray(image).save(buf_io, "PNG", compress_level=1)
    return buf_io.getvalue()


@dataclass
class ReportImages:
    """The encoded pictures of one report, by role (``None`` when not made).

    ``side_by_side``, ``overlay``, ``heatmap_view``, ``suspect_view`` (when there
    is no original), ``screenshot_view`` are JPEGs at most
    :data:`~takeback.evidence.model.REPORT_MAX_SIDE` px; the thumbnails at most
    :data:`~takeback.evidence.model.THUMB_MAX_SIDE`; ``mask``, ``heatmap`` and
    ``aligned_original`` full-resolution PNGs (directory packages only).
    """

    side_by_side: bytes | None = None
    overlay: bytes | None = None
    heatmap_view: bytes | None = None
    suspect_view: bytes | None = None
    screenshot_view: bytes | None = None
    suspect_thumbnail: bytes | None = None
    original_thumbnail: bytes | None = None
    mask: bytes | None = None
    heatmap: bytes | None = None
    aligned_original: bytes | None = None


def make_images(
    examination: Examination,
    suspect: np.ndarray,
    original: np.ndarray | None,
    screenshot: np.ndarray | None,
    *,
    policy: str,
    max_side: int,
    thumb_side: int,
    full_resolution: bool,
) -> ReportImages:
    """Build every picture of the report.

    Parameters
    ----------
    examination : Examination
        Its ``mask``, ``compared``, ``heatmap`` and ``aligned_original`` must be in
        ``suspect``'s grid (checked by the caller).
    suspect : (M, N, 3) uint8 array
        The suspect as examined, full resolution.
    original : (P, Q, 3) uint8 array or None
        The original in its own geometry (may already be reduced), for the
        side-by-side picture and its thumbnail.
    screenshot : array or None
        Only given when it may be shown (no redaction).
    policy : str
        From :func:`redaction_policy`.
    max_side, thumb_side : int
    full_resolution : bool
        Also encode the full-resolution mask, heatmap and aligned original.
    """
    out = ReportImages()
    view = fit(suspect, max_side)
    scale = view.shape[0] / suspect.shape[0]
    grid = view.shape[:2]
    mask = None if examination.mask is None else resize_mask(examination.mask, grid)
    compared = None if examination.compared is None else resize_mask(examination.compared, grid)
    if policy == "region" and mask is not None:
        shown = redact(view, mask)
    elif policy == "whole":
        shown = redact(view)
    else:
        shown = view
    original_shown = None
    if original is not None:
        original_shown = fit(original, max_side)
        if policy == "whole" and examination.verdict is ExamineVerdict.IDENTICAL:
            # The suspect *is* the original: blurring one and not the other hides nothing.
            original_shown = redact(original_shown)
        out.side_by_side = encode_jpeg(side_by_side(original_shown, shown, max_side))
        out.original_thumbnail = encode_jpeg(fit(original_shown, thumb_side))
    else:
        out.suspect_view = encode_jpeg(shown)
    out.suspect_thumbnail = encode_jpeg(fit(shown, thumb_side))
    if mask is not None and (examination.alignment is not None or mask.any()):
        boxes = [r.bbox for r in examination.regions]
        out.overlay = encode_jpeg(overlay_view(shown, mask, compared, boxes, scale))
    if examination.heatmap is not None:
        base = None
        if examination.aligned_original is not None:
            base = fit(examination.aligned_original, max_side)
        heat = cv2.resize(
            examination.heatmap.astype(np.float32),
            (grid[1], grid[0]),
            interpolation=cv2.INTER_AREA,
        )
        out.heatmap_view = encode_jpeg(heatmap_view(heat, base))
    if screenshot is not None:
        out.screenshot_view = encode_jpeg(fit(screenshot, max_side))
    if full_resolution:
        if examination.mask is not None:
            out.mask = encode_png(examination.mask.astype(bool))
        if examination.heatmap is not None:
            heat8 = np.clip(np.nan_to_num(examination.heatmap) * 255 + 0.5, 0, 255)
            out.heatmap = encode_png(heat8.astype(np.uint8))
        if examination.aligned_original is not None:
            out.aligned_original = encode_png(examination.aligned_original)
    return out
