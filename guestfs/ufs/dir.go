package ufs

import (
	"fmt"
	"io/fs"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// dirBlockSize is DIRBLKSIZ: no entry crosses a 512-byte boundary.
	dirBlockSize = 512
	// direntHeader is struct direct before its name: d_ino, d_reclen,
	// d_type, d_namlen.
	direntHeader = 8

	// maxDirBytes bounds the bytes read for one directory.
	maxDirBytes = 256 << 20
	// maxDirEntries bounds the entries kept for one directory.
	maxDirEntries = 4 << 20
	// dirReadChunk is how much of a directory one read takes.
	dirReadChunk = 64 << 10

	// Directory entry types (DT_*, sys/dirent.h).
	dtFifo     = 1
	dtChr      = 2
	dtDir      = 4
	dtBlk      = 6
	dtReg      = 8
	dtLnk      = 10
	dtSock     = 12
	dtWhiteout = 14
)

// dirent is one directory entry.
type dirent struct {
	name  string
	ino   uint32
	dtype uint8
}

// dtypeMode maps a directory entry's type to fs.FileMode type bits.
func dtypeMode(t uint8) fs.FileMode {
	switch t {
	case dtDir:
		return fs.ModeDir
	case dtLnk:
		return fs.ModeSymlink
	case dtChr:
		return fs.ModeDevice | fs.ModeCharDevice
	case dtBlk:
		return fs.ModeDevice
	case dtFifo:
		return fs.ModeNamedPipe
	case dtSock:
		return fs.ModeSocket
	}
	return 0
}

// entries lists directory inode in, "." and ".." and whiteouts left out,
// reading its blocks within budget.
func (f *FS) entries(in *inode, budget *readBudget) ([]dirent, error) {
	if !in.isDir() {
		return nil, model.Errorf(f.name, in.off, "ufs2: inode %d is not a directory", in.ino)
	}
	if in.size > maxDirBytes {
		return nil, model.Errorf(f.name, in.off, "ufs2: directory inode %d of %d bytes", in.ino, in.size)
	}
	runs, err := f.runs(in, nil, budget)
	if err != nil {
		return nil, err
	}
	file := fsys.NewRunFile(f.r, in.size, runs)
	var out []dirent
	buf := make([]byte, min(dirReadChunk, in.size))
	for pos := int64(0); pos < in.size; {
		chunk := buf[:min(int64(len(buf)), in.size-pos)]
		if err := budget.spend(f, in.off, int64(len(chunk))); err != nil {
			return out, fmt.Errorf("ufs2: directory inode %d: %w", in.ino, err)
		}
		if _, err := file.ReadAt(chunk, pos); err != nil {
			return out, model.Wrapf(err, f.name, in.off, "ufs2: directory inode %d: read at %d", in.ino, pos)
		}
		for o := 0; o < len(chunk); o += dirBlockSize {
			out = parseDirBlock(chunk[o:min(o+dirBlockSize, len(chunk))], out)
		}
		if len(out) > maxDirEntries {
			return out[:maxDirEntries], model.Errorf(f.name, in.off, "ufs2: directory inode %d has more than %d entries", in.ino, maxDirEntries)
		}
		pos += int64(len(chunk))
	}
	return out, nil
}

// parseDirBlock appends the entries of one 512-byte directory block. A
// malformed entry ends the block, as FreeBSD's kernel skips the rest of a
// block whose entry fails its checks.
func parseDirBlock(b []byte, out []dirent) []dirent {
	for pos := 0; pos+direntHeader <= len(b); {
		ino := le.Uint32(b[pos:])
		reclen := int(le.Uint16(b[pos+4:]))
		dtype, namlen := b[pos+6], int(b[pos+7])
		// DIRSIZ: the header and the name with its NUL, to 4 bytes.
		need := direntHeader + (namlen+4)&^3
		if reclen < direntHeader || reclen%4 != 0 || reclen > len(b)-pos || (ino != 0 && (namlen == 0 || need > reclen)) {
			break
		}
		if ino != 0 && dtype != dtWhiteout {
			name := string(b[pos+direntHeader : pos+direntHeader+namlen])
			if name != "." && name != ".." {
				out = append(out, dirent{name: name, ino: ino, dtype: dtype})
			}
		}
		pos += reclen
	}
	return out
}
