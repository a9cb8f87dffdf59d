package scanner_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestNestedRawDisks: raw disk images on a hypervisor host's disk (ext4,
// mkfs.ext4 -d), as libvirt's and Proxmox's directory storage keep them:
// a sparse GPT disk (sgdisk; ext4 at 1 MiB, mkfs.ext4 -E offset) whose
// guest has a host key and a key it deleted (debugfs rm), an MBR disk
// (sfdisk), a Proxmox container's volume (a bare ext4), and an ISO 9660
// image and a small ext4 fixture that are no VM disks. No magic number
// names a raw disk: its partition table or superblock does, where the
// raw scan's probe sees them (the MBR disk by its partition's ext4
// superblock: the probe does not look for boot signatures). Each disk is a target of its own, read
// through the host's filesystem, only its data (the holes are not
// scanned), and each key is found at its path in the inner guest, in its
// state there: the deleted key in the guest's free space. The ISO and
// the fixture are no targets. NoNestedImages opens none.
func TestNestedRawDisks(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "sgdisk", "sfdisk", "xorriso", "ssh-keygen")
	dir := t.TempDir()
	for _, d := range []string{"guest/etc/ssh", "guest/root", "lxc/root/.ssh", "host/var/lib/libvirt/images", "host/var/lib/vz/images/101", "host/srv/iso", "host/srv/test"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	keys := map[string][]byte{}
	for name, p := range map[string]string{"host": "guest/etc/ssh/ssh_host_ed25519_key", "old": "guest/root/old_key", "lxc": "lxc/root/.ssh/id_ed25519"} {
		keys[name] = freshKey(t, dir, name)
		os.WriteFile(filepath.Join(dir, p), keys[name], 0o600)
	}
	testutil.Bash(t, dir, `set -e
truncate -s 64M gpt.raw
sgdisk -n 1:2048:0 gpt.raw >/dev/null
mkfs.ext4 -q -F -d guest -E offset=1048576 gpt.raw 60M
debugfs -w -R "rm /root/old_key" "gpt.raw?offset=1048576" 2>/dev/null
cp --sparse=always gpt.raw host/var/lib/libvirt/images/web01.raw
truncate -s 48M mbr.img
echo 'start=2048, type=83' | sfdisk -q mbr.img
mkfs.ext4 -q -F -d lxc -E offset=1048576 mbr.img 40M
cp --sparse=always mbr.img host/srv/mbr.img
truncate -s 32M host/var/lib/vz/images/101/vm-101-disk-0.raw
mkfs.ext4 -q -F -d lxc host/var/lib/vz/images/101/vm-101-disk-0.raw
xorriso -as mkisofs -quiet -o host/srv/iso/install.iso guest/etc 2>/dev/null
truncate -s 512K host/srv/test/fixture.img
mkfs.ext4 -q -F host/srv/test/fixture.img
mkfs.ext4 -q -F -d host host.raw 256M`)
	img := filepath.Join(dir, "host.raw")
	if n := len(testutil.FileSnapshot(t, filepath.Join(dir, "host/var/lib/libvirt/images/web01.raw"))); n != 64<<20 {
		t.Fatalf("web01.raw: %d bytes", n)
	}

	rep := scanFile(t, scanner.Options{}, img)
	const prefix = "host.raw#current:disk:"
	disks := map[string]report.Target{}
	for _, tg := range rep.Targets[1:] {
		disks[strings.TrimPrefix(tg.Path, prefix)] = tg
	}
	wantDisks := []string{"/srv/mbr.img", "/var/lib/libvirt/images/web01.raw", "/var/lib/vz/images/101/vm-101-disk-0.raw"}
	if got := slices.Sorted(func(yield func(string) bool) {
		for p := range disks {
			if !yield(p) {
				return
			}
		}
	}); !slices.Equal(got, wantDisks) {
		t.Fatalf("targets inside: %q, want %q", got, wantDisks)
	}
	for p, tg := range disks {
		if tg.Format != "raw" || len(tg.Errors) > 0 || tg.Inside == nil || tg.Inside.Path != p {
			t.Errorf("%s: format %q, errors %q, inside %+v", p, tg.Format, tg.Errors, tg.Inside)
		}
	}
	if !rep.Complete {
		t.Errorf("incomplete: %q", rep.IncompleteReasons)
	}
	// The sparse disk: its data only (a few MiB of 64).
	for _, v := range disks["/var/lib/libvirt/images/web01.raw"].Views {
		if v.ScannedBytes == 0 || v.ScannedBytes > 16<<20 {
			t.Errorf("%s: %d bytes scanned: its holes were read", v.ID, v.ScannedBytes)
		}
	}
	inner := func(fp string) []string {
		var out []string
		for _, f := range rep.Findings {
			if f.Fingerprint != fp || f.Category == report.CategoryClonedIdentity || f.Category == report.CategoryRollbackRisk {
				continue
			}
			for _, l := range f.Locations {
				if strings.HasPrefix(l.View, prefix) {
					out = append(out, fmt.Sprintf("%s %s %s %s %s", strings.TrimPrefix(l.View, prefix), l.Partition, l.Path, l.State, l.Exposure))
				}
			}
		}
		slices.Sort(out)
		return out
	}
	for name, want := range map[string][]string{
		"host": {"/var/lib/libvirt/images/web01.raw#current p1 /etc/ssh/ssh_host_ed25519_key allocated live"},
		"old":  {"/var/lib/libvirt/images/web01.raw#current p1  free deleted"},
		"lxc": {
			"/srv/mbr.img#current p1 /root/.ssh/id_ed25519 allocated live",
			"/var/lib/vz/images/101/vm-101-disk-0.raw#current disk /root/.ssh/id_ed25519 allocated live",
		},
	} {
		if got := inner(fp(bytes.TrimRight(keys[name], "\n"))); !slices.Equal(got, want) {
			t.Errorf("key %s in the disks:\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}

	// The same container volume in two disks: one machine's identity
	// cloned.
	if !slices.ContainsFunc(rep.Findings, func(f report.Finding) bool {
		return f.Category == report.CategoryClonedIdentity && f.Fingerprint == fp(bytes.TrimRight(keys["lxc"], "\n"))
	}) {
		t.Error("the key in two disks is no cloned identity")
	}

	plain := scanFile(t, scanner.Options{NoNestedImages: true}, img)
	if len(plain.Targets) != 1 {
		t.Errorf("NoNestedImages: %d targets", len(plain.Targets))
	}
}
