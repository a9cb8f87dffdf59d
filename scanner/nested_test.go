package scanner_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestNestedImages: a hypervisor host's disk (ext4, mkfs.ext4 -d) holds
// its guests' images in /var/lib/libvirt/images: a compressed qcow2
// (qemu-img convert -c), a stream-optimized VMDK, a split VMDK (a text
// descriptor and its sparse extent), a VDI, a VHDX, a Parallels image, a QED image, an overlay whose
// backing file is the qcow2 by a relative name, and a qcow2 whose backing
// file is a host path that only this machine has. The compressed images
// hold the guest's host key in none of the host disk's raw bytes. Each
// image is scanned as a target of its own, inside the host disk, except
// those another one reads (the overlay's base, the split disk's extent),
// as in a directory scan: the key is found at its path in each, live, and
// in the overlay's backing view, which it reads in the host disk's
// filesystem; the host file the last one names is never opened (its key
// is not found, it is no input) and that image's target fails, so the
// run is incomplete. With NoNestedImages the key is found only raw, in
// the images that store it uncompressed.
func TestNestedImages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "ssh-keygen")
	dir := t.TempDir()
	key := freshKey(t, dir, "guest")
	hostKey := freshKey(t, dir, "host")
	for _, d := range []string{"guest/etc/ssh", "hostfile/etc/ssh", "host/var/lib/libvirt/images"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "guest/etc/ssh/ssh_host_ed25519_key"), key, 0o600)
	os.WriteFile(filepath.Join(dir, "hostfile/etc/ssh/ssh_host_ed25519_key"), hostKey, 0o600)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d guest guest.raw 16M
