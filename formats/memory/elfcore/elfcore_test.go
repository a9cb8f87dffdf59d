package elfcore

import (
	"compress/gzip"
	"context"
	"encoding/binary"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
)

// toXNUM rewrites an ELF64 core to use e_phnum = PN_XNUM with the real
// count in section header 0's sh_info, as QEMU does past 65534 segments.
func toXNUM(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	phnum := le.Uint16(b[56:])
	sh := make([]byte, 64)
	le.PutUint32(sh[44:], uint32(phnum)) // sh_info
	shoff := uint64(len(b))
	b = append(b, sh...)
	le.PutUint64(b[40:], shoff) // e_shoff
	le.PutUint16(b[58:], 64)    // e_shentsize
	le.PutUint16(b[60:], 1)     // e_shnum
	le.PutUint16(b[56:], 0xffff)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestELFCore(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf")
	elfPath := vm.Path("dump.elf")
	xnum := filepath.Join(t.TempDir(), "xnum.elf")
	toXNUM(t, elfPath, xnum)
	for _, tc := range []struct{ name, path string }{{"dump-guest-memory", elfPath}, {"pn_xnum", xnum}} {
		t.Run(tc.name, func(t *testing.T) {
			before := qemufixture.FileSum(t, tc.path)
			head := make([]byte, 64)
			f, _ := os.Open(tc.path)
			f.ReadAt(head, 0)
			f.Close()
			if !Probe(head, nil, 0) {
				t.Fatal("Probe rejects the core")
			}
			im, err := Open(context.Background(), tc.path, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			d := im.Views[0].Disk
			if d.Size() != 4<<30 { // the BIOS is mapped just below 4 GiB
				t.Errorf("size 0x%x", d.Size())
			}
			qemufixture.CheckPlants(t, tc.name, d, vm.Plants)
			qemufixture.CompareWithELF(t, tc.name, d, elfPath)
			qemufixture.CheckHostBytes(t, tc.name, d)
			for e, err := range d.Extents(context.Background()) {
				if err != nil || e.Source != model.SourceData || e.File != tc.path {
					t.Fatalf("extent %+v %v", e, err)
				}
			}
			if qemufixture.FileSum(t, tc.path) != before {
				t.Fatal("file changed")
			}
		})
	}
}

// TestGuestPhysical: QEMU's dump of a guest's RAM is guest-physical; a
// process's core (Go's own test data, hello-world-core, written by the
// Linux kernel) maps virtual memory with every p_paddr 0. ProbeGuest
// tells them apart from their first 4 KiB. The table covers
// the edges the cores do not.
func TestGuestPhysical(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{}, "dump-guest-memory {dir}/dump.elf")
	proc := filepath.Join(t.TempDir(), "core")
	gz, err := os.Open(filepath.Join(runtime.GOROOT(), "src/debug/elf/testdata/hello-world-core.gz"))
	if err != nil {
		t.Fatal(err)
	}
	defer gz.Close()
	zr, err := gzip.NewReader(gz)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(proc, b, 0o644)
	for _, c := range []struct {
		path string
		want bool
	}{{vm.Path("dump.elf"), true}, {proc, false}} {
		f, err := os.Open(c.path)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		segs, err := Segments(c.path, f, fi.Size())
		head := make([]byte, 4096)
		f.ReadAt(head, 0)
		f.Close()
		if ProbeGuest(head) != c.want {
			t.Errorf("%s: ProbeGuest of its first 4 KiB %v", c.path, !c.want)
		}
		if err != nil {
			t.Fatal(err)
		}
		if got := GuestPhysical(segs); got != c.want {
			t.Errorf("%s (%d segments): GuestPhysical %v", c.path, len(segs), got)
		}
	}
	for _, c := range []struct {
		name string
		segs []Segment
		want bool
	}{
		{"none", nil, false},
		{"only empty", []Segment{{Paddr: 0x1000}}, false},
		{"one at 0", []Segment{{Paddr: 0, Filesz: 4096}}, true},
		{"two at 0", []Segment{{Paddr: 0, Filesz: 4096}, {Paddr: 0, Filesz: 4096}}, false},
		{"0 and above", []Segment{{Paddr: 0, Filesz: 4096}, {Paddr: 1 << 20, Filesz: 4096}}, true},
		{"two at 0, one empty", []Segment{{Paddr: 0, Filesz: 4096}, {Paddr: 0}}, true},
	} {
		if got := GuestPhysical(c.segs); got != c.want {
			t.Errorf("%s: %v", c.name, got)
		}
	}
}
