package vmdk

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestFidelitySubformats(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	for _, sub := range []string{"monolithicSparse", "monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat", "streamOptimized"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			rawPath := filepath.Join(dir, "src.raw")
			writePatternRaw(t, rawPath, 3<<20+12345, 7)
			img := filepath.Join(dir, "disk.vmdk")
			testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat="+sub, rawPath, img)
			want := qemuRaw(t, img)
			before := dirHashes(t, dir)
			im := mustOpen(t, img)
			if im.VirtualSize != int64(len(want)) {
				t.Fatalf("virtual size %d, qemu-img says %d", im.VirtualSize, len(want))
			}
			compareView(t, currentDisk(t, im), want, sub)
			if !bytes.Contains(readDisk(t, currentDisk(t, im)), []byte(secret)) {
				t.Fatal("planted secret not found in the current view")
			}
			if v, ok := im.View("disk.vmdk#current"); !ok || v.Kind != model.KindCurrent {
				t.Fatalf("no view disk.vmdk#current")
			}
			im.Close()
			checkUnchanged(t, dir, before)
		})
	}
}

// TestFidelityMultiExtent opens a handwritten descriptor mixing FLAT (with
// an offset), SPARSE and VMFS extents in separate files, with CRLF, NUL
// padding and comments, and compares it with qemu-img's reading.
func TestFidelityMultiExtent(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	writePatternRaw(t, filepath.Join(dir, "p1.raw"), 1<<20, 1)
	p1, _ := os.ReadFile(filepath.Join(dir, "p1.raw"))
	// FLAT extent at an offset of 8 sectors in its file.
	os.WriteFile(filepath.Join(dir, "a-flat.bin"), append(bytes.Repeat([]byte{0xEE}, 4096), p1...), 0o644)
	writePatternRaw(t, filepath.Join(dir, "p2.raw"), 2<<20, 2)
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=monolithicSparse", filepath.Join(dir, "p2.raw"), filepath.Join(dir, "b-sparse.vmdk"))
	writePatternRaw(t, filepath.Join(dir, "c-vmfs.bin"), 1<<20, 3)
	desc := "# Disk DescriptorFile\r\nversion=1\r\nCID=12345678\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentFlat\"\r\n\r\n" +
		"# Extent description\r\n  RW 2048 FLAT \"a-flat.bin\" 8\r\nRW 4096 SPARSE \"b-sparse.vmdk\"\r\nRW 2048 VMFS \"c-vmfs.bin\"\r\n# end\r\n"
	os.WriteFile(filepath.Join(dir, "multi.vmdk"), append([]byte(desc), make([]byte, 300)...), 0o644)
	want := qemuRaw(t, filepath.Join(dir, "multi.vmdk"))
	before := dirHashes(t, dir)
	im := mustOpen(t, filepath.Join(dir, "multi.vmdk"))
	compareView(t, currentDisk(t, im), want, "multi-extent")
	im.Close()
	checkUnchanged(t, dir, before)
}

// TestZeroExtent checks a ZERO extent between two flat ones. QEMU skips ZERO
// lines (shifting later extents), so the expectation is built from the
// source files instead: VMware's spec says a ZERO extent reads as zeros.
func TestZeroExtent(t *testing.T) {
	dir := t.TempDir()
	a := writePatternRaw(t, filepath.Join(dir, "a.bin"), 512*100, 4)
	c := writePatternRaw(t, filepath.Join(dir, "c.bin"), 512*50, 5)
	os.WriteFile(filepath.Join(dir, "z.vmdk"), []byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"a.bin\" 0\nRW 30 ZERO\nRDONLY 50 FLAT \"c.bin\" 0\n"), 0o644)
	want := append(append(append([]byte{}, a...), make([]byte, 30*512)...), c...)
	im := mustOpen(t, filepath.Join(dir, "z.vmdk"))
	compareView(t, currentDisk(t, im), want, "zero extent")
}

func TestDeltaChain(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "src.raw")
	writePatternRaw(t, rawPath, 4<<20, 9)
	base := filepath.Join(dir, "base.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", rawPath, base)
	mid := filepath.Join(dir, "mid.vmdk")
	testutil.Run(t, "qemu-img", "create", "-f", "vmdk", "-o", "backing_file=base.vmdk", "-F", "vmdk", mid)
	testutil.Run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0x41 100000 70000", "-c", "write -P 0x42 2097152 65536", "-c", "write -z 3145728 65536", mid)
	top := filepath.Join(dir, "top.vmdk")
	testutil.Run(t, "qemu-img", "create", "-f", "vmdk", "-o", "subformat=twoGbMaxExtentSparse", "-b", "mid.vmdk", "-F", "vmdk", top)
	testutil.Run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0x43 500 1000", "-c", "write -P 0x44 2100000 100", top)

	wantTop, wantMid, wantBase := qemuRaw(t, top), qemuRaw(t, mid), qemuRaw(t, base)
	before := dirHashes(t, dir)
	im := mustOpen(t, top)
	if len(im.Errors) != 0 {
		t.Fatalf("unexpected errors: %v", im.Errors)
	}
	compareView(t, currentDisk(t, im), wantTop, "top current")
	for id, want := range map[string][]byte{"top.vmdk#backing:mid.vmdk": wantMid, "top.vmdk#backing:base.vmdk": wantBase} {
		v, ok := im.View(id)
		if !ok || v.Kind != model.KindBacking {
			var ids []string
			for _, v := range im.Views {
				ids = append(ids, v.ID)
			}
			t.Fatalf("no backing view %s in %v", id, ids)
		}
		compareView(t, v.Disk, want, id)
	}
	if len(im.Backing) != 2 || im.Backing[0].Name != "mid.vmdk" || im.Backing[1].Name != "base.vmdk" {
		t.Fatalf("backing links %+v", im.Backing)
	}
	// Every view has its own ID and its own kind:name (the label reports
	// show): a parent's unreferenced view once read like the image's own.
	ids, labels := map[string]bool{}, map[string]bool{}
	for _, v := range im.Views {
		label := string(v.Kind) + ":" + v.Name
		if ids[v.ID] || labels[label] {
			t.Errorf("view %s (%s) is not unique in %v", v.ID, label, im.Views)
		}
		ids[v.ID], labels[label] = true, true
	}
	im.Close()
	checkUnchanged(t, dir, before)
}

