package qemustream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
)

// compareWithELF checks that the physical Disk equals, byte for byte, the
// memory QEMU itself wrote with dump-guest-memory from the same guest.
// Below 1 MiB, 0xc0000-0xfffff reads the option ROM and BIOS copies while
// the PAM registers are at their reset state, and the top 256 KiB below 4 GiB
// is the BIOS: those segments are compared with the pc.rom and pc.bios
// regions instead of pc.ram.
func compareWithELF(t *testing.T, s *Stream, elfPath string) {
	t.Helper()
	qemufixture.CompareWithELFFrom(t, "stream", elfPath, func(paddr, size int64) (io.ReaderAt, int64) {
		switch {
		case paddr == 0xc0000:
			return s.region(t, "pc.rom"), 0
		case paddr == 0xe0000:
			bios := s.region(t, "pc.bios")
			return bios, bios.Size() - size
		case paddr >= 0xfffc0000 && paddr < 4<<30:
			return s.region(t, "pc.bios"), 0
		}
		return s.Physical, paddr
	})
}

func TestMigrationStream(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cfg      qemufixture.Config
		caps     []string
		machine  string
		compress bool
	}{
		{"pc", qemufixture.Config{Machine: "pc"}, nil, "pc-i440fx-", false},
		{"q35", qemufixture.Config{Machine: "q35"}, nil, "pc-q35-", false},
		{"pc-compress", qemufixture.Config{Machine: "pc"}, []string{"migrate_set_capability compress on"}, "pc-i440fx-", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmds := append(append([]string{}, tc.caps...), `migrate "exec:cat > {dir}/mig.bin"`, "dump-guest-memory {dir}/dump.elf")
			vm := qemufixture.Capture(t, tc.cfg, cmds...)
			path := vm.Path("mig.bin")
			before := qemufixture.FileSum(t, path)
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			st, _ := f.Stat()
			s, err := Parse(context.Background(), path, f, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			// The file is parsed in place, from a mapping; through a
			// buffer (any other io.ReaderAt, a qcow2's vmstate), and from
			// a section of a larger file (a libvirt save), the index is
			// the same.
			if _, unmap, ok := mapStream(f, st.Size()); !ok {
				t.Error("the stream file was not mapped: the test covers the buffered parse only")
			} else {
				unmap()
			}
			buffered, err := Parse(context.Background(), path, struct{ io.ReaderAt }{f}, st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if a, b := streamSummary(s), streamSummary(buffered); a != b {
				t.Errorf("mapped:\n%s\nbuffered:\n%s", a, b)
			}
			sectioned := sectionOf(t, path, 5000)
			section, err := Parse(context.Background(), path, io.NewSectionReader(sectioned, 5000, st.Size()), st.Size())
			if err != nil {
				t.Fatal(err)
			}
			if a, b := streamSummary(s), streamSummary(section); a != b || !sameBytes(t, s.Physical, section.Physical) {
				t.Errorf("mapped at offset 5000 of another file:\n%s\nfrom its own file:\n%s", b, a)
			}
			if len(s.Machine) < len(tc.machine) || s.Machine[:len(tc.machine)] != tc.machine {
				t.Errorf("machine %q", s.Machine)
			}
			if s.Physical.Size() != 64<<20 {
				t.Errorf("physical size %d", s.Physical.Size())
			}
			if tc.compress && s.CompressedPages == 0 {
				t.Errorf("no compressed pages with the compress capability on")
			}
			if !tc.compress && (s.Pages == 0 || s.CompressedPages != 0) {
				t.Errorf("pages %d compressed %d", s.Pages, s.CompressedPages)
			}
			qemufixture.CheckPlants(t, tc.name, s.Physical, vm.Plants)
			compareWithELF(t, s, vm.Path("dump.elf"))
			checkExtents(t, s.Physical, f)
			if len(s.Regions) == 0 {
				t.Errorf("no ROM/BIOS regions exposed")
			}
			// The device sections after RAM (which carry no length) are
			// scanned as they are: the stream's bytes from where parsing
			// stopped to its end, in a view of their own.
			if s.Tail == nil || s.Tail.Base+s.Tail.Len != st.Size() || s.Tail.Len <= 0 {
				t.Errorf("tail %+v, want the stream's device state to its end (%d bytes)", s.Tail, st.Size())
			} else {
				got, want := make([]byte, s.Tail.Len), make([]byte, s.Tail.Len)
				if _, err := s.Tail.ReadAt(got, 0); err != nil && err != io.EOF {
					t.Fatal(err)
				}
				f.ReadAt(want, s.Tail.Base)
				if !bytes.Equal(got, want) {
					t.Error("the device-state view does not read the stream's bytes")
				}
				checkExtents(t, s.Tail, f)
				if !slices.ContainsFunc(s.Views(path, ""), func(v model.View) bool { return v.Name == "device-state" && v.Disk == s.Tail }) {
					t.Error("no device-state view")
				}
			}
			if qemufixture.FileSum(t, path) != before {
				t.Fatal("stream file changed")
			}
			t.Logf("machine %s blocks %v pages %d zero %d compressed %d notes %q", s.Machine, s.Blocks, s.Pages, s.ZeroPages, s.CompressedPages, s.Notes)
		})
	}
}

