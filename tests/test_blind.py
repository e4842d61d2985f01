"""Weak blind signals: exact JPEG quality, double compression, ELA and noise maps.

Real sample photos from scikit-image with benign edits made in code.
"""

from __future__ import annotations

import contextlib
import doctest
import io
import json
import random

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

import takeback.examine.blind as blind
from takeback.errors import (
    CorruptImageError,
    ImageError,
    ImageTooLargeError,
    ImageTooSmallError,
    TakeBackError,
)
from takeback.examine.blind import (
    BLIND_LABEL,
    BLIND_SCHEMA,
    DOUBLE_COMPRESSION_LABEL,
    DOUBLE_COMPRESSION_THRESHOLD,
    BlindSignals,
    DoubleCompression,
    blind_signals,
    double_compression,
    error_level_map,
    ijg_table,
    jpeg_quality,
    noise_residual_map,
)
from takeback.imageio import ImageLimits, load_rgb

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
QUALITIES = tuple(range(50, 101, 5))


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return {name: getattr(data, name)() for name in PHOTOS}


def pil_jpeg(rgb: np.ndarray, quality: int | None, **kwargs: object) -> bytes:
    """Save with Pillow; ``quality=None`` with ``qtables=`` for custom tables."""
    if quality is not None:
        kwargs["quality"] = quality
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def cv_jpeg(rgb: np.ndarray, quality: int, *params: int) -> bytes:
    image = rgb[..., ::-1] if rgb.ndim == 3 else rgb
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality, *params])
    assert ok
    return encoded.tobytes()


def decode(jpeg: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(jpeg)) as img:
        return np.asarray(img.convert("RGB"))


def png(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, "PNG")
    return buf.getvalue()


# --- jpeg_quality -------------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOS)
def test_quality_is_exact_for_pillow_and_opencv(photos: dict[str, np.ndarray], name: str) -> None:
    rgb = photos[name]
    for q in QUALITIES:
        for encoder, jpeg in (("pillow", pil_jpeg(rgb, q)), ("opencv", cv_jpeg(rgb, q))):
            found = jpeg_quality(jpeg)
            assert found is not None
            assert (found.quality, found.chroma_quality, found.standard) == (q, q, True), encoder
            assert found.luma_error == 0.0
            assert found.luma_table == tuple(ijg_table(q).ravel().tolist())


def test_quality_is_exact_at_every_ijg_quality(photos: dict[str, np.ndarray]) -> None:
    small = photos["chelsea"][:64, :64]
    for q in range(1, 101):
        found = jpeg_quality(pil_jpeg(small, q))
        assert found is not None and (found.quality, found.standard) == (q, True)
        assert found.chroma_quality == q


def test_ijg_tables_are_distinct_per_quality() -> None:
    tables = {tuple(ijg_table(q).ravel()) for q in range(1, 101)}
    assert len(tables) == 100
    assert ijg_table(50).tolist() == blind.IJG_LUMA_TABLE.tolist()
    assert (ijg_table(100) == 1).all()
    with pytest.raises(ValueError):
        ijg_table(0)


