#!/usr/bin/env bash
# Builds the imgaudit demo: a qcow2 overlay (web01.qcow2) over a qcow2 base
# (base.qcow2), holding a GPT disk with one ext4 partition, in which secrets
# persist in every way imgaudit reports. All secrets are synthetic (freshly
# generated, format-valid, used nowhere).
#
#   live          /etc/ssh/ssh_host_ed25519_key (current host key),
#                 /home/alice/.aws/credentials (AWS key pair; also in
#                 snapshot "golden": live and snapshot)
#   live only     /srv/app/.env (Stripe key): written last, so no
#                 snapshot, backing file or free cluster has it
#   live, backing /etc/gitlab-runner/token (GitLab token): written in
#                 base.qcow2 and never changed, so the current state reads
#                 it through from the backing file
#   deleted       /root/.git-credentials: written, then rm'ed (blocks freed,
#                 not wiped)
#   deleted,      /home/alice/.ssh/id_ecdsa_2023: a file in snapshot
#   snapshot      "golden", rm'ed (not wiped) since: free blocks now
#   snapshot      the previous ed25519 host key: rotated (shredded, removed,
#                 replaced) after internal snapshot "golden" was taken
#   backing       /etc/ssl/private/app.key (RSA): in base.qcow2 only; the
#                 overlay shredded and removed it
#   unreferenced  /root/.ssh/id_ecdsa: existed only while snapshot "tmp"
#                 existed; shredded, then "tmp" was deleted with
#                 pass-discard-snapshot=off, leaving its clusters freed but
#                 not discarded
#
# Usage: make-demo.sh OUTDIR [SECRETSDIR]
# Writes OUTDIR/base.qcow2 and OUTDIR/web01.qcow2. With SECRETSDIR, the
# planted files are kept there, for tests that compute expected fingerprints.
# Needs qemu-img, qemu-io, mkfs.ext4, debugfs, sfdisk, ssh-keygen.
set -euo pipefail

