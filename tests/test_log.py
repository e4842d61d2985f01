"""The registration log: RFC 9162 vectors, stored-subtree proofs vs. brute force,
signed notes, entry encoding, proof files and the attacks of issue 5."""

from __future__ import annotations

import base64
import hashlib
import os
import random
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from takeback.bank.model import BankEntry
from takeback.errors import BankError, TakeBackError
from takeback.fingerprint.types import PdqHash
from takeback.provenance.log import (
    DB_NAME,
    KEY_NAME,
    VKEY_NAME,
    RegistrationLog,
    Verdict,
    check_consistency,
    log_registrations,
    verify_consistency_proof,
    verify_proof,
)
from takeback.provenance.log_errors import (
    LogCorruptError,
    LogEntryNotFoundError,
    LogNotFoundError,
    ProofFormatError,
)
from takeback.provenance.log_format import ENTRY_SIZE, EntryData, TlogProof, label_commitment
from takeback.provenance.log_merkle import (
    EMPTY_ROOT,
    leaf_hash,
    mth,
    path,
    proof,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from takeback.provenance.log_note import Checkpoint, NoteSigner, NoteVerifier, SignedNote

# -- RFC 6962 / 9162 reference vectors -----------------------------------------------
# From transparency-dev/merkle, proof/verify_test.go (the vectors Google's
# certificate-transparency implementations share): the eight leaves, the roots
# of the trees of sizes 1..8, and inclusion / consistency proofs. Inclusion
# vectors there count leaves from 1; they are converted to 0-based indices here.

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (0-based index, tree size, proof)
INCLUSION = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]
# (old size, new size, proof)
CONSISTENCY = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]


@pytest.fixture
def vector_log(tmp_path: Path) -> Iterator[RegistrationLog]:
    """A log holding the eight RFC 6962 vector leaves, appended in uneven batches."""
    log = RegistrationLog.create(tmp_path / "bank", origin="example.org/vectors")
    for lo, hi in [(0, 1), (1, 4), (4, 5), (5, 8)]:
        log._append_raw(LEAVES[lo:hi])
    yield log
    log.close()


def test_brute_force_roots_match_rfc_vectors() -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    assert mth([]) == EMPTY_ROOT
    for n in range(1, 9):
        assert mth(hashes[:n]) == ROOTS[n - 1]


def test_stored_roots_match_rfc_vectors(vector_log: RegistrationLog) -> None:
    assert vector_log.root(0) == EMPTY_ROOT
    for n in range(1, 9):
        assert vector_log.root(n) == ROOTS[n - 1], n


@pytest.mark.parametrize(("index", "size", "expected"), INCLUSION)
def test_inclusion_vectors(
    vector_log: RegistrationLog, index: int, size: int, expected: list[bytes]
) -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    assert path(index, hashes[:size]) == expected
    assert vector_log.inclusion_proof(index, size) == expected
    assert verify_inclusion(index, size, hashes[index], expected, ROOTS[size - 1])
    # The corruptions transparency-dev/merkle checks must all fail.
    root = ROOTS[size - 1]
    assert not verify_inclusion(index, size, leaf_hash(b"WrongLeaf"), expected, root)
    assert not verify_inclusion(index, size * 2, hashes[index], expected, root)
    assert not verify_inclusion(index, size, hashes[index], expected, EMPTY_ROOT)
    assert not verify_inclusion(index, size, hashes[index], [*expected, root], root)
    assert not verify_inclusion(index, size, hashes[index], [root, *expected], root)
    for i in range(len(expected)):
        bad = list(expected)
        bad[i] = bytes([bad[i][0] ^ 8]) + bad[i][1:]
        assert not verify_inclusion(index, size, hashes[index], bad, root)
    if expected:
        assert not verify_inclusion(index, size, hashes[index], expected[:-1], root)
    if index + 1 < size:
        assert not verify_inclusion(index + 1, size, hashes[index], expected, root)


