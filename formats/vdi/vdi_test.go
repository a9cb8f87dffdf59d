package vdi

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func makeImage(t testing.TB, dir, name, opts string, size int64, offs ...int64) string {
	t.Helper()
	return blockmaptest.MakeImage(t, dir, name, "vdi", "vdi", opts, size, offs...)
}

func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	cases := []struct {
		name, opts, sub string
		size            int64
	}{
		{"dynamic", "static=off", "dynamic", 6 << 20},
		{"static", "static=on", "static", 6 << 20},
		{"odd-size", "static=off", "dynamic", 5<<20 + 3*512},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, t.TempDir(), tc.name, tc.opts, tc.size)
			blockmaptest.CheckFidelity(t, Open, Probe, img, "vdi", tc.sub)
		})
	}
}

func hdrOf(t testing.TB, b []byte) header {
	t.Helper()
	return parseHeader(b[:headerEnd])
}

func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "unref", "static=off", 6<<20)
	b := testutil.FileSnapshot(t, img)
	h := hdrOf(t, b)
	at := int64(h.offBMap) + 4*4 // block 4 holds the marker at 4 MiB + 4096
	e := binary.LittleEndian.Uint32(b[at:])
	if e >= zeroBlock {
		t.Fatal("block 4 not allocated by qemu-img")
	}
	binary.LittleEndian.PutUint32(b[at:], unallocated)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	hostOff := int64(h.offData) + int64(e)*int64(h.blockSize) + 4096
	blockmaptest.CheckUnreferenced(t, Open, img, "vdi", hostOff)
}

// makeDifferencing turns a qemu-img dynamic VDI into a differencing image
// of base (VDICore.h VDIHEADER1: image type VDI_IMAGE_TYPE_DIFF = 4,
// uuidLinkage = the parent's uuidCreate, uuidParentModification = the
// parent's uuidModify; unallocated blocks read from the parent).
func makeDifferencing(t *testing.T, child, base string) {
	t.Helper()
	b := testutil.FileSnapshot(t, child)
	pb := testutil.FileSnapshot(t, base)
	binary.LittleEndian.PutUint32(b[0x4C:], typeDiff)
	copy(b[0x1A8:0x1B8], pb[0x188:0x198])
	copy(b[0x1B8:0x1C8], pb[0x198:0x1A8])
	if err := os.WriteFile(child, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDifferencing(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	const size = 6 << 20
	for _, layout := range []string{"same-dir", "snapshots-subdir"} {
		t.Run(layout, func(t *testing.T) {
			dir := t.TempDir()
			base := makeImage(t, dir, "base", "static=off", size)
			cdir := dir
			if layout == "snapshots-subdir" {
				cdir = filepath.Join(dir, "Snapshots")
				os.Mkdir(cdir, 0o755)
				// A decoy with another UUID must be skipped.
				makeImage(t, cdir, "decoy", "static=off", size)
			}
			child := makeImage(t, cdir, "child", "static=off", size, 512*8, 4<<20+8192)
			childData := blockmaptest.QemuRaw(t, child, "vdi")
			childMap := blockmaptest.QemuMap(t, child, "vdi")
			baseData := blockmaptest.QemuRaw(t, base, "vdi")
			makeDifferencing(t, child, base)
			want := bytes.Clone(baseData)
			n := 0
			for _, m := range childMap {
				if m.Data {
					n++
					copy(want[m.Start:m.Start+m.Length], childData[m.Start:m.Start+m.Length])
				}
			}
			if n == 0 {
				t.Fatal("qemu-img map shows no child data")
			}
			opts := model.Options{Open: New}
			if layout == "snapshots-subdir" {
				// The parent lies one directory up: outside the default
				// root (the child's directory), so it is refused until
				// the VM folder is a root, as a scan of that folder or
				// --backing-root makes it.
				im, err := Open(context.Background(), child, opts)
				if err != nil {
					t.Fatal(err)
				}
				if len(im.Backing) != 1 || !errors.Is(im.Backing[0].Err, model.ErrOutsideRoots) {
					t.Errorf("default roots: backing %+v, want a refusal", im.Backing)
				}
				im.Close()
				roots, err := hostfile.NewRoots(dir)
				if err != nil {
					t.Fatal(err)
				}
				opts.Opener = roots
			}
			blockmaptest.CheckDifferencing(t, Open, opts, child, base, "child.vdi#backing:base.vdi", want, baseData)
		})
	}
	t.Run("parent-dir-outside-roots", func(t *testing.T) {
		// outside/images/child.vdi, its parent (the matching UUID) and
		// another VDI in outside/, the directory above the only root:
		// that directory is never listed, so neither of its files is
		// opened, looked at or named, and the refusal still says why.
		dir := filepath.Join(t.TempDir(), "outside")
		images := filepath.Join(dir, "images")
		if err := os.MkdirAll(images, 0o755); err != nil {
			t.Fatal(err)
		}
		base := makeImage(t, dir, "private-payroll", "static=off", size)
		makeImage(t, dir, "private-other", "static=off", size)
		child := makeImage(t, images, "child", "static=off", size, 0)
		makeDifferencing(t, child, base)
		roots, err := hostfile.NewRoots(images)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name   string
			opener model.Opener
		}{{"default", nil}, {"roots", roots}} {
			t.Run(c.name, func(t *testing.T) {
				log := &hostfile.Log{}
				opts := model.Options{Open: New}
				if c.opener != nil {
					opts.Opener = roots.WithLog(log)
				}
				im, err := Open(context.Background(), child, opts)
				if err != nil {
					t.Fatal(err)
				}
				defer im.Close()
				if len(im.Backing) != 1 || im.Backing[0].Path != "" || !errors.Is(im.Backing[0].Err, model.ErrOutsideRoots) {
					t.Fatalf("backing %+v, want the directory above refused", im.Backing)
				}
				var texts []string
				for _, e := range im.Errors {
					texts = append(texts, e.Error())
				}
				texts = append(texts, im.Backing[0].Err.Error())
				for _, v := range im.Views {
					texts = append(texts, v.Notes...)
				}
				for _, u := range log.Uses() {
					texts = append(texts, u.Name, u.Path, u.Real)
				}
				for _, s := range texts {
					if strings.Contains(s, "private-") {
						t.Errorf("%q names a file outside the roots", s)
					}
				}
			})
		}
	})
	t.Run("missing-grandparent", func(t *testing.T) {
		// base <- mid <- child, base gone: the child's chain is short,
		// so the child was not read completely (an error of its own).
		dir := t.TempDir()
		base := makeImage(t, dir, "base", "static=off", size)
		mid := makeImage(t, dir, "mid", "static=off", size, 0)
		child := makeImage(t, dir, "child", "static=off", size, 512)
		makeDifferencing(t, mid, base)
		makeDifferencing(t, child, mid)
		os.Remove(base)
		im, err := Open(context.Background(), child, model.Options{Open: New})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), "parent mid.vdi: ") || !strings.Contains(im.Errors[0].Error(), "no .vdi with UUID") {
			t.Fatalf("errors %v, want the grandparent's, through the parent", im.Errors)
		}
	})
	t.Run("missing-parent", func(t *testing.T) {
		dir := t.TempDir()
		base := makeImage(t, dir, "base", "static=off", size)
		child := makeImage(t, dir, "child", "static=off", size, 0)
		makeDifferencing(t, child, base)
		os.Remove(base)
		im, err := Open(context.Background(), child, model.Options{Open: New})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), "no .vdi with UUID") {
			t.Fatalf("errors %v", im.Errors)
		}
	})
}

