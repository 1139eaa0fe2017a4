#!/usr/bin/env bash
# The journal benchmark: the disk, TigerBeetle and Tally measured in one run on one machine,
# side by side, with the ratios the journal-first write path aims for.
#
#   tools/bench-journal.sh                   # full run (~3-5 min on 2 cores, plus the build)
#   QUICK=1 tools/bench-journal.sh           # short run (~2 min): smaller counts, DUR=3
#   BIN=.build/release tools/bench-journal.sh  # use existing tallyd/tally/tally-load/tally-bench
#
# 1. Disk probe (tools/diskprobe/diskprobe.c, compiled with cc -O2 into a scratch dir): one
#    pwrite + one fdatasync per append, at 256 B, 16 KiB and 1 MiB, for PROBE_SECS seconds or
#    PROBE_APPENDS appends per size, whichever ends first, on the file system of the data
#    dir. Main figure: a preallocated file (zeros written and synced first, then overwritten
#    from offset 0); also a fresh fallocate'd file and a growing file.
# 2. TigerBeetle's own `tigerbeetle benchmark` (10,000 accounts, random 2-leg transfers,
#    single replica on 127.0.0.1, data file in the results dir): 1M transfers batched
#    (batch 8189, 1 client), batch 1 with 1 client, batch 1 with 8 clients (each run is
#    bounded by its transfer count and TB_TIMEOUT, not by DUR). The binary is
#    TB_BIN (default ${TMPDIR:-/tmp}/anchors/tigerbeetle/tigerbeetle); without it this part
#    is skipped, loudly, and its ratios are n/a.
# 3. Tally: a fresh ledger, tallyd on 127.0.0.1 on a free port, 10,000 load accounts, then
#    tally-load: (a) 8 connections x 4 in flight x 1,000 entries per ENTRY.BATCH, (b) 64
#    connections x 1 in flight x 1 entry (closed loop), (c) 1 connection x 1 in flight, with
#    the event loop client and again with --blocking (a thread and blocking socket calls), (d)
#    open loop at 10,000 entries/s on 64 connections (its p99). tallyd's peak RSS (VmHWM),
#    then SIGTERM. (e) The engine alone: tally-bench --accounts 10000 --entries
#    ENGINE_ENTRIES --batch 10000.
# 4. A table of the figures and of the ratios against their targets.
#
# Env (defaults in brackets; QUICK=1 changes the ones marked *):
#   BIN               dir holding tallyd, tally, tally-load, tally-bench [build them:
#                     swift build -c release --product P, for each; TALLY_SCRATCH_PATH sets
#                     --scratch-path]
#   DUR*              measured seconds per tally-load scenario [10; QUICK 3]
#   WARMUP            tally-load warmup seconds [1]
#   ENGINE_ENTRIES*   tally-bench entries [1000000; QUICK 200000]
#   PROBE_SECS*       disk probe seconds per size and mode [4; QUICK 1]
#   PROBE_APPENDS     disk probe appends per size and mode at most [200000]
#   PROBE_MODES       [prealloc,fallocate,append]
#   TB_BIN            TigerBeetle binary [${TMPDIR:-/tmp}/anchors/tigerbeetle/tigerbeetle]
#   TB_BATCHED        transfers in the batched TigerBeetle run [1000000]
#   TB_SINGLE*        transfers in each batch-1 TigerBeetle run [50000; QUICK 10000]
#   TB_TIMEOUT        seconds per TigerBeetle run [300]
#   SKIP              comma list of parts to leave out: probe,tb,tally,engine []
#   PORT              tallyd port [a free one]
#   OUT               results dir [.build-bench/journal-<UTC timestamp>]
#   VERIFY=1          run `tally verify` on the ledger after tallyd stops [0]
#   KEEP_DATA=1       keep the ledgers (they are hundreds of MB) [0]
#   LOCK_WAIT         seconds to wait for another run of this script to finish [900]
# Runs take a lock (flock on ${TMPDIR:-/tmp}/tally-bench-journal/lock), so two never overlap.
# Every run has a count or a duration and a timeout; tallyd and any TigerBeetle replica
# started here are stopped however the script ends. Everything, including summary.txt,
# goes to the results dir, whose path is printed last. Only 127.0.0.1 is used.
set -euo pipefail
cd "$(dirname "$0")/.."
. tools/lib/stop.sh
ROOT="$(pwd)"

