// Package squashfs recognises squashfs filesystems for package guestfs,
// without attributing paths: go-diskfs reads the tree but does not expose
// where a file's (compressed) data blocks and fragments lie, and parsing
// squashfs inodes ourselves needs every compressor it supports. Findings
// there are allocated, without a path.
package squashfs

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/diskfs/go-diskfs/filesystem/squashfs"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/diskfsio"
)

// Probe reports the squashfs magic.
func Probe(head []byte) bool { return len(head) >= 4 && string(head[:4]) == "hsqs" }

// Driver is the fsys driver of squashfs: Open checks that go-diskfs can read
// the root directory; the FS it returns walks nothing and reports every byte
// allocated.
func Driver() fsys.Driver {
	return fsys.Driver{Name: "squashfs", Probe: Probe, Open: open}
}

func open(_ context.Context, r io.ReaderAt, size int64, _ string) (f fsys.FS, notes []string, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			f, notes, err = nil, nil, fmt.Errorf("squashfs: go-diskfs panicked: %v", rec)
		}
	}()
	sq, err := squashfs.Read(diskfsio.ReadOnly(r, size), size, 0, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("squashfs: %w", err)
	}
	if _, err := iofs.ReadDir(sq, "."); err != nil {
		return nil, nil, fmt.Errorf("squashfs: root directory: %w", err)
	}
	return noPaths{}, []string{"squashfs: file paths not attributed (data block locations are not exposed by go-diskfs); findings there are reported as allocated without a path"}, nil
}

// noPaths is a filesystem whose files cannot be located.
type noPaths struct{}

func (noPaths) Kind() string                                       { return "squashfs" }
func (noPaths) Walk(context.Context, func(fsys.Entry) error) error { return nil }
func (noPaths) State(int64) string                                 { return fsys.StateAllocated }
