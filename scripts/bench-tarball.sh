#!/usr/bin/env bash
# bench-tarball.sh IMGAUDIT IMAGE: what opening a disk shipped as a GCE
# image costs (IMAGE, a raw disk, as `tar --format=oldgnu -Sczf` packs
# it: gzip, a GNU sparse member): `imgaudit scan` of the tarball against
# `gzip -dc` of it (inflating alone) and `imgaudit scan` of the raw image
# itself, page cache warm, runs interleaved (TARBALL_RUNS, default 5),
# wall-time medians; its last line is the row of make bench's summary
# table.
set -euo pipefail
bin=$1 img=$2 runs=${TARBALL_RUNS:-5}
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/timing.sh
. "$here/timing.sh"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp --sparse=always "$img" "$work/disk.raw"
tar --format=oldgnu -Sczf "$work/image.tar.gz" -C "$work" disk.raw
rm -f "$work/disk.raw"
cat "$img" "$work/image.tar.gz" > /dev/null
scan() { "$bin" scan --no-progress --format json --fail-on none "$@"; }
tars=() gzips=() raws=()
for i in $(seq "$runs"); do
  gzips+=("$(seconds gzip -dc "$work/image.tar.gz")")
  tars+=("$(seconds scan "$work/image.tar.gz")")
  raws+=("$(seconds scan "$img")")
done
mb=$(( $(stat -c %s "$work/image.tar.gz") / 1048576 ))
echo "== GCE-style tarball: imgaudit scan of a ${mb} MiB tar -Sczf of $(basename "$img") ($(( $(stat -c %s "$img") / 1048576 )) MiB) vs gzip -dc of it and imgaudit scan of the raw image, $runs interleaved runs, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "imgaudit scan of the tarball: ${tars[*]} s (median $(median "${tars[@]}"))"
echo "gzip -dc of the tarball: ${gzips[*]} s (median $(median "${gzips[@]}"))"
echo "imgaudit scan of the raw image: ${raws[*]} s (median $(median "${raws[@]}"))"
echo "| \`imgaudit scan\` of a GCE-style image: the ext4 image as \`tar --format=oldgnu -Sczf\` packs it (${mb} MiB), page cache warm, $runs runs interleaved | wall median $(median "${tars[@]}") s | \`gzip -dc\` of it: $(median "${gzips[@]}") s; \`imgaudit scan\` of the raw image: $(median "${raws[@]}") s |"
