"""Self-tests for verify.py:  python3 -m unittest discover -s tools/verify-py  (from the repo root)

- RFC 9162 Merkle vectors and C2SP signed-note vectors from /work/shared/testdata (or
  $TALLY_TESTDATA), used as they are;
- the golden event vectors, read from docs/FORMAT.md itself;
- exports built here from FORMAT.md's Export layout (by code that shares nothing with
  verify.py: the tree comes from the recursive MTH definition, not a frontier), verified, then
  tampered with in every way the verifier must notice.

`python3 test_verify.py --build-export DIR N [FROM]` writes an export of N synthetic events (for
timing verify.py); it prints the verifier key to use.
"""
import base64
import contextlib
import io
import hashlib
import json
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import verify  # noqa: E402

FORMAT_MD = os.path.join(HERE, "..", "..", "docs", "FORMAT.md")
TESTDATA = os.environ.get("TALLY_TESTDATA", "/work/shared/testdata")
T0 = 1764028800000000000


def sha(b):
    return hashlib.sha256(b).digest()


def H(a, b):
    return sha(b"\x01" + a + b)


def b64(b):
    return base64.b64encode(b).decode()


def load_vectors(name):
    path = os.path.join(TESTDATA, name, "vectors.json")
    if not os.path.exists(path):
        raise unittest.SkipTest(f"{path} not found (set TALLY_TESTDATA)")
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# Reference code for building test data (independent of verify.py)

def enc_str(text):
    b = text.encode()
    return struct.pack(">H", len(b)) + b


def i128(v):
    return (v % (1 << 128)).to_bytes(16, "big")


def meta(pairs=()):
    out = struct.pack(">H", len(pairs))
    for k, v in sorted(pairs, key=lambda kv: kv[0].encode()):
        out += enc_str(k) + enc_str(v)
    return out


def enc_legs(legs):
    return struct.pack(">H", len(legs)) + b"".join(
        enc_str(a) + bytes([side]) + i128(x) for a, side, x in legs)


def event(etype, seq, ts, payload):
    return bytes([1, etype]) + struct.pack(">Qq", seq, ts) + payload


def entry(seq, eid, legs, ts=None):
    return event(5, seq, T0 + seq * 1000 if ts is None else ts,
                 enc_str(eid) + enc_legs(legs) + b"\x00\x00\x00" + meta())


# Reconciliation events (FORMAT.md: Reconciliation events)

def opt_str(text):
    return b"\x00" if text is None else b"\x01" + enc_str(text)


def opt_day(days):
    return b"\x00" if days is None else b"\x01" + struct.pack(">i", days)


def recon_balance(balance):
    """opt<balance>: (amount, day) or None."""
    return b"\x00" if balance is None else b"\x01" + i128(balance[0]) + struct.pack(">i", balance[1])


def recon_header(fmt=1, statement_id="STMT-1", statement_account=None, currency="EUR",
                 opening=None, closing=None, period=(20416, 20417), read=1, duplicates=0):
    return (bytes([fmt]) + opt_str(statement_id) + opt_str(statement_account) + enc_str(currency)
            + recon_balance(opening) + recon_balance(closing)
            + struct.pack(">iiII", period[0], period[1], read, duplicates))


def recon_line(identity="|||2025-11-25||credit|1050|EUR|1", source="line 2", amount=1050,
               direction=1, booking=20417, value_date=None, refs=(None, None, None, None)):
    """refs: bank reference, end-to-end id, reference, remittance."""
    return (enc_str(identity) + enc_str(source) + i128(amount) + bytes([direction])
            + struct.pack(">i", booking) + opt_day(value_date) + b"".join(opt_str(r) for r in refs))


def recon_imported(seq, account, lines, header=None, part=0, parts=1, count=None):
    return event(10, seq, T0 + seq * 1000, enc_str(account) + (header or recon_header())
                 + struct.pack(">IIH", part, parts, len(lines) if count is None else count)
                 + b"".join(lines))


def recon_match(rule=1, state=1, items=(1,), entries=("e-1",), difference=0, flags=0):
    return (bytes([rule, state]) + struct.pack(">H", len(items))
            + b"".join(struct.pack(">Q", i) for i in items) + struct.pack(">H", len(entries))
            + b"".join(enc_str(e) for e in entries) + i128(difference) + bytes([flags]))


def recon_matched(seq, account, matches):
    return event(11, seq, T0 + seq * 1000, enc_str(account) + struct.pack(">H", len(matches))
                 + b"".join(matches))


def recon_resolved(seq, item, reason, by, correcting=None):
    return event(12, seq, T0 + seq * 1000,
                 struct.pack(">Q", item) + enc_str(reason) + enc_str(by) + opt_str(correcting))


def recon_unmatched(seq, item, reason, by):
    return event(13, seq, T0 + seq * 1000, struct.pack(">Q", item) + opt_str(reason) + enc_str(by))


class RefTree:
    """RFC 9162 §2.1 straight from the definitions: MTH, PATH, PROOF/SUBPROOF."""

    def __init__(self, leaves):
        self.levels = [list(leaves)]     # complete subtrees, level by level
        while len(self.levels[-1]) > 1:
            lv = self.levels[-1]
            self.levels.append([H(lv[i], lv[i + 1]) for i in range(0, len(lv) - 1, 2)])

    def mth(self, lo, hi):
        n = hi - lo
        if n == 0:
            return sha(b"")
        if n & (n - 1) == 0 and lo % n == 0:
            level = n.bit_length() - 1
            return self.levels[level][lo >> level]
        k = 1
        while k * 2 < n:
            k *= 2
        return H(self.mth(lo, lo + k), self.mth(lo + k, hi))

    def path(self, m, lo, hi):
        n = hi - lo
        if n == 1:
            return []
        k = 1
        while k * 2 < n:
            k *= 2
        if m < k:
            return self.path(m, lo, lo + k) + [self.mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self.mth(lo, lo + k)]

    def consistency(self, m, n):
        return self._subproof(m, 0, n, True)

    def _subproof(self, m, lo, hi, complete):
        n = hi - lo
        if m == n:
            return [] if complete else [self.mth(lo, hi)]
        k = 1
        while k * 2 < n:
            k *= 2
        if m <= k:
            return self._subproof(m, lo, lo + k, complete) + [self.mth(lo + k, hi)]
        return self._subproof(m - k, lo + k, hi, False) + [self.mth(lo, lo + k)]


class Signer:
    """A signed-note Ed25519 signer (FORMAT.md: Checkpoints)."""

    def __init__(self, name, seed=None):
        self.key = (Ed25519PrivateKey.from_private_bytes(seed) if seed
                    else Ed25519PrivateKey.generate())
        self.name = name
        pub = self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.hash = sha(name.encode() + b"\n\x01" + pub)[:4]
        self.vkey = "+".join([name, self.hash.hex(), b64(b"\x01" + pub)])

    @classmethod
    def from_skey(cls, skey):
        private, key, name, hash_hex, data = skey.split("+", 4)
        assert (private, key) == ("PRIVATE", "KEY")
        raw = base64.b64decode(data)
        assert raw[0] == 1
        signer = cls(name, raw[1:])
        assert signer.hash.hex() == hash_hex
        return signer

    def sign(self, text):
        sig = self.key.sign(text)
        return text + b"\n" + "\u2014 ".encode() + f"{self.name} {b64(self.hash + sig)}\n".encode()

    def checkpoint(self, size, root, chain, origin=None):
        body = f"{origin or self.name}\n{size}\n{b64(root)}\nchain {chain.hex()}\n"
        return self.sign(body.encode())


def golden_events():
    """[(seq, type name, bytes, leaf, chain)] parsed from FORMAT.md's Golden vectors."""
    with open(FORMAT_MD) as f:
        text = f.read()
    found = re.findall(r"\*\*seq (\d+)\*\* `(\w+)`\s*```\s*bytes\s+([0-9a-f]+)\s*leaf\s+([0-9a-f]+)\s*"
                       r"chain\s+([0-9a-f]+)", text)
    return [(int(s), t, bytes.fromhex(b), bytes.fromhex(l), bytes.fromhex(c))
            for s, t, b, l, c in found]