@pytest.mark.parametrize(("old", "new", "expected"), CONSISTENCY)
def test_consistency_vectors(
    vector_log: RegistrationLog, old: int, new: int, expected: list[bytes]
) -> None:
    hashes = [leaf_hash(x) for x in LEAVES]
    assert proof(old, hashes[:new]) == expected
    assert vector_log.consistency_proof(old, new) == expected
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    assert verify_consistency(old, new, r1, r2, expected)
    if expected:
        assert not verify_consistency(old, new, r2, r1, expected)
        assert not verify_consistency(old, new, r1, r2, [])
        assert not verify_consistency(old, new, r1, r2, expected[:-1])
        assert not verify_consistency(old, new, r1, r2, [*expected, r1])
        for i in range(len(expected)):
            bad = list(expected)
            bad[i] = bytes([bad[i][0] ^ 16]) + bad[i][1:]
            assert not verify_consistency(old, new, r1, r2, bad)


def test_consistency_edge_cases() -> None:
    r = leaf_hash(b"x")
    assert verify_consistency(0, 0, r, r, [])
    assert verify_consistency(0, 5, r, EMPTY_ROOT, [])
    assert not verify_consistency(0, 5, r, r, [r])
    assert not verify_consistency(1, 1, r, EMPTY_ROOT, [])
    assert not verify_consistency(2, 1, r, r, [])
    assert not verify_consistency(1, 2, r, r, [b"short"])


def test_inclusion_rejects_bad_shapes() -> None:
    h = leaf_hash(b"data")
    assert verify_inclusion(0, 1, h, [], h)
    assert not verify_inclusion(0, 1, b"", [], h)
    assert not verify_inclusion(0, 0, h, [], h)
    assert not verify_inclusion(2, 1, h, [], h)
    assert root_from_inclusion_proof(0, 2, h, [b"x" * 31]) is None


# -- property tests: stored subtrees vs. the RFC's recursive definitions ---------------

N_PROP = 300


@pytest.fixture(scope="module")
def prop_log(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[RegistrationLog, list[bytes]]]:
    rng = random.Random(5)
    leaves = [rng.randbytes(rng.randrange(0, 40)) for _ in range(N_PROP)]
    log = RegistrationLog.create(tmp_path_factory.mktemp("prop") / "bank")
    pos = 0
    while pos < N_PROP:  # uneven batches exercise the frontier between transactions
        step = rng.choice([1, 2, 3, 7, 16, 33])
        log._append_raw(leaves[pos : pos + step])
        pos += step
    yield log, [leaf_hash(x) for x in leaves]
    log.close()


_PROP = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@_PROP
@given(data=st.data())
def test_inclusion_proofs_agree_with_brute_force(
    prop_log: tuple[RegistrationLog, list[bytes]], data: st.DataObject
) -> None:
    log, hashes = prop_log
    size = data.draw(st.integers(1, N_PROP))
    index = data.draw(st.integers(0, size - 1))
    got = log.inclusion_proof(index, size)
    assert got == path(index, hashes[:size])
    root = log.root(size)
    assert root == mth(hashes[:size])
    assert verify_inclusion(index, size, hashes[index], got, root)


@_PROP
@given(data=st.data())
def test_consistency_proofs_agree_with_brute_force(
    prop_log: tuple[RegistrationLog, list[bytes]], data: st.DataObject
) -> None:
    log, hashes = prop_log
    new = data.draw(st.integers(0, N_PROP))
    old = data.draw(st.integers(0, new))
    got = log.consistency_proof(old, new)
    assert got == proof(old, hashes[:new])
    assert verify_consistency(old, new, mth(hashes[:old]), mth(hashes[:new]), got)
    if 0 < old < new and got:
        # a log whose old part was rewritten cannot produce a proof that verifies
        assert not verify_consistency(old, new, leaf_hash(b"forged"), mth(hashes[:new]), got)


def test_batching_does_not_change_the_stored_tree(tmp_path: Path) -> None:
    rng = random.Random(7)
    leaves = [rng.randbytes(8) for _ in range(130)]
    tables = []
    for split in (1, 5, 130):
        with RegistrationLog.create(tmp_path / f"b{split}") as log:
            for i in range(0, len(leaves), split):
                log._append_raw(leaves[i : i + split])
            tables.append(list(log._c.execute("SELECT id, hash FROM nodes ORDER BY id")))
    assert tables[0] == tables[1] == tables[2]
    assert len(tables[0]) == 2 * 130 - bin(130).count("1")  # every perfect subtree, once


