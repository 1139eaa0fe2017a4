#!/usr/bin/env bash
# The back office's partner page (docs/BACKOFFICE.md): a tallyd (release) with a partner of
# 10,000 accounts, and the time to render the partner page's first page (50 accounts),
# measured with curl over many runs: p50, p99 and max. Target: ≤ 50 ms.
#
#   tools/bench-web.sh                     # builds tallyd (release) first
#   BIN=.build/release tools/bench-web.sh  # use an existing tallyd
#
# Env: BIN, ACCOUNTS [10000], RUNS [500], OUT [.build-bench/web-<UTC>]. Only 127.0.0.1 is
# used; tallyd is stopped however the script ends; every loop is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ACCOUNTS="${ACCOUNTS:-10000}"
RUNS="${RUNS:-500}"
OUT="${OUT:-.build-bench/web-$(date -u +%Y%m%dT%H%M%SZ)}"
if [ -z "${BIN:-}" ]; then
  swift build -c release --product tallyd >&2
  BIN=.build/release
fi
mkdir -p "$OUT"
DATA="$OUT/data"
"$BIN/tallyd" --data "$DATA" --initialize --listen 127.0.0.1:0 --port-file "$OUT/port" \
  --http 127.0.0.1:0 --http-port-file "$OUT/http-port" >"$OUT/stdout" 2>"$OUT/stderr" &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$OUT/http-port" ] && grep -q "tallyd listening" "$OUT/stdout" && break
  sleep 0.1
done
KEY=$(awk '$1=="key"{print $2}' "$OUT/stdout")
SECRET=$(awk '$1=="secret"{print $2}' "$OUT/stdout")
PORT=$(cat "$OUT/port")
HTTP=$(cat "$OUT/http-port")

# The partner and its accounts over the socket (AUTH is an HMAC of the server's nonce).
python3 - "$PORT" "$KEY" "$SECRET" "$ACCOUNTS" <<'PY'
import hashlib, hmac, json, socket, sys
port, key, secret, n = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.create_connection(("127.0.0.1", port), timeout=60)
f = s.makefile("rwb")
hello = json.loads(f.readline().decode().split(" ", 1)[1])
mac = hmac.new(secret.encode(), hello["nonce"].encode(), hashlib.sha256).hexdigest()
def req(line):
    f.write((line + "\n").encode()); f.flush()
def expect_ok(count):
    for _ in range(count):
        r = f.readline().decode()
        if not r.startswith("OK"):
            sys.exit("setup failed: " + r)
req("AUTH " + json.dumps({"key": key, "mac": mac})); expect_ok(1)
req('PARTNER.CREATE {"id":"big","name":"Big partner"}'); expect_ok(1)
batch = 100
for start in range(0, n, batch):
    k = min(batch, n - start)
    for i in range(start, start + k):
        req(json.dumps({"account": "big:%05d" % i, "partner": "big", "currency": "EUR"})
            .join(["ACCOUNT.OPEN ", ""]))
    expect_ok(k)
PY

JAR="$OUT/cookies"
curl -s -o /dev/null -c "$JAR" --data-urlencode "key=$KEY" --data-urlencode "secret=$SECRET" \
  "http://127.0.0.1:$HTTP/signin"
URL="http://127.0.0.1:$HTTP/partner?id=big"
# The page is the partner's, with its first page of accounts and a next page (not a sign-in
# page or an error that also answers fast).
page="$(curl -s -b "$JAR" "$URL")"
for want in 'big:00000' 'big:00049' 'id="next"'; do
  grep -qF "$want" <<<"$page" || { echo "bench-web: the page lacks $want" >&2; exit 1; }
done
# Warm up, then measure.
for _ in $(seq 1 20); do curl -s -o /dev/null -b "$JAR" "$URL"; done
: >"$OUT/times"
for _ in $(seq 1 "$RUNS"); do
  curl -s -o /dev/null -b "$JAR" -w '%{http_code} %{time_total}\n' "$URL" >>"$OUT/times"
done
if grep -qv '^200 ' "$OUT/times"; then
  echo "bench-web: a request did not answer 200:" >&2
  grep -v '^200 ' "$OUT/times" | head -3 >&2
  exit 1
fi
awk '{print $2 * 1000}' "$OUT/times" | sort -n | awk -v accounts="$ACCOUNTS" '
  { t[NR] = $1 }
  END {
    p50 = t[int(NR * 0.50) > 0 ? int(NR * 0.50) : 1]
    p99 = t[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
    printf "partner page (first 50 of %d accounts), %d runs: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
      accounts, NR, p50, p99, t[NR]
  }' | tee "$OUT/result"
