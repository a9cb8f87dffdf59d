// Package squashfs recognises squashfs filesystems for package guestfs,
// without attributing paths: a file's data lies in compressed blocks and
// fragments shared between files, which the index of byte runs cannot
// express. Findings there are allocated, without a path; the scanner's
// decode pass walks the filesystem's files (package decode).
package squashfs

import (
	"context"
	"io"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// Probe reports the squashfs magic.
func Probe(head []byte) bool { return len(head) >= 4 && string(head[:4]) == "hsqs" }

// Driver is the fsys driver of squashfs: Open checks, with package
// decode's bounded reader, that the root directory can be read; the FS it
// returns walks nothing and reports every byte allocated.
//
// go-diskfs's reader, used before, decoded metadata blocks without a bound
// and read the id, xattr and fragment tables whole at open (a 33 KB
// partition whose id table block was a zstd frame of 900 MiB of zeros took
// 4.5 GiB).
func Driver() fsys.Driver {
	return fsys.Driver{Name: "squashfs", Probe: Probe, Open: open}
}

func open(ctx context.Context, r io.ReaderAt, size int64, _ string) (fsys.FS, []string, error) {
	if err := decode.CheckSquashfs(ctx, r, size); err != nil {
		return nil, nil, err
	}
	return noPaths{}, []string{"squashfs: file paths not attributed (data lies in compressed blocks and fragments); findings there are reported as allocated without a path"}, nil
}

// noPaths is a filesystem whose files cannot be located.
type noPaths struct{}

func (noPaths) Kind() string                                       { return "squashfs" }
func (noPaths) Walk(context.Context, func(fsys.Entry) error) error { return nil }
func (noPaths) State(int64) string                                 { return fsys.StateAllocated }
