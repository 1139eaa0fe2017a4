#!/usr/bin/env bash
# Side by side with a PostgreSQL ledger peer, in one run on one machine.
#   tools/peer-compare.sh PATH/TO/peer/run.sh
# Runs the peer's script (it prints its own table: durable single transfers, batches of
# 100, hash-chained transfers, with pgbench), then the Tally engine on the same shape of
# work (10,000 accounts, 2-leg transfers between random accounts, durable) at batch sizes
# 1, 100 and 10,000, and prints both. Needs root for the peer's private cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
peer="${1:?usage: tools/peer-compare.sh PATH/TO/peer/run.sh}"

tools/setup
swift build -c release --product tally-bench >/dev/null
bench="$(swift build -c release --show-bin-path)/tally-bench"
out=".build-bench/peer-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$out"

echo "== peer: $peer"
bash "$peer" 2>&1 | tee "$out/peer.txt"

echo "== tally (same machine, right after)"
printf '| batch | entries | tally entries/s |\n|---:|---:|---:|\n' | tee "$out/tally.md"
for spec in 1:3000 100:200000 10000:500000; do
  batch=${spec%%:*}
  entries=${spec##*:}
  dir=".build-bench/data/peer-tally-$batch"
  rm -rf "$dir"
  line="$("$bench" --dir "$dir" --accounts 10000 --entries "$entries" --batch "$batch")"
  rm -rf "$dir"
  echo "$line" >> "$out/tally.jsonl"
  rate="$(sed -E 's/.*"entries_per_sec":([0-9]+).*/\1/' <<<"$line")"
  printf '| %s | %s | %s |\n' "$batch" "$entries" "$rate" | tee -a "$out/tally.md"
done
echo "results in $out"
