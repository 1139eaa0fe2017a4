#!/usr/bin/env python3
"""Independent re-implementation of docs/FORMAT.md's event encoding and hash chain.

Prints the golden vectors (event bytes, leaf hash, chain hash) that docs/FORMAT.md lists and
Tests/TallyCoreTests/GoldenVectorTests.swift asserts. Written from the document alone, in
another language, so that a disagreement means the document or the Swift code is wrong.
"""
import datetime
import hashlib
import json
import struct
import sys

TYPES = {
    "partner_created": 1, "asset_declared": 2, "account_opened": 3, "account_closed": 4,
    "entry_posted": 5, "hold_placed": 6, "hold_captured": 7, "hold_released": 8,
    "hold_expired": 9, "recon_imported": 10, "recon_matched": 11, "recon_resolved": 12,
    "recon_unmatched": 13,
}
FORMATS = {"csv": 0, "camt053": 1, "mt940": 2, "camt054": 3}
ENCODINGS = {"utf-8": 0, "iso-8859-1": 1, "windows-1252": 2}
RULES = {"reference": 1, "amount_date": 2, "sum": 3}
STATES = {"matched": 1, "discrepancy": 2}


def s(text):
    b = text.encode("utf-8")
    assert len(b) <= 0xFFFF
    return struct.pack(">H", len(b)) + b


def opt_s(text):
    return b"\x00" if text is None else b"\x01" + s(text)


def i128(v):
    return (v & ((1 << 128) - 1)).to_bytes(16, "big")


def days(d):
    """i32 days since 1970-01-01 of an ISO date."""
    return (datetime.date.fromisoformat(d) - datetime.date(1970, 1, 1)).days


def opt_date(d):
    return b"\x00" if d is None else b"\x01" + struct.pack(">i", days(d))


def balance(b):
    """opt<balance>: i128 amount || i32 date, or absent."""
    return b"\x00" if b is None else b"\x01" + i128(b[0]) + struct.pack(">i", days(b[1]))


def statement_header(h):
    out = bytes([FORMATS[h["format"]]]) + opt_s(h.get("statement_id"))
    out += opt_s(h.get("statement_account")) + s(h["currency"])
    out += balance(h.get("opening")) + balance(h.get("closing"))
    out += struct.pack(">iiII", days(h["from"]), days(h["to"]), h["lines_read"],
                       h["duplicates"])
    # Version 2 of recon_imported: the text encoding after duplicates.
    if "text_encoding" in h:
        out += bytes([ENCODINGS[h["text_encoding"]]])
    return out


def statement_line(l):
    out = s(l["identity"]) + s(l["source"]) + i128(l["amount"])
    out += bytes([0 if l["direction"] == "debit" else 1]) + struct.pack(">i", days(l["booking"]))
    out += opt_date(l.get("value_date"))
    for field in ("bank_ref", "end_to_end_id", "reference", "remittance"):
        out += opt_s(l.get(field))
    return out


def match(m):
    out = bytes([RULES[m["rule"]], STATES[m["state"]]])
    out += struct.pack(">H", len(m["items"])) + b"".join(struct.pack(">Q", i) for i in m["items"])
    out += struct.pack(">H", len(m["entries"])) + b"".join(s(e) for e in m["entries"])
    flags = (1 if m.get("currency_differs") else 0) | (2 if m.get("direction_differs") else 0)
    return out + i128(m.get("difference", 0)) + bytes([flags])


def metadata(pairs):
    keys = sorted(pairs, key=lambda k: k.encode("utf-8"))
    out = struct.pack(">H", len(keys))
    for k in keys:
        out += s(k) + s(pairs[k])
    return out


def legs(ls):
    out = struct.pack(">H", len(ls))
    for account, side, amount in ls:
        out += s(account) + bytes([0 if side == "debit" else 1]) + i128(amount)
    return out


