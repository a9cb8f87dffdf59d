#!/usr/bin/env bash
# make bench: every throughput figure is printed next to a baseline measured
# in the same run on the same data, so the ratios survive noisy machines.
# It ends with a summary table in Markdown, with the date and the machine:
# the README's performance table is that table, pasted.
#
# Knobs (environment): BENCH_MB and E2E_MB (raw image sizes), WARM_RUNS,
# BENCH_FS=0 (no ext4 and XFS images), XFS_COPIES, BENCHTIME,
# LAYER_BENCH_MB, MEM_BENCH_MB, MEM_BENCH_RUNS.
set -euo pipefail
cd "$(dirname "$0")/.."
BENCH_MB=${BENCH_MB:-256}
tmp=$(mktemp -d)
# (set -e holds in the trap: an umount of nothing mounted must not stop it
# before the rm, nor fail the run.)
trap 'umount "$tmp/xfsmnt" 2>/dev/null || true; rm -rf "$tmp"' EXIT

# The summary: one Markdown row per figure, printed at the end.
summary=()
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%Y-%m-%dT%H:%MZ)
# range VALUES...: "min–max" of the numbers, or the one number.
range() { printf '%s\n' "$@" | sort -n | awk 'NR == 1 { lo = $1 } { hi = $1 } END { print (lo == hi ? lo : lo "–" hi) }'; }

# Built as make build builds it: static.
CGO_ENABLED=0 go build -trimpath -o "$tmp/imgaudit" ./cmd/imgaudit
# aeskeyfind and rsakeyfind are the baselines for the memory-key search
# (make test installs aeskeyfind too: detectors/structural compares its
# recall with aeskeyfind's); libdeflate's gunzip is the floor of what
# decoding costs (bench-decode.sh falls back to GNU gzip, about three
# times slower, which is no floor).
for pair in aeskeyfind:aeskeyfind rsakeyfind:rsakeyfind libdeflate-gunzip:libdeflate-tools; do
  tool=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$tool" >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$pkg") >/dev/null || true
  fi
done

# shellcheck source=scripts/timing.sh
. scripts/timing.sh

