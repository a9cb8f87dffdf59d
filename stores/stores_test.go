package stores

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// tree writes files (path → content) under dir.
func tree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// qimg runs qemu-img create for dir/name, with an optional backing file
// named as written (relative to the image, as stores keep them).
func qimg(t *testing.T, dir, format, name, backing string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"create", "-q", "-f", format}
	if backing != "" {
		args = append(args, "-b", backing, "-F", format)
	}
	testutil.Run(t, "qemu-img", append(args, p, "16M")...)
}

// memoryFile captures a real QEMU migration stream (RAM with a planted
// string) and copies it to each dir/name.
func memoryFile(t *testing.T, dir string, names ...string) {
	t.Helper()
	stream := vmatest.CaptureMigration(t, t.TempDir(), 16, []vmatest.Plant{{Addr: 0x3000, Data: []byte("imgaudit-stores-memory-plant")}})
	b, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// sums hashes every file under dir, to prove discovery changed nothing.
func sums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			b, _ := os.ReadFile(p)
			out[p] = sha256.Sum256(b)
		}
		return nil
	})
	return out
}

// rel turns the absolute paths of a Store into root-relative ones so that
// expectations read like the layout.
func rel(root string, ps []string) []string {
	if ps == nil {
		return nil
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i], _ = filepath.Rel(root, p)
	}
	return out
}

type wantVM struct {
	Name, ID  string
	Disks     []string
	Backing   []string
	Memory    []string // "path@snapshot"
	Backups   []string
	Snapshots []string // "name<parent@created disks=... mem=..."
	Config    string
}

func summarize(root string, vm VM) wantVM {
	w := wantVM{Name: vm.Name, ID: vm.ID, Disks: rel(root, vm.Disks), Backing: rel(root, vm.Backing), Backups: rel(root, vm.Backups)}
	if vm.Config != "" {
		w.Config = rel(root, []string{vm.Config})[0]
	}
	for _, m := range vm.Memory {
		w.Memory = append(w.Memory, rel(root, []string{m.Path})[0]+"@"+m.Snapshot)
	}
	for _, s := range vm.Snapshots {
		mem := ""
		if s.Memory != "" {
			mem = rel(root, []string{s.Memory})[0]
		}
		w.Snapshots = append(w.Snapshots, fmt.Sprintf("%s<%s@%s disks=%v mem=%s desc=%q", s.Name, s.Parent,
			s.Created.Format(time.RFC3339), rel(root, s.Disks), mem, s.Description))
	}
	return w
}

