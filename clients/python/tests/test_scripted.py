"""The client against a scripted peer on 127.0.0.1 (no tallyd): the server behaviours a
real one shows only at bad moments — shutting down mid-request, answering nothing, a
malformed or over-long answer, a line the client never asked for — and the in-flight
bound."""

from __future__ import annotations

import asyncio
import unittest

import support  # noqa: F401  (puts the package on sys.path)

from tally_client import (
    AsyncClient,
    OutcomeUnknownError,
    ProtocolError,
    RequestTimeoutError,
    TallyConnectionError,
)

HELLO = b'HELLO {"server":"tally","version":1,"nonce":"' + b"ab" * 32 + b'"}\n'
FAST = {"backoff_initial": 0.01, "backoff_max": 0.05, "request_timeout": 30.0}


class ScriptedServer:
    """Greets, accepts any AUTH, then hands every request line to ``answer(conn, line)``,
    which returns the bytes to send (``b""`` for none) and whether to close after."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = []
        self.unanswered_max = 0
        self._server = None

    async def __aenter__(self):
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc):
        self._server.close()
        await self._server.wait_closed()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _handle(self, reader, writer):
        self.connections += 1
        conn = self.connections
        try:
            writer.write(HELLO)
            await reader.readline()
            writer.write(b'OK {"role":"admin","partner":null}\n')
            while True:
                line = await reader.readline()
                if not line:
                    break
                self.requests.append((conn, line))
                data, close = await self.answer(conn, line)
                writer.write(data)
                await writer.drain()
                if close:
                    break
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()
            writer.close()


def client(address, **options) -> AsyncClient:
    return AsyncClient(address, "key_x", "secret", **{**FAST, **options})


RECEIPT = b'OK {"id":"a","seq":7,"ts":1,"chain":"' + b"c" * 64 + b'"}\n'


class ScriptedTests(unittest.TestCase):
    def run_async(self, coro):
        return asyncio.run(asyncio.wait_for(coro, 60))

    def test_shutting_down_is_resent_on_a_new_connection_even_for_a_plain_write(self):
        async def answer(conn, line):
            if conn == 1:
                return b'ERR SHUTTING_DOWN {"message":"stopping","reason":"SHUTTING_DOWN"}\n', True
            return b'OK {"account":"x","seq":9}\n', False

        async def run():
            async with ScriptedServer(answer) as server:
                async with client(server.address) as tally:
                    created = await tally.account_close("x")
                return created, server

        created, server = self.run_async(run())
        self.assertEqual((created.name, created.seq), ("x", 9))
        self.assertEqual([c for c, _ in server.requests], [1, 2])

    def test_a_write_without_an_answer_times_out_closes_and_is_not_resent(self):
        async def answer(conn, line):
            return b"", False

        async def run():
            async with ScriptedServer(answer) as server:
                async with client(server.address, request_timeout=0.5) as tally:
                    with self.assertRaises(OutcomeUnknownError) as caught:
                        await tally.account_close("x")
                    return caught.exception, server

        error, server = self.run_async(run())
        self.assertIsInstance(error.cause, RequestTimeoutError)
        self.assertEqual(len(server.requests), 1)

    def test_a_malformed_or_unsolicited_answer_closes_the_connection(self):
        for bad in (b"OK {nope\n", b'OK {"pong":true}\nOK {"pong":true}\n'):
            async def answer(conn, line, bad=bad):
                return bad, False

            async def run():
                async with ScriptedServer(answer) as server:
                    tally = client(server.address, max_attempts=1)
                    try:
                        try:
                            first = await tally.ping()
                        except ProtocolError:
                            return "protocol"
                        # The extra line answered nothing: the connection is dropped (a
                        # 30 s no-hang bound, polled).
                        self.assertTrue(first)
                        for _ in range(3000):
                            if tally._conn.closed:
                                return "closed"
                            await asyncio.sleep(0.01)
                        return "still open"
                    finally:
                        await tally.close()

            self.assertIn(self.run_async(run()), ("protocol", "closed"), bad)

    def test_an_answer_longer_than_the_cap_is_a_protocol_error(self):
        async def answer(conn, line):
            return b'OK {"pong":"' + b"x" * 5000 + b'"}\n', False

        async def run():
            async with ScriptedServer(answer) as server:
                async with client(server.address, max_response_bytes=4096,
                                  max_attempts=1) as tally:
                    with self.assertRaises(ProtocolError):
                        await tally.ping()

        self.run_async(run())

    def test_no_more_than_max_inflight_requests_are_unanswered_at_once(self):
        # The peer answers only when no line came for 0.2 s, then everything waiting: without
        # the bound all 20 requests would wait unanswered at once.
        waiting_max = [0]

        async def handle(reader, writer):
            writer.write(HELLO)
            await reader.readline()
            writer.write(b'OK {"role":"admin","partner":null}\n')
            waiting = 0
            try:
                while True:
                    try:
                        line = await asyncio.wait_for(reader.readline(), 0.2)
                    except asyncio.TimeoutError:
                        writer.write(b'OK {"pong":true}\n' * waiting)
                        waiting = 0
                        continue
                    if not line:
                        break
                    waiting += 1
                    waiting_max[0] = max(waiting_max[0], waiting)
            finally:
                writer.close()

        async def run():
            server = await asyncio.start_server(handle, "127.0.0.1", 0)
            address = f"127.0.0.1:{server.sockets[0].getsockname()[1]}"
            try:
                async with client(address, max_inflight=4) as tally:
                    return await asyncio.gather(*(tally.ping() for _ in range(20)))
            finally:
                server.close()
                await server.wait_closed()

        self.assertEqual(self.run_async(run()), [True] * 20)
        self.assertGreaterEqual(waiting_max[0], 1)
        self.assertLessEqual(waiting_max[0], 4)

    def test_a_refused_connection_is_a_connection_error_not_sent(self):
        async def run():
            async with ScriptedServer(None) as server:
                address = server.address
            with self.assertRaises(TallyConnectionError) as caught:
                await client(address, max_attempts=2).ping()
            return caught.exception

        self.assertFalse(self.run_async(run()).sent)


if __name__ == "__main__":
    unittest.main()
