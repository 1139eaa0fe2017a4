"""Shared by the tests: the package on sys.path, the server from the environment, unique
names, and a TCP proxy that cuts a connection at a chosen answer."""

from __future__ import annotations

import asyncio
import os
import sys
import unittest
import uuid
from typing import List, Optional

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import tally_client  # noqa: E402

# A no-hang bound for every request of the tests (the machine may be loaded), never a
# speed check.
REQUEST_TIMEOUT = 60.0


def server() -> tuple:
    """(address, key, secret) of the admin key of the tallyd under test, or skip."""
    names = ("TALLY_ADDR", "TALLY_KEY", "TALLY_SECRET")
    missing = [n for n in names if not os.environ.get(n)]
    if missing:
        raise unittest.SkipTest(
            "no tallyd to test against: set " + ", ".join(missing)
            + " (the address HOST:PORT and an admin key; see clients/python/run-tests)"
        )
    return tuple(os.environ[n] for n in names)


def unique(prefix: str) -> str:
    """A name no other test (or earlier run on the same ledger) uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def client(**options) -> tally_client.Client:
    address, key, secret = server()
    options.setdefault("request_timeout", REQUEST_TIMEOUT)
    return tally_client.Client(address, key, secret, **options)


class LedgerTest(unittest.TestCase):
    """A blocking admin client (``self.tally``) and two fresh platform accounts: ``cash``
    (debit-normal) and a customer ``wallet`` (credit-normal, ``no_overdraft``)."""

    def setUp(self) -> None:
        self.tally = client()
        self.addCleanup(self.tally.close)
        self.cash = unique("py-cash")
        self.wallet = unique("py-wallet")
        self.tally.account_open(self.cash, "EUR")
        self.tally.account_open(self.wallet, "EUR", normal="credit", no_overdraft=True)


def async_client(address: Optional[str] = None, **options) -> tally_client.AsyncClient:
    default, key, secret = server()
    options.setdefault("request_timeout", REQUEST_TIMEOUT)
    return tally_client.AsyncClient(address or default, key, secret, **options)


class CuttingProxy:
    """Forwards 127.0.0.1:port to tallyd line by line. When an answer line contains
    ``marker`` it is swallowed (kept in ``swallowed``) and both sides of that connection
    are cut, as a network failure after the server applied a request but before its answer
    arrived. ``times`` cuts are made (then it forwards everything)."""

    def __init__(self, marker: Optional[bytes] = None, times: int = 1) -> None:
        host, _, port = server()[0].rpartition(":")
        self.upstream = (host.strip("[]"), int(port))
        self.marker = marker
        self.cuts_left = times if marker else 0
        self.swallowed: List[bytes] = []
        self.requests: List[bytes] = []
        self.connections = 0
        self._server: Optional[asyncio.AbstractServer] = None
        self._tasks: set = set()

    async def __aenter__(self) -> "CuttingProxy":
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0, limit=1 << 24)
        return self

    async def __aexit__(self, *exc) -> None:
        assert self._server is not None
        self._server.close()
        # Let handlers of connections accepted just now start, so they are cut below too.
        await asyncio.sleep(0)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    @property
    def address(self) -> str:
        assert self._server is not None
        return f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    def sent(self, needle: bytes) -> int:
        """How many request lines containing ``needle`` reached the server."""
        return sum(1 for line in self.requests if needle in line)

    async def _handle(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        self._tasks.add(task)
        try:
            await self._forward(cr, cw)
        except (asyncio.CancelledError, OSError):
            pass
        finally:
            cw.transport.abort()
            cw.close()
            self._tasks.discard(task)

    async def _forward(self, cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        ur, uw = await asyncio.open_connection(*self.upstream, limit=1 << 24)

        def cut() -> None:
            for w in (cw, uw):
                w.transport.abort()
                w.close()

        async def up() -> None:
            while True:
                line = await cr.readline()
                if not line:
                    break
                self.requests.append(line)
                uw.write(line)
                await uw.drain()
            uw.close()

        async def down() -> None:
            while True:
                line = await ur.readline()
                if not line:
                    break
                if self.cuts_left and self.marker in line:
                    self.cuts_left -= 1
                    self.swallowed.append(line)
                    break
                cw.write(line)
                await cw.drain()
            cut()

        try:
            await asyncio.gather(up(), down(), return_exceptions=True)
        finally:
            cut()
