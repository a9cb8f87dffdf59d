//go:build unix

package qemustream

import (
	"io"
	"os"
	"runtime/debug"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/model"
)

// mapStream maps the size bytes of r read-only when r is a host file, or a
// section of one (a libvirt save's stream), so that the parse reads the
// record headers in place: read through a buffer, every page was copied
// only to be skipped, about a third of a stream scan's CPU time, all of it
// before the scan's workers start. ok is false where r is anything else
// or cannot be mapped; the caller then reads through a buffer.
func mapStream(r io.ReaderAt, size int64) (b []byte, unmap func(), ok bool) {
	var base int64
	for {
		sr, ok := r.(*io.SectionReader)
		if !ok {
			break
		}
		outer, off, _ := sr.Outer()
		r, base = outer, base+off
	}
	f, isFile := r.(*os.File)
	if !isFile || size <= 0 || strconv.IntSize < 64 {
		return nil, nil, false
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() || base < 0 || base > st.Size()-size {
		return nil, nil, false
	}
	start := base &^ int64(os.Getpagesize()-1)
	m, err := unix.Mmap(int(f.Fd()), start, int(base+size-start), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		return nil, nil, false
	}
	return m[base-start : base-start+size : base-start+size], func() { _ = unix.Munmap(m) }, true
}

// readingMapped runs parse, which reads a mapping: a fault there (the file
// truncated under the scan) becomes an error naming the file, where it
// would crash the process. Other panics are not caught.
func readingMapped(name string, c *cursor, parse func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if v := recover(); v != nil {
			if _, ok := v.(interface{ Addr() uintptr }); !ok {
				panic(v)
			}
			err = model.Wrapf(errTruncated, name, c.pos, "memory fault reading the mapped stream (was the file truncated during the scan?)")
		}
	}()
	return parse()
}
