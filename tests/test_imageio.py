"""The one way images come in: formats, odd modes, orientation, limits, hostile files."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from takeback.errors import (
    CorruptImageError,
    FileAccessError,
    ImageTooLargeError,
    ImageTooSmallError,
    NotAnImageError,
    TakeBackError,
)
from takeback.fingerprint import fingerprint_bytes, fingerprint_file
from takeback.imageio import PDQ_WORKING_SIZE, ImageLimits, load_rgb, open_image, pdq_pixels

from .helpers import encode, rgb


@pytest.fixture(scope="module")
def astronaut(photos: dict[str, Path]) -> Image.Image:
    return rgb(photos["astronaut.png"])


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height but carries one tiny IDAT."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("fmt", "kwargs"),
    [
        ("JPEG", {"quality": 90}),
        ("PNG", {}),
        ("WEBP", {"quality": 90}),
        ("TIFF", {}),
        ("BMP", {}),
        ("GIF", {}),
        ("HEIF", {"quality": 90}),
    ],
)
def test_every_supported_format_decodes_to_the_same_picture(
    astronaut: Image.Image, fmt: str, kwargs: dict
) -> None:
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    data = encode(astronaut, fmt, **kwargs)
    fp = fingerprint_bytes(data, name=f"astronaut.{fmt.lower()}")
    reference = fingerprint_bytes(encode(astronaut, "PNG"))
    assert (fp.width, fp.height) == (512, 512)
    # Lossy codecs and GIF's 256-colour palette move PDQ a little, never far.
    assert fp.pdq.distance(reference.pdq) <= 16, fmt


def test_exif_orientation_is_applied(astronaut: Image.Image) -> None:
    landscape = astronaut.resize((512, 320))
    upright = fingerprint_bytes(encode(landscape, "JPEG", quality=95))
    # Stored on its side, with EXIF orientation 6: "turn 90 degrees clockwise to view".
    stored = landscape.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    fp = fingerprint_bytes(encode(stored, "JPEG", quality=95, exif=exif.tobytes()))
    assert (fp.width, fp.height) == (512, 320)
    assert fp.pdq.distance(upright.pdq) <= 10


@pytest.mark.parametrize("mode", ["CMYK", "L", "P", "I;16", "LA", "RGBA", "P+transparency"])
def test_odd_modes_become_rgb(astronaut: Image.Image, mode: str) -> None:
    if mode == "I;16":
        grey = np.asarray(astronaut.convert("L"), dtype=np.uint16) * 257
        img = Image.fromarray(grey)
        fmt = "PNG"
    elif mode == "P+transparency":
        img = astronaut.convert("P")
        img.info["transparency"] = 0
        fmt = "PNG"
    else:
        img = astronaut.convert(mode)
        fmt = "JPEG" if mode == "CMYK" else "PNG"
    array = load_rgb(encode(img, fmt), name=f"astronaut-{mode}")
    assert array.shape == (512, 512, 3) and array.dtype == np.uint8
    if mode == "I;16":  # 16-bit must be scaled down, not clipped to white
        assert 60 < array.mean() < 200


def test_transparency_is_flattened_on_white() -> None:
    img = Image.new("RGBA", (100, 100), (255, 0, 0, 0))
    img.paste((0, 0, 255, 255), (0, 0, 50, 100))
    array = np.asarray(open_image(encode(img, "PNG")))
    assert tuple(array[50, 75]) == (255, 255, 255)  # transparent -> white
    assert tuple(array[50, 25]) == (0, 0, 255)


def test_gif_uses_the_first_frame() -> None:
    frames = [Image.new("RGB", (80, 80), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    array = np.asarray(open_image(buf.getvalue()))
    assert tuple(array[0, 0]) == (255, 0, 0)


def test_large_jpeg_is_draft_decoded_to_the_working_size(astronaut: Image.Image) -> None:
    big = astronaut.resize((4096, 3072))
    pixels, width, height = pdq_pixels(encode(big, "JPEG", quality=90))
    assert (width, height) == (4096, 3072)
    # 1/4 draft decode: the shorter side lands in [512, 1024).
    assert pixels.shape[:2] == (768, 1024)
    assert PDQ_WORKING_SIZE <= min(pixels.shape[:2]) < 2 * PDQ_WORKING_SIZE
    full = fingerprint_bytes(encode(big, "PNG"))
    assert fingerprint_bytes(encode(big, "JPEG", quality=90)).pdq.distance(full.pdq) <= 10


def test_empty_file_is_not_an_image() -> None:
    with pytest.raises(NotAnImageError, match="empty"):
        open_image(b"", name="empty.jpg")


def test_non_image_is_named_in_the_error(tmp_path: Path) -> None:
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels")
    with pytest.raises(NotAnImageError) as info:
        fingerprint_file(path)
    assert str(path) in info.value.message and info.value.path == str(path)


def test_truncated_jpeg_is_rejected(astronaut: Image.Image, tmp_path: Path) -> None:
    data = encode(astronaut, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=r"cut\.jpg"):
        fingerprint_file(path)


def test_png_declaring_ten_billion_pixels_is_refused_before_decoding() -> None:
    with pytest.raises(ImageTooLargeError, match=r"100,000x100,000|too many pixels"):
        open_image(_png_header_only(100_000, 100_000), name="bomb.png")


def test_pixel_limit_is_configurable(astronaut: Image.Image) -> None:
    limits = ImageLimits(max_pixels=200 * 200)
    with pytest.raises(ImageTooLargeError, match="512x512"):
        open_image(encode(astronaut, "PNG"), name="a.png", limits=limits)


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"\0" * 5000)
    with pytest.raises(ImageTooLargeError, match="5,000 bytes"):
        fingerprint_file(path, limits=ImageLimits(max_file_bytes=4096))


def test_tiny_image_is_refused_with_its_size() -> None:
    with pytest.raises(ImageTooSmallError, match="1x1 px"):
        open_image(encode(Image.new("RGB", (1, 1)), "PNG"), name="dot.png")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(FileAccessError, match="no such file"):
        fingerprint_file(tmp_path / "nope.jpg")
    with pytest.raises(FileAccessError, match="is a directory"):
        fingerprint_file(tmp_path)


def test_limits_from_environment_are_validated() -> None:
    assert ImageLimits.from_env({"TAKEBACK_MAX_FILE_BYTES": "1234"}).max_file_bytes == 1234
    with pytest.raises(ValueError, match="TAKEBACK_MAX_PIXELS"):
        ImageLimits.from_env({"TAKEBACK_MAX_PIXELS": "lots"})


@pytest.mark.parametrize(
    "junk",
    [
        b"\xff\xd8\xff\xe0" + b"\0" * 64,  # a JPEG marker and nothing else
        b"\x89PNG\r\n\x1a\n" + b"\xff" * 64,  # a PNG signature and garbage
        b"GIF89a" + b"\x00" * 10,
        b"RIFF\x10\x00\x00\x00WEBPVP8 ",
        b"\x00\x00\x00\x18ftypheic" + b"\x00" * 40,
        b"II*\x00" + b"\xff" * 40,
        bytes(range(256)) * 4,
    ],
)
def test_hostile_bytes_only_raise_takeback_errors(junk: bytes) -> None:
    with pytest.raises(TakeBackError):
        fingerprint_bytes(junk, name="junk")


def test_truncated_files_stay_rejected_after_the_report_writer_is_loaded(
    astronaut: Image.Image, tmp_path: Path
) -> None:
    """WeasyPrint flips Pillow's global LOAD_TRUNCATED_IMAGES when imported."""
    from takeback.evidence.pdf import _weasyprint

    _weasyprint()
    data = encode(astronaut, "JPEG", quality=90)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptImageError, match=r"cut\.jpg"):
        fingerprint_file(path)
