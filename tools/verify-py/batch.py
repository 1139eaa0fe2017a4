"""Runs many verify.py commands in one process (for test campaigns with hundreds of cases).

Reads JSON lines from stdin, each an argument list for verify.py (e.g. ["export", DIR,
"--vkey", KEY, "--json"]), and writes one JSON line per case to stdout:
{"status": exit status, "stdout": what verify.py printed}. The verification is verify.py's
own `main`; only the process start-up is shared.
"""

import contextlib
import io
import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import verify  # noqa: E402


def run(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = verify.main(argv)
        except SystemExit as e:  # argparse refusing the arguments
            status = e.code if isinstance(e.code, int) else 2
    return {"status": status, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main():
    for line in sys.stdin:
        if line.strip():
            print(json.dumps(run(json.loads(line))), flush=True)


if __name__ == "__main__":
    main()
