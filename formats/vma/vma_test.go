package vma

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// compress makes path+ext with the real CLI tool, keeping path.
func compress(t testing.TB, path, tool string) string {
	t.Helper()
	testutil.RequireTool(t, tool)
	switch tool {
	case "zstd":
		testutil.Run(t, "zstd", "-q", "-k", "-f", path, "-o", path+".zst")
		return path + ".zst"
	case "gzip":
		testutil.Run(t, "gzip", "-k", "-f", path)
		return path + ".gz"
	case "lzop":
		testutil.Run(t, "lzop", "-q", "-f", "-o", path+".lzo", path)
		return path + ".lzo"
	}
	t.Fatalf("unknown tool %s", tool)
	return ""
}

// TestReadBack checks that each device view reads back byte-identical to
// the device it was made from, through ReadAt and through its extents,
// for the plain archive and for real zstd, gzip and lzop compressions of
// it.
func TestReadBack(t *testing.T) {
	dir := t.TempDir()
	plain, devs, key, ctime := fixture(t, dir)
	for _, tc := range []struct {
		name, tool string
		source     model.Source
	}{
		{"plain", "", model.SourceData},
		{"zstd", "zstd", model.SourceDerived},
		{"gzip", "gzip", model.SourceDerived},
		{"lzop", "lzop", model.SourceDerived},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := plain
			if tc.tool != "" {
				path = compress(t, plain, tc.tool)
			}
			head := make([]byte, 16)
			f, _ := os.Open(path)
			f.ReadAt(head, 0)
			f.Close()
			if !ProbeName(path, head) {
				t.Fatalf("ProbeName(%s) = false", path)
			}
			if got := Probe(head, nil, 0); got != (tc.tool == "") {
				t.Errorf("Probe = %v", got)
			}
			before := fileSum(t, path)
			spoolDir := t.TempDir()
			im, err := OpenWith(context.Background(), path, model.Options{}, Config{SpoolDir: spoolDir})
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Errors) > 0 {
				t.Errorf("errors: %v", im.Errors)
			}
			if im.Format != "vma" || im.Attrs["ctime"] != ctime.Format(time.RFC3339) {
				t.Errorf("format %q attrs %v", im.Format, im.Attrs)
			}
			// The spool file is unlinked from the start.
			if ents, _ := os.ReadDir(spoolDir); len(ents) != 0 {
				t.Errorf("spool dir holds %d files", len(ents))
			}
			for name, want := range devs {
				v := view(t, im, "backup 2024-05-06T07:08:09Z "+name)
				if v.Kind != model.KindBacking || !v.Created.Equal(ctime) || v.ID != filepath.Base(path)+"#backing:"+v.Name {
					t.Errorf("%s: kind %s created %v id %q", name, v.Kind, v.Created, v.ID)
				}
				if v.Disk.Size() != int64(len(want)) {
					t.Fatalf("%s: size %d, want %d", name, v.Disk.Size(), len(want))
				}
				if got := readAll(t, v.Disk); !bytes.Equal(got, want) {
					t.Errorf("%s: ReadAt differs from the source disk", name)
				}
				got, ext := fromExtents(t, v.Disk)
				if !bytes.Equal(got, want) {
					t.Errorf("%s: bytes under extents differ from the source disk", name)
				}
				for _, e := range ext {
					if e.Source != tc.source || e.File != path || e.FileLength != e.Length {
						t.Fatalf("%s: extent %+v", name, e)
					}
				}
				if tc.tool == "" {
					// Exact host offsets: the file holds the guest bytes there.
					raw := testutil.FileSnapshot(t, path)
					for _, e := range ext {
						if !bytes.Equal(raw[e.FileOffset:e.FileOffset+e.Length], want[e.Offset:e.End()]) {
							t.Fatalf("%s: extent %+v: file bytes differ", name, e)
						}
					}
				}
				if strings.Contains(tc.name, "z") && !strings.Contains(strings.Join(v.Notes, " "), "spooled") {
					t.Errorf("%s: notes %q do not mention the spool", name, v.Notes)
				}
			}
			// Absent blocks read as zeros and have no extent.
			v := view(t, im, "backup 2024-05-06T07:08:09Z drive-virtio1")
			zeros := make([]byte, 4096)
			if _, err := v.Disk.ReadAt(zeros, 7*4096); err != nil || !bytes.Equal(zeros, make([]byte, 4096)) {
				t.Errorf("absent block: %v", err)
			}
			alloc, _ := model.AllocatedBytes(context.Background(), v.Disk)
			if alloc != 4*4096-(4096-(1<<20+5000)%4096) {
				t.Errorf("drive-virtio1 allocated %d bytes", alloc)
			}
			// The key planted in the ext4 disk is in the backing view.
			disk := readAll(t, view(t, im, "backup 2024-05-06T07:08:09Z drive-scsi0").Disk)
			if !bytes.Contains(disk, key) {
				t.Error("planted key not found in drive-scsi0")
			}
			cv := view(t, im, "config:qemu-server.conf")
			if cv.Kind != model.KindBacking || string(readAll(t, cv.Disk)) != testConf {
				t.Errorf("config view %+v", cv)
			}
			if err := im.Close(); err != nil {
				t.Error(err)
			}
			if fileSum(t, path) != before {
				t.Error("archive changed by reading it")
			}
		})
	}
}

// TestVMState puts a real QEMU migration stream in a "vmstate" device and
// checks that the planted RAM bytes come back in the memory view.
func TestVMState(t *testing.T) {
	dir := t.TempDir()
	secret := []byte("imgaudit-vma-vmstate-secret password=hunter2-crosses-a-page")
	stream := vmatest.CaptureMigration(t, dir, 32, []vmatest.Plant{{Addr: 0x2fe0, Data: secret}})
	state, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	a := vmatest.Archive{UUID: [16]byte{9}, CTime: time.Unix(1700000000, 0),
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: sparseData(200000)}, {Name: "vmstate", Data: state}}}
	path := filepath.Join(dir, "vmstate.vma")
	if err := vmatest.WriteFile(path, a); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{path, compress(t, path, "zstd"), compress(t, path, "lzop")} {
		im, err := Open(context.Background(), p, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		v, ok := im.View(filepath.Base(p) + "#memory:backup 2023-11-14T22:13:20Z vmstate")
		if !ok {
			t.Fatalf("%s: no vmstate memory view in %v", p, im.Views)
		}
		got := make([]byte, len(secret))
		if _, err := v.Disk.ReadAt(got, 0x2fe0); err != nil || !bytes.Equal(got, secret) {
			t.Errorf("%s: planted RAM bytes not at 0x2fe0 (%v)", p, err)
		}
		if v.Created.Unix() != 1700000000 {
			t.Errorf("created %v", v.Created)
		}
		im.Close()
	}
}

// corrupt returns a copy of b with f applied.
func corrupt(b []byte, f func([]byte) []byte) []byte { return f(bytes.Clone(b)) }