mkfs.ext4 -q -F -d hostfile hostfile.raw 16M
cd host/var/lib/libvirt/images
qemu-img convert -c -O qcow2 ../../../../../guest.raw vm.qcow2
qemu-img convert -O vmdk -o subformat=streamOptimized ../../../../../guest.raw vm.vmdk
qemu-img convert -O vmdk -o subformat=twoGbMaxExtentSparse ../../../../../guest.raw split.vmdk
qemu-img convert -O vdi ../../../../../guest.raw vm.vdi
qemu-img convert -O vhdx ../../../../../guest.raw vm.vhdx
qemu-img convert -O parallels ../../../../../guest.raw vm.hds
qemu-img convert -O qed ../../../../../guest.raw vm.qed
test -f split-s001.vmdk
qemu-img create -q -f qcow2 -b vm.qcow2 -F qcow2 overlay.qcow2
qemu-img create -q -f qcow2 -b "$PWD/../../../../../hostfile.raw" -F raw -u evil.qcow2 16M`)
	img := filepath.Join(dir, "host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "host"), img, "96M")

	rep := scanFile(t, scanner.Options{}, img)
	const images = "/var/lib/libvirt/images/"
	prefix := "host.raw#current:disk:" + images
	var got []string
	for _, l := range findingOf(t, rep, fp(bytes.TrimRight(key, "\n"))).Locations {
		got = append(got, l.View+" "+l.Path+" "+l.Exposure)
	}
	slices.Sort(got)
	want := []string{
		// Raw, where the images store it uncompressed.
		"host.raw#current " + images + "split-s001.vmdk live",
		"host.raw#current " + images + "vm.hds live",
		"host.raw#current " + images + "vm.qed live",
		"host.raw#current " + images + "vm.vdi live",
		"host.raw#current " + images + "vm.vhdx live",
		prefix + "overlay.qcow2#backing:vm.qcow2 /etc/ssh/ssh_host_ed25519_key backing",
		prefix + "overlay.qcow2#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "split.vmdk#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "vm.hds#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "vm.qed#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "vm.vdi#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "vm.vhdx#current /etc/ssh/ssh_host_ed25519_key live",
		prefix + "vm.vmdk#current /etc/ssh/ssh_host_ed25519_key live",
	}
	if !slices.Equal(got, want) {
		t.Errorf("key's locations:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, f := range rep.Findings {
		if f.Fingerprint == fp(bytes.TrimRight(hostKey, "\n")) {
			t.Errorf("the host file an image in the guest names was read: %+v", f.Locations)
		}
	}
	for _, in := range rep.Inputs {
		if strings.Contains(in, "hostfile") {
			t.Errorf("input %s: a host file an image in the guest names", in)
		}
	}
	byPath := map[string]report.Target{}
	for _, tg := range rep.Targets {
		byPath[tg.Path] = tg
	}
	for _, name := range []string{"vm.vmdk", "split.vmdk", "vm.vdi", "vm.vhdx", "vm.hds", "vm.qed", "overlay.qcow2", "evil.qcow2"} {
		tg, ok := byPath[prefix+name]
		if !ok {
			t.Errorf("no target %s%s", prefix, name)
			continue
		}
		if tg.Inside == nil || tg.Inside.Target != img || tg.Inside.View != "host.raw#current" || tg.Inside.Path != images+name {
			t.Errorf("%s: inside %+v", name, tg.Inside)
		}
		if failed := len(tg.Errors) > 0; failed != (name == "evil.qcow2") {
			t.Errorf("%s: errors %q", name, tg.Errors)
		}
	}
	for _, name := range []string{"vm.qcow2", "split-s001.vmdk"} {
		if _, ok := byPath[prefix+name]; ok {
			t.Errorf("%s is a target of its own: another image reads it", name)
		}
	}
	if len(rep.Targets) != 9 {
		t.Errorf("%d targets, want the host disk and 8 images", len(rep.Targets))
	}
	if ov := byPath[prefix+"overlay.qcow2"]; len(ov.Backing) != 1 || ov.Backing[0].Path != prefix+"vm.qcow2" || ov.Backing[0].Error != "" {
		t.Errorf("overlay's backing %+v, want the qcow2 beside it in the guest", ov.Backing)
	}
	if rep.Complete {
		t.Error("complete, with an image whose backing file could not be read")
	}
	if host := byPath[img]; host.Views[0].Notes == nil || !slices.ContainsFunc(host.Views[0].Notes, func(n string) bool { return strings.Contains(n, "10 disk or memory images") }) {
		t.Errorf("host view's notes %q", host.Views[0].Notes)
	}

	plain := scanFile(t, scanner.Options{NoNestedImages: true}, img)
	if len(plain.Targets) != 1 {
		t.Errorf("NoNestedImages: %d targets", len(plain.Targets))
	}
	for _, f := range plain.Findings {
		if f.Fingerprint != fp(bytes.TrimRight(key, "\n")) {
			continue
		}
		for _, l := range f.Locations {
			if l.View != "host.raw#current" || !slices.Contains([]string{"split-s001.vmdk", "vm.vdi", "vm.vhdx", "vm.hds", "vm.qed"}, strings.TrimPrefix(l.Path, images)) {
				t.Errorf("NoNestedImages: the key at %s %s, want only the uncompressed images' raw bytes", l.View, l.Path)
			}
		}
	}
}

// TestNestedImagesDepth: an image in an image in an image in a target.
// The first two levels are opened (the key of the second is found there);
// the third is left as its file's bytes, with a note in the view that
// holds it.
func TestNestedImagesDepth(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "ssh-keygen")
	dir := t.TempDir()
	second, third := freshKey(t, dir, "second"), freshKey(t, dir, "third")
	for _, d := range []string{"l3/root", "l2/root", "l2/images", "l1/images", "top/images"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "l3/root/id_ed25519"), third, 0o600)
	os.WriteFile(filepath.Join(dir, "l2/root/id_ed25519"), second, 0o600)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d l3 l3.raw 8M && qemu-img convert -c -O qcow2 l3.raw l2/images/l3.qcow2
mkfs.ext4 -q -F -d l2 l2.raw 16M && qemu-img convert -c -O qcow2 l2.raw l1/images/l2.qcow2
mkfs.ext4 -q -F -d l1 l1.raw 24M && qemu-img convert -c -O qcow2 l1.raw top/images/l1.qcow2`)
	img := filepath.Join(dir, "top.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "top"), img, "48M")
	rep := scanFile(t, scanner.Options{}, img)
	l2 := "top.raw#current:disk:/images/l1.qcow2#current:disk:/images/l2.qcow2"
	f := findingOf(t, rep, fp(bytes.TrimRight(second, "\n")))
	if len(f.Locations) != 1 || f.Locations[0].View != l2+"#current" || f.Locations[0].Path != "/root/id_ed25519" {
		t.Errorf("second level's key at %+v", f.Locations)
	}
	for _, f := range rep.Findings {
		if f.Fingerprint == fp(bytes.TrimRight(third, "\n")) {
			t.Errorf("third level opened: %+v", f.Locations)
		}
	}
	var notes []string
	for _, tg := range rep.Targets {
		if tg.Path == l2 {
			notes = tg.Views[0].Notes
		}
	}
	if !slices.ContainsFunc(notes, func(n string) bool {
		return n == "1 disk or memory images in its filesystem not opened: 2 levels of images inside images already (scanned as the files' bytes): disk:/images/l3.qcow2"
	}) {
		t.Errorf("second level's notes %q", notes)
	}
	if len(rep.Targets) != 3 || !rep.Complete {
		t.Errorf("%d targets, complete %v", len(rep.Targets), rep.Complete)
	}
}

