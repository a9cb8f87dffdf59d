package formats_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/formats/parallels"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/qed"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/formats/vdi"
	"github.com/imgaudit/imgaudit/formats/vhd"
	"github.com/imgaudit/imgaudit/formats/vhdx"
	"github.com/imgaudit/imgaudit/formats/vma"
	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/formats/vmdk"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

type (
	openFunc func(context.Context, string, model.Options) (*model.Image, error)
	newFunc  = model.OpenFunc
)

// TestNewOverSection: every reader's io.ReaderAt constructor, given the
// image as a section of a larger file (embedded at a nonzero offset, as a
// disk lies inside a tar), gives the views that its path-based Open gives:
// the same IDs, kinds, sizes and bytes. The files the image names
// (backing files, extents) are opened through the same Opener.
func TestNewOverSection(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "tar", "zstd")
	dir := t.TempDir()
	pattern := filepath.Join(dir, "pattern.raw")
	b := make([]byte, 4<<20)
	for i := 0; i < len(b); i += 3 << 16 {
		copy(b[i:], bytes.Repeat([]byte{byte(i >> 16), 0x5a, 0xa5}, 10000))
	}
	if err := os.WriteFile(pattern, b, 0o644); err != nil {
		t.Fatal(err)
	}
	convert := func(name, format string, opts ...string) string {
		p := filepath.Join(dir, name)
		testutil.Run(t, "qemu-img", append(append([]string{"convert", "-f", "raw", "-O", format}, opts...), pattern, p)...)
		return p
	}
	base := convert("base.qcow2", "qcow2")
	overlay := filepath.Join(dir, "overlay.qcow2")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-b", "base.qcow2", "-F", "qcow2", overlay)
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x77 1M 64k", overlay)
	testutil.Run(t, "qemu-img", "snapshot", "-c", "golden", overlay)
	testutil.Run(t, "qemu-io", "-f", "qcow2", "-c", "write -q -P 0x66 1M 64k", overlay)

	streamVMDK := convert("stream.vmdk", "vmdk", "-o", "subformat=streamOptimized")
	os.WriteFile(filepath.Join(dir, "export.ovf"), []byte(ovfFor("stream.vmdk")), 0o644)
	ovaPath := filepath.Join(dir, "export.ova")
	testutil.Run(t, "tar", "--format=ustar", "-cf", ovaPath, "-C", dir, "export.ovf", "stream.vmdk")

	vmaPath := filepath.Join(dir, "vzdump-qemu-100-2024_05_06-07_08_09.vma")
	if err := vmatest.WriteFile(vmaPath, vmatest.Archive{UUID: [16]byte{1, 2, 3}, CTime: time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC),
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: b}}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "zstd", "-q", "-k", vmaPath)
	sparseVMDK := convert("sparse.vmdk", "vmdk")
	flatVMDK := convert("flat.vmdk", "vmdk", "-o", "subformat=monolithicFlat")
	dynVHD := convert("dyn.vhd", "vpc")
	fixedVHD := convert("fixed.vhd", "vpc", "-o", "subformat=fixed")
	vhdxPath := convert("a.vhdx", "vhdx")
	vdiPath := convert("a.vdi", "vdi")
	parallelsPath := convert("a.hds", "parallels", "-o", "cluster_size=64k")
	qedPath := convert("a.qed", "qed")
	qedOverlay := filepath.Join(dir, "overlay.qed")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "qed", "-b", "base.qcow2", "-F", "qcow2", qedOverlay)
	testutil.Run(t, "qemu-io", "-f", "qed", "-c", "write -q -P 0x55 2M 64k", qedOverlay)

	// The files are written out whole, without holes: a section of a
	// larger file has none to report, and the two reads should see the
	// same data, only reached differently.
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		data, err := os.ReadFile(p)
		if err == nil {
			err = os.WriteFile(p, data, 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	roots, err := hostfile.NewRoots(dir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		path  string
		open  openFunc
		new   newFunc
		views int // at least
	}{
		{"qcow2 overlay with backing file and snapshot", overlay, qcow2.Open, qcow2.New, 4},
		{"qcow2 base", base, qcow2.Open, qcow2.New, 2},
		{"vmdk monolithicSparse", sparseVMDK, vmdk.Open, vmdk.New, 2},
		{"vmdk streamOptimized", streamVMDK, vmdk.Open, vmdk.New, 2},
		{"vmdk descriptor with a flat extent", flatVMDK, vmdk.Open, vmdk.New, 1},
		{"vhd dynamic", dynVHD, vhd.Open, vhd.New, 1},
		{"vhd fixed", fixedVHD, vhd.Open, vhd.New, 1},
		{"vhdx", vhdxPath, vhdx.Open, vhdx.New, 1},
		{"vdi", vdiPath, vdi.Open, vdi.New, 1},
		{"parallels", parallelsPath, parallels.Open, parallels.New, 1},
		{"qed", qedPath, qed.Open, qed.New, 1},
		{"qed overlay with a qcow2 backing file", qedOverlay, qed.Open, qed.New, 3},
		{"raw", pattern, raw.Open, raw.New, 1},
		{"ova", ovaPath, ova.Open, ova.New, 2},
		{"vma", vmaPath, vma.Open, vma.New, 1},
		{"vma.zst, by its name", vmaPath + ".zst", vma.Open, vma.New, 1},
		{"formats.New, any format", overlay, formats.Open, formats.New, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			opts := model.Options{Open: formats.New, Opener: roots}
			want, err := tc.open(ctx, tc.path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer want.Close()
			data, err := os.ReadFile(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			const at = 123457 // not aligned to anything
			outer := append(append(bytes.Repeat([]byte{0xee}, at), data...), bytes.Repeat([]byte{0xdd}, 4099)...)
			sec := io.NewSectionReader(bytes.NewReader(outer), at, int64(len(data)))
			got, err := tc.new(ctx, sec, int64(len(data)), tc.path, opts)
			if err != nil {
				t.Fatal(err)
			}
			defer got.Close()
			if got.Format != want.Format || len(got.Views) != len(want.Views) || len(got.Views) < tc.views || len(got.Errors) != len(want.Errors) {
				t.Fatalf("New: %s with %d views, %d errors; Open: %s with %d views, %d errors (want at least %d views)",
					got.Format, len(got.Views), len(got.Errors), want.Format, len(want.Views), len(want.Errors), tc.views)
			}
			for i, w := range want.Views {
				g := got.Views[i]
				if g.ID != w.ID || g.Kind != w.Kind || g.Name != w.Name || g.Disk.Size() != w.Disk.Size() {
					t.Fatalf("view %d: New %s (%s, %d bytes), Open %s (%s, %d bytes)", i, g.ID, g.Kind, g.Disk.Size(), w.ID, w.Kind, w.Disk.Size())
				}
				sameBytes(t, w.ID, g.Disk, w.Disk)
			}
		})
	}
}

// sameBytes compares two guest spaces of the same size, chunk by chunk.
func sameBytes(t *testing.T, id string, a, b model.Disk) {
	t.Helper()
	x, y := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < a.Size(); off += int64(len(x)) {
		n := min(int64(len(x)), a.Size()-off)
		if _, err := a.ReadAt(x[:n], off); err != nil && err != io.EOF {
			t.Fatalf("%s: New: read at %d: %v", id, off, err)
		}
		if _, err := b.ReadAt(y[:n], off); err != nil && err != io.EOF {
			t.Fatalf("%s: Open: read at %d: %v", id, off, err)
		}
		if !bytes.Equal(x[:n], y[:n]) {
			t.Fatalf("%s: bytes at %d differ", id, off)
		}
	}
}

func ovfFor(href string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<Envelope xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1">
  <References><File ovf:href="` + href + `" ovf:id="file1"/></References>
  <DiskSection><Info>disks</Info><Disk ovf:capacity="4194304" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1"/></DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>vm</Name></VirtualSystem>
</Envelope>
`
}
