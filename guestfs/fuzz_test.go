package guestfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"iter"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// memDisk is a model.Disk over bytes padded with zeros to size.
type memDisk struct {
	data []byte
	size int64
}

func (d memDisk) Size() int64 { return d.size }
func (d memDisk) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= d.size {
		return 0, io.EOF
	}
	n := len(b)
	if rem := d.size - off; int64(n) > rem {
		n = int(rem)
	}
	clear(b[:n])
	if off < int64(len(d.data)) {
		copy(b[:n], d.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
func (d memDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return model.ExtentList(nil).Seq(ctx)
}

// FuzzPartitionTable reads arbitrary bytes as a partitioned disk and then
// analyzes it as a whole: tables, filesystem probes and indexes must never
// panic or allocate without bound.
func FuzzPartitionTable(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		d := memDisk{data, max(int64(len(data)), 1<<20)}
		pt, err := readPartitionTable(d, d.size)
		if err == nil {
			for _, e := range pt.Entries {
				if e.Index <= 0 {
					t.Fatalf("entry index %d", e.Index)
				}
			}
		}
		m, err := Analyze(context.Background(), d)
		if err != nil {
			return
		}
		for _, off := range []int64{0, 512, 4096, d.size / 2, d.size - 1} {
			m.Locate(off)
		}
		m.Unattributed()
		m.ReadFile("/etc/shadow")
	})
}

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
	img := make([]byte, 22*isoBlock)
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
	rootDir = append(rootDir, isoRecord(root, isoBlock, true, "\x00", dot)...)
	rootDir = append(rootDir, isoRecord(root, isoBlock, true, "\x01", nil)...)
	rootDir = append(rootDir, isoRecord(data, 11, false, "SECRET_F.TXT;1", file)...)
	rootDir = append(rootDir, isoRecord(sub, isoBlock, true, "SUB_DIR", dir)...)
	copy(img[root*isoBlock:], rootDir)
	var subDir []byte
	subDir = append(subDir, isoRecord(sub, isoBlock, true, "\x00", nil)...)
	subDir = append(subDir, isoRecord(root, isoBlock, true, "\x01", nil)...)
	subDir = append(subDir, isoRecord(data, 5, false, "DEEPER.CON;1", half)...)
	copy(img[sub*isoBlock:], subDir)
	copy(img[data*isoBlock:], "password=x\n")
	pvd := img[isoVDStart*isoBlock:]
	pvd[0] = 1
	copy(pvd[1:], "CD001")
	pvd[6] = 1
	copy(pvd[156:], isoRecord(root, isoBlock, true, "\x00", nil))
	term := img[(isoVDStart+1)*isoBlock:]
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
		tree, err := openISOTree(r, int64(len(data)))
		if err != nil {
			return
		}
		n := 0
		_, _ = tree.walk(context.Background(), func(p string, rec isoDirRecord, ext []isoDirRecord) error {
			if !strings.HasPrefix(p, "/") || len(ext) == 0 {
				t.Fatalf("path %q with %d extents", p, len(ext))
			}
			n++
			return nil
		})
		if x, _, err := buildISOIndex(context.Background(), r, int64(len(data)), "fuzz.iso"); err == nil {
			x.locate(int64(len(data)) / 2)
		}
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
		tree, err := openISOTree(bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if _, err := tree.walk(context.Background(), func(p string, _ isoDirRecord, _ []isoDirRecord) error { got = append(got, p); return nil }); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("rock ridge %v: %v, want %v", rr, got, want)
		}
	}
}