// TestNestedImagesBound: a guest holding more disk images than a scan
// opens (64) gets 64 targets and a note counting the rest, and the run
// stays complete: their bytes were scanned, as files. Gzip'd, the images
// over the bound are an error of the view (neither decoded nor opened).
func TestNestedImagesBound(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img")
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "root/images"), 0o755)
	testutil.Bash(t, dir, `for i in $(seq 70); do qemu-img create -q -f qcow2 root/images/vm$i.qcow2 1M; done`)
	img := filepath.Join(dir, "host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "root"), img, "64M")
	rep := scanFile(t, scanner.Options{}, img)
	if len(rep.Targets) != 65 || !rep.Complete {
		t.Errorf("%d targets (want the host and 64 images), complete %v", len(rep.Targets), rep.Complete)
	}
	notes := rep.Targets[0].Views[0].Notes
	if !slices.Contains(notes, "6 disk or memory images in its filesystem not opened: over the 64 a scan opens (scanned as the files' bytes)") {
		t.Errorf("notes %q", notes)
	}

	// Gzip'd, the decode pass leaves them to the image readers, undecoded:
	// the 6 over the bound are read by neither, and the run is incomplete.
	testutil.Bash(t, dir, `set -e
for i in $(seq 70); do gzip root/images/vm$i.qcow2; done
mkfs.ext4 -q -F -d root host.raw 64M`)
	rep = scanFile(t, scanner.Options{}, img)
	if len(rep.Targets) != 65 || rep.Complete {
		t.Errorf("gzip'd: %d targets (want the host and 64 images), complete %v", len(rep.Targets), rep.Complete)
	}
	if errs := rep.Targets[0].Errors; len(errs) != 1 || !strings.Contains(errs[0], "6 archives of disk images in its filesystem neither decoded nor opened (over the 64 images a scan opens") {
		t.Errorf("gzip'd: host errors %q", errs)
	}
}

