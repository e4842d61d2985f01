"""The exact Hamming-radius indexes: every fast path against the brute-force oracle.

Data: PDQ hashes of real photos (scikit-image samples) and of edits made in
code, a cluster of near-duplicates, random codes, and queries with neighbours
planted at exactly 0, 1, 30, 31, 32 and 33 bits.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance

from takeback.bank.index import (
    AUTO_MIH_MIN_ENTRIES,
    INDEX_KINDS,
    BruteForceIndex,
    MatchIndex,
    MihIndex,
    build_index,
)
from takeback.fingerprint.pdq import pdq_from_pixels
from takeback.fingerprint.types import PDQ_MATCH_THRESHOLD, PdqHash
from takeback.samples import SAMPLE_PHOTOS, UNREGISTERED_PHOTO, sample_photo

R = PDQ_MATCH_THRESHOLD
PLANTED = (0, 1, 30, 31, 32, 33)

#: Geometries exercised in tests: the default for large banks (words straddled
#: by substrings, 8 suffix bits here), dense substrings without a suffix, the
#: widest suffix, and substrings that leave bits uncovered.
GEOMETRIES = [
    pytest.param({"chunks": 11, "chunk_bits": 23, "bucket_bits": 15}, id="11x23/15"),
    pytest.param({"chunks": 16, "chunk_bits": 16, "bucket_bits": 16}, id="16x16/16"),
    pytest.param({"chunks": 8, "chunk_bits": 32, "bucket_bits": 16}, id="8x32/16"),
    pytest.param({"chunks": 12, "chunk_bits": 20, "bucket_bits": 14}, id="12x20/14"),
]


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------


def flip_bits(code: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """``code`` with exactly ``k`` distinct bits flipped."""
    bits = np.unpackbits(code)
    bits[rng.choice(bits.size, size=k, replace=False)] ^= 1
    return np.packbits(bits)


def distance(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.bitwise_count(np.bitwise_xor(a, b)).sum())


def _edits(img: Image.Image) -> Iterator[Image.Image]:
    """Benign edits of a photo: what reposting does to it."""
    w, h = img.size
    yield img
    yield img.crop((w // 40, h // 40, w - w // 40, h - h // 40))
    yield img.resize((w // 2, h // 2), Image.Resampling.BILINEAR)
    yield ImageEnhance.Brightness(img).enhance(1.2)
    yield img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=60)
    buf.seek(0)
    with Image.open(buf) as jpeg:
        yield jpeg.convert("RGB")


def real_pdq_codes() -> np.ndarray:
    """Dihedral PDQ hashes of real photos and of their edits, ``(k, 32)`` uint8."""
    rows = []
    for name in (*SAMPLE_PHOTOS, UNREGISTERED_PHOTO):
        with Image.open(sample_photo(name)) as opened:
            img = opened.convert("RGB")
        img.thumbnail((256, 256))
        for edited in _edits(img):
            hashes, _quality = pdq_from_pixels(np.asarray(edited), dihedral=True)
            rows.extend(h.to_array() for h in hashes)
    return np.stack(rows)


@pytest.fixture(scope="module")
def bank() -> tuple[np.ndarray, np.ndarray]:
    """~14k codes: real PDQ hashes, a skewed cluster, random codes; shuffled ids."""
    rng = np.random.default_rng(20261122)
    real = real_pdq_codes()
    center = real[0]
    cluster = np.stack([flip_bits(center, int(k), rng) for k in rng.integers(0, 12, 1500)])
    noise = rng.integers(0, 256, size=(12_000, 32), dtype=np.uint8)
    codes = np.concatenate([real, cluster, noise])
    ids = rng.permutation(codes.shape[0]).astype(np.int64) * 7 + 3  # sparse, unordered
    return ids, codes


@pytest.fixture(scope="module")
def queries(bank: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Real and random queries, plus queries with neighbours planted in the bank."""
    _ids, codes = bank
    rng = np.random.default_rng(7)
    near_real = np.stack([flip_bits(codes[i], int(rng.integers(0, 40)), rng) for i in range(60)])
    random = rng.integers(0, 256, size=(40, 32), dtype=np.uint8)
    return np.concatenate([codes[:40], near_real, random, codes[100:101]])


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[int, int]]:
    """Random codes plus, for each of 20 queries, one entry at each planted distance.

    Returns ids, codes, queries and ``{id: planted distance}``.
    """
    rng = np.random.default_rng(31)
    q = rng.integers(0, 256, size=(20, 32), dtype=np.uint8)
    rows, ids, dist_of = [], [], {}
    next_id = 1_000_000
    for query in q:
        for d in PLANTED:
            rows.append(flip_bits(query, d, rng))
            ids.append(next_id)
            dist_of[next_id] = d
            next_id += 1
    noise = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    codes = np.concatenate([np.stack(rows), noise])
    all_ids = np.concatenate([np.array(ids), np.arange(noise.shape[0])]).astype(np.int64)
    return all_ids, codes, q, dist_of