QUICK="${QUICK:-0}"
if [ "$QUICK" = 1 ]; then q=1; else q=0; fi
DUR="${DUR:-$([ $q = 1 ] && echo 3 || echo 10)}"
WARMUP="${WARMUP:-1}"
ENGINE_ENTRIES="${ENGINE_ENTRIES:-$([ $q = 1 ] && echo 200000 || echo 1000000)}"
PROBE_SECS="${PROBE_SECS:-$([ $q = 1 ] && echo 1 || echo 4)}"
PROBE_APPENDS="${PROBE_APPENDS:-200000}"
PROBE_MODES="${PROBE_MODES:-prealloc,fallocate,append}"
TB_BIN="${TB_BIN:-${TMPDIR:-/tmp}/anchors/tigerbeetle/tigerbeetle}"
TB_BATCHED="${TB_BATCHED:-1000000}"
TB_SINGLE="${TB_SINGLE:-$([ $q = 1 ] && echo 10000 || echo 50000)}"
TB_TIMEOUT="${TB_TIMEOUT:-300}"
SKIP="${SKIP:-}"
VERIFY="${VERIFY:-0}"
KEEP_DATA="${KEEP_DATA:-0}"
LOCK_WAIT="${LOCK_WAIT:-900}"
for v in DUR WARMUP ENGINE_ENTRIES PROBE_APPENDS TB_BATCHED TB_SINGLE TB_TIMEOUT LOCK_WAIT; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "bench-journal: $v must be a whole number" >&2; exit 2; }
done
[[ "$PROBE_SECS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "bench-journal: PROBE_SECS must be a number" >&2; exit 2; }
skip() { [[ ",$SKIP," == *",$1,"* ]]; }

SCRATCH="${TMPDIR:-/tmp}/tally-bench-journal"
mkdir -p "$SCRATCH"
# One run at a time on this machine: two at once would measure each other.
exec 9>"$SCRATCH/lock"
if ! flock -n 9; then
  echo "bench-journal: another run holds $SCRATCH/lock; waiting up to ${LOCK_WAIT}s for it" >&2
  flock -w "$LOCK_WAIT" 9 || { echo "bench-journal: still busy; giving up" >&2; exit 2; }
fi
OUT="${OUT:-.build-bench/journal-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

T0=$(date +%s)
say() {  # with the 1-minute load average, to spot other work on the machine
  printf '[journal %4ss load %5s] %s\n' $(($(date +%s) - T0)) "$(cut -d' ' -f1 /proc/loadavg)" "$*" |
    tee -a "$OUT/log.txt" >&2
}
loud() {
  {
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    printf '!!! %s\n' "$@"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  } | tee -a "$OUT/notes.txt" >&2
}
note() { echo "$*" | tee -a "$OUT/notes.txt" >&2; }

# ---------------------------------------------------------------------------------------
# Clean-up: tallyd and TigerBeetle replicas started here, data files, however we end.
tallyd_pid=""
tallyd_rc=""
tb_run=""
tb_bin_abs=""
tb_reap() {  # replicas running our binary with our run dir as cwd (normally they exit alone)
  [ -n "$tb_run" ] && [ -n "$tb_bin_abs" ] || return 0
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/exe" 2>/dev/null)" = "$tb_bin_abs" ] || continue
    [ "$(readlink "$p/cwd" 2>/dev/null)" = "$tb_run" ] || continue
    kill "${p#/proc/}" 2>/dev/null || true
  done
  rm -f "$tb_run"/*.tigerbeetle.benchmark
}
stop_tallyd() {
  [ -n "$tallyd_pid" ] || return 0
  stop_gracefully "$tallyd_pid" 15 && tallyd_rc=0 || tallyd_rc=$?
  [ "$stop_killed" = 0 ] || note "tallyd did not stop within 15 s of SIGTERM; killed it"
  tallyd_pid=""
}
cleanup() {
  stop_tallyd
  tb_reap
  rm -f "$OUT"/probe/diskprobe-* 2>/dev/null || true
  if [ "$KEEP_DATA" != 1 ]; then rm -rf "$OUT/data" "$OUT/engine-data"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Results, filled in as parts run; "" means not measured.
declare -A R=()

# ---------------------------------------------------------------------------------------
# Binaries (the Swift ones are needed only for the Tally parts).
need_swift=0
skip tally || need_swift=1
skip engine || need_swift=1
if [ $need_swift = 1 ]; then
  if [ -n "${BIN:-}" ]; then
    bin="$(cd "$BIN" && pwd)"
  else
    tools/setup
    build=(swift build -c release ${TALLY_SCRATCH_PATH:+--scratch-path "$TALLY_SCRATCH_PATH"})
    for product in tallyd tally tally-load tally-bench; do
      say "building $product (release)"
      "${build[@]}" --product "$product" >>"$OUT/build.log" 2>&1 ||
        { tail -30 "$OUT/build.log" >&2; echo "bench-journal: build of $product failed" >&2; exit 1; }
    done
    bin="$("${build[@]}" --show-bin-path)"
  fi
  for b in tallyd tally tally-load tally-bench; do
    [ -x "$bin/$b" ] || { echo "bench-journal: no $b in $bin (set BIN or build)" >&2; exit 2; }
  done
fi

{
  echo "date (UTC)   $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "this tree    $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (+ local changes)')"
  echo "machine      $(nproc) cores, $(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null), $(awk '/^MemTotal/{printf "%d GiB", $2/1048576}' /proc/meminfo)"
  echo "kernel       $(uname -r)"
  echo "load avg     $(cut -d' ' -f1-3 /proc/loadavg) at start (other work on the machine skews every figure)"
  echo "results fs   $(df -PT "$OUT" | awk 'NR==2{print $2 " (" $1 ", mounted on " $7 ")"}')"
  echo "settings     QUICK=$QUICK DUR=$DUR WARMUP=$WARMUP ENGINE_ENTRIES=$ENGINE_ENTRIES PROBE_SECS=$PROBE_SECS TB_BATCHED=$TB_BATCHED TB_SINGLE=$TB_SINGLE SKIP=${SKIP:-none}"
  if [ $need_swift = 1 ]; then
    # The binaries' own checkout (BIN may point into another one; they may predate its HEAD).
    bin_commit="$(git -C "$bin" rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo "tally bins   $bin (in a checkout at $bin_commit)"
  fi
} >"$OUT/env.txt"
cat "$OUT/env.txt" >&2
load_start="$(cut -d' ' -f1-3 /proc/loadavg)"
busy() { awk -v n="$(nproc)" '{exit !($1 > n / 2)}' /proc/loadavg; }
if busy; then
  loud "the machine is busy: load average $(cut -d' ' -f1 /proc/loadavg) on $(nproc) cores at the start;" \
    "every figure below is skewed by the other work (only same-run ratios mean anything, and even they suffer)"
fi

# ---------------------------------------------------------------------------------------
# 1. Disk probe
if skip probe; then
  note "disk probe: skipped (SKIP)"
else
  say "disk probe: compiling tools/diskprobe/diskprobe.c"
  cc -O2 -Wall -o "$SCRATCH/diskprobe" tools/diskprobe/diskprobe.c
  # The probe files go where the ledger goes (the results dir), i.e. on its file system.
  probe_dir="$OUT/probe"
  mkdir -p "$probe_dir"
  say "disk probe: ${PROBE_SECS}s or $PROBE_APPENDS appends per size, modes $PROBE_MODES, in $probe_dir"
  if timeout 900 "$SCRATCH/diskprobe" -s "$PROBE_SECS" -n "$PROBE_APPENDS" -m "$PROBE_MODES" \
    "$probe_dir" 256 16k 1M >"$OUT/diskprobe.tsv" 2>"$OUT/diskprobe.err"; then
    grep '^#' "$OUT/diskprobe.tsv" >&2 || true
    grep -v '^#' "$OUT/diskprobe.tsv" | column -t -s $'\t' >&2
    while IFS=$'\t' read -r mode size appends secs aps mbs e256 p50 p99 mx fb wraps; do
      [ "$mode" = mode ] && continue
      R[probe_${mode}_${size}_aps]=$aps
      R[probe_${mode}_${size}_mbs]=$mbs
      R[probe_${mode}_${size}_e256]=$e256
      R[probe_${mode}_${size}_p99]=$p99
    done < <(grep -v '^#' "$OUT/diskprobe.tsv")
  else
    loud "disk probe FAILED: $(tail -3 "$OUT/diskprobe.err" | tr '\n' ' ')"
  fi
  rmdir "$probe_dir" 2>/dev/null || true
fi

# ---------------------------------------------------------------------------------------
# 2. TigerBeetle
tb_status="not run"
if skip tb; then
  tb_status="skipped (SKIP)"
  note "TigerBeetle: skipped (SKIP)"
elif [ ! -x "$TB_BIN" ]; then
  tb_status="SKIPPED: no binary at $TB_BIN"
  loud "TigerBeetle part SKIPPED: no executable at TB_BIN=$TB_BIN" \
    "Its figures and ratios are reported as n/a (nothing is estimated)." \
    "To build it: a release build from TigerBeetle's source (github.com/tigerbeetle/tigerbeetle)," \
    "e.g. in a checkout: ./zig/download.sh && ./zig/zig build -Drelease  (binary: ./tigerbeetle)," \
    "or with the TigerBeetle peer's build.sh GIT_DIR (it prints the binary's path," \
    "by default \${TMPDIR:-/tmp}/anchors/tigerbeetle/tigerbeetle). Then rerun, with TB_BIN=PATH if elsewhere."
else
  tb_bin_abs="$(cd "$(dirname "$TB_BIN")" && pwd)/$(basename "$TB_BIN")"
  tb_bin_abs="$(readlink -f "$tb_bin_abs")"
  tb_run="$OUT/tigerbeetle"
  mkdir -p "$tb_run"
  tb_version="$("$tb_bin_abs" version 2>&1 | head -1 || true)"
  echo "tigerbeetle  $tb_bin_abs: $tb_version" >>"$OUT/env.txt"
  say "TigerBeetle: $tb_version; data files in $tb_run"
  printf 'key\tscenario\targs\ttransfers_per_s\tbatch_p50_ms\tbatch_p99_ms\twall_s\trc\n' >"$OUT/tigerbeetle.tsv"
  tb_ok=0
  # key | name | `tigerbeetle benchmark` args (defaults: 10,000 accounts, batch 8189, 1 client)
  for sc in \
    "batched|$TB_BATCHED transfers, batch 8189, 1 client|--transfer-count=$TB_BATCHED" \
    "b1c1|$TB_SINGLE transfers, batch 1, 1 client|--transfer-count=$TB_SINGLE --transfer-batch-count=1" \
    "b1c8|$TB_SINGLE transfers, batch 1, 8 clients|--transfer-count=$TB_SINGLE --transfer-batch-count=1 --clients=8"; do
    key=${sc%%|*}; rest=${sc#*|}; name=${rest%%|*}; args=${rest#*|}
    log="$tb_run/$key.log"
    say "TigerBeetle $name: tigerbeetle benchmark $args"
    w0=$(date +%s.%N)
    # shellcheck disable=SC2086
    set +e
    (cd "$tb_run" && exec timeout --kill-after=15 "$TB_TIMEOUT" "$tb_bin_abs" benchmark $args) >"$log" 2>&1
    rc=$?
    set -e
    w1=$(date +%s.%N)
    tb_reap
    wall=$(awk -v a="$w0" -v b="$w1" 'BEGIN{printf "%.1f", b-a}')
    tps=$(sed -n 's/^load accepted = \([0-9]*\) tx\/s.*/\1/p' "$log" | head -1)
    p50=$(sed -n 's/^batch latency p50 *= \([0-9]*\) ms.*/\1/p' "$log" | head -1)
    p99=$(sed -n 's/^batch latency p99 *= \([0-9]*\) ms.*/\1/p' "$log" | head -1)
    if [ "$rc" != 0 ] || [ -z "$tps" ]; then
      loud "TigerBeetle $name FAILED (rc=$rc, log $log): $(tail -3 "$log" | tr '\n' ' ')"
      tps=""
    else
      tb_ok=$((tb_ok + 1))
    fi
    R[tb_${key}]=$tps
    R[tb_${key}_p99]=$p99
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$key" "$name" "$args" "${tps:-NA}" "${p50:-NA}" \
      "${p99:-NA}" "$wall" "$rc" >>"$OUT/tigerbeetle.tsv"
    say "  -> ${tps:-NA} transfers/s, batch p99 ${p99:-NA} ms, ${wall}s wall"
  done
  tb_status="ran $tb_ok of 3 scenarios"
  rmdir "$tb_run" 2>/dev/null || true
fi

# ---------------------------------------------------------------------------------------
# 3. Tally over the network
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9, $2+$3+$4+$5+$6+$7+$8+$9}' /proc/stat; }
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
pick_port() {
  local p _
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 40000))
    listening "$p" || { echo "$p"; return 0; }
  done
  return 1
}

