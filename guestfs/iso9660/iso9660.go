package guestfs

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"

	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

const (
	isoBlock = 2048
	// maxTreeEntries bounds the entries a tree walk visits.
	maxTreeEntries = 4 << 20
)

// buildISOIndex walks an ISO 9660 filesystem (isoTree: Rock Ridge, Joliet or
// plain names) and indexes the extents of each file and directory. Space no
// file covers (descriptors, path tables) is reported as allocated: an ISO
// has no free space.
func buildISOIndex(ctx context.Context, r io.ReaderAt, size int64, name string) (*fileIndex, []string, error) {
	t, err := openISOTree(r, size)
	if err != nil {
		return nil, nil, err
	}
	b := newIndexBuilder("iso9660")
	notes, err := t.walk(ctx, func(p string, rec isoDirRecord, extents []isoDirRecord) error {
		var total int64
		for _, e := range extents {
			total += int64(e.size)
		}
		id, ok := b.addNode(p, total, rec.dir)
		if !ok {
			return nil
		}
		var fileOff int64
		for _, e := range extents {
			off := int64(e.lba) * isoBlock
			if n := int64(e.size); n > 0 && off < size {
				n = min(n, size-off)
				b.addRun(run{off: off, n: (n + isoBlock - 1) / isoBlock * isoBlock, fileOff: fileOff, node: id})
			}
			fileOff += int64(e.size)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	if b.truncated {
		notes = append(notes, "index truncated: some paths are not attributed")
	}
	return b.finish(), notes, nil
}

// buildSquashfsIndex checks that go-diskfs can read the squashfs tree but
// attributes no paths: go-diskfs does not expose where a file's
// (compressed) data blocks and fragments lie, and parsing squashfs inodes
// needs every compressor it supports. Findings there are reported as
// allocated without a path, and the partition notes it.
func buildSquashfsIndex(ctx context.Context, r io.ReaderAt, size int64, name string) (x *fileIndex, notes []string, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			x, notes, err = nil, nil, fmt.Errorf("squashfs: go-diskfs panicked: %v", rec)
		}
	}()
	fsys, err := squashfs.Read(newReadOnlyStorage(r, size), size, 0, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("squashfs: %w", err)
	}
	if _, err := iofs.ReadDir(fsys, "."); err != nil {
		return nil, nil, fmt.Errorf("squashfs: root directory: %w", err)
	}
	x = newIndexBuilder("squashfs").finish()
	x.noPaths = true
	return x, []string{"squashfs: file paths not attributed (data block locations are not exposed by go-diskfs); findings there are reported as allocated without a path"}, nil
}
