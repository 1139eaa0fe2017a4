#!/usr/bin/env bash
# Backup and restore of one ledger, timed (release build): a ledger made by tally-bench
# (10,000 accounts, batch 10,000), then `tally backup --out` (a compacted LMDB copy, the
# journal, a checkpoint; verified before its manifest is written), then `tally restore`
# into a new data directory (every file checked, laid out, verified), then `tally verify`
# of the restored directory. Prints each step's time, the backup's size and the heads.
#
#   tools/bench-backup.sh                          # 1,000,000 entries
#   ENTRIES=250000 tools/bench-backup.sh
#   BIN=.build/release tools/bench-backup.sh       # existing tally and tally-bench
#
# Env [defaults]: BIN [.build/release; built when missing], ENTRIES [1000000],
# DIR [${TMPDIR:-/tmp}/tally-bench-backup] (removed at the end unless KEEP_DATA=1).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-.build/release}
ENTRIES=${ENTRIES:-1000000}
DIR=${DIR:-${TMPDIR:-/tmp}/tally-bench-backup}
for p in tally tally-bench; do
  [[ -x $BIN/$p ]] || swift build -c release --product "$p" >&2
done
tally=$(realpath "$BIN/tally")
rm -rf "$DIR"
mkdir -p "$DIR"
[[ ${KEEP_DATA:-0} == 1 ]] || trap 'rm -rf "$DIR"' EXIT
export TALLY_NO_PROGRESS=1

ms() { echo $(( ($2 - $1) / 1000000 )); }
"$BIN/tally-bench" --dir "$DIR/data" --accounts 10000 --entries "$ENTRIES" --batch 10000 >/dev/null
head=$("$tally" --data "$DIR/data" --json stats | sed -E 's/.*"seq":([0-9]+).*/\1/')
data_bytes=$(du -sb "$DIR/data" | cut -f1)

t0=$(date +%s%N)
"$tally" --data "$DIR/data" backup --out "$DIR/backup" --json >"$DIR/backup.json"
t1=$(date +%s%N)
"$tally" --data "$DIR/restored" restore "$DIR/backup" --json >"$DIR/restore.json"
t2=$(date +%s%N)
"$tally" --data "$DIR/restored" verify >/dev/null
t3=$(date +%s%N)
restored=$("$tally" --data "$DIR/restored" --json stats | sed -E 's/.*"seq":([0-9]+).*/\1/')
[[ $restored == "$head" ]] || { echo "bench-backup: restored head $restored ≠ $head" >&2; exit 1; }
backup_bytes=$(du -sb "$DIR/backup" | cut -f1)

echo "ledger: $head events, data directory $((data_bytes / 1048576)) MiB"
echo "backup:  $(ms "$t0" "$t1") ms, $((backup_bytes / 1048576)) MiB ($(cat "$DIR/backup.json"))"
echo "restore: $(ms "$t1" "$t2") ms ($(cat "$DIR/restore.json"))"
echo "verify of the restored directory: $(ms "$t2" "$t3") ms; head $restored = $head"
