# Timing helpers shared by scripts/bench.sh and scripts/scaling.sh (sourced).

now() { date +%s.%N; }

# mbps BYTES SECONDS: MiB per second, rounded.
mbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }

# median [VALUES...]: the median of the numbers given, or of those on
# standard input (one a line) when none are given.
median() {
  if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# seconds CMD...: runs CMD with its output discarded and prints the
# wall-clock seconds it took; fails, showing CMD's errors, if CMD fails.
seconds() {
  local t0 t1 err
  err=$(mktemp)
  t0=$(now)
  if ! "$@" > /dev/null 2> "$err"; then
    echo "failed: $*" >&2
    cat "$err" >&2
    rm -f "$err"
    return 1
  fi
  t1=$(now)
  rm -f "$err"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }'
}

# pct A B: A as a percentage of B, rounded.
pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.0f", 100 * a / b }'; }
