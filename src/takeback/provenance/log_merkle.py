"""RFC 9162 Merkle tree hashing, proofs and their verification.

Pure functions, no storage. The tree is the one of RFC 9162 section 2.1
(identical to RFC 6962 section 2.1): a leaf hashes to ``SHA-256(0x00 || d)``, an
inner node to ``SHA-256(0x01 || left || right)``, and a tree of ``n`` leaves
splits at ``k``, the largest power of two smaller than ``n``.

Two families of functions live here:

* the *range planners* (:func:`inclusion_ranges`, :func:`consistency_ranges`,
  :func:`perfect_decomposition`) say which leaf ranges a proof needs, so a store
  that keeps every perfect subtree (see :func:`node_id`) can answer with a few
  point look-ups and never rebuild the tree;
* the *brute-force twins* (:func:`mth`, :func:`path`, :func:`proof`) follow the
  RFC's recursive definitions literally over a list of leaf hashes; the tests
  compare the two.

Verification (:func:`root_from_inclusion_proof`, :func:`verify_inclusion`,
:func:`verify_consistency`) follows RFC 9162 sections 2.1.3.2 and 2.1.4.2 and
returns ``False`` (never raises) for any proof that does not check out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Final

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "consistency_ranges",
    "fold_right",
    "hashes_for_ranges",
    "inclusion_ranges",
    "leaf_hash",
    "mth",
    "node_hash",
    "node_id",
    "path",
    "perfect_decomposition",
    "proof",
    "root_from_inclusion_proof",
    "verify_consistency",
    "verify_inclusion",
]

#: Size of every hash in the tree (SHA-256).
HASH_SIZE: Final = 32
#: Root of the empty tree: ``SHA-256("")``.
EMPTY_ROOT: Final = hashlib.sha256(b"").digest()

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    """``SHA-256(0x00 || data)``: the hash of one leaf.

    Examples
    --------
    >>> leaf_hash(b"").hex()[:16]
    '6e340b9cffb37a98'
    """
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """``SHA-256(0x01 || left || right)``: the hash of an inner node."""
    return _sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def node_id(level: int, index: int) -> int:
    """In-order number of the perfect subtree of height ``level`` at ``index``.

    The subtree covers leaves ``[index * 2**level, (index + 1) * 2**level)``.
    Leaves get the even numbers ``0, 2, 4, ...``; a node sits between its two
    children. New nodes get numbers close to the largest one so far, which keeps
    a B-tree keyed by this number compact.

    Examples
    --------
    >>> [node_id(0, i) for i in range(4)], node_id(1, 0), node_id(2, 0)
    ([0, 2, 4, 6], 1, 3)
    """
    return (index << (level + 1)) + (1 << level) - 1


def perfect_decomposition(lo: int, hi: int) -> list[tuple[int, int]]:
    """The perfect subtrees ``(level, index)`` that make up the leaves ``[lo, hi)``.

    Left to right, greedily largest first. For every range that occurs in an
    RFC 9162 tree the hash of the range is these subtrees folded from the right:
    ``H(s0, H(s1, ... H(s_{m-2}, s_{m-1})))`` (see :func:`fold_right`).

    Examples
    --------
    >>> perfect_decomposition(4, 7)
    [(1, 2), (0, 6)]
    """
    if not 0 <= lo < hi:
        raise ValueError(f"empty or negative leaf range [{lo}, {hi})")
    out: list[tuple[int, int]] = []
    while lo < hi:
        level = (lo & -lo).bit_length() - 1 if lo else (hi - lo).bit_length() - 1
        while (1 << level) > hi - lo:
            level -= 1
        out.append((level, lo >> level))
        lo += 1 << level
    return out


def fold_right(hashes: Sequence[bytes]) -> bytes:
    """Combine a perfect decomposition's hashes into the hash of the whole range."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the inclusion proof of ``index`` in ``size``.

    In proof order (the leaf's sibling first, the root's child last), as in
    RFC 9162 section 2.1.3.1.
    """
    if not 0 <= index < size:
        raise ValueError(f"index {index} is not in a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo = lo + k
    ranges.reverse()
    return ranges


def consistency_ranges(old: int, new: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes form the consistency proof from ``old`` to ``new``.

    In proof order, as in RFC 9162 section 2.1.4.1 (``SUBPROOF``). Empty when
    ``old == new`` or ``old == 0``.
    """
    if not 0 <= old <= new:
        raise ValueError(f"cannot prove a tree of size {old} grew into one of size {new}")
    if old == 0 or old == new:
        return []
    ranges: list[tuple[int, int]] = []
    lo, hi, m, whole = 0, new, old, True
    while True:
        n = hi - lo
        if m == n:
            if not whole:
                ranges.append((lo, hi))
            break
        k = _split(n)
        if m <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    ranges.reverse()
    return ranges


