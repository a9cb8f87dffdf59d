package lvm

import (
	"bytes"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ./testdata/mkseeds testdata/fuzz/FuzzReadPV

// fuzzDeviceSize is the size of the device a fuzz input starts: its bytes
// are the input followed by zeros.
const fuzzDeviceSize = 8 << 20

type paddedReader struct{ data []byte }

func (p paddedReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= fuzzDeviceSize {
		return 0, io.EOF
	}
	n := min(int64(len(b)), fuzzDeviceSize-off)
	clear(b[:n])
	if off < int64(len(p.data)) {
		copy(b[:n], p.data[off:])
	}
	if n < int64(len(b)) {
		return int(n), io.EOF
	}
	return int(n), nil
}

// FuzzReadPV reads arbitrary bytes as an LVM2 PV: label, metadata area,
// metadata text (current and old copies). It must never panic or allocate
// without bound.
func FuzzReadPV(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		pv, err := ReadPV(paddedReader{data}, fuzzDeviceSize, "fuzz")
		if err != nil || pv.VG == nil {
			return
		}
		for _, lv := range pv.VG.LVs {
			for _, s := range lv.Segments {
				if s.ExtentCount <= 0 || (s.Type == "striped" && len(s.Stripes) == 0) {
					t.Fatalf("LV %s: segment %+v", lv.Name, s)
				}
			}
		}
	})
}

// TestFuzzSeeds checks the committed seeds: a PV of a VG whose current
// metadata has LVs and whose metadata area still holds an older copy.
func TestFuzzSeeds(t *testing.T) {
	data := testutil.FuzzSeed(t, filepath.Join("testdata/fuzz/FuzzReadPV", "pv-with-lvs"))
	pv, err := ReadPV(paddedReader{data}, fuzzDeviceSize, "seed")
	if err != nil || pv.VG == nil {
		t.Fatalf("%+v, %v", pv, err)
	}
	var names []string
	for _, lv := range pv.VG.LVs {
		names = append(names, lv.Name)
	}
	if strings.Join(names, ",") != "root,data" || len(pv.Old) == 0 || len(pv.Old[0].LVs) != 3 {
		t.Errorf("LVs %v, %d old copies", names, len(pv.Old))
	}
	if !bytes.Contains(data, []byte("LABELONE")) {
		t.Error("no label in the seed")
	}
}
