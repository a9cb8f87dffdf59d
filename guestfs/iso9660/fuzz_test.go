package iso9660

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// isoRecord encodes an ISO 9660 directory record.
func isoRecord(lba, size uint32, dir bool, name string, su []byte) []byte {
	n := 33 + len(name)
	if len(name)%2 == 0 {
		n++
	}
	b := make([]byte, n, n+len(su))
	b = append(b, su...)
	b[0] = byte(len(b))
	binary.LittleEndian.PutUint32(b[2:], lba)
	binary.BigEndian.PutUint32(b[6:], lba)
	binary.LittleEndian.PutUint32(b[10:], size)
	binary.BigEndian.PutUint32(b[14:], size)
	if dir {
		b[25] = 0x02
	}
	b[28], b[31], b[32] = 1, 1, byte(len(name))
	copy(b[33:], name)
	return b
}

// tinyISO builds a small ISO 9660 image by hand: a root directory holding a
// file and a subdirectory, with Rock Ridge names (SP and NM entries, one
// name continued in a second NM) when rr is set.
func tinyISO(rr bool) []byte {
	const root, sub, data = 19, 20, 21
	img := make([]byte, 22*Block)
	nm := func(name string, flags byte) []byte {
		return append([]byte{'N', 'M', byte(5 + len(name)), 1, flags}, name...)
	}
	var dot, file, dir, half []byte
	if rr {
		dot = []byte{'S', 'P', 7, 1, 0xBE, 0xEF, 0}
		file = append(nm("secret-", 1), nm("file.txt", 0)...)
		dir = nm("Sub Dir", 0)
		half = nm("deeper.conf", 0)
	}
	var rootDir []byte
	rootDir = append(rootDir, isoRecord(root, Block, true, "\x00", dot)...)
	rootDir = append(rootDir, isoRecord(root, Block, true, "\x01", nil)...)
	rootDir = append(rootDir, isoRecord(data, 11, false, "SECRET_F.TXT;1", file)...)
	rootDir = append(rootDir, isoRecord(sub, Block, true, "SUB_DIR", dir)...)
	copy(img[root*Block:], rootDir)
	var subDir []byte
	subDir = append(subDir, isoRecord(sub, Block, true, "\x00", nil)...)
	subDir = append(subDir, isoRecord(root, Block, true, "\x01", nil)...)
	subDir = append(subDir, isoRecord(data, 5, false, "DEEPER.CON;1", half)...)
	copy(img[sub*Block:], subDir)
	copy(img[data*Block:], "password=x\n")
	pvd := img[isoVDStart*Block:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	copy(pvd[156:], isoRecord(root, Block, true, "\x00", nil))
	term := img[(isoVDStart+1)*Block:]
	term[0] = 255
	copy(term[1:], "CD001")
	return img
}

// FuzzISOTree reads arbitrary bytes as an ISO 9660 image: the walker and
// the index must never panic, loop or allocate without bound.
func FuzzISOTree(f *testing.F) {
	f.Add(tinyISO(true))
	f.Add(tinyISO(false))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bytes.NewReader(data)
		tree, err := Open(r, int64(len(data)))
		if err != nil {
			return
		}
		n := 0
		_, _ = tree.walk(context.Background(), func(p string, rec dirRecord, ext []dirRecord) error {
			if !strings.HasPrefix(p, "/") || len(ext) == 0 {
				t.Fatalf("path %q with %d extents", p, len(ext))
			}
			n++
			return nil
		})
		_ = tree.Walk(context.Background(), func(e fsys.Entry) error {
			for _, r := range e.Runs {
				if r.Len <= 0 || r.Off < 0 || r.Off >= int64(len(data)) {
					t.Fatalf("%s: run %+v outside the image", e.Path, r)
				}
			}
			return nil
		})
	})
}

// TestTinyISO checks the fuzz seed: the hand-built image must walk to the
// Rock Ridge (or plain) names it was built with.
func TestTinyISO(t *testing.T) {
	for rr, want := range map[bool][]string{
		true:  {"/secret-file.txt", "/Sub Dir", "/Sub Dir/deeper.conf"},
		false: {"/SECRET_F.TXT", "/SUB_DIR", "/SUB_DIR/DEEPER.CON"},
	} {
		img := tinyISO(rr)
		tree, err := Open(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if _, err := tree.walk(context.Background(), func(p string, _ dirRecord, _ []dirRecord) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rock ridge %v: %v, want %v", rr, got, want)
		}
	}
}