// rewriteEmbeddedDescriptor edits the descriptor inside a hosted sparse
// file (a copy made by the test), keeping it within its sectors.
func rewriteEmbeddedDescriptor(t *testing.T, path string, edit func(string) string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := ParseSparseHeader(b)
	if err != nil {
		t.Fatal(err)
	}
	off, n := int(h.DescriptorOffset*512), int(h.DescriptorSize*512)
	text := string(bytes.TrimRight(b[off:off+n], "\x00"))
	nt := edit(text)
	if len(nt) > n {
		t.Fatal("edited descriptor too long")
	}
	copy(b[off:off+n], make([]byte, n))
	copy(b[off:], nt)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDeltaCIDMismatch(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "src.raw")
	writePatternRaw(t, rawPath, 1<<20, 11)
	base := filepath.Join(dir, "base.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", rawPath, base)
	top := filepath.Join(dir, "top.vmdk")
	testutil.Run(t, "qemu-img", "create", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", top)
	testutil.Run(t, "qemu-io", "-f", "vmdk", "-c", "write -P 0x41 0 4096", top)
	want := qemuRaw(t, top) // before the CID changes (qemu refuses after)
	rewriteEmbeddedDescriptor(t, base, func(s string) string {
		i := strings.Index(s, "\nCID=")
		return s[:i] + "\nCID=0badc0de" + s[i+13:]
	})
	im := mustOpen(t, top)
	if len(im.Errors) == 0 || !strings.Contains(im.Errors[0].Error(), "parentCID") {
		t.Fatalf("want a parentCID error, got %v", im.Errors)
	}
	v, _ := im.Current()
	if !strings.Contains(strings.Join(v.Notes, "\n"), "parentCID") {
		t.Fatalf("no note on the current view: %v", v.Notes)
	}
	compareView(t, v.Disk, want, "current with mismatched parent")
}

func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "src.raw")
	writePatternRaw(t, rawPath, 1<<20, 12)
	good := filepath.Join(dir, "good.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", rawPath, good)
	goodBytes, _ := os.ReadFile(good)

	hugeGD := bytes.Clone(goodBytes[:64<<10])
	copy(hugeGD[12:], le64(1<<40)) // capacity 512 TiB, GD far beyond the file
	truncGT := bytes.Clone(goodBytes[:12<<10])

	cyclePair := func() string {
		a, b := filepath.Join(dir, "cyc-a.vmdk"), filepath.Join(dir, "cyc-b.vmdk")
		os.WriteFile(a, goodBytes, 0o644)
		os.WriteFile(b, goodBytes, 0o644)
		rewriteEmbeddedDescriptor(t, a, func(s string) string {
			return strings.Replace(s, "createType", "parentFileNameHint=\"cyc-b.vmdk\"\ncreateType", 1)
		})
		rewriteEmbeddedDescriptor(t, b, func(s string) string {
			return strings.Replace(s, "createType", "parentFileNameHint=\"cyc-a.vmdk\"\ncreateType", 1)
		})
		return a
	}

	cases := []struct {
		name    string
		file    string
		content []byte
		setup   func() string
		wantErr string // fatal error from Open
		wantImg string // or: an Image.Errors entry
	}{
		{name: "dotdot extent", file: "dd.vmdk", content: []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"../etc/passwd\" 0\n"), wantErr: "outside the allowed roots"},
		{name: "absolute extent", file: "abs.vmdk", content: []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"/etc/passwd\" 0\n"), wantErr: "outside the allowed roots"},
		{name: "huge grain directory", file: "huge.vmdk", content: hugeGD, wantErr: "grain directory"},
		{name: "truncated", file: "trunc.vmdk", content: truncGT, wantErr: "truncated"},
		{name: "bad extent line", file: "bad.vmdk", content: []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"monolithicFlat\"\nRW -5 FLAT \"x\" 0\n"), wantErr: "offset"},
		{name: "raw device", file: "rdm.vmdk", content: []byte("# Disk DescriptorFile\nversion=1\ncreateType=\"vmfsRawDeviceMap\"\nRW 100 VMFSRDM \"x\"\n"), wantErr: "unsupported"},
		{name: "parent cycle", setup: cyclePair, wantImg: "cycle"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(dir, c.file)
			if c.setup != nil {
				p = c.setup()
			} else if err := os.WriteFile(p, c.content, 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := Open(context.Background(), p, openOpts())
			if c.wantErr != "" {
				if err == nil {
					im.Close()
					t.Fatalf("opened; want error containing %q", c.wantErr)
				}
				if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), filepath.Base(p)) {
					t.Fatalf("error %q should name the file and contain %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			defer im.Close()
			var all []string
			for _, e := range im.Errors {
				all = append(all, e.Error())
			}
			if !strings.Contains(strings.Join(all, "\n"), c.wantImg) {
				t.Fatalf("image errors %q lack %q", all, c.wantImg)
			}
		})
	}
}

func le64(v uint64) []byte {
	b := make([]byte, 8)
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
	return b
}
