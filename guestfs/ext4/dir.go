package ext4

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// MaxReadFile is ReadFile's size cap.
	MaxReadFile = 16 << 20
	// maxDirSize bounds the bytes of one directory.
	maxDirSize = 64 << 20
	// maxWalkDepth bounds path depth (PATH_MAX/2 one-letter components).
	maxWalkDepth = 2048
	// maxSymlinks bounds symlink resolution, as Linux's 40.
	maxSymlinks = 40
)

// ErrNotFound is returned (wrapped) when a path does not exist.
var ErrNotFound = fs.ErrNotExist

// DirEntry is one directory entry.
type DirEntry struct {
	Name string
	Ino  uint32
	Mode fs.FileMode // type bits only, from the entry's file type (or the inode)
}

// direntTypeMode maps the dirent file_type byte to fs.FileMode type bits.
func direntTypeMode(t byte) (fs.FileMode, bool) {
	switch t {
	case 1:
		return 0, true
	case 2:
		return fs.ModeDir, true
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice, true
	case 4:
		return fs.ModeDevice, true
	case 5:
		return fs.ModeNamedPipe, true
	case 6:
		return fs.ModeSocket, true
	case 7:
		return fs.ModeSymlink, true
	}
	return 0, false
}

// dirReader reads directories under a shared budget of blocks, so that
// hostile directories sharing blocks cannot make a walk read more blocks
// than the filesystem has.
type dirReader struct {
	f      *FS
	budget uint64
	index  *indexBudget // the index blocks of the walk's inodes
}

func (f *FS) newDirReader() *dirReader {
	return &dirReader{f: f, budget: f.sb.BlocksCount, index: f.newIndexBudget()}
}

// entries parses every entry of directory inode in, "." and ".." included.
// Linear and htree directories both keep plain entries in their leaf
// blocks; htree index blocks look like one empty entry and are skipped.
func (d *dirReader) entries(in *Inode) ([]DirEntry, error) {
	f := d.f
	if !in.IsDir() {
		return nil, model.Errorf(f.name, -1, "ext4: inode %d is not a directory", in.Ino)
	}
	var out []DirEntry
	if in.Inline() {
		data := f.inlineData(in)
		if in.Size < uint64(len(data)) {
			data = data[:in.Size]
		}
		if len(data) < 4 {
			return nil, nil
		}
		// The first 4 bytes are the parent inode; entries follow.
		out = append(out, DirEntry{Name: "..", Ino: binary.LittleEndian.Uint32(data), Mode: fs.ModeDir})
		return f.parseDirents(data[4:], out), nil
	}
	if in.Size > maxDirSize {
		return nil, model.Errorf(f.name, -1, "ext4: directory inode %d is %d bytes", in.Ino, in.Size)
	}
	runs, err := f.blocks(in, d.index)
	if err != nil {
		return nil, err
	}
	bs := uint64(f.sb.BlockSize)
	maxBlocks := (in.Size + bs - 1) / bs
	buf := make([]byte, bs)
	for _, r := range runs {
		if r.Unwritten {
			continue
		}
		for i := uint64(0); i < r.Len && r.Logical+i < maxBlocks; i++ {
			if d.budget == 0 {
				return out, model.Errorf(f.name, -1, "ext4: directory blocks exceed the filesystem size")
			}
			d.budget--
			if err := f.readBlock(r.Physical+i, buf); err != nil {
				return out, err
			}
			out = f.parseDirents(buf, out)
		}
	}
	return out, nil
}

// parseDirents appends the entries of one directory block. A malformed
// record ends the block, as e2fsck would treat the rest as lost.
func (f *FS) parseDirents(b []byte, out []DirEntry) []DirEntry {
	le := binary.LittleEndian
	filetype := f.sb.FeatureIncompat&incompatFiletype != 0
	for off := 0; off+8 <= len(b); {
		ino := le.Uint32(b[off:])
		recLen := int(le.Uint16(b[off+4:]))
		if recLen < 8 || recLen%4 != 0 || recLen > len(b)-off {
			break
		}
		nameLen := int(b[off+6])
		if !filetype {
			nameLen |= int(b[off+7]) << 8
		}
		if ino != 0 && nameLen > 0 && 8+nameLen <= recLen {
			name := string(b[off+8 : off+8+nameLen])
			e := DirEntry{Name: name, Ino: ino}
			if filetype {
				e.Mode, _ = direntTypeMode(b[off+7])
			}
			if ino <= f.sb.InodesCount {
				out = append(out, e)
			}
		}
		off += recLen
	}
	return out
}

