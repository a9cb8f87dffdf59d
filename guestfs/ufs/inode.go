package ufs

import (
	"fmt"
	"io/fs"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	rootIno = 2 // UFS_ROOTINO

	numDirect   = 12 // UFS_NDADDR
	numIndirect = 3  // UFS_NIADDR

	// Offsets in struct ufs2_dinode (sys/ufs/ufs/dinode.h).
	diOffMode   = 0
	diOffSize   = 16
	diOffFlags  = 88
	diOffDirect = 112
	diOffIndir  = 208

	// sfSnapshot is SF_SNAPSHOT in di_flags (sys/stat.h).
	sfSnapshot = 0x00200000

	// maxFileSize bounds di_size: 2^62 bytes is past any UFS2 file
	// (fs_maxfilesize is under 2^60 with 64 KiB blocks) and keeps block
	// arithmetic from overflowing.
	maxFileSize = 1 << 62
)

// inode is the part of a UFS2 dinode the reader uses.
type inode struct {
	ino    uint32
	off    int64 // byte offset of the on-disk inode
	mode   uint16
	size   int64
	flags  uint32
	direct [numDirect]int64   // fragment addresses of the first blocks
	indir  [numIndirect]int64 // single, double and triple indirect blocks
	inline []byte             // di_db and di_ib as bytes: a short symlink's target
}

func (in *inode) isDir() bool     { return in.mode&0xF000 == 0x4000 }
func (in *inode) isReg() bool     { return in.mode&0xF000 == 0x8000 }
func (in *inode) isSymlink() bool { return in.mode&0xF000 == 0xA000 }

// fileMode converts di_mode to an fs.FileMode.
func (in *inode) fileMode() fs.FileMode { return fsys.UnixMode(in.mode) }

// isSnapshot reports a snapshot file: its blocks are the filesystem's
// own, copied on write, with special addresses (BLK_NOCOPY, BLK_SNAP);
// its data is not read.
func (f *FS) isSnapshot(in *inode) bool {
	return in.flags&sfSnapshot != 0 || slices.Contains(f.sb.snapshots, in.ino)
}

// inodeOff is the byte offset of inode ino, if the number lies inside the
// filesystem: its group's inode blocks hold fs_ipg inodes in a row.
func (f *FS) inodeOff(ino uint32) (int64, bool) {
	if ino == 0 || int64(ino) >= f.sb.inodes() {
		return 0, false
	}
	g, idx := int64(ino)/f.sb.ipg, int64(ino)%f.sb.ipg
	return (f.sb.cgStart(g)+f.sb.iblkno)*f.sb.fsize + idx*inodeSize, true
}

// inodeAllocated reports whether ino is in use in its group's inode map
// (and was ever initialised): a directory entry naming a free inode is
// stale.
func (f *FS) inodeAllocated(ino uint32) (bool, error) {
	if _, ok := f.inodeOff(ino); !ok {
		return false, nil
	}
	g, idx := int64(ino)/f.sb.ipg, int64(ino)%f.sb.ipg
	if idx >= int64(f.cgs[g].initedInos) {
		return false, nil
	}
	return f.mapBit(g, f.cgs[g].iusedOff, idx)
}

// inode reads inode ino.
func (f *FS) inode(ino uint32) (*inode, error) {
	off, ok := f.inodeOff(ino)
	if !ok {
		return nil, model.Errorf(f.name, -1, "ufs2: inode %d outside the filesystem", ino)
	}
	raw := make([]byte, inodeSize)
	if err := f.read(raw, off); err != nil {
		return nil, fmt.Errorf("ufs2: inode %d: %w", ino, err)
	}
	in := &inode{
		ino:    ino,
		off:    off,
		mode:   le.Uint16(raw[diOffMode:]),
		size:   int64(le.Uint64(raw[diOffSize:])),
		flags:  le.Uint32(raw[diOffFlags:]),
		inline: raw[diOffDirect : diOffIndir+8*numIndirect],
	}
	if in.size < 0 || in.size > maxFileSize {
		return nil, model.Errorf(f.name, off, "ufs2: inode %d: size %d", ino, in.size)
	}
	for i := range in.direct {
		in.direct[i] = int64(le.Uint64(raw[diOffDirect+8*i:]))
	}
	for i := range in.indir {
		in.indir[i] = int64(le.Uint64(raw[diOffIndir+8*i:]))
	}
	return in, nil
}

// inlineSymlink reports a symlink whose target is kept in the inode.
func (f *FS) inlineSymlink(in *inode) bool {
	return in.isSymlink() && in.size < f.sb.symlinkMax
}
