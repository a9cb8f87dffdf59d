#!/usr/bin/env bash
# Memory-view throughput on one core and on all cores, next to cat of the
# same file (make bench runs it; run it alone as scripts/memviews.sh [BIN]):
# an ELF core (stored pages), a kdump file (zlib pages) and a QEMU
# migration stream (plain pages) of MEMVIEW_MB MiB of guest RAM each
# (default 512), written by internal/benchdata's genbench. BIN is the
# imgaudit binary to time (default: built here as make build builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/timing.sh
. scripts/timing.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
bin=${1:-}
if [ -z "$bin" ]; then
  bin="$tmp/imgaudit"
  CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/imgaudit
fi
go build -o "$tmp/genbench" ./internal/benchdata/cmd/genbench

# memview KIND LABEL: scan of the dump on one core (--workers 1,
# GOMAXPROCS=1) and on all of them, in interleaved runs with cat of the
# same file; rates are of the file's bytes, and of the guest RAM they hold.
memview() {
  local kind=$1 label=$2 mb=${MEMVIEW_MB:-512} bytes guest t
  local img="$tmp/memview.$kind"
  "$tmp/genbench" "$kind" "$mb" "$img"
  bytes=$(stat -c %s "$img")
  guest=$(( mb * 1048576 ))
  echo "== memory view: imgaudit scan of ${label}, ${mb} MiB of guest RAM in a $(( bytes / 1048576 )) MiB file, on 1 core and on $(nproc), vs cat (same file, same run)"
  cat "$img" > /dev/null
  local cats=() ones=() alls=()
  for run in $(seq "${MEMVIEW_RUNS:-5}"); do
    t=$(seconds cat "$img"); cats+=("$(mbps "$bytes" "$t")")
    t=$(seconds env GOMAXPROCS=1 "$bin" scan --no-progress --workers 1 --format json --fail-on none "$img"); ones+=("$t")
    t=$(seconds "$bin" scan --no-progress --format json --fail-on none "$img"); alls+=("$t")
    echo "run $run: cat ${cats[-1]} MB/s; imgaudit, 1 core: $(mbps "$bytes" "${ones[-1]}") MB/s of file ($(mbps "$guest" "${ones[-1]}") MB/s of RAM), $(nproc) cores: $(mbps "$bytes" "${alls[-1]}") MB/s of file ($(mbps "$guest" "${alls[-1]}") MB/s of RAM)"
  done
  local c o a
  c=$(printf '%s\n' "${cats[@]}" | median)
  o=$(printf '%s\n' "${ones[@]}" | median)
  a=$(printf '%s\n' "${alls[@]}" | median)
  echo "median of ${#cats[@]}: cat ${c} MB/s; imgaudit 1 core $(mbps "$bytes" "$o") MB/s ($(pct "$(mbps "$bytes" "$o")" "$c")% of cat; $(mbps "$guest" "$o") MB/s of RAM), $(nproc) cores $(mbps "$bytes" "$a") MB/s ($(pct "$(mbps "$bytes" "$a")" "$c")% of cat; $(mbps "$guest" "$a") MB/s of RAM): $(awk -v o="$o" -v a="$a" 'BEGIN { printf "%.2f", o / a }')x the 1-core rate; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  rm -f "$img"
}
memview elf "an ELF core (dump-guest-memory's layout, stored pages)"
memview kdump "a kdump file (dump-guest-memory -z's layout, zlib pages)"
memview stream "a QEMU migration stream (plain pages)"
