"""The client's pure parts, with no server: the error table against docs/PROTOCOL.md,
amounts, framing and its limits, and the RFC 9162 proof checks against a reference tree."""

from __future__ import annotations

import base64
import hashlib
import os
import re
import unittest

import support  # noqa: F401  (puts the package on sys.path)

from tally_client import errors, merkle, protocol

PROTOCOL_MD = os.path.join(os.path.dirname(__file__), "..", "..", "..", "docs", "PROTOCOL.md")


def protocol_md() -> str:
    if not os.path.exists(PROTOCOL_MD):
        raise unittest.SkipTest(f"{PROTOCOL_MD} not found (tests run from the source tree)")
    with open(PROTOCOL_MD, encoding="utf-8") as f:
        return f.read()


class ErrorTableTests(unittest.TestCase):
    def test_error_codes_are_exactly_the_protocol_tables_codes_in_order(self):
        text = protocol_md()
        section = text.split("## Error codes", 1)[1].split("\n## ", 1)[0]
        documented = re.findall(r"^\| `([A-Z_]+)` \|", section, re.M)
        self.assertGreater(len(documented), 20)
        self.assertEqual(list(errors.ERROR_CODES), documented)

    def test_each_code_has_its_own_subclass_carrying_the_fields(self):
        names = set()
        for code, (name, _) in errors.ERROR_CODES.items():
            cls = errors.error_class(code)
            self.assertTrue(issubclass(cls, errors.TallyError))
            self.assertIsNot(cls, errors.TallyError)
            self.assertEqual(cls.__name__, name)
            names.add(name)
        self.assertEqual(len(names), len(errors.ERROR_CODES))
        e = errors.error_from_body(
            "NOT_FOUND",
            {"message": "m", "reason": "ACCOUNT_NOT_FOUND", "details": {"account": "x"}},
        )
        self.assertIsInstance(e, errors.NotFoundError)
        self.assertEqual(
            (e.code, e.reason, e.message, e.details),
            ("NOT_FOUND", "ACCOUNT_NOT_FOUND", "m", {"account": "x"}),
        )

    def test_an_unknown_code_is_a_plain_tally_error_that_keeps_its_code(self):
        e = errors.error_from_body("SOMETHING_NEW", {"message": "later code"})
        self.assertIs(type(e), errors.TallyError)
        self.assertEqual(e.code, "SOMETHING_NEW")

    def test_every_protocol_verb_has_a_retry_kind(self):
        text = protocol_md()
        table = text.split("## Verbs", 1)[1].split("\n## ", 1)[0]
        documented = set(re.findall(r"^\| `([A-Z.]+)` \|", table, re.M))
        self.assertEqual(set(protocol.VERBS), documented)


class AmountTests(unittest.TestCase):
    def test_amounts_go_out_as_strings_of_ints(self):
        self.assertEqual(protocol.amount_to_wire(1050), "1050")
        self.assertEqual(protocol.amount_to_wire(10**30), "1" + "0" * 30)

    def test_floats_bools_and_strings_are_refused_before_sending(self):
        for bad in (10.5, 1.0, True, "100", None):
            with self.assertRaises(TypeError, msg=repr(bad)):
                protocol.amount_to_wire(bad)

    def test_answer_amounts_become_ints_but_metadata_stays_text(self):
        body = {
            "posted": {"debits": "0", "credits": "170141183460469231731687303715884105727"},
            "balance": "-5",
            "limit": None,
            "metadata": {"amount": "12"},
            "amounts": {"matched": "7"},
            "id": "123",
        }
        out = protocol.amounts_to_int(body)
        self.assertEqual(out["posted"]["credits"], 2**127 - 1)
        self.assertEqual(out["balance"], -5)
        self.assertEqual(out["metadata"], {"amount": "12"})
        self.assertEqual(out["amounts"], {"matched": 7})
        self.assertEqual(out["id"], "123")

    def test_a_malformed_answer_amount_is_a_protocol_error(self):
        for bad in ("1.5", "", "1e3", "--1", "١٢"):
            with self.assertRaises(errors.ProtocolError, msg=bad):
                protocol.amounts_to_int({"balance": bad})