// TestNestedArchives: archives of disks stored in a guest are opened as
// such too: an OVA of a stream-optimized VMDK, as an appliance is
// downloaded (tar, the real tool), and a Proxmox backup (.vma, vmatest:
// Proxmox's vma tool is not packaged here) on a Proxmox host's disk. The
// key is found in each, at its path in the guest; with decoding off too
// (the decode pass finds the files that start with a tar; without it, the
// OVA is found by its VMDK member's magic number, which a tar keeps on a
// 512-byte boundary). An OVA whose disk is gzip'd (ovf:compression) has
// no such number, nor has a backup vzdump compressed (.vma.zst, the real
// zstd): only the decode pass finds them. So is a zip of the same VMDK
// (deflated: the decode pass sees its member start like a disk; see
// TestNestedImageArchives). With NoNestedImages the key is found
// only raw, in the backup, which stores blocks uncompressed.
func TestNestedArchives(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "ssh-keygen", "tar", "zip", "zstd")
	dir := t.TempDir()
	key := freshKey(t, dir, "appliance")
	for _, d := range []string{"guest/etc/ssh", "host/home/alice/Downloads", "host/var/lib/vz/dump", "ova"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "guest/etc/ssh/ssh_host_ed25519_key"), key, 0o600)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d guest guest.raw 16M
qemu-img convert -O vmdk -o subformat=streamOptimized guest.raw ova/disk1.vmdk
cat > ova/appliance.ovf <<'OVF'
<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="disk1.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>Virtual disks</Info><Disk ovf:capacity="16777216" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/></DiskSection>
  <VirtualSystem ovf:id="appliance"><Info>A VM</Info><Name>appliance</Name></VirtualSystem>
</Envelope>
OVF
tar -C ova -cf host/home/alice/Downloads/appliance.ova appliance.ovf disk1.vmdk
mkdir ovagz && gzip -c ova/disk1.vmdk > ovagz/disk1.vmdk
sed 's|ovf:id="file1"|ovf:id="file1" ovf:compression="gzip"|' ova/appliance.ovf > ovagz/appliance.ovf
tar -C ovagz -cf host/home/alice/Downloads/appliance-gz.ova appliance.ovf disk1.vmdk
(cd ova && zip -q ../host/home/alice/Downloads/appliance.zip disk1.vmdk)`)
	raw, err := os.ReadFile(filepath.Join(dir, "guest.raw"))
	if err != nil {
		t.Fatal(err)
	}
	for _, vmid := range []string{"100", "101"} {
		err = vmatest.WriteFile(filepath.Join(dir, "host/var/lib/vz/dump/vzdump-qemu-"+vmid+"-2026_12_01-00_00_00.vma"), vmatest.Archive{CTime: time.Unix(1764547200, 0),
			Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte("name: web\n")}},
			Devices: []vmatest.Device{{Name: "drive-scsi0", Data: raw}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	// As vzdump compresses by default.
	testutil.Run(t, "zstd", "-q", "--rm", filepath.Join(dir, "host/var/lib/vz/dump/vzdump-qemu-101-2026_12_01-00_00_00.vma"))
	img := filepath.Join(dir, "host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "host"), img, "96M")
	const prefix = "host.raw#current:disk:"
	for _, noDecode := range []bool{false, true} {
		rep := scanFile(t, scanner.Options{NoDecode: noDecode}, img)
		var got []string
		for _, l := range findingOf(t, rep, fp(bytes.TrimRight(key, "\n"))).Locations {
			if l.View != "host.raw#current" {
				got = append(got, strings.SplitN(strings.TrimPrefix(l.View, prefix), "#", 2)[0]+" "+l.Path+" "+l.Exposure)
			}
		}
		slices.Sort(got)
		want := []string{
			"/home/alice/Downloads/appliance-gz.ova /etc/ssh/ssh_host_ed25519_key live",
			"/home/alice/Downloads/appliance.ova /etc/ssh/ssh_host_ed25519_key live",
			"/home/alice/Downloads/appliance.zip /etc/ssh/ssh_host_ed25519_key live",
			"/var/lib/vz/dump/vzdump-qemu-100-2026_12_01-00_00_00.vma /etc/ssh/ssh_host_ed25519_key backing",
			"/var/lib/vz/dump/vzdump-qemu-101-2026_12_01-00_00_00.vma.zst /etc/ssh/ssh_host_ed25519_key backing",
		}
		if noDecode {
			want = []string{want[1], want[3]}
		}
		if !slices.Equal(got, want) {
			t.Errorf("no-decode %v: the key in the archives at\n%s\nwant\n%s", noDecode, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(rep.Targets) != 1+len(want) || !rep.Complete {
			t.Errorf("no-decode %v: %d targets, complete %v", noDecode, len(rep.Targets), rep.Complete)
		}
	}
	plain := scanFile(t, scanner.Options{NoNestedImages: true}, img)
	for _, f := range plain.Findings {
		if f.Fingerprint != fp(bytes.TrimRight(key, "\n")) {
			continue
		}
		for _, l := range f.Locations {
			if !strings.HasPrefix(l.Path, "/var/lib/vz/dump/") {
				t.Errorf("NoNestedImages: the key at %s %s %q, want only the backup's raw bytes", l.View, l.Path, chainText(l))
			}
		}
	}
}

// TestNestedImagesLVM: a compressed qcow2 on an ext4 in an LVM2 logical
// volume is opened like one on a plain partition, its target named by
// the volume ("VG/root"), its base found beside it on the volume.
func TestNestedImagesLVM(t *testing.T) {
	testutil.RequireTool(t, "pvcreate", "vgcreate", "vgcfgbackup", "vgcfgrestore", "pvs", "mkfs.ext4", "qemu-img", "ssh-keygen")
	dir := t.TempDir()
	key := freshKey(t, dir, "lvm")
	for _, d := range []string{"guest/etc/ssh", "src/images"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "guest/etc/ssh/ssh_host_ed25519_key"), key, 0o600)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d guest guest.raw 8M
qemu-img convert -c -O qcow2 guest.raw src/images/base.qcow2
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 src/images/vm.qcow2`)
	img, vg := lvmDisk(t, dir, filepath.Join(dir, "src"))
	rep := scanFile(t, scanner.Options{}, img)
	name := "pv.img#current:" + vg + "/root:/images/vm.qcow2"
	var got []string
	for _, l := range findingOf(t, rep, fp(bytes.TrimRight(key, "\n"))).Locations {
		got = append(got, l.View+" "+l.Path)
	}
	slices.Sort(got)
	want := []string{name + "#backing:base.qcow2 /etc/ssh/ssh_host_ed25519_key", name + "#current /etc/ssh/ssh_host_ed25519_key"}
	if !slices.Equal(got, want) {
		t.Errorf("key at %q, want %q", got, want)
	}
	if len(rep.Targets) != 2 || !rep.Complete || rep.Targets[1].Inside == nil || rep.Targets[1].Inside.Partition != vg+"/root" {
		t.Errorf("%d targets, complete %v, inside %+v", len(rep.Targets), rep.Complete, rep.Targets[len(rep.Targets)-1].Inside)
	}
}