# -- brute-force twins: the RFC's recursive definitions, literally ------------------


def mth(leaf_hashes: Sequence[bytes]) -> bytes:
    """Merkle Tree Hash of a list of leaf hashes (RFC 9162 section 2.1.1)."""
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return leaf_hashes[0]
    k = _split(n)
    return node_hash(mth(leaf_hashes[:k]), mth(leaf_hashes[k:]))


def path(m: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """``PATH(m, D[n])``: the inclusion proof by the RFC's definition."""
    n = len(leaf_hashes)
    if n <= 1:
        return []
    k = _split(n)
    if m < k:
        return [*path(m, leaf_hashes[:k]), mth(leaf_hashes[k:])]
    return [*path(m - k, leaf_hashes[k:]), mth(leaf_hashes[:k])]


def proof(m: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """``PROOF(m, D[n])``: the consistency proof by the RFC's definition."""

    def subproof(m: int, d: Sequence[bytes], b: bool) -> list[bytes]:
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = _split(n)
        if m <= k:
            return [*subproof(m, d[:k], b), mth(d[k:])]
        return [*subproof(m - k, d[k:], False), mth(d[:k])]

    if m == 0 or m == len(leaf_hashes):
        return []
    return subproof(m, leaf_hashes, True)


# -- verification -------------------------------------------------------------------


def _well_formed(hashes: Sequence[bytes]) -> bool:
    return all(isinstance(h, bytes) and len(h) == HASH_SIZE for h in hashes)


def root_from_inclusion_proof(
    index: int, size: int, leaf: bytes, hashes: Sequence[bytes]
) -> bytes | None:
    """The root an inclusion proof leads to, or ``None`` if it has the wrong shape.

    Parameters
    ----------
    index, size : int
        The leaf's zero-based index and the tree size the proof is for.
    leaf : bytes
        The 32-byte leaf hash (not the leaf data).
    hashes : sequence of bytes
        The proof, sibling first (RFC 9162 section 2.1.3.2).
    """
    if not (0 <= index < size) or len(leaf) != HASH_SIZE or not _well_formed(hashes):
        return None
    fn, sn = index, size - 1
    r = leaf
    for p in hashes:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        return None
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, hashes: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``hashes`` proves leaf hash ``leaf`` is at ``index`` in the tree ``root``."""
    got = root_from_inclusion_proof(index, size, leaf, hashes)
    return got is not None and len(root) == HASH_SIZE and got == root


def verify_consistency(
    old: int, new: int, old_root: bytes, new_root: bytes, hashes: Sequence[bytes]
) -> bool:
    """Whether ``hashes`` proves the tree ``new_root`` extends ``old_root``.

    RFC 9162 section 2.1.4.2. A tree of size 0 is consistent with everything
    (with an empty proof); equal sizes need equal roots and an empty proof.
    """
    if not (0 <= old <= new) or not _well_formed(hashes):
        return False
    if len(old_root) != HASH_SIZE or len(new_root) != HASH_SIZE:
        return False
    if old == new:
        return not hashes and old_root == new_root
    if old == 0:
        return not hashes
    if not hashes:
        return False
    items = list(hashes)
    if old & (old - 1) == 0:  # a power of two: the old root is the first node
        items.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = items[0]
    for c in items[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == old_root and sr == new_root


def hashes_for_ranges(
    ranges: Sequence[tuple[int, int]], lookup: Callable[[list[int]], dict[int, bytes]]
) -> list[bytes]:
    """Hashes of leaf ranges, from stored perfect-subtree hashes.

    Parameters
    ----------
    ranges : sequence of (int, int)
        Leaf ranges ``[lo, hi)`` as given by :func:`inclusion_ranges` or
        :func:`consistency_ranges`.
    lookup : callable
        Given a list of :func:`node_id` numbers, returns their stored hashes
        (one batched query).
    """
    plans = [perfect_decomposition(lo, hi) for lo, hi in ranges]
    wanted = sorted({node_id(level, idx) for plan in plans for level, idx in plan})
    stored = lookup(wanted)
    out = []
    for plan in plans:
        out.append(fold_right([stored[node_id(level, idx)] for level, idx in plan]))
    return out