// TestErrors checks that broken archives fail with a FormatError naming
// the file and offset, or open with what could be read and an error.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	good := vmatest.Archive{UUID: [16]byte{7}, CTime: time.Unix(1600000000, 0),
		Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte("name: x\n")}},
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: sparseData(300000)}}}
	var buf bytes.Buffer
	if err := vmatest.Write(&buf, good); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	hsize, err := HeaderSize(b)
	if err != nil {
		t.Fatal(err)
	}
	// An archive of 1 MiB of incompressible data compressed by the real
	// lzop CLI: four 256 KiB lzop blocks, so damage after the first
	// leaves the VMA header and early extents readable.
	noise := make([]byte, 1<<20)
	rng := rand.New(rand.NewChaCha8([32]byte{5}))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	lzPath := filepath.Join(dir, "lz.vma")
	if err := vmatest.WriteFile(lzPath, vmatest.Archive{UUID: [16]byte{8}, CTime: time.Unix(1600000000, 0),
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: noise}}}); err != nil {
		t.Fatal(err)
	}
	lz := testutil.FileSnapshot(t, compress(t, lzPath, "lzop"))
	for _, tc := range []struct {
		name    string
		data    []byte
		ext     string
		fatal   string // substring of a fatal error
		partial string // substring of an Image.Errors entry
	}{
		{"md5", corrupt(b, func(x []byte) []byte { x[100] ^= 1; return x }), ".vma", "md5", ""},
		{"version", corrupt(b, func(x []byte) []byte { x[7] = 2; return x }), ".vma", "version 2", ""},
		{"header_size", corrupt(b, func(x []byte) []byte { x[56] = 0xff; return x }), ".vma", "header_size", ""},
		{"short", b[:5000], ".vma", "read VMA header", ""},
		{"truncated", b[:len(b)-1000], ".vma", "", "truncated"},
		{"trailing", append(bytes.Clone(b), 1, 2, 3), ".vma", "", "trailing"},
		{"extent md5", corrupt(b, func(x []byte) []byte { x[hsize+45] ^= 1; return x }), ".vma", "", "md5"},
		{"lzo header", append([]byte{0x89, 'L', 'Z', 'O', 0, 0x0d, 0x0a, 0x1a, 0x0a}, b[:100]...), ".vma.lzo", "lzop", ""},
		{"lzo truncated", lz[:len(lz)*2/3], ".vma.lzo", "", "lzop"},
		{"lzo corrupt block", corrupt(lz, func(x []byte) []byte { x[len(x)-100] ^= 0x55; return x }), ".vma.lzo", "", "lzop"},
		{"unknown", []byte("hello world, not a backup"), ".vma", "not a VMA", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name+tc.ext)
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := Open(context.Background(), p, model.Options{})
			if tc.fatal != "" {
				var fe *model.FormatError
				if err == nil || !errors.As(err, &fe) || fe.File != p || !strings.Contains(err.Error(), tc.fatal) {
					t.Fatalf("err = %v, want FormatError with %q", err, tc.fatal)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if !strings.Contains(errors.Join(im.Errors...).Error(), tc.partial) {
				t.Errorf("errors %v, want %q", im.Errors, tc.partial)
			}
			var fe *model.FormatError
			if !errors.As(im.Errors[0], &fe) || fe.File != p {
				t.Errorf("error %v does not name the file", im.Errors[0])
			}
		})
	}
	// A truncated archive keeps the blocks that are wholly present.
	p := filepath.Join(dir, "truncated.vma")
	im, err := Open(context.Background(), p, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	v := view(t, im, "backup 2020-09-13T12:26:40Z drive-scsi0")
	got := make([]byte, 40)
	v.Disk.ReadAt(got, 0)
	if !bytes.HasPrefix(got, []byte("first block of the second drive")) {
		t.Errorf("truncated archive lost its first block: %q", got)
	}
}

// TestExtentChecks covers the extent rules of vma-reader.c directly.
func TestExtentChecks(t *testing.T) {
	a := vmatest.Archive{UUID: [16]byte{3}, CTime: time.Unix(1, 0),
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: sparseData(70000)}, {Name: "vmstate", Data: bytes.Repeat([]byte{1}, 3*65536)}}}
	var buf bytes.Buffer
	if err := vmatest.Write(&buf, a); err != nil {
		t.Fatal(err)
	}
	h, err := ParseHeader(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	eb := buf.Bytes()[h.Size : h.Size+512]
	eh, err := ParseExtentHeader(eb, h.UUID)
	if err != nil {
		t.Fatal(err)
	}
	ix := newIndex(h)
	if err := ix.check(eh); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*ExtentHeader)
		want string
	}{
		{"unknown device", func(e *ExtentHeader) { e.Entries[0].Dev = 9 }, "unknown device"},
		{"beyond end", func(e *ExtentHeader) { e.Entries[0].Cluster = 2 }, "beyond the end"},
		{"vmstate order", func(e *ExtentHeader) { e.Entries[1].Cluster = 5 }, "out of order"},
	} {
		e := *eh
		tc.mod(&e)
		if err := ix.check(&e); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if _, err := ParseExtentHeader(eb, [16]byte{4}); err == nil || !strings.Contains(err.Error(), "uuid") {
		t.Errorf("uuid mismatch: %v", err)
	}
	bad := bytes.Clone(eb)
	bad[6], bad[7] = 0, 1 // block_count 1 with the md5 fixed up
	fixMD5(bad)
	if _, err := ParseExtentHeader(bad, h.UUID); err == nil || !strings.Contains(err.Error(), "block_count") {
		t.Errorf("block_count: %v", err)
	}
}
