#!/usr/bin/env bash
# The write path as the ledger grows, with tallyd's snapshots as they come (release build).
# A fresh tallyd and 10,000 load accounts; then ROUNDS times: the single-entry maximum
# (closed loop, 64 connections, 10 s, ENTRY.POST) and a FILL-second batched fill (8
# connections × 4 in flight, 500 entries a request). Each round prints the maximum, the
# fill's rate, the data directory's size and the snapshots written so far; at the end,
# tallyd's snapshot log lines (size, total and copy milliseconds). A round's maximum that
# falls during a snapshot's copy shows what a copy costs the writer (BENCHMARKS.md §13.2).
#
#   tools/bench-growth.sh                                   # 7 rounds, default snapshots
#   tools/bench-growth.sh --snapshot-mib 1048576 \
#     --snapshot-min-interval 86400 --snapshot-max-interval 86400   # no snapshots
#
# Arguments go to tallyd. Env [defaults]: BIN [.build/release; built when missing],
# ROUNDS [7], FILL [20], WORK [a new directory under ${TMPDIR:-/tmp}, removed at the end].
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
ROUNDS=${ROUNDS:-7}
FILL=${FILL:-20}
for p in tallyd tally tally-load; do
  [[ -x $BIN/$p ]] || swift build -c release --product "$p" >&2
done
source tools/lib/stop.sh
WORK=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/tally-growth.XXXXXX")}
PORT=$((20000 + RANDOM % 20000))
"$BIN/tally" --data "$WORK/data" init >/dev/null
kj="$("$BIN/tally" --data "$WORK/data" key create --role admin --json)"
export TALLY_KEY="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$kj")"
export TALLY_SECRET="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$kj")"
"$BIN/tallyd" --data "$WORK/data" --listen "127.0.0.1:$PORT" "$@" >"$WORK/tallyd.log" 2>&1 &
PID=$!
trap 'stop_gracefully $PID 30 >/dev/null || true; rm -rf "$WORK"' EXIT
for _ in $(seq 1 100); do grep -q listening "$WORK/tallyd.log" && break; sleep 0.1; done
grep -q listening "$WORK/tallyd.log" || { cat "$WORK/tallyd.log" >&2; exit 2; }
load() { "$BIN/tally-load" --server "127.0.0.1:$PORT" --accounts 10000 --json "$@" 2>/dev/null; }
rate() { sed -nE 's/.*"entries_per_sec":([0-9]+).*/\1/p'; }
load --setup --duration 1 --warmup 0 --connections 8 --inflight 4 --entries-per-request 1000 \
  >/dev/null
for r in $(seq 1 "$ROUNDS"); do
  max=$(load --duration 10 --warmup 1 --connections 64 --inflight 1 | rate)
  echo "round $r: single-entry max $max entries/s (ended $(date +%T));" \
    "data dir $(du -sm "$WORK/data" | cut -f1) MiB;" \
    "snapshots $(grep -c 'snapshot written' "$WORK/tallyd.log" || true)"
  fill=$(load --duration "$FILL" --warmup 0 --connections 8 --inflight 4 \
    --entries-per-request 500 | rate)
  echo "  fill: $fill entries/s batched"
done
grep -E "snapshot (written|failed)" "$WORK/tallyd.log" || true