func check(t *testing.T, dir string, kind string, vms []wantVM, loose, backing []string) *Store {
	t.Helper()
	before := sums(t, dir)
	st, err := Discover(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	root := st.Root
	if st.Kind != kind {
		t.Errorf("kind %q, want %q", st.Kind, kind)
	}
	var got []wantVM
	for _, vm := range st.VMs {
		got = append(got, summarize(root, vm))
	}
	if !reflect.DeepEqual(got, vms) {
		t.Errorf("VMs:\n got %+v\nwant %+v", got, vms)
	}
	if g := rel(root, st.Loose); !reflect.DeepEqual(g, loose) {
		t.Errorf("loose %q, want %q", g, loose)
	}
	if g := rel(root, st.Backing); !reflect.DeepEqual(g, backing) {
		t.Errorf("backing %q, want %q", g, backing)
	}
	if after := sums(t, dir); !reflect.DeepEqual(before, after) {
		t.Error("discovery changed files")
	}
	if len(st.Notes) > 0 {
		t.Logf("notes: %q", st.Notes)
	}
	return st
}

const domainTmpl = `<domain type='kvm'>
  <name>%s</name>
  <uuid>%s</uuid>
  <memory unit='KiB'>1048576</memory>
  <os><type arch='x86_64' machine='pc-q35-7.2'>hvm</type></os>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='%s'/>
      <backingStore type='file'>
        <format type='qcow2'/>
        <source file='/var/lib/libvirt/images/base.qcow2'/>
      </backingStore>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/install.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
  </devices>
</domain>
`

const snapshotTmpl = `<domainsnapshot>
  <name>%s</name>
  <description>before the upgrade</description>
  <state>running</state>
  <creationTime>%d</creationTime>
  <memory snapshot='external' file='%s'/>
  <disks>
    <disk name='vda' snapshot='external' type='file'>
      <driver type='qcow2'/>
      <source file='%s'/>
    </disk>
  </disks>
  <domain type='kvm'>
    <name>%s</name>
    <uuid>%s</uuid>
  </domain>
</domainsnapshot>
`

const (
	uuid1 = "6f1c1b2e-2a3b-4c5d-8e9f-0a1b2c3d4e5f"
	uuid2 = "7a2d2c3f-3b4c-4d6e-9fa0-1b2c3d4e5f60"
)

// TestLibvirt: two VMs cloned from one base image, one external snapshot
// chain with a memory file, one managed save, in a /var/lib/libvirt tree
// and flattened into one directory.
func TestLibvirt(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, tc := range []struct {
		name      string
		img, qemu string // subdirectories
	}{
		{"tree", "images", "qemu"},
		{"flat", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			img := func(n string) string { return filepath.Join(tc.img, n) }
			qemuDir := func(n string) string {
				if tc.qemu == "" {
					return filepath.Base(n)
				}
				return filepath.Join(tc.qemu, n)
			}
			qimg(t, dir, "qcow2", img("base.qcow2"), "")
			qimg(t, dir, "qcow2", img("web01.qcow2"), "base.qcow2")
			qimg(t, dir, "qcow2", img("web02.qcow2"), "base.qcow2")
			qimg(t, dir, "qcow2", img("web01.snap1"), "web01.qcow2")
			memoryFile(t, dir, qemuDir("snapshot/web01/snap1.mem"), qemuDir("save/web02.save"))
			const created = 1714979289
			tree(t, dir, map[string]string{
				qemuDir("web01.xml"):                fmt.Sprintf(domainTmpl, "web01", uuid1, "/var/lib/libvirt/images/web01.snap1"),
				qemuDir("web02.xml"):                fmt.Sprintf(domainTmpl, "web02", uuid2, "/var/lib/libvirt/images/web02.qcow2"),
				qemuDir("snapshot/web01/snap1.xml"): fmt.Sprintf(snapshotTmpl, "snap1", created, "/var/lib/libvirt/qemu/snapshot/web01/snap1.mem", "/var/lib/libvirt/images/web01.snap1", "web01", uuid1),
				img("README.txt"):                   "notes of the admin\n",
			})
			ct := time.Unix(created, 0).UTC().Format(time.RFC3339)
			check(t, dir, "libvirt", []wantVM{
				{Name: "web01", ID: uuid1, Disks: []string{img("web01.snap1")}, Backing: []string{img("web01.qcow2"), img("base.qcow2")},
					Memory:    []string{qemuDir("snapshot/web01/snap1.mem") + "@snap1"},
					Snapshots: []string{fmt.Sprintf("snap1<@%s disks=[%s] mem=%s desc=%q", ct, img("web01.qcow2"), qemuDir("snapshot/web01/snap1.mem"), "before the upgrade")},
					Config:    qemuDir("web01.xml")},
				{Name: "web02", ID: uuid2, Disks: []string{img("web02.qcow2")}, Backing: []string{img("base.qcow2")},
					Memory: []string{qemuDir("save/web02.save") + "@"}, Config: qemuDir("web02.xml")},
			}, []string{img("README.txt")}, []string{img("web01.qcow2"), img("base.qcow2")})
		})
	}
}

// TestLibvirtNoXML: qcow2 overlays with no configuration are grouped by
// backing chain and name.
func TestLibvirtNoXML(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	qimg(t, dir, "qcow2", "base.qcow2", "")
	qimg(t, dir, "qcow2", "db-disk0.qcow2", "base.qcow2")
	qimg(t, dir, "qcow2", "db-disk1.qcow2", "base.qcow2")
	qimg(t, dir, "qcow2", "standalone.qcow2", "")
	check(t, dir, "libvirt", []wantVM{
		{Name: "db", ID: "db", Disks: []string{"db-disk0.qcow2", "db-disk1.qcow2"}, Backing: []string{"base.qcow2"}},
	}, []string{"standalone.qcow2"}, []string{"base.qcow2"})
}