# What each golden event names, for building a partial export's context.
GOLDEN_INFO = {2: {"opens": "cash"}, 3: {"opens": "alice"}, 4: {"legs": ["cash", "alice"]},
               5: {"legs": ["alice", "cash"], "places": "h-1"}, 6: {"captures": "h-1"},
               7: {"legs": ["cash", "alice"]}}


def golden_ledger():
    return [(b, GOLDEN_INFO.get(seq, {})) for seq, _, b, _, _ in golden_events()]


def synthetic_ledger(n, seed=7):
    """n events: accounts in EUR and USD, balanced entries, holds, captures and releases."""
    rnd = random.Random(seed)
    evs, accounts, holds = [], {"EUR": [], "USD": []}, []

    def add(etype, payload, **info):
        seq = len(evs) + 1
        evs.append((event(etype, seq, T0 + seq * 1000, payload), info))

    def open_account(cur):
        name = f"{cur.lower()}-{len(accounts[cur])}"
        add(3, enc_str(name) + enc_str("platform") + enc_str(cur) + bytes([0, 0]) + meta(),
            opens=name)
        accounts[cur].append(name)

    add(1, enc_str("platform") + enc_str("Platform") + meta())
    for cur in ("EUR", "USD", "EUR", "USD"):
        open_account(cur)
    while len(evs) < n:
        r, cur, seq = rnd.random(), rnd.choice(["EUR", "USD"]), len(evs) + 1
        a, b = rnd.sample(accounts[cur], 2)
        x = rnd.randint(1, 10 ** 9)
        if r < 0.03:
            open_account(cur)
        elif r < 0.6:
            add(5, enc_str(f"e-{seq}") + enc_legs([(a, 0, x), (b, 1, x)]) + b"\x00\x00\x00" + meta(),
                legs=[a, b])
        elif r < 0.8 or not holds:
            holds.append((f"h-{seq}", x))
            add(6, enc_str(f"h-{seq}") + enc_legs([(a, 0, x), (b, 1, x)]) + b"\x00\x00" + meta(),
                legs=[a, b], places=f"h-{seq}")
        elif r < 0.95:
            hid, amount = holds.pop(rnd.randrange(len(holds)))
            c = rnd.randint(0, amount)
            add(7, enc_str(hid) + struct.pack(">H", 2) + i128(c) + i128(c), captures=hid)
        else:
            hid, _ = holds.pop(rnd.randrange(len(holds)))
            add(8, enc_str(hid))
    return evs


def context_seqs(evs, A, B):
    """The account_opened of every account a leg of an exported event names (including the
    legs of a captured hold) and the hold_placed of every captured hold, before A."""
    opened, placed, need = {}, {}, set()
    for seq, (_, info) in enumerate(evs[:B], 1):
        if seq >= A:
            accounts = list(info.get("legs", []))
            if "captures" in info:
                hold_seq, hold_accounts = placed[info["captures"]]
                if hold_seq < A:
                    need.add(hold_seq)
                accounts += hold_accounts
            need.update(opened[a] for a in accounts if opened[a] < A)
        if "opens" in info:
            opened.setdefault(info["opens"], seq)
        if "places" in info:
            placed[info["places"]] = (seq, info["legs"])
    return sorted(need)


def build_export(d, evs, A, B, signer, context=None):
    """Writes an export of events A..B of the ledger `evs` (a list of (bytes, info) from seq 1)
    in FORMAT.md's Export layout; returns the reference tree and hashes."""
    os.makedirs(d, exist_ok=True)
    raw = [b for b, _ in evs[:B]]
    leaves = [sha(b"\x00" + b) for b in raw]
    chains = [bytes(32)]
    for leaf in leaves:
        chains.append(sha(chains[-1] + leaf))
    tree, n, p = RefTree(leaves), B, A - 1
    context = context_seqs(evs, A, B) if context is None else context

    def write(name, data):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)

    write("manifest", f"tally-export 1\norigin {signer.name}\nfrom {A}\nto {B}\nevents {B - A + 1}\n"
                      f"context {len(context)}\n".encode())
    write("checkpoint", signer.checkpoint(n, tree.mth(0, n), chains[n]))
    write("vkey", signer.vkey.encode() + b"\n")
    write("events", b"".join(struct.pack(">I", len(b)) + b for b in raw[p:]))
    write("hashes", b"".join(leaves[i] + chains[i + 1] for i in range(p, n)))
    write("prefix", struct.pack(">Q", p) + chains[p] + b"".join(
        tree.mth(p >> (l + 1) << (l + 1), p >> l << l)
        for l in reversed(range(p.bit_length())) if p >> l & 1))
    nodes, level = [], 1
    while 1 << level <= n:
        nodes += [tree.levels[level][i] for i in range((p + (1 << level) - 1) >> level, n >> level)]
        level += 1
    write("tree", b"".join(nodes))
    ctx = b""
    for seq in context:
        path = tree.path(seq - 1, 0, n)
        ctx += struct.pack(">I", len(raw[seq - 1])) + raw[seq - 1] + bytes([len(path)]) + b"".join(path)
    write("context", ctx)
    return {"tree": tree, "leaves": leaves, "chains": chains, "root": tree.mth(0, n)}


def read_records(d):
    with open(os.path.join(d, "events"), "rb") as f:
        data = f.read()
    out, o = [], 0
    while o < len(data):
        n = struct.unpack_from(">I", data, o)[0]
        out.append(data[o + 4:o + 4 + n])
        o += 4 + n
    return out


def write_records(d, records):
    with open(os.path.join(d, "events"), "wb") as f:
        f.write(b"".join(struct.pack(">I", len(r)) + r for r in records))


def patch(d, name, fn):
    path = os.path.join(d, name)
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(fn(data))


def verify_dir(d, vkey, kept=()):
    notes = []
    for path in kept:
        with open(path, "rb") as f:
            notes.append((path, f.read()))
    return verify.ExportVerifier(d, verify.VerifierKey(vkey), notes).run()


def kinds(result):
    return {p["kind"] for p in result["problems"]}


def problem(result, kind):
    return [(p["seq"]) for p in result["problems"] if p["kind"] == kind]


# ---------------------------------------------------------------------------------------------

class MerkleVectorTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = load_vectors("merkle")

    def test_leaf_hashes_and_roots(self):
        leaves = [bytes.fromhex(h) for h in self.v["leaf_hashes"]]
        for i, data in enumerate(self.v["leaves_hex"]):
            self.assertEqual(verify.leaf_hash(bytes.fromhex(data)), leaves[i])
        for n, root in enumerate(self.v["roots"]):
            f = verify.Frontier()
            for leaf in leaves[:n]:
                f.append(leaf)
            self.assertEqual(f.root().hex(), root, n)
            self.assertEqual(RefTree(leaves).mth(0, n).hex(), root, n)   # the test builder too

    def test_inclusion(self):
        tree = RefTree([bytes.fromhex(h) for h in self.v["leaf_hashes"]])
        for c in self.v["inclusion"]:
            path = [bytes.fromhex(h) for h in c["path"]]
            self.assertTrue(verify.verify_inclusion(c["leaf_index"], c["tree_size"],
                            bytes.fromhex(c["leaf_hash"]), path, bytes.fromhex(c["root"])), c)
            self.assertEqual(tree.path(c["leaf_index"], 0, c["tree_size"]), path)

    def test_inclusion_invalid(self):
        for c in self.v["inclusion_invalid"]:
            self.assertFalse(verify.verify_inclusion(c["leaf_index"], c["tree_size"],
                             bytes.fromhex(c["leaf_hash"]), [bytes.fromhex(h) for h in c["path"]],
                             bytes.fromhex(c["root"])), c["why"])

    def test_consistency(self):
        tree = RefTree([bytes.fromhex(h) for h in self.v["leaf_hashes"]])
        for c in self.v["consistency"]:
            proof = [bytes.fromhex(h) for h in c["proof"]]
            self.assertTrue(verify.verify_consistency(c["size1"], c["size2"], proof,
                            bytes.fromhex(c["root1"]), bytes.fromhex(c["root2"])), c)
            self.assertEqual(tree.consistency(c["size1"], c["size2"]), proof)

    def test_consistency_invalid(self):
        for c in self.v["consistency_invalid"]:
            self.assertFalse(verify.verify_consistency(c["size1"], c["size2"],
                             [bytes.fromhex(h) for h in c["proof"]], bytes.fromhex(c["root1"]),
                             bytes.fromhex(c["root2"])), c["why"])
        root = bytes.fromhex(self.v["roots"][3])
        self.assertFalse(verify.verify_consistency(3, 3, [root], root, root))  # must be empty
        self.assertFalse(verify.verify_consistency(4, 3, [], root, root))


class NoteVectorTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.v = load_vectors("note")
        cls.vk = verify.VerifierKey(cls.v["vkey"])

    def test_vkey_and_key_hash(self):
        self.assertEqual(self.vk.name, self.v["key_name"])
        self.assertEqual(self.vk.hash.hex(), self.v["key_hash_hex"])
        self.assertEqual(verify.key_hash(self.vk.name, self.vk.public).hex(), self.v["key_hash_hex"])

    def test_notes(self):
        for note in self.v["notes"]:
            data = note["note"].encode()
            if note["valid"]:
                text = verify.open_note(data, self.vk)
                self.assertTrue(data.startswith(text) and text.endswith(b"\n"), note["name"])
            else:
                with self.assertRaises(verify.NoteError, msg=note["name"]):
                    verify.open_note(data, self.vk)

    def test_signer_reproduces_the_vectors(self):
        signer = Signer.from_skey(self.v["skey"])
        self.assertEqual(signer.vkey, self.v["vkey"])
        for note in self.v["notes"]:
            if note["valid"]:
                data = note["note"].encode()
                self.assertEqual(signer.sign(verify.open_note(data, self.vk)), data)

    def test_checkpoint_body(self):
        note = next(n for n in self.v["notes"] if n["name"] == "checkpoint-size-8")["note"].encode()
        cp = verify.parse_checkpoint_body(verify.open_note(note, self.vk))
        self.assertEqual((cp.origin, cp.size, cp.chain), ("example.com/ledger", 8, bytes(32)))
        self.assertEqual(cp.root.hex(), load_vectors("merkle")["roots"][8])
        # Signed by PeterNeumann, whose name is not the origin: not a Tally checkpoint.
        cp, problems = verify.read_checkpoint(note, self.vk)
        self.assertEqual([k for k, _ in problems], ["checkpoint"])

    def test_other_key_and_bad_vkeys(self):
        other = Signer(self.v["key_name"])             # same name, another key
        note = self.v["notes"][0]["note"].encode()
        with self.assertRaises(verify.NoteError):
            verify.open_note(note, verify.VerifierKey(other.vkey))
        name, h, key = self.v["vkey"].split("+", 2)
        raw = base64.b64decode(key)
        for bad in [f"{name}+{'0' * 8}+{key}",                       # wrong key hash
                    "+".join([name, h, b64(b"\x02" + raw[1:])]),    # not Ed25519
                    f"{name}+{h}+{b64(raw[:-1])}",                   # short key
                    f"{name}+{h}+{key[:-1]}",                        # bad base64
                    f"Peter Neumann+{h}+{key}", f"+{h}+{key}",       # bad names
                    f"{name}+{h}", "", name]:
            with self.assertRaises(ValueError, msg=bad):
                verify.VerifierKey(bad)

    def test_malformed_signature_lines(self):
        good = self.v["notes"][0]["note"].encode()
        text, sig = good.rsplit(b"\n\n", 1)
        for bad in [text + b"\n\n" + sig.replace("\u2014".encode(), b"-"),
                    text + b"\n\n" + sig[:-1], text + b"\n\n", text + b"\n\n" + sig + b"junk\n",
                    text.replace(b"If", b"I\x01f") + b"\n\n" + sig]:
            with self.assertRaises(verify.NoteError):
                verify.open_note(bad, self.vk)
        other = Signer("somebody-else")                # an unknown extra signer is ignored
        extra = other.sign(text + b"\n")[len(text) + 2:]
        self.assertEqual(verify.open_note(good + extra, self.vk), text + b"\n")


