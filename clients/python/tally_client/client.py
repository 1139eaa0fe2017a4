"""``AsyncClient`` (asyncio, pipelined) and ``Client`` (blocking, over the same code).

Retries. When a connection fails before an answer, the client reconnects, authenticates
again and resends, at most ``max_attempts`` times in all, sleeping an exponential backoff
with jitter between attempts:
- reads (``Kind.READ``) always;
- writes that are exactly-once by id (``Kind.IDEMPOTENT``) with the same line, so the same
  id: the server answers the original outcome and appends nothing;
- any request that was never written to a connection (the connect failed).
Other writes that were sent are never resent: the caller gets ``OutcomeUnknownError``.
``SHUTTING_DOWN`` (nothing of the request was applied) is retried like a dropped
connection. Every other ``ERR`` is raised as its typed error at once.
"""

from __future__ import annotations

import asyncio
import os
import random
import threading
from typing import Any, Callable, Dict, Optional, Tuple

from .connection import Connection
from .errors import (
    OutcomeUnknownError,
    TallyConnectionError,
    TallyError,
    error_from_body,
)
from .protocol import (
    MAX_INFLIGHT_DEFAULT,
    MAX_LINE_BYTES_DEFAULT,
    MAX_RESPONSE_BYTES_DEFAULT,
    Kind,
    encode_request,
    verb_kind,
)
from .verbs import Verbs

# Codes answered when nothing of the request was applied and the connection is closing or
# refused: the request is sent again on a new connection.
_RETRY_CODES = frozenset({"SHUTTING_DOWN", "TOO_MANY_CONNECTIONS"})


