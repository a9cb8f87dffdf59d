// Package pkgdb reads the package managers' own records from a guest
// filesystem (dpkg, rpm, apk, Python dist-info RECORD files) and answers one
// question for the scanner: which package installed this file, and what
// digest did it have then. A finding inside a file whose digest still
// equals the recorded one is public material that the package ships: the
// same bytes are on every machine that installed it.
//
// Each manager has its own file and its own reader; Read runs every reader
// whose records are present and merges what they say. Readers never follow
// names outside the guest filesystem they are given, and bound what they
// read (see the caps in each reader).
package pkgdb

import (
	"context"
	"io/fs"
)

// FS is the read-only access to a guest filesystem that the readers need.
// The scanner passes its guestfs view; tests may pass os.DirFS-like
// adapters over a real root made by the real tools.
type FS interface {
	// ReadFile reads a regular file, following symlinks inside the guest.
	ReadFile(path string) ([]byte, error)
	// ReadDir lists a directory (without "." and "..").
	ReadDir(path string) ([]fs.DirEntry, error)
}

// Digest is a file digest as a package manager records it.
type Digest struct {
	Algo string // "md5", "sha1", "sha256", "sha512" ...
	Sum  []byte // raw bytes, not hex
}

// Owner is what one package manager records about one installed file.
type Owner struct {
	Manager  string // "dpkg", "rpm", "apk", "python"
	Package  string
	Version  string
	Digest   Digest // zero when the manager recorded none for this file
	Conffile bool   // a configuration file the admin is expected to edit
}

// Record is one file of one package, with its absolute guest path.
type Record struct {
	Path  string
	Owner Owner
}

// managerReader reads one manager's records. It returns (nil, nil) when
// the manager's database is absent from the filesystem.
type managerReader struct {
	name string
	read func(ctx context.Context, fsys FS) ([]Record, error)
}

// readers lists every manager's reader. Each lives in its own file.
func readers() []managerReader {
	return []managerReader{
		{"dpkg", readDpkg},
		{"rpm", readRPM},
		{"apk", readAPK},
		{"python", readPythonRecords},
	}
}
