package ova_test

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// tarballDisks makes, with the real tools, an ext4 disk (mkfs.ext4 -d)
// holding a file, its qcow2 (qemu-img convert), and the tarballs that
// ship such disks: a GCE image (tar --format=oldgnu -Sczf of disk.raw, a
// GNU sparse member; and the same through xz), a Vagrant libvirt box
// (tar.gz of metadata.json, Vagrantfile and box.img, a qcow2; and a
// tar.zst of it), a plain tar and a plain sparse tar.
// It returns the directory and each disk's bytes as `qemu-img convert -O
// raw` writes them.
func tarballDisks(t *testing.T) (string, map[string][]byte) {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "tar", "gzip", "xz", "zstd")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
mkdir -p root/etc/app
printf 'api_token = TARBALL-PLANTED-SECRET-7c2a\n' > root/etc/app/credentials
truncate -s 48M disk.raw
mkfs.ext4 -q -d root disk.raw
qemu-img convert -f raw -O qcow2 disk.raw box.img
echo '{"provider":"libvirt","format":"qcow2","virtual_size":1}' > metadata.json
echo 'Vagrant.configure("2") do |config| end' > Vagrantfile
tar --format=oldgnu -Sczf gce.tar.gz disk.raw
tar czf libvirt.box metadata.json Vagrantfile box.img
tar cf plain.tar metadata.json disk.raw
tar -Scf sparse.tar disk.raw
tar --format=oldgnu -Scf - disk.raw | xz -T1 > gce.tar.xz
tar cf - metadata.json box.img | zstd -q > libvirt.tar.zst
qemu-img convert -O raw box.img box.raw
mkdir src && cp root/etc/app/credentials src/ && tar czf source.tar.gz src
`)
	want := map[string][]byte{}
	for name, file := range map[string]string{"disk.raw": "disk.raw", "box.img": "box.raw"} {
		b, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		want[name] = b
	}
	return dir, want
}

// TestTarball: each tarball opens as the disks it ships, each view's bytes
// identical to what qemu-img convert -O raw gives of the disk; a
// compressed one's disk is spooled with its zero blocks as holes (its
// allocated extents are its data, not its size). A tar of files that are
// no disks stays a raw file, for the decoders.
func TestTarball(t *testing.T) {
	dir, want := tarballDisks(t)
	for _, c := range []struct {
		file, member, format string
		spooled              bool // expanded to a temporary file, zero blocks as holes
	}{
		{"gce.tar.gz", "disk.raw", "raw", true},
		{"libvirt.box", "box.img", "qcow2", true},
		{"plain.tar", "disk.raw", "raw", false},
		{"sparse.tar", "disk.raw", "raw", true},
		{"gce.tar.xz", "disk.raw", "raw", true},
		{"libvirt.tar.zst", "box.img", "qcow2", true},
	} {
		t.Run(c.file, func(t *testing.T) {
			before := testutil.FileSnapshot(t, filepath.Join(dir, c.file))
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{})
			if im.Format != "tar" || len(im.Views) == 0 || len(im.Errors) != 0 {
				t.Fatalf("format %q, %d views, errors %v", im.Format, len(im.Views), im.Errors)
			}
			v := im.Views[0]
			if v.ID != c.file+"#current:"+c.member || v.Kind != model.KindCurrent || v.Incomplete != nil {
				t.Errorf("view %q kind %s incomplete %v", v.ID, v.Kind, v.Incomplete)
			}
			got := viewBytes(t, v)
			if !bytes.Equal(got, want[c.member]) {
				t.Errorf("%s: %d bytes, not what qemu-img convert -O raw gives (%d bytes)", c.member, len(got), len(want[c.member]))
			}
			if !strings.Contains(strings.Join(v.Notes, " "), c.format+" disk") {
				t.Errorf("notes %q do not name the %s disk", v.Notes, c.format)
			}
			var allocated int64
			for e, err := range v.Disk.Extents(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				allocated += e.Length
			}
			if c.member == "disk.raw" && c.spooled != (allocated < v.Disk.Size()/4) {
				t.Errorf("%d of %d bytes allocated", allocated, v.Disk.Size())
			}
			if !bytes.Equal(before, testutil.FileSnapshot(t, filepath.Join(dir, c.file))) {
				t.Errorf("%s changed", c.file)
			}
		})
	}
	b, err := os.ReadFile(filepath.Join(dir, "source.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if m := formats.Probe(b[:min(len(b), formats.HeadLen)], bytes.NewReader(b), int64(len(b)), "source.tar.gz"); m.Name != "raw" {
		t.Errorf("a tar.gz of files probes as %q", m.Name)
	}
}

// TestTarballInflateBound: past --max-inflate, the disk being inflated is
// cut there, read up to the cut, and its view says so, naming the file
// and the offset of the member in it; the temporary file holds no more
// than the bound. A gzip of 256 MiB of zeros behind a partition table
// stays inside a 16 MiB bound.
func TestTarballInflateBound(t *testing.T) {
	dir, _ := tarballDisks(t)
	testutil.Bash(t, dir, `