out=${1:?usage: make-demo.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

DISK_MB=24
PART_START=2048            # sectors (1 MiB)
PART_SECTORS=$(( (DISK_MB - 2) * 2048 ))
PART_OFF=$(( PART_START * 512 ))
CHUNK=65536

q() { "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; return 1; }; }

# Synthetic secrets, generated fresh so none is ever real.
sec=${2:-$work/secrets}
mkdir -p "$sec"
sec=$(cd "$sec" && pwd)
ssh-keygen -q -t ed25519 -N '' -C 'root@web01-old' -f "$sec/host_old" 
ssh-keygen -q -t ed25519 -N '' -C 'root@web01' -f "$sec/host_new"
ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -C 'app' -f "$sec/app"
ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -C 'root@web01' -f "$sec/id_ecdsa"
ssh-keygen -q -t ecdsa -b 256 -N '' -C 'alice@laptop-2023' -f "$sec/alice_2023"
rand() { (set +o pipefail; LC_ALL=C tr -dc "$1" </dev/urandom | head -c "$2"); }
aws_id="AKIA$(rand 'A-Z2-7' 16)"
aws_secret="$(rand 'A-Za-z0-9/+' 40)"
git_pass="$(rand 'A-Za-z0-9' 24)"
gitlab_token="glpat-$(rand 'A-Za-z0-9' 20)"
printf '%s\n' "$gitlab_token" > "$sec/gitlab-token"
printf 'STRIPE_API_KEY=sk_live_%s\n' "$(rand 'A-Za-z0-9' 32)" > "$sec/app.env"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = eu-west-1\n' "$aws_id" "$aws_secret" > "$sec/aws_credentials"
printf 'https://deploy:%s@git.corp.internal\n' "$git_pass" > "$sec/git-credentials"

# Root filesystem of the base image.
root="$work/root"
mkdir -p "$root/etc/ssh" "$root/etc/ssl/private" "$root/root/.ssh" "$root/home/alice/.aws" "$root/home/alice/.ssh" "$root/etc/gitlab-runner" "$root/srv/app" "$root/var/log"
echo web01 > "$root/etc/hostname"
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\n' > "$root/etc/ssh/sshd_config"
cp "$sec/app" "$root/etc/ssl/private/app.key"
cp "$sec/gitlab-token" "$root/etc/gitlab-runner/token"
seq 1 20000 | sed 's/^/log line /' > "$root/var/log/syslog"

# disk.raw: GPT with one Linux partition holding ext4.
disk="$work/disk.raw"
truncate -s "${DISK_MB}M" "$disk"
printf 'label: gpt\nstart=%d, size=%d, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="root"\n' "$PART_START" "$PART_SECTORS" | q sfdisk -q "$disk"
fs="$work/fs.img"
q mkfs.ext4 -q -F -b 4096 -E lazy_itable_init=0,lazy_journal_init=0 -U 5f1c2a3b-1111-4222-8333-444455556666 -L root -d "$root" "$fs" "$(( PART_SECTORS / 8 ))"
put_fs() { dd if="$fs" of="$disk" bs=1M seek=$(( PART_OFF / 1048576 )) conv=notrunc,sparse status=none; }
put_fs

# base.qcow2 is the disk as first built.
rm -f "$out/base.qcow2" "$out/web01.qcow2"
q qemu-img convert -f raw -O qcow2 "$disk" "$out/base.qcow2"
cp --sparse=always "$disk" "$work/prev.raw"
q qemu-img create -f qcow2 -F qcow2 -b base.qcow2 "$out/web01.qcow2"

# sync copies into web01.qcow2 every 64 KiB chunk that changed since the
# last sync, the way a running guest's writes would reach the overlay.
sync_overlay() {
  local i cmds=()
  # cmp -l lists every differing byte (1-based offsets, ascending): one
  # pass over the disk instead of three processes per chunk.
  for i in $( { cmp -l "$work/prev.raw" "$disk" || true; } | awk -v c=$CHUNK '{ print int(($1 - 1) / c) }' | uniq); do
    dd if="$disk" of="$work/chunk.$i" bs=$CHUNK skip=$i count=1 status=none
    cmds+=(-c "write -s $work/chunk.$i $(( i * CHUNK )) $CHUNK")
  done
  if [ ${#cmds[@]} -gt 0 ]; then
    q qemu-io -f qcow2 "${cmds[@]}" "$out/web01.qcow2"
    rm -f "$work"/chunk.*
  fi
  cp --sparse=always "$disk" "$work/prev.raw"
}

# debugfs on the partition; shred overwrites a file's blocks before rm, as
# `shred -u` would.
dbg() { q debugfs -w -R "$1" "$fs"; }
shred_rm() {
  local f=$1 b
  for b in $(debugfs -R "blocks $f" "$fs" 2>/dev/null); do dbg "zap_block -p 0x2e $b"; done
  dbg "rm $f"
}

# 1. The overlay removes the app key for good (shredded): only base has it.
#    alice gets AWS credentials; first boot creates the host key.
shred_rm /etc/ssl/private/app.key
dbg "write $sec/aws_credentials /home/alice/.aws/credentials"
dbg "write $sec/alice_2023 /home/alice/.ssh/id_ecdsa_2023"
dbg "write $sec/host_old /etc/ssh/ssh_host_ed25519_key"
dbg "write $sec/host_old.pub /etc/ssh/ssh_host_ed25519_key.pub"
put_fs; sync_overlay

# 2. Snapshot "golden" keeps the old host key; then the key is rotated.
q qemu-img snapshot -c golden "$out/web01.qcow2"
shred_rm /etc/ssh/ssh_host_ed25519_key
dbg "write $sec/host_new /etc/ssh/ssh_host_ed25519_key"
put_fs; sync_overlay

# 3. A key that lived only while snapshot "tmp" existed. After the shred the
#    only copy is in clusters "tmp" holds; deleting "tmp" without discard
#    leaves them freed but intact.
dbg "write $sec/id_ecdsa /root/.ssh/id_ecdsa"
put_fs; sync_overlay
q qemu-img snapshot -c tmp "$out/web01.qcow2"
shred_rm /root/.ssh/id_ecdsa
put_fs; sync_overlay
q qemu-img snapshot --image-opts -d tmp "driver=qcow2,file.filename=$out/web01.qcow2,pass-discard-snapshot=off"

# 4. Root's git credentials are written, then deleted without wiping: the
#    blocks are free but still hold them. alice's 2023 key, a file in
#    "golden", is deleted the same way. The app's Stripe key is written
#    last: only the current state has it. Nothing is written afterwards.
dbg "write $sec/git-credentials /root/.git-credentials"
put_fs; sync_overlay
# Written before the deletions, so that it cannot reuse their blocks.
dbg "write $sec/app.env /srv/app/.env"
dbg "rm /root/.git-credentials"
dbg "rm /home/alice/.ssh/id_ecdsa_2023"
put_fs; sync_overlay

q qemu-img check "$out/web01.qcow2"
echo "demo images written to $out"
