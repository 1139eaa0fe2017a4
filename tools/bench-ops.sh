#!/usr/bin/env bash
# What the HTTP listener and its metrics cost the write path, in one run on one machine:
#   tools/bench-ops.sh
# Builds tallyd, tally and tally-load in release, makes a fresh ledger, then alternates
# ROUNDS times (default 3) between tallyd without --http ("off") and tallyd with --http and
# a scraper fetching /metrics every second ("on"), each on the same data directory, with the
# same two tally-load scenarios: batched (8 connections x 4 in flight x 1000-entry batches)
# and single entries (64 connections x 1). Alternating spreads the machine's drift over both.
# Prints each round and the on/off ratio of the medians. DUR (seconds per scenario, default
# 10), PORT, HTTP_PORT, ROUNDS and TALLY_SCRATCH_PATH may be set; KEEP_DATA=1 keeps the data.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib/stop.sh
DUR="${DUR:-10}"
PORT="${PORT:-17890}"
HTTP_PORT="${HTTP_PORT:-17891}"
ROUNDS="${ROUNDS:-3}"

build=(swift build -c release ${TALLY_SCRATCH_PATH:+--scratch-path "$TALLY_SCRATCH_PATH"})
tools/setup
for product in tallyd tally tally-load; do "${build[@]}" --product "$product" >/dev/null; done
bin="$("${build[@]}" --show-bin-path)"

out=".build-bench/ops-$(date -u +%Y%m%dT%H%M%SZ)"
data="$out/data"
mkdir -p "$out"
tallyd_pid=""
scraper_pid=""
cleanup() {
  [ -z "$scraper_pid" ] || { kill "$scraper_pid" 2>/dev/null || true; wait "$scraper_pid" 2>/dev/null || true; }
  [ -z "$tallyd_pid" ] || stop_gracefully "$tallyd_pid" 10 || true
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

timeout 60 "$bin/tally" --data "$data" init >/dev/null
keyjson="$(timeout 60 "$bin/tally" --data "$data" key create --role admin --json)"
export TALLY_KEY="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$keyjson")"
export TALLY_SECRET="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$keyjson")"

start() {  # extra tallyd flags
  "$bin/tallyd" --data "$data" --listen "127.0.0.1:$PORT" "$@" >>"$out/tallyd.log" 2>&1 &
  tallyd_pid=$!
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    kill -0 "$tallyd_pid" 2>/dev/null || { tail -20 "$out/tallyd.log" >&2; exit 2; }
    sleep 0.1
  done
  echo "tallyd not listening" >&2
  exit 2
}
stop() {
  if [ -n "$scraper_pid" ]; then
    kill "$scraper_pid" 2>/dev/null || true
    wait "$scraper_pid" 2>/dev/null || true
    scraper_pid=""
  fi
  stop_gracefully "$tallyd_pid" 10 || true
  tallyd_pid=""
}
load=("$bin/tally-load" --server "127.0.0.1:$PORT" --accounts 10000 --duration "$DUR" --json)
rate() { sed -nE 's/.*"entries_per_sec":([0-9]+).*/\1/p'; }

# The accounts, once, outside every measured window.
start
timeout 600 "${load[@]}" --setup --duration 1 --connections 4 --inflight 1 >/dev/null
stop

printf 'round\tmode\tbatched_entries_per_s\tsingle_c64_entries_per_s\tscrapes\n' | tee "$out/rounds.tsv"
for r in $(seq 1 "$ROUNDS"); do
  for mode in off on; do
    scrapes=0
    if [ "$mode" = on ]; then
      start --http "127.0.0.1:$HTTP_PORT"
      # Bounded: one scrape a second for at most the rounds' length.
      ( for _ in $(seq 1 $((4 * DUR + 60))); do
          curl -fsS "http://127.0.0.1:$HTTP_PORT/metrics" >/dev/null 2>&1 && echo x >>"$out/scrapes.$r"
          sleep 1
        done ) &
      scraper_pid=$!
    else
      start
    fi
    b="$(timeout $((DUR + 300)) "${load[@]}" --connections 8 --inflight 4 --entries-per-request 1000 | rate)"
    s="$(timeout $((DUR + 300)) "${load[@]}" --connections 64 --inflight 1 --entries-per-request 1 | rate)"
    [ "$mode" = on ] && scrapes="$(wc -l <"$out/scrapes.$r" 2>/dev/null || echo 0)"
    stop
    printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$mode" "$b" "$s" "$scrapes" | tee -a "$out/rounds.tsv"
  done
done

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
summary() {  # column
  local off on
  off="$(awk -F'\t' -v c="$1" '$2=="off"{print $c}' "$out/rounds.tsv" | median)"
  on="$(awk -F'\t' -v c="$1" '$2=="on"{print $c}' "$out/rounds.tsv" | median)"
  echo "$2: off $off/s, on $on/s, on/off $(awk -v a="$on" -v b="$off" 'BEGIN{printf "%.3f", a/b}')"
}
{
  echo "== medians over $ROUNDS rounds, ${DUR}s per scenario"
  summary 3 "batched (8 x 4 x 1000)"
  summary 4 "single entries (64 x 1)"
} | tee "$out/summary.txt"
timeout 600 "$bin/tally" --data "$data" verify >"$out/verify.txt" 2>&1 && echo "tally verify: ok" \
  || echo "!!! tally verify FAILED (see $out/verify.txt)"
