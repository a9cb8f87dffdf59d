package kdump

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
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
	lzoNormal := filepath.Join(t.TempDir(), "lzo-normal.kdump")
	lzoPages := reencodeLZO(t, normal, lzoNormal)
	snappyNormal := filepath.Join(t.TempDir(), "snappy-normal.kdump")
	snappyPages := reencodeSnappy(t, normal, snappyNormal)
	for _, tc := range []struct {
		name, path string
		flat, lzo  bool
	}{
		{"zlib-flattened", vm.Path("zlib.kdump"), true, false},
		{"snappy-flattened", vm.Path("snappy.kdump"), true, false},
		{"lzo-flattened", vm.Path("lzo.kdump"), true, true},
		{"zlib-normal", normal, false, false},
		// zlib pages re-encoded as LZO1X by the lzop CLI (reencodeLZO);
		// named so that QEMU's missing kdump-lzo does not skip it.
		{"lzo1x-normal", lzoNormal, false, true},
		// zlib pages re-encoded by Google's libsnappy (reencodeSnappy).
		{"libsnappy-normal", snappyNormal, false, false},
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
			if tc.lzo && im.Attrs["lzo_pages"] == "0" {
				t.Errorf("no LZO pages counted: %v", im.Attrs)
			}
			if tc.name == "lzo1x-normal" && im.Attrs["lzo_pages"] != strconv.Itoa(len(lzoPages)) {
				t.Errorf("lzo_pages %s, re-encoded %d", im.Attrs["lzo_pages"], len(lzoPages))
			}
			if tc.name == "libsnappy-normal" {
				b := testutil.FileSnapshot(t, tc.path)
				_, info, _, err := NewDisk(context.Background(), tc.path, bytes.NewReader(b), int64(len(b)))
				if err != nil || len(snappyPages) == 0 || info.Snappy != len(snappyPages) {
					t.Errorf("snappy pages %d, re-encoded %d (%v)", info.Snappy, len(snappyPages), err)
				}
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
	t.Run("lzo1x-corrupt-page", func(t *testing.T) {
		// A damaged LZO page fails to read with an error naming the file
		// and the page's offset; it never reads back as other bytes.
		b := testutil.FileSnapshot(t, lzoNormal)
		bad := lzoPages[len(lzoPages)/2]
		for i := bad.off; i < bad.off+bad.size; i++ {
			b[i] = 0xff
		}
		d, _, _, err := NewDisk(context.Background(), "bad.kdump", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, pc := range d.Pieces {
			if pc.FileOff != bad.off {
				continue
			}
			found = true
			_, err := d.ReadAt(make([]byte, pc.Len), pc.Off)
			var fe *model.FormatError
			if !errors.As(err, &fe) || fe.File != "bad.kdump" || fe.Offset != bad.off || !strings.Contains(err.Error(), "LZO") {
				t.Errorf("damaged page read: %v", err)
			}
		}
		if !found {
			t.Fatal("damaged page not in the disk")
		}
	})
}