class EventTests(unittest.TestCase):
    def test_golden_vectors(self):
        golden = golden_events()
        self.assertEqual([g[0] for g in golden], list(range(1, 16)))
        names = ["partner_created", "asset_declared", "account_opened", "account_closed",
                 "entry_posted", "hold_placed", "hold_captured", "hold_released", "hold_expired",
                 "recon_imported", "recon_matched", "recon_resolved", "recon_unmatched"]
        chain = bytes(32)
        for seq, name, data, leaf, chain_hash in golden:
            etype, s, ts, _ = verify.decode_event(data)
            self.assertEqual((names[etype - 1], s), (name, seq))
            self.assertEqual(verify.leaf_hash(data), leaf, seq)
            chain = sha(chain + leaf)
            self.assertEqual(chain, chain_hash, seq)

    def test_golden_fields(self):
        ev = {g[0]: verify.decode_event(g[2]) for g in golden_events()}
        self.assertEqual(ev[3][3], ("alice", "platform", "EUR", 1, 3, 100000, [("kyc", "full")]))
        self.assertEqual(ev[4][3], ("e-1", [("cash", 0, 1050), ("alice", 1, 1050)], "INV-7", 20417,
                                    None, [("channel", "card"), ("country", "DE")]))
        self.assertEqual(ev[5][3][3], T0 + 86400 * 10 ** 9)
        self.assertEqual(ev[6][3], ("h-1", [200, 200]))
        self.assertEqual(ev[7][3][4], "e-1")
        self.assertEqual(ev[8][3], ("USDC", 6, "USD Coin"))
        self.assertEqual(ev[12][3], (
            "cash", (1, "STMT-2025-11-25", None, "EUR", (-2500, 20416), (-550, 20417), 20416,
                     20417, 3, 1), 0, 1,
            [("|BR-1|E2E-INV-7|2025-11-25|2025-11-25|credit|1050|EUR|1", "Stmt/Ntry[1]", 1050, 1,
              20417, 20417, "BR-1", "E2E-INV-7", "INV-7", "Invoice INV-7"),
             ("|||2025-11-25||credit|900|EUR|1", "Stmt/Ntry[3]", 900, 1, 20417, None, None, None,
              None, None)]))
        self.assertEqual(ev[13][3], ("cash", [(1, 1, [1], ["e-1"], 0, 0),
                                              (1, 2, [2], ["e-1.reversal"], -150, 2)]))
        self.assertEqual(ev[14][3], (2, "bank fee withheld", "ops", "e-fee-1"))
        self.assertEqual(ev[15][3], (1, "wrong entry", "ops"))

    def test_reconciliation_events(self):
        """Each of the four types, built here from FORMAT.md, decodes to its fields."""
        full = recon_line("DE89|BR-9|E2E-9|2025-11-25|2025-11-26|debit|99|EUR|2", "line 7", 99, 0,
                          20417, 20418, ("BR-9", "E2E-9", "INV-9", "Gebühr \u00e9"))
        header = recon_header(0, None, "DE89 3704", "EUR", None, (-12345, 20417), (20400, 20417),
                              1500, 498)
        etype, seq, ts, data = verify.decode_event(
            recon_imported(3, "bank:eur", [full, recon_line()], header, part=1, parts=2))
        self.assertEqual((etype, seq, ts), (10, 3, T0 + 3000))
        self.assertEqual(data, (
            "bank:eur", (0, None, "DE89 3704", "EUR", None, (-12345, 20417), 20400, 20417, 1500, 498),
            1, 2,
            [("DE89|BR-9|E2E-9|2025-11-25|2025-11-26|debit|99|EUR|2", "line 7", 99, 0, 20417, 20418,
              "BR-9", "E2E-9", "INV-9", "Gebühr \u00e9"),
             ("|||2025-11-25||credit|1050|EUR|1", "line 2", 1050, 1, 20417, None, None, None, None,
              None)]))
        self.assertEqual(verify.decode_event(recon_imported(1, "a", []))[3][4], [])
        self.assertEqual(len(verify.decode_event(recon_imported(1, "a", [recon_line()] * 1000))[3][4]),
                         1000)
        self.assertEqual(verify.decode_event(recon_imported(
            1, "a", [], recon_header(2, period=(5, 5)), part=0, parts=1))[3][1][0], 2)

        matches = [recon_match(3, 1, [3, 4, 5], ["e-2", "h-1"]),
                   recon_match(2, 1, [6], ["e-3"]),
                   recon_match(1, 2, [2 ** 64 - 1], ["e-4"], -(2 ** 127), 3),
                   recon_match(1, 2, [7], ["e-5"], 150, 1)]
        self.assertEqual(verify.decode_event(recon_matched(4, "cash", matches)), (11, 4, T0 + 4000, (
            "cash", [(3, 1, [3, 4, 5], ["e-2", "h-1"], 0, 0), (2, 1, [6], ["e-3"], 0, 0),
                     (1, 2, [2 ** 64 - 1], ["e-4"], -(2 ** 127), 3), (1, 2, [7], ["e-5"], 150, 1)])))
        self.assertEqual(verify.decode_event(recon_matched(4, "cash", []))[3], ("cash", []))

        self.assertEqual(verify.decode_event(recon_resolved(5, 9, "fee", "ops", "e-fee")),
                         (12, 5, T0 + 5000, (9, "fee", "ops", "e-fee")))
        self.assertEqual(verify.decode_event(recon_resolved(5, 9, "", "key-1"))[3],
                         (9, "", "key-1", None))
        self.assertEqual(verify.decode_event(recon_unmatched(6, 2, "wrong entry", "ops")),
                         (13, 6, T0 + 6000, (2, "wrong entry", "ops")))
        self.assertEqual(verify.decode_event(recon_unmatched(6, 2, None, "ops"))[3], (2, None, "ops"))

    def test_reconciliation_imported_version_2(self):
        """Version 2 of recon_imported: a text encoding after the header, a currency after
        each line (absent: the statement's), and camt054 (format 3); other types stay 1."""
        foreign = recon_line("|||2025-11-25||debit|700|USD|1", "Stmt/Ntry[2]", 700, 0) \
            + opt_str("USD")
        own = recon_line() + opt_str(None)
        header = recon_header(3, "NTF-1", "DE89", "EUR") + bytes([2])
        data = bytes([2]) + recon_imported(7, "bank:eur", [own, foreign], header)[1:]
        etype, seq, _, (account, h, part, parts, lines) = verify.decode_event(data)
        self.assertEqual((etype, seq, account, part, parts), (10, 7, "bank:eur", 0, 1))
        self.assertEqual((h[0], h[3], h[10]), (3, "EUR", 2))
        self.assertEqual([line[10] for line in lines], [None, "USD"])
        self.assertEqual(lines[1][:4], ("|||2025-11-25||debit|700|USD|1", "Stmt/Ntry[2]", 700, 0))
        bad = {
            "the statement's own currency written": bytes([2]) + recon_imported(
                7, "a", [recon_line() + opt_str("EUR")], recon_header() + bytes([0]))[1:],
            "text encoding 3": bytes([2]) + recon_imported(7, "a", [], recon_header()
                                                           + bytes([3]))[1:],
            "no text encoding": bytes([2]) + recon_imported(7, "a", [], recon_header())[1:],
            "version 2 of another type": bytes([2]) + recon_unmatched(6, 2, None, "ops")[1:],
            "version 3": bytes([3]) + recon_imported(7, "a", [], header)[1:],
        }
        for name, data in bad.items():
            with self.assertRaises(verify.DecodeError, msg=name):
                verify.decode_event(data)

    def test_reconciliation_strict_decoding(self):
        """Every invalid byte FORMAT.md names is refused, and so are truncation and trailing
        bytes at every position."""
        good_line, good_match = recon_line(), recon_match()
        good = {
            "imported": recon_imported(1, "cash", [good_line]),
            "matched": recon_matched(1, "cash", [good_match]),
            "resolved": recon_resolved(1, 1, "r", "ops", "e-1"),
            "unmatched": recon_unmatched(1, 1, "r", "ops"),
        }
        for data in good.values():
            verify.decode_event(data)
        header_at = 18 + 2 + len("cash")              # offset of the imported header
        line_at = len(good["imported"]) - len(good_line)
        match_at = len(good["matched"]) - len(good_match)

        def at(data, offset, byte):
            return data[:offset] + bytes([byte]) + data[offset + 1:]
        bad = {
            "type 14": at(good["unmatched"], 1, 14),
            "type 0": at(good["unmatched"], 1, 0),
            "format 3": recon_imported(1, "a", [], recon_header(3)),
            "format 255": at(good["imported"], header_at, 255),
            "statement id presence": at(good["imported"], header_at + 1, 2),
            "statement account presence": recon_imported(1, "a", [], recon_header(
                statement_id=None)).replace(b"\x00\x00\x00\x03EUR", b"\x00\x02\x00\x03EUR"),
            "opening presence": recon_imported(1, "a", [], recon_header(statement_id=None))
            .replace(b"EUR\x00\x00", b"EUR\x02\x00"),
            "closing presence": recon_imported(1, "a", [], recon_header(statement_id=None))
            .replace(b"EUR\x00\x00", b"EUR\x00\x02"),
            "period from > to": recon_imported(1, "a", [], recon_header(period=(20418, 20417))),
            "currency": recon_imported(1, "a", [], recon_header(currency="eur")),
            "account": recon_imported(1, "a b", []),
            "part = parts": recon_imported(1, "a", [], part=1, parts=1),
            "part > parts": recon_imported(1, "a", [], part=5, parts=2),
            "parts 0": recon_imported(1, "a", [], part=0, parts=0),
            "1001 lines": recon_imported(1, "a", [good_line] * 1001),
            "line count too high": recon_imported(1, "a", [good_line], count=2),
            "direction 2": recon_imported(1, "a", [recon_line(direction=2)]),
            "direction 255": at(good["imported"], line_at + len(good_line) - 4 - 5 - 1, 255),
            "amount 0": recon_imported(1, "a", [recon_line(amount=0)]),
            "amount < 0": recon_imported(1, "a", [recon_line(amount=-1)]),
            "value date presence": at(good["imported"], len(good["imported"]) - 5, 2),
            "identity utf-8": recon_imported(1, "a", [b"\x00\x01\xff" + good_line[2 + len(
                "|||2025-11-25||credit|1050|EUR|1"):]]),
            "rule 0": recon_matched(1, "a", [recon_match(rule=0)]),
            "rule 4": recon_matched(1, "a", [recon_match(rule=4)]),
            "state 0": recon_matched(1, "a", [recon_match(state=0)]),
            "state 3": recon_matched(1, "a", [recon_match(state=3)]),
            "state 255": at(good["matched"], match_at + 1, 255),
            "flags 4": recon_matched(1, "a", [recon_match(state=2, flags=4)]),
            "flags 128": at(good["matched"], len(good["matched"]) - 1, 128),
            "difference in a matched match": recon_matched(1, "a", [recon_match(difference=1)]),
            "match entry id": recon_matched(1, "a", [recon_match(entries=["e 1"])]),
            "second match bad": recon_matched(1, "a", [good_match, recon_match(rule=9)]),
            "match account": recon_matched(1, "", [good_match]),
            "correcting entry presence": at(good["resolved"], len(good["resolved"]) - 6, 2),
            "correcting entry id": recon_resolved(1, 1, "r", "ops", "e/1"),
            "unmatched reason presence": at(good["unmatched"], 26, 2),
            "reason utf-8": event(13, 1, T0, struct.pack(">Q", 1) + b"\x01\x00\x01\xff"
                                  + enc_str("ops")),
            "by utf-8": event(13, 1, T0, struct.pack(">Q", 1) + b"\x00\x00\x01\xff"),
        }
        for i in range(1, 5):                  # each of the four references of a line
            refs = [None] * 4
            line = recon_line(refs=refs)
            bad[f"line reference {i} presence"] = recon_imported(
                1, "a", [line[:len(line) - 5 + i] + b"\x02" + line[len(line) - 4 + i:]])
        for name, data in good.items():
            for cut in range(18, len(data)):
                bad[f"{name} truncated to {cut}"] = data[:cut]
            bad[f"{name} trailing"] = data + b"\x00"
        for why, data in bad.items():
            with self.assertRaises(verify.DecodeError, msg=why):
                verify.decode_event(data)

    def test_strict_decoding(self):
        golden = [g[2] for g in golden_events()]
        legs = enc_legs([("a", 0, 1), ("b", 1, 1)])
        account = enc_str("a") + enc_str("p") + enc_str("EUR")
        bad = {
            "version": b"\x02" + golden[0][1:],
            "type 0": golden[0][:1] + b"\x00" + golden[0][2:],
            "type 14": golden[0][:1] + b"\x0e" + golden[0][2:],
            "presence": event(5, 1, T0, enc_str("e") + legs + b"\x02" + b"\x00\x00" + meta()),
            "side": event(5, 1, T0, enc_str("e") + enc_legs([("a", 2, 1)]) + b"\x00\x00\x00" + meta()),
            "unsorted": event(1, 1, T0, enc_str("p") + enc_str("P") + b"\x00\x02" + enc_str("b")
                              + enc_str("") + enc_str("a") + enc_str("")),
            "duplicate": event(1, 1, T0, enc_str("p") + enc_str("P") + b"\x00\x02" + enc_str("a")
                               + enc_str("") + enc_str("a") + enc_str("")),
            "33 pairs": event(1, 1, T0, enc_str("p") + enc_str("P")
                              + meta([(f"k{i:02}", "") for i in range(33)])),
            "empty key": event(1, 1, T0, enc_str("p") + enc_str("P") + b"\x00\x01" + enc_str("") * 2),
            "flags": event(3, 1, T0, account + b"\x00\x04" + meta()),
            "normal side": event(3, 1, T0, account + b"\x02\x00" + meta()),
            "scale": event(2, 1, T0, enc_str("USDC") + b"\x13" + enc_str("x")),
            "id charset": event(4, 1, T0, enc_str("a b")),
            "currency": event(3, 1, T0, enc_str("a") + enc_str("p") + enc_str("eur") + b"\x00\x00"
                              + meta()),
            "utf-8": event(1, 1, T0, enc_str("p") + b"\x00\x01\xff" + meta()),
        }
        for seq, data in enumerate(golden, 1):
            bad[f"seq {seq} truncated"] = data[:-1]
            bad[f"seq {seq} trailing"] = data + b"\x00"
        for why, data in bad.items():
            with self.assertRaises(verify.DecodeError, msg=why):
                verify.decode_event(data)
        verify.decode_event(event(1, 1, T0, enc_str("p") + enc_str("P")
                                  + meta([(f"k{i:02}", "v" * 512) for i in range(32)])))