def assert_same(got: list, want: list) -> None:
    assert len(got) == len(want)
    for i, ((gi, gd), (wi, wd)) in enumerate(zip(got, want, strict=True)):
        assert gi.dtype == np.int64 and gd.dtype == np.int32, i
        np.testing.assert_array_equal(gi, wi, err_msg=f"query {i}: ids")
        np.testing.assert_array_equal(gd, wd, err_msg=f"query {i}: distances")


def mih(ids: np.ndarray, codes: np.ndarray, **options: object) -> MihIndex:
    options.setdefault("scan_fallback", False)  # small test banks would otherwise be scanned
    return MihIndex(ids, codes, **options)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# The oracle itself
# ---------------------------------------------------------------------------


def test_bruteforce_finds_planted_neighbours_exactly(planted) -> None:
    ids, codes, q, dist_of = planted
    with BruteForceIndex(ids, codes) as index:
        results = index.search(q, R)
    for qi, (found, dists) in enumerate(results):
        mine = {i: d for i, d in dist_of.items() if (i - 1_000_000) // len(PLANTED) == qi}
        want = sorted((d, i) for i, d in mine.items() if d <= R)
        got = [(int(d), int(i)) for i, d in zip(found, dists, strict=True) if i in mine]
        assert got == want
        for i, d in zip(found.tolist(), dists.tolist(), strict=True):
            assert distance(codes[np.flatnonzero(ids == i)[0]], q[qi]) == d <= R


def test_bruteforce_results_sorted_by_distance_then_id(bank, queries) -> None:
    ids, codes = bank
    with BruteForceIndex(ids, codes) as index:
        for found, dists in index.search(queries, 64):
            keys = list(zip(dists.tolist(), found.tolist(), strict=True))
            assert keys == sorted(keys)


# ---------------------------------------------------------------------------
# MIH against brute force
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("geometry", GEOMETRIES)
def test_mih_equals_bruteforce_on_planted_distances(planted, geometry) -> None:
    ids, codes, q, dist_of = planted
    want = BruteForceIndex(ids, codes).search(q, R)
    with mih(ids, codes, **geometry) as index:
        got = index.search(q, R)
    assert_same(got, want)
    found = {int(i) for f, _ in got for i in f if int(i) in dist_of}
    assert found == {i for i, d in dist_of.items() if d <= R}


@pytest.mark.parametrize("geometry", GEOMETRIES)
@pytest.mark.parametrize("radius", [0, 1, 8, 30, 31, 32, 33, 48])
def test_mih_equals_bruteforce_on_real_hashes(bank, queries, geometry, radius) -> None:
    ids, codes = bank
    want = BruteForceIndex(ids, codes).search(queries, radius)
    with mih(ids, codes, **geometry) as index:
        assert_same(index.search(queries, radius), want)


def test_mih_default_geometry_and_scan_fallback(bank, queries) -> None:
    ids, codes = bank
    oracle = BruteForceIndex(ids, codes)
    with MihIndex(ids, codes) as index:  # scan_fallback on: small bank, large radius
        assert index.geometry == (11, 23, 15)
        for radius in (0, R, 90, 256):
            assert_same(index.search(queries, radius), oracle.search(queries, radius))


def test_cluster_of_near_duplicates_is_returned_whole(bank) -> None:
    ids, codes = bank
    real = real_pdq_codes()
    with mih(ids, codes) as index:
        [(found, dists)] = index.search(real[0], R)
    [(want_ids, want_d)] = BruteForceIndex(ids, codes).search(real[0], R)
    assert found.size >= 1500
    np.testing.assert_array_equal(found, want_ids)
    np.testing.assert_array_equal(dists, want_d)


def test_batched_threads_equal_single_queries(bank, queries) -> None:
    ids, codes = bank
    with mih(ids, codes, threads=2) as index:
        batched = index.search(queries, R)
        single = [index.search(q, R)[0] for q in queries]
    assert_same(batched, single)


@pytest.mark.parametrize("kind", sorted(INDEX_KINDS))
def test_changes_removals_delta_and_compact(bank, queries, kind) -> None:
    ids, codes = bank
    rng = np.random.default_rng(99)
    options = {"scan_fallback": False, "delta_limit": 10_000} if kind == "mih" else {}
    index = INDEX_KINDS[kind](ids[:10_000], codes[:10_000], **options)
    oracle = BruteForceIndex(ids[:10_000], codes[:10_000])

    def check() -> None:
        assert len(index) == len(oracle)
        for radius in (0, R, 40):
            assert_same(index.search(queries, radius), oracle.search(queries, radius))

    # Removals, including ids that are absent or repeated.
    gone = rng.choice(ids[:10_000], size=800, replace=False)
    request = [*gone.tolist(), *gone[:5].tolist(), -1, 10**12]
    assert index.remove(request) == oracle.remove(request) == 800
    check()
    # Adds go to the delta: new ids, re-adds of removed ids, replacements of live ids.
    live = np.setdiff1d(ids[:10_000], gone)
    new_ids = np.concatenate([ids[10_000:11_000], gone[:100], live[:100]])
    new_codes = np.concatenate(
        [codes[10_000:11_000], codes[11_000:11_100], rng.integers(0, 256, (100, 32), np.uint8)]
    )
    index.add(new_ids, new_codes)
    oracle.add(new_ids, new_codes)
    check()
    # Replace an entry that is still in the delta, and remove some delta entries.
    index.add(ids[10_000:10_010], codes[:10])
    oracle.add(ids[10_000:10_010], codes[:10])
    assert index.remove(ids[10_005:10_020]) == oracle.remove(ids[10_005:10_020]) == 15
    check()
    # A removed code is never returned again, at any radius.
    everything = index.search(codes[:3], 256)
    for found, _ in everything:
        assert found.size == len(index)
        assert not np.isin(gone[100:], found).any()
    index.compact()
    check()
    if isinstance(index, MihIndex):
        assert index.pending == 0
    index.add(ids[11_000:11_050], codes[11_000:11_050])
    oracle.add(ids[11_000:11_050], codes[11_000:11_050])
    check()
    index.close()


def test_replacing_an_id_moves_it(planted) -> None:
    ids, codes, q, _ = planted
    with mih(ids, codes) as index:
        target = int(ids[0])  # planted at distance 0 from q[0]
        index.add(np.array([target]), q[1][None, :])
        [(found0, _)] = index.search(q[0], 0)
        [(found1, d1)] = index.search(q[1], 0)
        assert target not in found0.tolist()
        assert target in found1.tolist() and d1.tolist()[found1.tolist().index(target)] == 0
        assert len(index) == ids.shape[0]


def test_automatic_compaction_keeps_results(bank, queries) -> None:
    ids, codes = bank
    index = mih(ids[:5000], codes[:5000], delta_limit=64)
    oracle = BruteForceIndex(ids[:5000], codes[:5000])
    for start in range(5000, 5400, 50):  # 8 batches of 50: compacts every other batch
        index.add(ids[start : start + 50], codes[start : start + 50])
        oracle.add(ids[start : start + 50], codes[start : start + 50])
        assert index.pending < 64
    assert_same(index.search(queries, R), oracle.search(queries, R))
    index.close()


def test_failed_compaction_closes_rather_than_half_builds(planted, monkeypatch) -> None:
    ids, codes, q, _ = planted
    index = mih(ids, codes)
    index.add(np.array([-5]), q[:1])

    def out_of_memory(*args: object) -> None:
        raise MemoryError

    monkeypatch.setattr(index, "_set_main", out_of_memory)
    with pytest.raises(MemoryError):
        index.compact()
    with pytest.raises(ValueError, match="is closed"):
        index.search(q, R)


def test_duplicate_ids_in_one_add_keep_the_last() -> None:
    codes = np.zeros((3, 32), dtype=np.uint8)
    codes[1, 0] = 0xFF
    codes[2, 0] = 0x0F
    for cls in INDEX_KINDS.values():
        with cls(np.array([5, 5, 6]), codes) as index:
            assert len(index) == 2
            [(found, _)] = index.search(codes[1], 0)
            assert found.tolist() == [5]


def test_empty_index_and_empty_query_batch() -> None:
    empty_ids = np.zeros(0, dtype=np.int64)
    empty_codes = np.zeros((0, 32), dtype=np.uint8)
    for kind in INDEX_KINDS:
        with build_index(empty_ids, empty_codes, kind=kind) as index:
            assert len(index) == 0
            [(found, dists)] = index.search(np.zeros(32, dtype=np.uint8), R)
            assert found.dtype == np.int64 and dists.dtype == np.int32 and found.size == 0
            assert index.search(np.zeros((0, 32), dtype=np.uint8), R) == []
            assert index.remove([1, 2]) == 0


# ---------------------------------------------------------------------------
# Property: MIH equals brute force on small random sets, any radius 0..64
# ---------------------------------------------------------------------------

_SMALL_GEOMETRIES = [
    {"chunks": 11, "chunk_bits": 23, "bucket_bits": 15},
    {"chunks": 16, "chunk_bits": 16, "bucket_bits": 12},
    {"chunks": 21, "chunk_bits": 12, "bucket_bits": 8},
    {"chunks": 5, "chunk_bits": 30, "bucket_bits": 14},
]


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 300),
    radius=st.integers(0, 64),
    geometry=st.sampled_from(_SMALL_GEOMETRIES),
    clustered=st.booleans(),
)
def test_property_mih_equals_bruteforce(seed, n, radius, geometry, clustered) -> None:
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, 256, size=(n, 32), dtype=np.uint8)
    if clustered and n:
        # Many codes a few bits from a few centres: skewed buckets.
        centres = rng.integers(0, 256, size=(3, 32), dtype=np.uint8)
        for i in range(n):
            codes[i] = flip_bits(centres[i % 3], int(rng.integers(0, 40)), rng)
    ids = rng.choice(10 * n + 1, size=n, replace=False).astype(np.int64)
    q = rng.integers(0, 256, size=(6, 32), dtype=np.uint8)
    if n:
        q[:3] = [flip_bits(codes[rng.integers(n)], int(rng.integers(0, 70)), rng) for _ in range(3)]
    want = BruteForceIndex(ids, codes).search(q, radius)
    with MihIndex(ids, codes, scan_fallback=False, threads=1, **geometry) as index:
        assert_same(index.search(q, radius), want)


