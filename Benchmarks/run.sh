#!/usr/bin/env bash
# Runs Tally's package-benchmark suite (Benchmarks/Package.swift) in release and keeps the
# report in Benchmarks/.results/latest.txt.
#
#   Benchmarks/run.sh                       # everything: ~2 min of benchmarks on 2 cores, plus
#                                           # ~5 min for the first release build
#   FILTER='apply batch=1 .*' Benchmarks/run.sh
#   Benchmarks/run.sh --format markdown     # extra arguments go to `benchmark` as they are
#
# FILTER is a regex passed to `--filter`; it must match the WHOLE benchmark name
# (package-benchmark uses wholeMatch), so "rebuild.*", not "rebuild". Data directories go under
# $TMPDIR (default /tmp) and are deleted by each benchmark's teardown. The figures are only
# as quiet as the machine: the first line of the report gives the load average at the start.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
cd "$root"

./tools/setup

args=(--no-progress)
if [ -n "${FILTER:-}" ]; then
  args+=(--filter "$FILTER")
fi

mkdir -p "$here/.results"
{
  echo "tally $(git rev-parse --short HEAD 2>/dev/null || echo '?')$([ -z "$(git status --porcelain -- Sources Package.swift 2>/dev/null)" ] || echo ' + uncommitted changes in Sources'), $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  swift package --package-path "$here" --allow-writing-to-package-directory \
    benchmark "${args[@]}" "$@" 2>&1
} | tee "$here/.results/latest.txt"