// TestNestedMemoryImages: a hypervisor host's disk (ext4, mkfs.ext4 -d)
// holds saved guest RAM: a libvirt save of a QEMU migration stream, the
// same save compressed with zstd (libvirt's save_image_format "zstd"), a
// guest-memory dump (QEMU's dump-guest-memory, as virsh dump
// --memory-only writes it) and a process's core (Go's own test data,
// hello-world-core), which is no guest's RAM. Each guest's RAM is a target
// of its own, with memory views, where the AES key schedule that QEMU
// held is found (a memory rule: disk views are not searched for key
// schedules) at its guest-physical address; the compressed save's bytes
// are zstd, so without its memory view nothing in it is found. The
// process core is not opened. With NoNestedImages there is no key schedule.
func TestNestedMemoryImages(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zstd", "gzip")
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf", `migrate "exec:cat > {dir}/mig.bin"`)
	dir := t.TempDir()
	host := filepath.Join(dir, "host")
	save := filepath.Join(host, "var/lib/libvirt/qemu/save")
	os.MkdirAll(filepath.Join(host, "var/crash"), 0o755)
	os.MkdirAll(filepath.Join(host, "home/dev"), 0o755)
	const xml = "<domain type='kvm'><name>web01</name></domain>"
	libvirtSave(t, filepath.Join(save, "web01.save"), xml, vm.Path("mig.bin"))
	testutil.Run(t, "zstd", "-q", "-f", vm.Path("mig.bin"), "-o", vm.Path("mig.zst"))
	zst, err := os.ReadFile(vm.Path("mig.zst"))
	if err != nil {
		t.Fatal(err)
	}
	libvirtSavePayload(t, filepath.Join(save, "web02.save"), xml, 5, zst)
	testutil.Bash(t, dir, `set -e
cp `+vm.Path("dump.elf")+` host/var/crash/web01.core
gzip -dc `+filepath.Join(runtime.GOROOT(), "src/debug/elf/testdata/hello-world-core.gz")+` > host/home/dev/core
mkfs.ext4 -q -F -d host host.raw 160M`)
	img := filepath.Join(dir, "host.raw")

	rep := scanFile(t, scanner.Options{}, img)
	prefix := "host.raw#current:disk:"
	byPath := map[string]report.Target{}
	for _, tg := range rep.Targets {
		byPath[tg.Path] = tg
	}
	for name, format := range map[string]string{
		"/var/lib/libvirt/qemu/save/web01.save": "libvirt-save",
		"/var/lib/libvirt/qemu/save/web02.save": "libvirt-save",
		"/var/crash/web01.core":                 "elf-core",
	} {
		tg, ok := byPath[prefix+name]
		if !ok {
			t.Errorf("no target %s%s", prefix, name)
			continue
		}
		if tg.Format != format || len(tg.Errors) > 0 || tg.Inside == nil || tg.Inside.Path != name {
			t.Errorf("%s: format %q, errors %q, inside %+v", name, tg.Format, tg.Errors, tg.Inside)
		}
	}
	if _, ok := byPath[prefix+"/home/dev/core"]; ok {
		t.Error("a process's core is a target: it is no guest's RAM")
	}
	if len(rep.Targets) != 4 || !rep.Complete {
		t.Errorf("%d targets, complete %v: %q", len(rep.Targets), rep.Complete, rep.IncompleteReasons)
	}
	var aesAt []string
	for _, f := range rep.Findings {
		if f.Rule != "aes-key-schedule" {
			continue
		}
		for _, l := range f.Locations {
			aesAt = append(aesAt, fmt.Sprintf("%s 0x%x %s", l.View, l.Offset, l.Exposure))
		}
	}
	slices.Sort(aesAt)
	const at = 0x5ff60 // qemufixture.Plants: the AES-128 key schedule
	var want []string
	for _, name := range []string{"/var/crash/web01.core", "/var/lib/libvirt/qemu/save/web01.save", "/var/lib/libvirt/qemu/save/web02.save"} {
		want = append(want, fmt.Sprintf("%s%s#memory 0x%x memory", prefix, name, at))
	}
	if !slices.Equal(aesAt, want) {
		t.Errorf("the AES key schedule at\n%s\nwant\n%s", strings.Join(aesAt, "\n"), strings.Join(want, "\n"))
	}

	plain := scanFile(t, scanner.Options{NoNestedImages: true}, img)
	for _, f := range plain.Findings {
		if f.Rule == "aes-key-schedule" {
			t.Errorf("NoNestedImages: a key schedule at %+v", f.Locations)
		}
	}
	if len(plain.Targets) != 1 {
		t.Errorf("NoNestedImages: %d targets", len(plain.Targets))
	}
}