# ---------------------------------------------------------------------------
# The interface: build_index, validation, lifecycle
# ---------------------------------------------------------------------------


def test_build_index_auto_and_named_kinds(bank) -> None:
    ids, codes = bank
    assert ids.shape[0] < AUTO_MIH_MIN_ENTRIES
    assert build_index(ids, codes).name == "bruteforce"
    assert isinstance(build_index(ids, codes, kind="mih"), MihIndex)
    assert len({cls.name for cls in INDEX_KINDS.values()}) == len(INDEX_KINDS)
    assert all(issubclass(cls, MatchIndex) for cls in INDEX_KINDS.values())
    with pytest.raises(ValueError, match="unknown index kind 'faiss'; choose one of"):
        build_index(ids, codes, kind="faiss")


def test_codes_from_pdq_hash_round_trip() -> None:
    h = PdqHash.from_hex("f0" * 32)
    codes = h.to_array()[None, :]
    for cls in INDEX_KINDS.values():
        with cls(np.array([1]), codes) as index:
            [(found, dists)] = index.search(PdqHash.from_hex("f1" + "f0" * 31).to_array(), R)
            assert (found.tolist(), dists.tolist()) == ([1], [1])


@pytest.mark.parametrize("kind", sorted(INDEX_KINDS))
@pytest.mark.parametrize(
    ("ids", "codes", "message"),
    [
        (np.zeros((2, 1), np.int64), np.zeros((2, 32), np.uint8), "1-D array"),
        (np.array([1.5, 2.0]), np.zeros((2, 32), np.uint8), "must be integers"),
        (np.array([2**64 - 1], np.uint64), np.zeros((1, 32), np.uint8), "fit in int64"),
        (np.arange(2), np.zeros((2, 32), np.int64), "dtype uint8"),
        (np.arange(2), np.zeros((2, 31), np.uint8), r"shape \(n, 32\)"),
        (np.arange(3), np.zeros((2, 32), np.uint8), "3 ids but 2 codes"),
        (np.arange(2), [[0] * 32] * 2, "numpy uint8 array"),
    ],
)
def test_add_rejects_bad_input(kind, ids, codes, message) -> None:
    with INDEX_KINDS[kind]() as index, pytest.raises(ValueError, match=message):
        index.add(ids, codes)


