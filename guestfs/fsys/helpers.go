package fsys

import (
	"errors"
	"io"
	"strings"
)

// ReadFull reads len(b) bytes at off; a short read is io.ErrUnexpectedEOF.
func ReadFull(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// ValidName reports whether a directory entry's name can be a path
// component: not empty, ".", "..", and without "/" or NUL. Walks skip other
// names, which only hostile or corrupt directories hold.
func ValidName(n string) bool {
	return n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "/\x00")
}

// Join appends a name to a directory path ("/" for the root).
func Join(dir, name string) string {
	if dir == "/" || dir == "" {
		return "/" + name
	}
	return dir + "/" + name
}
