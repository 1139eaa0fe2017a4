#!/usr/bin/env bash
# Runs the C ceiling and the Swift engine (tally-bench) side by side, in one
# run on one machine, and reports tally's throughput as a % of the ceiling.
#
# Env:
#   REPEAT=3            runs per engine per scenario (median is reported)
#   SCENARIOS="a:e:b …" accounts:entries:batch, space separated
#   QUICK=1             small scenarios, REPEAT=1 (explicit REPEAT/SCENARIOS win)
#   TALLY_BENCH=path    use this tally-bench binary instead of building it
set -euo pipefail
shopt -s inherit_errexit  # a failing bench inside $(...) must stop the run

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

if [ "${QUICK:-0}" = "1" ]; then
  default_scenarios="10000:100000:10000 10000:500:1"
  default_repeat=1
else
  default_scenarios="10000:1000000:10000 10000:200000:100 10000:3000:1 1000000:1000000:10000"
  default_repeat=3
fi
SCENARIOS="${SCENARIOS:-$default_scenarios}"
REPEAT="${REPEAT:-$default_repeat}"

# Validate up front so a typo fails before minutes of building.
[[ "$REPEAT" =~ ^[1-9][0-9]*$ ]] || { echo "compare.sh: REPEAT must be a positive integer" >&2; exit 1; }
for s in $SCENARIOS; do
  [[ "$s" =~ ^[0-9]+:[0-9]+:[0-9]+$ ]] || { echo "compare.sh: bad scenario '$s' (want accounts:entries:batch)" >&2; exit 1; }
done

BENCH=".build-bench"      # repo-relative, gitignored (.build-*/)
DATA="$BENCH/data"        # same filesystem as the repo: real fsyncs
mkdir -p "$DATA"
# Never leave multi-GB ledgers behind, even on failure or Ctrl-C.
cleanup() { rm -rf "$DATA"/run-*; }
trap cleanup EXIT

# (i) System libraries + the ceiling binary.
tools/setup
echo "compare.sh: compiling ceiling" >&2
gcc -std=c11 -O2 -Wall -Wextra $(pkg-config --cflags lmdb libcrypto) \
  tools/ceiling/ceiling.c -o "$BENCH/ceiling" $(pkg-config --libs lmdb libcrypto)
CEILING="$BENCH/ceiling"

# (ii) The Swift engine bench tool, release build.
if [ -n "${TALLY_BENCH:-}" ]; then
  TALLY="$TALLY_BENCH"
else
  echo "compare.sh: swift build -c release --product tally-bench" >&2
  swift build -c release --product tally-bench >&2
  TALLY="$(swift build -c release --show-bin-path)/tally-bench"
fi
[ -x "$TALLY" ] || { echo "compare.sh: $TALLY is not executable" >&2; exit 1; }

# Header facts that decide how to read the numbers.
cpu_model="$(awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo 2>/dev/null || true)"
[ -n "$cpu_model" ] || cpu_model="$(lscpu 2>/dev/null | awk -F': +' '/Model name/{print $2; exit}')"
fs_line="$(df -PT "$DATA" | awk 'NR==2{print $2 " (" $1 ", mounted on " $7 ")"}')"
fs_type="${fs_line%% *}"
if rev="$(git rev-parse --short HEAD 2>/dev/null)"; then
  git_rev="$rev"
  git diff --quiet HEAD 2>/dev/null || git_rev="$rev (dirty)"
else
  git_rev="no commit"
fi
stamp="$(date -u +%Y%m%dT%H%M%SZ)"
REPORT="$BENCH/compare-$stamp.md"

# Runs one engine once in a fresh directory; prints its JSON line.
run_one() {
  local bin="$1" tag="$2" a="$3" e="$4" b="$5" dir out json
  dir="$DATA/run-$tag-$a-$e-$b-$$"
  rm -rf "$dir"
  out="$("$bin" --dir "$dir" --accounts "$a" --entries "$e" --batch "$b")"
  rm -rf "$dir"
  json="$(printf '%s\n' "$out" | grep '^{' | tail -n 1 || true)"
  [[ "$json" == *'"entries_per_sec":'* ]] || { echo "compare.sh: $tag printed no JSON line" >&2; exit 1; }
  printf '%s\n' "$json"
}

rate_of() { sed -n 's/.*"entries_per_sec":\([0-9][0-9]*\).*/\1/p' <<<"$1"; }

# Median of the numbers on stdin (mean of the middle two when even).
median() {
  sort -n | awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf "%d\n", (v[NR/2]+v[NR/2+1])/2 }'
}

rows=()
raw=()
for s in $SCENARIOS; do
  IFS=: read -r a e b <<<"$s"
  c_rates=()
  t_rates=()
  # (iii) Alternate engines so drift (page cache, thermal, neighbours) hits both.
  for ((r = 1; r <= REPEAT; r++)); do
    echo "compare.sh: $s run $r/$REPEAT: ceiling" >&2
    j="$(run_one "$CEILING" ceiling "$a" "$e" "$b")"; raw+=("$j"); c_rates+=("$(rate_of "$j")")
    echo "compare.sh: $s run $r/$REPEAT: tally" >&2
    j="$(run_one "$TALLY" tally "$a" "$e" "$b")"; raw+=("$j"); t_rates+=("$(rate_of "$j")")
  done
  c_med="$(printf '%s\n' "${c_rates[@]}" | median)"
  t_med="$(printf '%s\n' "${t_rates[@]}" | median)"
  ratio="$(awk -v t="$t_med" -v c="$c_med" 'BEGIN{ if (c > 0) printf "%.1f", 100 * t / c; else print "n/a" }')"
  rows+=("| $s | $c_med | $t_med | $ratio |")
done

{
  echo "# Tally vs C ceiling — $stamp"
  echo
  echo "- host: $(uname -srm), nproc $(nproc), CPU: ${cpu_model:-unknown}"
  echo "- data dir: $DATA on $fs_line"
  if [ "$fs_type" = "tmpfs" ]; then
    echo "- WARNING: data dir is on tmpfs; fsync is free, numbers do not reflect durable commits"
  fi
  echo "- git: $git_rev"
  echo "- repeat: $REPEAT per engine (median reported), runs alternate ceiling/tally"
  echo
  echo "| scenario (accounts:entries:batch) | ceiling entries/s | tally entries/s | ratio % |"
  echo "|---|---:|---:|---:|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Raw results:"
  echo
  echo '```'
  printf '%s\n' "${raw[@]}"
  echo '```'
} | tee "$REPORT"
echo "compare.sh: report written to $REPORT" >&2
