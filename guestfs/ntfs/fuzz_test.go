package ntfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ../internal/mkseed -fs ntfs -dir testdata/fuzz/FuzzNTFSOpen

// FuzzNTFSOpen opens arbitrary bytes (a sparseimg-packed image: the seed
// is a real mkntfs image populated through ntfs-3g) as NTFS, walks it,
// tests states and reads files by path. It must never panic, hang or
// allocate without bound, and every run it gives must lie inside the
// device.
func FuzzNTFSOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := min(r.Size(), fstest.FuzzSize)
		if v, err := Open(context.Background(), r, size, "fuzz"); err == nil {
			fstest.Exercise(t, v, size, "/etc/app", "/etc/small.conf:stream", "/cdir/comp.txt")
		}
	})
}

// TestFuzzSeedsOpen: the committed seeds are NTFS volumes the reader
// opens and walks, down to the populated files, so that fuzzing starts
// from deep inside the parser.
func TestFuzzSeedsOpen(t *testing.T) {
	for _, data := range fuzzSeeds(t) {
		r := sparseimg.Decode(data)
		v, err := Open(context.Background(), r, r.Size(), "seed")
		if err != nil {
			t.Fatal(err)
		}
		fstest.WalksTo(t, v, "/etc/app/credentials", "/etc/small.conf:stream", "/deleted.txt", "/deleted-small.txt", "/cdir/gone.txt")
		// The compressed file reads back: LZNT1, stored and sparse units.
		f, err := v.Open("/cdir/comp.txt")
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, f.Size())
		text := bytes.Repeat([]byte("aws_secret_access_key = x\n"), 3000)
		if _, err := f.ReadAt(b, 0); err != nil || len(b) != len(text)+(64<<10)+(128<<10) || !bytes.HasPrefix(b, text) || len(bytes.Trim(b[len(b)-128<<10:], "\x00")) != 0 {
			t.Errorf("/cdir/comp.txt: %d bytes, %v", len(b), err)
		}
		// The deleted compressed file decodes from its runs.
		gone := bytes.Repeat([]byte("deleted compressed token\n"), 4000)
		v.Walk(context.Background(), func(e fsys.Entry) error {
			if e.Path == "/cdir/gone.txt" {
				g, err := v.OpenCompressedRuns(e.Runs, e.Size)
				if err != nil {
					t.Fatal(err)
				}
				b := make([]byte, g.Size())
				if _, err := g.ReadAt(b, 0); err != nil || !bytes.Equal(b, gone) {
					t.Errorf("/cdir/gone.txt: %d bytes, %v", len(b), err)
				}
			}
			return nil
		})
	}
}

// fuzzSeeds reads the seeds mkseed made, not the inputs that fuzzing found
// and that stay as regression seeds.
func fuzzSeeds(t *testing.T) [][]byte {
	var out [][]byte
	for _, name := range []string{"mkntfs-populated"} {
		out = append(out, testutil.FuzzSeed(t, "testdata/fuzz/FuzzNTFSOpen/"+name))
	}
	return out
}

// FuzzLZNT1 decodes arbitrary bytes as a compression unit's LZNT1. It
// must never panic, nor write past the unit.
func FuzzLZNT1(f *testing.F) {
	f.Add([]byte{0x05, 0xB0, 0x02, 'a', 0x00, 0x30})
	f.Fuzz(func(t *testing.T, src []byte) {
		dst := make([]byte, 64<<10)
		if n, _ := decompressLZNT1(src, dst); n < 0 || n > len(dst) {
			t.Fatalf("%d bytes decoded into %d", n, len(dst))
		}
	})
}

// TestOpenErrors: a damaged boot sector or MFT fails Open with an error
// that names the partition and the device offset.
func TestOpenErrors(t *testing.T) {
	seed := sparseimg.Decode(fuzzSeeds(t)[0])
	img := make([]byte, seed.Size())
	seed.ReadAt(img, 0)
	mft := int64(binary.LittleEndian.Uint64(img[0x30:])) * int64(binary.LittleEndian.Uint16(img[0x0B:])) * int64(img[0x0D])
	for _, c := range []struct {
		name string
		off  int64
		b    []byte
		want string
	}{
		{"record size", 0x40, []byte{0x7F}, "p9: offset 0 (0x0): ntfs: boot sector: 512-byte sectors"},
		{"MFT cluster", 0x30, []byte{0xFF, 0xFF, 0xFF, 0, 0, 0, 0, 0}, "p9: offset 48 (0x30): ntfs: boot sector: $MFT at cluster 16777215"},
		{"record 0 magic", mft, []byte("XXXX"), fmt.Sprintf("p9: offset %d (%#x): ntfs: $MFT record 0", mft, mft)},
		{"root record", mft + recRoot*1024 + 22, []byte{0, 0}, "ntfs: root directory (MFT record 5) unreadable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := bytes.Clone(img)
			copy(b[c.off:], c.b)
			_, err := Open(context.Background(), bytes.NewReader(b), int64(len(b)), "p9")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want %q in it", err, c.want)
			}
		})
	}
}
