#!/usr/bin/env bash
# The change stream benchmark (docs/REPLICATION.md): posting with the stream off and on in
# one run, --durability stream on a 3-server JetStream cluster, the stream's lag while
# posting, and a read replica's apply rate from the stream.
#
#   tools/bench-stream.sh                     # ~4 min on 2 cores, plus the build
#   BIN=.build/release tools/bench-stream.sh  # use existing tallyd/tally/tally-load
#
# For each of (a) no stream, (b) --stream to one nats-server (a stream of 1 replica), and
# (c) --stream --durability stream to a 3-server cluster (3 replicas): a fresh ledger,
# tallyd on 127.0.0.1, 10,000 load accounts, then tally-load (1) batched: 8 connections x 4
# in flight x 1,000 entries per ENTRY.BATCH, (2) 64 connections x 1 in flight x 1 entry.
# While (b) and (c) post, STATS `stream.lag` (events durable in the ledger and not yet
# acknowledged by the stream) is sampled every 0.5 s (in every run, for the same cost on
# both sides of a ratio): its p99 and max, and how long the
# stream took to catch up after each scenario. Then (d): a read replica started empty
# against (b)'s stream follows it to its end; its apply rate is events / seconds.
#
# Env: BIN (dir holding tallyd, tally, tally-load; default: build them, release), DUR
# (measured seconds per scenario [10]), WARMUP [1], OUT (results dir
# [.build-bench/stream-<UTC>]), SKIP (comma list of a,b,c,d), KEEP_DATA=1 (keep the ledgers
# and JetStream stores, GBs; removed by default). Only 127.0.0.1 is used; every
# process started here is stopped however the script ends, every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib/stop.sh
DUR="${DUR:-10}"
WARMUP="${WARMUP:-1}"
OUT="${OUT:-.build-bench/stream-$(date -u +%Y%m%dT%H%M%SZ)}"
SKIP="${SKIP:-}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
skip() { [[ ",$SKIP," == *",$1,"* ]]; }
say() { echo "bench-stream: $*" >&2; }

tools/setup
command -v python3 >/dev/null || { say "needs python3 (free ports, STATS parsing): apt-get install python3"; exit 2; }
if [ -n "${BIN:-}" ]; then
  bin="$(cd "$BIN" && pwd)"
else
  for p in tallyd tally tally-load; do
    say "building $p (release)"
    swift build -c release --product "$p" >>"$OUT/build.log" 2>&1 ||
      { tail -30 "$OUT/build.log" >&2; exit 1; }
  done
  bin="$(swift build -c release --show-bin-path)"
fi
for b in tallyd tally tally-load; do [ -x "$bin/$b" ] || { say "no $b in $bin"; exit 2; }; done
NATS="$(command -v nats-server || echo /usr/sbin/nats-server)"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # The ledgers and JetStream stores are GBs after a run: kept only with KEEP_DATA=1.
  if [ "${KEEP_DATA:-0}" != 1 ]; then rm -rf "$OUT"/a "$OUT"/b "$OUT"/c "$OUT"/d "$OUT"/nats-*; fi
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
wait_port() {  # port seconds
  local i
  for i in $(seq 1 $(($2 * 10))); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  say "nothing listens on $1 after $2 s"
  return 1
}

# nats-server with JetStream: start_nats NAME PORT [ROUTE_PORT ROUTES]; sets nats_pid.
start_nats() {
  local name=$1 port=$2 dir="$OUT/nats-$1"
  mkdir -p "$dir"
  {
    echo "server_name: $name"
    echo "listen: 127.0.0.1:$port"
    echo "jetstream { store_dir: \"$dir/js\" }"
    if [ $# -ge 4 ]; then
      echo "cluster { name: bench, listen: 127.0.0.1:$3, routes: [$4] }"
    fi
  } >"$dir/nats.conf"
  "$NATS" -c "$dir/nats.conf" >"$dir/nats.log" 2>&1 &
  nats_pid=$!
  pids+=("$nats_pid")
  wait_port "$port" 20
}

# A fresh ledger with an admin key in $1; tallyd started with flags $2...; sets tallyd_pid,
# port, and exports TALLY_KEY/TALLY_SECRET/TALLY_SERVER.
start_tallyd() {
  local dir=$1
  shift
  "$bin/tally" --data "$dir" init >/dev/null
  local kj
  kj="$("$bin/tally" --data "$dir" key create --role admin --json)"
  TALLY_KEY="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$kj")"
  TALLY_SECRET="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$kj")"
  export TALLY_KEY TALLY_SECRET
  rm -f "$dir.port"
  "$bin/tallyd" --data "$dir" --listen 127.0.0.1:0 --port-file "$dir.port" "$@" \
    >"$dir.log" 2>&1 &
  tallyd_pid=$!
  pids+=("$tallyd_pid")
  local i
  for i in $(seq 1 300); do [ -s "$dir.port" ] && break; sleep 0.1; done
  port="$(cat "$dir.port")"
  export TALLY_SERVER="127.0.0.1:$port"
}

