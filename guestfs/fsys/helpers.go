package fsys

import (
	"errors"
	"io"
	"io/fs"
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

// MaxPath bounds, in bytes, the paths that walks give: PATH_MAX, as Linux
// has it. A guest's directories can nest past it (a chain of 2,048
// directories of 255-byte names is half a megabyte of path), and a walk
// that built such paths would copy them for every entry below: an entry
// whose path would be longer is given with Path "" (see Entry.Path), and
// so is everything below it.
const MaxPath = 4096

// Join appends a name to a directory path ("/" for the root). It returns
// "", no path, when dir is "" (a directory past MaxPath) or when the
// result would be longer than MaxPath bytes.
func Join(dir, name string) string {
	switch {
	case dir == "/":
		if 1+len(name) > MaxPath {
			return ""
		}
		return "/" + name
	case dir == "" || len(dir)+1+len(name) > MaxPath:
		return ""
	}
	return dir + "/" + name
}

// UnixMode converts a Unix st_mode (type and permission bits, as ext4 and
// XFS inodes keep it) to an fs.FileMode.
func UnixMode(mode uint16) fs.FileMode {
	m := fs.FileMode(mode & 0o777)
	switch mode & 0xF000 {
	case 0x4000:
		m |= fs.ModeDir
	case 0xA000:
		m |= fs.ModeSymlink
	case 0x2000:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case 0x6000:
		m |= fs.ModeDevice
	case 0x1000:
		m |= fs.ModeNamedPipe
	case 0xC000:
		m |= fs.ModeSocket
	}
	return m
}
