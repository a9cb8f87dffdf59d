#!/usr/bin/env bash
# make precision: how many false alarms imgaudit raises on clean operating
# system images. A benchmark, not a test: it builds real Debian root
# filesystems with debootstrap (once, cached under .cache/precision/), packs
# each into ext4 in qcow2 with mkfs.ext4 -d and qemu-img, does the same for
# this machine's own /usr (with its dpkg records), boots the server install
# (with Debian's kernel added) in QEMU and dumps its RAM once it is up,
# tars the minbase and server installs as one-layer container images (a
# docker save tarball, read as a registry scan reads layers), scans every
# image with bin/imgaudit and prints, per image, the findings by severity,
# every finding at medium or above with its rule and paths, and the scan
# time.
#
#   scripts/precision.sh            build what is missing, then scan all
#   scripts/precision.sh build      only build the images
#   PRECISION_IMAGES="minbase usr"  scan only these (minbase, server, usr, ram,
#                                   minbase-image, server-image, server-apt:
#                                   the server with its packages in apt's
#                                   cache, node: the server with a Node.js
#                                   application, pnpm: the same installed by
#                                   pnpm, yarn: the same installed by
#                                   yarn 1, berry: the same installed by
#                                   yarn 4, go: the server with a Go
#                                   module cache, infra: the server with
#                                   web, database, mail, DNS, VPN, LDAP and
#                                   other services, after apt-get update;
#                                   ops: the server with Ansible, the AWS
#                                   CLI, Django, OpenJDK, Maven, PHP and
#                                   Ruby, after apt-get update (Debian 13
#                                   only: OpenJDK 21); desktop: the
#                                   server with Xfce, Firefox,
#                                   Thunderbird, LibreOffice and other
#                                   desktop software, after apt-get update;
#                                   and the same of Debian 13
#                                   as trixie-minbase, trixie-server,
#                                   trixie-ram, trixie-server-image,
#                                   trixie-server-apt, trixie-node, trixie-go,
#                                   trixie-infra, trixie-ops, trixie-desktop;
#                                   docker: the server as a Docker host with
#                                   two Debian images in /var/lib/docker;
#                                   containerd: the server as a Kubernetes
#                                   node, its image in /var/lib/containerd)
#   PRECISION_BIN=/tmp/old-imgaudit  scan with another build (a before/after)
#   PRECISION_FLAGS=--no-downgrade   extra scan flags
#
# Needs root (debootstrap, and reading all of /usr), debootstrap, e2fsprogs,
# qemu-utils, qemu-system-x86, python3, jq, npm for the node images, pnpm
# for the pnpm images, yarn and yarn-berry for the yarn images, go
# for the go images, docker.io (dockerd) for the docker images and
# containerd (ctr) for the containerd images. The apt mirror is the one this machine uses; npm's
# registry and the Go module proxy are their own.
set -euo pipefail
cd "$(dirname "$0")/.."
cache=${PRECISION_CACHE:-.cache/precision}
mirror=${PRECISION_MIRROR:-http://deb.debian.org/debian}
images=${PRECISION_IMAGES:-minbase server usr ram minbase-image server-image trixie-minbase trixie-server trixie-ram trixie-server-image trixie-server-apt trixie-node trixie-pnpm trixie-yarn trixie-berry trixie-go trixie-infra trixie-ops trixie-desktop trixie-docker trixie-containerd}
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

# The tools make test does not install (it drives no debootstrap), where
# they are missing, as make test does: as root on Debian; elsewhere the
# step that needs one fails and says which.
for pair in debootstrap:debootstrap; do
  tool=${pair%%:*} pkg=${pair#*:}
  if ! command -v "$tool" >/dev/null && [ ! -x "/usr/sbin/$tool" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $pkg"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$pkg") >/dev/null
  fi
done

# Packages of each root filesystem (on top of debootstrap's own set).
# An image name without a suite is Debian 12 (bookworm), the release this
# machine runs; "trixie-" names Debian 13's, whose Java is 21.
minbase_include=openssh-client,curl,ca-certificates
server_include=openssh-server,nginx,postgresql,python3-pip,openjdk-17-jre-headless,golang-go,git,curl,ca-certificates
trixie_server_include=openssh-server,nginx,postgresql,python3-pip,openjdk-21-jre-headless,golang-go,git,curl,ca-certificates

# suite_of NAME: the Debian suite of image NAME ("trixie-server": trixie).
suite_of() {
  case $1 in trixie-*) echo trixie ;; *) echo bookworm ;; esac
}