// checkExtents verifies that extents are ordered and that data extents point
// at the very bytes the Disk returns.
func checkExtents(t *testing.T, d model.Disk, f io.ReaderAt) {
	t.Helper()
	last := int64(-1)
	n := 0
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			t.Fatal(err)
		}
		if e.Offset < last || e.Length <= 0 || e.End() > d.Size() {
			t.Fatalf("bad extent %+v after %d", e, last)
		}
		last = e.End()
		if e.Source == model.SourceData && n%97 == 0 {
			a, b := make([]byte, e.Length), make([]byte, e.Length)
			d.ReadAt(a, e.Offset)
			f.ReadAt(b, e.FileOffset)
			if !bytes.Equal(a, b) {
				t.Fatalf("extent %+v: file bytes differ", e)
			}
		}
		n++
	}
	if n == 0 {
		t.Fatal("no extents")
	}
}

func (s *Stream) region(t *testing.T, name string) model.Disk {
	for _, r := range s.Regions {
		if r.Block == name {
			return r.Disk
		}
	}
	t.Fatalf("no region %s", name)
	return nil
}

// TestCutStreamIsIncomplete: a stream that breaks off (a migration killed
// midway, a truncated copy) is indexed up to the break, and its RAM view
// carries the cut as model.View.Incomplete, naming the file and the
// offset, so that a scan of it is incomplete; the whole stream has none.
func TestCutStreamIsIncomplete(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{Machine: "pc"}, `migrate "exec:cat > {dir}/mig.bin"`)
	whole, err := os.ReadFile(vm.Path("mig.bin"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		size    int
		wantCut bool
	}{
		{"whole", len(whole), false},
		{"cut in the RAM pages", len(whole) / 3, true},
		{"cut after the header", 4096, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "mig.bin")
			if err := os.WriteFile(path, whole[:tc.size], 0o644); err != nil {
				t.Fatal(err)
			}
			im, err := Open(context.Background(), path, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			got := im.Views[0].Incomplete
			if (got != nil) != tc.wantCut {
				t.Fatalf("Incomplete = %v, want a cut: %v", got, tc.wantCut)
			}
			if got == nil {
				return
			}
			var fe *model.FormatError
			if !errors.As(got, &fe) || fe.File != path || fe.Offset < 0 || fe.Offset > int64(tc.size) {
				t.Errorf("Incomplete = %v, want a FormatError naming %s and an offset within its %d bytes", got, path, tc.size)
			}
			for _, v := range im.Views[1:] {
				if v.Incomplete != nil {
					t.Errorf("view %s repeats the cut: each cut is said once, on the RAM view", v.ID)
				}
			}
		})
	}
}

// sectionOf writes a copy of the file at path after pad bytes of another
// file, as a libvirt save holds its stream, and returns it open.
func sectionOf(t *testing.T, path string, pad int) *os.File {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "padded.bin")
	if err := os.WriteFile(out, append(make([]byte, pad), b...), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, unmap, ok := mapStream(io.NewSectionReader(f, int64(pad), int64(len(b))), int64(len(b))); !ok {
		t.Error("a section of a file was not mapped")
	} else {
		unmap()
	}
	return f
}

// sameBytes reads two disks whole and compares them.
func sameBytes(t *testing.T, a, b model.Disk) bool {
	t.Helper()
	if a.Size() != b.Size() {
		return false
	}
	x, y := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); off < a.Size(); off += int64(len(x)) {
		n := min(int64(len(x)), a.Size()-off)
		if _, err := a.ReadAt(x[:n], off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if _, err := b.ReadAt(y[:n], off); err != nil && err != io.EOF {
			t.Fatal(err)
		}
		if !bytes.Equal(x[:n], y[:n]) {
			return false
		}
	}
	return true
}

// TestMappedStreamFault: a mapped stream file truncated under the parse
// makes its reads fault; the fault is an error naming the file, not a
// crash.
func TestMappedStreamFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cut.bin")
	if err := os.WriteFile(path, bytes.Repeat([]byte{0xaa}, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, unmap, ok := mapStream(f, 1<<20)
	if !ok {
		t.Fatal("not mapped")
	}
	defer unmap()
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	c := newCursorInPlace(path, b)
	err = readingMapped(path, c, func() error { return c.skip(1<<19, "page data") })
	if err != nil {
		t.Fatalf("skipping reads nothing, yet: %v", err)
	}
	err = readingMapped(path, c, func() error { _, err := c.be64("record header"); return err })
	if err == nil || !strings.Contains(err.Error(), "memory fault") || !strings.Contains(err.Error(), path) {
		t.Fatalf("read of a truncated mapping: %v, want a memory-fault error naming the file", err)
	}
}
