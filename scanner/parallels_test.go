package scanner_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestParallelsDiskAttributed: a Parallels disk (qemu-img convert -O
// parallels of an ext4 filesystem made by mkfs.ext4 -d, one of its two
// keys then deleted by debugfs) is read through its BAT, so its findings
// carry the filesystem's paths and states: the kept key live at its
// path, the deleted one in free space, deleted. Read as raw bytes (as
// before the format was known), neither had a path or a state.
func TestParallelsDiskAttributed(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "openssl", "qemu-img")
	dir := t.TempDir()
	testutil.Bash(t, dir, `set -e
mkdir -p root/etc/ssl/private
openssl genpkey -algorithm ed25519 -out root/etc/ssl/private/kept.pem
openssl genpkey -algorithm ed25519 -out root/etc/ssl/private/old.pem
mkfs.ext4 -q -F -d root disk.raw 64M
debugfs -w -R "rm /etc/ssl/private/old.pem" disk.raw 2>/dev/null
qemu-img convert -f raw -O parallels disk.raw disk.hds`)
	rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.hds"))
	if len(rep.Targets) != 1 || rep.Targets[0].Format != "parallels" || !rep.Complete {
		t.Fatalf("targets %+v, complete %v", rep.Targets, rep.Complete)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.Rule != "private-key-pkcs8" {
			continue
		}
		for _, l := range f.Locations {
			got = append(got, fmt.Sprintf("%s %s %s %s", l.View, l.Path, l.State, l.Exposure))
		}
	}
	slices.Sort(got)
	want := []string{
		"disk.hds#current  free deleted",
		"disk.hds#current /etc/ssl/private/kept.pem allocated live",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestParallelsSnapshotChain: a Parallels disk bundle (an .hdd directory)
// after a snapshot: the root image as the snapshot left it (qemu-img
// convert of an ext4 filesystem holding two keys), and the top image
// holding what the guest wrote since (one key deleted by debugfs: the
// blocks that changed, written by qemu-io through QEMU's parallels driver
// with the root image as its backing), chained by the bundle's
// DiskDescriptor.xml. A scan of the directory reads the top image over
// its parent, as one target: the kept key live (and in the parent), the
// deleted one in free space and in the parent, which the guest cannot
// change.
func TestParallelsSnapshotChain(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "openssl", "qemu-img", "qemu-io", "cmp")
	dir := t.TempDir()
	const root, top = "disk.hdd.0.root.hds", "disk.hdd.0.{5fbaabe3-6958-40ff-92a7-860e329aab41}.hds"
	testutil.Bash(t, dir, `set -e
mkdir -p root/etc/ssl/private disk.hdd
openssl genpkey -algorithm ed25519 -out root/etc/ssl/private/kept.pem
openssl genpkey -algorithm ed25519 -out root/etc/ssl/private/old.pem
mkfs.ext4 -q -F -d root before.raw 32M
cp before.raw after.raw
debugfs -w -R "rm /etc/ssl/private/old.pem" after.raw 2>/dev/null
qemu-img convert -f raw -O parallels -o cluster_size=64k before.raw "disk.hdd/`+root+`"
qemu-img create -q -f parallels -o cluster_size=64k "disk.hdd/`+top+`" 32M
chain="driver=parallels,file.filename=disk.hdd/`+top+`,backing.driver=parallels,backing.file.filename=disk.hdd/`+root+`"
# cmp -l exits 1 when the files differ, as they do
{ cmp -l before.raw after.raw || true; } | awk '{ print int(($1 - 1) / 4096) }' | uniq | while read -r b; do
  dd if=after.raw of=block bs=4096 skip="$b" count=1 status=none
  qemu-io --image-opts -c "write -q -s block $((b * 4096)) 4096" "$chain"
done
qemu-img convert --image-opts "$chain" -O raw merged.raw
cmp merged.raw after.raw
cat > disk.hdd/DiskDescriptor.xml <<'XML'
<?xml version='1.0' encoding='UTF-8'?>
<Parallels_disk_image Version="1.0">
  <Disk_Parameters><Disk_size>65536</Disk_size><Cylinders>128</Cylinders><Heads>16</Heads><Sectors>32</Sectors><Padding>0</Padding></Disk_Parameters>
  <StorageData><Storage><Start>0</Start><End>65536</End><Blocksize>128</Blocksize>
    <Image><GUID>{1d6d4ad6-4d8e-4c5e-9c54-0f0a4b1f7a11}</GUID><Type>Compressed</Type><File>`+root+`</File></Image>
    <Image><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID><Type>Compressed</Type><File>`+top+`</File></Image>
  </Storage></StorageData>
  <Snapshots>
    <Shot><GUID>{1d6d4ad6-4d8e-4c5e-9c54-0f0a4b1f7a11}</GUID><ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID></Shot>
    <Shot><GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID><ParentGUID>{1d6d4ad6-4d8e-4c5e-9c54-0f0a4b1f7a11}</ParentGUID></Shot>
  </Snapshots>
</Parallels_disk_image>
XML`)
	before := testutil.FileSnapshot(t, filepath.Join(dir, "disk.hdd", root))
	rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{filepath.Join(dir, "disk.hdd")})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, testutil.FileSnapshot(t, filepath.Join(dir, "disk.hdd", root))) {
		t.Fatal("the parent image changed during the scan")
	}
	if len(rep.Targets) != 1 || !strings.HasSuffix(rep.Targets[0].Path, top) || !rep.Complete {
		t.Fatalf("targets %+v, complete %v: want the top image alone, its parent read through it", rep.Targets, rep.Complete)
	}
	var got []string
	for _, f := range rep.Findings {
		if f.Rule != "private-key-pkcs8" {
			continue
		}
		var at []string
		for _, l := range f.Locations {
			at = append(at, fmt.Sprintf("%s %s %s", strings.TrimPrefix(l.View, top), l.Path, l.Exposure))
		}
		slices.Sort(at)
		got = append(got, strings.Join(at, "; "))
	}
	slices.Sort(got)
	want := []string{
		"#backing:" + root + " /etc/ssl/private/kept.pem backing; #current /etc/ssl/private/kept.pem live",
		"#backing:" + root + " /etc/ssl/private/old.pem backing; #current  deleted",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
