package guestfs

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"path"

	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

const (
	isoBlock = 2048
	// maxTreeEntries bounds walks through go-diskfs readers.
	maxTreeEntries = 4 << 20
)

// buildISOIndex walks an ISO9660 filesystem with go-diskfs (Rock Ridge names
// when present) and indexes each file's extent from StatT.Location. Files
// recorded in several extents (over 4 GiB) are attributed by their first
// extent only. Space no file covers (descriptors, path tables, directories)
// is reported as allocated: an ISO has no free space.
func buildISOIndex(ctx context.Context, r io.ReaderAt, size int64, name string) (x *fileIndex, notes []string, err error) {
	defer func() {
		if rec := recover(); rec != nil {
			x, notes, err = nil, nil, fmt.Errorf("iso9660: go-diskfs panicked: %v", rec)
		}
	}()
	fsys, err := iso9660.Read(newReadOnlyStorage(r, size), size, 0, isoBlock)
	if err != nil {
		return nil, nil, fmt.Errorf("iso9660: %w", err)
	}
	b := newIndexBuilder("iso9660")
	type frame struct {
		rel   string
		depth int
	}
	visited := map[uint32]bool{}
	stack := []frame{{".", 0}}
	entries := 0
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := fsys.ReadDir(fr.rel)
		if err != nil {
			if fr.rel == "." {
				return nil, nil, fmt.Errorf("iso9660: root directory: %w", err)
			}
			notes = append(notes, fmt.Sprintf("directory %q unreadable", "/"+fr.rel))
			continue
		}
		for _, d := range ents {
			if entries++; entries > maxTreeEntries {
				notes = append(notes, "too many entries; walk stopped")
				stack = nil
				break
			}
			if !validName(d.Name()) {
				continue
			}
			info, err := d.Info()
			if err != nil {
				continue
			}
			st, ok := info.Sys().(*iso9660.StatT)
			if !ok || st == nil {
				continue
			}
			rel := path.Join(fr.rel, d.Name())
			isDir := d.IsDir()
			id, ok := b.addNode("/"+rel, info.Size(), isDir)
			if !ok {
				continue
			}
			off := int64(st.Location) * isoBlock
			if n := info.Size(); n > 0 && off < size {
				n = min(n, size-off)
				b.addRun(run{off: off, n: (n + isoBlock - 1) / isoBlock * isoBlock, node: id})
			}
			if isDir && !visited[st.Location] && fr.depth < 256 {
				visited[st.Location] = true
				stack = append(stack, frame{rel, fr.depth + 1})
			}
		}
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
