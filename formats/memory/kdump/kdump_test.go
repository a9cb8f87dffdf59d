package kdump

import (
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/memory/internal/qemufixture"
	"github.com/imgaudit/imgaudit/formats/model"
)

// rearrange rebuilds the normal kdump file from QEMU's flattened output,
// as `makedumpfile -R` does.
func rearrange(t *testing.T, src, dst string) {
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var out []byte
	for pos := flatHdrSize; ; {
		off := int64(binary.BigEndian.Uint64(b[pos:]))
		n := int64(binary.BigEndian.Uint64(b[pos+8:]))
		pos += 16
		if off == -1 {
			break
		}
		if need := off + n; int64(len(out)) < need {
			out = append(out, make([]byte, need-int64(len(out)))...)
		}
		copy(out[off:], b[pos:pos+int(n)])
		pos += int(n)
	}
	if err := os.WriteFile(dst, out, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestKdump(t *testing.T) {
	vm := qemufixture.Start(t, qemufixture.Config{})
	vm.HMP(t, "dump-guest-memory {dir}/dump.elf")
	vm.HMP(t, "dump-guest-memory -z {dir}/zlib.kdump")
	// Snappy and LZO depend on how QEMU was built.
	unavailable := map[string]error{}
	for _, c := range []string{"snappy", "lzo"} {
		if _, err := vm.TryHMP(t, "dump-guest-memory -"+c[:1]+" {dir}/"+c+".kdump"); err != nil {
			unavailable[c] = err
		}
	}
	vm.Quit()
	normal := filepath.Join(t.TempDir(), "normal.kdump")
	rearrange(t, vm.Path("zlib.kdump"), normal)
	for _, tc := range []struct {
		name, path string
		flat, lzo  bool
	}{
		{"zlib-flattened", vm.Path("zlib.kdump"), true, false},
		{"snappy-flattened", vm.Path("snappy.kdump"), true, false},
		{"lzo-flattened", vm.Path("lzo.kdump"), true, true},
		{"zlib-normal", normal, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := unavailable[strings.Split(tc.name, "-")[0]]; err != nil {
				t.Skipf("this QEMU cannot write it: %v", err)
			}
			before := qemufixture.FileSum(t, tc.path)
			head := make([]byte, 4096)
			f, _ := os.Open(tc.path)
			f.ReadAt(head, 0)
			f.Close()
			if !Probe(head, nil, 0) {
				t.Fatal("Probe rejects the dump")
			}
			im, err := Open(context.Background(), tc.path, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			v := im.Views[0]
			if got := im.Attrs["form"] == "flattened"; got != tc.flat {
				t.Errorf("form %s", im.Attrs["form"])
			}
			if tc.lzo {
				if im.Attrs["lzo_pages_skipped"] == "0" || !strings.Contains(strings.Join(v.Notes, ";"), "LZO") {
					t.Errorf("LZO pages not reported: %v %v", im.Attrs, v.Notes)
				}
				return
			}
			qemufixture.CheckPlants(t, tc.name, v.Disk, vm.Plants)
			qemufixture.CompareWithELF(t, tc.name, v.Disk, vm.Path("dump.elf"))
			var data, comp int
			for e, err := range v.Disk.Extents(context.Background()) {
				if err != nil {
					t.Fatal(err)
				}
				if e.File != tc.path || e.FileOffset < 0 {
					t.Fatalf("extent %+v", e)
				}
				if e.Source == model.SourceCompressed {
					comp++
				} else {
					data++
				}
			}
			if comp == 0 {
				t.Errorf("no compressed pages (data %d)", data)
			}
			if qemufixture.FileSum(t, tc.path) != before {
				t.Fatal("file changed")
			}
			t.Logf("%v", im.Attrs)
		})
	}
}
