"""Typed answers. Amounts are ``int`` minor units; ``seq`` and ``ts`` are ``int``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Optional

from .errors import ProtocolError


def _field(body: Mapping[str, Any], name: str, kind: type, nullable: bool = False) -> Any:
    value = body.get(name)
    if value is None and nullable and name in body:
        return None
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ProtocolError(f"answer field {name!r} is not a {kind.__name__}: {value!r}")
    return value


def _amount(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if not isinstance(value, str):
        raise ProtocolError(f"answer field {name!r} is not an amount string: {value!r}")
    digits = value[1:] if value.startswith("-") else value
    if not (digits.isascii() and digits.isdigit()):
        raise ProtocolError(f"answer field {name!r} is not an integer amount: {value!r}")
    return int(value)


@dataclass(frozen=True)
class Receipt:
    """A write's durable outcome: ``{"id","seq","ts","chain"}`` (ENTRY.POST, ENTRY.REVERSE,
    HOLD.*). A retried write answers the same receipt."""

    id: str
    seq: int
    ts: int
    chain: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Receipt":
        return cls(
            _field(body, "id", str),
            _field(body, "seq", int),
            _field(body, "ts", int),
            _field(body, "chain", str),
        )


@dataclass(frozen=True)
class Created:
    """ACCOUNT.OPEN, ACCOUNT.CLOSE, PARTNER.CREATE: the name and the seq of the event
    (``None`` when nothing was appended; an identical re-open answers its original seq)."""

    name: str
    seq: Optional[int]

    @classmethod
    def from_body(cls, body: Mapping[str, Any], key: str) -> "Created":
        return cls(_field(body, key, str), _field(body, "seq", int, nullable=True))


@dataclass(frozen=True)
class Head:
    """LOG.HEAD: the last seq, its timestamp (ns) and the chain hash after it."""

    seq: int
    ts: int
    chain: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Head":
        return cls(_field(body, "seq", int), _field(body, "ts", int), _field(body, "chain", str))


@dataclass(frozen=True)
class Balance:
    """BALANCE.GET: the posted and pending columns, ``balance`` (normal side minus the
    other), ``available`` (balance minus pending outflows), ``seq`` of the last change."""

    account: str
    currency: str
    scale: int
    normal_side: str
    posted_debits: int
    posted_credits: int
    pending_debits: int
    pending_credits: int
    balance: int
    available: int
    seq: int

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> "Balance":
        posted = _field(body, "posted", dict)
        pending = _field(body, "pending", dict)
        return cls(
            account=_field(body, "account", str),
            currency=_field(body, "currency", str),
            scale=_field(body, "scale", int),
            normal_side=_field(body, "normal_side", str),
            posted_debits=_amount(posted, "debits"),
            posted_credits=_amount(posted, "credits"),
            pending_debits=_amount(pending, "debits"),
            pending_credits=_amount(pending, "credits"),
            balance=_amount(body, "balance"),
            available=_amount(body, "available"),
            seq=_field(body, "seq", int),
        )
