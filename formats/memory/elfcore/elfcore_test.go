package elfcore

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
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
