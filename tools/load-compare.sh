#!/usr/bin/env bash
# Tally over the network (tallyd + tally-load) side by side with a PostgreSQL ledger peer, in
# one run on one machine.
#   tools/load-compare.sh PATH/TO/peer/run.sh
# 1. Builds tallyd, tally and tally-load in release; initialises a fresh ledger under
#    .build-bench/load-<timestamp>/data, creates an admin key offline and starts tallyd on
#    127.0.0.1:$PORT (default 17878).
# 2. Runs tally-load: 64 connections x 1 entry per request (closed loop), 1 connection,
#    8 connections x 4 in flight x 1000-entry batches, 32 connections with half of the
#    entries on one hot account, and an open loop at 10,000 entries/s for its p99. Records
#    tallyd's peak RSS (VmHWM), stops it with SIGTERM and verifies the ledger.
# 3. Runs the peer's script (it prints its own table; it needs root for its private
#    cluster) and prints both tables and a side-by-side into the results directory.
# DUR (seconds per tally-load scenario, default 10) and PORT may be set in the environment;
# TALLY_SCRATCH_PATH sets swift build's --scratch-path; KEEP_DATA=1 keeps the ledger. Every
# step has a time limit, and tallyd (and the peer, if running) are stopped however the
# script ends. The summary printed at the end is also in summary.txt in the results.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib/stop.sh
peer="${1:?usage: tools/load-compare.sh PATH/TO/peer/run.sh}"
peer="$(cd "$(dirname "$peer")" && pwd)/$(basename "$peer")"
[ -f "$peer" ] || { echo "no peer script at $peer" >&2; exit 2; }
DUR="${DUR:-10}"
PORT="${PORT:-17878}"

build=(swift build -c release ${TALLY_SCRATCH_PATH:+--scratch-path "$TALLY_SCRATCH_PATH"})
tools/setup
for product in tallyd tally tally-load; do
  "${build[@]}" --product "$product" >/dev/null
done
bin="$("${build[@]}" --show-bin-path)"

out=".build-bench/load-$(date -u +%Y%m%dT%H%M%SZ)"
data="$out/data"
mkdir -p "$out"
tallyd_pid=""
peer_pid=""

stop_tallyd() {
  [ -n "$tallyd_pid" ] || return 0
  stop_gracefully "$tallyd_pid" 10 && tallyd_rc=0 || tallyd_rc=$?
  if [ "$stop_killed" = 1 ]; then
    echo "tallyd did not stop within 10 s of SIGTERM; killed it" | tee -a "$out/notes.txt"
  fi
  tallyd_pid=""
}
cleanup() {
  stop_tallyd
  if [ -n "$peer_pid" ]; then
    kill -TERM "$peer_pid" 2>/dev/null || true
    wait "$peer_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Busy share of all CPU time between two /proc/stat samples, in percent.
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }

# ---------- 1. tallyd on a fresh ledger ----------
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  echo "port $PORT is already in use; set PORT" >&2
  exit 2
fi
timeout 60 "$bin/tally" --data "$data" init >/dev/null
keyjson="$(timeout 60 "$bin/tally" --data "$data" key create --role admin --json)"
key="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$keyjson")"
secret="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$keyjson")"
[ -n "$key" ] && [ -n "$secret" ] || { echo "no key in: $keyjson" >&2; exit 2; }