# -- signed notes and checkpoints ------------------------------------------------------
# The Go golang.org/x/mod/sumdb/note documentation's example key and note.

GO_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1F"
    "FYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_signed_note_matches_go_reference() -> None:
    signer = NoteSigner.from_skey(GO_SKEY)
    assert signer.verifier.vkey == GO_VKEY
    assert signer.skey == GO_SKEY
    assert str(signer.sign(GO_TEXT)) == GO_NOTE
    note = SignedNote.parse(GO_NOTE.encode())
    assert note.verified_by(NoteVerifier.from_vkey(GO_VKEY))


def test_signed_note_rejects_tampering() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert not SignedNote.parse(GO_NOTE.replace("answer", "Answer")).verified_by(verifier)
    other = NoteSigner.generate("PeterNeumann").verifier  # same name, other key
    assert not SignedNote.parse(GO_NOTE).verified_by(other)
    doubled = GO_NOTE + GO_NOTE.split("\n\n")[1]  # the same key twice is refused
    assert not SignedNote.parse(doubled).verified_by(verifier)
    for bad in ["", "text\n", GO_TEXT + "\n", GO_NOTE[:-1], GO_NOTE.replace("\u2014", "-")]:
        with pytest.raises(ProofFormatError):
            SignedNote.parse(bad)
    for key in ["", "a+b", GO_VKEY.replace("c74f20a3", "c74f20a4"), GO_VKEY[:-4]]:
        with pytest.raises(ProofFormatError):
            NoteVerifier.from_vkey(key)


def test_checkpoint_format() -> None:
    cp = Checkpoint("example.org/log", 12, bytes(range(32)), ("ext line",))
    text = cp.text()
    assert text == (
        "example.org/log\n12\n" + base64.b64encode(bytes(range(32))).decode() + "\next line\n"
    )
    assert Checkpoint.parse(text) == cp
    for bad in ["a\n1\n", "a\n01\nAAAA\n", "a\nx\n" + text.split("\n")[2] + "\n", "a\n1\nAAAA\n"]:
        with pytest.raises(ProofFormatError):
            Checkpoint.parse(bad)


# -- entries ---------------------------------------------------------------------------


def _entry(i: int) -> EntryData:
    return EntryData(1_700_000_000 + i, bytes([i]) * 32, bytes([255 - i]) * 32, None, bytes(32))


def test_entry_encoding_is_canonical_and_round_trips() -> None:
    e = EntryData(1_763_000_000, b"\x01" * 32, None, b"\x02" * 32, b"\x03" * 32)
    raw = e.encode()
    assert len(raw) == ENTRY_SIZE and raw[0] == 1 and raw[1] == 0x05
    assert EntryData.decode(raw) == e
    assert e.to_dict()["registered_at"] == "2025-11-13T02:13:20Z"
    broken = bytearray(raw)
    broken[50] = 1  # an absent PDQ that is not zero
    for bad in [
        b"",
        b"\x02" + raw[1:],
        raw[:-1],
        raw + b"\x00",
        bytes(broken),
        raw[:1] + b"\x08" + raw[2:],
    ]:
        with pytest.raises(ProofFormatError):
            EntryData.decode(bad)


def test_label_commitment_hides_and_reveals(tmp_path: Path) -> None:
    entry = BankEntry(
        label="beach 2019.jpg", sha256="ab" * 32, added_at="2026-01-02T03:04:05Z", id=9
    )
    [logged] = log_registrations(tmp_path / "bank", [entry])
    assert logged.reveals("beach 2019.jpg") and not logged.reveals("beach 2019.JPG")
    assert logged.salt is not None and len(logged.salt) == 16
    assert logged.data.label_commitment == label_commitment("beach 2019.jpg", logged.salt)
    assert logged.salt not in logged.data.encode()
    assert logged.data.registered_at == 1767323045
    with RegistrationLog.open(tmp_path / "bank") as log:
        again = log.entry(logged.index)
        assert again == logged and again.bank_id == 9
        assert log.find_sha256("ab" * 32) == [again]
        assert "label_salt" not in again.to_dict()


