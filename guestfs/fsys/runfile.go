package fsys

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"slices"
)

// ErrCompressed is returned when a file's bytes are stored compressed and
// the filesystem package does not decompress them.
var ErrCompressed = errors.New("fsys: compressed data cannot be read")

// RunFile is a File read through its runs: bytes that no run covers
// (holes) and unwritten runs read as zeros, as the guest reads them. Reading
// a compressed run fails with ErrCompressed.
type RunFile struct {
	r    io.ReaderAt
	size int64
	runs []Run // sorted by FileOff
}

// NewRunFile returns the file of size bytes whose data runs maps onto r
// (the filesystem's byte space). runs is copied and sorted by file offset.
func NewRunFile(r io.ReaderAt, size int64, runs []Run) *RunFile {
	rs := slices.Clone(runs)
	slices.SortFunc(rs, func(a, b Run) int { return cmp.Compare(a.FileOff, b.FileOff) })
	return &RunFile{r: r, size: size, runs: rs}
}

// Size is the file's logical size.
func (f *RunFile) Size() int64 { return f.size }

// ReadAt reads the file's bytes at off, with io.ReaderAt's contract.
func (f *RunFile) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("fsys: negative offset %d", off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	want := int64(len(p))
	if want > f.size-off {
		want = f.size - off
	}
	buf := p[:want]
	clear(buf)
	end := off + want
	// The first run that ends after off.
	i, _ := slices.BinarySearchFunc(f.runs, off, func(r Run, t int64) int {
		if r.FileOff+r.Len <= t {
			return -1
		}
		return 1
	})
	for ; i < len(f.runs) && f.runs[i].FileOff < end; i++ {
		r := f.runs[i]
		if r.Unwritten {
			continue
		}
		if r.Compressed {
			return 0, fmt.Errorf("file bytes %d-%d: %w", r.FileOff, r.FileOff+r.Len, ErrCompressed)
		}
		s, e := max(off, r.FileOff), min(end, r.FileOff+r.Len)
		if s >= e {
			continue
		}
		src := r.Off + (s - r.FileOff)
		n, err := f.r.ReadAt(buf[s-off:e-off], src)
		if int64(n) != e-s {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, fmt.Errorf("fsys: read %d bytes at offset %d: %w", e-s, src, err)
		}
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}
