"""Every verb of docs/PROTOCOL.md, written once for both clients.

``Verbs`` builds each request body and names how to read the answer; the concrete client's
``_call`` sends it. ``AsyncClient._call`` is a coroutine function, so the methods return
awaitables there; ``Client._call`` blocks, so they return values there.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from .errors import ProtocolError, TallyError, error_from_body
from .protocol import amount_to_wire, amounts_to_int
from .results import Balance, Created, Head, Receipt

# A leg: {"account","side","amount"[,"currency"]} or (account, side, amount).
Leg = Union[Mapping[str, Any], Sequence[Any]]

# Entry and hold ids are 1-64 bytes of [A-Za-z0-9._:-] (docs/FORMAT.md); a generated id is
# the prefix and 32 hex digits.
ID_BYTES_MAX = 64
_GENERATED_ID_HEX = 32


def debit(account: str, amount: int, currency: Optional[str] = None) -> Dict[str, Any]:
    """A debit leg of ``amount`` minor units."""
    return _leg(account, "debit", amount, currency)


def credit(account: str, amount: int, currency: Optional[str] = None) -> Dict[str, Any]:
    """A credit leg of ``amount`` minor units."""
    return _leg(account, "credit", amount, currency)


def _leg(account: str, side: str, amount: int, currency: Optional[str]) -> Dict[str, Any]:
    leg = {"account": account, "side": side, "amount": amount}
    if currency is not None:
        leg["currency"] = currency
    return leg


def _legs_to_wire(legs: Iterable[Leg]) -> List[Dict[str, Any]]:
    out = []
    for i, leg in enumerate(legs):
        if isinstance(leg, Mapping):
            wire = dict(leg)
        else:
            account, side, amount = leg
            wire = {"account": account, "side": side, "amount": amount}
        wire["amount"] = amount_to_wire(wire.get("amount"), f"legs[{i}].amount")
        out.append(wire)
    return out


def _body(**fields: Any) -> Dict[str, Any]:
    """The fields given (``None`` means absent); ``from_`` is sent as ``from``."""
    return {k.rstrip("_"): v for k, v in fields.items() if v is not None}


def _amounts(body: Any) -> Any:
    return amounts_to_int(body)


def _batch_results(body: Mapping[str, Any]) -> List[Union[Receipt, TallyError]]:
    results = body.get("results")
    if not isinstance(results, list):
        raise ProtocolError("ENTRY.BATCH answer without results")
    out: List[Union[Receipt, TallyError]] = []
    for r in results:
        err = r.get("error") if isinstance(r, dict) else None
        if isinstance(err, dict):
            out.append(error_from_body(str(err.get("code", "")), err))
        else:
            out.append(Receipt.from_body(r))
    return out


class Verbs:
    """The protocol's verbs. Subclasses provide ``_call(verb, body, parse, request_id)``
    and ``id_prefix``."""

    id_prefix: str = ""

    def _call(
        self,
        verb: str,
        body: Optional[Dict[str, Any]],
        parse: Callable[[Any], Any],
        request_id: Optional[str] = None,
    ) -> Any:
        raise NotImplementedError

    def new_id(self) -> str:
        """A fresh idempotency id: ``id_prefix`` and 32 random hex digits."""
        value = self.id_prefix + uuid.uuid4().hex
        if len(value) > ID_BYTES_MAX:
            raise ValueError(f"id_prefix is too long: ids are at most {ID_BYTES_MAX} bytes")
        return value

    def request(self, verb: str, body: Optional[Dict[str, Any]] = None) -> Any:
        """Any verb with a ready body; the answer as parsed JSON with amounts as ``int``."""
        return self._call(verb, body, _amounts)

    # MARK: - Session

    def ping(self) -> Any:
        return self._call("PING", None, lambda b: b.get("pong") is True)

    # MARK: - Keys (admin)

    def key_create(
        self, role: str, partner: Optional[str] = None, grants: Optional[List[str]] = None
    ) -> Any:
        """``{"key","secret",…}``: the secret is shown only here. Not retried once sent."""
        return self._call("KEY.CREATE", _body(role=role, partner=partner, grants=grants), dict)

    def key_revoke(self, key: str) -> Any:
        return self._call("KEY.REVOKE", _body(key=key), dict)

    def key_list(self) -> Any:
        return self._call("KEY.LIST", None, lambda b: b["keys"])

    # MARK: - Partners

    def partner_create(
        self, id: str, name: str, metadata: Optional[Mapping[str, str]] = None
    ) -> Any:
        """An identical re-creation answers the original (``Created``)."""
        body = _body(id=id, name=name, metadata=metadata)
        return self._call("PARTNER.CREATE", body, lambda b: Created.from_body(b, "id"), id)

    def partner_get(self, id: str) -> Any:
        return self._call("PARTNER.GET", _body(id=id), _amounts)

    def partner_list(self, after: Optional[str] = None, limit: Optional[int] = None) -> Any:
        return self._call("PARTNER.LIST", _body(after=after, limit=limit), _amounts)

    def partner_view(
        self,
        id: Optional[str] = None,
        after: Optional[str] = None,
        limit: Optional[int] = None,
        as_of_seq: Optional[int] = None,
    ) -> Any:
        body = _body(id=id, after=after, limit=limit, as_of_seq=as_of_seq)
        return self._call("PARTNER.VIEW", body, _amounts)

    # MARK: - Accounts

    def account_open(
        self,
        account: str,
        currency: str,
        partner: Optional[str] = None,
        normal: Optional[str] = None,
        no_overdraft: Optional[bool] = None,
        limit: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Opens an account; an identical re-open answers the original (``Created``)."""
        body = _body(
            account=account,
            currency=currency,
            partner=partner,
            normal=normal,
            no_overdraft=no_overdraft,
            limit=None if limit is None else amount_to_wire(limit, "limit"),
            metadata=metadata,
        )
        parse = lambda b: Created.from_body(b, "account")  # noqa: E731
        return self._call("ACCOUNT.OPEN", body, parse, account)

    def account_get(self, account: str) -> Any:
        return self._call("ACCOUNT.GET", _body(account=account), _amounts)

    def account_close(self, account: str) -> Any:
        """Not retried once sent (PROTOCOL.md gives it no idempotency)."""
        parse = lambda b: Created.from_body(b, "account")  # noqa: E731
        return self._call("ACCOUNT.CLOSE", _body(account=account), parse)

    def account_list(
        self,
        partner: Optional[str] = None,
        after: Optional[str] = None,
        limit: Optional[int] = None,
    ) -> Any:
        body = _body(partner=partner, after=after, limit=limit)
        return self._call("ACCOUNT.LIST", body, _amounts)

    # MARK: - Entries

    def _entry(self, entry: Mapping[str, Any]) -> Dict[str, Any]:
        body = {k: v for k, v in entry.items() if v is not None}
        body["legs"] = _legs_to_wire(entry.get("legs") or [])
        body.setdefault("id", self.new_id())
        return body

    def post(
        self,
        legs: Iterable[Leg],
        id: Optional[str] = None,
        currency: Optional[str] = None,
        ref: Optional[str] = None,
        value_date: Optional[str] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Posts an entry (``Receipt``). Without ``id`` one is generated, so a retry after a
        dropped connection is still exactly-once."""
        body = self._entry(
            _body(id=id, legs=list(legs), currency=currency, ref=ref, value_date=value_date,
                  metadata=metadata)
        )
        return self._call("ENTRY.POST", body, Receipt.from_body, body["id"])

    def batch(self, entries: Iterable[Mapping[str, Any]]) -> Any:
        """Posts entries (dicts with ``post``'s fields) in one request: one result per entry,
        in order, a ``Receipt`` or the ``TallyError`` of its code. Entries without an id get
        one."""
        wire = [self._entry(e) for e in entries]
        ids = ",".join(e["id"] for e in wire[:3]) + ("…" if len(wire) > 3 else "")
        return self._call("ENTRY.BATCH", {"entries": wire}, _batch_results, ids)

    def entry_get(self, id: str) -> Any:
        return self._call("ENTRY.GET", _body(id=id), _amounts)

    def reverse(
        self, entry: str, id: Optional[str] = None, metadata: Optional[Mapping[str, str]] = None
    ) -> Any:
        """Reverses ``entry`` with a new entry ``id`` (generated when absent)."""
        body = _body(id=id or self.new_id(), entry=entry, metadata=metadata)
        return self._call("ENTRY.REVERSE", body, Receipt.from_body, body["id"])

    # MARK: - Holds

    def hold_place(
        self,
        legs: Iterable[Leg],
        id: Optional[str] = None,
        currency: Optional[str] = None,
        ref: Optional[str] = None,
        deadline: Optional[str] = None,
        ttl_ms: Optional[int] = None,
        metadata: Optional[Mapping[str, str]] = None,
    ) -> Any:
        """Places a hold (``Receipt``); ``deadline`` is RFC 3339 UTC, or give ``ttl_ms``."""
        body = self._entry(
            _body(id=id, legs=list(legs), currency=currency, ref=ref, deadline=deadline,
                  ttl_ms=ttl_ms, metadata=metadata)
        )
        return self._call("HOLD.PLACE", body, Receipt.from_body, body["id"])

    def hold_capture(
        self, id: str, amount: Optional[int] = None, amounts: Optional[Sequence[int]] = None
    ) -> Any:
        """Captures all of hold ``id``, ``amount`` of each leg, or ``amounts`` per leg."""
        body = _body(
            id=id,
            amount=None if amount is None else amount_to_wire(amount),
            amounts=None
            if amounts is None
            else [amount_to_wire(a, f"amounts[{i}]") for i, a in enumerate(amounts)],
        )
        return self._call("HOLD.CAPTURE", body, Receipt.from_body, id)

    def hold_release(self, id: str) -> Any:
        return self._call("HOLD.RELEASE", _body(id=id), Receipt.from_body, id)

    # MARK: - Balances and statements

    def balance(self, account: str, as_of_seq: Optional[int] = None) -> Any:
        body = _body(account=account, as_of_seq=as_of_seq)
        return self._call("BALANCE.GET", body, Balance.from_body)

    def statement(
        self,
        account: str,
        from_seq: Optional[int] = None,
        cursor: Optional[int] = None,
        to_seq: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Any:
        """``{"account": balances, "lines": […], "next"}``; pass ``next`` back as ``cursor``."""
        body = _body(account=account, from_seq=from_seq, cursor=cursor, to_seq=to_seq, limit=limit)
        return self._call("STATEMENT.GET", body, _amounts)

    # MARK: - Log, proofs, checkpoints

    def log_head(self) -> Any:
        return self._call("LOG.HEAD", None, Head.from_body)

    def log_read(self, from_seq: Optional[int] = None, limit: Optional[int] = None) -> Any:
        """``{"events":[{"seq","ts","type","bytes","leaf","chain"}…],"next"}``."""
        return self._call("LOG.READ", _body(from_seq=from_seq, limit=limit), dict)

    def proof_inclusion(self, seq: int, size: Optional[int] = None) -> Any:
        return self._call("PROOF.INCLUSION", _body(seq=seq, size=size), dict)

    def proof_consistency(self, from_size: int, to_size: int) -> Any:
        return self._call("PROOF.CONSISTENCY", _body(from_=from_size, to=to_size), dict)

    def checkpoint(self, size: Optional[int] = None) -> Any:
        """``{"size","root","chain","note"}`` (read the note with ``parse_checkpoint``)."""
        return self._call("CHECKPOINT.GET", _body(size=size), dict)

    def checkpoints(self, after: Optional[int] = None, limit: Optional[int] = None) -> Any:
        return self._call("CHECKPOINT.LIST", _body(after=after, limit=limit), dict)

    # MARK: - Operations

    def stats(self) -> Any:
        return self._call("STATS", None, dict)

    def replica_promote(self) -> Any:
        return self._call("REPLICA.PROMOTE", None, dict)

    # MARK: - Reconciliation

    def recon_import(
        self,
        format: str,
        statement: Optional[str] = None,
        statement_base64: Optional[str] = None,
        account: Optional[str] = None,
        map: Optional[Mapping[str, str]] = None,
        encoding: Optional[str] = None,
        tolerance_days: Optional[int] = None,
    ) -> Any:
        body = _body(
            account=account,
            format=format,
            statement=statement,
            statement_base64=statement_base64,
            map=map,
            encoding=encoding,
            tolerance_days=tolerance_days,
        )
        return self._call("RECON.IMPORT", body, _amounts)

    def recon_status(self, account: str) -> Any:
        return self._call("RECON.STATUS", _body(account=account), _amounts)

    def recon_items(
        self,
        account: str,
        state: Optional[str] = None,
        after: Optional[int] = None,
        limit: Optional[int] = None,
    ) -> Any:
        body = _body(account=account, state=state, after=after, limit=limit)
        return self._call("RECON.ITEMS", body, _amounts)

    def recon_resolve(self, item: int, reason: str, entry: Optional[str] = None) -> Any:
        return self._call("RECON.RESOLVE", _body(item=item, reason=reason, entry=entry), dict)

    def recon_unmatch(self, item: int, reason: Optional[str] = None) -> Any:
        return self._call("RECON.UNMATCH", _body(item=item, reason=reason), dict)
