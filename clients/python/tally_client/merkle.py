"""RFC 9162 Merkle proofs and checkpoint notes, to check what PROOF.* and CHECKPOINT.*
answer (docs/AUDIT.md).

Hashes are SHA-256: a leaf is SHA-256(0x00 || event bytes), a node SHA-256(0x01 || left ||
right). The verifiers follow RFC 9162 §2.1.3.2 (inclusion) and §2.1.4.2 (consistency).
A checkpoint's signature is Ed25519, which the standard library lacks: verify notes with
``tools/verify-py`` or any C2SP signed-note implementation; ``parse_checkpoint`` only reads
the signed body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Sequence


def leaf_hash(event_bytes: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + event_bytes).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _unhex(h: str, what: str) -> bytes:
    try:
        b = bytes.fromhex(h)
    except (ValueError, TypeError):
        raise ValueError(f"{what} is not hex") from None
    if len(b) != 32:
        raise ValueError(f"{what} is not 32 bytes")
    return b


def verify_inclusion(
    leaf_index: int, tree_size: int, leaf: str, path: Sequence[str], root: str
) -> bool:
    """Whether ``path`` (hex, leaf level first) proves leaf hash ``leaf`` at ``leaf_index``
    in the tree of ``tree_size`` leaves whose root is ``root`` (RFC 9162 §2.1.3.2)."""
    if not 0 <= leaf_index < tree_size:
        return False
    fn, sn = leaf_index, tree_size - 1
    r = _unhex(leaf, "leaf hash")
    for i, p in enumerate(path):
        if sn == 0:
            return False
        h = _unhex(p, f"path[{i}]")
        if fn & 1 or fn == sn:
            r = node_hash(h, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, h)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == _unhex(root, "root")


def verify_consistency(
    first: int, second: int, path: Sequence[str], first_root: str, second_root: str
) -> bool:
    """Whether ``path`` proves the tree of ``second`` leaves (root ``second_root``) extends
    the tree of ``first`` leaves (root ``first_root``) (RFC 9162 §2.1.4.2)."""
    if not 1 <= first <= second:
        return False
    r1, r2 = _unhex(first_root, "first root"), _unhex(second_root, "second root")
    hashes = [_unhex(p, f"path[{i}]") for i, p in enumerate(path)]
    if first == second:
        return not hashes and r1 == r2
    if first & (first - 1) == 0:
        hashes = [r1] + hashes
    if not hashes:
        return False
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = hashes[0]
    for c in hashes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == r1 and sr == r2


@dataclass(frozen=True)
class Checkpoint:
    """The signed body of a C2SP tlog-checkpoint note: origin, size, root (hex), chain."""

    origin: str
    size: int
    root: str
    chain: str
    note: str


def parse_checkpoint(note: str) -> Checkpoint:
    """Reads a checkpoint note's body (the signature is not checked here). Raises
    ``ValueError`` for a note that is not one."""
    body, sep, _signatures = note.partition("\n\n")
    lines = body.split("\n")
    if not sep or len(lines) != 4 or not lines[3].startswith("chain "):
        raise ValueError("not a checkpoint note: origin, size, root, chain, blank line")
    origin, size_text, root_b64, chain_line = lines
    if not size_text.isdigit() or not size_text.isascii():
        raise ValueError(f"checkpoint size {size_text!r} is not a number")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except binascii.Error:
        raise ValueError("checkpoint root is not base64") from None
    if len(root) != 32:
        raise ValueError("checkpoint root is not 32 bytes")
    chain = chain_line[len("chain ") :]
    _unhex(chain, "checkpoint chain")
    return Checkpoint(origin, int(size_text), root.hex(), chain, note)
