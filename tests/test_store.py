"""The store contract: every Store implementation must pass these (SQLite now)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from takeback.bank.model import BankEntry
from takeback.bank.store import DB_NAME, SqliteStore, Store
from takeback.errors import (
    BankCorruptError,
    BankLockedError,
    BankNotFoundError,
    EntryNotFoundError,
)
from takeback.fingerprint.types import PdqHash


def _entry(
    rng: np.random.Generator, label: str, *, sha: bool = True, quality: int = 90
) -> BankEntry:
    return BankEntry(
        label=label,
        sha256=rng.bytes(32).hex() if sha else None,
        md5=rng.bytes(16).hex() if sha else None,
        pdq=PdqHash(rng.bytes(32)),
        quality=quality,
        width=640,
        height=480,
        source="test",
    )


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with SqliteStore.create(tmp_path / "bank") as s:
        yield s


def test_add_get_and_round_trip_every_field(store: Store) -> None:
    rng = np.random.default_rng(1)
    entry = _entry(rng, "selfie, 2026 — «beach»")
    [result] = store.add([entry])
    assert result.duplicate_of is None
    got = store.get(result.id)
    assert got.id == result.id and got.seq is not None
    for field in (
        "label",
        "sha256",
        "md5",
        "pdq",
        "quality",
        "width",
        "height",
        "added_at",
        "source",
    ):
        assert getattr(got, field) == getattr(entry, field), field


def test_duplicates_by_sha256_are_not_stored_twice(store: Store) -> None:
    rng = np.random.default_rng(2)
    a, b = _entry(rng, "a"), _entry(rng, "b")
    first = store.add([a, b])
    again = store.add([a, _entry(rng, "c"), a])
    assert again[0].duplicate_of == first[0].id
    assert again[1].duplicate_of is None
    assert again[2].duplicate_of == first[0].id  # duplicate within one batch too
    assert store.stats().entries == 3


def test_pdq_only_entries_deduplicate_by_pdq(store: Store) -> None:
    rng = np.random.default_rng(3)
    e = _entry(rng, "partner", sha=False)
    [r1] = store.add([e])
    [r2] = store.add([e])
    assert r2.duplicate_of == r1.id


def test_ids_and_sequence_only_grow_even_after_removal(store: Store) -> None:
    rng = np.random.default_rng(4)
    ids = [r.id for r in store.add([_entry(rng, str(i)) for i in range(5)])]
    assert store.remove([ids[-1]]) == [ids[-1]]
    [new] = store.add([_entry(rng, "new")])
    assert new.id > max(ids)
    changes = store.changes(since=0)
    seqs = [c.seq for c in changes]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert [c.op for c in changes] == ["add"] * 5 + ["remove", "add"]
    assert store.changes(since=seqs[-2]) == changes[-1:]


def test_removal_deletes_the_hash_from_disk(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    bank = tmp_path / "bank"
    with SqliteStore.create(bank) as store:
        keep, gone = _entry(rng, "keep"), _entry(rng, "withdrawn")
        ids = [r.id for r in store.add([keep, gone])]
        store.remove([ids[1]])
        with pytest.raises(EntryNotFoundError):
            store.get(ids[1])
        assert store.find_exact(sha256=gone.sha256) == []
    assert gone.pdq is not None and keep.pdq is not None
    raw = b"".join(p.read_bytes() for p in bank.iterdir() if p.is_file())
    assert gone.pdq.value not in raw, "a withdrawn hash must be gone, not flagged"
    assert bytes.fromhex(gone.sha256 or "") not in raw
    assert keep.pdq.value in raw


def test_pdq_arrays_filter_low_quality(store: Store) -> None:
    rng = np.random.default_rng(6)
    good, poor = _entry(rng, "good", quality=80), _entry(rng, "poor", quality=20)
    ids = [r.id for r in store.add([good, poor])]
    all_ids, codes = store.pdq_arrays()
    assert all_ids.tolist() == ids and codes.shape == (2, 32) and codes.dtype == np.uint8
    assert bytes(codes[0]) == good.pdq.value  # type: ignore[union-attr]
    kept, _ = store.pdq_arrays(min_quality=50)
    assert kept.tolist() == ids[:1]


def test_entries_pages_in_id_order(store: Store) -> None:
    rng = np.random.default_rng(7)
    store.add([_entry(rng, str(i)) for i in range(2500)])
    labels = [e.label for e in store.entries()]
    assert labels == [str(i) for i in range(2500)]
    assert [e.label for e in store.entries(after_id=2490, limit=3)] == ["2490", "2491", "2492"]


def test_a_failed_batch_stores_nothing(store: Store) -> None:
    rng = np.random.default_rng(8)
    store.add([_entry(rng, "before")])
    bad = BankEntry(label="bad", pdq=PdqHash(rng.bytes(32)), quality=999)  # violates a CHECK
    with pytest.raises(Exception):  # noqa: B017  (the translated error type is asserted below)
        store.add([_entry(rng, "ok"), bad])
    assert [e.label for e in store.entries()] == ["before"]


def test_close_is_idempotent(tmp_path: Path) -> None:
    store = SqliteStore.create(tmp_path / "b")
    store.close()
    store.close()


def test_missing_bank(tmp_path: Path) -> None:
    with pytest.raises(BankNotFoundError, match="takeback bank add"):
        SqliteStore.open(tmp_path / "nowhere")


@pytest.mark.parametrize("damage", ["garbage", "foreign-sqlite", "truncated"])
def test_damaged_or_foreign_databases_are_refused(tmp_path: Path, damage: str) -> None:
    bank = tmp_path / "bank"
    db = bank / DB_NAME
    if damage == "garbage":
        bank.mkdir()
        db.write_bytes(b"this is not a database at all" * 100)
    elif damage == "foreign-sqlite":
        bank.mkdir()
        with sqlite3.connect(db) as conn:
            conn.execute("CREATE TABLE other (x)")
        conn.close()
    else:
        rng = np.random.default_rng(9)
        with SqliteStore.create(bank) as s:
            s.add([_entry(rng, str(i)) for i in range(3000)])
        data = db.read_bytes()
        db.write_bytes(data[: len(data) // 3])
    with pytest.raises(BankCorruptError), SqliteStore.open(bank) as s:
        list(s.entries())
        s.pdq_arrays()


def test_a_locked_bank_says_so_and_keeps_its_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(10)
    bank = tmp_path / "bank"
    with SqliteStore.create(bank) as s:
        s.add([_entry(rng, "kept")])
    holder = sqlite3.connect(bank / DB_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with (
            SqliteStore.open(bank, busy_timeout=0.2) as s,
            pytest.raises(BankLockedError, match="locked"),
        ):
            s.add([_entry(rng, "blocked")])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SqliteStore.open(bank) as s:
        assert [e.label for e in s.entries()] == ["kept"]
