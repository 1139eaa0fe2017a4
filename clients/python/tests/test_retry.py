"""Retries after a dropped connection, through a proxy that cuts the connection after the
server answered a request but before the answer reaches the client (so the server applied
it). Idempotent writes are resent with the same id and answer the original outcome once;
other writes are never resent; reads are resent; attempts are bounded."""

from __future__ import annotations

import asyncio
import json
import unittest

import support

from tally_client import (
    OutcomeUnknownError,
    Receipt,
    TallyConnectionError,
    credit,
    debit,
)

FAST = {"backoff_initial": 0.01, "backoff_max": 0.2}


def setUpModule():
    support.server()


class RetryTests(support.LedgerTest):
    def legs(self, amount):
        return [debit(self.cash, amount), credit(self.wallet, amount)]

    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 120))

    def test_a_post_whose_answer_is_lost_is_resent_and_answers_the_original_once(self):
        entry = support.unique("drop")
        head = self.tally.log_head()

        async def run():
            async with support.CuttingProxy(f'"id":"{entry}"'.encode()) as proxy:
                async with support.async_client(proxy.address, **FAST) as tally:
                    receipt = await tally.post(self.legs(250), id=entry)
                    return proxy, tally.connections, receipt

        proxy, connections, receipt = self.run_async(run())
        self.assertEqual(len(proxy.swallowed), 1, "the proxy never cut the connection")
        original = Receipt.from_body(json.loads(proxy.swallowed[0].split(b" ", 1)[1]))
        self.assertEqual(receipt, original)
        self.assertEqual(proxy.sent(entry.encode()), 2)
        self.assertEqual((proxy.connections, connections), (2, 2))
        # Applied once: one event, the balance moved once.
        self.assertEqual(self.tally.log_head().seq, head.seq + 1)
        self.assertEqual(self.tally.balance(self.wallet).balance, 250)
        self.assertEqual(self.tally.entry_get(entry)["seq"], receipt.seq)

    def test_pipelined_posts_cut_mid_burst_each_apply_exactly_once(self):
        ids = [support.unique(f"pipe{i}") for i in range(40)]
        head = self.tally.log_head()

        async def run():
            async with support.CuttingProxy(f'"id":"{ids[9]}"'.encode()) as proxy:
                async with support.async_client(proxy.address, **FAST) as tally:
                    receipts = await asyncio.gather(
                        *(tally.post(self.legs(i + 1), id=e) for i, e in enumerate(ids))
                    )
                    return proxy, receipts

        proxy, receipts = self.run_async(run())
        self.assertEqual(len(proxy.swallowed), 1)
        self.assertEqual(proxy.connections, 2)
        self.assertEqual([r.id for r in receipts], ids)
        self.assertEqual(len({r.seq for r in receipts}), 40)
        self.assertEqual(self.tally.log_head().seq, head.seq + 40)
        self.assertEqual(self.tally.balance(self.wallet).balance, sum(range(1, 41)))

    def test_batch_hold_and_capture_are_resent_by_id(self):
        self.tally.post(self.legs(1000))
        hold = support.unique("hold")
        batch_id = support.unique("batch")

        async def through_cut(marker, call):
            async with support.CuttingProxy(marker.encode()) as proxy:
                async with support.async_client(proxy.address, **FAST) as tally:
                    result = await call(tally)
                    self.assertEqual((len(proxy.swallowed), proxy.connections), (1, 2))
                    return result

        head = self.tally.log_head()
        results = self.run_async(through_cut(
            f'"id":"{batch_id}"',
            lambda t: t.batch([{"id": batch_id, "legs": self.legs(5)},
                               {"legs": self.legs(6)}]),
        ))
        self.assertTrue(all(isinstance(r, Receipt) for r in results), results)
        placed = self.run_async(through_cut(
            f'"id":"{hold}"',
            lambda t: t.hold_place([debit(self.wallet, 300), credit(self.cash, 300)], id=hold),
        ))
        captured = self.run_async(through_cut(
            f'"id":"{hold}"', lambda t: t.hold_capture(hold, amount=100)
        ))
        self.assertEqual(captured.seq, placed.seq + 1)
        self.assertEqual(self.tally.log_head().seq, head.seq + 4)
        b = self.tally.balance(self.wallet)
        self.assertEqual((b.balance, b.available, b.pending_debits), (1011 - 100, 911, 0))

    def test_a_write_without_an_idempotency_id_is_never_resent(self):
        self.tally.account_open(closing := support.unique("py-close"), "EUR")

        async def run():
            async with support.CuttingProxy(f'"account":"{closing}"'.encode()) as proxy:
                async with support.async_client(proxy.address, **FAST) as tally:
                    with self.assertRaises(OutcomeUnknownError) as caught:
                        await tally.account_close(closing)
                    return proxy, caught.exception

        proxy, error = self.run_async(run())
        self.assertEqual(error.verb, "ACCOUNT.CLOSE")
        self.assertIsInstance(error.cause, TallyConnectionError)
        self.assertEqual(proxy.sent(closing.encode()), 1)
        # It had been applied: the caller must look before acting again.
        self.assertEqual(self.tally.account_get(closing)["status"], "closed")

    def test_a_read_whose_answer_is_lost_is_resent(self):
        async def run():
            async with support.CuttingProxy(b'"pong":true') as proxy:
                async with support.async_client(proxy.address, **FAST) as tally:
                    return await tally.ping(), proxy

        pong, proxy = self.run_async(run())
        self.assertTrue(pong)
        self.assertEqual((proxy.connections, proxy.sent(b"PING")), (2, 2))

    def test_attempts_are_bounded_and_the_same_id_later_answers_the_original(self):
        entry = support.unique("again")

        async def run():
            async with support.CuttingProxy(f'"id":"{entry}"'.encode(), times=99) as proxy:
                async with support.async_client(proxy.address, max_attempts=3, **FAST) as t:
                    with self.assertRaises(OutcomeUnknownError) as caught:
                        await t.post(self.legs(40), id=entry)
                    return proxy, caught.exception

        proxy, error = self.run_async(run())
        self.assertEqual(error.request_id, entry)
        self.assertEqual((proxy.sent(entry.encode()), len(proxy.swallowed)), (3, 3))
        originals = {json.loads(line.split(b" ", 1)[1])["seq"] for line in proxy.swallowed}
        self.assertEqual(len(originals), 1)
        again = self.tally.post(self.legs(40), id=entry)
        self.assertEqual({again.seq}, originals)
        self.assertEqual(self.tally.balance(self.wallet).balance, 40)

    def test_an_unreachable_server_fails_after_the_bounded_attempts(self):
        async def run():
            # A port that was just free: nothing listens there.
            server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            server.close()
            await server.wait_closed()
            tally = support.async_client(f"127.0.0.1:{port}", max_attempts=3, **FAST)
            with self.assertRaises(TallyConnectionError) as caught:
                await tally.ping()
            return caught.exception, tally.connections

        error, connections = self.run_async(run())
        self.assertFalse(error.sent)
        self.assertEqual(connections, 0)


if __name__ == "__main__":
    unittest.main()
