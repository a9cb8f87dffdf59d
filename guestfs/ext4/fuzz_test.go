package ext4

import (
	"context"
	"io"
	"io/fs"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
)

// FuzzExt4Open opens arbitrary bytes as an ext filesystem, walks it, maps
// every file's blocks, reads small files and tests bitmap bits. It must
// never panic, hang or allocate without bound.
//
// An input is an image packed by sparseimg (its size, then the byte ranges
// that are not zero), as mkseed writes the seeds from images mke2fs makes:
// Go's fuzzer minimizes each new input before it counts executions, and
// the 12-86 KB raw seeds this target had made it show a handful a minute.
//
//go:generate go run ../internal/mkseed -fs ext4 -dir testdata/fuzz/FuzzExt4Open
func FuzzExt4Open(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := min(r.Size(), fstest.FuzzSize)
		e, err := Open(r, size)
		if err != nil {
			return
		}
		for _, blk := range []uint64{0, 1, e.BlocksCount() / 2, e.BlocksCount() - 1} {
			e.BlockAllocated(blk)
		}
		n := 0
		e.WalkInodes(context.Background(), func(p string, ino uint32, mode fs.FileMode) error {
			if n++; n > 10000 {
				return fs.SkipAll
			}
			if _, err := e.InodeBlocks(ino); err == nil && mode.IsRegular() {
				e.ReadFileLimit(p, 1<<16)
				streamPrefix(e, p)
			}
			return nil
		})
		e.List("/")
		e.ReadFile("/l")
		e.Readlink("/l")
	})
}

// streamPrefix reads the first 64 KiB of a file through Open, as the
// scanner hashes files, and checks that Read never returns more than the
// file's size.
func streamPrefix(e *FS, p string) {
	fl, err := e.Open(p)
	if err != nil {
		return
	}
	e.Mtime(p)
	n, _ := io.Copy(io.Discard, io.NewSectionReader(fl, 0, min(fl.Size(), 1<<16)))
	if n > fl.Size() {
		panic("read past i_size")
	}
}
