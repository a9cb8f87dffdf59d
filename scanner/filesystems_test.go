package scanner_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// newKey makes a PEM private key with ssh-keygen and returns its path.
func newKey(t *testing.T, dir, name string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	testutil.Run(t, "ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", p)
	return p
}

// locationOf returns the finding with fingerprint fp and its location in
// the current view, failing the test when there is none.
func locationOf(t *testing.T, rep *report.Report, fp string) report.Location {
	t.Helper()
	for _, f := range rep.Findings {
		if f.Fingerprint != fp {
			continue
		}
		for _, l := range f.Locations {
			if strings.HasSuffix(l.View, "#current") {
				return l
			}
		}
	}
	t.Fatalf("no finding %s in the current view; findings: %s", fp, summary(rep))
	return report.Location{}
}

func scan(t *testing.T, img string) *report.Report {
	t.Helper()
	before := testutil.FileSnapshot(t, img)
	rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{img})
	if err != nil {
		t.Fatal(err)
	}
	if string(before) != string(testutil.FileSnapshot(t, img)) {
		t.Fatal("the image changed during the scan")
	}
	return rep
}

// TestScanXFS: on an XFS made by mkfs.xfs, a key in a live file is live
// with its path; a key written, synced and deleted is deleted, in free
// space.
func TestScanXFS(t *testing.T) {
	testutil.RequireTool(t, "mkfs.xfs", "ssh-keygen")
	dir := t.TempDir()
	live, old := newKey(t, dir, "live.key"), newKey(t, dir, "old.key")
	img := filepath.Join(dir, "xfs.img")
	os.WriteFile(img, nil, 0o644)
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "mkfs.xfs", "-q", img)
	mnt, unmount := testutil.LoopMount(t, img)
	os.MkdirAll(filepath.Join(mnt, "etc/ssl/private"), 0o700)
	testutil.Run(t, "cp", live, filepath.Join(mnt, "etc/ssl/private/web.key"))
	testutil.Run(t, "cp", old, filepath.Join(mnt, "old.key"))
	testutil.Run(t, "sync")
	os.Remove(filepath.Join(mnt, "old.key"))
	unmount()

	rep := scan(t, img)
	l := locationOf(t, rep, fp(pemBlock(t, live)))
	if l.Partition != "disk" || l.Path != "/etc/ssl/private/web.key" || l.State != report.StateAllocated || l.Exposure != report.ExposureLive {
		t.Errorf("live key: %+v", l)
	}
	d := locationOf(t, rep, fp(pemBlock(t, old)))
	if d.Partition != "disk" || d.Path != "" || d.State != report.StateFree || d.Exposure != report.ExposureDeleted {
		t.Errorf("deleted key: %+v", d)
	}
	if len(rep.Targets) != 1 || len(rep.Targets[0].Unattributed) != 0 {
		t.Errorf("unattributed: %+v", rep.Targets)
	}
}

// TestScanLVM: a key in an ext4 on an LVM2 logical volume (a whole-disk
// PV, the LV written with vgcfgrestore) is located on the LV, by name.
func TestScanLVM(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4", "ssh-keygen")
	dir := t.TempDir()
	key := newKey(t, dir, "lv.key")
	src := filepath.Join(dir, "src")
	os.MkdirAll(filepath.Join(src, "root/.ssh"), 0o700)
	testutil.Run(t, "cp", key, filepath.Join(src, "root/.ssh/id_rsa"))
	img, vg := lvmDisk(t, dir, src)

	rep := scan(t, img)
	l := locationOf(t, rep, fp(pemBlock(t, key)))
	if l.Partition != vg+"/root" || l.Path != "/root/.ssh/id_rsa" || l.State != report.StateAllocated || l.Exposure != report.ExposureLive {
		t.Errorf("key on the LV: %+v", l)
	}
}