# bootstrap NAME VARIANT INCLUDE: a debootstrapped root in $cache/NAME.root,
# made once (the stamp file says it finished), from NAME's suite.
bootstrap() {
  local name=$1 variant=$2 include=$3 root=$cache/$1.root suite
  suite=$(suite_of "$name")
  [ -f "$root.done" ] && return 0
  rm -rf "$root"
  echo "== debootstrap $name ($suite, $variant, --include=$include); several minutes"
  local args=(--include="$include")
  [ "$variant" != default ] && args+=(--variant="$variant")
  debootstrap "${args[@]}" "$suite" "$root" "$mirror" > "$cache/$name.debootstrap.log" 2>&1 || {
    echo "debootstrap $name failed; see $cache/$name.debootstrap.log" >&2; tail -20 "$cache/$name.debootstrap.log" >&2; return 1; }
  # Downloaded .debs are not part of an installed system.
  rm -f "$root"/var/cache/apt/archives/*.deb
  date -u +%FT%TZ > "$root.done"
}

# usr_root: this machine's /usr with the dpkg records that describe it,
# laid out as a root filesystem (usr/, var/lib/dpkg/). Hard links when
# .cache shares /usr's filesystem (no copy; nothing writes through them),
# a copy otherwise.
usr_root() {
  local root=$cache/usr.root
  [ -f "$root.done" ] && return 0
  rm -rf "$root"
  mkdir -p "$root/var/lib"
  echo "== this machine's /usr and /var/lib/dpkg"
  cp -al /usr "$root/usr" 2>/dev/null || { rm -rf "$root/usr"; cp -a /usr "$root/usr"; }
  cp -a /var/lib/dpkg "$root/var/lib/dpkg"
  # The top-level links of merged /usr (/lib -> usr/lib): dpkg records
  # some files under /lib.
  for l in /bin /sbin /lib /lib32 /lib64 /libx32; do
    [ -L "$l" ] && cp -P "$l" "$root$l"
  done
  date -u +%FT%TZ > "$root.done"
}

# vm_root PREFIX: the server install ($cache/PREFIXserver.root) made
# bootable, in $cache/PREFIXvm.root: a copy with Debian's kernel
# (linux-image-amd64, from the same mirror, which the install's apt lists
# name), an fstab and a hostname. The server image itself stays as
# debootstrap made it.
vm_root() {
  local p=$1 root=$cache/$1vm.root
  [ -f "$root.done" ] && [ "$root.done" -nt "$cache/${p}server.root.done" ] && return 0
  rm -rf "$root"
  echo "== the ${p}server install with linux-image-amd64, to boot"
  cp -a "$cache/${p}server.root" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  mount -t proc proc "$root/proc"
  local rc=0
  chroot "$root" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends linux-image-amd64 \
    > "$cache/${p}vm.apt.log" 2>&1 || rc=$?
  umount "$root/proc"
  if [ $rc != 0 ]; then
    echo "installing the kernel failed; see $cache/${p}vm.apt.log" >&2; tail -20 "$cache/${p}vm.apt.log" >&2; return 1
  fi
  rm -f "$root/etc/resolv.conf" "$root"/var/cache/apt/archives/*.deb
  echo "/dev/vda / ext4 defaults 0 1" > "$root/etc/fstab"
  echo precision-vm > "$root/etc/hostname"
  date -u +%FT%TZ > "$root.done"
}

# ram PREFIX: boot $cache/PREFIXvm.qcow2 in QEMU (TCG: the same on every machine; about
# 40 s to the login prompt on 2 cores), with a virtio NIC on user
# networking, wait until the serial console offers a login and 20 s more
# for the services to settle, then pause it and write its RAM four ways:
# dump-guest-memory as an ELF core ($cache/PREFIXram.elf) and as a kdump
# file with zlib pages (PREFIXram.kdump), savevm into the disk (an
# internal snapshot "booted" of PREFIXram-vm.qcow2, whose vm state holds
# the RAM), and a migration stream (PREFIXram.mig). The guest writes to
# PREFIXram-vm.qcow2, an overlay on the cached image, which QEMU opens
# read-only as its backing file.
ram() {
  local p=$1 img=$cache/$1ram.elf dir f
  local kdump=$cache/${p}ram.kdump mig=$cache/${p}ram.mig overlay=$cache/${p}ram-vm.qcow2
  [ -f "$img" ] && [ "$img" -nt "$cache/${p}vm.qcow2" ] && [ -f "$kdump" ] && [ -f "$mig" ] && [ -f "$overlay" ] && return 0
  echo "== boot the ${p}server install in QEMU and dump its RAM"
  dir=$(mktemp -d)
  local kernel initrd
  kernel=$(ls "$cache/${p}vm.root"/boot/vmlinuz-* | tail -1)
  initrd=$(ls "$cache/${p}vm.root"/boot/initrd.img-* | tail -1)
  for f in "$img" "$kdump" "$mig" "$overlay"; do rm -f "$f" "$f.tmp"; done
  qemu-img create -q -f qcow2 -b "${p}vm.qcow2" -F qcow2 "$overlay.tmp"
  qemu-system-x86_64 -accel tcg -m 1024 -nodefaults -display none \
    -kernel "$kernel" -initrd "$initrd" -append "root=/dev/vda rw console=ttyS0" \
    -drive "file=$overlay.tmp,format=qcow2,if=virtio" \
    -netdev user,id=n0 -device virtio-net-pci,netdev=n0 \
    -serial "file:$dir/serial.log" -monitor "unix:$dir/monitor.sock,server,nowait" &
  local pid=$! i
  for i in $(seq 300); do
    grep -q "login:" "$dir/serial.log" 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 1
  done
  if ! grep -q "login:" "$dir/serial.log" 2>/dev/null; then
    kill $pid 2>/dev/null; wait $pid 2>/dev/null || true
    echo "the VM did not reach a login prompt in 300 s; its console:" >&2; tail -20 "$dir/serial.log" >&2
    rm -rf "$dir"; return 1
  fi
  echo "   login prompt after ${i} s"
  sleep 20
  # The human monitor, over its socket: each command's output ends with
  # the next prompt.
  python3 - "$dir/monitor.sock" stop "dump-guest-memory $img.tmp" "dump-guest-memory -z $kdump.tmp" \
    "savevm booted" "migrate \"exec:cat > $mig.tmp\"" <<'PY'
import socket, sys, time
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.settimeout(600)
def prompt():
    buf = b""
    while not buf.endswith(b"(qemu) "):
        d = s.recv(4096)
        if not d:
            break
        buf += d
    return buf.decode(errors="replace")
def run(cmd):
    s.sendall(cmd.encode() + b"\n")
    return prompt()
prompt()
for cmd in sys.argv[2:]:
    run(cmd)
for _ in range(600):  # the migration runs in the background
    out = run("info migrate")
    if "completed" in out or "failed" in out:
        break
    time.sleep(1)
if "completed" not in out:
    sys.exit("migration did not complete: " + out)
run("quit")
PY
  wait $pid 2>/dev/null || true
  rm -rf "$dir"
  # The overlay names its backing file relative to itself.
  mv "$overlay.tmp" "$overlay"
  mv "$kdump.tmp" "$kdump"
  mv "$mig.tmp" "$mig"
  mv "$img.tmp" "$img"
}

# ram_formats TMP PREFIX: the RAM as the four formats hold it, read by
# `imgaudit extract` (each one's memory view), must be the same bytes,
# and the findings in those views the same.
ram_formats() {
  local tmp=$1 p=$2 f view
  for f in ${p}ram.elf ${p}ram.kdump ${p}ram.mig ${p}ram-vm.qcow2; do
    view="$f#memory"; [ "$f" = "${p}ram-vm.qcow2" ] && view="$f#memory:booted"
    "$bin" extract --backing-root "$cache" "$cache/$f" --view "$view" -o "$tmp/$f.bin" > /dev/null
    "$bin" scan --no-progress --format json --fail-on none --backing-root "$cache" "$cache/$f" 2> /dev/null |
      jq -c --arg v "$view" '[.findings[] | select(any(.locations[]; .view == $v)) | .severity] | group_by(.) | map({(.[0]): length}) | add' > "$tmp/$f.sev"
  done
  for f in ${p}ram.kdump ${p}ram.mig ${p}ram-vm.qcow2; do
    if cmp -s -n 1073741824 "$tmp/${p}ram.elf.bin" "$tmp/$f.bin" && cmp -s "$tmp/${p}ram.elf.sev" "$tmp/$f.sev"; then
      echo "$f: the same 1 GiB of RAM as ${p}ram.elf's memory view, the same findings there ($(cat "$tmp/$f.sev"))"
    else
      echo "$f: DIFFERS from ${p}ram.elf (RAM bytes or findings: $(cat "$tmp/$f.sev") against $(cat "$tmp/${p}ram.elf.sev"))"
    fi
  done
}

# apt_cache PREFIX: the server install as apt-get leaves a machine that
# was never cleaned: every package it installed also in
# /var/cache/apt/archives, as `apt-get install` downloaded it. The
# packages come from the same mirror, in the versions the install's dpkg
# records, fetched by `apt-get download` (which names them as the cache
# does) through the install's own apt lists, with apt state of its own
# (APT_CONFIG), into $cache/PREFIXserver-apt.debs. $cache/PREFIXserver-apt.root
# is the server root and those files, hard-linked (nothing writes through
# them), for pack.
apt_cache() {
  local p=$1 src=$cache/$1server.root root=$cache/$1server-apt.root debs=$cache/$1server-apt.debs dir
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && return 0
  echo "== the ${p}server install with its packages in apt's cache"
  rm -rf "$root" "$debs"
  dir=$(mktemp -d "$cache/tmp.XXXXXX")
  mkdir -p "$debs" "$dir/cache/archives/partial" "$dir/lists/partial" "$dir/etc/apt.conf.d" "$dir/etc/preferences.d"
  cp "$src"/var/lib/apt/lists/*_Packages "$src"/var/lib/apt/lists/*Release* "$dir/lists/"
  printf '%s\n' \
    "Dir::State::status \"$src/var/lib/dpkg/status\";" \
    "Dir::State::Lists \"$dir/lists/\";" \
    "Dir::Cache \"$dir/cache/\";" \
    "Dir::Etc \"$dir/etc/\";" \
    "Dir::Etc::sourcelist \"$src/etc/apt/sources.list\";" \
    "Dir::Etc::sourceparts \"$src/etc/apt/sources.list.d\";" \
    "Dir::Etc::trusted \"$src/etc/apt/trusted.gpg\";" \
    "Dir::Etc::trustedparts \"$src/etc/apt/trusted.gpg.d\";" \
    'APT::Architecture "amd64";' \
    'APT::Sandbox::User "root";' \
    'Debug::NoLocking "true";' > "$dir/apt.conf"
  local pkgs rc=0
  pkgs=$(dpkg-query --admindir="$src/var/lib/dpkg" -W -f '${db:Status-Status} ${Package}:${Architecture}=${Version}\n' | awk '$1 == "installed" { print $2 }')
  (cd "$debs" && APT_CONFIG="$dir/apt.conf" apt-get -q download $pkgs) > "$cache/${p}server-apt.apt.log" 2>&1 || rc=$?
  rm -rf "$dir"
  if [ $rc != 0 ]; then
    echo "apt-get download failed; see $cache/${p}server-apt.apt.log" >&2; tail -20 "$cache/${p}server-apt.apt.log" >&2; return 1
  fi
  cp -al "$src" "$root"
  cp -al "$debs"/*.deb "$root/var/cache/apt/archives/"
  date -u +%FT%TZ > "$root.done"
}

# infra PREFIX: $cache/PREFIXinfra.root, a copy of the server install with
# the services a Debian server commonly runs (web and PHP, MariaDB, Redis,
# mail, DNS, VPN, IPsec, RADIUS, LDAP, Samba, NFS, TLS proxies) and
# libraries that ship test keys, installed by apt-get in a chroot after an
# `apt-get update`: its lists (Translation-en included, which debootstrap
# never fetches) are what a real machine keeps. Services are not started
# (policy-rc.d); their postinst scripts run, and make what they make at
# install (bind9's rndc.key, slapd's database). apt-get clean empties the
# package cache, as server-apt covers a full one.
infra_pkgs="apache2 libapache2-mod-php php-cli mariadb-server redis-server postfix dovecot-imapd bind9 openvpn easy-rsa strongswan freeradius slapd samba ssl-cert certbot haproxy stunnel4 wireguard-tools gnupg python3-cryptography python3-paramiko python3-twisted python3-tornado python3-openssl libio-socket-ssl-perl ruby nodejs fail2ban rsyslog cron logrotate sudo vim-tiny nfs-kernel-server"
infra() { apt_image "$1" infra "infrastructure services" "$infra_pkgs"; }

# ops PREFIX: $cache/PREFIXops.root, the server as an operator's or
# developer's machine: configuration management and cloud tools whose
# modules and documentation are full of example credentials (Ansible with
# its collections, the AWS CLI, boto3), a web framework (Django, Flask),
# and the Java, PHP and Ruby toolchains, installed as infra is. Python's
# modules are byte-compiled by their postinst (py3compile), so each
# example in a module's source is also in a .pyc no package records.
ops_pkgs="ansible awscli python3-boto3 python3-django python3-flask python3-jwt python3-oauthlib python3-requests-oauthlib python3-kubernetes python3-pip python3-venv git build-essential openjdk-21-jdk-headless maven php-cli composer ruby-dev"
ops() { apt_image "$1" ops "operator's and developer's tools" "$ops_pkgs"; }

# desktop PREFIX: $cache/PREFIXdesktop.root, the server as a desktop (a
# VDI image, a laptop's disk): Xfce, Firefox, Thunderbird, LibreOffice,
# CUPS, NetworkManager, the GNOME keyring, Remmina, FileZilla and
# KeePassXC, with their recommends, installed as infra is.
desktop_pkgs="task-xfce-desktop firefox-esr thunderbird libreoffice-writer libreoffice-calc cups network-manager gnome-keyring seahorse remmina filezilla keepassxc"
desktop() { apt_image "$1" desktop "a desktop" "$desktop_pkgs"; }

# apt_image PREFIX KIND WHAT PKGS: $cache/PREFIXKIND.root, a copy of the
# server install with PKGS installed by apt-get in a chroot after an
# apt-get update.
apt_image() {
  local p=$1 kind=$2 what=$3 pkgs=$4 src=$cache/$1server.root root=$cache/$1$2.root rc=0
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && return 0
  echo "== the ${p}server install with $what (apt-get update and install); several minutes"
  rm -rf "$root"
  cp -a "$src" "$root"
  cp /etc/resolv.conf "$root/etc/resolv.conf"
  printf '#!/bin/sh\nexit 101\n' > "$root/usr/sbin/policy-rc.d"
  chmod +x "$root/usr/sbin/policy-rc.d"
  mount -t proc proc "$root/proc"
  chroot "$root" env DEBIAN_FRONTEND=noninteractive sh -c "apt-get -q update && apt-get install -y -q $pkgs && apt-get clean" \
    > "$cache/${p}$kind.apt.log" 2>&1 || rc=$?
  umount "$root/proc"
  rm -f "$root/usr/sbin/policy-rc.d" "$root/etc/resolv.conf"
  if [ $rc != 0 ]; then
    echo "installing $what failed; see $cache/${p}$kind.apt.log" >&2; tail -20 "$cache/${p}$kind.apt.log" >&2; return 1
  fi
  date -u +%FT%TZ > "$root.done"
}

# app_on_server PREFIX KIND LOCK WHAT INSTALL: $cache/PREFIXKIND.root, a
# hard-linked copy of the server root (nothing writes through the links:
# the package managers only add files) with scripts/precision-node's
# package.json and lock file LOCK in /srv/app, where the function INSTALL
# installs the application (its arguments: the root, and a scratch home
# for the tool's own settings); its output goes to $cache/PREFIXKIND.log.
# Rebuilt when the server root or LOCK is newer. The tools are this
# machine's (make test's install-npm-deps.sh installs pnpm, yarn and
# yarn-berry), the registry npm's public one.
app_on_server() {
  local p=$1 kind=$2 lock=$3 what=$4 install=$5
  local src=$cache/${p}server.root root=$cache/${p}$kind.root log=$cache/${p}$kind.log
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && [ "$root.done" -nt "$lock" ] && return 0
  echo "== the ${p}server install with a Node.js application ($what)"
  rm -rf "$root"
  cp -al "$src" "$root"
  mkdir -p "$root/srv/app"
  cp scripts/precision-node/package.json "$lock" "$root/srv/app/"
  local home rc=0
  home=$(mktemp -d "$cache/tmp.XXXXXX")
  (cd "$root/srv/app" && "$install" "$root" "$home") > "$log" 2>&1 || rc=$?
  rm -rf "$home"
  if [ $rc != 0 ]; then
    echo "$what failed; see $log" >&2; tail -20 "$log" >&2; return 1
  fi
  date -u +%FT%TZ > "$root.done"
}

# node_app PREFIX: the server install with a Node.js application, as
# `npm ci` leaves a machine: scripts/precision-node's package.json and
# lock file (20 popular packages, express, ssh2, aws-sdk, jest among
# them, and their 400-odd dependencies) installed into /srv/app, with
# root's npm cache (/root/.npm) kept, as npm keeps it.
npm_install() {
  mkdir -p "$1/root/.npm"
  HOME=$2 npm ci --no-audit --no-fund --cache "$1/root/.npm"
}
node_app() { app_on_server "$1" node scripts/precision-node/package-lock.json "npm ci" npm_install; }

# pnpm_app PREFIX: the same application installed by pnpm instead: the
# lock file converted by `pnpm import` (npm's resolved versions) and
# installed with `pnpm install --frozen-lockfile`, with root's store
# (/root/.local/share/pnpm/store) kept, whose files node_modules/.pnpm
# hard-links.
pnpm_install() {
  HOME=$2 pnpm import && rm package-lock.json &&
    HOME=$2 pnpm install --frozen-lockfile --store-dir "$1/root/.local/share/pnpm/store"
}
pnpm_app() { app_on_server "$1" pnpm scripts/precision-node/package-lock.json "pnpm install" pnpm_install; }

# yarn_app PREFIX: the same application installed by yarn 1:
# scripts/precision-node/yarn.lock (made by `yarn import` from the
# node_modules that `npm ci` of the npm lock file installs, so the same
# versions; yarn 1 cannot read a version 3 package-lock.json) installed
# with `yarn install --frozen-lockfile`, with root's yarn cache
# (/usr/local/share/.cache/yarn, where yarn keeps it when it runs as
# root) kept, each package unpacked there beside its tarball.
yarn_install() {
  HOME=$2 yarn install --frozen-lockfile --non-interactive --no-progress --cache-folder "$1/usr/local/share/.cache/yarn"
}
yarn_app() { app_on_server "$1" yarn scripts/precision-node/yarn.lock "yarn install" yarn_install; }

# berry_app PREFIX: the same application installed by yarn 4 with its
# defaults: Plug'n'Play (the packages stay in their zips, no
# node_modules) and root's global cache (/root/.yarn/berry/cache). yarn 4
# migrates the yarn 1 lock file, keeping its versions, and writes its
# own; migrating, it would pick node_modules, so .yarnrc.yml names
# Plug'n'Play.
berry_install() {
  echo "nodeLinker: pnp" > .yarnrc.yml
  HOME=$1/root YARN_ENABLE_TELEMETRY=0 YARN_ENABLE_IMMUTABLE_INSTALLS=false YARN_ENABLE_PROGRESS_BARS=false yarn-berry install
}
berry_app() { app_on_server "$1" berry scripts/precision-node/yarn.lock "yarn 4 install" berry_install; }

# go_dev PREFIX: the server install as a Go developer's or CI machine
# leaves it: the modules of scripts/precision-go/go.mod (imgaudit's own
# dependencies, go-containerregistry and docker/cli among them) fetched
# by this machine's go command (`go mod download`, from the Go module
# proxy) into root's module cache, /root/go/pkg/mod: each zip with its
# .ziphash, and the tree extracted from it. $cache/PREFIXgo.root is a
# hard-linked copy of the server root (the go command only adds files).
go_dev() {
  local p=$1 src=$cache/$1server.root root=$cache/$1go.root
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && [ "$root.done" -nt scripts/precision-go/go.sum ] && return 0
  echo "== the ${p}server install with a Go module cache (go mod download)"
  rm -rf "$root"
  cp -al "$src" "$root"
  local work rc=0
  work=$(mktemp -d "$cache/tmp.XXXXXX")
  cp scripts/precision-go/go.mod scripts/precision-go/go.sum "$work/"
  (cd "$work" && HOME=$work GOPATH="$root/root/go" GOMODCACHE="$root/root/go/pkg/mod" GOFLAGS=-modcacherw GOTOOLCHAIN=local go mod download) > "$cache/${p}go.download.log" 2>&1 || rc=$?
  rm -rf "$work"
  if [ $rc != 0 ]; then
    echo "go mod download failed; see $cache/${p}go.download.log" >&2; tail -20 "$cache/${p}go.download.log" >&2; return 1
  fi
  date -u +%FT%TZ > "$root.done"
}

# docker_host PREFIX: the server install as a Docker host that pulled two
# Debian images: the server itself as one layer ($cache/PREFIXserver-image.tar),
# and the same server as two layers, debootstrap's minbase and then what
# installing the server's packages added and changed
# (scripts/precision-layerdiff.py, with whiteouts for what it removed).
# A private dockerd (overlay2, no networking) loads both into
# /var/lib/docker of a hard-linked copy of the server root, as `docker
# pull` would have: each layer's files in overlay2/<id>/diff, whose
# package records are the image's dpkg database, not the VM's.
docker_host() {
  local p=$1 src=$cache/$1server.root root=$cache/$1docker.root
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && [ "$root.done" -nt "$cache/${p}server-image.tar" ] && return 0
  echo "== the ${p}server install as a Docker host (dockerd, docker load)"
  rm -rf "$root"
  cp -al "$src" "$root"
  local work rc=0 run pid
  work=$(mktemp -d "$cache/tmp.XXXXXX")
  python3 scripts/precision-layerdiff.py "$cache/${p}minbase.root" "$src" "$work/upper"
  tar --numeric-owner -C "$cache/${p}minbase.root" -cf "$work/layer0.tar" .
  tar --numeric-owner -C "$work/upper" -cf "$work/layer1.tar" .
  rm -rf "$work/upper"
  save_tarball "$work/layered.tar" "precision/${p}server-layered:latest" "$work/layer0.tar" "$work/layer1.tar"
  run=$(mktemp -d /tmp/dockerd.XXXXXX) # the socket's path must stay short
  dockerd --data-root "$root/var/lib/docker" --exec-root "$run/exec" --pidfile "$run/pid" -H "unix://$run/sock" \
    --storage-driver overlay2 --iptables=false --ip6tables=false --bridge=none > "$cache/${p}docker.dockerd.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do docker -H "unix://$run/sock" version > /dev/null 2>&1 && break; sleep 0.2; done
  { docker -H "unix://$run/sock" load -i "$cache/${p}server-image.tar" &&
    docker -H "unix://$run/sock" load -i "$work/layered.tar"; } >> "$cache/${p}docker.dockerd.log" 2>&1 || rc=$?
  kill "$pid"; wait "$pid" || true
  rm -rf "$work" "$run"
  if [ $rc != 0 ]; then
    echo "docker load failed; see $cache/${p}docker.dockerd.log" >&2; tail -20 "$cache/${p}docker.dockerd.log" >&2; return 1
  fi
  date -u +%FT%TZ > "$root.done"
}

# containerd_host PREFIX: the server install as a Kubernetes node or a
# Docker 29 host keeps images, in containerd's store: the server itself
# as one image (its layer compressed by gzip, as a registry serves it)
# imported by a private containerd (`ctr images import`, overlayfs
# snapshotter) into /var/lib/containerd of a hard-linked copy of the
# server root. The store keeps the layer twice: the .tar.gz blob in its
# content store, and the unpacked snapshot.
containerd_host() {
  local p=$1 src=$cache/$1server.root root=$cache/$1containerd.root
  [ -f "$root.done" ] && [ "$root.done" -nt "$src.done" ] && [ "$root.done" -nt "$cache/${p}server-image.tar" ] && return 0
  echo "== the ${p}server install as a containerd host (containerd, ctr images import)"
  rm -rf "$root"
  cp -al "$src" "$root"
  local work rc=0 run pid
  work=$(mktemp -d "$cache/tmp.XXXXXX")
  tar -C "$work" -xf "$cache/${p}server-image.tar" layer.tar
  gzip -n "$work/layer.tar"
  save_tarball "$work/image.tar" "precision/${p}server:latest" "$work/layer.tar.gz"
  run=$(mktemp -d /tmp/containerd.XXXXXX) # the socket's path must stay short
  printf 'version = 2\nroot = "%s"\nstate = "%s"\n[grpc]\n  address = "%s"\n[plugins."io.containerd.grpc.v1.cri"]\n  disable = true\n' \
    "$root/var/lib/containerd" "$run/state" "$run/sock" > "$run/config.toml"
  containerd --config "$run/config.toml" > "$cache/${p}containerd.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do ctr -a "$run/sock" version > /dev/null 2>&1 && break; sleep 0.2; done
  ctr -a "$run/sock" images import --snapshotter overlayfs "$work/image.tar" >> "$cache/${p}containerd.log" 2>&1 || rc=$?
  kill "$pid"; wait "$pid" || true
  rm -rf "$work" "$run"
  if [ $rc != 0 ]; then
    echo "ctr images import failed; see $cache/${p}containerd.log" >&2; tail -20 "$cache/${p}containerd.log" >&2; return 1
  fi
  date -u +%FT%TZ > "$root.done"
}

# container NAME: $cache/NAME.root as a one-layer container image in
# $cache/NAME-image.tar, laid out as `docker save` writes one (the layer
# made by tar, its config and manifest.json).
container() {
  local name=$1 root=$cache/$1.root out=$cache/$1-image.tar dir
  [ -f "$out" ] && [ "$out" -nt "$root.done" ] && return 0
  echo "== tar $name as a container image (docker save layout)"
  dir=$(mktemp -d "$cache/tmp.XXXXXX")
  tar --numeric-owner -C "$root" -cf "$dir/layer.tar" .
  save_tarball "$out.tmp" "precision/$name:latest" "$dir/layer.tar"
  rm -rf "$dir"
  mv "$out.tmp" "$out"
}

# save_tarball OUT TAG LAYER...: a `docker save` tarball in OUT of the
# layer tars (bottom first, all in one directory; a LAYER.gz is gzip'd,
# and its diff ID is its tar's), with their config and manifest.json,
# which are written beside the layers. The layers are removed.
save_tarball() {
  local out=$1 tag=$2 dir ids="" names="" l d
  shift 2
  dir=$(dirname "$1")
  for l; do
    case $l in
      *.gz) d=$(gzip -dc "$l" | sha256sum | cut -d' ' -f1) ;;
      *) d=$(sha256sum "$l" | cut -d' ' -f1) ;;
    esac
    ids+="${ids:+,}\"sha256:$d\""
    names+="${names:+,}\"${l##*/}\""
  done
  printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%s]},"config":{}}' "$ids" > "$dir/config.json"
  printf '[{"Config":"config.json","RepoTags":["%s"],"Layers":[%s]}]' "$tag" "$names" > "$dir/manifest.json"
  tar -C "$dir" -cf "$out" manifest.json config.json "${@##*/}"
  rm -f "$@"
}

