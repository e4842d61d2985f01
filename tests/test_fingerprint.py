"""Fingerprint value types and PDQ behaviour on real photos."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from takeback.errors import InvalidHashError
from takeback.fingerprint import (
    DIHEDRAL_VARIANTS,
    PDQ_MATCH_THRESHOLD,
    PdqHash,
    fingerprint_bytes,
    fingerprint_file,
    pdq_from_pixels,
)
from takeback.imageio import pdq_pixels

from .helpers import encode, rgb

hashes = st.binary(min_size=32, max_size=32).map(PdqHash)


@given(hashes)
def test_hex_round_trip(h: PdqHash) -> None:
    assert PdqHash.from_hex(str(h)) == h
    assert PdqHash.from_hex(str(h).upper()) == h
    assert str(h) == str(h).lower() and len(str(h)) == 64


@given(hashes, hashes, hashes)
def test_distance_is_a_metric(a: PdqHash, b: PdqHash, c: PdqHash) -> None:
    assert a.distance(a) == 0
    assert a.distance(b) == b.distance(a)
    assert a.distance(c) <= a.distance(b) + b.distance(c)
    assert a.distance(b) == bin(int(str(a), 16) ^ int(str(b), 16)).count("1")


@given(st.lists(st.integers(0, 1), min_size=256, max_size=256))
def test_bits_pack_most_significant_first(bits: list[int]) -> None:
    h = PdqHash.from_bits(np.array(bits))
    assert int(str(h), 16) == int("".join(map(str, bits)), 2)


@pytest.mark.parametrize("text", ["", "abc", "g" * 64, "0" * 63, "0" * 65, "0x" + "0" * 62])
def test_from_hex_rejects_malformed(text: str) -> None:
    with pytest.raises(InvalidHashError, match="64 hex digits"):
        PdqHash.from_hex(text)


def test_fingerprint_of_a_real_photo(photos: dict[str, Path]) -> None:
    fp = fingerprint_file(photos["astronaut.png"])
    assert (fp.width, fp.height) == (512, 512)
    assert fp.quality >= 50 and not fp.low_quality
    assert fp.variants == ()  # registration does not need them
    assert fingerprint_file(photos["astronaut.png"], variants=True).variants[0] == fp.pdq
    assert fp.to_dict().keys() == {"sha256", "md5", "pdq", "quality", "width", "height"}


DIHEDRAL_OPS = {
    "original": lambda a: a,
    "rotate90": lambda a: np.rot90(a, 1),
    "rotate180": lambda a: np.rot90(a, 2),
    "rotate270": lambda a: np.rot90(a, 3),
    "flip_vertical": lambda a: a[::-1],
    "flip_horizontal": lambda a: a[:, ::-1],
    "rotate90_flip_vertical": lambda a: a.transpose(1, 0, 2),
    "rotate90_flip_horizontal": lambda a: np.rot90(a, 2).transpose(1, 0, 2),
}


@pytest.mark.parametrize("name", ["astronaut.png", "chelsea.png", "rocket.jpg", "camera.png"])
def test_every_dihedral_variant_is_exact(photos: dict[str, Path], name: str) -> None:
    pixels = pdq_pixels(photos[name].read_bytes()).pixels
    variants, _ = pdq_from_pixels(pixels, dihedral=True)
    assert tuple(DIHEDRAL_OPS) == DIHEDRAL_VARIANTS
    for variant, op in zip(variants, DIHEDRAL_OPS.values(), strict=True):
        [plain], _ = pdq_from_pixels(np.ascontiguousarray(op(pixels)))
        assert variant == plain


def test_dihedral_variants_describe_flipped_copies(photos: dict[str, Path]) -> None:
    img = rgb(photos["chelsea.png"])
    original = fingerprint_bytes(encode(img, "PNG"))
    transforms = {
        "flip_horizontal": Image.Transpose.FLIP_LEFT_RIGHT,
        "flip_vertical": Image.Transpose.FLIP_TOP_BOTTOM,
        "rotate180": Image.Transpose.ROTATE_180,
    }
    for name, op in transforms.items():
        flipped = fingerprint_bytes(encode(img.transpose(op), "PNG"), variants=True)
        index = DIHEDRAL_VARIANTS.index(name)
        assert flipped.variants[index].distance(original.pdq) == 0, name
        assert flipped.pdq.distance(original.pdq) > PDQ_MATCH_THRESHOLD, name


def test_unrelated_real_photos_are_far_apart(
    photos: dict[str, Path], unrelated: dict[str, Path]
) -> None:
    fps = [fingerprint_file(p) for p in [*photos.values(), *unrelated.values()]]
    names = [*photos, *unrelated]
    for i in range(len(fps)):
        for j in range(i + 1, len(fps)):
            if {names[i], names[j]} == {"motorcycle_left.png", "motorcycle_right.png"}:
                continue  # a stereo pair: the same scene from two eyes
            assert fps[i].pdq.distance(fps[j].pdq) > 64, (names[i], names[j])


def test_blas_runs_on_one_thread_in_the_command_and_its_workers() -> None:
    # The command limits BLAS before any work; child processes inherit it.
    from threadpoolctl import threadpool_info

    from takeback.threads import limit_blas_threads

    assert limit_blas_threads() == 1
    assert os.environ["OPENBLAS_NUM_THREADS"] == "1"
    assert all(p["num_threads"] == 1 for p in threadpool_info() if p["user_api"] == "blas")
