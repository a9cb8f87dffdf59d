package ext4

import (
	"context"
	"io"
	"io/fs"
	"testing"
)

// paddedReader reads data followed by zeros up to size, like a short host
// file behind a larger disk, so seeds can stop at their last non-zero byte.
type paddedReader struct {
	data []byte
	size int64
}

func (p paddedReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 || off >= p.size {
		return 0, io.EOF
	}
	n := len(b)
	if rem := p.size - off; int64(n) > rem {
		n = int(rem)
	}
	clear(b[:n])
	if off < int64(len(p.data)) {
		copy(b[:n], p.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}

// FuzzExt4Open opens arbitrary bytes as an ext filesystem, walks it, maps
// every file's blocks, reads small files and tests bitmap bits. It must
// never panic, hang or allocate without bound.
func FuzzExt4Open(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		size := max(int64(len(data)), 256<<10)
		e, err := Open(paddedReader{data, size}, size)
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
