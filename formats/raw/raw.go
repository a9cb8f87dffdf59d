// Package raw reads raw disk images: the file's bytes are the guest bytes.
// Holes found with SEEK_DATA/SEEK_HOLE are neither read nor scanned.
package raw

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Open opens path read-only as a raw image with a single current view.
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "raw", path, opts, New)
}

// New reads r, size bytes, as a raw image named name, with a single
// current view. Where r is a host file (*os.File: the path-based Open, a
// spool), its holes are skipped (SEEK_DATA) and it is mapped read-only so
// that scans read it without copies; any other io.ReaderAt (a member read
// in place inside an archive or a layer) is one extent of data.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	ext, err := Extents(r, name, size)
	if err != nil {
		return nil, err
	}
	d := &model.FileDisk{R: r, Name: name, Len: size, Allocd: ext}
	im := &model.Image{Path: name, Format: "raw", VirtualSize: size}
	var disk model.Disk = d
	if f, ok := r.(*os.File); ok {
		if m, ok := mapReadOnly(f, size); ok {
			d.Map = m
			im.AddCloser(mapping(m))
			disk = mappedDisk{d}
		}
	} else if l, ok := r.(Lender); ok {
		disk = lentDisk{d, l}
	}
	im.Views = []model.View{{ID: model.ViewID(name, model.KindCurrent, ""), Kind: model.KindCurrent, Name: "current", Disk: disk}}
	return im, nil
}

// DataRanger is a file that knows its data ranges ([start, end) in file
// offsets, sorted, disjoint; false: it cannot tell): a guest file read
// through its filesystem, whose holes are known from its extents.
type DataRanger interface {
	DataRanges() ([][2]int64, bool)
}

// Extents lists the data regions of r, size bytes: SEEK_DATA/SEEK_HOLE's
// answer for a host file (DataExtents), a DataRanger's ranges (within
// size), one extent of the whole for any other io.ReaderAt.
func Extents(r io.ReaderAt, name string, size int64) (model.ExtentList, error) {
	if f, ok := r.(*os.File); ok {
		return DataExtents(f, name, size)
	}
	if size == 0 {
		return nil, nil
	}
	if d, ok := r.(DataRanger); ok {
		if rs, ok := d.DataRanges(); ok {
			var out model.ExtentList
			for _, x := range rs {
				lo, hi := max(x[0], 0), min(x[1], size)
				if lo < hi {
					out = append(out, model.Extent{Offset: lo, Length: hi - lo, Source: model.SourceData, File: name, FileOffset: lo, FileLength: hi - lo})
				}
			}
			return out, nil
		}
	}
	return model.ExtentList{{Offset: 0, Length: size, Source: model.SourceData, File: name, FileOffset: 0, FileLength: size}}, nil
}

// mapReadOnly maps a regular file read-only (PROT_READ of a file opened
// O_RDONLY: nothing can write through it) so that scans read it without a
// copy. Where the file cannot be mapped, reads use pread as before.
func mapReadOnly(f *os.File, size int64) ([]byte, bool) {
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || size <= 0 || size != st.Size() || int64(int(size)) != size || strconv.IntSize < 64 {
		return nil, false
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(size), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, false
	}
	return m, true
}

// mappedDisk is a FileDisk over a mapped file that releases the pages a
// scan is done with (detectors.Releaser): their page table entries go, the
// pages stay in the page cache, so the scan's resident set stays at a few
// chunks however large the image.
type mappedDisk struct{ *model.FileDisk }

// Lender is a reader that lends its bytes without a copy where it can
// (detectors.Slicer), and is told when they are no longer used: a raw
// disk stored as a file in a guest whose own disk is mapped.
type Lender interface {
	Slice(off int64, n int) ([]byte, bool)
	Release(b []byte)
}

// lentDisk is a raw disk whose reader lends its bytes.
type lentDisk struct {
	*model.FileDisk
	l Lender
}

func (d lentDisk) Slice(off int64, n int) ([]byte, bool) { return d.l.Slice(off, n) }
func (d lentDisk) Release(b []byte)                      { d.l.Release(b) }

func (d mappedDisk) Release(b []byte) { ReleasePages(b) }

// ReleasePages drops the page table entries of the whole pages inside b, a
// part of a read-only file mapping; the pages stay in the page cache. Only
// whole pages go: the pages at b's ends hold bytes that others may own.
func ReleasePages(b []byte) {
	page := uintptr(os.Getpagesize())
	start := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	lo := int((page - start%page) % page)
	hi := len(b) - int((start+uintptr(len(b)))%page)
	if hi <= lo {
		return
	}
	_ = unix.Madvise(b[lo:hi], unix.MADV_DONTNEED)
}

// MapFile maps the regular file at path read-only (PROT_READ of a
// descriptor opened O_RDONLY, closed again at once) and returns the
// mapping with the function that unmaps it. It fails for files that
// cannot be mapped (empty, not regular, too large for this platform).
func MapFile(path string) ([]byte, func() error, error) {
	f, err := hostfile.OpenRegular(path)
	if err != nil {
		return nil, nil, fmt.Errorf("raw: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("raw: %w", err)
	}
	m, ok := mapReadOnly(f, st.Size())
	if !ok {
		return nil, nil, fmt.Errorf("raw: %s: cannot be mapped", path)
	}
	return m, func() error { return unix.Munmap(m) }, nil
}

// mapping unmaps a mapReadOnly mapping when the image is closed.
type mapping []byte

func (m mapping) Close() error { return unix.Munmap(m) }

// NewDisk returns a Disk over an open file, with allocated extents found by
// SEEK_DATA/SEEK_HOLE (the whole file when the filesystem cannot tell).
func NewDisk(f *os.File, name string) (*model.FileDisk, error) {
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("raw: %w", err)
	}
	size := st.Size()
	if !st.Mode().IsRegular() {
		// Block devices: size by seeking to the end; no hole information.
		if size, err = f.Seek(0, io.SeekEnd); err != nil {
			return nil, fmt.Errorf("raw: %s: size: %w", name, err)
		}
	}
	ext, err := DataExtents(f, name, size)
	if err != nil {
		return nil, err
	}
	return &model.FileDisk{R: f, Name: name, Len: size, Allocd: ext}, nil
}

// DataExtents lists the data regions of f in [0,size) using SEEK_DATA and
// SEEK_HOLE. Where the kernel or filesystem does not support them, the whole
// range is one extent.
func DataExtents(f *os.File, name string, size int64) (model.ExtentList, error) {
	fd := int(f.Fd())
	var out model.ExtentList
	whole := model.ExtentList{{Offset: 0, Length: size, Source: model.SourceData, File: name, FileOffset: 0, FileLength: size}}
	if size == 0 {
		return nil, nil
	}
	off := int64(0)
	for off < size {
		data, err := unix.Seek(fd, off, unix.SEEK_DATA)
		if err != nil {
			if errors.Is(err, unix.ENXIO) {
				break // no more data
			}
			if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
				return whole, nil
			}
			return nil, fmt.Errorf("raw: %s: SEEK_DATA at %d: %w", name, off, err)
		}
		if data >= size {
			break
		}
		hole, err := unix.Seek(fd, data, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("raw: %s: SEEK_HOLE at %d: %w", name, data, err)
		}
		if hole > size {
			hole = size
		}
		out = append(out, model.Extent{Offset: data, Length: hole - data, Source: model.SourceData, File: name, FileOffset: data, FileLength: hole - data})
		off = hole
	}
	return out, nil
}
