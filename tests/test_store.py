"""The store contract: every Store implementation must pass these.

The contract tests run on :class:`SqliteStore` and on :class:`PostgresStore`
(a private PostgreSQL server, see ``tests/pg.py``); tests for what only one of
them has (files on disk; a server, its users and concurrent replicas) follow.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg import sql

from takeback.bank import store_postgres
from takeback.bank.model import DERIVATIVE_MAX_STORED, BankEntry, Change
from takeback.bank.open import open_store, redact_url
from takeback.bank.store import DB_NAME, SCHEMA_VERSION, SqliteStore, Store
from takeback.bank.store_postgres import NOTIFY_CHANNEL, PostgresStore
from takeback.errors import (
    BankCorruptError,
    BankError,
    BankLockedError,
    BankNotFoundError,
    EntryNotFoundError,
    InvalidHashError,
)
from takeback.fingerprint.types import PdqHash

from . import pg
from .pg import PASSWORD, PASSWORD_ROLE, PostgresServer

postgres_server, postgres_url = pg.postgres_server, pg.postgres_url  # fixtures

Location = Path | str
_roles = itertools.count(1)


def _entry(
    rng: np.random.Generator,
    label: str,
    *,
    sha: bool = True,
    quality: int = 90,
    derivative: bool = False,
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
        # The store keeps derivative fingerprints as opaque bytes (parsing them is
        # the matcher's job): random bytes of a real fingerprint's size will do.
        derivative=rng.bytes(int(rng.integers(2_000, 15_000))) if derivative else None,
    )


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> Location:
    """Where a new, empty bank may be created: a directory or a database URL."""
    if request.param == "sqlite":
        return tmp_path / "bank"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def store(location: Location) -> Iterator[Store]:
    with open_store(location, create=True) as s:
        yield s


@contextlib.contextmanager
def _hold_write_lock(location: Location) -> Iterator[None]:
    """Another process's write transaction, open until the block ends."""
    if isinstance(location, Path):
        holder = sqlite3.connect(location / DB_NAME, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        with psycopg.connect(location, autocommit=True) as conn, conn.transaction():
            conn.execute("SELECT * FROM takeback.head FOR UPDATE")
            yield


# -- the contract ---------------------------------------------------------------


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


def test_optional_fields_round_trip_as_none(store: Store) -> None:
    entry = BankEntry(label="bare")
    [result] = store.add([entry])
    got = store.get(result.id)
    assert (got.sha256, got.md5, got.pdq, got.quality, got.width, got.source) == (None,) * 6
    assert store.pdq_arrays()[0].tolist() == []


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
    assert store.stats().last_seq == seqs[-1]


def test_remove_returns_only_the_ids_that_existed(store: Store) -> None:
    rng = np.random.default_rng(11)
    ids = [r.id for r in store.add([_entry(rng, str(i)) for i in range(3)])]
    before = store.changes()
    assert store.remove([ids[2], 999_999, ids[0], ids[0]]) == [ids[0], ids[2]]
    assert store.remove([999_999]) == []
    assert store.remove([]) == []
    feed = store.changes(since=before[-1].seq)
    assert [(c.op, c.entry_id) for c in feed] == [("remove", ids[0]), ("remove", ids[2])]
    assert [e.id for e in store.entries()] == [ids[1]]


def test_lookups_by_id_and_digest(store: Store) -> None:
    rng = np.random.default_rng(12)
    a, b = _entry(rng, "a"), _entry(rng, "b")
    ids = [r.id for r in store.add([a, b])]
    assert set(store.get_many([ids[1], 424242, ids[0]])) == set(ids)
    assert store.get_many([]) == {}
    with pytest.raises(EntryNotFoundError):
        store.get(424242)
    assert [e.id for e in store.find_exact(sha256=a.sha256)] == ids[:1]
    assert [e.id for e in store.find_exact(md5=b.md5)] == ids[1:]
    assert [e.id for e in store.find_exact(sha256=a.sha256, md5=b.md5)] == ids
    assert store.find_exact() == []
    assert store.find_exact(sha256="00" * 32) == []


def test_pdq_arrays_filter_low_quality(store: Store) -> None:
    rng = np.random.default_rng(6)
    good, poor = _entry(rng, "good", quality=80), _entry(rng, "poor", quality=20)
    ids = [r.id for r in store.add([good, poor])]
    all_ids, codes = store.pdq_arrays()
    assert all_ids.tolist() == ids and codes.shape == (2, 32) and codes.dtype == np.uint8
    assert all_ids.dtype == np.int64
    assert good.pdq is not None and bytes(codes[0]) == good.pdq.value
    kept, _ = store.pdq_arrays(min_quality=50)
    assert kept.tolist() == ids[:1]


def test_pdq_arrays_are_in_id_order_and_match_the_entries(store: Store) -> None:
    rng = np.random.default_rng(13)
    ids = [r.id for r in store.add([_entry(rng, str(i)) for i in range(300)])]
    store.remove(ids[::7])
    unknown = BankEntry(label="no quality", pdq=PdqHash(rng.bytes(32)))
    store.add([unknown])
    got_ids, codes = store.pdq_arrays(min_quality=95)  # no recorded quality: included
    expected = {e.id: e.pdq.value for e in store.entries() if e.id and e.pdq is not None}
    assert got_ids.tolist() == sorted(expected)[-1:]
    got_ids, codes = store.pdq_arrays()
    assert got_ids.tolist() == sorted(expected)
    assert [bytes(c) for c in codes] == [expected[i] for i in got_ids.tolist()]


def test_entries_pages_in_id_order(store: Store) -> None:
    rng = np.random.default_rng(7)
    store.add([_entry(rng, str(i)) for i in range(2500)])
    labels = [e.label for e in store.entries()]
    assert labels == [str(i) for i in range(2500)]
    assert [e.label for e in store.entries(after_id=2490, limit=3)] == ["2490", "2491", "2492"]


def test_changes_limit_pages_the_feed(store: Store) -> None:
    rng = np.random.default_rng(14)
    store.add([_entry(rng, str(i)) for i in range(25)])
    pages, since = [], 0
    while page := store.changes(since=since, limit=10):
        pages.append(len(page))
        since = page[-1].seq
    assert pages == [10, 10, 5]


def test_stats_count_what_is_stored(store: Store) -> None:
    rng = np.random.default_rng(15)
    store.add(
        [
            _entry(rng, "a"),
            _entry(rng, "poor", quality=10),
            _entry(rng, "partner", sha=False),
            BankEntry(label="digest only", sha256=rng.bytes(32).hex()),
        ]
    )
    stats = store.stats()
    assert (stats.entries, stats.with_pdq, stats.low_quality, stats.with_sha256) == (4, 3, 1, 3)
    assert stats.last_seq == 4 and stats.database_bytes > 0


@pytest.mark.parametrize(
    "bad",
    [
        BankEntry(label="bad", pdq=PdqHash(bytes(32)), quality=999),  # violates a CHECK
        BankEntry(label="bad", sha256="abcd"),  # a digest of the wrong length
    ],
    ids=["quality", "sha256"],
)
def test_a_failed_batch_stores_nothing_and_leaves_no_gap(store: Store, bad: BankEntry) -> None:
    rng = np.random.default_rng(8)
    store.add([_entry(rng, "before")])
    with pytest.raises(BankError):
        store.add([_entry(rng, "ok"), bad])
    assert [e.label for e in store.entries()] == ["before"]
    [after] = store.add([_entry(rng, "after")])
    assert [c.seq for c in store.changes()] == [1, 2]
    assert after.id == 2


def test_derivatives_are_stored_beside_their_entries_and_withdrawn_with_them(
    store: Store,
) -> None:
    rng = np.random.default_rng(21)
    batch = [_entry(rng, str(i), derivative=i % 3 != 1) for i in range(7)]
    ids = [r.id for r in store.add(batch)]
    blobs = {i: e.derivative for i, e in zip(ids, batch, strict=True) if e.derivative}
    assert list(store.derivatives()) == sorted(blobs.items())
    for entry_id, entry in zip(ids, batch, strict=True):
        got = store.get(entry_id)
        assert got == entry.with_ids(entry_id, got.seq or 0)  # the digest, not the blob
        assert got.derivative is None
        assert got.derivative_digest == (
            None if entry.derivative is None else hashlib.sha256(entry.derivative).hexdigest()
        )
    assert [e.derivative_digest for e in store.entries()] == [e.derivative_digest for e in batch]
    assert store.get_derivatives([ids[1], ids[0], 424242]) == {ids[0]: blobs[ids[0]]}
    assert store.get_derivatives([]) == {}
    assert store.stats().with_derivative == len(blobs)
    # One change per entry: a replica reads the entry and its fingerprint by id.
    assert [(c.op, c.entry_id) for c in store.changes()] == [("add", i) for i in ids]

    seq = store.changes()[-1].seq
    gone = [ids[0], ids[1]]
    assert store.remove(gone) == gone
    assert [(c.op, c.entry_id) for c in store.changes(since=seq)] == [("remove", i) for i in gone]
    assert store.get_derivatives(gone) == {}
    assert [i for i, _ in store.derivatives()] == [i for i in sorted(blobs) if i not in gone]
    assert store.stats().with_derivative == len(blobs) - 1


def test_derivatives_page_in_id_order(store: Store) -> None:
    rng = np.random.default_rng(22)
    ids = [r.id for r in store.add([_entry(rng, str(i), derivative=True) for i in range(1200)])]
    assert [i for i, _ in store.derivatives()] == ids
    assert [i for i, _ in store.derivatives(after_id=ids[9], limit=3)] == ids[10:13]
    assert list(store.derivatives(after_id=ids[-1])) == []


def test_a_duplicate_keeps_the_stored_derivative_fingerprint(store: Store) -> None:
    rng = np.random.default_rng(23)
    plain = _entry(rng, "pdq only")
    [first] = store.add([plain])
    again = replace(plain, derivative=rng.bytes(5000))
    [second] = store.add([again])
    assert second.duplicate_of == first.id
    assert store.get_derivatives([first.id]) == {}
    assert store.get(first.id).derivative_digest is None


def test_a_failed_batch_stores_no_derivative_fingerprint(store: Store) -> None:
    rng = np.random.default_rng(24)
    bad = BankEntry(label="bad", pdq=PdqHash(bytes(32)), quality=999)
    with pytest.raises(BankError):
        store.add([_entry(rng, "ok", derivative=True), bad])
    assert list(store.derivatives()) == [] and store.stats().with_derivative == 0


def test_an_entry_refuses_an_impossible_derivative_fingerprint() -> None:
    with pytest.raises(InvalidHashError, match="derivative fingerprint"):
        BankEntry(label="huge", derivative=bytes(DERIVATIVE_MAX_STORED + 1))
    with pytest.raises(InvalidHashError, match="derivative fingerprint"):
        BankEntry(label="empty", derivative=b"")
    with pytest.raises(InvalidHashError, match="does not match"):
        BankEntry(label="x", derivative=b"abc", derivative_digest="00" * 32)


def test_close_is_idempotent_and_final(location: Location) -> None:
    store = open_store(location, create=True)
    store.close()
    store.close()
    with pytest.raises(BankError, match="closed"):
        store.changes()


def test_missing_bank(location: Location) -> None:
    with pytest.raises(BankNotFoundError, match="takeback bank add"):
        open_store(location)


def test_create_opens_an_existing_bank(location: Location) -> None:
    rng = np.random.default_rng(16)
    with open_store(location, create=True) as s:
        s.add([_entry(rng, "kept")])
    with open_store(location, create=True) as s, open_store(location) as t:
        assert [e.label for e in s.entries()] == [e.label for e in t.entries()] == ["kept"]


def test_a_locked_bank_says_so_and_keeps_its_data(location: Location) -> None:
    rng = np.random.default_rng(10)
    with open_store(location, create=True) as s:
        s.add([_entry(rng, "kept")])
    with (
        _hold_write_lock(location),
        open_store(location, busy_timeout=0.2) as s,
        pytest.raises(BankLockedError, match="locked"),
    ):
        s.add([_entry(rng, "blocked")])
    with open_store(location) as s:
        assert [e.label for e in s.entries()] == ["kept"]


def test_a_second_store_sees_adds_and_withdrawals_at_once(location: Location) -> None:
    """What a matcher replica relies on: the feed and the reads of another store object."""
    rng = np.random.default_rng(17)
    with open_store(location, create=True) as writer, open_store(location) as replica:
        ids = [r.id for r in writer.add([_entry(rng, str(i)) for i in range(4)])]
        feed = replica.changes(since=0)
        assert [(c.op, c.entry_id) for c in feed] == [("add", i) for i in ids]
        assert replica.pdq_arrays()[0].tolist() == ids
        writer.remove([ids[1]])
        news = replica.changes(since=feed[-1].seq)
        assert [(c.op, c.entry_id) for c in news] == [("remove", ids[1])]
        assert ids[1] not in replica.pdq_arrays()[0].tolist()
        with pytest.raises(EntryNotFoundError):
            replica.get(ids[1])


def test_open_store_chooses_the_store_by_location(location: Location) -> None:
    with open_store(location, create=True) as s:
        assert s.name == ("sqlite" if isinstance(location, Path) else "postgres")
        assert isinstance(s, SqliteStore if isinstance(location, Path) else PostgresStore)


# -- SQLite only: files on disk -------------------------------------------------


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


def test_removal_deletes_the_derivative_fingerprint_from_disk(tmp_path: Path) -> None:
    rng = np.random.default_rng(25)
    bank = tmp_path / "bank"
    with SqliteStore.create(bank) as store:
        keep, gone = _entry(rng, "keep", derivative=True), _entry(rng, "gone", derivative=True)
        ids = [r.id for r in store.add([keep, gone])]
        store.remove([ids[1]])
    raw = b"".join(p.read_bytes() for p in bank.iterdir() if p.is_file())
    assert keep.derivative is not None and gone.derivative is not None
    assert keep.derivative[:4000] in raw
    for start in range(0, len(gone.derivative) - 64, 1000):  # no page of it is left
        assert gone.derivative[start : start + 64] not in raw


def _make_version_1(bank: Path) -> None:
    """Turn a bank into one written before derivative fingerprints (schema 1)."""
    with sqlite3.connect(bank / DB_NAME, isolation_level=None) as conn:
        conn.execute("DROP TABLE derivatives")
        conn.execute("PRAGMA user_version=1")
    conn.close()


def test_a_version_1_bank_is_upgraded_in_place_when_opened(tmp_path: Path) -> None:
    rng = np.random.default_rng(26)
    bank = tmp_path / "bank"
    with SqliteStore.create(bank) as store:
        old = [_entry(rng, str(i)) for i in range(3)]
        store.add(old)
        store.remove([2])
    _make_version_1(bank)
    with SqliteStore.open(bank) as store:
        assert [e.label for e in store.entries()] == ["0", "2"]
        assert [(c.op, c.entry_id) for c in store.changes()][-1] == ("remove", 2)
        assert store.stats().with_derivative == 0 and list(store.derivatives()) == []
        [new] = store.add([_entry(rng, "new", derivative=True)])
        assert [i for i, _ in store.derivatives()] == [new.id] == [4]
    with sqlite3.connect(bank / DB_NAME) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()


def test_a_read_only_version_1_bank_is_used_without_derivatives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(27)
    bank = tmp_path / "bank"
    with SqliteStore.create(bank) as store:
        store.add([_entry(rng, "old")])
    _make_version_1(bank)

    def read_only(path: Path, kind: object, *, busy_timeout: float) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)

    monkeypatch.setattr("takeback._sqlite.connect", read_only)
    with SqliteStore.open(bank) as store:
        assert [e.label for e in store.entries()] == ["old"]
        assert store.get(1).derivative_digest is None
        assert list(store.derivatives()) == [] and store.get_derivatives([1]) == {}
        assert store.stats().with_derivative == 0
        with pytest.raises(BankError, match="read-only"):
            store.add([_entry(rng, "new", derivative=True)])


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