# measure IMG LABEL: imgaudit scan of IMG vs cat of the same file, page cache
# warm, then cold (dropping the cache needs root; skipped elsewhere). The
# raw scan's speed: --no-decode (what decoding adds is measured on its own,
# by scripts/bench-decode.sh).
measure() {
  local img=$1 label=$2 bytes t0 t1 cat_mb scan_mb
  local cats=() scans=() cold=() cold_cats=() cold_scans=()
  echo "== end to end: imgaudit scan of ${label} vs cat (same file, same run)"
  bytes=$(stat -c %s "$img")
  cat "$img" > /dev/null
  # Single runs swing by 20 points on a shared machine: the median of the
  # interleaved runs is the figure to quote.
  local ratios=()
  for run in $(seq "${WARM_RUNS:-7}"); do
    t0=$(now); cat "$img" > /dev/null; t1=$(now)
    cat_mb=$(mbps "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    t0=$(now); "$tmp/imgaudit" scan --no-decode --no-progress --format json --fail-on none "$img" > "$tmp/report.json"; t1=$(now)
    scan_mb=$(mbps "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    ratios+=("$(awk -v a="$scan_mb" -v b="$cat_mb" 'BEGIN { printf "%.0f", 100 * a / b }')")
    cats+=("$cat_mb"); scans+=("$scan_mb")
    echo "warm, run $run: cat ${cat_mb} MB/s, imgaudit scan ${scan_mb} MB/s (${ratios[-1]}% of cat, $(nproc) cores)"
  done
  echo "warm, median of ${#ratios[@]} runs: $(median "${ratios[@]}")% of cat"
  summary+=("| \`imgaudit scan\` of ${label}, page cache warm | $(range "${scans[@]}") MB/s; median of ${#ratios[@]} runs $(median "${ratios[@]}") % of \`cat\` (single runs $(range "${ratios[@]}") %) | \`cat\`: $(range "${cats[@]}") MB/s |")
  for run in 1 2 3; do
    sync && echo 3 2>/dev/null > /proc/sys/vm/drop_caches || { echo "cold: skipped (cannot drop the page cache)"; break; }
    t0=$(now); cat "$img" > /dev/null; t1=$(now)
    cat_mb=$(mbps "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    echo 3 > /proc/sys/vm/drop_caches
    t0=$(now); "$tmp/imgaudit" scan --no-decode --no-progress --format json --fail-on none "$img" > "$tmp/report.json"; t1=$(now)
    scan_mb=$(mbps "$bytes" "$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')")
    cold+=("$(awk -v a="$scan_mb" -v b="$cat_mb" 'BEGIN { printf "%.0f", 100 * a / b }')")
    cold_cats+=("$cat_mb"); cold_scans+=("$scan_mb")
    echo "cold, run $run: cat ${cat_mb} MB/s, imgaudit scan ${scan_mb} MB/s (${cold[-1]}% of cat)"
  done
  if [ ${#cold[@]} -gt 0 ]; then
    summary+=("| the same, page cache cold | $(range "${cold_scans[@]}") MB/s ($(range "${cold[@]}") % of \`cat\`) | \`cat\`: $(range "${cold_cats[@]}") MB/s |")
  fi
  echo
}

# e2e MB: an MB MiB raw image of mixed content: executables, text and
# random bytes, like a real disk, but with no filesystem. Start-up (about 10
# ms with the rules' first use) weighs on small images, so two sizes run.
e2e() {
  local mb=$1 img="$tmp/mixed.raw"
  : > "$img"
  while [ "$(stat -c %s "$img")" -lt $(( mb * 1048576 )) ]; do
    cat "$tmp/imgaudit" >> "$img"
    find /usr/share/doc -name '*.gz' -size -200k 2>/dev/null | head -200 | xargs -r zcat 2>/dev/null | head -c 8388608 >> "$img" || true
    head -c 8388608 /dev/urandom >> "$img"
  done
  truncate -s $(( mb * 1048576 )) "$img"
  measure "$img" "a ${mb} MiB raw image"
  rm -f "$img"
}
for mb in ${E2E_MB:-$BENCH_MB 1024}; do
  e2e "$mb"
done

# xfs_image SRC MB: an XFS filesystem holding XFS_COPIES (4) copies of the
# tree SRC (MB MiB), as a loop mount fills it (mkfs.xfs has no -d), in a
# fully allocated raw image of several GB. Needs root for the mount.
xfs_image() {
  local src=$1 used=$2 copies=${XFS_COPIES:-4} mnt="$tmp/xfsmnt"
  if ! command -v mkfs.xfs >/dev/null || [ "$(id -u)" != 0 ]; then
    echo "== XFS image: skipped (needs mkfs.xfs and root for a loop mount)"; echo
    return
  fi
  truncate -s $(( used * copies * 13 / 10 + 320 ))M "$tmp/xfs.raw"
  mkfs.xfs -q -f "$tmp/xfs.raw" && mkdir -p "$mnt"
  if ! mount -o loop "$tmp/xfs.raw" "$mnt" 2>/dev/null; then
    echo "== XFS image: skipped (loop mount failed)"; echo
    rm -f "$tmp/xfs.raw"
    return
  fi
  for i in $(seq "$copies"); do cp -a "$src" "$mnt/copy$i"; done
  umount "$mnt"
  cp --sparse=never "$tmp/xfs.raw" "$tmp/xfs.full" && mv "$tmp/xfs.full" "$tmp/xfs.raw"
  measure "$tmp/xfs.raw" "a $(( $(stat -c %s "$tmp/xfs.raw") / 1048576 )) MiB XFS image of $copies copies of the same tree"
  rm -f "$tmp/xfs.raw"
}

# An ext4 filesystem of this machine's /usr/bin, /usr/share/doc and
# /usr/lib/python3*, as mkfs.ext4 -d writes it, in a fully allocated raw
# image: findings get partitions, paths and block states, which walks the
# directory tree.
if [ "${BENCH_FS:-1}" = 1 ] && command -v mkfs.ext4 >/dev/null; then
  src="$tmp/ext4src"
  mkdir -p "$src"
  for d in /usr/bin /usr/share/doc /usr/lib/python3*; do
    [ -d "$d" ] && cp -a "$d" "$src/$(basename "$d")" 2>/dev/null || true
  done
  used=$(du -sm "$src" | awk '{print $1}')
  truncate -s $(( used * 13 / 10 + 64 ))M "$tmp/ext4.sparse"
  if mkfs.ext4 -q -F -d "$src" "$tmp/ext4.sparse" 2>/dev/null; then
    cp --sparse=never "$tmp/ext4.sparse" "$tmp/ext4.raw"
    rm -f "$tmp/ext4.sparse"
    measure "$tmp/ext4.raw" "a $(( $(stat -c %s "$tmp/ext4.raw") / 1048576 )) MiB ext4 image of /usr/bin, /usr/share/doc and Python"
    out=$(DECODE_SRC="$src" scripts/bench-decode.sh "$tmp/imgaudit" "$tmp/ext4.raw")
    echo "$out" | grep -v '^|'
    summary+=("$(echo "$out" | grep '^|')")
    echo
    out=$(scripts/bench-tarball.sh "$tmp/imgaudit" "$tmp/ext4.raw")
    echo "$out" | grep -v '^|'
    summary+=("$(echo "$out" | grep '^|')")
    echo
    rm -f "$tmp/ext4.raw"
  else
    echo "== ext4 image: skipped (mkfs.ext4 -d failed)"; echo
    rm -f "$tmp/ext4.sparse"
  fi
  xfs_image "$src" "$used"
  rm -rf "$src"
fi

# Decoding on real Debian installs, whose package records let imgaudit
# leave the packages' own compressed files undecoded: make precision's
# images, when its cache holds them (make bench does not build them: a
# debootstrap takes minutes).
for name in minbase server; do
  img=.cache/precision/$name.qcow2
  [ -f "$img" ] || continue
  out=$(scripts/bench-decode.sh "$tmp/imgaudit" "$img" "make precision's Debian 12 $name install ($(( $(stat -c %s "$img") / 1048576 )) MiB qcow2)")
  echo "$out" | grep -v '^|'
  summary+=("$(echo "$out" | grep '^|')")
  echo
done

# bench_rows PKG: summary rows of go benchmark lines on stdin: each
# benchmark's MB/s (or other metrics) beside the package's baseline
# (a benchmark named Baseline, Raw or raw-) of the same run.
bench_rows() {
  awk -v pkg="$1" '
    /^Benchmark/ {
      name = $1; sub(/^Benchmark/, "", name); sub(/-[0-9]+$/, "", name)
      # name, iterations, then value-unit pairs; ns/op only where no
      # MB/s says more.
      fig = ""; ns = ""
      for (i = 3; i < NF; i += 2) {
        v = $i; u = $(i + 1)
        if (u == "ns/op") { ns = sprintf("%.3g ms/op", v / 1e6); continue }
        if (u == "MB/s") v = sprintf("%.0f", v)
        fig = fig (fig == "" ? "" : ", ") v " " u
      }
      if (fig !~ /MB\/s/) fig = ns (fig == "" ? "" : ", " fig)
      if (name ~ /Baseline|Raw|raw-/) { base = base (base == "" ? "" : "; ") name ": " fig; next }
      n++; names[n] = name; figs[n] = fig
    }
    END { for (i = 1; i <= n; i++) printf "| `%s` %s | %s | %s |\n", pkg, names[i], figs[i], base }'
}

# Memory views on one core and on all: scripts/memviews.sh.
scripts/memviews.sh "$tmp/imgaudit"

run_bench() {
  local pkg=$1 pattern=$2 out
  if [ -d "$pkg" ] && ls "$pkg"/*_test.go >/dev/null 2>&1 && grep -q "^func Benchmark" "$pkg"/*_test.go; then
    echo "== go test -bench '$pattern' ./$pkg"
    out=$(go test -run '^$' -bench "$pattern" -benchtime "${BENCHTIME:-3x}" "./$pkg" | grep -E '^(Benchmark|ok|FAIL)' || true)
    echo "$out"
    echo
    while IFS= read -r row; do summary+=("$row"); done < <(echo "$out" | bench_rows "$pkg")
  fi
}
run_bench formats/qcow2 .
run_bench detectors .
run_bench detectors/structural .
run_bench formats/vmdk .
run_bench formats/vhdx .
run_bench formats/memory/qemustream .
run_bench formats/vhd .
run_bench formats/vdi .
run_bench formats/parallels .
run_bench formats/qed .
run_bench formats/vma .
echo "== registry: scanning a ${LAYER_BENCH_MB:-1024} MiB gzip layer vs gzip -dc of it, same run"
out=$(IMGAUDIT_BENCH_MB=${LAYER_BENCH_MB:-1024} go test -run '^$' -bench LayerVsGzip -benchtime 1x -timeout 30m ./registry | grep -E '^(Benchmark|ok|FAIL)|ratio|gzip' || true)
echo "$out"
echo
summary+=("$(echo "$out" | awk -v mb="${LAYER_BENCH_MB:-1024}" '/^Benchmark/ { for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i }
  END { if ("imgaudit-MB/s" in m) printf "| a %s MiB gzip container layer (`registry`) | %.0f MB/s | `gzip -dc`: %.0f MB/s (time ratio %.2f) |", mb, m["imgaudit-MB/s"], m["gzip-dc-MB/s"], m["time-ratio"] }')")
echo "== memory key search: imgaudit scan vs aeskeyfind and rsakeyfind on a ${MEM_BENCH_MB:-128} MiB dump-guest-memory ELF of /usr bytes, same file, interleaved runs"
out=$(IMGAUDIT_BIN="$tmp/imgaudit" IMGAUDIT_BENCH_MB=${MEM_BENCH_MB:-128} IMGAUDIT_BENCH_RUNS=${MEM_BENCH_RUNS:-5} \
  go test -run '^$' -bench MemoryKeySearch -benchtime 1x -timeout 30m ./formats/memory | grep -E '^(Benchmark|ok|FAIL)|memory key search' | sed 's/^ *bench_keys_test.go:[0-9]*: //' || true)
echo "$out"
echo
summary+=("$(echo "$out" | awk -v mb="${MEM_BENCH_MB:-128}" '/^Benchmark/ { for (i = 3; i < NF; i += 2) m[$(i + 1)] = $i }
  END { if ("x-aeskeyfind" in m) printf "| memory key search: `imgaudit scan` of a %s MiB `dump-guest-memory` ELF with planted AES and RSA keys (wall time, medians) | every rule: %.1fx faster than `aeskeyfind -q`, %.1fx faster than `rsakeyfind`; the same search (`--enable-rule aes-key-schedule`, `--enable-rule rsa-private-key-der`): %.1fx and %.1fx; the search alone %.0f MB/s on one core | `aeskeyfind`, `rsakeyfind` on the same file, interleaved |", mb, m["x-aeskeyfind"], m["x-rsakeyfind"], m["x-aeskeyfind-same-search"], m["x-rsakeyfind-same-search"], m["MB/s-search-1core"] }')")
echo "(MB/s columns come from b.SetBytes; compare each to the Baseline/Raw line printed beside it)"
echo

# The summary, in Markdown: the README's performance table.
cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
echo "== summary"
echo
echo "\`make bench\` of $(git describe --tags --always --dirty 2>/dev/null || echo unknown), ${started} to $(date -u +%H:%MZ), on ${cpu:-$(uname -m)}, $(nproc) cores, $(free -g 2>/dev/null | awk '/^Mem:/ { print $2 " GiB" }'), $(go env GOVERSION); load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end."
echo
echo "| what | imgaudit | same-run baseline |"
echo "|---|---|---|"
for row in "${summary[@]}"; do
  [ -n "$row" ] && echo "$row"
done