def test_log_registrations_from_bank_entries(tmp_path: Path) -> None:
    pdq = PdqHash.from_hex("0f" * 32)
    entries = [
        BankEntry(label=f"p{i}", sha256=f"{i:064x}", pdq=pdq, quality=90, id=i + 1)
        for i in range(3)
    ]
    logged = log_registrations(tmp_path / "bank", entries, [b"\x07" * 32, None, None])
    assert [e.index for e in logged] == [0, 1, 2]
    assert logged[0].data.derivative_digest == b"\x07" * 32
    assert logged[1].data.pdq == pdq.value
    more = log_registrations(tmp_path / "bank", entries[:1])
    assert more[0].index == 3  # the log never deduplicates: it records every registration
    assert log_registrations(tmp_path / "bank", []) == []
    with RegistrationLog.open(tmp_path / "bank") as log:
        assert [c.checkpoint.size for c in log.checkpoints()] == [3, 4]


# -- the log as a resource ---------------------------------------------------------------


def test_files_keys_and_permissions(tmp_path: Path) -> None:
    bank = tmp_path / "bank"
    with RegistrationLog.create(bank, origin="example.org/photos") as log:
        vkey = log.verifier.vkey
    assert (bank / KEY_NAME).stat().st_mode & 0o777 == 0o600
    assert (bank / DB_NAME).stat().st_mode & 0o777 == 0o600
    assert (bank / VKEY_NAME).read_text().strip() == vkey
    assert vkey.startswith("example.org/photos+")
    with RegistrationLog.open(bank) as log:
        assert log.verifier.vkey == vkey and log.origin == "example.org/photos"
        log.close()
        log.close()  # idempotent
        with pytest.raises(BankError):
            _ = log.size


def test_open_refuses_missing_and_foreign(tmp_path: Path) -> None:
    with pytest.raises(LogNotFoundError):
        RegistrationLog.open(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    conn = sqlite3.connect(other / DB_NAME)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(LogCorruptError):
        RegistrationLog.open(other)
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / DB_NAME).write_bytes(os.urandom(4096))
    with pytest.raises(BankError):
        RegistrationLog.open(garbage)


def test_damaged_key_is_reported(tmp_path: Path) -> None:
    with RegistrationLog.create(tmp_path / "bank"):
        pass
    (tmp_path / "bank" / KEY_NAME).write_text("PRIVATE+KEY+nonsense")
    with RegistrationLog.open(tmp_path / "bank") as log, pytest.raises(LogCorruptError):
        log.checkpoint()


def test_missing_entries_and_sizes(tmp_path: Path) -> None:
    with RegistrationLog.create(tmp_path / "bank") as log:
        log.append([_entry(0)])
        with pytest.raises(LogEntryNotFoundError):
            log.entry(1)
        with pytest.raises(LogEntryNotFoundError):
            log.inclusion_proof(0, 2)
        with pytest.raises(LogEntryNotFoundError):
            log.consistency_proof(2)
        with pytest.raises(ProofFormatError):
            log.find_sha256("nothex")
        assert log.append([]) == []


# -- attacks ---------------------------------------------------------------------------


@pytest.fixture
def signed_log(tmp_path: Path) -> Iterator[RegistrationLog]:
    log = RegistrationLog.create(tmp_path / "bank", origin="example.org/takeback")
    log.append([_entry(i) for i in range(6)])
    log.checkpoint(tsa=False)
    yield log
    log.close()


def test_valid_proof_verifies_offline(signed_log: RegistrationLog) -> None:
    data = signed_log.proof_file(4)
    result = verify_proof(
        data, NoteVerifier.from_vkey(signed_log.verifier.vkey), sha256=(bytes([4]) * 32).hex()
    )
    assert result.verdict is Verdict.VERIFIED and result.ok
    assert result.index == 4 and result.entry == _entry(4)
    assert result.to_dict()["tree_size"] == 6