// TestScanLVMVMDisk: a VM's disk in a logical volume (a Proxmox host's
// LVM storage): a GPT (sgdisk) whose ext4 partition (mkfs.ext4 -d) holds
// the VM's host key. The key is located in the LV's partition, by name
// ("VG/root/p1"), at its path, live; nothing is unattributed.
func TestScanLVMVMDisk(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4", "sgdisk", "ssh-keygen")
	dir := t.TempDir()
	key := newKey(t, dir, "vm.key")
	os.MkdirAll(filepath.Join(dir, "src/etc/ssh"), 0o755)
	testutil.Run(t, "cp", key, filepath.Join(dir, "src/etc/ssh/ssh_host_rsa_key"))
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d src p1.img 12M
truncate -s 16M vmdisk.img
sgdisk -n 1:2048:+12M vmdisk.img >/dev/null
dd if=p1.img of=vmdisk.img bs=512 seek=2048 conv=notrunc status=none`)
	img, vg := lvmDiskOf(t, dir, testutil.FileSnapshot(t, filepath.Join(dir, "vmdisk.img")))

	rep := scan(t, img)
	l := locationOf(t, rep, fp(pemBlock(t, key)))
	if l.Partition != vg+"/root/p1" || l.Path != "/etc/ssh/ssh_host_rsa_key" || l.State != report.StateAllocated || l.Exposure != report.ExposureLive {
		t.Errorf("key in the VM's disk on the LV: %+v", l)
	}
	if len(rep.Targets) != 1 || len(rep.Targets[0].Unattributed) != 0 {
		t.Errorf("unattributed: %q", rep.Targets[0].Unattributed)
	}
}

// TestScanLVMThin: a Proxmox host's local-lvm: a thin pool (metadata by
// thin_restore) holding a VM's disk (a GPT, an ext4 with the VM's host
// key) and a thin snapshot of it taken before the key was rotated (its
// ext4 holds the old key). Each key is located in its volume's
// partition, at its path, allocated: the current key live, the rotated
// one a snapshot's (outside the guest's control), whose remediation is
// Proxmox's command deleting that snapshot; nothing but the pool's
// metadata is unattributed.
func TestScanLVMThin(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "sgdisk", "ssh-keygen")
	dir := t.TempDir()
	now, old := freshKey(t, dir, "now"), freshKey(t, dir, "old")
	disk := func(name string, key []byte) []byte {
		os.MkdirAll(filepath.Join(dir, name, "etc/ssh"), 0o755)
		os.WriteFile(filepath.Join(dir, name, "etc/ssh/ssh_host_ed25519_key"), key, 0o600)
		testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d `+name+` `+name+`.p1 12M
truncate -s 16M `+name+`.img
sgdisk -n 1:2048:+12M `+name+`.img >/dev/null
dd if=`+name+`.p1 of=`+name+`.img bs=512 seek=2048 conv=notrunc status=none`)
		return testutil.FileSnapshot(t, filepath.Join(dir, name+".img"))
	}
	pool := testutil.ThinPoolDisk(t, dir, 1, testutil.ThinVolume{Name: "vm-100-disk-0", Data: disk("now", now)},
		testutil.ThinVolume{Name: "snap_vm-100-disk-0_before", Data: disk("before", old), Origin: "vm-100-disk-0"})

	rep := scan(t, pool.Path)
	for _, c := range []struct {
		key            []byte
		part, exposure string
		command        string
	}{
		{now, pool.VG + "/vm-100-disk-0/p1", report.ExposureLive, "rm -- /etc/ssh/ssh_host_ed25519_key   # in the guest"},
		{old, pool.VG + "/snap_vm-100-disk-0_before/p1", report.ExposureSnapshot, "qm delsnapshot 100 before   # on the Proxmox host"},
	} {
		f := findingOf(t, rep, fp(bytes.TrimRight(c.key, "\n")))
		l := f.Locations[0]
		if len(f.Locations) != 1 || l.Partition != c.part || l.Path != "/etc/ssh/ssh_host_ed25519_key" || l.State != report.StateAllocated || l.Exposure != c.exposure {
			t.Errorf("key in %s: %+v", c.part, f.Locations)
		}
		// (A copy outside the guest's control adds a first step: rotate.)
		if rs := report.Remediate(rep, f); len(rs) == 0 || rs[len(rs)-1].Command != c.command || rs[len(rs)-1].Class != c.exposure {
			t.Errorf("key in %s: remediation %+v", c.part, rs)
		}
	}
	if u := rep.Targets[0].Unattributed; len(u) != 1 || !strings.Contains(u[0], "pool_tmeta") {
		t.Errorf("unattributed: %q", u)
	}
}

