package vmdk

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

func FuzzDescriptor(f *testing.F) {
	f.Add([]byte("# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType=\"monolithicFlat\"\nRW 100 FLAT \"a b.bin\" 0\nRW 30 ZERO\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDescriptor(b)
		if err != nil {
			return
		}
		for _, e := range d.Extents {
			if e.Sectors <= 0 || e.Offset < 0 {
				t.Fatalf("accepted extent %+v", e)
			}
		}
	})
}

func FuzzSparseHeader(f *testing.F) {
	f.Add(hostedHeader(flagCompressed|flagMarkers, 128, 128, 1, 1, 0, 2, 4))
	f.Fuzz(func(t *testing.T, b []byte) {
		ParseSparseHeader(b)
		ParseCOWDHeader(b)
		ParseSESparseHeader(b)
		if sp, _, _, err := openSparse("fuzz", bytes.NewReader(b), int64(len(b))); err == nil && sp != nil {
			if sp.grainSize <= 0 || sp.gtEntries <= 0 {
				t.Fatalf("accepted grain size %d, %d entries", sp.grainSize, sp.gtEntries)
			}
		}
	})
}

// exercise opens a whole small sparse file and reads it as a scanner would,
// bounded so that a huge declared capacity costs nothing.
func exercise(t *testing.T, b []byte) {
	ctx := context.Background()
	im, err := New(ctx, bytes.NewReader(b), int64(len(b)), "fuzz.vmdk", model.Options{})
	if err != nil {
		return
	}
	defer im.Close()
	buf := make([]byte, 1<<16)
	for _, v := range im.Views {
		n := 0
		for e, err := range v.Disk.Extents(ctx) {
			if err != nil || n > 64 {
				break
			}
			n++
			v.Disk.ReadAt(buf[:min(int64(len(buf)), e.Length)], e.Offset)
		}
		v.Disk.ReadAt(buf, 0)
	}
}

func FuzzGrainTables(f *testing.F) {
	small := bytes.Repeat([]byte("fuzz-seed-data-"), 9000)
	f.Add(synthStream(small[:100000], true, nil))
	f.Add(synthCOWD(small[:70000], 8))
	f.Fuzz(exercise)
}

func FuzzStreamMarkers(f *testing.F) {
	f.Add(synthStream(bytes.Repeat([]byte("m"), 70000), true, [][]byte{[]byte("stale")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		prev := int64(-1)
		for m, err := range WalkMarkers(bytes.NewReader(b), "fuzz", 0, int64(len(b)), 64<<10) {
			if err != nil {
				break
			}
			if m.Offset <= prev {
				t.Fatalf("walk went backwards: %d after %d", m.Offset, prev)
			}
			prev = m.Offset
			n++
		}
		if n > len(b)/512+1 {
			t.Fatalf("%d markers in %d bytes", n, len(b))
		}
		exercise(t, b)
	})
}

// TestWriteSeeds regenerates the committed seed corpora (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	data := bytes.Repeat([]byte("seed-"), 20000)
	data = append(data, make([]byte, 70000)...)
	seeds := map[string][][]byte{
		"FuzzDescriptor": {
			[]byte("# Disk DescriptorFile\r\nversion=1\r\nCID=12345678\r\nparentCID=ffffffff\r\ncreateType=\"twoGbMaxExtentSparse\"\r\nparentFileNameHint=\"base.vmdk\"\r\nRW 4192256 SPARSE \"x-s001.vmdk\"\r\nRDONLY 8 FLAT \"x-f001.vmdk\" 12\r\nNOACCESS 8 ZERO\r\nddb.adapterType = \"lsilogic\"\r\n\x00\x00\x00"),
			[]byte("version=1\ncreateType=streamOptimized\nRW 16777216 SPARSE \"../evil\"\n"),
		},
		"FuzzSparseHeader": {
			hostedHeader(flagNLDetect|flagCompressed|flagMarkers, 2048, 128, 1, 20, 0, gdAtEnd64, 128),
			synthCOWD(data[:4096], 8)[:2048],
			synthSESparse(data[:8192], -1)[:512],
		},
		"FuzzGrainTables": {
			synthStream(data[:150000], true, nil),
			synthStream(data[:20000], false, [][]byte{data[:3000]}),
		},
		"FuzzStreamMarkers": {
			synthStream(data[:100000], true, [][]byte{data[:100]}),
		},
	}
	for name, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", name)
		for i, b := range list {
			if len(b) > 64<<10 {
				t.Fatalf("%s seed %d is %d bytes", name, i, len(b))
			}
			if err := fuzzcorpus.Write(dir, fmt.Sprintf("seed-%d", i), b); err != nil {
				t.Fatal(err)
			}
		}
	}
}