def test_modified_entry_is_caught(signed_log: RegistrationLog) -> None:
    parsed = TlogProof.unmarshal(signed_log.proof_file(2))
    real = EntryData.decode(parsed.extra or b"")
    # claim a registration one year earlier
    forged = EntryData(
        real.registered_at - 86400 * 365, real.sha256, real.pdq, None, real.label_commitment
    )
    tampered = TlogProof(parsed.index, parsed.hashes, parsed.checkpoint, forged.encode())
    result = verify_proof(tampered.marshal(), signed_log.verifier)
    assert result.verdict is Verdict.ENTRY_MISMATCH and not result.ok


def test_proof_for_the_wrong_entry(signed_log: RegistrationLog) -> None:
    data = signed_log.proof_file(1)
    result = verify_proof(data, signed_log.verifier, sha256=(bytes([3]) * 32).hex())
    assert result.verdict is Verdict.WRONG_ENTRY
    # the proof hashes of entry 1 presented for entry 3's data
    p1 = TlogProof.unmarshal(data)
    p3 = TlogProof.unmarshal(signed_log.proof_file(3))
    swapped = TlogProof(p1.index, p1.hashes, p1.checkpoint, p3.extra)
    assert verify_proof(swapped.marshal(), signed_log.verifier).verdict is Verdict.ENTRY_MISMATCH
    moved = TlogProof(3, p1.hashes, p1.checkpoint, p1.extra)
    assert verify_proof(moved.marshal(), signed_log.verifier).verdict is Verdict.ENTRY_MISMATCH
    beyond = TlogProof(50, p1.hashes, p1.checkpoint, p1.extra)
    assert verify_proof(beyond.marshal(), signed_log.verifier).verdict is Verdict.NOT_INCLUDED


def test_forged_checkpoints(signed_log: RegistrationLog) -> None:
    good = TlogProof.unmarshal(signed_log.proof_file(0))
    note = SignedNote.parse(good.checkpoint)
    # 1. a checkpoint signed by another key under the log's name
    impostor = NoteSigner.generate(signed_log.origin)
    forged = TlogProof(good.index, good.hashes, impostor.sign(note.text).to_bytes(), good.extra)
    assert verify_proof(forged.marshal(), signed_log.verifier).verdict is Verdict.BAD_SIGNATURE
    # 2. the real signature on an altered checkpoint (bigger tree)
    cp = Checkpoint.parse(note.text)
    altered = SignedNote(Checkpoint(cp.origin, cp.size + 1, cp.root).text(), note.signatures)
    bad = TlogProof(good.index, good.hashes, altered.to_bytes(), good.extra)
    assert verify_proof(bad.marshal(), signed_log.verifier).verdict is Verdict.BAD_SIGNATURE
    # 3. a flipped signature byte
    sig = note.signatures[0]
    flipped = type(sig)(sig.name, sig.key_id, bytes([sig.signature[0] ^ 1]) + sig.signature[1:])
    bad = TlogProof(
        good.index, good.hashes, SignedNote(note.text, (flipped,)).to_bytes(), good.extra
    )
    assert verify_proof(bad.marshal(), signed_log.verifier).verdict is Verdict.BAD_SIGNATURE
    # 4. the right proof checked with the wrong key
    other = NoteSigner.generate("example.org/other").verifier
    assert verify_proof(signed_log.proof_file(0), other).verdict is Verdict.WRONG_ORIGIN


def test_replayed_checkpoints(signed_log: RegistrationLog, tmp_path: Path) -> None:
    old_proof = signed_log.proof_file(1)  # against the tree of 6
    old_note = signed_log.latest_checkpoint().note.to_bytes()
    signed_log.append([_entry(i) for i in range(6, 9)])
    new_note = signed_log.checkpoint(tsa=False).note.to_bytes()
    # an older checkpoint presented as current: stale against the newer one known
    result = verify_proof(old_proof, signed_log.verifier, known=new_note)
    assert result.verdict is Verdict.STALE
    assert verify_proof(old_proof, signed_log.verifier, known=old_note).ok
    # a checkpoint of a different log (same entries, another origin and key)
    with RegistrationLog.create(tmp_path / "other", origin="example.org/other") as other:
        other.append([_entry(i) for i in range(6)])
        foreign = other.proof_file(1)
        assert verify_proof(foreign, signed_log.verifier).verdict is Verdict.WRONG_ORIGIN
        assert verify_proof(foreign, other.verifier).ok
    # consistency: old -> new holds, the reverse is refused
    assert signed_log.prove_consistency(old_note, new_note).ok
    assert signed_log.prove_consistency(new_note, old_note).verdict is Verdict.STALE