// TestNestedImageArchives: disks compressed or archived in a guest, as a
// build machine or a download directory holds them: a compressed qcow2
// gzip'd (vm.qcow2.gz), an ext4 xz'd whole (disk.raw.xz, as Fedora ships
// raw images), a Vagrant box (a tar.gz of a qcow2, metadata.json and a
// Vagrantfile), a plain tar of a compressed qcow2, and a zip of a
// stream-optimized VMDK. The decode pass finds them by their decoded
// bytes (a member's, for the tars and the zip), and the raw scan the plain
// tar too, by the qcow2's magic number at a sector's start (a tar's
// members start on one; a zip's do not); each is opened with the formats' readers as a target of its own,
// and the guest's key is found at its path in the inner disk, live. In
// the qcow2 and the VMDK the key is compressed: without opening them it
// is not found there at all. The decode pass does not decode as bytes
// what the image readers open. A tar.gz of plain files is no target.
// Decoding off, only the plain tar is opened.
func TestNestedImageArchives(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "ssh-keygen", "gzip", "xz", "tar", "zip")
	dir := t.TempDir()
	key := freshKey(t, dir, "guest")
	for _, d := range []string{"guest/etc/ssh", "host/srv/images", "host/srv/boxes", "host/home/dev/notes"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "guest/etc/ssh/ssh_host_ed25519_key"), key, 0o600)
	os.WriteFile(filepath.Join(dir, "host/home/dev/notes/todo.txt"), []byte("nothing here\n"), 0o644)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d guest guest.raw 16M