truncate -s 256M zeros.raw
printf '\x55\xaa' | dd of=zeros.raw bs=1 seek=510 conv=notrunc status=none
printf '\x80\x00\x00\x00\x83\x00\x00\x00\x00\x08\x00\x00\x00\x00\x01\x00' | dd of=zeros.raw bs=1 seek=446 conv=notrunc status=none
tar czf bomb.tar.gz zeros.raw
`)
	for _, c := range []struct {
		file  string
		bound int64
	}{
		{"gce.tar.gz", 4 << 20},
		{"bomb.tar.gz", 16 << 20},
	} {
		t.Run(c.file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{MaxInflate: c.bound})
			if len(im.Views) != 1 {
				t.Fatalf("%d views, errors %v", len(im.Views), im.Errors)
			}
			v := im.Views[0]
			if v.Incomplete == nil || !strings.Contains(v.Incomplete.Error(), c.file+": offset ") || !strings.Contains(v.Incomplete.Error(), "--max-inflate") {
				t.Errorf("incomplete: %v", v.Incomplete)
			}
			if v.Disk.Size() > c.bound {
				t.Errorf("%d bytes inflated, bound %d", v.Disk.Size(), c.bound)
			}
		})
	}
}

// openArchive opens path as formats.Open does, closing it when t ends.
func openArchive(t *testing.T, path string, opts model.Options) *model.Image {
	t.Helper()
	im, err := formats.Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("%s: %v", filepath.Base(path), err)
	}
	t.Cleanup(func() { im.Close() })
	return im
}

// checkDiskView fails t unless im is of format, opened without errors,
// and its first view is id, complete, with note among its notes, and
// reads want (what qemu-img convert -O raw gives of the disk).
func checkDiskView(t *testing.T, im *model.Image, format, id, note string, want []byte) {
	t.Helper()
	if im.Format != format || len(im.Views) == 0 || len(im.Errors) != 0 {
		t.Fatalf("format %q, %d views, errors %v", im.Format, len(im.Views), im.Errors)
	}
	v := im.Views[0]
	if v.ID != id || v.Incomplete != nil || !strings.Contains(strings.Join(v.Notes, " "), note) {
		t.Errorf("view %q incomplete %v notes %q", v.ID, v.Incomplete, v.Notes)
	}
	if got := viewBytes(t, v); !bytes.Equal(got, want) {
		t.Errorf("%d bytes, not what qemu-img convert -O raw gives (%d bytes)", len(got), len(want))
	}
}

// viewBytes reads all of a view's disk.
func viewBytes(t *testing.T, v model.View) []byte {
	t.Helper()
	b := make([]byte, v.Disk.Size())
	if _, err := v.Disk.ReadAt(b, 0); err != nil && err != io.EOF {
		t.Fatalf("%s: %v", v.ID, err)
	}
	return b
}

// TestProbeTarballPlainHead: a file that is no tar is not read further
// than its head.
func TestProbeTarballPlainHead(t *testing.T) {
	head := make([]byte, 4096)
	if ova.ProbeTarball(head, failingReader{t}, 1<<40) {
		t.Errorf("zeros probe as a tarball")
	}
}

type failingReader struct{ t *testing.T }

func (f failingReader) ReadAt([]byte, int64) (int, error) {
	f.t.Errorf("ProbeTarball read past the head of a file that is no tar")
	return 0, io.EOF
}

// TestCompressedDisk: a disk compressed whole (xz, gzip, zstd, bzip2, as
// the tools write them) opens as its disk, its bytes identical to what
// qemu-img convert -O raw gives of it, spooled with its zero blocks as
// holes; past --max-inflate it is cut, and its view says where.
func TestCompressedDisk(t *testing.T) {
	testutil.RequireTool(t, "xz", "zstd", "bzip2")
	dir, want := tarballDisks(t)
	testutil.Bash(t, dir, `