def encode(ev):
    # Version 2 only for a recon_imported whose header records its text encoding.
    v2 = ev["type"] == "recon_imported" and "text_encoding" in ev["header"]
    out = bytes([2 if v2 else 1, TYPES[ev["type"]]]) + struct.pack(">Qq", ev["seq"], ev["ts"])
    t = ev["type"]
    if t == "partner_created":
        out += s(ev["id"]) + s(ev["name"]) + metadata(ev.get("metadata", {}))
    elif t == "asset_declared":
        out += s(ev["code"]) + bytes([ev["scale"]]) + s(ev["name"])
    elif t == "account_opened":
        flags = (1 if ev.get("no_overdraft") else 0) | (2 if "limit" in ev else 0)
        out += s(ev["name"]) + s(ev["partner"]) + s(ev["currency"])
        out += bytes([0 if ev["normal"] == "debit" else 1, flags])
        if "limit" in ev:
            out += i128(ev["limit"])
        out += metadata(ev.get("metadata", {}))
    elif t == "account_closed":
        out += s(ev["name"])
    elif t == "entry_posted":
        out += s(ev["id"]) + legs(ev["legs"]) + opt_s(ev.get("ref"))
        out += opt_date(ev.get("value_date")) + opt_s(ev.get("reversal_of"))
        out += metadata(ev.get("metadata", {}))
    elif t == "hold_placed":
        out += s(ev["id"]) + legs(ev["legs"]) + opt_s(ev.get("ref"))
        d = ev.get("deadline")
        out += b"\x00" if d is None else b"\x01" + struct.pack(">q", d)
        out += metadata(ev.get("metadata", {}))
    elif t == "hold_captured":
        out += s(ev["hold"]) + struct.pack(">H", len(ev["amounts"]))
        out += b"".join(i128(a) for a in ev["amounts"])
    elif t in ("hold_released", "hold_expired"):
        out += s(ev["hold"])
    elif t == "recon_imported":
        out += s(ev["account"]) + statement_header(ev["header"])
        out += struct.pack(">IIH", ev["part"], ev["parts"], len(ev["lines"]))
        for l in ev["lines"]:
            out += statement_line(l)
            if v2:  # opt<str> currency: absent when the statement's own
                out += opt_s(l.get("currency"))
    elif t == "recon_matched":
        out += s(ev["account"]) + struct.pack(">H", len(ev["matches"]))
        out += b"".join(match(m) for m in ev["matches"])
    elif t == "recon_resolved":
        out += struct.pack(">Q", ev["item"]) + s(ev["reason"]) + s(ev["by"])
        out += opt_s(ev.get("entry"))
    elif t == "recon_unmatched":
        out += struct.pack(">Q", ev["item"]) + opt_s(ev.get("reason")) + s(ev["by"])
    return out


