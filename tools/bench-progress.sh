#!/usr/bin/env bash
# The progress line's cost: `tally verify` on one ledger with progress drawn on a terminal (a
# pseudo-terminal made by `script`, TERM=xterm) and with it off (--no-progress, output piped),
# alternating, RUNS times each; prints every time and the medians.
#
#   tools/bench-progress.sh                       # 250,000 entries, 5 runs each
#   ENTRIES=1000000 RUNS=3 tools/bench-progress.sh
#   BIN=.build-rel/release tools/bench-progress.sh  # existing tally and tally-bench
#
# Env [defaults]:
#   BIN        dir holding tally and tally-bench [.build-rel/release; built when missing:
#              swift build -c release --product P --scratch-path .build-rel]
#   ENTRIES    entries in the ledger (tally-bench, 10,000 accounts, batch 10,000) [250000]
#   RUNS       verify runs per mode [5]
#   DIR        the ledger (reused when it exists) [${TMPDIR:-/tmp}/tally-bench-progress]
#   KEEP_DATA=1  keep the ledger afterwards [0]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build-rel/release}
ENTRIES=${ENTRIES:-250000}
RUNS=${RUNS:-5}
DIR=${DIR:-${TMPDIR:-/tmp}/tally-bench-progress}
command -v script >/dev/null || { echo "bench-progress: needs script (util-linux)" >&2; exit 2; }
for p in tally tally-bench; do
  [[ -x $BIN/$p ]] || swift build -c release --product "$p" --scratch-path .build-rel
done
if [[ ! -d $DIR ]]; then
  "$BIN/tally-bench" --dir "$DIR" --accounts 10000 --entries "$ENTRIES" --batch 10000
fi
[[ ${KEEP_DATA:-0} == 1 ]] || trap 'rm -rf "$DIR"' EXIT
tally=$(realpath "$BIN/tally")

ms() { echo $(( ($2 - $1) / 1000000 )); }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
on=() off=()
for ((i = 1; i <= RUNS; i++)); do
  t0=$(date +%s%N)
  "$tally" --data "$DIR" verify --no-progress >/dev/null 2>&1
  t1=$(date +%s%N)
  TERM=xterm script -q -e -c "'$tally' --data '$DIR' verify" /dev/null >/dev/null
  t2=$(date +%s%N)
  off+=("$(ms "$t0" "$t1")") on+=("$(ms "$t1" "$t2")")
  echo "run $i: off $(ms "$t0" "$t1") ms, on (pty) $(ms "$t1" "$t2") ms"
done
events=$("$tally" --data "$DIR" --json stats | sed -E 's/.*"seq":([0-9]+).*/\1/')
echo "verify of $events events, median of $RUNS: off $(printf '%s\n' "${off[@]}" | median) ms," \
  "on $(printf '%s\n' "${on[@]}" | median) ms"
