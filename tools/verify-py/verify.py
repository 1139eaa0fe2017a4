#!/usr/bin/env python3
"""verify.py: an independent verifier for Tally exports, checkpoints and Merkle proofs.

Written from docs/FORMAT.md alone (no Tally source code was read), in another language than
Tally, so that a disagreement points at the document or at one of the two implementations.
Python 3 standard library plus `cryptography` (Ed25519) only.

    verify.py export DIR --vkey VKEY [--checkpoint FILE]... [--json]
    verify.py inclusion --proof PROOF.json [--vkey VKEY --checkpoint FILE] [--event-hex HEX] [--json]
    verify.py consistency --proof PROOF.json [--vkey VKEY --old FILE --new FILE] [--json]

Exit status: 0 verified, 1 verification failed, 2 usage error or unreadable input.
"Step n" refers to the numbered list in FORMAT.md's "Verifying an export".
"""
import argparse
import base64
import hashlib
import json
import mmap
import os
import re
import struct
import sys
import tempfile
import time

try:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
except ImportError:  # tools/verify-py/run installs it
    print("verify-py: the Python module `cryptography` is missing (tools/verify-py/run installs it)",
          file=sys.stderr)
    sys.exit(2)


class UsageError(Exception):
    """Bad arguments or unreadable input: exit status 2."""


# ---------------------------------------------------------------------------------------------
# Hashes and the RFC 9162 Merkle tree (FORMAT.md: Hashes, Merkle tree)

sha256 = hashlib.sha256
ZERO32 = bytes(32)
EMPTY_ROOT = sha256(b"").digest()          # MTH({}) = SHA-256 of the empty string


def leaf_hash(event):
    """leaf = SHA-256(0x00 || event bytes)."""
    return sha256(b"\x00" + event).digest()


def node_hash(left, right):
    """An interior node: SHA-256(0x01 || left || right)."""
    return sha256(b"\x01" + left + right).digest()