func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "h", "static=off", 6<<20)
	orig := testutil.FileSnapshot(t, img)
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"signature", blockmaptest.PutLE32(0x40, 0x12345678), "signature"},
		{"version", blockmaptest.PutLE32(0x44, 0x00020000), "version"},
		{"type", blockmaptest.PutLE32(0x4C, 9), "image type"},
		{"sector-size", blockmaptest.PutLE32(0x168, 4096), "sector size"},
		{"block-size-zero", blockmaptest.PutLE32(0x178, 0), "block size"},
		{"block-size-huge", blockmaptest.PutLE32(0x178, 1<<31), "block size"},
		{"blocks-huge", blockmaptest.PutLE32(0x180, 0xffffff00), "blocks"},
		{"bmap-past-eof", blockmaptest.PutLE32(0x180, 0x3ffffff0), "past the end"},
		{"bmap-unaligned", blockmaptest.PutLE32(0x154, 0x201), "unaligned"},
		{"disk-size", func(b []byte) []byte { binary.LittleEndian.PutUint64(b[0x170:], 1<<50); return b }, "exceeds"},
		{"bmap-entry", func(b []byte) []byte {
			h := hdrOf(t, b)
			binary.LittleEndian.PutUint32(b[h.offBMap:], 0x7ffffff0)
			return b
		}, "points at block"},
		{"truncated", func(b []byte) []byte { return b[:100] }, "too small"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckRefused(t, Open, filepath.Join(dir, tc.name+".vdi"), tc.mutate(bytes.Clone(orig)), tc.want)
		})
	}
}

// TestMappedPastSize: blocks the block map maps past the disk size are in
// the unreferenced view.
func TestMappedPastSize(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := makeImage(t, t.TempDir(), "past", "static=off", 6<<20)
	blockmaptest.CheckMappedPastSize(t, Open, img, "vdi", func(b []byte) { binary.LittleEndian.PutUint64(b[0x170:], 4<<20) })
}
