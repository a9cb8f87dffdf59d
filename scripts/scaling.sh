#!/usr/bin/env bash
# Scaling run (issue 22): imgaudit scan throughput of a disk view and of
# memory views on 1, 2, 4, 8, 16... cores, as a table.
#
#   scripts/scaling.sh [CORES...]        default: 1 2 4 8 16, capped at nproc
#
# Inputs are written here, without a hypervisor or the network, by
# internal/benchdata's genbench: a raw disk image (SCALING_DISK_MB, default
# 2048) of /usr files, text and random bytes, and memory dumps of
# SCALING_MEM_MB (default 1024) of guest RAM: an ELF core (stored pages) and
# a kdump file (zlib pages). Each scan runs with --workers N under
# GOMAXPROCS=N (and taskset on the first N CPUs where taskset exists), page
# cache warm, SCALING_RUNS times (default 3) interleaved over core counts
# and inputs; the table gives the medians, in MiB/s of the file's bytes for
# the disk, of guest RAM for the dumps, with the speed-up over 1 core, and
# cat of each file (one core) as the baseline.
#
# Binaries: bin/imgaudit and bin/genbench when both exist (a machine without
# Go or its module cache: build them elsewhere with `make scaling-bins` and
# bring bin/ along), else both are built here with go. SCALING_DIR keeps the
# inputs there between runs (default: a temporary directory, removed).
# Takes about 1.5 GB of disk per GiB of input and, on 16 cores, about 2-4
# minutes in all.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/timing.sh
. scripts/timing.sh

ncpu=$(nproc)
cores=("$@")
[ ${#cores[@]} -gt 0 ] || cores=(1 2 4 8 16)
use=()
for c in "${cores[@]}"; do
  if [ "$c" -le "$ncpu" ]; then use+=("$c"); else echo "skipping $c cores: this machine has $ncpu"; fi
done
[ ${#use[@]} -gt 0 ] || { echo "no core count fits this machine ($ncpu cores)" >&2; exit 2; }
disk_mb=${SCALING_DISK_MB:-2048}
mem_mb=${SCALING_MEM_MB:-1024}
runs=${SCALING_RUNS:-3}

dir=${SCALING_DIR:-}
if [ -z "$dir" ]; then
  dir=$(mktemp -d)
  trap 'rm -rf "$dir"' EXIT
fi
mkdir -p "$dir"

t0=$(now)
if [ -x bin/imgaudit ] && [ -x bin/genbench ]; then
  bin=bin/imgaudit gen=bin/genbench
  echo "binaries: prebuilt bin/imgaudit ($(bin/imgaudit version)) and bin/genbench"
else
  command -v go > /dev/null || { echo "no go, and no prebuilt bin/imgaudit and bin/genbench: run make scaling-bins elsewhere and bring bin/" >&2; exit 2; }
  bin=$dir/imgaudit gen=$dir/genbench
  CGO_ENABLED=0 go build -trimpath -o "$bin" ./cmd/imgaudit
  CGO_ENABLED=0 go build -trimpath -o "$gen" ./internal/benchdata/cmd/genbench
  echo "binaries: built here with $(go version | cut -d' ' -f3)"
fi

# inputs: name, file, genbench kind, MiB, and which bytes the rate counts.
names=(disk elf kdump)
declare -A file kind size what
file[disk]=$dir/disk.raw kind[disk]=raw size[disk]=$disk_mb what[disk]="raw disk image, ${disk_mb} MiB (disk view)"
file[elf]=$dir/mem.elf kind[elf]=elf size[elf]=$mem_mb what[elf]="ELF core, ${mem_mb} MiB of RAM (memory view, stored pages)"
file[kdump]=$dir/mem.kdump kind[kdump]=kdump size[kdump]=$mem_mb what[kdump]="kdump -z, ${mem_mb} MiB of RAM (memory view, zlib pages)"
for n in "${names[@]}"; do
  f=${file[$n]}
  if [ ! -s "$f" ] || [ "$(cat "$f.mb" 2> /dev/null)" != "${size[$n]}" ]; then
    "$gen" "${kind[$n]}" "${size[$n]}" "$f"
    echo "${size[$n]}" > "$f.mb"
  fi
done
echo "inputs ready in $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s: $(du -sh "$dir" | cut -f1) in $dir"

# times[input.cores] and cats[input] hold each run's seconds, space-separated.
declare -A times cats
scan() {
  local c=$1 f=$2 cpus
  cpus=$(( c - 1 ))
  if command -v taskset > /dev/null; then
    seconds taskset -c "0-$cpus" env GOMAXPROCS="$c" "$bin" scan --no-progress --workers "$c" --format json --fail-on none "$f"
  else
    seconds env GOMAXPROCS="$c" "$bin" scan --no-progress --workers "$c" --format json --fail-on none "$f"
  fi
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for n in "${names[@]}"; do cat "${file[$n]}" > /dev/null; done
for run in $(seq "$runs"); do
  for n in "${names[@]}"; do
    cats[$n]+="$(seconds cat "${file[$n]}") "
    for c in "${use[@]}"; do
      times[$n.$c]+="$(scan "$c" "${file[$n]}") "
    done
  done
  echo "run $run of $runs done ($(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s)"
done

med() { tr ' ' '\n' <<< "$1" | grep . | median; }
echo
echo "== imgaudit scan throughput by cores: medians of $runs interleaved runs, page cache warm"
echo "machine: $ncpu CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'); load average $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after; $(if command -v taskset > /dev/null; then echo "taskset and GOMAXPROCS"; else echo "GOMAXPROCS only (no taskset)"; fi)"
for n in "${names[@]}"; do
  echo "  $n: ${what[$n]}: file $(( $(stat -c %s "${file[$n]}") / 1048576 )) MiB, cat $(mbps "$(stat -c %s "${file[$n]}")" "$(med "${cats[$n]}")") MiB/s"
done
printf '\n| cores |'
for n in "${names[@]}"; do printf ' %s MiB/s (speed-up) |' "$n"; done
printf '\n|---:|'
for n in "${names[@]}"; do printf -- '---:|'; done
printf '\n'
for c in "${use[@]}"; do
  printf '| %s |' "$c"
  for n in "${names[@]}"; do
    bytes=$(( ${size[$n]} * 1048576 ))
    t1=$(med "${times[$n.${use[0]}]}")
    t=$(med "${times[$n.$c]}")
    printf ' %s (%s) |' "$(mbps "$bytes" "$t")" "$(awk -v a="$t1" -v b="$t" 'BEGIN { printf "%.1fx", a / b }')"
  done
  printf '\n'
done
echo
echo "(rates of guest bytes: the raw image's, the dumps' RAM; speed-up against ${use[0]} core(s); $(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.0f", b - a }') s in all)"
