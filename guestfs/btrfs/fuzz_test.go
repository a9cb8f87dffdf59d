package btrfs

import (
	"context"
	"errors"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
)

//go:generate go run ../internal/mkseed -fs btrfs -dir testdata/fuzz/FuzzBtrfsOpen

// FuzzBtrfsOpen opens arbitrary bytes (a sparseimg-packed image: the seeds
// are real mkfs.btrfs images) as btrfs, walks it, tests states and reads
// files by path. It must never panic, hang or allocate without bound, and
// every run it gives must lie inside the device.
func FuzzBtrfsOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := r.Size()
		b, err := Open(context.Background(), r, size, "fuzz")
		if err != nil {
			return
		}
		n := 0
		err = b.Walk(context.Background(), func(e fsys.Entry) error {
			if n++; n > 20000 {
				return errors.New("enough")
			}
			for _, r := range e.Runs {
				if r.Len <= 0 || r.Off < 0 || r.Off+r.Len > size || r.FileOff < 0 {
					t.Fatalf("%s: run %+v outside the %d-byte device", e.Path, r, size)
				}
			}
			if e.Mode.IsRegular() && n < 50 {
				if f, err := b.Open(e.Path); err == nil {
					f.ReadAt(make([]byte, min(f.Size(), 1<<16)), 0)
				}
			}
			return nil
		})
		for _, off := range []int64{0, superOffset, size / 3, size / 2, size - 1} {
			b.State(off)
		}
		b.ReadDir("/")
		b.ReadDir("/etc/app")
		b.Open("/etc/app/link")
	})
}