T0 = 1764028800000000000  # 2025-11-25T00:00:00Z
EVENTS = [
    {"type": "partner_created", "seq": 1, "ts": T0, "id": "platform", "name": "Platform"},
    {"type": "account_opened", "seq": 2, "ts": T0 + 1, "name": "cash", "partner": "platform",
     "currency": "EUR", "normal": "debit"},
    {"type": "account_opened", "seq": 3, "ts": T0 + 2, "name": "alice", "partner": "platform",
     "currency": "EUR", "normal": "credit", "no_overdraft": True, "limit": 100000,
     "metadata": {"kyc": "full"}},
    {"type": "entry_posted", "seq": 4, "ts": T0 + 1000, "id": "e-1",
     "legs": [("cash", "debit", 1050), ("alice", "credit", 1050)], "ref": "INV-7",
     "value_date": "2025-11-25", "metadata": {"country": "DE", "channel": "card"}},
    {"type": "hold_placed", "seq": 5, "ts": T0 + 2000, "id": "h-1",
     "legs": [("alice", "debit", 500), ("cash", "credit", 500)],
     "deadline": T0 + 86400 * 10**9},
    {"type": "hold_captured", "seq": 6, "ts": T0 + 3000, "hold": "h-1", "amounts": [200, 200]},
    {"type": "entry_posted", "seq": 7, "ts": T0 + 4000, "id": "e-1.reversal",
     "legs": [("cash", "credit", 1050), ("alice", "debit", 1050)], "ref": "INV-7",
     "value_date": "2025-11-25", "reversal_of": "e-1"},
    {"type": "asset_declared", "seq": 8, "ts": T0 + 5000, "code": "USDC", "scale": 6,
     "name": "USD Coin"},
    {"type": "account_closed", "seq": 9, "ts": T0 + 6000, "name": "dormant"},
    {"type": "hold_released", "seq": 10, "ts": T0 + 7000, "hold": "h-2"},
    {"type": "hold_expired", "seq": 11, "ts": T0 + 8000, "hold": "h-3"},
    # A camt.053 statement for cash: 3 lines read, 1 already imported; items 1 and 2.
    {"type": "recon_imported", "seq": 12, "ts": T0 + 9000, "account": "cash",
     "header": {"format": "camt053", "statement_id": "STMT-2025-11-25", "currency": "EUR",
                "opening": (-2500, "2025-11-24"), "closing": (-550, "2025-11-25"),
                "from": "2025-11-24", "to": "2025-11-25", "lines_read": 3, "duplicates": 1},
     "part": 0, "parts": 1,
     "lines": [
         {"identity": "|BR-1|E2E-INV-7|2025-11-25|2025-11-25|credit|1050|EUR|1",
          "source": "Stmt/Ntry[1]", "amount": 1050, "direction": "credit",
          "booking": "2025-11-25", "value_date": "2025-11-25", "bank_ref": "BR-1",
          "end_to_end_id": "E2E-INV-7", "reference": "INV-7", "remittance": "Invoice INV-7"},
         {"identity": "|||2025-11-25||credit|900|EUR|1", "source": "Stmt/Ntry[3]",
          "amount": 900, "direction": "credit", "booking": "2025-11-25"},
     ]},
    # Matches 1 and 2: item 1 with e-1; item 2 (900 in) against e-1.reversal (1050 out).
    {"type": "recon_matched", "seq": 13, "ts": T0 + 10000, "account": "cash",
     "matches": [
         {"rule": "reference", "state": "matched", "items": [1], "entries": ["e-1"]},
         {"rule": "reference", "state": "discrepancy", "items": [2], "entries": ["e-1.reversal"],
          "difference": -150, "direction_differs": True},
     ]},
    {"type": "recon_resolved", "seq": 14, "ts": T0 + 11000, "item": 2,
     "reason": "bank fee withheld", "by": "ops", "entry": "e-fee-1"},
    {"type": "recon_unmatched", "seq": 15, "ts": T0 + 12000, "item": 1,
     "reason": "wrong entry", "by": "ops"},
    # Version 2: a camt.054 notification for cash read as windows-1252, no balances; one line
    # in EUR (items 3), one booked in USD (item 4).
    {"type": "recon_imported", "seq": 16, "ts": T0 + 13000, "account": "cash",
     "header": {"format": "camt054", "statement_id": "NTFCTN-7", "currency": "EUR",
                "from": "2025-11-26", "to": "2025-11-26", "lines_read": 2, "duplicates": 0,
                "text_encoding": "windows-1252"},
     "part": 0, "parts": 1,
     "lines": [
         {"identity": "|BR-9||2025-11-26||credit|700|EUR|1", "source": "Ntfctn/Ntry[1]",
          "amount": 700, "direction": "credit", "booking": "2025-11-26", "bank_ref": "BR-9",
          "remittance": "Caf\u00e9 M\u00fcller"},
         {"identity": "|BR-10||2025-11-26||debit|1200|USD|1", "source": "Ntfctn/Ntry[2]",
          "amount": 1200, "direction": "debit", "booking": "2025-11-26", "bank_ref": "BR-10",
          "currency": "USD"},
     ]},
]


def main():
    chain = bytes(32)
    out = []
    for ev in EVENTS:
        b = encode(ev)
        leaf = hashlib.sha256(b"\x00" + b).digest()
        chain = hashlib.sha256(chain + leaf).digest()
        out.append({"seq": ev["seq"], "type": ev["type"], "bytes": b.hex(),
                    "leaf": leaf.hex(), "chain": chain.hex()})
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