def test_open_store_refuses_other_urls_without_showing_the_password(tmp_path: Path) -> None:
    with pytest.raises(BankError, match="postgresql://") as info:
        open_store("mysql://bank:hunter2@db.example/bank")
    assert "hunter2" not in str(info.value) and "hunter2" not in (info.value.path or "")
    with open_store(tmp_path / "postgresql:" / "dir", create=True) as s:  # a Path is a directory
        assert s.name == "sqlite"


def test_redact_url() -> None:
    assert redact_url("postgresql://u:p@h:1/d") == "postgresql://u:***@h:1/d"
    assert redact_url("postgres://u@h/d") == "postgres://u@h/d"
    assert redact_url("postgresql://u:p@ss@h/d") == "postgresql://u:***@h/d"
    assert redact_url("postgresql://h/d?x=1") == "postgresql://h/d?x=1"


# -- PostgreSQL only: a server, its users, concurrent replicas ------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _assert_no_secret(exc: BaseException, secret: str) -> None:
    """Neither the error nor anything chained to it mentions ``secret``."""
    seen: BaseException | None = exc
    while seen is not None:
        assert secret not in str(seen) and secret not in repr(seen.args)
        assert secret not in (getattr(seen, "path", None) or "")
        seen = seen.__cause__ or seen.__context__


