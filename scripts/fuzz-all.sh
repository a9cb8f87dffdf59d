#!/usr/bin/env bash
# Runs every Fuzz* target in the module for a short time (default 5s each).
set -euo pipefail
t=${1:-5s}
fail=0
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for fz in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    echo "== $pkg $fz ($t)"
    if ! go test -run '^$' -fuzz "^${fz}\$" -fuzztime "$t" "$pkg"; then fail=1; fi
  done
done
exit $fail
