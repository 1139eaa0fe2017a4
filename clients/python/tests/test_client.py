"""Against a real tallyd (TALLY_ADDR, TALLY_KEY, TALLY_SECRET: an admin key): AUTH,
pipelining, every kind of verb, proofs checked in Python, and typed errors that change
nothing."""

from __future__ import annotations

import asyncio
import concurrent.futures
import unittest

import support

from tally_client import (
    AuthFailedError,
    Balance,
    Client,
    ForbiddenError,
    Head,
    Receipt,
    RequestTooLargeError,
    credit,
    debit,
    errors,
    leaf_hash,
    parse_checkpoint,
    protocol,
    verify_consistency,
    verify_inclusion,
)


def setUpModule():
    support.server()


class ClientTests(support.LedgerTest):
    def fund(self, amount: int) -> Receipt:
        return self.tally.post([debit(self.cash, amount), credit(self.wallet, amount)])

    def state(self):
        """What a rejected request must not change: the head and both balances."""
        return (self.tally.log_head(), self.tally.balance(self.cash),
                self.tally.balance(self.wallet))

    # MARK: - AUTH

    def test_auth_answers_the_keys_role(self):
        self.assertTrue(self.tally.ping())
        self.assertEqual(self.tally.role, "admin")

    def test_a_wrong_mac_is_auth_failed_and_is_not_retried(self):
        address, key, secret = support.server()
        wrong = ("0" if secret[0] != "0" else "1") + secret[1:]
        bad = Client(address, key, wrong, request_timeout=support.REQUEST_TIMEOUT)
        failures = self.tally.stats()["server"]["auth_failures"]
        try:
            with self.assertRaises(AuthFailedError) as caught:
                bad.ping()
            self.assertEqual(caught.exception.code, "AUTH_FAILED")
            self.assertEqual(bad.connections, 0)
            # One AUTH was tried, not one per retry attempt.
            self.assertEqual(self.tally.stats()["server"]["auth_failures"], failures + 1)
        finally:
            bad.close()

    # MARK: - Writes and reads

    def test_post_moves_both_balances_and_reads_see_it(self):
        before = self.state()
        r = self.fund(1050)
        self.assertIsInstance(r, Receipt)
        self.assertEqual(r.seq, before[0].seq + 1)
        self.assertEqual(len(r.chain), 64)
        wallet = self.tally.balance(self.wallet)
        self.assertIsInstance(wallet, Balance)
        self.assertEqual((wallet.posted_credits, wallet.balance, wallet.available), (1050,) * 3)
        self.assertIsInstance(wallet.balance, int)
        self.assertEqual(self.tally.balance(self.cash).balance, 1050)
        self.assertEqual(self.tally.log_head(), Head(r.seq, r.ts, r.chain))
        entry = self.tally.entry_get(r.id)
        self.assertEqual((entry["seq"], entry["chain"]), (r.seq, r.chain))
        self.assertEqual([leg["amount"] for leg in entry["legs"]], [1050, 1050])
        account = self.tally.account_get(self.wallet)
        self.assertEqual(account["posted"], {"debits": 0, "credits": 1050})
        page = self.tally.statement(self.wallet)
        self.assertEqual([line["id"] for line in page["lines"]], [r.id])
        self.assertEqual(page["lines"][0]["posted"]["credits"], 1050)
        # As of the seq before the post, the wallet was empty.
        self.assertEqual(self.tally.balance(self.wallet, as_of_seq=r.seq - 1).balance, 0)

    def test_a_repeated_post_with_the_same_id_answers_the_original_once(self):
        legs = [debit(self.cash, 5), credit(self.wallet, 5)]
        first = self.tally.post(legs, id=support.unique("e"))
        again = self.tally.post([debit(self.cash, 5), credit(self.wallet, 5)], id=first.id)
        self.assertEqual(first, again)
        self.assertEqual(self.tally.balance(self.wallet).balance, 5)
        with self.assertRaises(errors.IdConflictError) as caught:
            self.tally.post([debit(self.cash, 6), credit(self.wallet, 6)], id=first.id)
        self.assertEqual(caught.exception.details.get("field"), "legs")

    def test_batch_answers_one_result_per_entry_in_order(self):
        before = self.state()
        results = self.tally.batch([
            {"legs": [debit(self.cash, 100), credit(self.wallet, 100)]},
            {"legs": [debit(self.cash, 100), credit(self.wallet, 99)]},
            {"id": support.unique("b"),
             "legs": [(self.cash, "debit", 7), (self.wallet, "credit", 7)]},
        ])
        self.assertEqual(len(results), 3)
        self.assertIsInstance(results[0], Receipt)
        self.assertIsInstance(results[1], errors.UnbalancedError)
        self.assertIsInstance(results[2], Receipt)
        self.assertEqual(results[2].seq, results[0].seq + 1)
        self.assertEqual(self.tally.log_head().seq, before[0].seq + 2)
        self.assertEqual(self.tally.balance(self.wallet).balance, 107)

    def test_holds_place_capture_release_and_reverse(self):
        self.fund(1000)
        hold = self.tally.hold_place([debit(self.wallet, 300), credit(self.cash, 300)],
                                     ttl_ms=600_000)
        b = self.tally.balance(self.wallet)
        self.assertEqual((b.balance, b.available, b.pending_debits), (1000, 700, 300))
        captured = self.tally.hold_capture(hold.id, amount=120)
        self.assertEqual(captured.id, hold.id)
        self.assertEqual(self.tally.hold_capture(hold.id, amount=120), captured)
        b = self.tally.balance(self.wallet)
        self.assertEqual((b.balance, b.available, b.pending_debits), (880, 880, 0))
        before = self.state()
        with self.assertRaises(errors.HoldNotPendingError):
            self.tally.hold_release(hold.id)
        self.assertEqual(self.state(), before)
        other = self.tally.hold_place([debit(self.wallet, 80), credit(self.cash, 80)])
        released = self.tally.hold_release(other.id)
        self.assertEqual(self.tally.hold_release(other.id), released)
        self.assertEqual(self.tally.balance(self.wallet).available, 880)
        post = self.fund(20)
        rev = self.tally.reverse(post.id)
        self.assertEqual(self.tally.balance(self.wallet).balance, 880)
        self.assertEqual(self.tally.entry_get(post.id)["reversed_by_seq"], rev.seq)
        before = self.state()
        with self.assertRaises(errors.AlreadyReversedError):
            self.tally.reverse(post.id)
        self.assertEqual(self.state(), before)

    def test_partner_and_account_reads(self):
        partner = support.unique("pp")
        created = self.tally.partner_create(partner, "Py Partner", metadata={"tier": "1"})
        self.assertEqual(self.tally.partner_create(partner, "Py Partner", metadata={"tier": "1"}),
                         created)
        self.assertEqual(self.tally.partner_get(partner)["metadata"], {"tier": "1"})
        account = f"{partner}:wallet"
        self.tally.account_open(account, "EUR", partner=partner, normal="credit", limit=5000)
        self.tally.post([debit(self.cash, 40), credit(account, 40)])
        got = self.tally.account_get(account)
        self.assertEqual((got["limit"], got["balance"], got["partner"]), (5000, 40, partner))
        listed = self.tally.account_list(partner=partner)
        self.assertEqual([a["account"] for a in listed["accounts"]], [account])
        view = self.tally.partner_view(partner)
        self.assertEqual(view["totals"][0]["posted"], 40)
        self.assertIn(partner, [p["id"] for p in self.tally.partner_list(limit=10_000)["partners"]])
        status = self.tally.recon_status(account)
        self.assertEqual(status["amounts"]["unmatched"], 0)
        self.assertEqual(self.tally.recon_items(account)["items"], [])
        self.assertIn("server", self.tally.stats())
        self.assertIn(self.tally.role, [k["role"] for k in self.tally.key_list()])
        closed_name = support.unique("py-tmp")
        self.tally.account_open(closed_name, "EUR")
        self.assertEqual(self.tally.account_close(closed_name).name, closed_name)

    # MARK: - Proofs

    def test_an_inclusion_proof_of_a_posted_entry_verifies_against_a_checkpoint_root(self):
        r = self.fund(777)
        head = self.tally.log_head().seq
        event = self.tally.log_read(from_seq=r.seq, limit=1)["events"][0]
        self.assertEqual(event["seq"], r.seq)
        data = bytes.fromhex(event["bytes"])
        self.assertIn(r.id.encode(), data)
        self.assertEqual(leaf_hash(data).hex(), event["leaf"])
        self.assertEqual(event["chain"], r.chain)
        cp = self.tally.checkpoint(size=head)
        note = parse_checkpoint(cp["note"])
        self.assertEqual((note.size, note.root, note.chain), (head, cp["root"], cp["chain"]))
        proof = self.tally.proof_inclusion(r.seq, size=head)
        self.assertEqual((proof["leaf_index"], proof["tree_size"]), (r.seq - 1, head))
        self.assertEqual(proof["leaf_hash"], event["leaf"])
        self.assertTrue(verify_inclusion(r.seq - 1, head, leaf_hash(data).hex(), proof["path"],
                                         note.root))
        # Another event's bytes, or a changed path, do not verify.
        tampered = bytearray(data)
        tampered[-1] ^= 1
        self.assertFalse(verify_inclusion(r.seq - 1, head, leaf_hash(bytes(tampered)).hex(),
                                          proof["path"], note.root))
        if proof["path"]:
            path = [("0" if proof["path"][0][0] != "0" else "1") + proof["path"][0][1:]]
            path += proof["path"][1:]
            self.assertFalse(verify_inclusion(r.seq - 1, head, proof["leaf_hash"], path,
                                              note.root))

    def test_a_consistency_proof_links_an_old_checkpoint_to_a_new_one(self):
        old = parse_checkpoint(self.tally.checkpoint()["note"])
        self.fund(1)
        self.fund(2)
        new = parse_checkpoint(self.tally.checkpoint()["note"])
        self.assertEqual(new.size, old.size + 2)
        proof = self.tally.proof_consistency(old.size, new.size)
        self.assertEqual((proof["root_from"], proof["root_to"]), (old.root, new.root))
        self.assertTrue(verify_consistency(old.size, new.size, proof["path"], old.root, new.root))
        self.assertFalse(verify_consistency(old.size, new.size, proof["path"], new.root, new.root))
        with self.assertRaises(errors.NotFoundError) as caught:
            self.tally.proof_inclusion(new.size + 1000)
        self.assertEqual(caught.exception.reason, "OUT_OF_RANGE")

    # MARK: - Typed errors change nothing

    def assert_refused(self, error, call, reason=None):
        before = self.state()
        with self.assertRaises(error) as caught:
            call()
        self.assertEqual(caught.exception.code, error.code)
        self.assertTrue(caught.exception.message)
        if reason:
            self.assertEqual(caught.exception.reason, reason)
        self.assertEqual(self.state(), before, "a refused request changed the ledger")
        return caught.exception

    def test_rejected_writes_raise_their_typed_error_and_change_nothing(self):
        self.fund(100)
        t, cash, wallet = self.tally, self.cash, self.wallet
        self.assert_refused(errors.UnbalancedError,
                            lambda: t.post([debit(cash, 10), credit(wallet, 9)]))
        self.assert_refused(errors.InsufficientFundsError,
                            lambda: t.post([debit(wallet, 101), credit(cash, 101)]))
        self.assert_refused(errors.InvalidAmountError,
                            lambda: t.post([debit(cash, 0), credit(wallet, 0)]))
        self.assert_refused(errors.CurrencyMismatchError,
                            lambda: t.post([debit(cash, 1), credit(wallet, 1)], currency="USD"))
        e = self.assert_refused(errors.NotFoundError,
                                lambda: t.post([debit(cash, 1), credit("py-nobody", 1)]),
                                "ACCOUNT_NOT_FOUND")
        self.assertEqual(e.details.get("account"), "py-nobody")
        self.assert_refused(errors.BadRequestError,
                            lambda: t.request("ENTRY.POST", {"id": "x", "legs": [], "color": 1}),
                            "INVALID_FIELD")
        self.assert_refused(errors.UnknownVerbError, lambda: t.request("NO.SUCH"))
        self.assert_refused(errors.AccountNotEmptyError, lambda: t.account_close(wallet))
        hold = t.hold_place([debit(wallet, 1), credit(cash, 1)])
        t.hold_release(hold.id)
        self.assert_refused(errors.HoldNotPendingError, lambda: t.hold_capture(hold.id))

    def test_a_role_without_the_verb_is_forbidden_and_changes_nothing(self):
        key = self.tally.key_create("auditor")
        address = support.server()[0]
        auditor = Client(address, key["key"], key["secret"],
                         request_timeout=support.REQUEST_TIMEOUT)
        self.addCleanup(auditor.close)
        self.assertEqual(auditor.log_head(), self.tally.log_head())
        before = self.state()
        with self.assertRaises(ForbiddenError):
            auditor.post([debit(self.cash, 1), credit(self.wallet, 1)])
        self.assertEqual(self.state(), before)
        revoked = self.tally.key_revoke(key["key"])
        self.assertIsNotNone(revoked["revoked"])
        with self.assertRaises(AuthFailedError):
            auditor.log_head()

    def test_amounts_are_ints_only_and_nothing_is_sent_otherwise(self):
        before = self.state()
        for bad in (10.5, "10", True):
            with self.assertRaises(TypeError):
                self.tally.post([debit(self.cash, bad), credit(self.wallet, bad)])
        self.assertEqual(self.state(), before)

    # MARK: - Limits

    def test_a_line_of_exactly_the_cap_is_sent_and_one_byte_more_is_refused_unsent(self):
        cap = 1 << 20  # the server's default --max-line-bytes

        def body(size):
            # ENTRY.GET with a list of strings as its id, the line exactly `size` bytes:
            # the server reads it whole and refuses the id's type (no string passes 64 KiB).
            def length(chunks):
                return len(protocol.encode_request("ENTRY.GET", {"id": chunks}, 1 << 30)) - 1

            chunks = ["x" * 60_000] * (size // 60_003)
            chunks.append("x" * (size - length(chunks) - 3))
            self.assertEqual(length(chunks), size)
            return {"id": chunks}

        before = self.state()
        with self.assertRaises(errors.BadRequestError) as caught:
            self.tally.request("ENTRY.GET", body(cap))
        self.assertEqual(caught.exception.reason, "INVALID_FIELD")
        requests = self.tally.stats()["server"]["requests"]
        with self.assertRaises(RequestTooLargeError):
            self.tally.request("ENTRY.GET", body(cap + 1))
        # Only the STATS itself reached the server since.
        self.assertEqual(self.tally.stats()["server"]["requests"], requests + 1)
        self.assertEqual(self.state(), before)

    # MARK: - Pipelining

    def test_many_pipelined_requests_on_one_connection_all_answer_in_order(self):
        async def run():
            async with support.async_client(max_inflight=16) as tally:
                n = 300
                posts = [tally.post([debit(self.cash, i + 1), credit(self.wallet, i + 1)])
                         for i in range(n)]
                reads = [tally.balance(self.wallet) for _ in range(50)]
                results = await asyncio.gather(*posts, *reads)
                return tally.connections, results[:n], results[n:]

        connections, receipts, balances = asyncio.run(run())
        self.assertEqual(connections, 1)
        seqs = [r.seq for r in receipts]
        # Written in call order, answered in order: seqs are consecutive.
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + 300)))
        total = sum(range(1, 301))
        # A read never overtakes an earlier write on its connection.
        for b in balances:
            self.assertEqual((b.balance, b.seq), (total, seqs[-1]))
        self.assertEqual(self.tally.balance(self.wallet).balance, total)

    def test_the_blocking_client_is_shared_by_threads(self):
        def work(i):
            return self.tally.post([debit(self.cash, 1), credit(self.wallet, 1)])

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            receipts = list(pool.map(work, range(80)))
        self.assertEqual(len({r.seq for r in receipts}), 80)
        self.assertEqual(self.tally.balance(self.wallet).balance, 80)
        self.assertEqual(self.tally.connections, 1)


if __name__ == "__main__":
    unittest.main()
