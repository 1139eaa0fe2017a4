"""Typed errors.

Every ``ERR CODE {...}`` answer becomes an instance of the ``TallyError`` subclass for its
code. The codes are the table of docs/PROTOCOL.md ("Error codes"); ``ERROR_CODES`` below is
the one place they are listed, and a test compares it with the document. A code this client
does not know yet (the server appends new ones) becomes a plain ``TallyError`` that still
carries the code, never a silent success.

Failures of the connection itself are ``TallyConnectionError``s. ``OutcomeUnknownError`` is
the one a caller must handle with care: a write was sent, the connection failed before its
answer, and the client could not (or may not) resend it. Re-send it with the same id, or
look the object up, before doing anything else.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional, Type

# code -> (class name, when the server answers it). Order and spelling as in PROTOCOL.md.
ERROR_CODES: Dict[str, tuple] = {
    "BAD_REQUEST": ("BadRequestError", "malformed request, invalid field, id or metadata"),
    "UNKNOWN_VERB": ("UnknownVerbError", "the verb is not in the protocol"),
    "LINE_TOO_LONG": ("LineTooLongError", "the request line exceeds --max-line-bytes"),
    "AUTH_REQUIRED": ("AuthRequiredError", "a verb other than PING, AUTH or QUIT before AUTH"),
    "AUTH_FAILED": ("AuthFailedError", "unknown or revoked key, wrong MAC, rate limited"),
    "FORBIDDEN": ("ForbiddenError", "the key's role may not use this verb"),
    "NOT_FOUND": ("NotFoundError", "no such object, or outside a service key's scope"),
    "ALREADY_EXISTS": ("AlreadyExistsError", "a partner or account exists, different"),
    "ID_CONFLICT": ("IdConflictError", "the entry or hold id exists with other content"),
    "UNBALANCED": ("UnbalancedError", "debits and credits differ for a currency"),
    "CURRENCY_MISMATCH": ("CurrencyMismatchError", "a currency is not its account's"),
    "UNKNOWN_CURRENCY": ("UnknownCurrencyError", "neither ISO 4217 nor a declared asset"),
    "ACCOUNT_CLOSED": ("AccountClosedError", "a leg is on a closed account"),
    "INSUFFICIENT_FUNDS": ("InsufficientFundsError", "a no_overdraft account would go below 0"),
    "LIMIT_EXCEEDED": ("LimitExceededError", "an account's limit would be exceeded"),
    "INVALID_AMOUNT": ("InvalidAmountError", "zero, negative, not an integer, out of range"),
    "OVERFLOW": ("AmountOverflowError", "a sum would leave the 128-bit range"),
    "ALREADY_REVERSED": ("AlreadyReversedError", "the entry was already reversed"),
    "HOLD_NOT_PENDING": ("HoldNotPendingError", "the hold was captured, released or expired"),
    "CAPTURE_EXCEEDS_HOLD": ("CaptureExceedsHoldError", "a capture exceeds the held amount"),
    "ACCOUNT_NOT_EMPTY": ("AccountNotEmptyError", "closing an account with a balance"),
    "ACCOUNT_HAS_HOLDS": ("AccountHasHoldsError", "closing an account with pending holds"),
    "STATEMENT_INVALID": ("StatementInvalidError", "a statement that cannot be read"),
    "STATEMENT_ACCOUNT_MISMATCH": (
        "StatementAccountMismatchError",
        "the statement names another account",
    ),
    "ITEM_STATE": ("ItemStateError", "the reconciliation item's state forbids this"),
    "TOO_LARGE": ("TooLargeError", "ENTRY.BATCH with more than --max-batch entries"),
    "TOO_MANY_CONNECTIONS": ("TooManyConnectionsError", "--max-connections are open"),
    "TIMEOUT": ("SessionTimeoutError", "auth or idle timeout; the server closes the connection"),
    "SHUTTING_DOWN": ("ShuttingDownError", "the server is stopping; nothing was applied"),
    "INTERNAL": ("InternalError", "the store failed; nothing was applied"),
    "NOT_REPLICATED": ("NotReplicatedError", "durable locally, not acknowledged by the stream"),
    "NOT_CAUGHT_UP": ("NotCaughtUpError", "REPLICA.PROMOTE on a replica that is behind"),
    "READ_ONLY": ("ReadOnlyError", "a write sent to a read replica (or a fenced primary)"),
    "UNAVAILABLE": (
        "UnavailableError",
        "disk full, map full or I/O error; nothing applied; details.retryable",
    ),
}


class TallyError(Exception):
    """An ``ERR`` answer: ``code`` (stable), ``reason`` (the precise rule), ``message``
    (human text) and ``details`` (string to string)."""

    code: str = ""

    def __init__(
        self,
        code: str,
        reason: str = "",
        message: str = "",
        details: Optional[Mapping[str, str]] = None,
    ) -> None:
        super().__init__(f"{code} ({reason}): {message}" if reason else f"{code}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.details: Dict[str, str] = dict(details or {})


_BY_CODE: Dict[str, Type[TallyError]] = {}


def _define(code: str, name: str, when: str) -> Type[TallyError]:
    cls = type(name, (TallyError,), {"__doc__": f"``{code}``: {when}.", "code": code})
    cls.__module__ = __name__
    _BY_CODE[code] = cls
    globals()[name] = cls
    return cls


for _code, (_name, _when) in ERROR_CODES.items():
    _define(_code, _name, _when)


def error_class(code: str) -> Type[TallyError]:
    """The class for ``code`` (``TallyError`` itself for a code this client does not know)."""
    return _BY_CODE.get(code, TallyError)


def error_from_body(code: str, body: Mapping) -> TallyError:
    """The typed error of an ``ERR`` line (or an ``ENTRY.BATCH`` result's ``error``)."""
    details = body.get("details")
    return error_class(code)(
        code,
        str(body.get("reason", "")),
        str(body.get("message", "")),
        {str(k): str(v) for k, v in details.items()} if isinstance(details, dict) else {},
    )


# MARK: - Client-side errors (no server code)


class TallyClientError(Exception):
    """Base of the errors this client raises on its own (no ``ERR`` line behind them)."""


class TallyConnectionError(TallyClientError):
    """The connection could not be made, or failed; ``sent`` says whether the request had
    been written to it."""

    def __init__(self, message: str, sent: bool = False) -> None:
        super().__init__(message)
        self.sent = sent


class RequestTimeoutError(TallyConnectionError):
    """No answer within the request timeout; the connection was closed (a late answer
    could not be told from the next one)."""


class ProtocolError(TallyConnectionError):
    """The server sent something the protocol does not allow (a malformed or over-long
    line, a second HELLO, an unsupported version); the connection was closed."""


class OutcomeUnknownError(TallyClientError):
    """A write was sent and no answer came back, and it was not (or no longer) resent.

    ``verb`` and ``request_id`` (the idempotency id, when the verb has one) say which.
    Writes with an id are exactly-once on the server: calling again with the same id
    answers the original outcome. The others (``ACCOUNT.CLOSE``, ``KEY.*``, ``RECON.*`` …)
    must be checked by reading before they are tried again."""

    def __init__(self, verb: str, request_id: Optional[str], cause: BaseException) -> None:
        super().__init__(f"{verb} {request_id or ''}: sent, outcome unknown ({cause})")
        self.verb = verb
        self.request_id = request_id
        self.cause = cause


class RequestTooLargeError(TallyClientError):
    """The request line would exceed the client's ``max_line_bytes`` (the server's
    ``--max-line-bytes``); nothing was sent."""


__all__ = [
    "ERROR_CODES",
    "TallyError",
    "error_class",
    "error_from_body",
    "TallyClientError",
    "TallyConnectionError",
    "RequestTimeoutError",
    "ProtocolError",
    "OutcomeUnknownError",
    "RequestTooLargeError",
] + [name for name, _ in ERROR_CODES.values()]
