package guestfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/diskfs/go-diskfs/backend"
	diskext4 "github.com/diskfs/go-diskfs/filesystem/ext4"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
)

// walkFunc is the shape of both directory walkers.
type walkFunc func(ctx context.Context, fn func(p string, ino uint32, mode iofs.FileMode) error) error

// extWalker picks the walker for an ext filesystem. As the issue asks, the
// file tree comes from go-diskfs and is joined to our block maps by inode
// number. go-diskfs only reads what it supports, so our own walk (package
// ext4) is used instead when:
//   - the filesystem has no extents (ext2/ext3: go-diskfs cannot read
//     block-mapped directories);
//   - meta_bg is set (go-diskfs reads the descriptor table as one array
//     after the superblock, which meta_bg filesystems do not have);
//   - inline_data, encryption or casefold are set (go-diskfs cannot read
//     those directories);
//   - go-diskfs fails or panics on this filesystem (it is not hardened for
//     hostile input; we recover and fall back).
//
// go-diskfs only ever gets a read-only backend over the partition: its
// Writable() fails, so it cannot write even by mistake.
func extWalker(e *ext4.FS, sec io.ReaderAt, size int64) (walkFunc, string) {
	switch {
	case !e.HasExtents():
		return e.WalkContext, "no extents"
	case e.UsesMetaBG():
		return e.WalkContext, "meta_bg"
	case e.HasInlineData():
		return e.WalkContext, "inline_data"
	case e.Encrypted():
		return e.WalkContext, "encrypt/casefold"
	}
	return func(ctx context.Context, fn func(string, uint32, iofs.FileMode) error) error {
		return diskfsExtWalk(ctx, e, sec, size, fn)
	}, ""
}

// buildExtIndex indexes an ext2/3/4 filesystem.
func buildExtIndex(ctx context.Context, sec io.ReaderAt, size int64, name string) (*fileIndex, []string, error) {
	e, err := ext4.OpenNamed(sec, size, name)
	if err != nil {
		return nil, nil, err
	}
	var notes []string
	walk, why := extWalker(e, sec, size)
	b, werr := indexExt(ctx, e, walk)
	if why == "" && werr != nil && ctx.Err() == nil {
		// go-diskfs could not walk it: our own walk reads the same tree.
		notes = append(notes, fmt.Sprintf("go-diskfs could not walk the tree (%v), used the built-in walker", shortErr(werr)))
		b, werr = indexExt(ctx, e, e.WalkContext)
	}
	if werr != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var we *ext4.WalkError
		if !errors.As(werr, &we) {
			return nil, nil, werr
		}
		notes = append(notes, shortErr(werr))
	}
	if b.truncated {
		notes = append(notes, "index truncated: some paths are not attributed")
	}
	x := b.finish()
	x.ext = e
	bs := e.BlockSize()
	blocks := e.BlocksCount()
	x.state = func(off int64) string {
		blk := uint64(off / bs)
		if blk >= blocks {
			return StateFree // inside the partition, past the filesystem
		}
		ok, err := e.BlockAllocated(blk)
		switch {
		case err != nil:
			return StateUnknown
		case ok:
			return StateAllocated
		}
		return StateFree
	}
	return x, notes, nil
}

// maxFileErrNotes bounds per-file error notes.
const maxFileErrNotes = 3

func indexExt(ctx context.Context, e *ext4.FS, walk walkFunc) (*indexBuilder, error) {
	b := newIndexBuilder(e.Kind())
	seen := map[uint32]bool{} // hard links: blocks belong to the first path
	bs := e.BlockSize()
	var fileErrs []error
	err := walk(ctx, func(p string, ino uint32, mode iofs.FileMode) error {
		if !mode.IsDir() && !mode.IsRegular() && mode&iofs.ModeSymlink == 0 {
			return nil
		}
		if seen[ino] {
			return nil
		}
		seen[ino] = true
		in, err := e.Inode(ino)
		if err != nil {
			fileErrs = append(fileErrs, err)
			return nil
		}
		id, ok := b.addNode(p, int64(in.Size), mode.IsDir())
		if !ok {
			return nil
		}
		runs, err := e.Blocks(in)
		if err != nil {
			fileErrs = append(fileErrs, fmt.Errorf("%s: %w", p, err))
			return nil
		}
		for _, r := range runs {
			b.addRun(run{off: int64(r.Physical) * bs, n: int64(r.Len) * bs, fileOff: int64(r.Logical) * bs, node: id, unwritten: r.Unwritten})
		}
		return nil
	})
	if len(fileErrs) > 0 {
		if len(fileErrs) > maxFileErrNotes {
			fileErrs = append(fileErrs[:maxFileErrNotes], fmt.Errorf("and %d more", len(fileErrs)-maxFileErrNotes))
		}
		err = errors.Join(err, &ext4.WalkError{Errs: fileErrs})
	}
	return b, err
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

// maxDiskfsDirSize keeps go-diskfs, which reads a directory whole into
// memory, away from absurd directories.
const maxDiskfsDirSize = 64 << 20

// diskfsExtWalk walks the tree with go-diskfs's ext4 reader and reports
// each entry with its inode number (StatT.Ino), which joins it to our block
// maps. It refuses directory cycles itself: go-diskfs does not.
func diskfsExtWalk(ctx context.Context, e *ext4.FS, sec io.ReaderAt, size int64, fn func(string, uint32, iofs.FileMode) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-diskfs ext4 panicked: %v", r)
		}
	}()
	fsys, err := diskext4.Read(newReadOnlyStorage(sec, size), size, 0, 512)
	if err != nil {
		return fmt.Errorf("go-diskfs ext4: %w", err)
	}
	if err := fn("/", 2, iofs.ModeDir); err != nil {
		return err
	}
	type frame struct {
		rel   string // go-diskfs wants paths relative to the root: "." or "etc/ssh"
		depth int
	}
	visited := map[uint32]bool{2: true}
	stack := []frame{{".", 0}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := fsys.ReadDir(fr.rel)
		if err != nil {
			return fmt.Errorf("go-diskfs ext4: read directory %q: %w", fr.rel, err)
		}
		var subdirs []frame
		for _, d := range ents {
			name := d.Name()
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
				continue
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			st, ok := info.Sys().(*diskext4.StatT)
			if !ok || st == nil || st.Ino == 0 {
				return fmt.Errorf("go-diskfs ext4: no inode number for %q", name)
			}
			rel := path.Join(fr.rel, name)
			mode := d.Type()
			if err := fn("/"+rel, st.Ino, mode); err != nil {
				return err
			}
			if mode.IsDir() && !visited[st.Ino] && fr.depth < 2048 {
				visited[st.Ino] = true
				in, err := e.Inode(st.Ino)
				if err != nil || in.Size > maxDiskfsDirSize {
					return fmt.Errorf("go-diskfs ext4: directory %q not read", rel)
				}
				subdirs = append(subdirs, frame{rel, fr.depth + 1})
			}
		}
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// readOnlyStorage adapts an io.ReaderAt to go-diskfs's backend.Storage.
// Writable always fails, and there is no *os.File behind it.
type readOnlyStorage struct {
	*io.SectionReader
	size int64
}

func newReadOnlyStorage(r io.ReaderAt, size int64) backend.Storage {
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