# pack NAME: $cache/NAME.root as ext4 (mkfs.ext4 -d) in $cache/NAME.qcow2.
pack() {
  local name=$1 root=$cache/$1.root img=$cache/$1.qcow2
  [ -f "$img" ] && [ "$img" -nt "$root.done" ] && return 0
  echo "== mkfs.ext4 -d $name, qemu-img convert -O qcow2"
  local mb inodes
  mb=$(du -sm "$root" | awk '{print $1}')
  inodes=$(find "$root" -xdev | wc -l)
  rm -f "$cache/$name.raw" "$img"
  truncate -s $(( mb * 13 / 10 + 256 ))M "$cache/$name.raw"
  mkfs.ext4 -q -F -N $(( inodes * 12 / 10 + 4096 )) -d "$root" "$cache/$name.raw"
  qemu-img convert -O qcow2 "$cache/$name.raw" "$img.tmp"
  rm -f "$cache/$name.raw"
  mv "$img.tmp" "$img"
}

build() {
  local name
  for name in $images; do
    # Several checkouts share .cache: one builder per image at a time.
    exec 9>"$cache/$name.lock"
    flock 9
    local p="" kind=$name include
    case $name in trixie-*) p=trixie- kind=${name#trixie-} ;; esac
    include=$server_include
    [ "$p" = trixie- ] && include=$trixie_server_include
    case $kind in
      minbase) bootstrap "${p}minbase" minbase "$minbase_include" ;;
      server) bootstrap "${p}server" default "$include" ;;
      usr) [ -z "$p" ] || { echo "no image $name: usr is this machine's own /usr" >&2; exit 2; }; usr_root ;;
      ram)
        exec 8>"$cache/${p}server.lock"; flock 8
        bootstrap "${p}server" default "$include"
        exec 8>&-
        vm_root "$p"; pack "${p}vm"; ram "$p" ;;
      minbase-image) bootstrap "${p}minbase" minbase "$minbase_include"; container "${p}minbase" ;;
      server-image) bootstrap "${p}server" default "$include"; container "${p}server" ;;
      server-apt) bootstrap "${p}server" default "$include"; apt_cache "$p" ;;
      node) bootstrap "${p}server" default "$include"; node_app "$p" ;;
      pnpm) bootstrap "${p}server" default "$include"; pnpm_app "$p" ;;
      yarn) bootstrap "${p}server" default "$include"; yarn_app "$p" ;;
      berry) bootstrap "${p}server" default "$include"; berry_app "$p" ;;
      go) bootstrap "${p}server" default "$include"; go_dev "$p" ;;
      infra) bootstrap "${p}server" default "$include"; infra "$p" ;;
      ops) bootstrap "${p}server" default "$include"; ops "$p" ;;
      desktop) bootstrap "${p}server" default "$include"; desktop "$p" ;;
      docker)
        bootstrap "${p}minbase" minbase "$minbase_include"
        bootstrap "${p}server" default "$include"; container "${p}server"; docker_host "$p" ;;
      containerd) bootstrap "${p}server" default "$include"; container "${p}server"; containerd_host "$p" ;;
      *) echo "unknown image $name ([trixie-]minbase, [trixie-]server, usr, [trixie-]ram, [trixie-]minbase-image, [trixie-]server-image, [trixie-]server-apt, [trixie-]node, [trixie-]pnpm, [trixie-]yarn, [trixie-]berry, [trixie-]go, [trixie-]infra, [trixie-]ops, [trixie-]desktop, [trixie-]docker, [trixie-]containerd)" >&2; exit 2 ;;
    esac
    case $kind in ram|*-image) ;; *) pack "$name" ;; esac
    exec 9>&-
  done
}