// TestLinksStayInTree: an overlay naming a backing file outside the
// store's tree, by absolute path or by ../, is not linked to it (the file
// outside is never taken for part of the store), while links inside the
// tree still group the overlay with its base.
func TestLinksStayInTree(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	top := t.TempDir()
	dir, outside := filepath.Join(top, "store"), filepath.Join(top, "outside")
	qimg(t, outside, "qcow2", "base.qcow2", "")
	qimg(t, dir, "qcow2", "base.qcow2", "")
	qimg(t, dir, "qcow2", "app.qcow2", "base.qcow2")
	qimg(t, dir, "qcow2", "web.qcow2", filepath.Join(outside, "base.qcow2"))
	qimg(t, dir, "qcow2", "db.qcow2", "../outside/base.qcow2")
	st := check(t, dir, "libvirt", []wantVM{
		{Name: "app", ID: "app", Disks: []string{"app.qcow2"}, Backing: []string{"base.qcow2"}},
	}, []string{"db.qcow2", "web.qcow2"}, []string{"base.qcow2"})
	for _, vm := range st.VMs {
		for _, b := range vm.Backing {
			if !strings.HasPrefix(b, st.Root+"/") {
				t.Errorf("VM %s has a backing file outside the tree: %s", vm.Name, b)
			}
		}
	}
}

// TestProxmox: a VM with a qcow2 and a raw disk, a snapshot with a state
// volume, zstd and plain vzdump backups and a log, and a linked clone of
// a template.
func TestProxmox(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "zstd")
	dir := t.TempDir()
	qimg(t, dir, "qcow2", "images/100/vm-100-disk-0.qcow2", "")
	qimg(t, dir, "raw", "images/100/vm-100-disk-1.raw", "")
	qimg(t, dir, "qcow2", "images/9000/base-9000-disk-0.qcow2", "")
	qimg(t, dir, "qcow2", "images/101/vm-101-disk-0.qcow2", "../9000/base-9000-disk-0.qcow2")
	memoryFile(t, dir, "images/100/vm-100-state-before.raw")
	os.MkdirAll(filepath.Join(dir, "dump"), 0o755)
	for _, n := range []string{"vzdump-qemu-100-2024_01_02-03_04_05.vma", "vzdump-qemu-100-2023_12_01-00_00_00.vma"} {
		err := vmatest.WriteFile(filepath.Join(dir, "dump", n), vmatest.Archive{CTime: time.Unix(1704164645, 0),
			Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte("name: web\n")}},
			Devices: []vmatest.Device{{Name: "drive-scsi0", Data: []byte("disk bytes")}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "dump", "vzdump-qemu-100-2024_01_02-03_04_05.vma")
	testutil.Run(t, "zstd", "-q", "--rm", p, "-o", p+".zst")
	tree(t, dir, map[string]string{
		"dump/vzdump-qemu-100-2024_01_02-03_04_05.log": "INFO: starting new backup job\n",
		"qemu-server/100.conf": `#web server
boot: order=scsi0
cores: 2
memory: 2048
name: web
parent: before
scsi0: local:100/vm-100-disk-0.qcow2,size=16M
scsi1: local:100/vm-100-disk-1.raw,size=16M

[before]
boot: order=scsi0
cores: 2
description: pre-upgrade
memory: 2048
name: web
runningmachine: pc-i440fx-8.1+pve0
scsi0: local:100/vm-100-disk-0.qcow2,size=16M
snaptime: 1704067200
vmstate: local:100/vm-100-state-before.raw
`,
		"qemu-server/101.conf": "name: clone\nscsi0: local:101/vm-101-disk-0.qcow2,size=16M\n",
	})
	st := check(t, dir, "proxmox", []wantVM{
		{Name: "web", ID: "100", Disks: []string{"images/100/vm-100-disk-0.qcow2", "images/100/vm-100-disk-1.raw"},
			Memory:    []string{"images/100/vm-100-state-before.raw@before"},
			Backups:   []string{"dump/vzdump-qemu-100-2023_12_01-00_00_00.vma", "dump/vzdump-qemu-100-2024_01_02-03_04_05.vma.zst"},
			Snapshots: []string{`before<@2024-01-01T00:00:00Z disks=[images/100/vm-100-disk-0.qcow2 images/100/vm-100-disk-1.raw] mem=images/100/vm-100-state-before.raw desc="pre-upgrade"`},
			Config:    "qemu-server/100.conf"},
		{Name: "clone", ID: "101", Disks: []string{"images/101/vm-101-disk-0.qcow2"}, Backing: []string{"images/9000/base-9000-disk-0.qcow2"}, Config: "qemu-server/101.conf"},
	}, []string{"dump/vzdump-qemu-100-2024_01_02-03_04_05.log"}, []string{"images/9000/base-9000-disk-0.qcow2"})
	if bt, ok := BackupTime(st.VMs[0].Backups[1]); !ok || !bt.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("BackupTime = %v, %v", bt, ok)
	}
}

