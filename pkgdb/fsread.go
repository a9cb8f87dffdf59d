package pkgdb

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
)

// readBounded reads one regular file of the guest, refusing it when it is
// larger than max bytes. FS.ReadFile reads a whole file into memory, so the
// size is checked first, from the file's entry in its directory; a file
// that is a symlink is refused rather than followed to a size unknown.
// A missing file or directory gives an error that errors.Is fs.ErrNotExist.
func readBounded(fsys FS, name string, max int64) ([]byte, error) {
	dir, base := path.Split(name)
	entries, err := fsys.ReadDir(path.Clean(dir))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	for _, e := range entries {
		if e.Name() == base {
			return readEntry(fsys, path.Clean(dir), e, max)
		}
	}
	return nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
}

// readEntry reads the regular file that entry e of directory dir names,
// refusing it when it is larger than max bytes. Where the caller has the
// listing already, this spares readBounded's listing of dir for each of
// its files (quadratic in a directory of many).
func readEntry(fsys FS, dir string, e fs.DirEntry, max int64) ([]byte, error) {
	name := path.Join(dir, e.Name())
	if !e.Type().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file (%v)", name, e.Type())
	}
	info, err := e.Info()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if info.Size() > max {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte cap", name, info.Size(), max)
	}
	b, err := fsys.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %d bytes, over the %d-byte cap", name, len(b), max)
	}
	return b, nil
}

// LargeFileFS is an FS that reads a file past its ReadFile cap when the
// caller names a larger limit. guestfs's ReadFile stops at 16 MiB, and an
// rpm database of a long-lived server is larger (Red Hat shows a
// Packages of 96 MB): through ReadFile, such a guest's files got no
// package provenance at all.
type LargeFileFS interface {
	FS
	ReadFileLimit(path string, limit int64) ([]byte, error)
}

// readBoundedLarge is readBounded through ReadFileLimit where fsys has it,
// so that max, not the FS's own cap, bounds the file.
func readBoundedLarge(fsys FS, name string, max int64) ([]byte, error) {
	lf, ok := fsys.(LargeFileFS)
	if !ok {
		return readBounded(fsys, name, max)
	}
	b, err := lf.ReadFileLimit(name, max)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return b, nil
}

// isNotExist says whether err means that a file or directory is absent.
func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }
