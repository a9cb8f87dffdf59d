#!/usr/bin/env bash
# Installs the Debian tools the test suite drives (real qemu-img, qemu-io,
# qemu-system-x86_64, mkfs.ext4, debugfs, ...), only those that are missing.
# Runs as root on Debian; elsewhere it says what to install and fails.
set -euo pipefail

# command:package pairs
need=(
  qemu-img:qemu-utils
  qemu-io:qemu-utils
  qemu-system-x86_64:qemu-system-x86
  mkfs.ext4:e2fsprogs
  debugfs:e2fsprogs
  jq:jq
  rpm:rpm
  rpmbuild:rpm
  rpmdb:rpm
  sqlite3:sqlite3
  db5.3_load:db5.3-util
  node:nodejs
  npm:npm
  sfdisk:fdisk
  sgdisk:gdisk
  mkfs.vfat:dosfstools
  mcopy:mtools
  xorriso:xorriso
  mksquashfs:squashfs-tools
  mkfs.btrfs:btrfs-progs
  btrfs:btrfs-progs
  mkntfs:ntfs-3g
  ntfs-3g:ntfs-3g
  ntfsls:ntfs-3g
  ntfsinfo:ntfs-3g
  ntfsundelete:ntfs-3g
  zfs-fuse:zfs-fuse
  zpool:zfs-fuse
  ssh-keygen:openssh-client
  puttygen:putty-tools
  gpg:gnupg
  ktutil:krb5-user
  klist:krb5-user
  zstd:zstd
  openssl:openssl
  gcore:gdb
  bzip2:bzip2
  xz:xz-utils
  gzip:gzip
  lz4:lz4
  zip:zip
  tar:tar
  cpio:cpio
  ar:binutils
  objcopy:binutils
  lzop:lzop
  gpgconf:gpgconf
  docker-registry:docker-registry
  dockerd:docker.io
  docker:docker.io
  containerd:containerd
  ctr:containerd
  podman:podman
  mkfs.xfs:xfsprogs
  xfs_db:xfsprogs
  makefs:makefs
  pvcreate:lvm2
  vgcreate:lvm2
  vgcfgbackup:lvm2
  vgcfgrestore:lvm2
  pvs:lvm2
  lvs:lvm2
  thin_restore:thin-provisioning-tools
  thin_dump:thin-provisioning-tools
  cryptsetup:cryptsetup-bin
  losetup:mount
  mount:mount
  fallocate:util-linux
  mkswap:util-linux
  python3:python3
  dpkg:dpkg
  dpkg-deb:dpkg
  dpkg-divert:dpkg
  dpkg-scanpackages:dpkg-dev
  apt-get:apt
  apt-ftparchive:apt-utils
  debconf-set-selections:debconf
  dbconfig-generate-include:dbconfig-common
  md5sum:coreutils
  aeskeyfind:aeskeyfind
  msgfmt:gettext
  gcc:gcc
  mkfifo:coreutils
  chromium:chromium
)

# path:package pairs, for packages that install no command of their own
# (Debian's python3 builds and installs wheels offline with these, and the kdump
# snappy fixture compresses pages with python3-snappy; a python3
# earlier on PATH, such as pyenv's, may lack them).
need_files=(
  /usr/bin/python3:python3
  /usr/bin/pip3:python3-pip
  /usr/lib/python3/dist-packages/setuptools/__init__.py:python3-setuptools
  /usr/lib/python3/dist-packages/wheel/__init__.py:python3-wheel
  /usr/lib/python3/dist-packages/snappy/__init__.py:python3-snappy
  /usr/lib/x86_64-linux-gnu/libgnutls.so.30:libgnutls30
)

missing=()
for pair in "${need[@]}"; do
  cmd=${pair%%:*}; pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ] && [ ! -x "/usr/bin/$cmd" ]; then
    missing+=("$pkg")
  fi
done
for pair in "${need_files[@]}"; do
  file=${pair%%:*}; pkg=${pair#*:}
  if [ ! -e "$file" ]; then
    missing+=("$pkg")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
echo "installing test tools: ${missing[*]}"
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "need root on Debian to install: apt-get install -y ${missing[*]}" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