stat_field() {  # python expression over the STATS object `s`
  "$bin/tally" stats --json 2>/dev/null |
    python3 -c "import json,sys; s=json.load(sys.stdin); print($1)" 2>/dev/null || echo ""
}

declare -A R
load() {  # key, then tally-load options; records eps and p99
  local k=$1
  shift
  local line
  line="$(timeout $((DUR + WARMUP + 600)) "$bin/tally-load" --server "127.0.0.1:$port" \
    --accounts 10000 --duration "$DUR" --warmup "$WARMUP" --json "$@" 2>>"$OUT/tally-load.err")"
  echo "$line" >>"$OUT/tally-load.jsonl"
  R[${k}_eps]="$(sed -nE 's/.*"entries_per_sec":([0-9]+).*/\1/p' <<<"$line")"
  R[${k}_p99]="$(sed -nE 's/.*"p99":([0-9]+).*/\1/p' <<<"$line")"
  say "$k: ${R[${k}_eps]} entries/s, p99 ${R[${k}_p99]} us"
}

# Samples stream.lag every 100 ms into $1 until the file $1.stop exists (bounded: 20 min).
sample_lag() {
  local f=$1 i
  : >"$f"
  for i in $(seq 1 12000); do
    [ -e "$f.stop" ] && break
    stat_field 's["stream"]["lag"] if s["stream"] else "off"' >>"$f"
    sleep 0.5
  done
}
lag_summary() {  # file -> "p99 max samples"
  grep -E '^[0-9]+$' "$1" | sort -n | awk '{a[NR]=$1} END {if (NR==0) {print "n/a n/a 0"; exit}
    i=int(NR*0.99); if (i<1) i=1; print a[i], a[NR], NR}'
}
catch_up_s() {  # seconds until stream.lag is 0 (bounded 120 s)
  local t0 i lag
  t0=$(date +%s.%N)
  for i in $(seq 1 1200); do
    lag="$(stat_field 's["stream"]["lag"]')"
    [ "$lag" = 0 ] && break
    sleep 0.1
  done
  awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}'
}

scenarios() {  # prefix, stream on (1/0)
  local p=$1 on=$2
  "$bin/tally-load" --server "127.0.0.1:$port" --accounts 10000 --setup --duration 1 \
    --warmup 0 --connections 8 --inflight 4 --entries-per-request 1000 --json >/dev/null 2>&1
  for sc in "batched|--connections 8 --inflight 4 --entries-per-request 1000" \
    "single|--connections 64 --inflight 1"; do
    local k="${p}_${sc%%|*}" args="${sc#*|}"
    # STATS is sampled in every run, with the stream or without, so that the sampling's own
    # cost is the same on both sides of a ratio.
    rm -f "$OUT/$k.lag.stop"
    sample_lag "$OUT/$k.lag" &
    local sampler=$!
    # shellcheck disable=SC2086
    load "$k" $args
    touch "$OUT/$k.lag.stop"
    wait "$sampler" || true
    if [ "$on" = 1 ]; then
      read -r R[${k}_lag_p99] R[${k}_lag_max] R[${k}_lag_n] < <(lag_summary "$OUT/$k.lag")
      R[${k}_catchup]="$(catch_up_s)"
      say "$k: lag p99 ${R[${k}_lag_p99]} max ${R[${k}_lag_max]} events (${R[${k}_lag_n]} samples), caught up ${R[${k}_catchup]} s after"
    fi
  done
}

{
  echo "date (UTC)   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "this tree    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
  echo "machine      $(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "nats-server  $("$NATS" --version 2>&1 | head -1)"
  echo "settings     DUR=$DUR WARMUP=$WARMUP SKIP=${SKIP:-none}"
} | tee "$OUT/env.txt" >&2

# (a) no stream
if ! skip a; then
  start_tallyd "$OUT/a"
  scenarios a 0
  stop_gracefully "$tallyd_pid" 30 || true
fi

# (b) one nats-server, stream of 1 replica
nats1=$(free_port)
start_nats one "$nats1"
nats_one_pid=$nats_pid
if ! skip b; then
  start_tallyd "$OUT/b" --stream "nats://127.0.0.1:$nats1"
  scenarios b 1
  R[b_events]="$(stat_field 's["head"]["seq"]')"
  stop_gracefully "$tallyd_pid" 30 || true
fi

# (d) a replica from empty follows (b)'s stream to its end
if ! skip d && ! skip b; then
  "$bin/tallyd" --data "$OUT/d" --initialize --replica-of "nats://127.0.0.1:$nats1" \
    --listen 127.0.0.1:0 --port-file "$OUT/d.port" >"$OUT/d.log" 2>&1 &
  tallyd_pid=$!
  pids+=("$tallyd_pid")
  t0=$(date +%s.%N)
  for i in $(seq 1 300); do [ -s "$OUT/d.port" ] && break; sleep 0.1; done
  TALLY_KEY="$(awk '$1=="key"{print $2; exit}' "$OUT/d.log")"
  TALLY_SECRET="$(awk '$1=="secret"{print $2; exit}' "$OUT/d.log")"
  export TALLY_KEY TALLY_SECRET TALLY_SERVER="127.0.0.1:$(cat "$OUT/d.port")"
  seq_now=0
  for i in $(seq 1 6000); do
    seq_now="$(stat_field 's["replica"]["seq"]')"
    [ "$seq_now" = "${R[b_events]}" ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  R[d_seconds]="$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.2f", b-a}')"
  R[d_rate]="$(awk -v n="${R[b_events]}" -v a="$t0" -v b="$t1" 'BEGIN{printf "%d", n/(b-a)}')"
  say "replica: ${R[b_events]} events in ${R[d_seconds]} s (from process start) = ${R[d_rate]} events/s; at seq $seq_now"
  stop_gracefully "$tallyd_pid" 30 || true
fi
kill -TERM "$nats_one_pid" 2>/dev/null || true

# (c) a 3-server cluster, stream of 3 replicas, --durability stream
if ! skip c; then
  c1=$(free_port); c2=$(free_port); c3=$(free_port)
  r1=$(free_port); r2=$(free_port); r3=$(free_port)
  routes="nats-route://127.0.0.1:$r1, nats-route://127.0.0.1:$r2, nats-route://127.0.0.1:$r3"
  start_nats c1 "$c1" "$r1" "$routes"
  start_nats c2 "$c2" "$r2" "$routes"
  start_nats c3 "$c3" "$r3" "$routes"
  sleep 3  # the cluster elects its JetStream meta leader
  urls="nats://127.0.0.1:$c1,nats://127.0.0.1:$c2,nats://127.0.0.1:$c3"
  start_tallyd "$OUT/c" --stream "$urls" --stream-replicas 3 --durability stream
  scenarios c 1
  stop_gracefully "$tallyd_pid" 30 || true
fi

ratio() { awk -v a="${1:-}" -v b="${2:-}" 'BEGIN{if (a==""||b==""||b==0) print "n/a"; else printf "%.2f", a/b}'; }
{
  echo
  echo "== change stream, tally-load ${DUR}s per scenario (entries/s, p99 us; lag in events)"
  for s in batched single; do
    echo "$s: off ${R[a_${s}_eps]:-n/a} (p99 ${R[a_${s}_p99]:-n/a})" \
      "| stream ${R[b_${s}_eps]:-n/a} (p99 ${R[b_${s}_p99]:-n/a}) = $(ratio "${R[b_${s}_eps]:-}" "${R[a_${s}_eps]:-}") of off," \
      "lag p99 ${R[b_${s}_lag_p99]:-n/a} max ${R[b_${s}_lag_max]:-n/a} (p99 $(ratio "${R[b_${s}_lag_p99]:-}" "${R[b_${s}_eps]:-}") s), caught up ${R[b_${s}_catchup]:-n/a} s after" \
      "| durability stream, 3 servers ${R[c_${s}_eps]:-n/a} (p99 ${R[c_${s}_p99]:-n/a}) = $(ratio "${R[c_${s}_eps]:-}" "${R[a_${s}_eps]:-}") of off," \
      "lag p99 ${R[c_${s}_lag_p99]:-n/a} max ${R[c_${s}_lag_max]:-n/a}"
  done
  echo "replica apply from the stream: ${R[b_events]:-n/a} events in ${R[d_seconds]:-n/a} s = ${R[d_rate]:-n/a} events/s (target 300,000)"
  echo "targets: the stream costs <= 20 % of posting (ratio >= 0.80); lag p99 <= 1 s at the full single-entry rate"
} | tee "$OUT/summary.txt"
echo "$OUT"