qemu-img convert -c -O qcow2 guest.raw box.img
qemu-img convert -O vmdk -o subformat=streamOptimized guest.raw disk1.vmdk
gzip -c box.img > host/srv/images/vm.qcow2.gz
xz -T1 -c guest.raw > host/srv/images/disk.raw.xz
echo '{"provider": "libvirt", "format": "qcow2", "virtual_size": 1}' > metadata.json
echo 'Vagrant.configure("2") { |c| }' > Vagrantfile
tar czf host/srv/boxes/web.box metadata.json Vagrantfile box.img
tar cf host/srv/boxes/plain.tar box.img
zip -q -0 host/srv/boxes/appliance.zip disk1.vmdk
tar czf host/home/dev/notes.tar.gz -C host/home/dev notes
mkfs.ext4 -q -F -d host host.raw 96M`)
	img := filepath.Join(dir, "host.raw")
	prefix := "host.raw#current:disk:"
	archives := map[string]string{
		"/srv/images/vm.qcow2.gz":  "compressed",
		"/srv/images/disk.raw.xz":  "compressed",
		"/srv/boxes/web.box":       "tar",
		"/srv/boxes/plain.tar":     "tar",
		"/srv/boxes/appliance.zip": "zip",
	}
	for _, c := range []struct {
		name   string
		opts   scanner.Options
		opened []string
	}{
		{"decoding", scanner.Options{}, []string{"/srv/boxes/appliance.zip", "/srv/boxes/plain.tar", "/srv/boxes/web.box", "/srv/images/disk.raw.xz", "/srv/images/vm.qcow2.gz"}},
		{"no-decode", scanner.Options{NoDecode: true}, []string{"/srv/boxes/plain.tar"}},
		{"no-nested-images", scanner.Options{NoNestedImages: true}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			rep := scanFile(t, c.opts, img)
			var opened []string
			for _, tg := range rep.Targets {
				if tg.Path == img {
					continue
				}
				name := strings.TrimPrefix(tg.Path, prefix)
				opened = append(opened, name)
				if tg.Format != archives[name] || len(tg.Errors) > 0 || tg.Inside == nil || tg.Inside.Path != name {
					t.Errorf("%s: format %q, errors %q, inside %+v", name, tg.Format, tg.Errors, tg.Inside)
				}
			}
			slices.Sort(opened)
			if !slices.Equal(opened, c.opened) {
				t.Errorf("opened %q, want %q", opened, c.opened)
			}
			if !rep.Complete {
				t.Errorf("incomplete: %q", rep.IncompleteReasons)
			}
			var inner []string
			for _, f := range rep.Findings {
				if f.Fingerprint != fp(bytes.TrimRight(key, "\n")) {
					continue
				}
				for _, l := range f.Locations {
					if l.View != "host.raw#current" {
						inner = append(inner, l.View+" "+l.Path+" "+l.Exposure)
					}
				}
			}
			slices.Sort(inner)
			// The archives the image readers open are not decoded as
			// bytes too (nor spend the host's decoding budget): the key
			// in disk.raw.xz's decoded bytes is found there only when
			// images are not opened.
			var decoded []string
			for _, f := range rep.Findings {
				for _, l := range f.Locations {
					if f.Fingerprint == fp(bytes.TrimRight(key, "\n")) && l.View == "host.raw#current" && len(l.Decoded) > 0 {
						decoded = append(decoded, l.Path+" "+chainText(l))
					}
				}
			}
			if wantDecoded := c.name == "no-nested-images"; wantDecoded != (len(decoded) > 0) || wantDecoded && !slices.Equal(decoded, []string{"/srv/images/disk.raw.xz xz"}) {
				t.Errorf("the key decoded in the host's view at %q", decoded)
			}
			var want []string
			for _, name := range c.opened {
				member := map[string]string{"/srv/images/vm.qcow2.gz": "vm.qcow2", "/srv/images/disk.raw.xz": "disk.raw",
					"/srv/boxes/web.box": "box.img", "/srv/boxes/plain.tar": "box.img", "/srv/boxes/appliance.zip": "disk1.vmdk"}[name]
				want = append(want, prefix+name+"#current:"+member+" /etc/ssh/ssh_host_ed25519_key live")
			}
			slices.Sort(want)
			if !slices.Equal(inner, want) {
				t.Errorf("the key inside the archives:\n%s\nwant\n%s", strings.Join(inner, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// TestNestedVDIProbedForParent: in a guest's filesystem, a VDI
// differencing image opens every .vdi beside it to find its parent by
// UUID; the one it keeps (base.vdi) is read through it, and the one it
// only looked at (another VM's aaa.vdi) stays a target of its own, its
// filesystem read (before, it was dropped as if the child read it).
func TestNestedVDIProbedForParent(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "ssh-keygen")
	dir := t.TempDir()
	key := freshKey(t, dir, "other")
	os.MkdirAll(filepath.Join(dir, "other/etc/ssh"), 0o755)
	os.WriteFile(filepath.Join(dir, "other/etc/ssh/ssh_host_ed25519_key"), key, 0o600)
	images := filepath.Join(dir, "host/var/lib/vbox")
	os.MkdirAll(images, 0o755)
	testutil.Bash(t, dir, `set -e