xz -T1 -c disk.raw > disk.raw.xz
gzip -c box.img > box.img.gz
zstd -q -c disk.raw > disk.raw.zst
bzip2 -c disk.raw > disk.raw.bz2
gzip -c root/etc/app/credentials > credentials.gz
`)
	for _, c := range []struct{ file, inner, format string }{
		{"disk.raw.xz", "disk.raw", "raw"},
		{"box.img.gz", "box.img", "qcow2"},
		{"disk.raw.zst", "disk.raw", "raw"},
		{"disk.raw.bz2", "disk.raw", "raw"},
	} {
		t.Run(c.file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{})
			checkDiskView(t, im, "compressed", c.file+"#current:"+c.inner, c.format+" disk compressed whole", want[c.inner])
		})
	}
	im := openArchive(t, filepath.Join(dir, "disk.raw.xz"), model.Options{MaxInflate: 4 << 20})
	if v := im.Views[0]; v.Disk.Size() != 4<<20 || v.Incomplete == nil || !strings.Contains(v.Incomplete.Error(), "disk.raw.xz: offset ") {
		t.Errorf("cut at 4 MiB: %d bytes, %v", v.Disk.Size(), v.Incomplete)
	}
	b, err := os.ReadFile(filepath.Join(dir, "credentials.gz"))
	if err != nil {
		t.Fatal(err)
	}
	if m := formats.Probe(b, bytes.NewReader(b), int64(len(b)), "credentials.gz"); m.Name != "raw" {
		t.Errorf("a gzip'd text file probes as %q", m.Name)
	}
}

// TestTarballManyDisks: a tar of 300 members that each start like a disk
// (a boot signature) gives 256 views, and says that it opened no more.
func TestTarballManyDisks(t *testing.T) {
	testutil.RequireTool(t, "tar")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
mkdir m
{ head -c 510 /dev/zero; printf '\x55\xaa'; } > m/000
for i in $(seq 1 299); do cp m/000 m/$(printf %03d $i); done
tar cf many.tar -C m .
`)
	im := openArchive(t, filepath.Join(dir, "many.tar"), model.Options{})
	if len(im.Views) != 256 || len(im.Errors) != 300-256 || !strings.Contains(im.Errors[0].Error(), "already has 256 disks") {
		t.Errorf("%d views, %d errors (%v)", len(im.Views), len(im.Errors), im.Errors[:min(len(im.Errors), 1)])
	}
}

// TestZip: zips as appliances are downloaded: a deflated qcow2, a stored
// raw disk (read in place) and an OVA (an OVF and a streamOptimized VMDK,
// as tar writes it) open as their disks, each view's bytes identical to
// what qemu-img convert -O raw gives; past --max-inflate the deflated
// disk is cut and its view says so.
func TestZip(t *testing.T) {
	testutil.RequireTool(t, "zip")
	dir, want := tarballDisks(t)
	testutil.Bash(t, dir, `
zip -q app.zip metadata.json box.img
zip -q -0 stored.zip disk.raw
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw d1.vmdk
cat > vm.ovf <<'OVF'
<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="d1.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="50331648" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
</Envelope>
OVF
sha256sum --tag d1.vmdk vm.ovf > vm.mf
head -c 128K /dev/urandom > vm.nvram
tar --format=ustar -cf vm.ova vm.ovf d1.vmdk vm.mf vm.nvram
zip -q ova.zip vm.ova
`)
	for _, c := range []struct{ file, view, disk, note string }{
		{"app.zip", "app.zip#current:box.img", "box.img", "qcow2 disk in the archive member box.img"},
		{"stored.zip", "stored.zip#current:disk.raw", "disk.raw", "raw disk read in place from the stored zip member disk.raw"},
		{"ova.zip", "ova.zip#current:vm.ova#d1.vmdk", "disk.raw", "ova disk in the archive member vm.ova"},
	} {
		t.Run(c.file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{})
			checkDiskView(t, im, "zip", c.view, c.note, want[c.disk])
		})
	}
	im := openArchive(t, filepath.Join(dir, "app.zip"), model.Options{MaxInflate: 256 << 10})
	if v := im.Views[0]; v.Incomplete == nil || !strings.Contains(v.Incomplete.Error(), "app.zip: offset ") {
		t.Errorf("cut at 256 KiB: %v", v.Incomplete)
	}
}