// TestVMware: a base disk and two delta disks linked by
// parentFileNameHint, a .vmsd with two snapshots (the second powered on,
// with a .vmem), a current .vmem, a log and an nvram.
func TestVMware(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	vmdir := "web01"
	qimg(t, dir, "vmdk", "web01/web01.vmdk", "")
	qimg(t, dir, "vmdk", "web01/web01-000001.vmdk", "web01.vmdk")
	qimg(t, dir, "vmdk", "web01/web01-000002.vmdk", "web01-000001.vmdk")
	memoryFile(t, dir, "web01/web01-Snapshot2.vmem", "web01/web01-5a3c.vmem")
	t1 := time.Date(2024, 3, 1, 10, 0, 0, 123456000, time.UTC)
	t2 := time.Date(2024, 4, 2, 11, 30, 0, 0, time.UTC)
	_, l1 := testutil.VMSDTime(t1)
	_, l2 := testutil.VMSDTime(t2)
	if l1 >= 0 && l2 >= 0 {
		t.Log("neither low half is negative; the signed decoding is not exercised")
	}
	tree(t, dir, map[string]string{
		"web01/web01.vmx": `.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "19"
displayName = "web |22prod|22"
guestOS = "ubuntu-64"
uuid.bios = "56 4d 9a 3b 2c 1d 0e 5f-6a 7b 8c 9d ae bf c0 d1"
memSize = "2048"
scsi0.present = "TRUE"
scsi0.virtualDev = "lsilogic"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "web01-000002.vmdk"
ide1:0.present = "TRUE"
ide1:0.deviceType = "cdrom-image"
ide1:0.fileName = "/vmfs/volumes/ds1/iso/ubuntu.iso"
nvram = "web01.nvram"
`,
		"web01/web01.vmsd":           string(testutil.TwoSnapshotVMSD(t1, t2, "fresh OS")),
		"web01/web01-Snapshot1.vmsn": "\xd2\xbe\xd2\xbe", // a vmsn header stub; the test only groups files
		"web01/web01-Snapshot2.vmsn": "\xd2\xbe\xd2\xbe",
		"web01/vmware.log":           "2024-04-02T11:30:00.000Z In(05) vmx Log for VMware\n",
		"web01/web01.nvram":          "nvram",
	})
	f := func(n string) string { return filepath.Join(vmdir, n) }
	check(t, dir, "vmware", []wantVM{
		{Name: `web "prod"`, ID: "56 4d 9a 3b 2c 1d 0e 5f-6a 7b 8c 9d ae bf c0 d1",
			Disks: []string{f("web01-000002.vmdk")}, Backing: []string{f("web01-000001.vmdk"), f("web01.vmdk")},
			Memory: []string{f("web01-Snapshot1.vmsn") + "@clean install", f("web01-Snapshot2.vmsn") + "@with app",
				f("web01-Snapshot2.vmem") + "@with app", f("web01-5a3c.vmem") + "@"},
			Snapshots: []string{
				fmt.Sprintf("clean install<@%s disks=[%s] mem=%s desc=%q", t1.Format(time.RFC3339), f("web01.vmdk"), f("web01-Snapshot1.vmsn"), "fresh OS"),
				fmt.Sprintf("with app<clean install@%s disks=[%s] mem=%s desc=%q", t2.Format(time.RFC3339), f("web01-000001.vmdk"), f("web01-Snapshot2.vmem"), ""),
			},
			Config: f("web01.vmx")},
	}, []string{f("vmware.log"), f("web01.nvram")}, []string{f("web01-000001.vmdk"), f("web01.vmdk")})
	// The µs part of the creation time survives.
	st, _ := Discover(context.Background(), dir)
	if got := st.VMs[0].Snapshots[0].Created; !got.Equal(t1) {
		t.Errorf("snapshot time %v, want %v", got, t1)
	}
}

// TestPlain: files with no layout are all loose.
func TestPlain(t *testing.T) {
	dir := t.TempDir()
	tree(t, dir, map[string]string{"a.raw": "x", "sub/b.bin": "y"})
	check(t, dir, "plain", nil, []string{"a.raw", "sub/b.bin"}, nil)
	if _, err := Discover(context.Background(), filepath.Join(dir, "a.raw")); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("file as store: %v", err)
	}
}
