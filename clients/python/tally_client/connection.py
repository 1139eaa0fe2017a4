"""One authenticated connection: pipelined requests, answers matched in order.

Requests are written as they come (up to ``max_inflight`` unanswered, then callers wait);
each waits on a future queued in write order, and one reader task resolves the futures in
that order, because the server answers in request order. When the connection fails every
waiting request fails with ``TallyConnectionError(sent=True)``; the client decides what may
be resent.
"""

from __future__ import annotations

import asyncio
import collections
from typing import Deque, Optional

from .errors import (
    ProtocolError,
    RequestTimeoutError,
    TallyConnectionError,
    error_from_body,
)
from .protocol import Response, auth_mac, encode_request, parse_hello, parse_response


def _retrieve(fut: "asyncio.Future[Response]") -> None:
    # A request whose caller gave up (timeout, cancellation) still gets its answer or
    # failure set; reading it here keeps asyncio from logging it as never retrieved.
    if not fut.cancelled():
        fut.exception()


class Connection:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_inflight: int,
        max_line_bytes: int,
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._max_line_bytes = max_line_bytes
        # Bounded by _slots: at most max_inflight futures wait here.
        self._pending: Deque["asyncio.Future[Response]"] = collections.deque()
        self._slots = asyncio.Semaphore(max_inflight)
        self._drain_lock = asyncio.Lock()
        self._failure: Optional[TallyConnectionError] = None
        # Set when the server said it is closing this connection (SHUTTING_DOWN): the
        # requests already sent still get their answers, new ones go elsewhere.
        self._retired = False
        self._read_task: Optional["asyncio.Task[None]"] = None
        self.role: Optional[str] = None
        self.partner: Optional[str] = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        key: str,
        secret: str,
        *,
        connect_timeout: float,
        max_inflight: int,
        max_line_bytes: int,
        max_response_bytes: int,
    ) -> "Connection":
        """Connects, reads HELLO and authenticates, all within ``connect_timeout``.

        Raises ``TallyConnectionError`` (not sent) when the server cannot be reached, the
        typed error of an ``ERR`` sent instead of HELLO (``TOO_MANY_CONNECTIONS``), and
        ``AuthFailedError`` when the key is refused."""
        where = f"{host}:{port}"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=max_response_bytes), connect_timeout
            )
        except asyncio.TimeoutError:
            raise TallyConnectionError(f"connect {where}: no connection within {connect_timeout}s")
        except OSError as e:
            raise TallyConnectionError(f"connect {where}: {e}") from None
        conn = cls(reader, writer, max_inflight, max_line_bytes)
        try:
            try:
                hello = await asyncio.wait_for(reader.readline(), connect_timeout)
            except asyncio.TimeoutError:
                raise TallyConnectionError(f"{where}: no HELLO within {connect_timeout}s")
            except (OSError, ValueError) as e:
                raise TallyConnectionError(f"{where}: reading HELLO: {e}") from None
            if not hello.endswith(b"\n"):
                raise TallyConnectionError(f"{where}: closed before HELLO")
            nonce = parse_hello(hello)
            conn._read_task = asyncio.get_running_loop().create_task(conn._read_loop())
            line = encode_request(
                "AUTH", {"key": key, "mac": auth_mac(secret, nonce)}, max_line_bytes
            )
            answer = await conn.request(line, connect_timeout)
            if not answer.ok:
                raise error_from_body(answer.code or "", answer.body)
            conn.role = answer.body.get("role")
            conn.partner = answer.body.get("partner")
        except BaseException:
            conn.close()
            raise
        return conn

    @property
    def closed(self) -> bool:
        return self._failure is not None or self._retired

    def retire(self) -> None:
        """Takes no new requests; those in flight still get their answers."""
        self._retired = True

    async def request(self, line: bytes, timeout: float) -> Response:
        """Sends one encoded request line and returns its answer.

        Raises ``TallyConnectionError`` with ``sent`` False when nothing was written (the
        connection had already failed, or no slot freed in time) and True when the request
        was written and the connection failed before its answer. A request with no answer
        within ``timeout`` closes the connection (``RequestTimeoutError``): a late answer
        could not be told from the next one."""
        sent = [False]
        try:
            return await asyncio.wait_for(self._request(line, sent), timeout)
        except asyncio.TimeoutError:
            if not sent[0]:
                raise RequestTimeoutError(f"not sent within {timeout}s (connection busy)")
            err = RequestTimeoutError(f"no answer within {timeout}s", sent=True)
            self._fail(err)
            raise err from None

    async def _request(self, line: bytes, sent: list) -> Response:
        self._check_open()
        async with self._slots:
            self._check_open()
            fut: "asyncio.Future[Response]" = asyncio.get_running_loop().create_future()
            fut.add_done_callback(_retrieve)
            # Queue and write with no await between: the queue's order is the wire's order.
            self._pending.append(fut)
            self._writer.write(line)
            sent[0] = True
            try:
                async with self._drain_lock:
                    await self._writer.drain()
            except (OSError, RuntimeError) as e:
                self._fail(TallyConnectionError(f"write failed: {e}", sent=True))
            return await fut

    def _check_open(self) -> None:
        if self._failure is not None:
            raise TallyConnectionError(f"connection closed: {self._failure}", sent=False)
        if self._retired:
            raise TallyConnectionError("connection closing (the server is shutting down)")

    async def _read_loop(self) -> None:
        try:
            while True:
                try:
                    line = await self._reader.readline()
                except ValueError:
                    raise ProtocolError("an answer line is longer than max_response_bytes")
                except OSError as e:
                    raise TallyConnectionError(f"connection failed: {e}") from None
                if not line.endswith(b"\n"):
                    raise TallyConnectionError("the server closed the connection")
                if not self._pending:
                    # An answer to nothing: the server is closing the connection (idle or
                    # auth timeout, shutdown). Say why.
                    raise TallyConnectionError(
                        "the server closed the connection: "
                        + line.decode("utf-8", "replace").strip()[:300]
                    )
                # Parsed before its future leaves the queue: a malformed answer fails it
                # with the rest of the connection.
                answer = parse_response(line)
                fut = self._pending.popleft()
                if not fut.done():
                    fut.set_result(answer)
        except TallyConnectionError as e:
            self._fail(e)
        except asyncio.CancelledError:
            self._fail(TallyConnectionError("connection closed"))
            raise

    def _fail(self, err: TallyConnectionError) -> None:
        """Closes the connection once: every waiting request fails with ``err``'s kind and
        message, marked sent."""
        if self._failure is not None:
            return
        self._failure = err
        while self._pending:
            fut = self._pending.popleft()
            if not fut.done():
                fut.set_exception(type(err)(str(err), sent=True))
        self._writer.close()
        task = self._read_task
        if task is not None and task is not asyncio.current_task() and not task.done():
            task.cancel()

    def close(self) -> None:
        self._fail(TallyConnectionError("closed by the client"))
