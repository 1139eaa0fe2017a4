#!/usr/bin/env bash
# Posting latency during a large statement import, in one run on one machine
# (BENCHMARKS.md §7c).
#   tools/bench-recon-stall.sh
# 1. Builds tallyd, tally, tally-load and tally-bench in release. tally-bench makes a ledger
#    with ENTRIES (default 1,000,000) entries on account `bank` and a CSV statement of LINES
#    (default 100,000) lines for it (half name an entry's ref, half only its amount and date).
# 2. Starts tallyd on it; tally-load opens 10,000 load accounts, then posts on 64 connections
#    (closed loop, one entry per request) for DUR seconds (default 10) alone: p99 "without".
# 3. tally-load again (DURING seconds, default 6), and 0.5 s after it starts, `tally recon
#    import --server` of the statement: p99 "during", the import's wall time and lines/s,
#    and how much of the measured window the import covered.
# 4. Stops tallyd, `tally verify`, then tally-bench's offline import + match of the same shape
#    (a fresh ledger): lines/s and phases.
# TALLY_SCRATCH_PATH sets swift build's --scratch-path; PORT (default 17979); KEEP_DATA=1 keeps
# the ledgers. Results go to .build-bench/recon-stall-<timestamp>/ (summary.txt).
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib/stop.sh
ENTRIES="${ENTRIES:-1000000}"
LINES="${LINES:-100000}"
DUR="${DUR:-10}"
DURING="${DURING:-6}"
PORT="${PORT:-17979}"

build=(swift build -c release ${TALLY_SCRATCH_PATH:+--scratch-path "$TALLY_SCRATCH_PATH"})
for product in tallyd tally tally-load tally-bench; do
  "${build[@]}" --product "$product" >/dev/null
done
bin="$("${build[@]}" --show-bin-path)"

out=".build-bench/recon-stall-$(date -u +%Y%m%dT%H%M%SZ)"
data="$out/data"
mkdir -p "$out"
tallyd_pid=""
stop_tallyd() {
  [ -n "$tallyd_pid" ] || return 0
  stop_gracefully "$tallyd_pid" 20 || true
  if [ "$stop_killed" = 1 ]; then
    echo "tallyd did not stop within 20 s of SIGTERM; killed it" | tee -a "$out/summary.txt" >&2
  fi
  tallyd_pid=""
}
trap stop_tallyd EXIT
trap 'exit 130' INT TERM
summary() { echo "$*" | tee -a "$out/summary.txt"; }
now() { date +%s%N; }

summary "== $(date -u +%FT%TZ), $(nproc) cores, $(git rev-parse --short HEAD)"
# ---------- 1. ledger and statement ----------
timeout 900 "$bin/tally-bench" --dir "$data" --recon-lines "$LINES" --recon-entries "$ENTRIES" \
  --recon-statement-out "$out/statement.csv" | tee -a "$out/summary.txt"
keyjson="$(timeout 120 "$bin/tally" --data "$data" key create --role admin --json)"
key="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$keyjson")"
secret="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$keyjson")"
[ -n "$key" ] && [ -n "$secret" ] || { echo "no key in: $keyjson" >&2; exit 2; }

# ---------- 2. tallyd, posting alone ----------
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; set PORT" >&2
  exit 2
fi
"$bin/tallyd" --data "$data" --listen "127.0.0.1:$PORT" --max-line-bytes $((64 << 20)) \
  >"$out/tallyd.log" 2>&1 &
tallyd_pid=$!
for _ in $(seq 1 300); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$tallyd_pid" 2>/dev/null || { cat "$out/tallyd.log" >&2; exit 2; }
  sleep 0.1
done
export TALLY_KEY="$key" TALLY_SECRET="$secret"
load=("$bin/tally-load" --server "127.0.0.1:$PORT" --accounts 10000 --connections 64
  --inflight 1 --entries-per-request 1 --json)
field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$2"; }
timeout 600 "${load[@]}" --setup --duration 2 >/dev/null
alone="$(timeout $((DUR + 300)) "${load[@]}" --duration "$DUR")"
echo "$alone" >"$out/load-alone.json"
summary "posting alone: 64 connections, ${DUR}s: $(field entries_per_sec "$alone") entries/s," \
  "p50 $(field p50 "$alone") us, p99 $(field p99 "$alone") us, max $(field max "$alone") us"

# ---------- 3. posting during the import ----------
timeout $((DURING + 300)) "${load[@]}" --duration "$DURING" >"$out/load-during.json" &
load_pid=$!
sleep 0.5
t0="$(now)"
timeout 600 "$bin/tally" --server "127.0.0.1:$PORT" recon import --account bank --format csv \
  --json "$out/statement.csv" >"$out/import.json"
t1="$(now)"
wait "$load_pid"
during="$(cat "$out/load-during.json")"
import_ms=$(((t1 - t0) / 1000000))
summary "import through tallyd: $LINES lines against $ENTRIES entries in ${import_ms} ms" \
  "= $((LINES * 1000 / (import_ms > 0 ? import_ms : 1))) lines/s (client send to answer);" \
  "new $(field new "$(cat "$out/import.json")"), seqs $(field first_seq "$(cat "$out/import.json")")" \
  "…$(field last_seq "$(cat "$out/import.json")"); it covered" \
  "$((import_ms / 10 / DURING))% of the ${DURING}s window below"
summary "posting during the import: 64 connections, ${DURING}s:" \
  "$(field entries_per_sec "$during") entries/s, p50 $(field p50 "$during") us," \
  "p99 $(field p99 "$during") us, max $(field max "$during") us"
p99a="$(field p99 "$alone")"
p99d="$(field p99 "$during")"
summary "p99 during / p99 alone = $(awk -v a="$p99a" -v d="$p99d" 'BEGIN{printf "%.2f", d/a}')" \
  "(target <= 2)"
stop_tallyd
if timeout 900 "$bin/tally" --data "$data" verify >"$out/verify.txt" 2>&1; then
  summary "tally verify: ok"
else
  summary "!!! tally verify FAILED (see $out/verify.txt)"
fi
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"

# ---------- 4. offline import + match ----------
rm -rf "$out/bench"
timeout 900 "$bin/tally-bench" --dir "$out/bench" --recon-lines "$LINES" \
  --recon-entries "$ENTRIES" | tee -a "$out/summary.txt"
[ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$out/bench"
echo "results in $out"