// TestArchivedDiskBacking: a qcow2 whose backing file is /etc/passwd,
// shipped in a plain tar, a tar.gz, a zip or gzip'd whole, opens without
// following it: the image's errors say it is not followed, naming the
// member and the offset of the name in it, so the run is incomplete. In
// a plain tar, a backing file that is another member is followed there
// (the tar's index resolves names inside the archive only), and is no
// disk of its own.
func TestArchivedDiskBacking(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "tar", "gzip", "zip")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
qemu-img create -q -f qcow2 -b /etc/passwd -F raw evil.qcow2 16M
tar cf evil.tar evil.qcow2
tar czf evil.tar.gz evil.qcow2
zip -q evil.zip evil.qcow2
gzip -c evil.qcow2 > evil.qcow2.gz
qemu-img create -q -f qcow2 base.qcow2 16M
qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2
tar cf chain.tar overlay.qcow2 base.qcow2
`)
	im := openArchive(t, filepath.Join(dir, "chain.tar"), model.Options{})
	var ids []string
	for _, v := range im.Views {
		ids = append(ids, v.ID)
	}
	if len(im.Errors) != 0 || !slices.Contains(ids, "chain.tar#backing:overlay.qcow2#base.qcow2") {
		t.Errorf("chain.tar: views %q, errors %v", ids, im.Errors)
	}
	if len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		t.Errorf("chain.tar: view IDs repeat: %q", ids)
	}
	if slices.Contains(ids, "chain.tar#current:base.qcow2") {
		t.Errorf("chain.tar: the overlay's base is also a disk of its own: %q", ids)
	}
	for _, file := range []string{"evil.tar", "evil.tar.gz", "evil.zip", "evil.qcow2.gz"} {
		im := openArchive(t, filepath.Join(dir, file), model.Options{})
		msg := fmt.Sprint(im.Errors)
		refused := strings.Contains(msg, "not followed") || strings.Contains(msg, "no such member in the layer or archive")
		if len(im.Views) == 0 || !strings.Contains(msg, `backing file "/etc/passwd"`) || !refused || !strings.Contains(msg, "offset ") {
			t.Errorf("%s: %d views, errors %s", file, len(im.Views), msg)
		}
	}
}

// TestArchiveFiles: the members of an archive that are no disk are
// scanned as files, each a view of its own with its bytes: a Vagrantfile
// and metadata.json in a tar.gz (decompressed) and in a plain tar (in
// place), deflated and stored in a zip, and an OVA's .ovf descriptor,
// manifest and NVRAM file (the disk's own member is no file view). An
// empty member gives no view. A large member (6 MiB, over what is held in
// memory) is spooled from a tar.gz, a tar.zst and a deflated zip member,
// read in place from a plain tar and a stored zip member; a sparse one
// (GNU tar -S, not stored in one piece) is expanded.
func TestArchiveFiles(t *testing.T) {
	testutil.RequireTool(t, "zip")
	dir, _ := tarballDisks(t)
	testutil.Bash(t, dir, `