class GoldenExportTests(unittest.TestCase):
    """A full export (seq 1..11) of the golden events, then tampered copies of it."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="verify-py-test-")
        cls.signer = Signer("example.com/tally-test")
        cls.ledger = golden_ledger()
        cls.base = os.path.join(cls.tmp, "base")
        cls.info = build_export(cls.base, cls.ledger, 1, 11, cls.signer)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def copy(self):
        d = tempfile.mkdtemp(dir=self.tmp)
        os.rmdir(d)
        shutil.copytree(self.base, d)
        return d

    def check(self, d, expected_kinds, first=None, **kw):
        r = verify_dir(d, self.signer.vkey, **kw)
        self.assertFalse(r["ok"])
        self.assertTrue(set(expected_kinds) <= kinds(r), (expected_kinds, r["problems"]))
        if first is not None:
            self.assertEqual(r["first_difference"] and
                             (r["first_difference"]["seq"], r["first_difference"]["kind"]), first,
                             r["problems"])
        return r

    def test_valid(self):
        r = verify_dir(self.base, self.signer.vkey)
        self.assertTrue(r["ok"], r["problems"])
        self.assertEqual((r["events"], r["from"], r["to"]), (11, 1, 11))
        self.assertEqual(r["chain"], golden_events()[10][4].hex())
        self.assertEqual(r["root"], self.info["root"].hex())
        # Posted: e-1 1050, the capture 200, the reversal 1050.
        self.assertEqual(r["totals"], [{"currency": "EUR", "debits": "2300", "credits": "2300"}])
        self.assertIsNone(r["first_difference"])

    def test_reconciliation_events(self):
        """recon_imported, _matched, _resolved and _unmatched move no money: exports that hold
        them verify, with the posted totals of the entries alone."""
        eur = [{"currency": "EUR", "debits": "2300", "credits": "2300"}]
        for A, B, totals in [(1, 15, eur), (12, 15, []), (4, 13, eur), (7, 14, eur)]:
            d = os.path.join(self.tmp, f"recon-{A}-{B}")
            info = build_export(d, self.ledger, A, B, self.signer)
            r = verify_dir(d, self.signer.vkey)
            self.assertTrue(r["ok"], (A, B, r["problems"]))
            self.assertEqual((r["events"], r["root"], r["chain"]),
                             (B - A + 1, info["root"].hex(), golden_events()[B - 1][4].hex()))
            if A == 1 or A == 12:
                self.assertEqual(r["totals"], totals)
        # Accounts, items and entries named by reconciliation events are not checked against
        # the books (no leg: no context, no double entry).
        ledger = self.ledger[:11] + [
            (recon_imported(12, "bank", [recon_line(amount=10 ** 30)]), {}),
            (recon_matched(13, "bank", [recon_match(3, 1, [1, 2], ["nowhere", "e-1"])]), {}),
            (recon_resolved(14, 99, "r", "ops", "e-none"), {}),
            (recon_unmatched(15, 0, None, "ops"), {}),
            (entry(16, "e-2", [("cash", 0, 5), ("alice", 1, 5)]), {})]
        d = os.path.join(self.tmp, "recon-unknown")
        build_export(d, ledger, 1, 16, self.signer)
        r = verify_dir(d, self.signer.vkey)
        self.assertTrue(r["ok"], r["problems"])
        self.assertEqual(r["totals"], [{"currency": "EUR", "debits": "2305", "credits": "2305"}])
        # Altered or undecodable reconciliation events are found like any other.
        d = os.path.join(self.tmp, "recon-altered")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(os.path.join(self.tmp, "recon-1-15"), d)
        recs = read_records(d)
        recs[12] = recs[12][:-1] + b"\x03"              # both flags of the discrepancy
        recs[13] = recs[13][:-8] + b"\x02" + recs[13][-7:]   # correcting entry presence
        write_records(d, recs)
        r = verify_dir(d, self.signer.vkey)
        self.assertEqual(r["first_difference"], {"seq": 13, "kind": "altered"}, r["problems"])
        self.assertEqual(problem(r, "decode"), [14])
        self.assertNotIn("double_entry", kinds(r))

    def test_flipped_byte(self):
        d = self.copy()
        recs = read_records(d)
        recs[3] = recs[3].replace(b"INV-7", b"INV-8")
        write_records(d, recs)
        r = self.check(d, {"leaf", "chain", "root", "altered"}, (4, "altered"))
        self.assertEqual(problem(r, "leaf"), [4])
        self.assertEqual(problem(r, "altered"), [4])

    def test_flipped_byte_breaking_decoding(self):
        d = self.copy()
        recs = read_records(d)
        recs[7] = b"\x07" + recs[7][1:]
        write_records(d, recs)
        r = self.check(d, {"decode", "leaf", "altered"}, (8, "altered"))
        self.assertEqual(problem(r, "decode"), [8])

    def test_deleted_record(self):
        d = self.copy()
        recs = read_records(d)
        del recs[5]
        write_records(d, recs)
        r = self.check(d, {"count", "sequence", "missing"}, (6, "missing"))
        self.assertEqual(problem(r, "sequence")[0], 6)

    def test_deleted_last_record(self):
        d = self.copy()
        write_records(d, read_records(d)[:-1])
        self.check(d, {"count", "root", "missing"}, (11, "missing"))

    def test_swapped_records(self):
        d = self.copy()
        recs = read_records(d)
        recs[3], recs[4] = recs[4], recs[3]
        write_records(d, recs)
        r = self.check(d, {"sequence", "timestamp", "reordered"}, (4, "reordered"))
        self.assertEqual(problem(r, "sequence"), [4, 5])

    def test_inserted_record(self):
        d = self.copy()
        recs = read_records(d)
        forged = entry(5, "e-x", [("cash", 0, 1), ("alice", 1, 1)], ts=T0 + 1500)
        recs.insert(4, forged)
        write_records(d, recs)
        self.check(d, {"count", "sequence", "inserted"}, (5, "inserted"))

    def test_changed_checkpoint_signature(self):
        d = self.copy()

        def flip(note):
            i = note.rindex(b" ") + 10               # a character inside the signature
            return note[:i] + (b"A" if note[i:i + 1] != b"A" else b"B") + note[i + 1:]
        patch(d, "checkpoint", flip)
        r = self.check(d, {"signature"})
        self.assertEqual(kinds(r), {"signature"})

    def test_wrong_vkey(self):
        other = Signer(self.signer.name)
        r = verify_dir(self.base, other.vkey)
        self.assertFalse(r["ok"])
        self.assertEqual(kinds(r), {"signature"})
        r = verify_dir(self.base, Signer("someone.else").vkey)
        self.assertTrue({"signature", "checkpoint", "manifest"} <= kinds(r))

    def test_unbalanced_entry(self):
        ledger = list(self.ledger)
        b, info = ledger[3]
        amount = i128(1050)
        i = b.rindex(amount)                         # alice's credit leg
        ledger[3] = (b[:i] + i128(1000) + b[i + 16:], info)
        d = os.path.join(self.tmp, "unbalanced")
        build_export(d, ledger, 1, 11, self.signer)  # signed by the ledger: hashes all agree
        r = verify_dir(d, self.signer.vkey)
        self.assertEqual(kinds(r), {"double_entry"})
        self.assertEqual(problem(r, "double_entry"), [4, None])   # the entry, then the totals

    def test_account_not_opened_and_unknown_hold(self):
        ledger = self.ledger[:11] + [
            (entry(12, "e-2", [("bob", 0, 5), ("cash", 1, 5)]), {}),
            (event(7, 13, T0 + 13000, enc_str("h-9") + b"\x00\x00"), {}),
            (event(7, 14, T0 + 14000, enc_str("h-1") + b"\x00\x02" + i128(1) + i128(1)), {})]
        d = os.path.join(self.tmp, "not-opened")
        build_export(d, ledger, 1, 14, self.signer)
        r = verify_dir(d, self.signer.vkey)
        self.assertEqual(problem(r, "double_entry"), [12, 13, 14])  # bob, h-9, h-1 captured twice

    def test_recorded_leaf_altered_too(self):
        # The attacker alters seq 6 and rewrites `hashes`, but not `tree`: the descent finds
        # leaves 5 and 6 no longer hash to their genuine parent node.
        d = self.copy()
        recs = read_records(d)
        recs[5] = recs[5][:-1] + b"\x00"
        write_records(d, recs)
        chain, hashes = bytes(32), b""
        for rec in recs:
            leaf = sha(b"\x00" + rec)
            chain = sha(chain + leaf)
            hashes += leaf + chain
        patch(d, "hashes", lambda _: hashes)
        r = self.check(d, {"root", "chain", "hashes_altered"}, (5, "hashes_altered"))
        self.assertEqual(r["first_difference"]["range"], [5, 6])
        self.assertNotIn("leaf", kinds(r))

    def test_everything_recomputed_but_the_checkpoint(self):
        ledger = list(self.ledger)
        ledger[5] = (ledger[5][0][:-1] + b"\x00", ledger[5][1])
        d = os.path.join(self.tmp, "recomputed")
        build_export(d, ledger, 1, 11, self.signer)
        shutil.copy(os.path.join(self.base, "checkpoint"), os.path.join(d, "checkpoint"))
        r = self.check(d, {"root", "hashes_altered"}, (1, "hashes_altered"))
        self.assertEqual(r["first_difference"]["range"], [1, 11])

    def test_tree_file_altered(self):
        d = self.copy()
        patch(d, "tree", lambda t: t[:32] + bytes(32) + t[64:])      # level 1, index 1
        r = self.check(d, {"tree"})
        self.assertEqual(problem(r, "tree"), [3])
        patch(d, "tree", lambda t: t[:-1])
        self.check(d, {"tree"})

    def test_manifest_and_files(self):
        d = self.copy()
        patch(d, "manifest", lambda m: m.replace(b"events 11", b"events 10"))
        self.check(d, {"manifest"})
        d = self.copy()
        patch(d, "manifest", lambda m: m + b"extra 1\n")
        self.check(d, {"manifest"})
        d = self.copy()
        patch(d, "manifest", lambda m: m.replace(b"context 0", b"context 1"))
        self.check(d, {"context"})
        d = self.copy()
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("x")
        self.check(d, {"file"})
        d = self.copy()
        os.remove(os.path.join(d, "tree"))
        self.check(d, {"file", "tree"})
        d = self.copy()
        patch(d, "events", lambda e: e + b"\x00\x00")
        self.check(d, {"count"})
        d = self.copy()
        patch(d, "prefix", lambda p: p[:8] + b"\x01" + p[9:])
        self.check(d, {"prefix"})

    def test_kept_checkpoints(self):
        chains, tree = self.info["chains"], self.info["tree"]
        kept = {}
        for name, size, root, chain in [("k5", 5, tree.mth(0, 5), chains[5]),
                                        ("k11", 11, tree.mth(0, 11), chains[11]),
                                        ("k12", 12, tree.mth(0, 11), chains[11]),
                                        ("fork", 11, tree.mth(0, 10), chains[11]),
                                        ("bad5", 5, tree.mth(0, 4), chains[5])]:
            kept[name] = os.path.join(self.tmp, name)
            with open(kept[name], "wb") as f:
                f.write(self.signer.checkpoint(size, root, chain))
        r = verify_dir(self.base, self.signer.vkey, kept=[kept["k5"], kept["k11"]])
        self.assertTrue(r["ok"], r["problems"])
        r = verify_dir(self.base, self.signer.vkey, kept=[kept["fork"]])
        self.assertEqual(kinds(r), {"fork"})
        self.assertIsNone(r["first_difference"])
        r = verify_dir(self.base, self.signer.vkey, kept=[kept["k12"]])
        self.assertEqual([(p["kind"], p["seq"]) for p in r["problems"]], [("cannot_check", 12)])
        r = verify_dir(self.base, self.signer.vkey, kept=[kept["bad5"]])
        self.assertEqual(kinds(r), {"consistency"})
        other = os.path.join(self.tmp, "other5")
        with open(other, "wb") as f:
            f.write(Signer(self.signer.name).checkpoint(5, tree.mth(0, 5), chains[5]))
        r = verify_dir(self.base, self.signer.vkey, kept=[other])
        self.assertEqual(kinds(r), {"signature"})


class PartialExportTests(unittest.TestCase):
    """Exports A..B of a 300-event synthetic ledger, with prefix and context."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="verify-py-test-")
        cls.signer = Signer("example.com/partial")
        cls.ledger = synthetic_ledger(300)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def export(self, A, B, name=None, **kw):
        d = os.path.join(self.tmp, name or f"{A}-{B}")
        if not os.path.exists(d):
            build_export(d, self.ledger, A, B, self.signer, **kw)
        return d

    def test_valid_partial_exports(self):
        for A, B in [(1, 300), (2, 300), (3, 250), (64, 250), (65, 128), (101, 250), (250, 250),
                     (300, 300), (129, 256), (97, 257)]:
            d = self.export(A, B)
            r = verify_dir(d, self.signer.vkey)
            self.assertTrue(r["ok"], (A, B, r["problems"]))
            self.assertEqual((r["events"], r["from"], r["to"]), (B - A + 1, A, B))
        with open(os.path.join(self.export(101, 250), "manifest")) as f:
            self.assertNotIn("context 0\n", f.read())

    def test_context_tampered(self):
        d = self.export(101, 250, "ctx-tampered")
        patch(d, "context", lambda c: c[:-1] + bytes([c[-1] ^ 1]))   # last audit path byte
        r = verify_dir(d, self.signer.vkey)
        self.assertEqual(kinds(r), {"context"})
        self.assertIsNotNone(problem(r, "context")[0])

    def test_context_incomplete(self):
        need = context_seqs(self.ledger, 101, 250)
        d = self.export(101, 250, "ctx-short", context=need[1:])
        r = verify_dir(d, self.signer.vkey)
        self.assertEqual(kinds(r), {"double_entry"})
        d = self.export(101, 250, "ctx-wrong", context=need + [99])
        r = verify_dir(d, self.signer.vkey)
        self.assertTrue(r["ok"] or kinds(r) == {"context"}, r["problems"])

    def test_kept_checkpoints(self):
        A, B = 101, 250
        d = self.export(A, B)
        leaves = [sha(b"\x00" + b) for b, _ in self.ledger]
        chains = [bytes(32)]
        for leaf in leaves:
            chains.append(sha(chains[-1] + leaf))
        tree = RefTree(leaves)

        def kept(name, size, root=None, chain=None):
            path = os.path.join(self.tmp, f"kept-{name}")
            with open(path, "wb") as f:
                f.write(self.signer.checkpoint(size, tree.mth(0, size) if root is None else root,
                                               chains[size] if chain is None else chain))
            return path
        ok = [kept("p", 100), kept("mid", 180), kept("n", 250), kept("odd", 101)]
        r = verify_dir(d, self.signer.vkey, kept=ok)
        self.assertTrue(r["ok"], r["problems"])
        r = verify_dir(d, self.signer.vkey, kept=[kept("early", 50), kept("late", 260)])
        self.assertEqual([(p["kind"], p["seq"]) for p in r["problems"]],
                         [("cannot_check", 50), ("cannot_check", 260)])
        r = verify_dir(d, self.signer.vkey, kept=[kept("fork", 250, root=tree.mth(0, 249))])
        self.assertEqual(kinds(r), {"fork"})
        r = verify_dir(d, self.signer.vkey, kept=[kept("chain", 180, chain=chains[179])])
        self.assertEqual(kinds(r), {"consistency"})

    def test_first_difference_everywhere(self):
        """Tamper at the first, a middle and the last position of exports with various
        prefixes; the descent must name the right seq and kind."""
        for A, B in [(1, 300), (2, 257), (4, 200), (7, 128), (64, 250), (101, 250), (129, 256)]:
            base = self.export(A, B)
            for seq in sorted({A, A + 1, (A + B) // 2, B - 1, B}):
                i = seq - A
                for kind in ("altered", "missing", "reordered", "inserted"):
                    if kind == "reordered" and seq == B or B - A < 2:
                        continue
                    d = os.path.join(self.tmp, "t")
                    shutil.rmtree(d, ignore_errors=True)
                    shutil.copytree(base, d)
                    recs = read_records(d)
                    if kind == "altered":
                        recs[i] = recs[i][:10] + struct.pack(">q", struct.unpack(">q", recs[i][10:18])[0] - 1) + recs[i][18:]
                    elif kind == "missing":
                        del recs[i]
                    elif kind == "reordered":
                        recs[i], recs[i + 1] = recs[i + 1], recs[i]
                    else:
                        recs.insert(i, entry(seq, "forged", [("eur-0", 0, 1), ("eur-1", 1, 1)],
                                             ts=T0 + seq * 1000 - 1))
                    write_records(d, recs)
                    r = verify_dir(d, self.signer.vkey)
                    self.assertFalse(r["ok"])
                    self.assertEqual(r["first_difference"], {"seq": seq, "kind": kind},
                                     (A, B, seq, kind, r["problems"]))

    def test_untrusted_checkpoint_pinpoints_from_kept(self):
        A, B = 64, 250
        d = os.path.join(self.tmp, "untrusted")
        shutil.rmtree(d, ignore_errors=True)
        shutil.copytree(self.export(A, B), d)
        recs = read_records(d)
        recs[100 - A] = recs[100 - A].replace(b"\x00\x00\x00\x00", b"\x00\x00\x00\x01", 1)
        write_records(d, recs)
        patch(d, "checkpoint", lambda n: n.replace(b"\nchain ", b"\nchain 0")[:-1] + b"\n")
        leaves = [sha(b"\x00" + b) for b, _ in self.ledger]
        chains = [bytes(32)]
        for leaf in leaves:
            chains.append(sha(chains[-1] + leaf))
        kept = os.path.join(self.tmp, "kept-200")
        with open(kept, "wb") as f:
            f.write(self.signer.checkpoint(200, RefTree(leaves).mth(0, 200), chains[200]))
        r = verify_dir(d, self.signer.vkey, kept=[kept])
        self.assertEqual(r["first_difference"], {"seq": 100, "kind": "altered"}, r["problems"])


class CommandLineTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="verify-py-test-")
        cls.signer = Signer("example.com/cli")
        cls.dir = os.path.join(cls.tmp, "export")
        cls.info = build_export(cls.dir, golden_ledger(), 1, 11, cls.signer)
        cls.vkey_file = os.path.join(cls.tmp, "vkey")
        with open(cls.vkey_file, "w") as f:
            f.write(cls.signer.vkey + "\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def run_cli(self, *args, wrapper=False):
        cmd = [os.path.join(HERE, "run")] if wrapper else [sys.executable, os.path.join(HERE, "verify.py")]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True)
        return p.returncode, p.stdout, p.stderr

    def write_json(self, name, obj):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def test_export_text_and_json(self):
        code, out, err = self.run_cli("export", self.dir, "--vkey", self.signer.vkey, wrapper=True)
        self.assertEqual(code, 0, out + err)
        self.assertTrue(out.startswith(f"ok: 11 events (seq 1..11), root {self.info['root'].hex()}, "
                                       f"chain {self.info['chains'][11].hex()}\n"), out)
        self.assertIn("EUR: debits 2300, credits 2300", out)
        self.assertIn("events/s", err)
        code, out, _ = self.run_cli("export", self.dir, "--vkey", self.vkey_file, "--json")
        self.assertEqual(code, 0)
        r = json.loads(out)
        self.assertEqual((r["ok"], r["events"], r["from"], r["to"], r["problems"]), (True, 11, 1, 11, []))
        self.assertEqual(set(r), {"ok", "events", "from", "to", "root", "chain", "totals", "problems",
                                  "first_difference"})

    def test_export_failure_output(self):
        d = os.path.join(self.tmp, "bad")
        shutil.copytree(self.dir, d)
        recs = read_records(d)
        recs[3] = recs[3].replace(b"INV-7", b"INV-8")
        write_records(d, recs)
        code, out, _ = self.run_cli("export", d, "--vkey", self.signer.vkey)
        self.assertEqual(code, 1)
        self.assertTrue(out.startswith("FAILED: 5 problem(s)\n"), out)
        self.assertIn("  altered seq 4: ", out)
        self.assertIn("first difference: seq 4 (altered)", out)
        code, out, _ = self.run_cli("export", d, "--vkey", self.signer.vkey, "--json")
        r = json.loads(out)
        self.assertEqual((code, r["ok"], r["first_difference"]), (1, False, {"seq": 4, "kind": "altered"}))

    def test_usage_errors(self):
        self.assertEqual(self.run_cli("export", self.dir)[0], 2)
        self.assertEqual(self.run_cli("export", self.dir, "--vkey", "nonsense")[0], 2)
        self.assertEqual(self.run_cli("export", os.path.join(self.tmp, "nope"), "--vkey",
                                      self.signer.vkey)[0], 2)
        self.assertEqual(self.run_cli("export", self.dir, "--vkey", self.signer.vkey, "--checkpoint",
                                      os.path.join(self.tmp, "nope"))[0], 2)
        self.assertEqual(self.run_cli("frobnicate")[0], 2)
        self.assertEqual(self.run_cli("inclusion", "--proof", self.vkey_file)[0], 2)   # not JSON

    def test_inclusion_vectors(self):
        v = load_vectors("merkle")
        for i, c in enumerate(v["inclusion"][:12]):
            path = self.write_json(f"inc{i}.json", {k: c[k] for k in
                                   ("leaf_index", "tree_size", "leaf_hash", "path", "root")})
            code, out, err = self.run_cli("inclusion", "--proof", path, "--event-hex",
                                          v["leaves_hex"][c["leaf_index"]])
            self.assertEqual(code, 0, out + err)
            code, _, _ = self.run_cli("inclusion", "--proof", path, "--event-hex", "abcdef")
            self.assertEqual(code, 1)
        for i, c in enumerate(v["inclusion_invalid"]):
            path = self.write_json(f"bad{i}.json", {k: c[k] for k in
                                   ("leaf_index", "tree_size", "leaf_hash", "path", "root")})
            self.assertEqual(self.run_cli("inclusion", "--proof", path)[0], 1, c["why"])

    def test_inclusion_with_checkpoint(self):
        tree, golden = self.info["tree"], golden_events()
        proof = {"leaf_index": 3, "tree_size": 11, "leaf_hash": golden[3][3].hex(),
                 "path": [h.hex() for h in tree.path(3, 0, 11)], "root": self.info["root"].hex()}
        path = self.write_json("inc-cp.json", proof)
        cp = os.path.join(self.dir, "checkpoint")
        code, out, err = self.run_cli("inclusion", "--proof", path, "--vkey", self.signer.vkey,
                                      "--checkpoint", cp, "--event-hex", golden[3][2].hex())
        self.assertEqual(code, 0, out + err)
        other = os.path.join(self.tmp, "cp10")
        with open(other, "wb") as f:
            f.write(self.signer.checkpoint(10, tree.mth(0, 10), self.info["chains"][10]))
        code, out, _ = self.run_cli("inclusion", "--proof", path, "--vkey", self.signer.vkey,
                                    "--checkpoint", other, "--json")
        self.assertEqual(code, 1)
        self.assertEqual([p["kind"] for p in json.loads(out)["problems"]], ["checkpoint"])
        self.assertEqual(self.run_cli("inclusion", "--proof", path, "--vkey", self.signer.vkey)[0], 2)

    def test_consistency(self):
        v = load_vectors("merkle")
        for i, c in enumerate(v["consistency"][::5] + v["consistency_invalid"]):
            path = self.write_json(f"con{i}.json", {"from": c["size1"], "to": c["size2"],
                                   "path": c["proof"], "root_from": c["root1"], "root_to": c["root2"]})
            self.assertEqual(self.run_cli("consistency", "--proof", path)[0], 1 if "why" in c else 0, c)
        tree, chains = self.info["tree"], self.info["chains"]
        old = os.path.join(self.tmp, "old5")
        with open(old, "wb") as f:
            f.write(self.signer.checkpoint(5, tree.mth(0, 5), chains[5]))
        path = self.write_json("con-cp.json", {"from": 5, "to": 11, "path": [h.hex() for h in
                               tree.consistency(5, 11)], "root_from": tree.mth(0, 5).hex(),
                               "root_to": tree.mth(0, 11).hex()})
        new = os.path.join(self.dir, "checkpoint")
        code, out, err = self.run_cli("consistency", "--proof", path, "--vkey", self.vkey_file,
                                      "--old", old, "--new", new)
        self.assertEqual(code, 0, out + err)
        code, out, _ = self.run_cli("consistency", "--proof", path, "--vkey", self.vkey_file,
                                    "--old", new, "--new", old)
        self.assertEqual(code, 1)


class ProofCommandTests(unittest.TestCase):
    """The inclusion and consistency commands against a lying server's answers: the event
    of another seq with that event's genuine proof, and two signed notes of one size that
    differ only in their chain line."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="verify-py-proofs-")
        cls.signer = Signer("example.com/tally-test")
        evs = [b for b, _ in golden_ledger()]
        cls.events = evs
        cls.leaves = [verify.leaf_hash(b) for b in evs]
        cls.tree = RefTree(cls.leaves)
        chain = bytes(32)
        cls.chains = []
        for leaf in cls.leaves:
            chain = sha(chain + leaf)
            cls.chains.append(chain)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp)

    def write(self, name, data):
        path = os.path.join(self.tmp, name)
        with open(path, "wb") as f:
            f.write(data if isinstance(data, bytes) else json.dumps(data).encode())
        return path

    def note(self, name, size, chain=None):
        return self.write(name, self.signer.checkpoint(
            size, self.tree.mth(0, size), chain or self.chains[size - 1]))

    def run_json(self, argv):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = verify.main(argv + ["--json"])
        return status, json.loads(out.getvalue())

    def inclusion(self, seq, size, event_seq, asked=None):
        proof = self.write(f"incl-{seq}-{size}.json", {
            "leaf_index": seq - 1, "tree_size": size, "leaf_hash": self.leaves[seq - 1].hex(),
            "path": [h.hex() for h in self.tree.path(seq - 1, 0, size)],
            "root": self.tree.mth(0, size).hex()})
        argv = ["inclusion", "--proof", proof, "--vkey", self.signer.vkey, "--checkpoint",
                self.note(f"cp-{size}", size), "--event-hex", self.events[event_seq - 1].hex()]
        return self.run_json(argv + (["--seq", str(asked)] if asked else []))

    def test_inclusion_of_the_event_asked_for(self):
        self.assertEqual(self.inclusion(3, 11, 3, asked=3), (0, {"ok": True, "problems": []}))

    def test_another_events_bytes_are_refused(self):
        status, r = self.inclusion(3, 11, 4, asked=3)
        self.assertEqual(status, 1)
        self.assertIn("event", kinds(r))

    def test_another_seqs_genuine_proof_is_refused_when_the_seq_is_given(self):
        # Everything is genuine, about seq 4: only the seq asked for tells the lie.
        self.assertEqual(self.inclusion(4, 11, 4)[0], 0)
        status, r = self.inclusion(4, 11, 4, asked=3)
        self.assertEqual(status, 1)
        self.assertEqual(kinds(r), {"event"})

    def test_two_notes_of_one_size_with_other_chains_are_a_fork(self):
        proof = self.write("cons-5-5.json", {
            "from": 5, "to": 5, "path": [], "root_from": self.tree.mth(0, 5).hex(),
            "root_to": self.tree.mth(0, 5).hex()})
        old = self.note("old-5", 5)
        argv = ["consistency", "--proof", proof, "--vkey", self.signer.vkey, "--old", old]
        self.assertEqual(self.run_json(argv + ["--new", old])[0], 0)
        forged = self.note("forged-5", 5, chain=sha(b"another history"))
        status, r = self.run_json(argv + ["--new", forged])
        self.assertEqual(status, 1)
        self.assertEqual(kinds(r), {"fork"})


def main():
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--build-export":
        d, n = sys.argv[2], int(sys.argv[3])
        A = int(sys.argv[4]) if len(sys.argv) == 5 else 1
        signer = Signer("example.com/big")
        build_export(d, synthetic_ledger(n), A, n, signer)
        print(signer.vkey)
    else:
        unittest.main()


if __name__ == "__main__":
    main()
