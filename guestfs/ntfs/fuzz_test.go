package ntfs

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
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
		// Sizes up to 1 TiB are the parser's business, but reading
		// hundreds of megabytes of zeros each run would stall fuzzing.
		size := min(r.Size(), 256<<20)
		v, err := Open(context.Background(), r, size, "fuzz")
		if err != nil {
			return
		}
		n := 0
		v.Walk(context.Background(), func(e fsys.Entry) error {
			if n++; n > 20000 {
				return errors.New("enough")
			}
			for _, r := range e.Runs {
				if r.Len <= 0 || r.Off < 0 || r.Off+r.Len > size || r.FileOff < 0 {
					t.Fatalf("%s: run %+v outside the %d-byte device", e.Path, r, size)
				}
			}
			if !e.Deleted && e.Mode.IsRegular() && n < 50 {
				if f, err := v.Open(e.Path); err == nil {
					f.ReadAt(make([]byte, min(f.Size(), 1<<16)), 0)
				}
			}
			return nil
		})
		for _, off := range []int64{0, size / 3, size / 2, size - 1} {
			v.State(off)
		}
		v.ReadDir("/")
		v.ReadDir("/etc/app")
		v.Open("/etc/small.conf:stream")
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
		var paths []string
		if err := v.Walk(context.Background(), func(e fsys.Entry) error { paths = append(paths, e.Path); return nil }); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{"/etc/app/credentials", "/etc/small.conf:stream", "/deleted.txt", "/deleted-small.txt"} {
			if !slices.Contains(paths, p) {
				t.Errorf("seed: no %s in %q", p, paths)
			}
		}
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
