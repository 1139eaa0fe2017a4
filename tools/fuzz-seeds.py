#!/usr/bin/env python3
"""Seed inputs for one fuzz target, taken from the tests' fixtures (tools/fuzz --seed).

usage: fuzz-seeds.py TARGET OUT_DIR
Statement fixtures, request lines and JSON bodies written in the tests, the golden event
vectors of docs/FORMAT.md and the C2SP signed-note vectors. Seeds that need real keys or
hashes (journals, signed checkpoints, AUTH MACs) come from the driver's --seed instead.
"""
import hashlib
import json
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
TESTS = ROOT / "Tests"


def literals(path):
    """The string literals of a Swift file: raw #"…"# and plain "…" (one line each)."""
    text = path.read_text(encoding="utf-8")
    out = [m.group(1) for m in re.finditer(r'#"(.*?)"#', text)]
    for m in re.finditer(r'(?<![#\\])"((?:[^"\\\n]|\\.)*)"', text):
        s = m.group(1)
        s = s.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")
        out.append(s)
    return out


def interpolated(s):
    """A literal with Swift interpolation is a template, not an input."""
    return "\\(" in s or "\\#(" in s


VERB = re.compile(r"^[A-Z][A-Z.]{1,31}( \{.*\}| .*)?$", re.S)


def request_lines():
    files = [
        TESTS / "TallyServerTests/RequestParserTests.swift",
        TESTS / "TallydTests/MalformedInputTests.swift",
        TESTS / "TallydTests/VerbTests.swift",
    ]
    lines = []
    for f in files:
        if f.exists():
            lines += [s for s in literals(f) if VERB.match(s) and not interpolated(s)]
    return sorted(set(lines))


def json_docs():
    docs = [line.split(" ", 1)[1] for line in request_lines() if " {" in line]
    f = TESTS / "TallyProtocolTests/JSONTests.swift"
    docs += [s for s in literals(f) if s[:1] in '{["' or s[:1].isdigit()]
    return sorted(set(d for d in docs if not interpolated(d)))


def golden_events():
    text = (TESTS / "TallyCoreTests/GoldenVectorTests.swift").read_text()
    hexes = re.findall(r'"([0-9a-f]{20,})"', text)
    # Leaf and chain hashes are 64 digits; event bytes are longer or shorter.
    return [bytes.fromhex(h) for h in hexes if len(h) != 64 and len(h) % 2 == 0]


def notes():
    v = json.loads((TESTS / "TallyCoreTests/Vectors/note.json").read_text())
    return [n["note"].encode() for n in v["notes"]] + [(v["vkey"] + "\n").encode(),
                                                        (v["skey"] + "\n").encode()]


def fixtures(*suffixes):
    d = TESTS / "TallyReconcileTests/Fixtures"
    return [p.read_bytes() for p in sorted(d.iterdir()) if p.name.endswith(suffixes)]


def seeds(target):
    if target == "request":
        lines = [l.encode() for l in request_lines()]
        # Prefix: the line limit (0xFF: 65,024 bytes; 0x20: 33) and the chunk size.
        out = [b"\xff\x10" + l + b"\n" for l in lines]
        out.append(b"\x20\x03" + b"\r\n".join(lines[:8]) + b"\n")
        out.append(b"\x05\x01PING\nPING\r\nLOG.HEAD\nPI")
        return out
    if target == "json":
        return [d.encode() for d in json_docs()]
    if target == "auth":
        return [("\n".join(request_lines()[i:i + 6]) + "\n").encode() for i in range(0, 60, 6)]
    if target == "event":
        return golden_events()
    if target in ("note", "checkpoint"):
        return notes()
    if target == "csv":
        return fixtures(".csv")
    if target == "camt053":
        return fixtures(".xml")
    if target == "mt940":
        return fixtures(".mt940")
    return []


def main():
    target, out = sys.argv[1], pathlib.Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    for s in seeds(target):
        (out / ("seed-" + hashlib.sha1(s).hexdigest()[:16])).write_bytes(s)


main()