: > empty
{ head -c 3M /dev/urandom; printf 'BUNDLE-PLANTED-SECRET'; head -c 3M /dev/urandom; } > bundle.bin
truncate -s 16M holes.bin && printf 'SPARSE-PLANTED-SECRET' | dd of=holes.bin bs=1 seek=9M conv=notrunc status=none
tar cf files.tar metadata.json Vagrantfile empty disk.raw bundle.bin
zip -q files.zip box.img Vagrantfile bundle.bin && zip -q -0 files.zip metadata.json
zip -q -0 stored.zip box.img bundle.bin
tar czf big.tar.gz box.img bundle.bin Vagrantfile
tar cf - box.img bundle.bin | zstd -q > big.tar.zst
tar --format=gnu -Scf holes.tar disk.raw holes.bin
qemu-img convert -f raw -O vmdk -o subformat=streamOptimized disk.raw d1.vmdk
cat > vm.ovf <<'OVF'
<?xml version="1.0"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="d1.vmdk" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="50331648" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <ProductSection><Property ovf:key="guestinfo.admin.password" ovf:value="planted"/></ProductSection>
</Envelope>
OVF
sha256sum --tag d1.vmdk vm.ovf > vm.mf
head -c 128K /dev/urandom > vm.nvram
tar --format=ustar -cf vm.ova vm.ovf d1.vmdk vm.mf vm.nvram
`)
	for _, c := range []struct {
		file  string
		files []string
	}{
		{"libvirt.box", []string{"metadata.json", "Vagrantfile"}},
		{"files.tar", []string{"metadata.json", "Vagrantfile", "bundle.bin"}},
		{"files.zip", []string{"Vagrantfile", "bundle.bin", "metadata.json"}},
		{"stored.zip", []string{"bundle.bin"}},
		{"big.tar.gz", []string{"bundle.bin", "Vagrantfile"}},
		{"big.tar.zst", []string{"bundle.bin"}},
		{"holes.tar", []string{"holes.bin"}},
		{"vm.ova", []string{"vm.ovf", "vm.mf", "vm.nvram"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{})
			var got []string
			for _, v := range im.Views {
				if v.Attrs["archive_file"] != "true" {
					continue
				}
				got = append(got, v.Name)
				want, err := os.ReadFile(filepath.Join(dir, v.Name))
				if err != nil {
					t.Fatal(err)
				}
				if v.ID != c.file+"#current:"+v.Name || v.Kind != model.KindCurrent || !bytes.Equal(viewBytes(t, v), want) || v.Incomplete != nil {
					t.Errorf("view %q (%s, incomplete %v): not the bytes of %s", v.ID, v.Kind, v.Incomplete, v.Name)
				}
			}
			if !slices.Equal(got, c.files) || im.Views[0].Attrs["archive_file"] != "" {
				t.Errorf("file views %q, want %q after the disks'", got, c.files)
			}
		})
	}
}

// TestArchiveFilesBounds: what an archive ships beside its disks is read
// within bounds, and what is left unread is an error, never only a note:
// past the inflate bound a spooled member is cut there and its view is
// incomplete; past maxFileViews (256) members, the rest are not scanned,
// and the image says so in an error (the run is incomplete, so the gate
// fails closed).
func TestArchiveFilesBounds(t *testing.T) {
	dir, _ := tarballDisks(t)
	testutil.Bash(t, dir, `