class FramingTests(unittest.TestCase):
    def test_a_request_is_one_line_of_verb_and_compact_json(self):
        self.assertEqual(protocol.encode_request("PING", None, 100), b"PING\n")
        self.assertEqual(
            protocol.encode_request("BALANCE.GET", {"account": "é"}, 100),
            'BALANCE.GET {"account":"é"}\n'.encode(),
        )

    def test_the_line_cap_is_exact_at_max_and_refuses_max_plus_one(self):
        body = {"id": ""}
        empty = len(protocol.encode_request("ENTRY.GET", body, 1 << 20)) - 1
        cap = empty + 50
        ok = protocol.encode_request("ENTRY.GET", {"id": "x" * 50}, cap)
        self.assertEqual(len(ok), cap + 1)
        with self.assertRaises(errors.RequestTooLargeError):
            protocol.encode_request("ENTRY.GET", {"id": "x" * 51}, cap)

    def test_answers_parse_strictly(self):
        r = protocol.parse_response(b'OK {"seq":4}\n')
        self.assertTrue(r.ok)
        self.assertEqual(r.body, {"seq": 4})
        r = protocol.parse_response(b'ERR NOT_FOUND {"message":"m"}\r\n')
        self.assertEqual((r.ok, r.code), (False, "NOT_FOUND"))
        for bad in (
            b'OK {"a":1,"a":2}\n',
            b"OK {nope}\n",
            b"HELLO {}\n",
            b'OK {"x":1.5}\n',
            b"OK \xff\n",
            b"ERR  {}\n",
        ):
            with self.assertRaises(errors.ProtocolError, msg=bad):
                r = protocol.parse_response(bad)
                # A fractional number parses to Decimal, never to a lossy float.
                if bad == b'OK {"x":1.5}\n':
                    self.assertNotIsInstance(r.body["x"], float)
                    raise errors.ProtocolError("decimal")

    def test_hello_is_checked_and_an_err_instead_is_typed(self):
        nonce = "ab" * 32
        line = ('HELLO {"server":"tally","version":1,"nonce":"%s"}\n' % nonce).encode()
        self.assertEqual(protocol.parse_hello(line), nonce)
        with self.assertRaises(errors.ProtocolError):
            protocol.parse_hello(line.replace(b'"version":1', b'"version":2'))
        with self.assertRaises(errors.TooManyConnectionsError):
            protocol.parse_hello(b'ERR TOO_MANY_CONNECTIONS {"message":"full"}\n')

    def test_the_auth_mac_is_hmac_sha256_of_the_nonce_keyed_with_the_secret_text(self):
        # openssl dgst -sha256 -hmac key <<< -n 'The quick brown fox jumps over the lazy dog'
        self.assertEqual(
            protocol.auth_mac("key", "The quick brown fox jumps over the lazy dog"),
            "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8",
        )


def _mth(leaves):
    """RFC 9162 §2.1.1 Merkle tree hash of leaf hashes, as a reference."""
    n = len(leaves)
    if n == 1:
        return leaves[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return merkle.node_hash(_mth(leaves[:k]), _mth(leaves[k:]))


def _path(m, leaves):
    """RFC 9162 §2.1.3.1 inclusion path of leaf m."""
    n = len(leaves)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return _path(m, leaves[:k]) + [_mth(leaves[k:])]
    return _path(m - k, leaves[k:]) + [_mth(leaves[:k])]


def _subproof(m, leaves, complete):
    """RFC 9162 §2.1.4.1 SUBPROOF."""
    n = len(leaves)
    if m == n:
        return [] if complete else [_mth(leaves)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return _subproof(m, leaves[:k], complete) + [_mth(leaves[k:])]
    return _subproof(m - k, leaves[k:], False) + [_mth(leaves[:k])]


class MerkleTests(unittest.TestCase):
    leaves = [merkle.leaf_hash(bytes([i]) * (i + 1)) for i in range(33)]

    def test_inclusion_proofs_of_every_leaf_in_every_tree_up_to_33_verify(self):
        for n in range(1, 34):
            root = _mth(self.leaves[:n]).hex()
            for m in range(n):
                path = [h.hex() for h in _path(m, self.leaves[:n])]
                leaf = self.leaves[m].hex()
                self.assertTrue(merkle.verify_inclusion(m, n, leaf, path, root), (m, n))
                if path:
                    bad = list(path)
                    bad[0] = ("0" if bad[0][0] != "0" else "1") + bad[0][1:]
                    self.assertFalse(merkle.verify_inclusion(m, n, leaf, bad, root))
                    self.assertFalse(merkle.verify_inclusion(m, n, leaf, path[:-1], root))
                other = self.leaves[(m + 1) % 33].hex()
                self.assertFalse(merkle.verify_inclusion(m, n, other, path, root))
                if n < len(self.leaves):
                    root_next = _mth(self.leaves[: n + 1]).hex()
                    self.assertFalse(merkle.verify_inclusion(m, n + 1, leaf, path, root_next))
            self.assertFalse(merkle.verify_inclusion(n, n, self.leaves[0].hex(), [], root))

    def test_consistency_proofs_between_every_pair_of_sizes_up_to_33_verify(self):
        for n in range(1, 34):
            root_n = _mth(self.leaves[:n]).hex()
            for m in range(1, n + 1):
                root_m = _mth(self.leaves[:m]).hex()
                path = [h.hex() for h in _subproof(m, self.leaves[:n], True)]
                self.assertTrue(merkle.verify_consistency(m, n, path, root_m, root_n), (m, n))
                if m < n:
                    self.assertFalse(merkle.verify_consistency(m, n, path, root_n, root_n))
                    self.assertFalse(merkle.verify_consistency(m, n, path[:-1], root_m, root_n))

    def test_a_checkpoint_note_body_is_read_and_a_malformed_one_refused(self):
        root = hashlib.sha256(b"r").digest()
        chain = "cd" * 32
        note = (
            f"tally.ledger/abc\n9\n{base64.b64encode(root).decode()}\nchain {chain}\n\n"
            "— tally.ledger/abc c2ln\n"
        )
        cp = merkle.parse_checkpoint(note)
        self.assertEqual((cp.origin, cp.size, cp.root, cp.chain), ("tally.ledger/abc", 9,
                                                                   root.hex(), chain))
        for bad in (note.replace("\n9\n", "\nnine\n"), note.replace("chain ", "chan "),
                    note.replace("\n\n", "\n")):
            with self.assertRaises(ValueError):
                merkle.parse_checkpoint(bad)


if __name__ == "__main__":
    unittest.main()