def split_address(address: str) -> Tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` too) into its parts."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"address must be HOST:PORT, not {address!r}")
    return host.strip("[]"), int(port)


def _env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise ValueError(f"{name} is not set")
    return value


class AsyncClient(Verbs):
    """A pipelined asyncio client: any number of tasks may call it at once; their requests
    share one connection (at most ``max_inflight`` unanswered) and answers are matched in
    order.

        async with AsyncClient("127.0.0.1:7878", key, secret) as tally:
            receipt = await tally.post([debit("cash", 1050), credit("alice", 1050)])
    """

    def __init__(
        self,
        address: str,
        key: str,
        secret: str,
        *,
        connect_timeout: float = 10.0,
        request_timeout: float = 60.0,
        max_inflight: int = MAX_INFLIGHT_DEFAULT,
        max_line_bytes: int = MAX_LINE_BYTES_DEFAULT,
        max_response_bytes: int = MAX_RESPONSE_BYTES_DEFAULT,
        max_attempts: int = 5,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
        id_prefix: str = "",
    ) -> None:
        if max_attempts < 1 or max_inflight < 1:
            raise ValueError("max_attempts and max_inflight must be at least 1")
        self.host, self.port = split_address(address)
        self._key = key
        self._secret = secret
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.max_inflight = max_inflight
        self.max_line_bytes = max_line_bytes
        self.max_response_bytes = max_response_bytes
        self.max_attempts = max_attempts
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.id_prefix = id_prefix
        self._conn: Optional[Connection] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._closed = False
        # Connections made so far (a reconnect adds one).
        self.connections = 0

    @classmethod
    def from_env(cls, **options: Any) -> "AsyncClient":
        """From ``TALLY_ADDR`` (``HOST:PORT``), ``TALLY_KEY`` and ``TALLY_SECRET``."""
        return cls(_env("TALLY_ADDR"), _env("TALLY_KEY"), _env("TALLY_SECRET"), **options)

    async def connect(self) -> "AsyncClient":
        """Connects and authenticates now (otherwise the first request does)."""
        await self._connection()
        return self

    async def __aenter__(self) -> "AsyncClient":
        return await self.connect()

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        """Closes the connection; requests still waiting fail, and later calls are refused."""
        self._closed = True
        if self._conn is not None:
            self._conn.close()

    @property
    def role(self) -> Optional[str]:
        return self._conn.role if self._conn else None

    @property
    def partner(self) -> Optional[str]:
        return self._conn.partner if self._conn else None

    async def _connection(self) -> Connection:
        if self._closed:
            raise TallyConnectionError("the client is closed")
        conn = self._conn
        if conn is not None and not conn.closed:
            return conn
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            conn = self._conn
            if conn is not None and not conn.closed:
                return conn
            self._conn = await Connection.open(
                self.host,
                self.port,
                self._key,
                self._secret,
                connect_timeout=self.connect_timeout,
                max_inflight=self.max_inflight,
                max_line_bytes=self.max_line_bytes,
                max_response_bytes=self.max_response_bytes,
            )
            self.connections += 1
            return self._conn

    def _backoff(self, attempt: int) -> float:
        base = min(self.backoff_max, self.backoff_initial * (2 ** (attempt - 1)))
        return base * (0.5 + random.random() / 2)

    async def _call(
        self,
        verb: str,
        body: Optional[Dict[str, Any]],
        parse: Callable[[Any], Any],
        request_id: Optional[str] = None,
    ) -> Any:
        line = encode_request(verb, body, self.max_line_bytes)
        kind = verb_kind(verb)
        sent = False
        attempt = 0
        while True:
            attempt += 1
            last_try = attempt >= self.max_attempts or self._closed
            try:
                conn = await self._connection()
                answer = await conn.request(line, self.request_timeout)
            except TallyConnectionError as e:
                sent = sent or e.sent
                if sent and kind is not Kind.READ and (kind is Kind.WRITE or last_try):
                    raise OutcomeUnknownError(verb, request_id, e) from e
                if last_try:
                    raise
                await asyncio.sleep(self._backoff(attempt))
                continue
            except TallyError as e:
                # The reconnect was refused (AUTH_FAILED, TOO_MANY_CONNECTIONS instead of
                # HELLO): after a write was sent, its outcome is still unknown.
                if e.code in _RETRY_CODES and not last_try:
                    await asyncio.sleep(self._backoff(attempt))
                    continue
                if sent and kind is not Kind.READ:
                    raise OutcomeUnknownError(verb, request_id, e) from e
                raise
            if answer.ok:
                return parse(answer.body)
            error = error_from_body(answer.code or "", answer.body)
            if error.code in _RETRY_CODES and not last_try:
                # Nothing of this attempt was applied, and the server closes the connection
                # once its answers are out: the next attempt goes to a new one.
                conn.retire()
                await asyncio.sleep(self._backoff(attempt))
                continue
            if error.code in _RETRY_CODES and sent and kind is not Kind.READ:
                raise OutcomeUnknownError(verb, request_id, error) from error
            raise error


class Client(Verbs):
    """The blocking client: the same verbs and retries as ``AsyncClient``, which runs on a
    private event loop thread. Safe to share between threads; calls from several threads
    are pipelined on its one connection.

        with Client("127.0.0.1:7878", key, secret) as tally:
            print(tally.balance("alice").balance)
    """

    def __init__(self, address: str, key: str, secret: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="tally-client", daemon=True
        )
        self._thread.start()
        self._async = AsyncClient(address, key, secret, **options)
        self.id_prefix = self._async.id_prefix

    @classmethod
    def from_env(cls, **options: Any) -> "Client":
        """From ``TALLY_ADDR`` (``HOST:PORT``), ``TALLY_KEY`` and ``TALLY_SECRET``."""
        return cls(_env("TALLY_ADDR"), _env("TALLY_KEY"), _env("TALLY_SECRET"), **options)

    @property
    def connections(self) -> int:
        return self._async.connections

    @property
    def role(self) -> Optional[str]:
        return self._async.role

    def _run(self, coro: Any) -> Any:
        if not self._thread.is_alive():
            coro.close()
            raise TallyConnectionError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def connect(self) -> "Client":
        self._run(self._async.connect())
        return self

    def __enter__(self) -> "Client":
        return self.connect()

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes the connection and stops the loop thread."""
        if not self._thread.is_alive():
            return
        self._run(self._async.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()

    def _call(self, *request: Any) -> Any:
        return self._run(self._async._call(*request))