head -c 8M /dev/urandom > bundle.bin
tar czf big.tar.gz box.img bundle.bin
mkdir many && for i in $(seq 300); do echo "file $i" > many/f$i.txt; done
tar czf many.tar.gz box.img many
`)
	im := openArchive(t, filepath.Join(dir, "big.tar.gz"), model.Options{MaxInflate: 8 << 20})
	var cut *model.View
	for i, v := range im.Views {
		if v.Name == "bundle.bin" {
			cut = &im.Views[i]
		}
	}
	if cut == nil || cut.Incomplete == nil || !strings.Contains(cut.Incomplete.Error(), "--max-inflate") || cut.Disk.Size() > 8<<20 {
		t.Errorf("bundle.bin past the inflate bound: view %+v", cut)
	}
	im = openArchive(t, filepath.Join(dir, "many.tar.gz"), model.Options{})
	files := 0
	for _, v := range im.Views {
		if v.Attrs[model.AttrArchiveFile] == "true" {
			files++
		}
	}
	errs := errors.Join(im.Errors...)
	if files != 256 || errs == nil || !strings.Contains(errs.Error(), "44 members of the archive not scanned") {
		t.Errorf("%d file views, errors %v; want 256 and an error for the other 44", files, errs)
	}
}

// TestArchivedSplitVMDK: a VMware Workstation disk split in 2 GiB extents
// (a descriptor and its -s001, -s002 sparse extents, as qemu-img's
// twoGbMaxExtentSparse writes them) with a snapshot over it (its own
// descriptor and extents, parentFileNameHint the base), shipped in a
// plain tar, a tar.gz, a deflated and a stored zip, the extents before
// the descriptors. Each opens as one disk, the snapshot's descriptor,
// with the base as its backing view: the descriptors' names resolve to
// the archive's members, and the members a disk reads are no disks or
// files of their own. The bytes are qemu-img convert -O raw's, on both
// sides of the 2 GiB extent boundary. Before, each extent was a disk of
// its own, its filesystem cut at 2 GiB, and a descriptor a file.
func TestArchivedSplitVMDK(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "tar", "gzip", "zip")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
truncate -s 2100M d.raw
head -c 1M /dev/urandom | dd of=d.raw conv=notrunc status=none
head -c 1M /dev/urandom | dd of=d.raw bs=1M seek=2047 conv=notrunc status=none
qemu-img convert -f raw -O vmdk -o subformat=twoGbMaxExtentSparse d.raw vm.vmdk
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentSparse -b vm.vmdk -F vmdk top.vmdk
qemu-io -c "write -P 0x5a 2070M 1M" -c "write -P 0xa5 4M 64K" top.vmdk > /dev/null
qemu-img convert -O raw top.vmdk top.raw
set -- top-s002.vmdk vm-s001.vmdk top-s001.vmdk vm-s002.vmdk top.vmdk vm.vmdk
tar cf split.tar "$@"
tar czf split.tar.gz "$@"
zip -q split.zip "$@"
zip -q -0 split0.zip "$@"
`)
	ref, err := os.Open(filepath.Join(dir, "top.raw"))
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	for _, file := range []string{"split.tar", "split.tar.gz", "split.zip", "split0.zip"} {
		t.Run(file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, file), model.Options{})
			var current *model.View
			var ids []string
			for i, v := range im.Views {
				ids = append(ids, v.ID)
				if v.Kind == model.KindCurrent {
					current = &im.Views[i]
				}
			}
			if len(im.Errors) > 0 || current == nil || current.ID != file+"#current:top.vmdk" || !slices.Contains(ids, file+"#backing:top.vmdk#vm.vmdk") {
				t.Fatalf("views %q, errors %v", ids, im.Errors)
			}
			if current.Disk.Size() != 2100<<20 {
				t.Errorf("current view: %d bytes, want %d", current.Disk.Size(), 2100<<20)
			}
			for _, off := range []int64{0, 4 << 20, 2047 << 20, 2048<<20 - 4096, 2070 << 20, 2099 << 20} {
				got, want := make([]byte, 1<<20), make([]byte, 1<<20)
				current.Disk.ReadAt(got, off)
				ref.ReadAt(want, off)
				if !bytes.Equal(got, want) {
					t.Errorf("current view at %d: not qemu-img's bytes", off)
				}
			}
		})
	}
}

// TestArchivedMemory: a guest's memory, captured by QEMU (an ELF core
// from dump-guest-memory, a migration stream), shipped in a tar.gz and a
// zip beside a file, or gzip'd whole, opens as memory: each a memory view
// from which every planted run reads back at its guest-physical address.
// So does a .vmem (VMware guest memory, no magic number: its name says
// so), here the ELF core's memory laid out raw. Before, each was a file,
// scanned as bytes with no memory view (no key-schedule search).
func TestArchivedMemory(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "zip")
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf", `migrate "exec:cat > {dir}/mig.bin"`)
	dir := vm.Dir
	// The .vmem: the guest's RAM as the core holds it, laid out raw (what
	// a VMware .vmem of a guest this small holds).
	ef, err := os.Open(vm.Path("dump.elf"))
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	fi, _ := ef.Stat()
	ed, _, _, err := elfcore.NewDisk(vm.Path("dump.elf"), ef, fi.Size())
	if err != nil {
		t.Fatal(err)
	}
	ram := make([]byte, 64<<20)
	ed.ReadAt(ram, 0)
	if err := os.WriteFile(vm.Path("vm.vmem"), ram, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, `
echo notes > notes.txt
tar czf mem.tar.gz notes.txt dump.elf mig.bin vm.vmem
zip -q mem.zip notes.txt dump.elf mig.bin vm.vmem
gzip -c dump.elf > dump.elf.gz
`)
	for _, c := range []struct {
		file    string
		members []string
	}{
		{"mem.tar.gz", []string{"dump.elf", "mig.bin", "vm.vmem"}},
		{"mem.zip", []string{"dump.elf", "mig.bin", "vm.vmem"}},
		{"dump.elf.gz", []string{"dump.elf"}},
	} {
		t.Run(c.file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, c.file), model.Options{})
			if len(im.Errors) > 0 {
				t.Fatalf("errors: %v", im.Errors)
			}
			var got []string
			for _, v := range im.Views {
				if v.Kind != model.KindMemory || strings.Contains(v.Name, "#") {
					continue // a ROM or VRAM block of a migration stream
				}
				got = append(got, v.Name)
				qemufixture.CheckPlants(t, v.ID, v.Disk, vm.Plants)
			}
			if !slices.Equal(got, c.members) {
				t.Errorf("memory views of %q, want %q", got, c.members)
			}
		})
	}
}