def test_connection_refused_names_the_server_but_not_the_password() -> None:
    port = _closed_port()
    url = f"postgresql://bank:s3cret-pw@127.0.0.1:{port}/bank"
    for opener in (PostgresStore.open, PostgresStore.create):
        with pytest.raises(BankError, match=f"127.0.0.1:{port}") as info:
            opener(url)
        assert "connection refused" in info.value.message.lower()
        assert isinstance(info.value.__cause__, psycopg.Error)
        _assert_no_secret(info.value, "s3cret-pw")


def test_a_wrong_password_is_a_clear_error_without_the_password(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.url(user=PASSWORD_ROLE, password="wrong-pass")
    with pytest.raises(BankError, match="refused the login") as info:
        PostgresStore.open(url)
    _assert_no_secret(info.value, "wrong-pass")
    with pytest.raises(BankNotFoundError):  # the right password gets in: no bank there
        PostgresStore.open(postgres_server.url(user=PASSWORD_ROLE, password=PASSWORD))


def test_a_missing_database_is_a_missing_bank(postgres_server: PostgresServer) -> None:
    url = postgres_server.url("no_such_database")
    for opener in (PostgresStore.open, PostgresStore.create):
        with pytest.raises(BankNotFoundError, match="createdb"):
            opener(url)


@pytest.mark.parametrize("kind", ["foreign-table", "other-application", "missing-table"])
def test_a_schema_that_is_not_a_bank_is_refused_and_left_alone(
    postgres_url: str, kind: str
) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        if kind == "foreign-table":
            conn.execute("CREATE SCHEMA takeback; CREATE TABLE takeback.orders (x int)")
        else:
            PostgresStore.create(postgres_url).close()
            if kind == "other-application":
                conn.execute("UPDATE takeback.bank SET application = 'payroll'")
            else:
                conn.execute("DROP TABLE takeback.changes")
        before = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'takeback'"
        ).fetchone()
    for opener in (PostgresStore.open, PostgresStore.create):
        with pytest.raises(BankCorruptError, match="not a TakeBack bank"):
            opener(postgres_url)
    with psycopg.connect(postgres_url) as conn:
        after = conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'takeback'"
        ).fetchone()
    assert after == before


