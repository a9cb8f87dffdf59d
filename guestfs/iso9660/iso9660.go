// Package iso9660 reads ISO 9660 filesystems (with Rock Ridge or Joliet
// names) for package guestfs: the paths of files and directories with the
// extents that hold them. An ISO has no free space: every byte no file
// covers (descriptors, path tables) is allocated.
package iso9660

import (
	"context"
	"io"
	"io/fs"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// Block is the ISO 9660 logical block size.
	Block = 2048
	// maxTreeEntries bounds the entries a tree walk visits.
	maxTreeEntries = 4 << 20
)

// Probe reports the "CD001" magic of the first volume descriptor.
func Probe(head []byte) bool {
	return len(head) >= 0x8006 && string(head[0x8001:0x8006]) == "CD001"
}

// Driver is the fsys driver of ISO 9660.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "iso9660",
		Probe: Probe,
		Open: func(_ context.Context, r io.ReaderAt, size int64, _ string) (fsys.FS, []string, error) {
			t, err := Open(r, size)
			if err != nil {
				return nil, nil, err
			}
			return t, nil, nil
		},
	}
}

// Kind is "iso9660".
func (t *FS) Kind() string { return "iso9660" }

// State: an ISO has no free space.
func (t *FS) State(int64) string { return fsys.StateAllocated }

// Walk visits every file and directory with the extents that hold it.
func (t *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	if err := fn(fsys.Entry{Path: "/", Mode: fs.ModeDir | 0o555, Size: int64(t.root.size), Runs: t.runs([]dirRecord{t.root})}); err != nil {
		return err
	}
	notes, err := t.walk(ctx, func(p string, rec dirRecord, extents []dirRecord) error {
		var total int64
		for _, e := range extents {
			total += int64(e.size)
		}
		mode := fs.FileMode(0o444)
		if rec.dir {
			mode = fs.ModeDir | 0o555
		}
		return fn(fsys.Entry{Path: p, Mode: mode, Size: total, Runs: t.runs(extents)})
	})
	if err != nil {
		return err
	}
	if len(notes) > 0 {
		return &fsys.PartialError{Notes: notes}
	}
	return nil
}

// runs maps a file's extents (whole blocks each) to runs.
func (t *FS) runs(extents []dirRecord) []fsys.Run {
	var out []fsys.Run
	var fileOff int64
	for _, e := range extents {
		off := int64(e.lba) * Block
		if n := int64(e.size); n > 0 && off < t.size {
			n = min(n, t.size-off)
			out = append(out, fsys.Run{Off: off, Len: (n + Block - 1) / Block * Block, FileOff: fileOff})
		}
		fileOff += int64(e.size)
	}
	return out
}