"$bin/tallyd" --data "$data" --listen "127.0.0.1:$PORT" >"$out/tallyd.log" 2>&1 &
tallyd_pid=$!
for _ in $(seq 1 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
  kill -0 "$tallyd_pid" 2>/dev/null || { cat "$out/tallyd.log" >&2; exit 2; }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null || { echo "tallyd not listening" >&2; exit 2; }

# ---------- 2. scenarios ----------
export TALLY_KEY="$key" TALLY_SECRET="$secret"
load=("$bin/tally-load" --server "127.0.0.1:$PORT" --accounts 10000 --duration "$DUR" --json)
header='scenario\tconnections\tinflight\tentries/req\tmode\tentries/s\trequests/s'
printf "$header"'\tp50_us\tp99_us\tp999_us\tmax_us\tcpu_busy%%\terrors\n' >"$out/tally.tsv"
scenario() {  # name, then tally-load options
  local name=$1 line b0 t0 b1 t1
  shift
  read -r b0 t0 < <(cpu)
  # A failed scenario is reported and skipped; the others still run.
  if ! line="$(timeout $((DUR + 700)) "${load[@]}" "$@")"; then
    echo "!!! scenario $name failed" | tee -a "$out/notes.txt"
    return 0
  fi
  read -r b1 t1 < <(cpu)
  echo "$line" >>"$out/tally.jsonl"
  field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$line"; }
  local mode errors
  mode="$(sed -nE 's/.*"mode":"([a-z]+)".*/\1/p' <<<"$line")"
  errors="$(sed -nE 's/.*"errors":\{([^}]*)\}.*/\1/p' <<<"$line" | tr -d '"')"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" \
    "$(field connections)" "$(field inflight)" "$(field entries_per_request)" "$mode" \
    "$(field entries_per_sec)" "$(field requests_per_sec)" "$(field p50)" "$(field p99)" \
    "$(field p999)" "$(field max)" "$((100 * (b1 - b0) / (t1 - t0)))" "${errors:-none}" \
    | tee -a "$out/tally.tsv"
}
echo "== tally: tallyd on 127.0.0.1:$PORT, data $data, ${DUR}s per scenario"
# The first run opens the 10,000 accounts (outside its measured window).
scenario single_c64 --setup --connections 64 --inflight 1 --entries-per-request 1
scenario single_c1 --connections 1 --inflight 1 --entries-per-request 1
scenario batch1000 --connections 8 --inflight 4 --entries-per-request 1000
scenario hot50_c32 --connections 32 --inflight 1 --hot-fraction 50
scenario open10k --connections 64 --inflight 1 --rate 10000

hwm_kb="$(awk '/^VmHWM:/{print $2}' "/proc/$tallyd_pid/status" 2>/dev/null || echo 0)"
echo "tallyd peak RSS (VmHWM): $((hwm_kb / 1024)) MiB" | tee "$out/tallyd-rss.txt"
stop_tallyd
echo "tallyd exit status after SIGTERM: $tallyd_rc" | tee -a "$out/tallyd-rss.txt"
if timeout 600 "$bin/tally" --data "$data" verify >"$out/verify.txt" 2>&1; then
  echo "tally verify: ok"
  # The ledger is hundreds of MB after the runs; KEEP_DATA=1 keeps it for inspection.
  [ "${KEEP_DATA:-0}" = 1 ] || rm -rf "$data"
else
  echo "!!! tally verify FAILED (see $out/verify.txt; the ledger is kept in $data)"
fi

# ---------- 3. the peer ----------
echo "== peer: $peer"
peer_dir="${TMPDIR:-/tmp}/tally-load-peer"
PEER_DIR="$peer_dir" timeout 1800 bash "$peer" >"$out/peer.txt" 2>&1 &
peer_pid=$!
wait "$peer_pid" && peer_rc=0 || peer_rc=$?
peer_pid=""
cat "$out/peer.txt"
[ "$peer_rc" -eq 0 ] || echo "!!! peer script exited with $peer_rc"
cp "$peer_dir/out/results.tsv" "$out/peer.tsv" 2>/dev/null || : >"$out/peer.tsv"

# ---------- 4. side by side ----------
# Rows pair shapes of work: Tally always hash-chains and commits durably, so its rows are
# set against the peer's durable (synchronous_commit=on) runs, chained where the peer has
# them. pgbench p99 is per transaction (a batch of 100 for batch rows), tally-load's per
# request (a batch of 1000 for its batch row).
{
  printf '| work | Tally (tallyd over TCP) | entries/s | p99 ms '
  printf '| peer (pgbench) | transfers/s | p99 ms |\n'
  echo "|---|---|---:|---:|---|---:|---:|"
  awk -F'\t' '
    function ms(us) {
      return us == "" ? "" : sprintf("%d.%02d", int(us / 1000), int((us % 1000) / 10))
    }
    FNR == NR { if (FNR > 1) { rate[$1] = $6; p99[$1] = $9 }; next }
    FNR > 1 { prate[$1 "/" $2 "/" $3] = $5; pp99[$1 "/" $2 "/" $3] = $7 }
    function row(work, t, tl, p, pl) {
      printf "| %s | %s | %s | %s | %s | %s | %s |\n", work, tl, rate[t], ms(p99[t]), pl,
        (p in prate ? prate[p] : "n/a"), (p in pp99 ? pp99[p] : "n/a")
    }
    END {
      row("single transfers, 1 client", "single_c1", "1 connection",
        "hashchain/1/on", "hashchain, 1 client")
      row("single transfers, 1 client (no chain in peer)", "single_c1", "1 connection",
        "single_on/1/on", "single, 1 client")
      row("single transfers, many clients", "single_c64", "64 connections",
        "hashchain/32/on", "hashchain, 32 clients")
      row("single transfers, many clients (no chain in peer)", "single_c64", "64 connections",
        "single_on/32/on", "single, 32 clients")
      row("batched transfers", "batch1000", "8 conn x 4 in flight x 1000",
        "batch100_set/8/on", "batch of 100, 8 clients")
      row("50% on one hot account", "hot50_c32", "32 connections",
        "hot50/32/on", "hot50, 32 clients")
      row("open loop 10,000 entries/s", "open10k", "64 connections, p99 from schedule",
        "none", "(not run by the peer)")
    }' "$out/tally.tsv" "$out/peer.tsv"
} >"$out/side-by-side.md"

{
  echo
  echo "== tally-load (entries/s; latency in microseconds per request)"
  column -t -s $'\t' "$out/tally.tsv"
  cat "$out/tallyd-rss.txt"
  echo
  echo "== peer"
  [ -s "$out/peer.tsv" ] && column -t -s $'\t' "$out/peer.tsv"
  echo
  echo "== side by side"
  cat "$out/side-by-side.md"
} | tee "$out/summary.txt"
echo "results in $out"