def _make_postgres_version_1(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE takeback.derivatives")
        conn.execute("UPDATE takeback.bank SET schema_version = 1")


def test_a_version_1_postgres_bank_is_upgraded_in_place_when_opened(postgres_url: str) -> None:
    rng = np.random.default_rng(28)
    with PostgresStore.create(postgres_url) as store:
        store.add([_entry(rng, str(i)) for i in range(3)])
    _make_postgres_version_1(postgres_url)
    with PostgresStore.open(postgres_url) as store:
        assert [e.label for e in store.entries()] == ["0", "1", "2"]
        [new] = store.add([_entry(rng, "new", derivative=True)])
        assert [i for i, _ in store.derivatives()] == [new.id]
        assert store.remove([new.id]) == [new.id] and store.stats().with_derivative == 0
    with psycopg.connect(postgres_url) as conn:
        row = conn.execute("SELECT schema_version FROM takeback.bank").fetchone()
    assert row == (store_postgres.SCHEMA_VERSION,)


def test_a_user_who_may_not_upgrade_uses_a_version_1_bank_without_derivatives(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    rng = np.random.default_rng(29)
    with PostgresStore.create(postgres_url) as store:
        store.add([_entry(rng, "old")])
    _make_postgres_version_1(postgres_url)
    role = f"writer_{next(_roles)}"
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
        conn.execute(sql.SQL("GRANT USAGE ON SCHEMA takeback TO {}").format(sql.Identifier(role)))
        conn.execute(
            sql.SQL(
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA takeback TO {}"
            ).format(sql.Identifier(role))
        )
    url = postgres_server.url(pg.TEST_DATABASE, user=role)
    with PostgresStore.open(url) as store:
        assert [e.label for e in store.entries()] == ["old"]
        assert store.get(1).derivative_digest is None
        assert list(store.derivatives()) == [] and store.stats().with_derivative == 0
        assert store.add([_entry(rng, "pdq only")])[0].duplicate_of is None
        with pytest.raises(BankError, match="as the schema's owner"):
            store.add([_entry(rng, "new", derivative=True)])
    with PostgresStore.open(postgres_url) as owner:  # the owner upgrades it
        assert owner.stats().entries == 2
        owner.add([_entry(rng, "new", derivative=True)])
        assert owner.stats().with_derivative == 1


def test_a_bank_from_a_newer_takeback_is_refused(postgres_url: str) -> None:
    PostgresStore.create(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("UPDATE takeback.bank SET schema_version = 99")
    with pytest.raises(BankError, match="newer TakeBack"):
        PostgresStore.open(postgres_url)


def test_an_empty_schema_prepared_by_an_administrator_is_used(postgres_url: str) -> None:
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("CREATE SCHEMA takeback")
    with pytest.raises(BankNotFoundError):
        PostgresStore.open(postgres_url)
    with PostgresStore.create(postgres_url) as s:
        assert s.stats().entries == 0


def test_concurrent_creation_makes_one_bank(postgres_url: str) -> None:
    stores: list[Store] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            stores.append(PostgresStore.create(postgres_url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=create) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert errors == [] and len(stores) == 3


def test_a_writer_waits_for_the_previous_commit(postgres_url: str) -> None:
    """The write lock that keeps sequence order equal to commit order."""
    rng = np.random.default_rng(18)
    PostgresStore.create(postgres_url).close()
    finished = threading.Event()

    def write() -> None:
        with PostgresStore.open(postgres_url) as s:
            s.add([_entry(rng, "second")])
            finished.set()

    with _hold_write_lock(postgres_url):
        writer = threading.Thread(target=write)
        writer.start()
        assert not finished.wait(0.3), "a writer must not commit while another one is open"
    writer.join(5)
    assert finished.is_set()


def test_concurrent_writers_make_a_gap_free_commit_ordered_feed(postgres_url: str) -> None:
    """Two writers, one follower polling ``changes(since)``: it misses nothing."""
    PostgresStore.create(postgres_url).close()
    writers_done = threading.Event()
    errors: list[BaseException] = []
    followed: list[Change] = []

    def write(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            with PostgresStore.open(postgres_url) as s:
                for i in range(60):
                    batch = [_entry(rng, f"{seed}-{i}-{k}") for k in range(1 + i % 3)]
                    ids = [r.id for r in s.add(batch)]
                    if i % 4 == 0:
                        s.remove(ids[:1])
        except BaseException as exc:  # reported below
            errors.append(exc)

    def follow() -> None:
        try:
            with PostgresStore.open(postgres_url) as s:
                since = 0
                while True:
                    last_round = writers_done.is_set()
                    page = s.changes(since=since, limit=7)
                    followed.extend(page)
                    if page:
                        since = page[-1].seq
                    elif last_round:
                        return
        except BaseException as exc:  # reported below
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(seed,)) for seed in (1, 2)]
    follower = threading.Thread(target=follow)
    for t in [*writers, follower]:
        t.start()
    for t in writers:
        t.join()
    writers_done.set()
    follower.join()
    assert errors == []
    with PostgresStore.open(postgres_url) as s:
        feed = s.changes(since=0, limit=10_000)
        live = {e.id for e in s.entries()}
    assert [c.seq for c in feed] == list(range(1, len(feed) + 1)), "gaps in the feed"
    assert followed == feed, "a follower of the feed missed or reordered changes"
    replayed: set[int] = set()
    for change in feed:
        if change.op == "add":
            replayed.add(change.entry_id)
        else:
            replayed.remove(change.entry_id)
    assert replayed == live
    assert len(feed) == 2 * (20 * (1 + 2 + 3) + 15)  # adds and removes of both writers


def test_one_store_may_serve_several_threads(postgres_url: str) -> None:
    errors: list[BaseException] = []
    with PostgresStore.create(postgres_url) as shared:

        def work(seed: int) -> None:
            rng = np.random.default_rng(seed)
            try:
                for i in range(20):
                    [r] = shared.add([_entry(rng, f"{seed}-{i}")])
                    assert shared.get(r.id).label == f"{seed}-{i}"
                    list(shared.entries(limit=5))
            except BaseException as exc:  # reported below
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(seed,)) for seed in (1, 2, 3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert [c.seq for c in shared.changes(limit=100)] == list(range(1, 61))


def test_every_write_notifies_listeners_with_its_last_seq(postgres_url: str) -> None:
    rng = np.random.default_rng(19)
    with (
        PostgresStore.create(postgres_url) as s,
        psycopg.connect(postgres_url, autocommit=True) as listener,
    ):
        listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(NOTIFY_CHANNEL)))
        ids = [r.id for r in s.add([_entry(rng, "a"), _entry(rng, "b")])]
        s.remove(ids[:1])
        payloads = [n.payload for n in listener.notifies(timeout=2, stop_after=2)]
    assert payloads == ["2", "3"]


def test_pdq_arrays_sorts_rows_stored_out_of_id_order(postgres_url: str) -> None:
    rng = np.random.default_rng(21)
    with PostgresStore.create(postgres_url) as s:
        ids = [r.id for r in s.add([_entry(rng, str(i)) for i in range(400)])]
        s.remove(ids[:300])
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute("VACUUM takeback.entries")  # frees the first pages for new rows
            s.add([_entry(rng, f"new {i}") for i in range(200)])
            heap = [r[0] for r in conn.execute("SELECT id FROM takeback.entries")]
        assert heap != sorted(heap), "precondition: rows stored out of id order"
        got, codes = s.pdq_arrays()
        assert got.tolist() == sorted(heap)
        last = s.get(int(got[-1]))
        assert last.pdq is not None and bytes(codes[-1]) == last.pdq.value


def test_pdq_snapshot_reads_many_id_ranges_with_its_seq(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(22)
    monkeypatch.setattr(store_postgres, "_ID_RANGE", 16)  # 200 ids: 13 range queries
    with PostgresStore.create(postgres_url) as s:
        assert s.pdq_snapshot()[0] == 0 and s.pdq_snapshot()[1].size == 0
        ids = [r.id for r in s.add([_entry(rng, str(i), quality=i % 100) for i in range(200)])]
        s.remove(ids[5:40])
        last_seq, got, codes = s.pdq_snapshot(min_quality=30)
        live = {e.id: e.pdq.value for e in s.entries() if e.id and e.pdq and (e.quality or 0) >= 30}
        assert last_seq == s.stats().last_seq == 235
        assert got.tolist() == sorted(live) and codes.shape == (len(live), 32)
        assert [bytes(c) for c in codes] == [live[i] for i in sorted(live)]


def test_a_lost_connection_is_reported_then_reopened(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    rng = np.random.default_rng(20)
    dbname = postgres_url.rsplit("/", 1)[1]
    with PostgresStore.create(postgres_url) as s:
        s.add([_entry(rng, "a")])
        with postgres_server.admin() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            )
        deadline = time.monotonic() + 5
        with pytest.raises(BankError, match="lost the connection"):
            while time.monotonic() < deadline:  # the client notices on its next use
                s.changes()
        assert [c.entry_id for c in s.changes()] == [1]