func validName(n string) bool {
	return n != "" && n != "." && n != ".." && !strings.ContainsAny(n, "/\x00")
}

// List lists directory p (absolute, symlinks followed), without "." and
// "..", with inode numbers.
func (f *FS) List(p string) ([]DirEntry, error) {
	ino, err := f.Lookup(p)
	if err != nil {
		return nil, err
	}
	in, err := f.Inode(ino)
	if err != nil {
		return nil, err
	}
	all, err := f.newDirReader().entries(in)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, e := range all {
		if validName(e.Name) {
			out = append(out, e)
		}
	}
	return out, nil
}

// Lookup resolves an absolute path to an inode number, following symlinks
// (within the guest filesystem) up to 40 times.
func (f *FS) Lookup(p string) (uint32, error) {
	return f.lookup(p, true)
}

// LookupNoFollow is Lookup without following a symlink in the last component.
func (f *FS) LookupNoFollow(p string) (uint32, error) {
	return f.lookup(p, false)
}

func (f *FS) lookup(p string, followLast bool) (uint32, error) {
	d := f.newDirReader()
	links := 0
	cur := uint32(rootIno)
	rest := strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/")
	if len(rest) == 1 && rest[0] == "" {
		return rootIno, nil
	}
	for steps := 0; len(rest) > 0; steps++ {
		if steps > maxWalkDepth*2 {
			return 0, fmt.Errorf("ext4: %s: path too deep", p)
		}
		name := rest[0]
		rest = rest[1:]
		if name == "" || name == "." {
			continue
		}
		dir, err := f.Inode(cur)
		if err != nil {
			return 0, err
		}
		ents, err := d.entries(dir)
		if err != nil {
			return 0, err
		}
		next := uint32(0)
		for _, e := range ents {
			if e.Name == name {
				next = e.Ino
				break
			}
		}
		if next == 0 {
			if name == ".." { // root's ".." (or an inline dir without one)
				continue
			}
			return 0, fmt.Errorf("ext4: %s: %w", p, ErrNotFound)
		}
		in, err := f.Inode(next)
		if err != nil {
			return 0, err
		}
		if in.Mode&0xF000 == 0xA000 && (len(rest) > 0 || followLast) {
			links++
			if links > maxSymlinks {
				return 0, fmt.Errorf("ext4: %s: too many symlinks", p)
			}
			target, err := f.readAll(in, 4096)
			if err != nil {
				return 0, err
			}
			t := string(target)
			if strings.HasPrefix(t, "/") {
				cur = rootIno
			}
			rest = append(strings.Split(strings.Trim(t, "/"), "/"), rest...)
			continue
		}
		if len(rest) > 0 && !in.IsDir() {
			return 0, fmt.Errorf("ext4: %s: %s is not a directory", p, name)
		}
		cur = next
	}
	return cur, nil
}

// ReadFile reads a regular file (symlinks followed) of at most MaxReadFile bytes.
func (f *FS) ReadFile(p string) ([]byte, error) {
	return f.ReadFileLimit(p, MaxReadFile)
}

// ReadFileLimit reads a regular file of at most limit bytes.
func (f *FS) ReadFileLimit(p string, limit int64) ([]byte, error) {
	in, err := f.regularInode(p)
	if err != nil {
		return nil, err
	}
	return f.readAll(in, limit)
}

// regularInode resolves p (symlinks followed) to a regular file's inode.
func (f *FS) regularInode(p string) (*Inode, error) {
	ino, err := f.Lookup(p)
	if err != nil {
		return nil, err
	}
	in, err := f.Inode(ino)
	if err != nil {
		return nil, err
	}
	if in.Mode&0xF000 != 0x8000 {
		return nil, fmt.Errorf("ext4: %s: not a regular file", p)
	}
	return in, nil
}

// ErrTooLarge is returned (wrapped) by ReadFile for files over the cap.
var ErrTooLarge = errors.New("file too large")

