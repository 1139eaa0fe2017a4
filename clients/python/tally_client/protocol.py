"""The wire contract of docs/PROTOCOL.md: framing, the verb table, amounts, the AUTH MAC.

Pure functions over bytes and values; no sockets here.
"""

from __future__ import annotations

import decimal
import enum
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .errors import ProtocolError, RequestTooLargeError, error_from_body

PROTOCOL_VERSION = 1

# The server's default --max-line-bytes (1 MiB): the longest request line it reads. A longer
# one is refused here, before anything is sent.
MAX_LINE_BYTES_DEFAULT = 1 << 20
# The server's default --max-inflight: unanswered requests per connection. Past it the
# server stops reading; the client waits instead of queueing without bound.
MAX_INFLIGHT_DEFAULT = 128
# The longest answer line read. The largest answers are pages of 10,000 (LOG.READ with event
# bytes in hex, ACCOUNT.LIST with balances): a few MiB. 64 MiB bounds the buffer well above.
MAX_RESPONSE_BYTES_DEFAULT = 64 << 20


class Kind(enum.Enum):
    """How a verb may be retried after its connection failed before the answer."""

    # Changes nothing: resent freely.
    READ = "read"
    # Exactly-once by id on the server (docs/PROTOCOL.md, "Writes are exactly-once by id";
    # docs/RULES.md: repeating the same capture or release answers the original): resent
    # with identical content, it answers the original outcome.
    IDEMPOTENT = "idempotent"
    # No idempotency id: never resent once it may have reached the server.
    WRITE = "write"


# Every verb of docs/PROTOCOL.md and its retry kind: the one place this is decided.
VERBS: Dict[str, Kind] = {
    "PING": Kind.READ,
    "AUTH": Kind.WRITE,
    "QUIT": Kind.WRITE,
    "KEY.CREATE": Kind.WRITE,
    "KEY.REVOKE": Kind.WRITE,
    "KEY.LIST": Kind.READ,
    "PARTNER.CREATE": Kind.IDEMPOTENT,
    "PARTNER.GET": Kind.READ,
    "PARTNER.LIST": Kind.READ,
    "PARTNER.VIEW": Kind.READ,
    "ACCOUNT.OPEN": Kind.IDEMPOTENT,
    "ACCOUNT.GET": Kind.READ,
    "ACCOUNT.CLOSE": Kind.WRITE,
    "ACCOUNT.LIST": Kind.READ,
    "ENTRY.POST": Kind.IDEMPOTENT,
    "ENTRY.BATCH": Kind.IDEMPOTENT,
    "ENTRY.GET": Kind.READ,
    "ENTRY.REVERSE": Kind.IDEMPOTENT,
    "HOLD.PLACE": Kind.IDEMPOTENT,
    "HOLD.CAPTURE": Kind.IDEMPOTENT,
    "HOLD.RELEASE": Kind.IDEMPOTENT,
    "BALANCE.GET": Kind.READ,
    "STATEMENT.GET": Kind.READ,
    "LOG.HEAD": Kind.READ,
    "LOG.READ": Kind.READ,
    "PROOF.INCLUSION": Kind.READ,
    "PROOF.CONSISTENCY": Kind.READ,
    "CHECKPOINT.GET": Kind.READ,
    "CHECKPOINT.LIST": Kind.READ,
    "STATS": Kind.READ,
    "REPLICA.PROMOTE": Kind.WRITE,
    "RECON.IMPORT": Kind.WRITE,
    "RECON.STATUS": Kind.READ,
    "RECON.ITEMS": Kind.READ,
    "RECON.RESOLVE": Kind.WRITE,
    "RECON.UNMATCH": Kind.WRITE,
}


def verb_kind(verb: str) -> Kind:
    """The retry kind of ``verb``; a verb this client does not know is a plain write."""
    return VERBS.get(verb, Kind.WRITE)


# MARK: - Amounts

# Answer fields that hold amounts (strings of integer minor units on the wire). They become
# Python ints; objects under them (``posted``: {debits, credits}) are walked. ``metadata``
# and ``details`` are the caller's strings and are never converted.
AMOUNT_FIELDS = frozenset(
    {
        "amount",
        "debits",
        "credits",
        "balance",
        "available",
        "limit",
        "posted",
        "pending_in",
        "pending_out",
        "opening",
        "closing",
    }
)
# Objects whose every value is an amount (RECON.STATUS: state -> amount).
AMOUNT_MAPS = frozenset({"amounts"})
OPAQUE_FIELDS = frozenset({"metadata", "details", "note"})