def split_point(n):
    """k: the largest power of two smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


class Frontier:
    """The roots of the complete subtrees that make up the first `size` leaves, largest first:
    one per bit set in `size` (the same shape as the export's `prefix`)."""

    def __init__(self, size=0, roots=()):
        self.size, self.roots = size, list(roots)

    def append(self, leaf, on_node=None):
        """Add a leaf; equal-sized subtrees merge like carries in a binary counter.
        `on_node(level, index, hash)` sees every complete subtree this completes."""
        h, n, level = leaf, self.size, 0
        while n & 1:
            h = node_hash(self.roots.pop(), h)
            n >>= 1
            level += 1
            if on_node:
                on_node(level, self.size >> level, h)
        self.roots.append(h)
        self.size += 1

    def root(self):
        """Step 3: root = H(S1, H(S2, ... H(Sk-1, Sk)))."""
        if not self.roots:
            return EMPTY_ROOT
        acc = self.roots[-1]
        for h in reversed(self.roots[:-1]):
            acc = node_hash(h, acc)
        return acc


def verify_inclusion(index, size, leaf, path, root):
    """RFC 9162 §2.1.3.2: does the audit path (leaf level first) lead from leaf `index` of a
    tree of `size` leaves to `root`?"""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(first, second, path, first_root, second_root):
    """RFC 9162 §2.1.4.2: is the tree of `second` leaves an extension of that of `first`?"""
    if first == second or first == 0:   # nothing to prove: the proof must be empty
        return (not path and first <= second and
                first_root == (second_root if first else EMPTY_ROOT))
    if not 0 < first < second or not path:
        return False
    if first & (first - 1) == 0:        # first is a power of two: its root starts the path
        path = [first_root] + list(path)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == first_root and sr == second_root and sn == 0


# ---------------------------------------------------------------------------------------------
# C2SP signed notes and Tally checkpoints (FORMAT.md: Checkpoints)

SIG_PREFIX = "\u2014 ".encode()            # "— " (em dash, space) starts a signature line


class NoteError(Exception):
    pass


def valid_key_name(name):
    return bool(name) and "+" not in name and not any(c.isspace() for c in name)


def key_hash(name, public_key):
    """First 4 bytes of SHA-256(name || 0x0A || 0x01 || Ed25519 public key)."""
    return sha256(name.encode() + b"\n\x01" + public_key).digest()[:4]


class VerifierKey:
    """A signed-note verifier key: <name>+<key hash hex>+<base64(0x01 || public key)>."""

    def __init__(self, text):
        try:
            name, rest = text.split("+", 1)
            hash_hex, key_b64 = rest.split("+", 1)
            key = base64.b64decode(key_b64, validate=True)
        except ValueError:
            raise ValueError("not a verifier key <name>+<hash>+<base64 key>") from None
        if not valid_key_name(name):
            raise ValueError(f"invalid key name {name!r}")
        if not re.fullmatch(r"[0-9a-fA-F]{8}", hash_hex):
            raise ValueError("the key hash is not 8 hex digits")
        if len(key) != 33 or key[0] != 1:
            raise ValueError("not an Ed25519 key (0x01 followed by 32 bytes)")
        self.name, self.public = name, key[1:]
        self.hash = key_hash(name, self.public)
        if self.hash != bytes.fromhex(hash_hex):
            raise ValueError("the key hash does not match the name and key")

    def verify(self, message, signature):
        try:
            Ed25519PublicKey.from_public_bytes(self.public).verify(signature, message)
            return True
        except InvalidSignature:
            return False


def open_note(note, vk):
    """Verify a C2SP signed note and return its text (everything before the blank line,
    including the text's final newline). Raises NoteError unless the note is well formed
    and carries a valid signature by `vk`; signatures by other keys are ignored."""
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError:
        raise NoteError("the note is not UTF-8") from None
    if any(c < " " and c != "\n" for c in decoded):
        raise NoteError("the note contains control characters")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise NoteError("malformed note: no blank line before the signatures")
    text, sigs = note[:split + 1], note[split + 2:]
    if not sigs or not sigs.endswith(b"\n"):
        raise NoteError("malformed note: no signature lines")
    verified = False
    lines = sigs[:-1].split(b"\n")
    if len(lines) > 100:
        raise NoteError("malformed note: too many signatures")
    for line in lines:
        if not line.startswith(SIG_PREFIX):
            raise NoteError("malformed signature line (must start with '\u2014 ')")
        name, _, b64 = line[len(SIG_PREFIX):].decode().partition(" ")
        try:
            sig = base64.b64decode(b64, validate=True)
        except ValueError:
            sig = b""
        if not valid_key_name(name) or len(sig) < 5:
            raise NoteError("malformed signature line")
        if name != vk.name or sig[:4] != vk.hash:
            continue                                  # another key's signature
        if len(sig) != 68 or not vk.verify(text, sig[4:]):
            raise NoteError(f"invalid signature by {vk.name}")
        verified = True
    if not verified:
        raise NoteError(f"no signature by the key {vk.name}+{vk.hash.hex()}")
    return text


class Checkpoint:
    def __init__(self, origin, size, root, chain):
        self.origin, self.size, self.root, self.chain = origin, size, root, chain


def parse_checkpoint_body(text):
    """<origin>\\n<size>\\n<base64 root>\\nchain <hex chain>\\n, exactly (FORMAT.md: Checkpoints)."""
    lines = text.decode("utf-8").split("\n")
    if len(lines) != 5 or lines[4] != "":
        raise ValueError("the body must be 4 lines: origin, size, root, chain")
    origin, size, root_b64, chain_line = lines[:4]
    if not origin:
        raise ValueError("empty origin")
    if not re.fullmatch(r"0|[1-9][0-9]*", size) or int(size) >= 1 << 64:
        raise ValueError(f"bad tree size {size!r}")
    try:
        root = base64.b64decode(root_b64, validate=True)
    except ValueError:
        root = b""
    if len(root) != 32 or base64.b64encode(root).decode() != root_b64:
        raise ValueError("the root line is not the base64 of 32 bytes")
    m = re.fullmatch(r"chain ([0-9a-f]{64})", chain_line)
    if not m:
        raise ValueError("the fourth line is not 'chain <64 lowercase hex>'")
    return Checkpoint(origin, int(size), root, bytes.fromhex(m[1]))


def read_checkpoint(note, vk):
    """Returns (checkpoint or None, [(kind, message)]). The body is parsed even when the
    signature fails, so that a report can still compare against it."""
    problems = []
    try:
        text = open_note(note, vk)
    except NoteError as e:
        problems.append(("signature", str(e)))
        split = note.rfind(b"\n\n")
        text = note[:split + 1] if split >= 0 else note
    try:
        cp = parse_checkpoint_body(text)
    except ValueError as e:
        problems.append(("checkpoint", f"malformed checkpoint: {e}"))
        return None, problems
    if cp.origin != vk.name:
        problems.append(("checkpoint", f"origin {cp.origin!r} is not the key's name {vk.name!r}"))
    return cp, problems


# ---------------------------------------------------------------------------------------------
# Strict event decoding (FORMAT.md: Conventions, Event)

(PARTNER_CREATED, ASSET_DECLARED, ACCOUNT_OPENED, ACCOUNT_CLOSED, ENTRY_POSTED, HOLD_PLACED,
 HOLD_CAPTURED, HOLD_RELEASED, HOLD_EXPIRED, RECON_IMPORTED, RECON_MATCHED, RECON_RESOLVED,
 RECON_UNMATCHED) = range(1, 14)
ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")          # entry, hold and partner ids
ACCOUNT = re.compile(rb"[A-Za-z0-9._:-]{1,128}")
CURRENCY = re.compile(rb"[A-Z0-9_]{1,16}")


class DecodeError(Exception):
    pass


_U16, _U32, _U64, _I32, _I64 = (struct.Struct(f).unpack_from
                                for f in (">H", ">I", ">Q", ">i", ">q"))
_HEADER = struct.Struct(">BBQq")           # version, type, seq, timestamp
BIT = (0, 1)                               # presence bytes, sides (0 debit, 1 credit)
# Reconciliation (FORMAT.md: Reconciliation events)
STATEMENT_FORMATS = (0, 1, 2)              # csv, camt053, mt940
STATEMENT_FORMATS_V2 = (0, 1, 2, 3)        # … and camt054, in version-2 recon_imported
TEXT_ENCODINGS = (0, 1, 2)                 # utf-8, iso-8859-1, windows-1252
RECON_IMPORTED_VERSION = 2                 # the one type with a second encoding version
MATCH_RULES = (1, 2, 3)                    # reference, amount_date, sum
MATCH_STATES = (1, 2)                      # matched, discrepancy
DISCREPANCY = 2
LINES_PER_PART = 1000                      # lines in one recon_imported event, at most
_ACCOUNT_NAMES = {}                        # account name bytes already validated -> str


class Reader:
    """Reads one event's fields in order. An overrun raises IndexError or struct.error, which
    decode_event reports as truncation."""
    __slots__ = ("b", "o")

    def __init__(self, b, o):
        self.b, self.o = b, o

    def u8(self, what, allowed):
        v = self.b[self.o]
        self.o += 1
        if v not in allowed:
            raise DecodeError(f"bad {what} byte {v}")
        return v

    def u16(self):
        (v,) = _U16(self.b, self.o)
        self.o += 2
        return v

    def fixed(self, unpack, size):
        (v,) = unpack(self.b, self.o)
        self.o += size
        return v

    def i128(self):
        o = self.o
        self.o = o + 16
        if self.o > len(self.b):
            raise IndexError
        return int.from_bytes(self.b[o:o + 16], "big", signed=True)

    def raw(self):
        """`str`: u16 length, then that many bytes."""
        b, o = self.b, self.o
        n = b[o] << 8 | b[o + 1]
        self.o = o + 2 + n
        if self.o > len(b):
            raise IndexError
        return b[o + 2:o + 2 + n]

    def text(self, what="string", pattern=None):
        raw = self.raw()
        if pattern is not None and not pattern.fullmatch(raw):
            raise DecodeError(f"invalid {what} {raw!r}")
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError(f"{what} is not UTF-8") from None

    def present(self):
        """An `opt<T>` presence byte: True if T follows."""
        return self.u8("presence", BIT) == 1

    def optional_text(self, what="string", pattern=None):
        """`opt<str>`: the text, or None."""
        return self.text(what, pattern) if self.present() else None

    def balance(self):
        """`opt<balance>`: (i128 amount, signed; i32 date in days), or None."""
        return (self.i128(), self.fixed(_I32, 4)) if self.present() else None

    def statement(self, version=1):
        """A recon_imported `header`: (format, statement id, statement account, currency,
        opening, closing, period from, period to (from <= to), lines read, duplicates), and
        in version 2 the text encoding last."""
        formats = STATEMENT_FORMATS_V2 if version == RECON_IMPORTED_VERSION else STATEMENT_FORMATS
        header = (self.u8("statement format", formats), self.optional_text(),
                  self.optional_text(), self.text("currency", CURRENCY), self.balance(),
                  self.balance(), self.fixed(_I32, 4), self.fixed(_I32, 4),
                  self.fixed(_U32, 4), self.fixed(_U32, 4))
        if version == RECON_IMPORTED_VERSION:
            header += (self.u8("text encoding", TEXT_ENCODINGS),)
        if header[6] > header[7]:
            raise DecodeError(f"statement period from day {header[6]} is after to day "
                              f"{header[7]}")
        return header

    def line(self, statement_currency=None):
        """A statement `line`: (identity, source, amount > 0, direction 0 debit / 1 credit,
        booking date, value date, bank reference, end-to-end id, reference, remittance), and
        in version 2 (`statement_currency` given) the line's own currency last (None: the
        statement's; when present it must differ from it)."""
        identity, source, amount = self.text(), self.text(), self.i128()
        if amount <= 0:
            raise DecodeError(f"statement line amount {amount} is not > 0")
        line = (identity, source, amount, self.u8("direction", BIT), self.fixed(_I32, 4),
                self.fixed(_I32, 4) if self.present() else None, self.optional_text(),
                self.optional_text(), self.optional_text(), self.optional_text())
        if statement_currency is not None:
            currency = self.optional_text("line currency", CURRENCY)
            if currency == statement_currency:
                raise DecodeError(f"line currency {currency} is the statement's")
            line += (currency,)
        return line

    def match(self):
        """A `match`: (rule, state, [item numbers], [entry ids], amount difference (0 unless
        a discrepancy), flags: bit 0 currency differs, bit 1 direction differs)."""
        rule, state = self.u8("match rule", MATCH_RULES), self.u8("match state", MATCH_STATES)
        items = [self.fixed(_U64, 8) for _ in range(self.u16())]
        entries = [self.text("entry id", ID) for _ in range(self.u16())]
        difference, flags = self.i128(), self.u8("match flags", range(4))
        if difference and state != DISCREPANCY:
            raise DecodeError(f"amount difference {difference} in a match that is not a "
                              "discrepancy")
        return rule, state, items, entries, difference, flags

    def legs(self):
        """[(account, side 0 debit / 1 credit, amount)] (written out: it is the hot path)."""
        b, o, out = self.b, self.o + 2, []
        for _ in range(b[o - 2] << 8 | b[o - 1]):
            n = b[o] << 8 | b[o + 1]
            account, side, amount = b[o + 2:o + 2 + n], b[o + 2 + n], b[o + 3 + n:o + 19 + n]
            o += 19 + n
            if len(amount) != 16:
                raise IndexError
            name = _ACCOUNT_NAMES.get(account)
            if name is None:                 # validate each account name once
                if not ACCOUNT.fullmatch(account):
                    raise DecodeError(f"invalid account {account!r}")
                name = _ACCOUNT_NAMES[account] = account.decode()
            if side > 1:
                raise DecodeError(f"bad side byte {side}")
            out.append((name, side, int.from_bytes(amount, "big", signed=True)))
        self.o = o
        return out

    def metadata(self):
        """Pairs sorted by the keys' UTF-8 bytes, keys unique; 32 pairs, keys 1-64 bytes,
        values 0-512 bytes."""
        count, pairs, previous = self.u16(), [], b""
        if count > 32:
            raise DecodeError(f"{count} metadata pairs (at most 32)")
        for _ in range(count):
            key, value = self.raw(), self.raw()
            if not 1 <= len(key) <= 64 or len(value) > 512:
                raise DecodeError("metadata key or value length out of range")
            if key <= previous:
                raise DecodeError("metadata keys unsorted or repeated")
            previous = key
            try:
                pairs.append((key.decode("utf-8"), value.decode("utf-8")))
            except UnicodeDecodeError:
                raise DecodeError("metadata is not UTF-8") from None
        return pairs


def decode_event(b):
    """Decode one event strictly; returns (type, seq, timestamp, payload fields)."""
    try:
        version, etype, seq, ts = _HEADER.unpack_from(b, 0)
        if version != 1 and not (version == RECON_IMPORTED_VERSION and etype == RECON_IMPORTED):
            raise DecodeError(f"unknown event version {version} (type {etype})")
        r = Reader(b, 18)
        if etype == ENTRY_POSTED:
            data = (r.text("entry id", ID), r.legs(), r.text() if r.present() else None,
                    r.fixed(_I32, 4) if r.present() else None,
                    r.text("entry id", ID) if r.present() else None, r.metadata())
        elif etype == HOLD_PLACED:
            data = (r.text("hold id", ID), r.legs(), r.text() if r.present() else None,
                    r.fixed(_I64, 8) if r.present() else None, r.metadata())
        elif etype == HOLD_CAPTURED:
            data = (r.text("hold id", ID), [r.i128() for _ in range(r.u16())])
        elif etype == HOLD_RELEASED or etype == HOLD_EXPIRED:
            data = (r.text("hold id", ID),)
        elif etype == ACCOUNT_OPENED:
            account, partner, currency = (r.text("account", ACCOUNT), r.text("partner id", ID),
                                          r.text("currency", CURRENCY))
            normal, flags = r.u8("normal side", BIT), r.u8("flags", range(4))
            limit = r.i128() if flags & 2 else None
            data = (account, partner, currency, normal, flags, limit, r.metadata())
        elif etype == ACCOUNT_CLOSED:
            data = (r.text("account", ACCOUNT),)
        elif etype == PARTNER_CREATED:
            data = (r.text("partner id", ID), r.text(), r.metadata())
        elif etype == ASSET_DECLARED:
            data = (r.text("asset code", CURRENCY), r.u8("scale", range(19)), r.text())
        elif etype == RECON_IMPORTED:
            account, header = r.text("account", ACCOUNT), r.statement(version)
            part, parts, n = r.fixed(_U32, 4), r.fixed(_U32, 4), r.u16()
            if part >= parts:
                raise DecodeError(f"part {part} of {parts} (part must be < parts)")
            if n > LINES_PER_PART:
                raise DecodeError(f"{n} statement lines (at most {LINES_PER_PART} per part)")
            currency = header[3] if version == RECON_IMPORTED_VERSION else None
            data = (account, header, part, parts, [r.line(currency) for _ in range(n)])
        elif etype == RECON_MATCHED:
            data = (r.text("account", ACCOUNT), [r.match() for _ in range(r.u16())])
        elif etype == RECON_RESOLVED:
            data = (r.fixed(_U64, 8), r.text(), r.text(), r.optional_text("entry id", ID))
        elif etype == RECON_UNMATCHED:
            data = (r.fixed(_U64, 8), r.optional_text(), r.text())
        else:
            raise DecodeError(f"unknown event type {etype}")
    except (IndexError, struct.error):
        raise DecodeError("truncated") from None
    if r.o != len(b):
        raise DecodeError(f"{len(b) - r.o} trailing byte(s)")
    return etype, seq, ts, data


# ---------------------------------------------------------------------------------------------
# Problems and double entry

class Report:
    """Collects problems; at most CAP per kind are listed, then one line counts the rest."""
    CAP = 10

    def __init__(self):
        self.problems, self.counts, self.hidden = [], {}, {}

    def add(self, kind, seq, message):
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        if n <= self.CAP:
            self.problems.append({"kind": kind, "seq": seq, "message": message})
        else:
            self.hidden.setdefault(kind, seq)

    def finish(self):
        for kind, seq in self.hidden.items():
            more = self.counts[kind] - self.CAP
            self.problems.append({"kind": kind, "seq": seq, "message":
                                  f"{more} more {kind} problem(s) not listed, the first at seq {seq}"})
        self.hidden = {}
        return self.problems


class Books:
    """Step 5. Keeps only the currency of each opened account, the legs of each unresolved
    hold and the posted totals per currency."""

    def __init__(self, report):
        self.report = report
        self.currency = {}      # account -> currency
        self.holds = {}         # hold id -> [(currency, side, amount)], None once resolved
        self.totals = {}        # currency -> [debits, credits], entries and captures

    def apply(self, etype, seq, data, where=""):
        if etype == ENTRY_POSTED or etype == HOLD_PLACED:
            what = ("entry " if etype == ENTRY_POSTED else "hold ") + data[0] + where
            legs, sums, known, currency = [], {}, True, self.currency
            for account, side, amount in data[1]:
                cur = currency.get(account)
                if cur is None:
                    self.problem(seq, f"{what}: account {account} was not opened before")
                    known = False
                if amount <= 0:
                    self.problem(seq, f"{what}: amount {amount} is not > 0")
                legs.append((cur, side, amount))
                s = sums.get(cur)
                if s is None:
                    s = sums[cur] = [0, 0]
                s[side] += amount
            if etype == HOLD_PLACED:
                self.holds[data[0]] = legs
            if known:                        # else the currencies, hence the sums, are unknown
                self.balance(seq, what, sums, etype == ENTRY_POSTED)
        elif etype == HOLD_CAPTURED:
            hold, amounts = data
            legs = self.holds.get(hold)
            what = "capture of hold " + hold
            if legs is None:
                self.problem(seq, f"{what}: " + ("the hold was already resolved" if hold in
                             self.holds else "no hold with that id was placed before"))
            elif len(amounts) != len(legs):
                self.problem(seq, f"{what}: {len(amounts)} amounts for {len(legs)} legs")
            else:
                sums, known = {}, True
                for (cur, side, amount), c in zip(legs, amounts):
                    if not 0 <= c <= amount:
                        self.problem(seq, f"{what}: captured {c} not within 0..{amount}")
                    known = known and cur is not None
                    s = sums.get(cur)
                    if s is None:
                        s = sums[cur] = [0, 0]
                    s[side] += c
                if known:
                    self.balance(seq, what, sums, True)
            if hold in self.holds:
                self.holds[hold] = None
        elif etype == ACCOUNT_OPENED:
            self.currency.setdefault(data[0], data[2])
        elif etype == HOLD_RELEASED or etype == HOLD_EXPIRED:
            if data[0] in self.holds:
                self.holds[data[0]] = None
        # Reconciliation events (recon_imported, _matched, _resolved, _unmatched) record
        # statements and matches: they move no money and are not checked here.

    def balance(self, seq, what, sums, posted):
        """Per currency, debits must equal credits; posted amounts (entries and captures,
        balanced or not) go into the totals."""
        for currency, (debits, credits) in sums.items():
            if debits != credits:
                self.problem(seq, f"{what}: {currency} debits {debits} != credits {credits}")
            if posted:
                t = self.totals.get(currency)
                if t is None:
                    t = self.totals[currency] = [0, 0]
                t[0] += debits
                t[1] += credits

    def problem(self, seq, message):
        self.report.add("double_entry", seq, message)


# ---------------------------------------------------------------------------------------------
# Export verification (FORMAT.md: Export, Verifying an export)

EXPORT_FILES = ("manifest", "checkpoint", "vkey", "events", "hashes", "prefix", "tree",
                "context")
MANIFEST = re.compile(rb"tally-export 1\norigin ([^\n]+)\nfrom (0|[1-9][0-9]*)\n"
                      rb"to (0|[1-9][0-9]*)\nevents (0|[1-9][0-9]*)\ncontext (0|[1-9][0-9]*)\n")
CONTEXT_TYPES = (ACCOUNT_OPENED, HOLD_PLACED)


def mapfile(path):
    """The file's bytes, memory-mapped: read lazily by the OS, never copied whole."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return b""
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)


def tree_layout(p, n):
    """The `tree` file: for level l = 1, 2, ... while 2^l <= n, indices ceil(p/2^l) ..
    floor(n/2^l) - 1. Returns ({level: (first record, first index, count)}, records)."""
    layout, base, level = {}, 0, 1
    while 1 << level <= n:
        first = -(-p >> level)
        count = max(0, (n >> level) - first)
        layout[level] = (base, first, count)
        base += count
        level += 1
    return layout, base


class ExportVerifier:
    def __init__(self, directory, vk, kept=()):
        self.dir, self.vk, self.kept = directory, vk, list(kept)   # kept: [(label, note)]
        self.report = Report()
        self.books = Books(self.report)
        self.count, self.root, self.chain = 0, None, None
        self.first_difference = None
        self.cp = None
        self.seconds = 0.0

    def path(self, name):
        return os.path.join(self.dir, name)

    def read(self, name):
        try:
            with open(self.path(name), "rb") as f:
                return f.read()
        except OSError:
            return None                      # reported by check_files

    def map(self, name):
        """A file memory-mapped; a missing one (reported by check_files) reads as empty."""
        return mapfile(self.path(name)) if os.path.isfile(self.path(name)) else b""

    def add(self, kind, seq, message):
        self.report.add(kind, seq, message)

    def run(self):
        self.check_files()
        if self.read_manifest() and self.read_prefix():
            self.read_checkpoint()
            self.read_kept()
            self.read_context()
            self.stream_events()
            self.compare()
        return self.result()

    # -- step 1 -----------------------------------------------------------------------------
    def check_files(self):
        present = set(os.listdir(self.dir))
        for name in EXPORT_FILES:
            if name not in present or not os.path.isfile(self.path(name)):
                self.add("file", None, f"the export has no file {name!r}")
        for name in sorted(present - set(EXPORT_FILES)):
            self.add("file", None, f"unexpected file {name!r} in the export")

    def read_manifest(self):
        data = self.read("manifest")
        m = MANIFEST.fullmatch(data) if data is not None else None
        if not m:
            if data is not None:
                self.add("manifest", None, "manifest is not exactly the six lines 'tally-export 1',"
                         " 'origin', 'from', 'to', 'events', 'context'")
            return False
        self.origin = m[1].decode("utf-8", "replace")
        self.A, self.B, events, self.context_count = (int(x) for x in m.groups()[1:])
        if self.A < 1 or self.B < self.A:
            self.add("manifest", None, f"bad range: from {self.A} to {self.B}")
            return False
        self.p, self.n, self.expected = self.A - 1, self.B, self.B - self.A + 1
        if events != self.expected:
            self.add("manifest", None, f"events {events} is not to - from + 1 = {self.expected}")
        if self.origin != self.vk.name:
            self.add("manifest", None, f"origin {self.origin!r} is not the key's name {self.vk.name!r}")
        return True

    def read_checkpoint(self):
        self.cp_trusted = False
        note = self.read("checkpoint")
        if note is None:
            return
        self.cp, problems = read_checkpoint(note, self.vk)
        for kind, message in problems:
            self.add(kind, None, f"checkpoint: {message}")
        if self.cp is None:
            return
        self.cp_trusted = not problems
        if self.cp.origin != self.origin:
            self.add("checkpoint", None, f"checkpoint origin {self.cp.origin!r} is not the "
                     f"manifest's {self.origin!r}")
        if self.cp.size != self.n:
            self.add("checkpoint", None, f"checkpoint size {self.cp.size} is not to = {self.n}")

    def read_kept(self):
        """Step 6, first half: each kept checkpoint must verify and lie within p..n."""
        self.wanted = {}                     # tree size m -> [(label, checkpoint)]
        for label, note in self.kept:
            cp, problems = read_checkpoint(note, self.vk)
            for kind, message in problems:
                self.add(kind, None, f"kept checkpoint {label}: {message}")
            if cp is None or problems:
                continue                     # an unverified checkpoint proves nothing
            if not self.p <= cp.size <= self.n:
                self.add("cannot_check", cp.size, f"cannot check kept checkpoint {label}: its "
                         f"size {cp.size} is outside {self.p}..{self.n}, the sizes this export "
                         f"can reproduce (from - 1 .. to)")
            else:
                self.wanted.setdefault(cp.size, []).append((label, cp))

    def read_prefix(self):
        """`prefix`: u64 p, chain[p], then the subtree roots of the first p leaves."""
        data = self.read("prefix")
        if data is None:
            return False
        p = int.from_bytes(data[:8], "big") if len(data) >= 8 else None
        roots = []
        if p != self.p or len(data) != 40 + 32 * bin(p).count("1"):
            self.add("prefix", None, f"prefix is not u64 p = from - 1 = {self.p}, chain[p] and "
                     f"one subtree root per bit of p")
            return False
        self.chain_p = data[8:40]
        if p == 0 and self.chain_p != ZERO32:
            self.add("prefix", None, "chain[0] in prefix is not 32 zero bytes")
        o = 40
        for level in reversed(range(p.bit_length())):
            if p >> level & 1:
                start = p >> (level + 1) << (level + 1)
                roots.append((start, start + (1 << level), data[o:o + 32]))
                o += 32
        self.prefix = roots                  # [(first leaf, end leaf, hash)], largest first
        return True

    # -- step 4 -----------------------------------------------------------------------------
    def read_context(self):
        """Each context record: u32 length, event, u8 k, k x 32-byte audit path."""
        data, o, count, last = self.read("context") or b"", 0, 0, 0
        root = self.cp.root if self.cp else None
        while o < len(data):
            end = o + 4 + int.from_bytes(data[o:o + 4], "big")
            k = data[end] if end < len(data) else 0
            if o + 4 > len(data) or end >= len(data) or end + 1 + 32 * k > len(data):
                self.add("context", None, f"truncated context record at byte {o}")
                break
            event = data[o + 4:end]
            path = [data[end + 1 + 32 * j:end + 33 + 32 * j] for j in range(k)]
            o, count = end + 1 + 32 * k, count + 1
            try:
                etype, seq, _, fields = decode_event(event)
            except DecodeError as e:
                self.add("context", None, f"context record {count}: {e}")
                continue
            if not 1 <= seq <= self.p:
                self.add("context", seq, f"context event seq {seq} is not before from = {self.A}")
            if seq <= last:
                self.add("context", seq, "context events are not in increasing seq order")
            last = seq
            if etype not in CONTEXT_TYPES:
                self.add("context", seq, f"context event seq {seq} is of type {etype}, not "
                         "account_opened or hold_placed")
            if root is not None and not verify_inclusion(seq - 1, self.n, leaf_hash(event), path, root):
                self.add("context", seq, f"the audit path of context event seq {seq} does not "
                         f"lead to the checkpoint's root (tree size {self.n})")
            self.books.apply(etype, seq, fields, " (context)")
        if count != self.context_count:
            self.add("context", None, f"context holds {count} records, the manifest says "
                     f"{self.context_count}")

    # -- steps 2 and 5 ------------------------------------------------------------------------
    def stream_events(self):
        events, hashes, tree = self.map("events"), self.map("hashes"), self.map("tree")
        p, A = self.p, self.A
        layout, records = tree_layout(p, self.n)
        self.hashes_ok = len(hashes) == 64 * self.expected
        self.tree_ok = len(tree) == 32 * records
        if not self.hashes_ok:
            self.add("count", None, f"hashes holds {len(hashes) / 64:g} records, expected "
                     f"{self.expected}")
        if not self.tree_ok:
            self.add("tree", None, f"tree holds {len(tree)} bytes, expected {32 * records} "
                     f"({records} nodes)")
        self.tree_bad = []                   # the first (level, index) recorded wrongly

        def check_tree(level, index, h):
            # Recomputed complete subtrees inside p..n are compared with `tree`; only the
            # first mismatch is kept (reported later if the events prove genuine).
            base, first, count = layout.get(level, (0, 0, 0))
            if first <= index < first + count:
                o = 32 * (base + index - first)
                if tree[o:o + 32] != h:
                    self.tree_bad.append((level, index))

        frontier, chain = Frontier(p, [h for _, _, h in self.prefix]), self.chain_p
        want = set(self.wanted) | {self.n}
        self.snapshots = {}                  # tree size -> (root, chain)
        if p in want:
            self.snapshots[p] = (frontier.root(), chain)
        n_hashes = len(hashes) // 64
        unpack, apply = struct.unpack_from, self.books.apply
        o, end, i, previous_ts, chain_in_sync = 0, len(events), 0, None, True
        started = time.perf_counter()
        while o + 4 <= end:
            (length,) = unpack(">I", events, o)
            if o + 4 + length > end:
                break
            event = events[o + 4:o + 4 + length]
            o += 4 + length
            seq = A + i                      # the seq this position must hold
            leaf = sha256(b"\x00" + event).digest()
            chain = sha256(chain + leaf).digest()
            if i < n_hashes:
                recorded = hashes[64 * i:64 * i + 64]
                if recorded != leaf + chain:
                    if recorded[:32] != leaf:
                        self.add("leaf", seq, f"leaf hash {leaf.hex()} differs from the "
                                 f"recorded {recorded[:32].hex()}")
                    if recorded[32:] != chain and chain_in_sync:
                        self.add("chain", seq, f"chain hash {chain.hex()} differs from the "
                                 f"recorded {recorded[32:].hex()}")
                chain_in_sync = recorded[32:] == chain
            frontier.append(leaf, None if self.tree_bad or not self.tree_ok else check_tree)
            if frontier.size in want:
                self.snapshots[frontier.size] = (frontier.root(), chain)
            i += 1
            try:
                etype, event_seq, ts, fields = decode_event(event)
            except DecodeError as e:
                self.add("decode", seq, f"event at seq {seq} does not decode: {e}")
                continue
            if event_seq != seq:
                self.add("sequence", seq, f"the event at position {i - 1} has seq {event_seq}, "
                         f"expected {seq}")
            if previous_ts is not None and ts <= previous_ts:
                self.add("timestamp", seq, f"timestamp {ts} is not after the previous {previous_ts}")
            previous_ts = ts
            apply(etype, seq, fields)
        self.seconds = time.perf_counter() - started
        self.count = i
        if o != end:
            self.add("count", A + i, f"events has {end - o} trailing byte(s) after record {i}")
        if i != self.expected:
            self.add("count", None, f"events holds {i} records, the manifest says {self.expected}")
        self.root, self.chain = self.snapshots.get(self.n, (frontier.root(), chain))

    # -- steps 3 and 6, then the first difference -------------------------------------------
    def compare(self):
        cp, n = self.cp, self.n
        own_root_matches = cp is not None and self.root == cp.root
        if cp is not None:
            if self.root != cp.root:
                self.add("root", n, f"the root of the first {n} leaves is {self.root.hex()}, "
                         f"the checkpoint says {cp.root.hex()}")
            if self.chain != cp.chain:
                self.add("chain", n, f"chain[{n}] is {self.chain.hex()}, the checkpoint says "
                         f"{cp.chain.hex()}")
        mismatched = []                      # trusted kept checkpoints the export contradicts
        for m, kept in sorted(self.wanted.items()):
            for label, k in kept:
                snap = self.snapshots.get(m)
                if snap is None:
                    self.add("consistency", m, f"kept checkpoint {label} (size {m}): the export "
                             f"has only {self.p + self.count} leaves")
                    mismatched.append((m, k.root))
                elif snap[0] != k.root and m == n:
                    self.add("fork", m, f"kept checkpoint {label} is signed for size {m} with root "
                             f"{k.root.hex()}, the export's root is {snap[0].hex()}: two signed "
                             "trees of one size")
                    mismatched.append((m, k.root))
                elif snap != (k.root, k.chain):
                    self.add("consistency", m, f"kept checkpoint {label} (size {m}, root "
                             f"{k.root.hex()}, chain {k.chain.hex()}) differs from the export's "
                             f"first {m} leaves (root {snap[0].hex()}, chain {snap[1].hex()})")
                    mismatched.append((m, k.root))
        for currency, (debits, credits) in sorted(self.books.totals.items()):
            if debits != credits:
                self.add("double_entry", None, f"posted {currency} totals differ: debits "
                         f"{debits}, credits {credits}")
        # Pinpoint from the export's own checkpoint when it is trusted but contradicted. When it
        # matches, a contradicting kept checkpoint is another history (a fork): nothing in the
        # export can locate a difference. When it is untrusted, use the largest kept one.
        target = None
        if self.cp_trusted and not own_root_matches and cp.size == n:
            target = (n, cp.root)
        elif not self.cp_trusted and mismatched:
            target = max(mismatched)
        if target and self.hashes_ok and self.tree_ok:
            self.pinpoint(*target)
        if self.tree_bad and self.cp_trusted and own_root_matches:
            level, index = self.tree_bad[0]
            self.add("tree", (index << level) + 1, f"tree node level {level} index {index} (seq "
                     f"{(index << level) + 1}..{(index + 1) << level}) differs from the hash "
                     "recomputed from the events")

    def pinpoint(self, m, trusted):
        """The descent at the end of FORMAT.md's Export section, from a trusted root of m leaves,
        then the classification of the first differing leaf."""
        with tempfile.TemporaryFile() as tmp:
            # Re-read the events, keeping only their leaf hashes (32 bytes each), on disk.
            events, o, count = self.map("events"), 0, 0
            while o + 4 <= len(events):
                (length,) = struct.unpack_from(">I", events, o)
                if o + 4 + length > len(events):
                    break
                tmp.write(leaf_hash(events[o + 4:o + 4 + length]))
                o, count = o + 4 + length, count + 1
            tmp.flush()
            leaves = mmap.mmap(tmp.fileno(), 0, access=mmap.ACCESS_READ) if count else b""
            try:
                kind, seq, message = self.classify(History(self, leaves, count), m, trusted)
            finally:
                if count:
                    leaves.close()
        self.add(kind, seq, f"first difference from the signed tree of size {m}: {message}")
        self.first_difference = {"seq": seq, "kind": kind}
        if kind == "hashes_altered":
            self.first_difference["range"] = [seq, self.altered_to]

    def classify(self, h, m, trusted):
        kind, j, genuine = h.first_difference(m, trusted)
        if kind == "leaf" and j < self.p:        # ended inside the prefix: it must be wrong
            kind, j, genuine = "hashes_altered", 0, self.p
        if kind == "hashes_altered":
            self.altered_to = genuine            # here: the end of the node's leaf range
            return kind, j + 1, (f"the recorded hashes (tree, hashes, prefix) under the signed "
                                 f"node over seq {j + 1}..{genuine} do not hash to it: they were "
                                 f"altered too; the first difference lies within seq "
                                 f"{j + 1}..{genuine}")
        seq, e0, e1 = j + 1, h.leaf(j), h.leaf(j + 1)    # export's leaves at j and j + 1
        g1 = h.genuine_leaf(m, trusted, j + 1) if j + 1 < m else None
        if e0 is None:
            return "missing", seq, f"the signed event seq {seq} is missing (the export ends)"
        if g1 is not None and e0 == g1 and e1 == genuine:
            return "reordered", seq, f"events seq {seq} and {seq + 1} are swapped"
        if g1 is not None and e0 == g1:
            return "missing", seq, (f"the signed event seq {seq} is missing: the export's record "
                                    f"at that position is the signed seq {seq + 1}")
        if e1 is not None and e1 == genuine:
            return "inserted", seq, (f"an event not in the signed history was inserted at seq "
                                     f"{seq}: the next record is the signed seq {seq}")
        return "altered", seq, (f"event seq {seq} differs from the signed history (same "
                                "position, different bytes)")

    def result(self):
        problems = self.report.finish()
        totals = [{"currency": c, "debits": str(d), "credits": str(k)}
                  for c, (d, k) in sorted(self.books.totals.items())]
        return {"ok": not problems, "events": self.count, "from": getattr(self, "A", None),
                "to": getattr(self, "B", None), "root": self.root.hex() if self.root else None,
                "chain": self.chain.hex() if self.chain else None, "totals": totals,
                "problems": problems, "first_difference": self.first_difference}


class History:
    """For the descent: `claimed` hashes of any node as the export records them (prefix, tree,
    hashes) and `recomputed` ones from the event bytes (and the prefix)."""

    def __init__(self, v, leaves, count):
        self.p, self.prefix = v.p, v.prefix
        self.prefix_nodes = {(lo, hi): h for lo, hi, h in v.prefix}
        self.hashes, self.tree = v.map("hashes"), v.map("tree")
        self.layout, _ = tree_layout(v.p, v.n)
        self.leaves, self.count = leaves, count

    def leaf(self, j):
        """The export's leaf j (0-based leaf index), recomputed from its events, or None."""
        i = j - self.p
        return self.leaves[32 * i:32 * i + 32] if 0 <= i < self.count else None

    def claimed(self, lo, hi):
        if (lo, hi) in self.prefix_nodes:
            return self.prefix_nodes[(lo, hi)]
        if hi <= self.p:
            return None                      # inside a prefix subtree: not in the export
        size = hi - lo
        if lo >= self.p and size & (size - 1) == 0 and lo % size == 0:
            if size == 1:
                i = lo - self.p
                return self.hashes[64 * i:64 * i + 32]
            level = size.bit_length() - 1
            base, first, _ = self.layout[level]
            o = 32 * (base + (lo >> level) - first)
            return self.tree[o:o + 32]
        k = split_point(size)
        left, right = self.claimed(lo, lo + k), self.claimed(lo + k, hi)
        return None if left is None or right is None else node_hash(left, right)

    def recomputed(self, lo, hi):
        roots = [h for a, b, h in self.prefix if lo <= a and b <= hi]
        f = Frontier(max(0, min(hi, self.p) - lo), roots)
        for j in range(max(lo, self.p), hi):
            leaf = self.leaf(j)
            if leaf is None:
                return None
            f.append(leaf)
        return f.root()

    def children(self, lo, hi, node):
        """The two claimed children of a trusted node, or None if they do not hash to it."""
        k = split_point(hi - lo)
        left, right = self.claimed(lo, lo + k), self.claimed(lo + k, hi)
        if left is None or right is None or node_hash(left, right) != node:
            return None
        return k, left, right

    def first_difference(self, m, trusted):
        """Returns ("leaf", index, genuine leaf) or ("hashes_altered", lo, hi)."""
        lo, hi, node = 0, m, trusted
        while hi - lo > 1:
            c = self.children(lo, hi, node)
            if c is None:
                return "hashes_altered", lo, hi
            k, left, right = c
            if self.recomputed(lo, lo + k) != left:
                hi, node = lo + k, left
            else:
                lo, node = lo + k, right
        return "leaf", lo, node

    def genuine_leaf(self, m, trusted, index):
        """Leaf `index` of the trusted tree, checked at every level; None if unprovable."""
        lo, hi, node = 0, m, trusted
        while hi - lo > 1:
            c = self.children(lo, hi, node)
            if c is None:
                return None
            k, left, right = c
            if index < lo + k:
                hi, node = lo + k, left
            else:
                lo, node = lo + k, right
        return node


# ---------------------------------------------------------------------------------------------
# Command line

def read_bytes(path, what):
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise UsageError(f"cannot read {what} {path}: {e.strerror}") from None


def load_vkey(arg):
    """--vkey: the key text itself, or a file holding it on one line."""
    text = arg
    if os.path.isfile(arg):
        text = read_bytes(arg, "verifier key").decode("utf-8", "replace")
        if text.endswith("\n"):
            text = text[:-1]
    try:
        return VerifierKey(text)
    except ValueError as e:
        raise UsageError(f"bad verifier key: {e}") from None


def load_json(path):
    try:
        return json.loads(read_bytes(path, "proof"))
    except ValueError as e:
        raise UsageError(f"proof {path} is not JSON: {e}") from None


def hex32(value, what):
    if not isinstance(value, str) or not re.fullmatch(r"[0-9a-f]{64}", value):
        raise UsageError(f"{what} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def count(value, what):
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise UsageError(f"{what} is not a non-negative integer")
    return value


def check_signed(report, vk, path, size, root, label):
    """A checkpoint file that must verify under vk and commit to (size, root)."""
    cp, problems = read_checkpoint(read_bytes(path, "checkpoint"), vk)
    for kind, message in problems:
        report.add(kind, None, f"{label} checkpoint {path}: {message}")
    if cp is not None and cp.size != size:
        report.add("checkpoint", None, f"{label} checkpoint {path} is for size {cp.size}, not {size}")
    elif cp is not None and cp.root != root:
        report.add("checkpoint", None, f"{label} checkpoint {path} has root {cp.root.hex()}, "
                   f"not {root.hex()}")


def cmd_inclusion(args):
    proof, report = load_json(args.proof), Report()
    if not isinstance(proof, dict) or not isinstance(proof.get("path"), list):
        raise UsageError("the proof is not {leaf_index, tree_size, leaf_hash, path, root}")
    index, size = count(proof.get("leaf_index"), "leaf_index"), count(proof.get("tree_size"), "tree_size")
    leaf, root = hex32(proof.get("leaf_hash"), "leaf_hash"), hex32(proof.get("root"), "root")
    path = [hex32(h, "a path hash") for h in proof["path"]]
    if args.event_hex is not None:
        try:
            event = bytes.fromhex(args.event_hex)
        except ValueError:
            raise UsageError("--event-hex is not hex") from None
        if leaf_hash(event) != leaf:
            report.add("leaf", index + 1, f"SHA-256(0x00 || event) is {leaf_hash(event).hex()}, "
                       f"not leaf_hash {leaf.hex()}")
    if args.seq is not None:
        # The auditor asked for this seq: the proof must be for its leaf, and the event bytes
        # a Tally event of that seq (without --seq, --event-hex may be any leaf data).
        if index != args.seq - 1:
            report.add("event", args.seq, f"asked for seq {args.seq}, the proof is for leaf "
                       f"{index} (seq {index + 1})")
        if args.event_hex is not None:
            try:
                event_seq = decode_event(event)[1]
            except DecodeError as e:
                report.add("decode", args.seq, f"the event bytes do not decode: {e}")
            else:
                if event_seq != args.seq:
                    report.add("event", args.seq, f"asked for seq {args.seq}, the event bytes "
                               f"are of seq {event_seq}")
    if not verify_inclusion(index, size, leaf, path, root):
        report.add("inclusion", index + 1, f"the path does not lead from leaf {index} to the root "
                   f"of a tree of size {size}")
    if args.vkey:
        check_signed(report, load_vkey(args.vkey), args.checkpoint, size, root, "the")
    return report, f"leaf {index} (seq {index + 1}) is in the tree of size {size}, root {root.hex()}"


def cmd_consistency(args):
    proof, report = load_json(args.proof), Report()
    if not isinstance(proof, dict) or not isinstance(proof.get("path"), list):
        raise UsageError("the proof is not {from, to, path, root_from, root_to}")
    first, second = count(proof.get("from"), "from"), count(proof.get("to"), "to")
    r1, r2 = hex32(proof.get("root_from"), "root_from"), hex32(proof.get("root_to"), "root_to")
    path = [hex32(h, "a path hash") for h in proof["path"]]
    if not verify_consistency(first, second, path, r1, r2):
        report.add("consistency", None, f"the proof does not show that the tree of size {second} "
                   f"extends the tree of size {first}")
    if args.vkey:
        vk = load_vkey(args.vkey)
        if args.old:
            check_signed(report, vk, args.old, first, r1, "old")
        if args.new:
            check_signed(report, vk, args.new, second, r2, "new")
        if args.old and args.new and first == second:
            # One tree size, two signed notes: their chain lines must agree too (the chain
            # commits to the same events as the root), or the server signed two histories.
            old_cp, _ = read_checkpoint(read_bytes(args.old, "checkpoint"), vk)
            new_cp, _ = read_checkpoint(read_bytes(args.new, "checkpoint"), vk)
            if (old_cp is not None and new_cp is not None and old_cp.size == new_cp.size == first
                    and (old_cp.root != new_cp.root or old_cp.chain != new_cp.chain)):
                report.add("fork", None, f"two signed checkpoints of size {first} differ: "
                           "the log was forked")
    return report, f"the tree of size {second} ({r2.hex()}) extends that of size {first} ({r1.hex()})"


def cmd_export(args):
    vk = load_vkey(args.vkey)
    kept = [(path, read_bytes(path, "checkpoint")) for path in args.checkpoint]
    if not os.path.isdir(args.dir):
        raise UsageError(f"{args.dir} is not a directory")
    v = ExportVerifier(args.dir, vk, kept)
    result = v.run()
    rate = v.count / v.seconds if v.seconds > 0 else 0.0
    print(f"verify-py: {v.count} events in {v.seconds:.3f} s ({rate:,.0f} events/s)", file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    elif result["ok"]:
        print(f"ok: {result['events']} events (seq {result['from']}..{result['to']}), "
              f"root {result['root']}, chain {result['chain']}")
        for t in result["totals"]:
            print(f"  {t['currency']}: debits {t['debits']}, credits {t['credits']}")
    else:
        print_failure(result["problems"])
        fd = result["first_difference"]
        if fd:
            where = f"seq {fd['range'][0]}..{fd['range'][1]}" if "range" in fd else f"seq {fd['seq']}"
            print(f"first difference: {where} ({fd['kind']})")
    return 0 if result["ok"] else 1


def print_failure(problems):
    print(f"FAILED: {len(problems)} problem(s)")
    for pr in problems:
        where = f" seq {pr['seq']}" if pr["seq"] is not None else ""
        print(f"  {pr['kind']}{where}: {pr['message']}")


def run_proof_command(fn, args):
    report, success = fn(args)
    problems = report.finish()
    if args.json:
        print(json.dumps({"ok": not problems, "problems": problems}))
    elif problems:
        print_failure(problems)
    else:
        print(f"ok: {success}")
    return 1 if problems else 0


def main(argv=None):
    ap = argparse.ArgumentParser(prog="verify-py", description="Independent verifier for "
                                 "Tally exports, checkpoints and Merkle proofs (docs/FORMAT.md).")
    sub = ap.add_subparsers(dest="command", required=True)
    e = sub.add_parser("export", help="verify an export directory")
    e.add_argument("dir")
    e.add_argument("--vkey", required=True, help="verifier key, or a file holding it")
    e.add_argument("--checkpoint", action="append", default=[], help="a checkpoint kept earlier")
    e.add_argument("--json", action="store_true")
    i = sub.add_parser("inclusion", help="verify an RFC 9162 inclusion proof")
    i.add_argument("--proof", required=True)
    i.add_argument("--vkey")
    i.add_argument("--checkpoint")
    i.add_argument("--event-hex")
    i.add_argument("--seq", type=int, help="the seq asked for: the proof and the event bytes "
                   "must be of it")
    i.add_argument("--json", action="store_true")
    c = sub.add_parser("consistency", help="verify an RFC 9162 consistency proof")
    c.add_argument("--proof", required=True)
    c.add_argument("--vkey")
    c.add_argument("--old")
    c.add_argument("--new")
    c.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.command == "export":
            return cmd_export(args)
        if args.command == "inclusion":
            if bool(args.vkey) != bool(args.checkpoint):
                raise UsageError("--vkey and --checkpoint go together")
            return run_proof_command(cmd_inclusion, args)
        if bool(args.vkey) != bool(args.old or args.new):
            raise UsageError("--vkey goes with --old and/or --new")
        return run_proof_command(cmd_consistency, args)
    except UsageError as err:
        print(f"verify-py: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