// readAll reads an inode's data: blocks, inline data or a fast symlink target.
func (f *FS) readAll(in *Inode, limit int64) ([]byte, error) {
	if limit < 0 || in.Size > uint64(limit) {
		return nil, fmt.Errorf("ext4: inode %d: %d bytes: %w", in.Ino, in.Size, ErrTooLarge)
	}
	if in.fastSymlink() {
		return append([]byte(nil), in.block[:in.Size]...), nil
	}
	if in.Inline() {
		data := f.inlineData(in)
		if uint64(len(data)) > in.Size {
			data = data[:in.Size]
		}
		out := make([]byte, in.Size) // inline data shorter than i_size reads as zeros
		copy(out, data)
		return out, nil
	}
	runs, err := f.Blocks(in)
	if err != nil {
		return nil, err
	}
	out := make([]byte, in.Size)
	bs := uint64(f.sb.BlockSize)
	for _, r := range runs {
		if r.Unwritten {
			continue
		}
		start := r.Logical * bs
		if start >= in.Size {
			continue
		}
		n := r.Len * bs
		if n > in.Size-start {
			n = in.Size - start
		}
		off := int64(r.Physical) * f.sb.BlockSize
		if got, err := f.r.ReadAt(out[start:start+n], off); uint64(got) != n {
			return nil, model.Wrapf(err, f.name, off, "ext4: read inode %d data", in.Ino)
		}
	}
	return out, nil
}

// WalkInodes visits every reachable entry below the root, depth first,
// directories before their contents, calling fn with the absolute path
// ("" past fsys.MaxPath bytes, and below such a directory), the
// inode number and the entry's type (from the directory entry, or the inode
// where the filesystem has no file types). A directory is entered once even
// if hostile entries link it from several places. fn's error stops the
// walk. Walk (the fsys.FS walk) is built on it.
func (f *FS) WalkInodes(ctx context.Context, fn func(path string, ino uint32, mode fs.FileMode) error) error {
	return f.walkInodes(ctx, f.newDirReader(), fn)
}

// walkInodes is WalkInodes reading directories with d.
func (f *FS) walkInodes(ctx context.Context, d *dirReader, fn func(path string, ino uint32, mode fs.FileMode) error) error {
	visited := map[uint32]bool{rootIno: true}
	if err := fn("/", rootIno, fs.ModeDir); err != nil {
		return err
	}
	type frame struct {
		path  string
		ino   uint32
		depth int
	}
	stack := []frame{{"/", rootIno, 0}}
	filetype := f.sb.FeatureIncompat&incompatFiletype != 0
	var skipped []error // unreadable subdirectories: the walk goes on
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		in, err := f.Inode(fr.ino)
		var ents []DirEntry
		if err == nil {
			ents, err = d.entries(in)
		}
		if err != nil {
			err = fmt.Errorf("ext4: directory %q: %w", fr.path, err)
			if fr.ino == rootIno {
				return err
			}
			if len(skipped) < maxWalkErrors {
				skipped = append(skipped, err)
			}
			if len(ents) == 0 {
				continue
			}
		}
		var subdirs []frame
		for _, e := range ents {
			if !validName(e.Name) {
				continue
			}
			mode := e.Mode
			if !filetype {
				ein, err := f.Inode(e.Ino)
				if err != nil {
					continue
				}
				mode = ein.FileMode().Type()
			}
			p := fsys.Join(fr.path, e.Name) // "" past fsys.MaxPath
			if err := fn(p, e.Ino, mode); err != nil {
				return err
			}
			if mode.IsDir() && !visited[e.Ino] && fr.depth < maxWalkDepth {
				visited[e.Ino] = true
				subdirs = append(subdirs, frame{p, e.Ino, fr.depth + 1})
			}
		}
		// Push in reverse so the walk visits subdirectories in entry order.
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	if len(skipped) > 0 {
		return &WalkError{Errs: skipped}
	}
	return nil
}

// maxWalkErrors bounds the errors a walk remembers.
const maxWalkErrors = 8

// WalkError reports directories a walk could not read (or read only in
// part); everything else was visited.
type WalkError struct{ Errs []error }

func (e *WalkError) Error() string {
	return fmt.Sprintf("ext4: walk skipped %d unreadable directories: %v", len(e.Errs), errors.Join(e.Errs...))
}

func (e *WalkError) Unwrap() []error { return e.Errs }