@pytest.mark.parametrize("kind", sorted(INDEX_KINDS))
def test_search_and_remove_reject_bad_input(kind) -> None:
    with INDEX_KINDS[kind]() as index:
        ok = np.zeros((1, 32), np.uint8)
        for radius, message in [(-1, "from 0 to 256"), (257, "from 0 to 256"),
                                (True, "must be an int"), (31.0, "must be an int")]:  # fmt: skip
            with pytest.raises(ValueError, match=message):
                index.search(ok, radius)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="dtype uint8"):
            index.search(ok.astype(np.int64), R)
        with pytest.raises(ValueError, match=r"shape \(q, 32\)"):
            index.search(np.zeros((2, 16), np.uint8), R)
        with pytest.raises(ValueError, match="numpy uint8 array"):
            index.search(b"\x00" * 32, R)  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="must be integers"):
            index.remove([1, 2.5])  # type: ignore[list-item]
        assert_same(index.search(ok, np.int64(R)), index.search(ok[0], R))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunks": 11}, "together"),
        ({"chunks": 12, "chunk_bits": 22, "bucket_bits": 20}, "do not fit in 256 bits"),
        ({"chunks": 8, "chunk_bits": 32, "bucket_bits": 27}, "bucket_bits must be"),
        ({"chunks": 8, "chunk_bits": 32, "bucket_bits": 12}, "by 16 at most"),
        ({"chunks": 8, "chunk_bits": 32.0, "bucket_bits": 12}, "must be an int"),
        ({"threads": 0}, "threads must be"),
        ({"delta_limit": 0}, "delta_limit must be"),
    ],
)
def test_mih_rejects_bad_options(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        MihIndex(**options)


@pytest.mark.parametrize("kind", sorted(INDEX_KINDS))
def test_close_is_idempotent_and_final(kind, planted) -> None:
    ids, codes, q, _ = planted
    with build_index(ids, codes, kind=kind) as index:
        assert index.memory_bytes() >= codes.nbytes
        assert repr(index).endswith(f"{ids.shape[0]} entries>")
    assert len(index) == 0 and index.memory_bytes() == 0
    index.close()
    index.close()
    assert "closed" in repr(index)
    with pytest.raises(ValueError, match="is closed"):
        index.search(q, R)
    with pytest.raises(ValueError, match="is closed"):
        index.add(ids[:1], codes[:1])
    with pytest.raises(ValueError, match="is closed"):
        index.remove([1])