def _fork(tmp_path: Path, log: RegistrationLog, keep: int, extra: int) -> RegistrationLog:
    """A copy of ``log`` (same key) that diverged after ``keep`` entries."""
    fork_dir = tmp_path / "fork"
    fork = RegistrationLog.create(fork_dir, origin=log.origin)
    fork_dir.joinpath(KEY_NAME).unlink()
    fork_dir.joinpath(KEY_NAME).write_text(log.signer.skey + "\n")
    fork._signer = None
    fork.append([log.entry(i).data for i in range(keep)])
    fork.append([_entry(100 + i) for i in range(extra)])
    return fork


def test_forked_log_same_size_different_root(signed_log: RegistrationLog, tmp_path: Path) -> None:
    honest = signed_log.latest_checkpoint()
    with _fork(tmp_path, signed_log, keep=3, extra=3) as fork:  # also 6 entries
        evil = fork.checkpoint(tsa=False)
        assert evil.checkpoint.size == honest.checkpoint.size
        assert evil.checkpoint.root != honest.checkpoint.root
        evil_proof = fork.proof_file(5)
        # on its own the evil proof verifies (the log key signed it) ...
        assert verify_proof(evil_proof, signed_log.verifier).ok
        # ... but against the checkpoint already known it is a fork
        result = verify_proof(evil_proof, signed_log.verifier, known=honest.note.to_bytes())
        assert result.verdict is Verdict.FORKED
        verdict = check_consistency(evil.checkpoint, honest.checkpoint, [])
        assert verdict.verdict is Verdict.FORKED


def test_split_view_caught_by_consistency_proof(
    signed_log: RegistrationLog, tmp_path: Path
) -> None:
    seen_by_alice = signed_log.latest_checkpoint().note.to_bytes()  # honest, size 6
    with _fork(tmp_path, signed_log, keep=4, extra=5) as fork:  # size 9, rewrote 4 and 5
        seen_by_bob = fork.checkpoint(tsa=False).note.to_bytes()
        # the fork cannot prove it extends what Alice saw
        result = fork.prove_consistency(seen_by_alice, seen_by_bob)
        assert result.verdict is Verdict.FORKED
        # nor can the honest log, once it grows, prove it extends what Bob saw
        signed_log.append([_entry(i) for i in range(6, 12)])
        result = signed_log.prove_consistency(seen_by_bob)
        assert result.verdict is Verdict.FORKED
        # an offline consistency file from the fork fails as well
        fake = fork.consistency_proof(6, 9)
        text = "takeback/consistency-proof@v1\nold 6\nnew 9\n" + "".join(
            base64.b64encode(h).decode() + "\n" for h in fake
        )
        result = verify_consistency_proof(seen_by_alice, seen_by_bob, text, fork.verifier)
        assert result.verdict is Verdict.FORKED
    # the honest growth verifies offline
    now = signed_log.checkpoint(tsa=False).note.to_bytes()
    honest = signed_log.prove_consistency(seen_by_alice, now)
    assert honest.ok
    assert verify_consistency_proof(seen_by_alice, now, honest.proof_text(), signed_log.verifier).ok


def test_rewritten_database_is_detected(signed_log: RegistrationLog) -> None:
    signed_log._c.execute("UPDATE nodes SET hash = zeroblob(32) WHERE id = 3")  # leaves 0-3
    with pytest.raises(LogCorruptError):
        signed_log.checkpoint(tsa=False)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: d[: len(d) // 2],  # truncated in the hashes
        lambda d: d[:-20],  # truncated signature
        lambda d: d[: d.index(b"\n\n") + 2],  # checkpoint missing
        lambda d: b"",
        lambda d: d.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"),
        lambda d: d.replace(b"index ", b"index -"),
        lambda d: d.replace(b"extra ", b"extra !!"),
        lambda d: d.replace(b"index 3\n", b"index 3\nnot*base64\n"),
        lambda d: bytes(b ^ 0x55 for b in d),
        lambda d: d.replace(b"\n", b"\r\n"),
        lambda d: b"\xff\xfe" + d,
        lambda d: d[: d.index(b"extra ")] + d[d.index(b"index ") :],  # no entry data
    ],
)
def test_garbled_proof_files_get_a_verdict(
    signed_log: RegistrationLog, mangle: Callable[[bytes], bytes]
) -> None:
    data = signed_log.proof_file(3)
    result = verify_proof(mangle(data), signed_log.verifier)
    assert not result.ok
    assert result.verdict in {Verdict.MALFORMED, Verdict.BAD_SIGNATURE, Verdict.ENTRY_MISMATCH}


@settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(cut=st.integers(0, 2000), flip=st.integers(0, 2000), bit=st.integers(0, 7))
def test_random_damage_never_crashes(
    signed_log: RegistrationLog, cut: int, flip: int, bit: int
) -> None:
    data = bytearray(signed_log.proof_file(3))
    if flip < len(data):
        data[flip] ^= 1 << bit
    damaged = bytes(data[: max(cut, 1)] if cut < len(data) else data)
    result = verify_proof(damaged, signed_log.verifier)
    assert isinstance(result.verdict, Verdict)
    if result.ok:  # only a change that decodes to the same proof may pass
        original = TlogProof.unmarshal(signed_log.proof_file(3))
        got = TlogProof.unmarshal(damaged)
        assert (got.index, got.hashes, got.extra) == (
            original.index,
            original.hashes,
            original.extra,
        )
        assert SignedNote.parse(got.checkpoint).text == SignedNote.parse(original.checkpoint).text


def test_errors_stay_in_the_tree(tmp_path: Path) -> None:
    """No sqlite3, cryptography or OS error escapes the log API."""
    bank = tmp_path / "bank"
    bank.mkdir()
    (bank / DB_NAME).write_text("not a database at all" * 200)
    with pytest.raises(TakeBackError):
        RegistrationLog.open(bank)
    with pytest.raises(TakeBackError):
        NoteVerifier.from_vkey("x+00000000+@@@")


# -- tlog-proof wire format ------------------------------------------------------------
# Expected bytes from the marshal tests of transparency-dev/formats' `proof` package
# (TLogProof, https://c2sp.org/tlog-proof) and the malformed inputs of
# transparency-dev/merkle proof/tlog_proof_test.go.


def test_tlog_proof_marshal_matches_reference() -> None:
    h1, h2 = (hashlib.sha256(b"hash1").digest(), hashlib.sha256(b"hash2").digest())
    b1, b2 = (base64.b64encode(h).decode() for h in (h1, h2))
    extra = b"extra information"
    cases = [
        (
            TlogProof(5, (h1, h2), b"test checkpoint\n"),
            f"c2sp.org/tlog-proof@v1\nindex 5\n{b1}\n{b2}\n\ntest checkpoint\n",
        ),
        (
            TlogProof(10, (h1,), b"checkpoint data\n", extra),
            f"c2sp.org/tlog-proof@v1\nextra {base64.b64encode(extra).decode()}\n"
            f"index 10\n{b1}\n\ncheckpoint data\n",
        ),
        (TlogProof(0, (), b"checkpoint\n"), "c2sp.org/tlog-proof@v1\nindex 0\n\ncheckpoint\n"),
    ]
    for parsed, wire in cases:
        assert parsed.marshal() == wire.encode()
        assert TlogProof.unmarshal(wire.encode()) == parsed


@pytest.mark.parametrize(
    "wire",
    [
        b"wrong-header\nindex 0\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\nextra !!notbase64!!\nindex 0\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\n\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\nindex notanumber\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\nindex -5\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n!!notbase64!!\n\ncheckpoint\n",
        b"c2sp.org/tlog-proof@v1\nindex 0\n" + base64.b64encode(bytes(64)) + b"\n\ncheckpoint\n",
    ],
)
def test_tlog_proof_rejects_reference_malformed_inputs(wire: bytes) -> None:
    with pytest.raises(ProofFormatError):
        TlogProof.unmarshal(wire)