// lvmDisk makes dir/pv.img: a whole-disk LVM2 PV whose logical volume
// "root" (16 MiB, written with vgcfgrestore) holds an ext4 of the tree src
// (mkfs.ext4 -d). It returns the image and the VG's name.
func lvmDisk(t *testing.T, dir, src string) (string, string) {
	t.Helper()
	fsImg := filepath.Join(dir, "root.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, fsImg, "16M")
	return lvmDiskOf(t, dir, testutil.FileSnapshot(t, fsImg))
}

// lvmDiskOf makes dir/pv.img as lvmDisk does, its logical volume "root"
// holding lv (at most 16 MiB).
func lvmDiskOf(t *testing.T, dir string, lv []byte) (string, string) {
	t.Helper()
	img := filepath.Join(dir, "pv.img")
	os.WriteFile(img, nil, 0o644)
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	vg := fmt.Sprintf("imgauditscan%d", os.Getpid())
	peStart := testutil.SinglePV(t, img, 0, 0, vg, testutil.LVText("root", "root00-0000-0000-0000-0000-0000-000000", true, testutil.LinearSegment(0, 4, "pv0", 2)))
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(lv, peStart+2*4<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	return img, vg
}

// TestScanLUKS: findings in a LUKS key-slot area are dropped (a view note
// counts them); a key in the encrypted data area stays, live, with the
// state unknown, and the table does not claim it is in a file.
func TestScanLUKS(t *testing.T) {
	testutil.RequireTool(t, "cryptsetup", "ssh-keygen")
	dir := t.TempDir()
	img := filepath.Join(dir, "luks.img")
	os.WriteFile(img, nil, 0o644)
	if err := os.Truncate(img, 32<<20); err != nil {
		t.Fatal(err)
	}
	pass := filepath.Join(dir, "pass")
	os.WriteFile(pass, []byte("passphrase"), 0o600)
	testutil.Run(t, "cryptsetup", "luksFormat", "--batch-mode", "--type", "luks2", "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", pass, img)
	// Key-shaped bytes in the key-slot area (cryptsetup's first slot is
	// at 32 KiB) and in the data area (after 16 MiB).
	inSlots, inData := newKey(t, dir, "slots.key"), newKey(t, dir, "data.key")
	f, err := os.OpenFile(img, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(testutil.FileSnapshot(t, inSlots), 40<<10)
	f.WriteAt(testutil.FileSnapshot(t, inData), 20<<20)
	f.Close()

	rep := scan(t, img)
	for _, fd := range rep.Findings {
		if fd.Fingerprint == fp(pemBlock(t, inSlots)) {
			t.Errorf("finding in the key-slot area kept: %+v", fd)
		}
	}
	l := locationOf(t, rep, fp(pemBlock(t, inData)))
	if l.Partition != "disk" || l.State != report.StateUnknown || l.Exposure != report.ExposureLive || l.Path != "" {
		t.Errorf("key in the data area: %+v", l)
	}
	notes := strings.Join(rep.Targets[0].Views[0].Notes, "\n")
	if !strings.Contains(notes, "findings dropped: in a LUKS2 key-slot area (key material, not secrets)") {
		t.Errorf("view notes: %s", notes)
	}
	if u := strings.Join(rep.Targets[0].Unattributed, "\n"); !strings.Contains(u, "encrypted: contents not visible (LUKS2, cipher aes-xts-plain64, 1 key slot)") {
		t.Errorf("unattributed: %s", u)
	}
	var table strings.Builder
	if err := report.WriteTable(&table, rep, report.TableOptions{}); err != nil {
		t.Fatal(err)
	}
	if out := table.String(); !strings.Contains(out, "or where no filesystem could be read") || strings.Contains(out, "in allocated files of the current state") {
		t.Errorf("LIVE ONLY header:\n%s", out)
	}
}
