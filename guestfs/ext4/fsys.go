package ext4

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This file makes *FS an fsys.FS and fsys.Reader: package guestfs indexes
// and reads ext2/3/4 only through that interface.

// iBlockOff is the offset of i_block (where inline data starts) in an inode.
const iBlockOff = 0x28

// maxWalkFileErrors bounds the per-file errors one walk reports.
const maxWalkFileErrors = 3

// Driver is the fsys driver of ext2/3/4.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "ext4",
		Probe: Probe,
		Open: func(_ context.Context, r io.ReaderAt, size int64, name string) (fsys.FS, []string, error) {
			f, err := OpenNamed(r, size, name)
			if err != nil {
				return nil, nil, err
			}
			return f, nil, nil
		},
	}
}

// Walk visits every directory, regular file and symlink with the runs of
// its blocks (inline data: the bytes inside the inode), a file with several
// hard links once with its runs, under its first path, and under each
// other path as a Link entry. Unreadable directories and inodes
// are skipped and reported in a *fsys.PartialError.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	seen := map[uint32]bool{}
	var buf []fsys.Run // reused: fn does not keep e.Runs
	var notes []string
	skipped := 0
	fileErr := func(err error) {
		if skipped++; skipped <= maxWalkFileErrors {
			notes = append(notes, err.Error())
		}
	}
	// One budget of index blocks for the directories and the files.
	d := f.newDirReader()
	err := f.walkInodes(ctx, d, func(p string, ino uint32, mode fs.FileMode) error {
		if !mode.IsDir() && !mode.IsRegular() && mode&fs.ModeSymlink == 0 {
			return nil
		}
		if seen[ino] {
			if mode.IsRegular() {
				// Another name of a file given already: the index ties
				// it to that entry by ID.
				return fn(fsys.LinkEntry(p, uint64(ino)))
			}
			return nil
		}
		seen[ino] = true
		in, err := f.Inode(ino)
		if err != nil {
			fileErr(err)
			return nil
		}
		e := fsys.Entry{Path: p, Mode: mode.Type() | in.FileMode().Perm(), Size: int64(in.Size)}
		if mode.IsRegular() {
			e.ID = [2]uint64{0, uint64(ino)}
		}
		switch {
		case in.Inline():
			if n := min(int64(in.Size), int64(len(in.block))); n > 0 {
				e.Runs = []fsys.Run{{Off: in.off + iBlockOff, Len: n, Inline: true}}
			}
		default:
			runs, err := f.blocks(in, d.index)
			if err != nil {
				fileErr(fmt.Errorf("%s: %w", p, err))
			}
			buf = f.byteRuns(runs, buf[:0])
			e.Runs = buf
		}
		return fn(e)
	})
	if we, ok := err.(*WalkError); ok {
		for _, e := range we.Errs {
			notes = append(notes, e.Error())
		}
		err = nil
	}
	if err != nil {
		return err
	}
	if skipped > maxWalkFileErrors {
		notes = append(notes, fmt.Sprintf("and %d more unreadable files", skipped-maxWalkFileErrors))
	}
	if d.index.left == 0 {
		// First, so that a shortened note still says it.
		notes = append([]string{fmt.Sprintf("ext4: index blocks shared between inodes: the walk read its budget of %d (twice the filesystem's blocks), and the files and directories after were not mapped", d.index.total)}, notes...)
	}
	if len(notes) > 0 {
		return &fsys.PartialError{Notes: notes}
	}
	return nil
}

// State says whether a byte that no walked run covers is allocated (in the
// block bitmap) or free.
func (f *FS) State(off int64) string {
	if off < 0 {
		return fsys.StateUnknown
	}
	blk := uint64(off / f.sb.BlockSize)
	if blk >= f.sb.BlocksCount {
		return fsys.StateFree // inside the partition, past the filesystem
	}
	ok, err := f.BlockAllocated(blk)
	switch {
	case err != nil:
		return fsys.StateUnknown
	case ok:
		return fsys.StateAllocated
	}
	return fsys.StateFree
}

// Open opens a regular file by path, following symlinks inside the
// filesystem. Its bytes are read on demand.
func (f *FS) Open(p string) (fsys.File, error) {
	in, err := f.regularInode(p)
	if err != nil {
		return nil, err
	}
	if in.Inline() {
		// Inline data shorter than i_size reads as zeros. They are never
		// allocated: a hostile inode claims any size (reading it whole at
		// i_size ran a fuzz input out of memory).
		if in.Size > maxFileSize {
			return nil, fmt.Errorf("ext4: inode %d: inline data of %d bytes", in.Ino, in.Size)
		}
		data := f.inlineData(in)
		if uint64(len(data)) > in.Size {
			data = data[:in.Size]
		}
		return inlineFile{data: data, size: int64(in.Size)}, nil
	}
	runs, err := f.Blocks(in)
	if err != nil {
		return nil, err
	}
	return fsys.NewRunFile(f.r, int64(in.Size), f.byteRuns(runs, nil)), nil
}

// byteRuns appends runs, converted from blocks to bytes, to buf.
func (f *FS) byteRuns(runs []Run, buf []fsys.Run) []fsys.Run {
	bs := f.sb.BlockSize
	for _, r := range runs {
		buf = append(buf, fsys.Run{Off: int64(r.Physical) * bs, Len: int64(r.Len) * bs, FileOff: int64(r.Logical) * bs, Unwritten: r.Unwritten})
	}
	return buf
}

// ReadDir lists directory p (symlinks followed), without "." and "..".
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	ents, err := f.List(p)
	if err != nil {
		return nil, err
	}
	out := make([]fs.DirEntry, 0, len(ents))
	for _, e := range ents {
		mode := e.Mode
		if mode == 0 && f.sb.FeatureIncompat&incompatFiletype == 0 {
			if in, err := f.Inode(e.Ino); err == nil {
				mode = in.FileMode().Type()
			}
		}
		ino := e.Ino
		out = append(out, fsys.DirEntry{EntryName: e.Name, EntryType: mode, Stat: func() (fs.FileInfo, error) {
			in, err := f.Inode(ino)
			if err != nil {
				return nil, err
			}
			return fsys.FileInfo{FileName: e.Name, FileSize: int64(in.Size), FileMode: in.FileMode()}, nil
		}})
	}
	return out, nil
}

var (
	_ fsys.FS     = (*FS)(nil)
	_ fsys.Reader = (*FS)(nil)
)

// maxFileSize bounds the i_size a file opened for reading may claim (4
// EiB, far past ext4's 16 TiB), so that it fits an int64.
const maxFileSize = 1 << 62

// inlineFile is an inline-data file: its bytes in the inode, then zeros
// up to its size.
type inlineFile struct {
	data []byte
	size int64
}

func (f inlineFile) Size() int64 { return f.size }

func (f inlineFile) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ext4: negative offset %d", off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(b)), f.size-off))
	clear(b[:n])
	if off < int64(len(f.data)) {
		copy(b[:n], f.data[off:])
	}
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