// TestArchiveRepeatedNames: a tar that holds a name twice (tar -r
// appends: a disk and a file written again) gives every copy a view with
// an ID of its own, "~2" on the later one, each reading its own copy:
// both ship in the archive, though extraction keeps the later.
func TestArchiveRepeatedNames(t *testing.T) {
	testutil.RequireTool(t, "tar", "mkfs.ext4")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
mkdir r && echo one > r/a
truncate -s 8M disk.raw && mkfs.ext4 -q -d r disk.raw && cp disk.raw first.raw
echo 'first' > Vagrantfile && tar cf d.tar disk.raw Vagrantfile
echo two > r/b && mkfs.ext4 -q -F -d r disk.raw
echo 'second' > Vagrantfile && tar rf d.tar disk.raw Vagrantfile
`)
	im := openArchive(t, filepath.Join(dir, "d.tar"), model.Options{})
	want := map[string]string{
		"d.tar#current:disk.raw":      "first.raw",
		"d.tar#current:disk.raw~2":    "disk.raw",
		"d.tar#current:Vagrantfile":   "first",
		"d.tar#current:Vagrantfile~2": "second",
	}
	seen := 0
	for _, v := range im.Views {
		w, ok := want[v.ID]
		if !ok {
			continue
		}
		seen++
		wb := []byte(w + "\n")
		if strings.HasSuffix(w, ".raw") {
			var err error
			if wb, err = os.ReadFile(filepath.Join(dir, w)); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(viewBytes(t, v), wb) {
			t.Errorf("%s: not the bytes of its copy (%s)", v.ID, w)
		}
	}
	if seen != len(want) || len(im.Errors) > 0 {
		var ids []string
		for _, v := range im.Views {
			ids = append(ids, v.ID)
		}
		t.Errorf("views %q, errors %v", ids, im.Errors)
	}
}

// TestZipMemberBound: a zip of a disk and 120,000 tiny deflated files
// (written by archive/zip) reads its first 100,000 members only, and says
// so in an error, so the run is incomplete; the disk, the first member,
// is still opened. Past the 256 files scanned beside the disk, the rest
// are an error too.
func TestZipMemberBound(t *testing.T) {
	dir, want := tarballDisks(t)
	p := filepath.Join(dir, "many.zip")
	out, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	zw := zip.NewWriter(out)
	w, _ := zw.CreateHeader(&zip.FileHeader{Name: "disk.raw", Method: zip.Deflate})
	w.Write(want["disk.raw"])
	for i := range 120000 {
		w, _ := zw.CreateHeader(&zip.FileHeader{Name: fmt.Sprintf("f%06d.txt", i), Method: zip.Deflate})
		w.Write([]byte("x"))
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	out.Close()
	im := openArchive(t, p, model.Options{})
	errs := errors.Join(im.Errors...)
	if errs == nil || !strings.Contains(errs.Error(), "more than 100000 zip members: the other 20001 are not read") || !strings.Contains(errs.Error(), "99743 members of the archive not scanned") {
		t.Errorf("errors: %v", errs)
	}
	if len(im.Views) == 0 || im.Views[0].ID != "many.zip#current:disk.raw" || !bytes.Equal(viewBytes(t, im.Views[0]), want["disk.raw"]) {
		t.Errorf("the disk was not opened")
	}
}

// countingReaderAt counts the ReadAt calls made of it.
type countingReaderAt struct {
	r     io.ReaderAt
	calls int
}

func (c *countingReaderAt) ReadAt(b []byte, off int64) (int, error) {
	c.calls++
	return c.r.ReadAt(b, off)
}

// TestStreamProbe: one StreamProbe answers both probes of a compressed
// file from one read of it, and as ProbeTarball and ProbeCompressed
// answer alone: a gzip'd and a zstd'd tarball of disks (tar), a gzip'd
// qcow2 and an xz'd raw disk (compressed whole), a gzip'd text file
// (neither).
func TestStreamProbe(t *testing.T) {
	dir, _ := tarballDisks(t)
	testutil.Bash(t, dir, `
gzip -c box.img > box.img.gz
xz -T1 -c disk.raw > disk.raw.xz
gzip -c root/etc/app/credentials > credentials.gz`)
	for _, c := range []struct {
		file          string
		tarball, disk bool
	}{
		{"gce.tar.gz", true, false},
		{"libvirt.tar.zst", true, false},
		{"box.img.gz", false, true},
		{"disk.raw.xz", false, true},
		{"credentials.gz", false, false},
	} {
		b, err := os.ReadFile(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		head := b[:min(len(b), 4096)]
		r := &countingReaderAt{r: bytes.NewReader(b)}
		var p ova.StreamProbe
		tarball, disk := p.Tarball(head, r, int64(len(b))), p.Compressed(head, r, int64(len(b)))
		if tarball != c.tarball || disk != c.disk || r.calls != 1 {
			t.Errorf("%s: tarball %v, disk %v, %d reads; want %v, %v, 1 read", c.file, tarball, disk, r.calls, c.tarball, c.disk)
		}
		alone := bytes.NewReader(b)
		if ova.ProbeTarball(head, alone, int64(len(b))) != tarball || ova.ProbeCompressed(head, alone, int64(len(b))) != disk {
			t.Errorf("%s: the probes alone answer otherwise", c.file)
		}
	}
}

// TestArchivedDiskProbedForParent: a VDI differencing image in a tar
// looks for its parent by opening every .vdi beside it and comparing
// UUIDs: the one it keeps (its parent) is its, and the one it closes
// (another VM's disk) stays a disk of its own, in a tar, a tar.gz and a
// zip. Before, every .vdi it had opened counted as read by it, and the
// other disk was dropped unread.
func TestArchivedDiskProbedForParent(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "tar", "zip")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
qemu-img create -q -f vdi base.vdi 16M
qemu-img create -q -f vdi child.vdi 16M
qemu-img create -q -f vdi aaa.vdi 16M`)
	// child.vdi becomes a differencing image of base.vdi (VDICore.h: image
	// type 4, linkage UUID = the parent's creation UUID, parent
	// modification UUID = the parent's modification UUID).
	child := testutil.FileSnapshot(t, filepath.Join(dir, "child.vdi"))
	base := testutil.FileSnapshot(t, filepath.Join(dir, "base.vdi"))
	child[0x4C] = 4
	copy(child[0x1A8:0x1B8], base[0x188:0x198])
	copy(child[0x1B8:0x1C8], base[0x198:0x1A8])
	if err := os.WriteFile(filepath.Join(dir, "child.vdi"), child, 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, `set -e
tar cf vms.tar child.vdi base.vdi aaa.vdi
tar czf vms.tar.gz child.vdi base.vdi aaa.vdi
zip -q vms.zip child.vdi base.vdi aaa.vdi`)
	for _, file := range []string{"vms.tar", "vms.tar.gz", "vms.zip"} {
		t.Run(file, func(t *testing.T) {
			im := openArchive(t, filepath.Join(dir, file), model.Options{})
			var ids []string
			for _, v := range im.Views {
				if v.Kind == model.KindCurrent || v.Kind == model.KindBacking {
					ids = append(ids, v.ID)
				}
			}
			slices.Sort(ids)
			want := []string{file + "#backing:child.vdi#base.vdi", file + "#current:aaa.vdi", file + "#current:child.vdi"}
			if len(im.Errors) != 0 || !slices.Equal(ids, want) {
				t.Errorf("views %q, errors %v; want %q", ids, im.Errors, want)
			}
		})
	}
}
