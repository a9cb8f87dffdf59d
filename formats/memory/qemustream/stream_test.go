package qemustream

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/memory/internal/qemufixture"
	"github.com/imgaudit/imgaudit/formats/model"
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
