package ext4

import (
	"encoding/binary"
	"fmt"
	"io"
	"sort"

	"github.com/imgaudit/imgaudit/formats/model"
)

// File reads one regular file's data as a stream, whatever its size:
// ReadFile's cap (MaxReadFile) is for files kept in memory, a File holds
// only its block map. Holes and unwritten (preallocated) extents read as
// zeros, as the guest would read them.
type File struct {
	f      *FS
	in     *Inode
	runs   []Run  // sorted by Logical
	inline []byte // inline data, or nil
	off    uint64
}

// Open opens the regular file p (symlinks followed) for streaming.
func (f *FS) Open(p string) (*File, error) {
	in, err := f.regularInode(p)
	if err != nil {
		return nil, err
	}
	file := &File{f: f, in: in}
	if in.Inline() {
		file.inline = f.inlineData(in)
		return file, nil
	}
	if file.runs, err = f.Blocks(in); err != nil {
		return nil, err
	}
	sort.Slice(file.runs, func(i, j int) bool { return file.runs[i].Logical < file.runs[j].Logical })
	return file, nil
}

// Size is the file's size in bytes (i_size).
func (fl *File) Size() int64 { return int64(fl.in.Size) }

// Mtime is the low 32 bits of the file's modification time in seconds
// since 1970 (i_mtime), as Python's .pyc headers record it.
func (fl *File) Mtime() uint32 { return binary.LittleEndian.Uint32(fl.in.raw[0x10:]) }

// Read reads the next bytes of the file; it returns io.EOF at i_size.
func (fl *File) Read(b []byte) (int, error) {
	size := fl.in.Size
	if fl.off >= size {
		return 0, io.EOF
	}
	if uint64(len(b)) > size-fl.off {
		b = b[:size-fl.off]
	}
	if fl.inline != nil {
		n := 0
		if fl.off < uint64(len(fl.inline)) {
			n = copy(b, fl.inline[fl.off:])
		}
		clear(b[n:]) // inline data shorter than i_size reads as zeros
		fl.off += uint64(len(b))
		return len(b), nil
	}
	bs := uint64(fl.f.sb.BlockSize)
	blk := fl.off / bs
	// The run holding blk, or the first run after it (a hole until then).
	i := sort.Search(len(fl.runs), func(i int) bool { return fl.runs[i].Logical+fl.runs[i].Len > blk })
	if i == len(fl.runs) || fl.runs[i].Logical > blk {
		end := size
		if i < len(fl.runs) {
			end = min(end, fl.runs[i].Logical*bs)
		}
		n := min(uint64(len(b)), end-fl.off)
		clear(b[:n])
		fl.off += n
		return int(n), nil
	}
	r := fl.runs[i]
	end := min(size, (r.Logical+r.Len)*bs)
	n := min(uint64(len(b)), end-fl.off)
	if r.Unwritten {
		clear(b[:n])
		fl.off += n
		return int(n), nil
	}
	phys := int64(r.Physical*bs + (fl.off - r.Logical*bs))
	if phys < 0 || r.Physical+r.Len > fl.f.sb.BlocksCount {
		return 0, model.Errorf(fl.f.name, phys, "ext4: inode %d: block run %d+%d past the end (%d blocks)", fl.in.Ino, r.Physical, r.Len, fl.f.sb.BlocksCount)
	}
	got, err := fl.f.r.ReadAt(b[:n], phys)
	if uint64(got) != n {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return got, model.Wrapf(err, fl.f.name, phys, "ext4: read inode %d data", fl.in.Ino)
	}
	fl.off += n
	return int(n), nil
}

// Readlink returns the target of symlink p (the last component is not
// followed; the directories above it are).
func (f *FS) Readlink(p string) (string, error) {
	ino, err := f.LookupNoFollow(p)
	if err != nil {
		return "", err
	}
	in, err := f.Inode(ino)
	if err != nil {
		return "", err
	}
	if in.Mode&0xF000 != 0xA000 {
		return "", fmt.Errorf("ext4: %s: not a symlink", p)
	}
	b, err := f.readAll(in, 4096)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadInodeFile reads regular file inode ino (found in a directory
// listing) of at most limit bytes, without resolving its path again.
func (f *FS) ReadInodeFile(ino uint32, limit int64) ([]byte, error) {
	in, err := f.Inode(ino)
	if err != nil {
		return nil, err
	}
	if in.Mode&0xF000 != 0x8000 {
		return nil, fmt.Errorf("ext4: inode %d: not a regular file", ino)
	}
	return f.readAll(in, limit)
}
