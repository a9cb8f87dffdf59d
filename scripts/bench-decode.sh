#!/usr/bin/env bash
# bench-decode.sh IMGAUDIT IMAGE [LABEL]: what decoding compressed and
# archived content costs, as make bench measures it on its ext4 image of
# /usr (its /usr/share/doc is full of .gz files, and it has no package
# records) and on make precision's Debian installs when they are cached
# (LABEL names the image in the summary row; default "the ext4 image"):
# `imgaudit scan --no-decode` and
# `imgaudit scan` of the same image, page cache warm, runs interleaved
# (DECODE_RUNS, default 7), medians of wall and CPU time (user + system),
# and what the decoding read; its lines that start with "|" are rows of
# make bench's summary table. With DECODE_SRC (the directory the image
# was made from) it also times inflating the tree's distinct .gz files
# alone, the floor of what decoding can cost, in a row of its own.
set -euo pipefail
bin=$1 img=$2 label=${3:-the ext4 image} runs=${DECODE_RUNS:-7}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
cat "$img" > /dev/null
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
run() { # run NAME FLAGS...: appends "wall cpu" to $out/NAME
  local name=$1; shift
  /usr/bin/time -f '%e %U %S' -o "$out/t" "$bin" scan "$@" --no-progress --format json --fail-on none "$img" > "$out/$name.json" 2>/dev/null || true
  awk '{ printf "%s %.2f\n", $1, $2 + $3 }' "$out/t" >> "$out/$name"
}
for i in $(seq "$runs"); do
  run raw --no-decode
  run decode
done
echo "== decoding: imgaudit scan vs --no-decode of $(basename "$img") ($(( $(stat -c %s "$img") / 1048576 )) MiB), $runs interleaved runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
for name in raw decode; do
  mapfile -t walls < <(awk '{ print $1 }' "$out/$name")
  mapfile -t cpus < <(awk '{ print $2 }' "$out/$name")
  echo "$name: wall ${walls[*]} s (median $(median "${walls[@]}")), cpu ${cpus[*]} s (median $(median "${cpus[@]}"))"
done
mapfile -t rw < <(paste "$out/raw" "$out/decode" | awk '{ printf "%.2f\n", $3 / $1 }')
mapfile -t rc < <(paste "$out/raw" "$out/decode" | awk '{ printf "%.2f\n", $4 / $2 }')
echo "decode / no-decode, median of the per-run ratios: wall $(median "${rw[@]}"), cpu $(median "${rc[@]}")"
python3 - "$out/decode.json" <<'PY' 2>/dev/null || true
import json, sys
r = json.load(open(sys.argv[1]))
for t in r["targets"]:
    for v in t["views"]:
        d = v.get("decoding")
        if d:
            print(f"{v['id']}: {d['containers']} containers decoded, {d['leaves']} leaves, {d['decoded_bytes'] / 1e6:.0f} MB decoded, {d.get('unmodified_package_files', 0)} unmodified package files not decoded, skipped {d.get('skipped', {})}")
PY
# The floor, when the image's source tree is at hand (DECODE_SRC): what
# inflating its distinct .gz files alone costs libdeflate (or GNU gzip),
# the same run: decoding cannot cost less than that.
if [ -n "${DECODE_SRC:-}" ] && [ -d "$DECODE_SRC" ]; then
  find "$DECODE_SRC" -type f -name '*.gz' -print0 | xargs -0 -r sha256sum | sort -u -k1,1 | cut -c67- | tr '\n' '\0' > "$out/gz"
  gunzip=$(command -v libdeflate-gunzip || command -v gzip)
  for i in $(seq "$runs"); do
    /usr/bin/time -f '%U %S' -o "$out/t" xargs -0 -r "$gunzip" -dc < "$out/gz" > /dev/null 2>&1 || true
    awk '{ printf "%.2f\n", $1 + $2 }' "$out/t" >> "$out/floor"
  done
  mapfile -t fc < <(cat "$out/floor")
  mapfile -t nc0 < <(awk '{ print $2 }' "$out/raw")
  nfiles=$(tr -cd '\0' < "$out/gz" | wc -c)
  ratio=$(awk -v a="$(median "${fc[@]}")" -v b="$(median "${nc0[@]}")" 'BEGIN { printf "%.2f", a / b }')
  echo "floor: $(basename "$gunzip") -dc of the $nfiles distinct .gz files of the image's tree: cpu ${fc[*]} s (median $(median "${fc[@]}")), ${ratio}× the --no-decode scan's CPU"
  floor_row="| inflating alone, the floor of what decoding costs: \`$(basename "$gunzip") -dc\` of the $nfiles distinct \`.gz\` files of $label's tree, $runs runs | CPU median $(median "${fc[@]}") s: ${ratio}× the \`--no-decode\` scan's CPU | \`--no-decode\`: CPU median $(median "${nc0[@]}") s |"
fi
mapfile -t dw < <(awk '{ print $1 }' "$out/decode")
mapfile -t dc < <(awk '{ print $2 }' "$out/decode")
mapfile -t nw < <(awk '{ print $1 }' "$out/raw")
mapfile -t nc < <(awk '{ print $2 }' "$out/raw")
echo "| \`imgaudit scan\` of $label with decoding (the default), page cache warm, $runs runs interleaved with \`--no-decode\` | CPU median $(median "${dc[@]}") s, wall median $(median "${dw[@]}") s: $(median "${rc[@]}")× the CPU, $(median "${rw[@]}")× the wall time | \`--no-decode\`: CPU median $(median "${nc[@]}") s, wall median $(median "${nw[@]}") s |"
[ -z "${floor_row:-}" ] || echo "$floor_row"