def test_subsampling_progressive_and_grey(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["coffee"]
    for subsampling, label in ((0, "4:4:4"), (1, "4:2:2"), (2, "4:2:0")):
        found = jpeg_quality(pil_jpeg(rgb, 85, subsampling=subsampling))
        assert found is not None and found.subsampling == label and found.components == 3
    found = jpeg_quality(pil_jpeg(rgb, 85, progressive=True))
    assert found is not None and found.progressive and found.quality == 85
    found = jpeg_quality(pil_jpeg(rgb, 85))
    assert found is not None and found.progressive is False
    found = jpeg_quality(
        cv_jpeg(
            rgb,
            70,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR,
            cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
        )
    )
    assert found is not None and (found.quality, found.subsampling) == (70, "4:4:4")
    found = jpeg_quality(cv_jpeg(rgb[..., 1], 65, cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    assert found is not None
    assert (found.quality, found.chroma_quality, found.subsampling) == (65, None, "4:0:0")
    assert found.progressive and found.components == 1 and found.standard


def test_custom_tables_are_not_standard(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["rocket"]
    # A camera-like table: IJG quality 80 made 20% finer in the high frequencies.
    luma = ijg_table(80).astype(float)
    luma[4:, 4:] *= 0.8
    tables = [np.clip(np.rint(luma), 1, 255).astype(int).ravel().tolist(), [9] * 64]
    found = jpeg_quality(pil_jpeg(rgb, None, qtables=tables))
    assert found is not None
    assert not found.standard
    assert found.luma_error > 0
    assert 78 <= found.quality <= 86
    # A flat custom table is still answered with the nearest IJG quality.
    found = jpeg_quality(pil_jpeg(rgb, None, qtables=[[7] * 64, [9] * 64]))
    assert found is not None and not found.standard and 1 <= found.quality <= 100
    # Standard tables passed explicitly are recognised as such.
    exact = [ijg_table(70).ravel().tolist(), ijg_table(70, blind.IJG_CHROMA_TABLE).ravel().tolist()]
    found = jpeg_quality(pil_jpeg(rgb, None, qtables=exact))
    assert found is not None and (found.quality, found.standard) == (70, True)


def test_quality_of_cmyk_jpeg(photos: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    Image.fromarray(photos["astronaut"]).convert("CMYK").save(buf, "JPEG", quality=80)
    found = jpeg_quality(buf.getvalue())
    assert found is not None and found.components == 4 and found.quality == 80
    assert double_compression(buf.getvalue()) is None


def test_non_jpeg_gives_none(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["chelsea"]
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "WEBP", quality=80)
    png16 = png(rgb[..., 0].astype(np.uint16) * 257)
    with Image.open(io.BytesIO(png16)) as img:
        assert img.mode.startswith("I")  # really a 16-bit PNG
    for not_jpeg in (png(rgb), png16, buf.getvalue(), b"", b"\xff\xd8", b"hello" * 100):
        assert jpeg_quality(not_jpeg) is None
        assert double_compression(not_jpeg) is None


def test_truncated_jpeg(photos: dict[str, np.ndarray]) -> None:
    jpeg = pil_jpeg(photos["coffee"], 80)
    for cut in (3, 20, 100, 300):  # inside the header: tables or frame missing
        with pytest.raises(CorruptImageError):
            jpeg_quality(jpeg[:cut])
        with pytest.raises(CorruptImageError):
            double_compression(jpeg[:cut])
    half = jpeg[: len(jpeg) // 2]  # header complete, scan cut
    found = jpeg_quality(half)
    assert found is not None and found.quality == 80
    with pytest.raises(CorruptImageError):
        double_compression(half)
    # Pixels not on the file's grid (here a crop) make it decode the file itself.
    signals = blind_signals(half, photos["coffee"][:200])
    assert signals.jpeg is not None and signals.double_compression is None
    assert any("Double compression was not estimated" in note for note in signals.notes)
    signals = blind_signals(jpeg[:100], photos["coffee"])
    assert signals.jpeg is None
    assert any("JPEG signals were not estimated" in note for note in signals.notes)


def test_damaged_bytes_raise_only_takeback_errors(photos: dict[str, np.ndarray]) -> None:
    jpeg = pil_jpeg(photos["astronaut"][:96, :96], 85)
    rng = random.Random(1234)
    for _ in range(150):
        damaged = bytearray(jpeg)
        for _ in range(rng.randint(1, 6)):
            damaged[rng.randrange(2, len(damaged))] = rng.randrange(256)
        damaged = damaged[: rng.randint(2, len(damaged))]
        for function in (jpeg_quality, double_compression):
            with contextlib.suppress(TakeBackError):
                function(bytes(damaged))


def test_zero_quantization_step(photos: dict[str, np.ndarray]) -> None:
    damaged = bytearray(pil_jpeg(photos["coffee"], 80))
    dqt = damaged.find(b"\xff\xdb")
    damaged[dqt + 6] = 0  # the step of mode (0, 1), first AC in zig-zag order
    found = jpeg_quality(bytes(damaged))
    assert found is not None and not found.standard
    with pytest.raises(CorruptImageError):
        double_compression(bytes(damaged))


def test_pixel_limit_and_bomb(photos: dict[str, np.ndarray]) -> None:
    jpeg = pil_jpeg(photos["coffee"], 80)
    with pytest.raises(ImageTooLargeError):
        double_compression(jpeg, limits=ImageLimits(max_pixels=100 * 100))
    # A frame header declaring 60000 x 60000 pixels.
    bomb = bytearray(jpeg)
    sof = bomb.find(b"\xff\xc0")
    bomb[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") * 2
    with pytest.raises(ImageTooLargeError):
        jpeg_quality(bytes(bomb))


# --- double_compression -------------------------------------------------------------


@pytest.mark.parametrize("name", PHOTOS)
def test_double_compression_separates_once_from_twice(
    photos: dict[str, np.ndarray], name: str
) -> None:
    rgb = photos[name]
    once = double_compression(pil_jpeg(rgb, 90))
    twice = double_compression(pil_jpeg(decode(pil_jpeg(rgb, 60)), 90))
    assert once is not None and twice is not None
    assert once.score < DOUBLE_COMPRESSION_THRESHOLD <= twice.score
    assert not once.likely and once.primary_quality is None
    assert twice.likely and twice.primary_quality == 60
    assert twice.primary_quality_range is not None
    assert twice.primary_quality_range[0] <= 60 <= twice.primary_quality_range[1]
    assert twice.label == DOUBLE_COMPRESSION_LABEL == "weak signal"
    json.dumps(twice.to_dict())


def test_double_compression_with_opencv_and_grey(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["chelsea"]
    twice = double_compression(cv_jpeg(decode(cv_jpeg(rgb, 70)), 95))
    assert twice is not None and twice.likely and twice.primary_quality == 70
    grey = rgb[..., 0]
    once = double_compression(cv_jpeg(grey, 85))
    assert once is not None and not once.likely


def test_double_compression_needs_enough_blocks(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["coffee"]
    for side in (1, 8, 40, 64):
        assert double_compression(pil_jpeg(rgb[:side, :side], 90)) is None
    flat = pil_jpeg(np.full((256, 256, 3), 255, np.uint8), 90)  # saturated everywhere
    assert double_compression(flat) is None
    assert double_compression(pil_jpeg(rgb[:96, :96], 90)) is not None


# --- maps ---------------------------------------------------------------------------


def test_error_level_map_highlights_a_fresh_patch(photos: dict[str, np.ndarray]) -> None:
    """A patch never JPEG-compressed, pasted into a JPEG-decoded photo, stands out."""
    for name in PHOTOS:
        base = decode(pil_jpeg(photos[name], 75)).copy()
        other = photos["coffee" if name != "coffee" else "astronaut"]
        r, c = base.shape[0] // 4, base.shape[1] // 4
        base[r : r + 128, c : c + 128] = other[100:228, 100:228]
        ela = error_level_map(base, quality=75)
        assert ela.shape == base.shape[:2] and ela.dtype == np.float32
        assert float(ela.min()) >= 0.0 and float(ela.max()) <= 1.0
        inside = np.zeros(ela.shape, bool)
        inside[r : r + 128, c : c + 128] = True
        assert ela[inside].mean() > 2 * ela[~inside].mean(), name


def test_noise_residual_map_shows_a_smoothed_patch(photos: dict[str, np.ndarray]) -> None:
    for name in PHOTOS:
        edited = photos[name].copy()
        r, c = edited.shape[0] // 4, edited.shape[1] // 4
        patch = edited[r : r + 128, c : c + 128]
        edited[r : r + 128, c : c + 128] = cv2.GaussianBlur(patch, (0, 0), 2.0)
        noise = noise_residual_map(edited)
        assert noise.shape == edited.shape[:2] and noise.dtype == np.float32
        assert float(noise.min()) >= 0.0 and float(noise.max()) <= 1.0
        inside = np.zeros(noise.shape, bool)
        inside[r : r + 128, c : c + 128] = True
        assert np.median(noise[inside]) < 0.5 * np.median(noise[~inside]), name
        assert abs(float(np.median(noise)) - 0.5) < 0.02  # 0.5 is the typical level


def test_map_inputs(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["astronaut"]
    variants = (
        rgb,
        rgb[..., 0],
        rgb[..., :1],
        np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),  # RGBA
        rgb.astype(np.uint16) * 257,
        rgb / 255.0,
        np.full((10, 10), np.nan),
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 2000, 3), np.uint8),
    )
    for image in variants:
        for function in (error_level_map, noise_residual_map):
            out = function(image)
            assert out.shape == image.shape[:2] and out.dtype == np.float32
            assert np.isfinite(out).all() and out.min() >= 0 and out.max() <= 1
    np.testing.assert_array_equal(
        error_level_map(rgb.astype(np.uint16) * 257), error_level_map(rgb)
    )
    with pytest.raises(ImageTooSmallError):
        error_level_map(np.zeros((0, 5, 3), np.uint8))
    for bad in (
        np.zeros((5, 5, 5), np.uint8),
        np.zeros((4,), np.uint8),
        np.zeros((3, 3), np.int32),
    ):
        with pytest.raises(ImageError):
            noise_residual_map(bad)
    with pytest.raises(ValueError):
        error_level_map(rgb, quality=0)


# --- blind_signals ------------------------------------------------------------------


def test_blind_signals_json_shape(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["chelsea"]
    jpeg = pil_jpeg(decode(pil_jpeg(rgb, 60)), 90)
    signals = blind_signals(jpeg, decode(jpeg), name="chelsea.jpg")
    assert isinstance(signals, BlindSignals)
    doc = json.loads(json.dumps(signals.to_dict()))
    assert doc["schema"] == BLIND_SCHEMA
    assert doc["label"] == BLIND_LABEL == "weak supporting signal; never decides the verdict"
    assert doc["jpeg"]["quality"] == 90 and doc["jpeg"]["standard"] is True
    assert doc["double_compression"]["likely"] is True
    assert doc["double_compression"]["primary_quality"] == 60
    assert doc["double_compression"]["label"] == "weak signal"
    assert doc["maps"]["working_size"] == {"width": rgb.shape[1], "height": rgb.shape[0]}
    for key in ("error_level", "noise_residual"):
        stats = doc["maps"][key]
        assert {"mean", "p50", "p95", "p99", "low_share", "high_share", "scale"} <= set(stats)
        assert 0 <= stats["p50"] <= stats["p95"] <= stats["p99"] <= 1
        assert signals.maps[key].shape == rgb.shape[:2]
        assert signals.maps[key].dtype == np.float32
    assert doc["notes"] == []


def test_blind_signals_reuses_pixels_with_the_same_result(
    photos: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pixels decoded by takeback.imageio (upright) give exactly the standalone result."""
    rgb = photos["astronaut"][:, :400]
    twice = decode(pil_jpeg(rgb, 70))
    expected: dict[int, DoubleCompression] = {}
    files: dict[int, bytes] = {}
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        files[orientation] = pil_jpeg(twice, 90, exif=exif.tobytes())
        result = double_compression(files[orientation])
        assert result is not None and result.likely
        expected[orientation] = result

    def no_second_decode(*args: object) -> np.ndarray:
        raise AssertionError("blind_signals decoded the file again")

    monkeypatch.setattr(blind, "_decode", no_second_decode)
    for orientation, jpeg in files.items():
        pixels = load_rgb(jpeg)
        upright = (512, 400) if orientation < 5 else (400, 512)
        assert pixels.shape[:2] == upright
        signals = blind_signals(jpeg, pixels)
        assert signals.double_compression == expected[orientation], orientation
        assert signals.maps["error_level"].shape == upright


def test_blind_signals_downscales_and_scales_back(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["coffee"]  # 400 x 600
    full = blind_signals(pil_jpeg(rgb, 85), rgb)
    small = blind_signals(pil_jpeg(rgb, 85), rgb, max_side=250)
    assert small.working_size == (200, 133)  # shrunk 3x
    for key in ("error_level", "noise_residual"):
        assert small.maps[key].shape == rgb.shape[:2]
        assert small.maps[key].min() >= 0 and small.maps[key].max() <= 1
    assert any("scaled up" in note for note in small.notes)
    assert full.working_size == (600, 400) and not full.notes
    # The maps agree roughly with full resolution: same picture, less detail.
    for key in ("noise_residual",):
        a = cv2.GaussianBlur(full.maps[key], (0, 0), 6)
        b = cv2.GaussianBlur(small.maps[key], (0, 0), 6)
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.5
    with pytest.raises(ValueError):
        blind_signals(b"", rgb, max_side=4)


def test_blind_signals_on_other_inputs(photos: dict[str, np.ndarray]) -> None:
    rgb = photos["rocket"]
    signals = blind_signals(png(rgb), rgb)
    assert signals.jpeg is None and signals.double_compression is None
    assert any("not a JPEG" in note for note in signals.notes)
    png16 = png(rgb[..., 0].astype(np.uint16) * 257)
    signals = blind_signals(png16, rgb[..., 0].astype(np.uint16) * 257)
    assert signals.maps["error_level"].shape == rgb.shape[:2]
    tiny = rgb[:7, :5]
    signals = blind_signals(pil_jpeg(tiny, 80), tiny)
    assert signals.jpeg is not None and signals.jpeg.quality == 80
    assert signals.double_compression is None
    assert signals.maps["noise_residual"].shape == (7, 5)
    custom = pil_jpeg(rgb, None, qtables=[[7] * 64, [9] * 64])
    signals = blind_signals(custom, decode(custom))
    assert signals.jpeg is not None and not signals.jpeg.standard
    assert any("custom quantization tables" in note for note in signals.notes)
    json.dumps(signals.to_dict())
    with pytest.raises(ImageError):
        blind_signals(png(rgb), np.zeros((4, 4, 7), np.uint8))


def test_docstring_examples_run() -> None:
    result = doctest.testmod(blind, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 10 and result.failed == 0
