// Package diskfsio adapts an io.ReaderAt to go-diskfs's backend.Storage, so
// that go-diskfs readers (the reference walks of the tests; squashfs
// partitions were opened with go-diskfs until 2026-12-07) read a partition
// through the same read-only reader as everything else.
package diskfsio

import (
	"errors"
	"io"
	iofs "io/fs"
	"os"
	"time"

	"github.com/diskfs/go-diskfs/backend"
)

// readOnlyStorage is a backend.Storage on an io.ReaderAt. Writable always
// fails, and there is no *os.File behind it.
type readOnlyStorage struct {
	*io.SectionReader
	size int64
}

// ReadOnly returns the storage of r's first size bytes.
func ReadOnly(r io.ReaderAt, size int64) backend.Storage {
	return readOnlyStorage{io.NewSectionReader(r, 0, size), size}
}

func (s readOnlyStorage) Stat() (iofs.FileInfo, error) { return sizeInfo(s.size), nil }
func (s readOnlyStorage) Close() error                 { return nil }
func (s readOnlyStorage) Path() string                 { return "" }
func (s readOnlyStorage) Sys() (*os.File, error) {
	return nil, errors.New("guestfs: no host file behind this storage")
}
func (s readOnlyStorage) Writable() (backend.WritableFile, error) {
	return nil, backend.ErrIncorrectOpenMode
}

type sizeInfo int64

func (s sizeInfo) Name() string        { return "partition" }
func (s sizeInfo) Size() int64         { return int64(s) }
func (s sizeInfo) Mode() iofs.FileMode { return 0o444 }
func (s sizeInfo) ModTime() time.Time  { return time.Time{} }
func (s sizeInfo) IsDir() bool         { return false }
func (s sizeInfo) Sys() any            { return nil }