tally_status="not run"
if skip tally; then
  tally_status="skipped (SKIP)"
  note "Tally over the network: skipped (SKIP)"
else
  data="$OUT/data"
  timeout 60 "$bin/tally" --data "$data" init >/dev/null
  keyjson="$(timeout 60 "$bin/tally" --data "$data" key create --role admin --json)"
  key="$(sed -nE 's/.*"key":"([^"]+)".*/\1/p' <<<"$keyjson")"
  secret="$(sed -nE 's/.*"secret":"([^"]+)".*/\1/p' <<<"$keyjson")"
  [ -n "$key" ] && [ -n "$secret" ] || { echo "bench-journal: no key in: $keyjson" >&2; exit 1; }

  # A free port (PORT if given): tallyd is started and, should the port be taken in between,
  # started again on another one.
  for attempt in 1 2 3 4 5; do
    if [ -n "${PORT:-}" ]; then port=$PORT; else port="$(pick_port)"; fi
    listening "$port" && { echo "bench-journal: port $port is in use" >&2; exit 2; }
    "$bin/tallyd" --data "$data" --listen "127.0.0.1:$port" >"$OUT/tallyd.log" 2>&1 &
    tallyd_pid=$!
    for _ in $(seq 1 150); do
      listening "$port" && break
      kill -0 "$tallyd_pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$tallyd_pid" 2>/dev/null && listening "$port"; then break; fi
    stop_tallyd
    [ -z "${PORT:-}" ] && [ "$attempt" -lt 5 ] || { cat "$OUT/tallyd.log" >&2; echo "bench-journal: tallyd did not start" >&2; exit 1; }
  done
  say "tallyd (pid $tallyd_pid) on 127.0.0.1:$port, data $data; ${DUR}s per scenario after ${WARMUP}s warmup"

  export TALLY_KEY="$key" TALLY_SECRET="$secret"
  load=("$bin/tally-load" --server "127.0.0.1:$port" --accounts 10000 --duration "$DUR" --warmup "$WARMUP" --json)
  printf 'key\tconnections\tinflight\tentries/req\tmode\tentries/s\trequests/s\tp50_us\tp99_us\tp999_us\tmax_us\tlate\tskipped\tcpu_busy%%\terrors\n' >"$OUT/tally.tsv"
  tally_ok=0
  scenario() {  # key, then tally-load options
    local k=$1 line b0 t0 b1 t1
    shift
    say "tally-load $k: $*"
    read -r b0 t0 < <(cpu)
    if ! line="$(timeout $((DUR + WARMUP + 900)) "${load[@]}" "$@" 2>>"$OUT/tally-load.err")"; then
      loud "tally-load scenario $k FAILED (see $OUT/tally-load.err)"
      return 0
    fi
    read -r b1 t1 < <(cpu)
    echo "$line" >>"$OUT/tally.jsonl"
    field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p" <<<"$line" | head -1; }
    local mode errors eps
    mode="$(sed -nE 's/.*"mode":"([a-z]+)".*/\1/p' <<<"$line")"
    errors="$(sed -nE 's/.*"errors":\{([^}]*)\}.*/\1/p' <<<"$line" | tr -d '"')"
    eps="$(field entries_per_sec)"
    R[tally_$k]=$eps
    R[tally_${k}_p99]="$(field p99)"
    R[tally_${k}_errors]="${errors:-none}"
    R[tally_${k}_late]="$(field late_sends)"
    R[tally_${k}_skipped]="$(field skipped_sends)"
    tally_ok=$((tally_ok + 1))
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$k" \
      "$(field connections)" "$(field inflight)" "$(field entries_per_request)" "$mode" \
      "$eps" "$(field requests_per_sec)" "$(field p50)" "$(field p99)" "$(field p999)" \
      "$(field max)" "$(field late_sends)" "$(field skipped_sends)" \
      "$((100 * (b1 - b0) / (t1 - t0 > 0 ? t1 - t0 : 1)))" "${errors:-none}" >>"$OUT/tally.tsv"
    say "  -> $eps entries/s, p99 $(field p99) us, errors ${errors:-none}"
  }
  # The first run opens the 10,000 load accounts (outside its measured window).
  scenario batch_c8x4x1000 --setup --connections 8 --inflight 4 --entries-per-request 1000
  scenario single_c64 --connections 64 --inflight 1 --entries-per-request 1
  scenario single_c1 --connections 1 --inflight 1 --entries-per-request 1
  # The same with a blocking client (its own thread, plain read/write on the socket): the
  # event loop client's epoll wake and task hops are tens of microseconds a round trip here.
  scenario single_c1_blocking --connections 1 --inflight 1 --entries-per-request 1 --blocking
  scenario open10k_c64 --connections 64 --inflight 1 --entries-per-request 1 --rate 10000

  hwm_kb="$(awk '/^VmHWM:/{print $2}' "/proc/$tallyd_pid/status" 2>/dev/null || echo 0)"
  R[tally_hwm_mib]=$((hwm_kb / 1024))
  stop_tallyd
  echo "tallyd peak RSS (VmHWM) ${R[tally_hwm_mib]} MiB; exit status after SIGTERM $tallyd_rc" | tee "$OUT/tallyd-rss.txt" >&2
  [ "$tallyd_rc" = 0 ] || loud "tallyd exited with $tallyd_rc after SIGTERM (see $OUT/tallyd.log)"
  if [ "$VERIFY" = 1 ]; then
    say "tally verify"
    if timeout 1200 "$bin/tally" --data "$data" verify >"$OUT/verify.txt" 2>&1; then
      say "tally verify: ok"
    else
      loud "tally verify FAILED (see $OUT/verify.txt)"
      KEEP_DATA=1
    fi
  fi
  [ "$KEEP_DATA" = 1 ] || rm -rf "$data"
  tally_status="ran $tally_ok of 4 scenarios"
fi

# ---------------------------------------------------------------------------------------
# 3e. The engine alone (after tallyd has stopped, so it has the machine to itself)
if skip engine; then
  note "engine (tally-bench): skipped (SKIP)"
else
  edir="$OUT/engine-data"
  rm -rf "$edir"
  say "tally-bench --accounts 10000 --entries $ENGINE_ENTRIES --batch 10000"
  if line="$(timeout 1800 "$bin/tally-bench" --dir "$edir" --accounts 10000 \
    --entries "$ENGINE_ENTRIES" --batch 10000 2>"$OUT/engine.err")"; then
    echo "$line" >"$OUT/engine.json"
    R[engine]="$(sed -nE 's/.*"entries_per_sec":([0-9]+).*/\1/p' <<<"$line")"
    R[engine_rss_mib]="$(($(sed -nE 's/.*"peak_rss_kb":([0-9]+).*/\1/p' <<<"$line") / 1024))"
    say "  -> ${R[engine]} entries/s"
  else
    loud "tally-bench FAILED (see $OUT/engine.err)"
  fi
  [ "$KEEP_DATA" = 1 ] || rm -rf "$edir"
fi

# ---------------------------------------------------------------------------------------
# 4. Tables
v() { echo "${R[$1]:-}"; }
num() {  # 1234567 -> 1,234,567; empty -> n/a
  if [ -n "$1" ]; then sed -e ':a' -e 's/\([0-9]\)\([0-9]\{3\}\)\($\|,\)/\1,\2\3/' -e 'ta' <<<"$1"; else echo n/a; fi
}
ms() { [ -n "$1" ] && awk -v u="$1" 'BEGIN{printf "%.2f", u/1000}' || echo n/a; }
# ratio VALUE_A VALUE_B -> A/B with 2 decimals, or n/a
ratio() { [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.2f", a/b}' || echo n/a; }
pct() { [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ] && awk -v a="$1" -v b="$2" 'BEGIN{printf "%.1f", 100*a/b}' || echo n/a; }
# verdict VALUE OP TARGET -> ok / MISS / n/a
verdict() {
  [ "$1" = n/a ] || [ -z "$1" ] && { echo n/a; return; }
  awk -v x="$1" -v op="$2" -v t="$3" 'BEGIN{ok = (op == ">=") ? (x >= t) : (x <= t); print ok ? "ok" : "MISS"}'
}

{
  echo "== journal benchmark"
  cat "$OUT/env.txt"
  echo
  echo "== 1. disk probe: pwrite + fdatasync per append (MB = 10^6 B; entries256/s = bytes/s / 256)"
  if [ -s "$OUT/diskprobe.tsv" ]; then
    grep '^#' "$OUT/diskprobe.tsv" || true
    grep -v '^#' "$OUT/diskprobe.tsv" | column -t -s $'\t'
  else
    echo "(not run)"
  fi
  echo
  echo "== 2. TigerBeetle ($tb_status)"
  if [ -s "$OUT/tigerbeetle.tsv" ]; then column -t -s $'\t' "$OUT/tigerbeetle.tsv"; else echo "(no figures)"; fi
  echo
  echo "== 3. Tally ($tally_status; tally-load ${DUR}s measured per scenario, latency per request in us)"
  if [ -s "$OUT/tally.tsv" ]; then column -t -s $'\t' "$OUT/tally.tsv"; fi
  [ -s "$OUT/tallyd-rss.txt" ] && cat "$OUT/tallyd-rss.txt"
  if [ -n "$(v engine)" ]; then
    echo "engine (tally-bench, 10,000 accounts, $ENGINE_ENTRIES entries, batch 10,000): $(num "$(v engine)") entries/s, peak RSS $(v engine_rss_mib) MiB"
  fi
  echo
  echo "== side by side (entries or transfers per second)"
  printf '%-44s %14s   %-40s %14s\n' "Tally" "entries/s" "TigerBeetle / disk" "per s"
  row() {  # a blank label leaves its figure blank
    printf '%-44s %14s   %-40s %14s\n' "$1" "$([ -z "$1" ] || num "$2")" "$3" "$([ -z "$3" ] || num "$4")"
  }
  row "batched: 8 conn x 4 in flight x 1,000" "$(v tally_batch_c8x4x1000)" "$TB_BATCHED transfers, batch 8189, 1 client" "$(v tb_batched)"
  row "single: 64 conn x 1 in flight" "$(v tally_single_c64)" "batch 1, 8 clients" "$(v tb_b1c8)"
  row "single: 1 conn x 1 in flight" "$(v tally_single_c1)" "batch 1, 1 client" "$(v tb_b1c1)"
  row "  same, blocking client" "$(v tally_single_c1_blocking)" "" ""
  row "open loop 10,000/s, 64 conn (achieved)" "$(v tally_open10k_c64)" "" ""
  row "engine alone, batch 10,000" "$(v engine)" "disk: 1 MiB appends, as 256 B entries" "$(v probe_prealloc_1048576_e256)"
  row "" "" "disk: 256 B appends (entries/s)" "$(v probe_prealloc_256_aps)"
  row "" "" "disk: 16 KiB appends, as 256 B entries" "$(v probe_prealloc_16384_e256)"
  echo "(disk figures: preallocated file; fresh fallocate'd file: 1 MiB $(num "$(v probe_fallocate_1048576_e256)"), 256 B $(num "$(v probe_fallocate_256_aps)") entries/s)"
  echo
  echo "== ratios"
  printf '%-62s %12s %10s %6s\n' "measure" "value" "target" ""
  target() { printf '%-62s %12s %10s %6s\n' "$1" "${2:-n/a}" "$3 $4" "$(verdict "$2" "$3" "$4")"; }
  target "tally batched / TB $TB_BATCHED batched" "$(ratio "$(v tally_batch_c8x4x1000)" "$(v tb_batched)")" ">=" 1.5
  target "tally 64x1 entries/s" "$(v tally_single_c64)" ">=" 100000
  target "tally 64x1 / TB batch 1, 8 clients" "$(ratio "$(v tally_single_c64)" "$(v tb_b1c8)")" ">=" 30
  target "tally 1x1 / TB batch 1, 1 client" "$(ratio "$(v tally_single_c1)" "$(v tb_b1c1)")" ">=" 1.5
  target "  (same, tally-load --blocking)" "$(ratio "$(v tally_single_c1_blocking)" "$(v tb_b1c1)")" ">=" 1.5
  target "open loop 10,000/s p99 (ms)" "$(ms "$(v tally_open10k_c64_p99)")" "<=" 2
  target "engine batch 10,000 / disk 1 MiB as 256 B entries (%)" "$(pct "$(v engine)" "$(v probe_prealloc_1048576_e256)")" ">=" 50
  target "  (same, against the fresh fallocate'd file) (%)" "$(pct "$(v engine)" "$(v probe_fallocate_1048576_e256)")" ">=" 50
  if [ -n "$(v tally_open10k_c64)" ]; then
    echo "open loop: achieved $(num "$(v tally_open10k_c64)") entries/s of 10,000; late sends $(v tally_open10k_c64_late), skipped $(v tally_open10k_c64_skipped), errors $(v tally_open10k_c64_errors)"
  fi
  for k in batch_c8x4x1000 single_c64 single_c1 single_c1_blocking open10k_c64; do
    e="$(v "tally_${k}_errors")"
    [ -z "$e" ] || [ "$e" = none ] || echo "!!! tally-load $k reported errors: $e"
  done
  echo "load avg: $(cut -d' ' -f1-3 /proc/loadavg) at the end (this benchmark's own work included), $load_start at the start"
  if [ -s "$OUT/notes.txt" ]; then echo; echo "== notes"; cat "$OUT/notes.txt"; fi
  echo
  echo "n/a: not measured in this run (skipped or failed; see notes). Ratios are of same-run figures."
} >"$OUT/summary.txt"
echo
cat "$OUT/summary.txt"
echo
echo "results in $OUT"