build
[ "${1:-}" = build ] && exit 0

# The scan: bin/imgaudit as make build builds it, page cache warmed by one
# untimed run, then one timed run per image.
bin=${PRECISION_BIN:-bin/imgaudit}
if [ -z "${PRECISION_BIN:-}" ]; then
  [ -x bin/imgaudit ] && [ -z "$(find cmd detectors downgrade formats guestfs pkgdb report rollback scanner stores registry -name '*.go' -newer bin/imgaudit -print -quit)" ] ||
    CGO_ENABLED=0 go build -trimpath -o bin/imgaudit ./cmd/imgaudit
fi
echo "imgaudit precision on clean images ($(date -u +%F), $(nproc) cores, $bin of commit $(git describe --always --dirty)${PRECISION_FLAGS:+, $PRECISION_FLAGS})"
json=$(mktemp)
trap 'rm -f "$json"' EXIT
for name in $images; do
  img=$cache/$name.qcow2
  case $name in ram|trixie-ram) img=$cache/${name%ram}ram.elf ;; esac
  case $name in *-image) img=$cache/$name.tar ;; esac
  "$bin" scan --no-progress --format json --fail-on none ${PRECISION_FLAGS:-} "$img" > /dev/null
  t0=$(date +%s.%N)
  "$bin" scan --no-progress --format json --fail-on none ${PRECISION_FLAGS:-} "$img" > "$json"
  t1=$(date +%s.%N)
  echo
  kind="qcow2, Debian $(suite_of "$name")"; [ "$name" = usr ] && kind="qcow2 of this machine's /usr"
  case $name in ram|trixie-ram) kind="ELF core of the booted $(suite_of "$name") server's RAM" ;; esac
  case $name in *-image) kind="docker save tarball of one layer, Debian $(suite_of "$name")" ;; esac
  case $name in *go) kind="qcow2, Debian $(suite_of "$name"), the server with root's Go module cache" ;; esac
  case $name in *containerd) kind="qcow2, Debian $(suite_of "$name"), the server as a containerd host (a Kubernetes node) with the server's image in /var/lib/containerd" ;; esac
  case $name in *docker) kind="qcow2, Debian $(suite_of "$name"), the server as a Docker host with two Debian images ($(ls "$cache/$name.root/var/lib/docker/overlay2" | grep -vc '^l$') layers)" ;; esac
  case $name in *berry) kind="qcow2, Debian $(suite_of "$name"), the server with a Node.js application in /srv/app installed by yarn 4 (Plug'n'Play), root's global cache kept" ;; esac
  case $name in *yarn) kind="qcow2, Debian $(suite_of "$name"), the server with a Node.js application in /srv/app installed by yarn 1, root's yarn cache kept" ;; esac
  case $name in *pnpm) kind="qcow2, Debian $(suite_of "$name"), the server with a Node.js application in /srv/app installed by pnpm, root's pnpm store kept" ;; esac
  case $name in *node) kind="qcow2, Debian $(suite_of "$name"), the server with a Node.js application in /srv/app and root's npm cache" ;; esac
  case $name in *desktop) kind="qcow2, Debian $(suite_of "$name"), the server as a desktop (Xfce, Firefox, Thunderbird, LibreOffice, CUPS, NetworkManager, GNOME keyring, Remmina, FileZilla, KeePassXC) installed by apt-get after apt-get update" ;; esac
  case $name in *ops) kind="qcow2, Debian $(suite_of "$name"), the server with $(echo $ops_pkgs | wc -w) operator's and developer's tools (Ansible, AWS CLI, Django, OpenJDK, Maven, PHP, Ruby) installed by apt-get after apt-get update" ;; esac
  case $name in *infra) kind="qcow2, Debian $(suite_of "$name"), the server with $(echo $infra_pkgs | wc -w) more services and libraries installed by apt-get after apt-get update" ;; esac
  case $name in *server-apt) kind="qcow2, Debian $(suite_of "$name"), the server with its $(ls "$cache/$name.root/var/cache/apt/archives" | grep -c '\.deb$') packages in apt's cache" ;; esac
  echo "== $name: $(du -h --apparent-size "$img" | cut -f1) $kind ($(jq -r '[.targets[].views[].allocated_bytes] | add / 1048576 | floor' "$json") MiB allocated), scanned in $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
  echo "findings: $(jq -r '.summary.findings' "$json"); by severity: $(jq -r '.summary.by_severity as $s | [("critical", "high", "medium", "low", "info") | select($s[.]) | "\(.) \($s[.])"] | join(", ")' "$json")"
  echo "at medium or above: $(jq '[.findings[] | select(.severity == "critical" or .severity == "high" or .severity == "medium")] | length' "$json")"
  if [ "$name" = ram ] || [ "$name" = trixie-ram ]; then
    d=$(mktemp -d)
    ram_formats "$d" "${name%ram}"
    rm -rf "$d"
  fi
  jq -r '.findings[] | select(.severity == "critical" or .severity == "high" or .severity == "medium")
    | "  \(.severity | ascii_upcase)\t\(.rule)\t\([.locations[] | .path // "<\(.exposure)>"] | unique | (.[0:2] | join(" ")) + (if length > 2 then " (+\(length - 2) more)" else "" end))\(if ([.locations[].path | select(.)] | length) == 0 then "\t" + .preview else "" end)\(if .reasons then "\t[" + ([.reasons[].code] | join(",")) + "]" else "" end)"' "$json"
done