mkfs.ext4 -q -F -d other other.raw 16M
qemu-img convert -O vdi other.raw host/var/lib/vbox/aaa.vdi
qemu-img create -q -f vdi host/var/lib/vbox/base.vdi 16M
qemu-img create -q -f vdi host/var/lib/vbox/child.vdi 16M`)
	child := testutil.FileSnapshot(t, filepath.Join(images, "child.vdi"))
	base := testutil.FileSnapshot(t, filepath.Join(images, "base.vdi"))
	child[0x4C] = 4 // differencing, linked to base.vdi (VDICore.h)
	copy(child[0x1A8:0x1B8], base[0x188:0x198])
	copy(child[0x1B8:0x1C8], base[0x198:0x1A8])
	if err := os.WriteFile(filepath.Join(images, "child.vdi"), child, 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(dir, "host.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(dir, "host"), img, "96M")
	rep := scanFile(t, scanner.Options{}, img)
	prefix := "host.raw#current:disk:/var/lib/vbox/"
	var targets []string
	for _, tg := range rep.Targets {
		targets = append(targets, tg.Path)
	}
	slices.Sort(targets)
	if want := []string{img, prefix + "aaa.vdi", prefix + "child.vdi"}; !slices.Equal(targets, want) {
		t.Errorf("targets %q, want %q", targets, want)
	}
	var at []string
	for _, l := range findingOf(t, rep, fp(bytes.TrimRight(key, "\n"))).Locations {
		at = append(at, l.View+" "+l.Path)
	}
	if !slices.Contains(at, prefix+"aaa.vdi#current /etc/ssh/ssh_host_ed25519_key") {
		t.Errorf("the key at %q, want it at its path in aaa.vdi", at)
	}
}
