package model

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// Opener is the one policy for the files an image names: backing files,
// external data files, extents, differencing parents, sibling state files.
// A name is resolved relative to the directory of the file that wrote it
// (as QEMU does) or taken as written when absolute, and is opened only if
// the policy allows it: hostfile.Roots allows regular files under a set of
// directories, hostfile.Sealed (for disks inside a container layer or an
// archive) allows nothing. Every reader receives its Opener through
// Options and never opens a derived path itself.
//
// The io.ReaderAt-based readers (New) take it: a directory tree
// (hostfile.Roots), nothing (hostfile.Sealed), or the members of the same
// archive or container layer (tarindex).
type Opener interface {
	// Open resolves name, as written in the file from, and opens it
	// read-only as a regular file. It returns the file and the path that
	// names it in views, extents and errors (relative names joined to
	// from's directory, as QEMU forms them).
	Open(from, name string) (File, string, error)
	// Resolve applies the same policy without opening the file: the path
	// Open would name it by.
	Resolve(from, name string) (string, error)
	// List returns the names of the regular files in the directory dir,
	// written (like a name) in the file from: for formats that find a
	// file by its content rather than its name (a VDI's parent is the
	// .vdi with the right UUID next to it or one directory up). Each name
	// is still opened through Open, under the policy.
	List(from, dir string) ([]string, error)
}

// File is a file an Opener opened: read-only and regular. *os.File is one;
// readers that need a host descriptor (SEEK_DATA, mmap) type-assert it.
type File interface {
	io.ReaderAt
	io.Closer
	Stat() (fs.FileInfo, error)
}

// The reasons an Opener refuses a name; test with errors.Is.
var (
	// ErrOutsideRoots: the name resolves (after symlinks) outside every
	// allowed root.
	ErrOutsideRoots = errors.New("outside the allowed roots: not followed (see --backing-root)")
	// ErrNotRegular: the name is a FIFO, device, socket, directory, or a
	// file under /proc or /sys: opening or reading it could block, have side
	// effects or read kernel state.
	ErrNotRegular = errors.New("not a regular file: not opened")
	// ErrSealed: the naming file lies inside a container layer or an
	// archive, whose names never resolve to host files.
	ErrSealed = errors.New("the image lies inside a container layer or archive, whose names are not resolved on this host: not followed")
	// ErrBadName: the name cannot be a file name (empty, or with a NUL).
	ErrBadName = errors.New("not a usable file name")
	// ErrOutsideArchive: the naming file lies inside a container layer or
	// an archive read in place, and the name (or a link it reaches)
	// climbs out of it.
	ErrOutsideArchive = errors.New("outside the container layer or archive that holds the image: not followed")
)

// RefusedError is an Opener's refusal of a name.
type RefusedError struct {
	Name string // as written in the image
	Path string // as joined to the naming file's directory ("" if not formed)
	Real string // after symlinks ("" when not resolved)
	What string // for ErrNotRegular: "a named pipe", "a character device", ...
	Err  error  // ErrOutsideRoots, ErrNotRegular, ErrSealed, ErrOutsideArchive or ErrBadName
}

func (e *RefusedError) Error() string {
	switch {
	case errors.Is(e.Err, ErrNotRegular):
		p := e.Real
		if p == "" {
			p = e.Path
		}
		return p + " is " + e.What + ", " + e.Err.Error()
	case errors.Is(e.Err, ErrOutsideRoots) && e.Real != "" && e.Real != e.Path:
		return "resolves to " + e.Real + ", " + e.Err.Error()
	}
	return e.Err.Error()
}

func (e *RefusedError) Unwrap() error { return e.Err }

// NameUse is one request an Opener answered: tests and audits read these
// to prove which host files an image made imgaudit open.
type NameUse struct {
	From   string // the file that wrote the name
	Name   string // the name as written
	Path   string // joined to From's directory ("" when refused before that)
	Real   string // after symlinks ("" when not resolved)
	Opened bool   // Open (not only Resolve) was asked and succeeded
	Err    error  // nil: allowed
}

// NewFileInfo describes a read-only regular file that is no host file (an
// archive member, a file of a guest filesystem), for File.Stat.
func NewFileInfo(name string, size int64) fs.FileInfo { return fileInfo{name, size} }

type fileInfo struct {
	name string
	size int64
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return 0o444 }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return false }
func (i fileInfo) Sys() any           { return nil }
