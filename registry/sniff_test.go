package registry

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestSniffDisk: files made by the real tools, as a layer would carry
// them. Only a disk or memory image known by its magic number, or a raw
// disk of at least minRawDisk bytes with a table or filesystem, is read in
// place; compressed files are never, whatever they hold (the decode pass
// reads them as streams).
func TestSniffDisk(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "sfdisk", "mkfs.ext4", "gzip", "xz", "zstd", "tar")
	dir := t.TempDir()
	testutil.Bash(t, dir, `
qemu-img create -q -f qcow2 disk.qcow2 64M
qemu-img create -q -f vmdk -o subformat=monolithicSparse sparse.vmdk 64M
qemu-img create -q -f vmdk -o subformat=twoGbMaxExtentFlat flat.vmdk 64M
truncate -s 8M gpt.raw && echo 'label: gpt' | sfdisk -q gpt.raw
truncate -s 8M fs.raw && mkfs.ext4 -q fs.raw
gzip -k gpt.raw && xz -k fs.raw && zstd -q disk.qcow2 -o disk.qcow2.zst
tar -czf disks.tar.gz disk.qcow2 gpt.raw
echo 'NPM_TOKEN=x' > text
`)
	cases := []struct {
		file, layerPath, want string
	}{
		{"disk.qcow2", "/srv/disk.qcow2", "qcow2"},
		{"sparse.vmdk", "/srv/sparse.vmdk", "vmdk"},
		{"flat.vmdk", "/srv/flat.vmdk", ""}, // a text descriptor: its extents are other files
		{"gpt.raw", "/srv/gpt.raw", "raw-gpt"},
		{"fs.raw", "/srv/fs.raw", "raw-ext4"},
		{"gpt.raw.gz", "/srv/gpt.raw.gz", ""},
		{"fs.raw.xz", "/disk/fs.raw.xz", ""},
		{"disk.qcow2.zst", "/srv/disk.qcow2.zst", ""},
		{"disks.tar.gz", "/srv/disks.tar.gz", ""},
		{"text", "/disk/text.img", "raw"}, // KubeVirt's containerDisk convention, but only from minRawDisk up
		{"text", "/etc/text", ""},
	}
	for _, c := range cases {
		t.Run(c.file+" at "+c.layerPath, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(dir, c.file))
			if err != nil {
				t.Fatal(err)
			}
			size := int64(len(b))
			if c.file == "text" && c.want == "raw" {
				size = minRawDisk // a containerDisk's raw disk, whose head is text
			}
			if got := sniffDisk(b[:min(len(b), sniffHead)], size, c.layerPath); got != c.want {
				t.Errorf("sniffDisk = %q, want %q", got, c.want)
			}
		})
	}
}