def amount_to_wire(value: Any, field: str = "amount") -> str:
    """An amount as the wire wants it: the decimal string of an int of minor units.

    Only ``int`` is accepted: a float could already have lost a cent, and ``bool`` is an int
    by accident. Sign and range are the server's to judge (``INVALID_AMOUNT``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{field} must be an int of minor units, not {type(value).__name__}")
    return str(value)


def _amount_from_wire(value: str, field: str) -> int:
    body = value[1:] if value.startswith("-") else value
    if not body.isdigit() or not body.isascii():
        raise ProtocolError(f"{field} is not an integer amount: {value!r}")
    return int(value)


def amounts_to_int(obj: Any, key: Optional[str] = None) -> Any:
    """A parsed answer with every amount field (``AMOUNT_FIELDS``) as an ``int``."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            if k in OPAQUE_FIELDS:
                out[k] = v
            elif k in AMOUNT_MAPS and isinstance(v, dict):
                out[k] = {
                    s: _amount_from_wire(a, f"{k}.{s}") if isinstance(a, str) else a
                    for s, a in v.items()
                }
            elif k in AMOUNT_FIELDS and isinstance(v, str):
                out[k] = _amount_from_wire(v, k)
            else:
                out[k] = amounts_to_int(v, k)
        return out
    if isinstance(obj, list):
        return [amounts_to_int(v, key) for v in obj]
    return obj


# MARK: - Framing


def encode_request(verb: str, body: Optional[Dict[str, Any]], max_line_bytes: int) -> bytes:
    """``VERB [SP json-object] LF``. Raises ``RequestTooLargeError`` past ``max_line_bytes``
    (the newline not counted)."""
    if not verb or len(verb) > 32 or any(c not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ." for c in verb):
        raise ValueError(f"not a protocol verb: {verb!r}")
    line = verb
    if body is not None:
        line += " " + json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    data = line.encode("utf-8")
    if len(data) > max_line_bytes:
        raise RequestTooLargeError(
            f"{verb} request is {len(data)} bytes; the limit is {max_line_bytes}"
        )
    return data + b"\n"


def _strict_object(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ProtocolError(f"duplicate key {k!r} in an answer")
        out[k] = v
    return out


def _no_float(text: str):
    # The protocol has no fractional numbers; a float would mean a lossy reading.
    return decimal.Decimal(text)


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(
            text,
            object_pairs_hook=_strict_object,
            parse_float=_no_float,
            parse_constant=lambda c: _raise(ProtocolError(f"{c} in {what}")),
        )
    except ValueError as e:
        if isinstance(e, ProtocolError):
            raise
        raise ProtocolError(f"{what} is not valid JSON: {e}") from None


def _raise(e: BaseException):
    raise e


@dataclass(frozen=True)
class Response:
    """One answer line: ``ok`` with ``body`` (any JSON), or an error ``code`` with its
    object body."""

    ok: bool
    body: Any
    code: Optional[str] = None


def parse_response(line: bytes) -> Response:
    """``OK [SP json]`` or ``ERR SP CODE SP json-object`` (a trailing ``\\n``/``\\r\\n`` is
    dropped)."""
    try:
        text = line.decode("utf-8").rstrip("\n").rstrip("\r")
    except UnicodeDecodeError:
        raise ProtocolError("answer is not UTF-8") from None
    if text == "OK":
        return Response(True, {})
    if text.startswith("OK "):
        return Response(True, parse_json(text[3:], "OK body"))
    if text.startswith("ERR "):
        code, sep, rest = text[4:].partition(" ")
        body = parse_json(rest, f"ERR {code} body") if sep else {}
        if not code or not isinstance(body, dict):
            raise ProtocolError(f"malformed ERR line: {text[:200]!r}")
        return Response(False, body, code)
    raise ProtocolError(f"unexpected line: {text[:200]!r}")


def parse_hello(line: bytes) -> str:
    """The nonce of ``HELLO {"server","version","nonce"}``. A server that answers ``ERR``
    instead (``TOO_MANY_CONNECTIONS``) raises that typed error."""
    text = line.decode("utf-8", "replace").rstrip("\r\n")
    if text.startswith("ERR "):
        r = parse_response(line)
        raise error_from_body(r.code or "", r.body)
    if not text.startswith("HELLO "):
        raise ProtocolError(f"expected HELLO, got {text[:200]!r}")
    hello = parse_json(text[6:], "HELLO")
    if not isinstance(hello, dict) or hello.get("server") != "tally":
        raise ProtocolError(f"not a tally server: {text[:200]!r}")
    if hello.get("version") != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {hello.get('version')!r}")
    nonce = hello.get("nonce")
    if not isinstance(nonce, str) or not nonce:
        raise ProtocolError("HELLO without a nonce")
    return nonce


def auth_mac(secret: str, nonce: str) -> str:
    """HMAC-SHA256 keyed with the secret as text, over the nonce as text, in lowercase hex."""
    return hmac.new(secret.encode("utf-8"), nonce.encode("utf-8"), hashlib.sha256).hexdigest()
