package xfs

import (
	"fmt"
	"io/fs"

	"github.com/imgaudit/imgaudit/formats/model"
)

const (
	// leafOffset is the byte offset in a directory where its leaf (hash
	// index) blocks start: entries live in the data blocks below it.
	leafOffset = 32 << 30

	// maxDirBytes bounds the data blocks read for one directory.
	maxDirBytes = 256 << 20
	// dirReadChunk is how much of a directory extent one read takes.
	dirReadChunk = 256 << 10

	// Directory entry file types (XFS_DIR3_FT_*).
	ftRegular = 1
	ftDir     = 2
	ftSymlink = 7
)

// dirent is one directory entry.
type dirent struct {
	name  string
	ino   uint64
	ftype uint8 // 0 when the filesystem keeps no file types
}

// ftypeMode maps a directory entry's file type to fs.FileMode type bits.
func ftypeMode(t uint8) fs.FileMode {
	switch t {
	case ftDir:
		return fs.ModeDir
	case ftSymlink:
		return fs.ModeSymlink
	case 3:
		return fs.ModeDevice | fs.ModeCharDevice
	case 4:
		return fs.ModeDevice
	case 5:
		return fs.ModeNamedPipe
	case 6:
		return fs.ModeSocket
	}
	return 0
}

// dirReader reads directories under a shared budget of bytes, so that
// hostile directories sharing blocks cannot make a walk read more than the
// device holds.
type dirReader struct {
	f      *FS
	budget int64
	bmbt   *bmbtBudget // the B+tree blocks of the walk's inodes
}

func (f *FS) newDirReader() *dirReader {
	return &dirReader{f: f, budget: f.size, bmbt: f.newBmbtBudget()}
}

// entries lists directory inode in, "." and ".." left out.
func (d *dirReader) entries(in *inode) ([]dirent, error) {
	f := d.f
	if !in.isDir() {
		return nil, model.Errorf(f.name, in.off, "xfs: inode %d is not a directory", in.ino)
	}
	if in.format == fmtLocal {
		return f.shortformEntries(in)
	}
	exts, err := f.extentsWithin(in, d.bmbt)
	if err != nil {
		return nil, err
	}
	bs := f.sb.BlockSize
	dirBlk := bs << f.sb.DirBlkLog
	fsbPerDirBlk := uint64(1) << f.sb.DirBlkLog
	leafBlk := uint64(leafOffset / bs)
	var out []dirent
	var dirBytes int64
	buf := make([]byte, 0, dirReadChunk)
	for i, e := range exts {
		if e.unwritten || e.fileOff >= leafBlk {
			continue
		}
		end := min(e.fileOff+e.n, leafBlk)
		// Directory blocks that start in this extent.
		first := (e.fileOff + fsbPerDirBlk - 1) / fsbPerDirBlk * fsbPerDirBlk
		for lb := first; lb < end; {
			// Whole directory blocks inside the extent are read in chunks.
			n := min((end-lb)/fsbPerDirBlk*fsbPerDirBlk, uint64(dirReadChunk/bs)/fsbPerDirBlk*fsbPerDirBlk)
			if n == 0 {
				n = fsbPerDirBlk // a directory block that continues in the next extent
			}
			size := int64(n) * bs
			dirBytes += size
			if dirBytes > maxDirBytes || size > d.budget {
				return out, model.Errorf(f.name, in.off, "xfs: directory inode %d: more than %d bytes of directory blocks", in.ino, min(int64(maxDirBytes), dirBytes))
			}
			d.budget -= size
			var chunk []byte
			var at int64
			if lb+n <= end {
				at, _ = f.fsbOff(e.fsb+(lb-e.fileOff), n)
				chunk = buf[:size]
				if err := f.read(chunk, at); err != nil {
					return out, fmt.Errorf("xfs: directory inode %d: %w", in.ino, err)
				}
			} else {
				chunk, at, err = f.spanningDirBlock(exts[i:], lb, fsbPerDirBlk)
				if err != nil {
					return out, fmt.Errorf("xfs: directory inode %d: %w", in.ino, err)
				}
			}
			for o := int64(0); o < size; o += dirBlk {
				out, err = f.dataBlockEntries(chunk[o:o+dirBlk], at+o, out)
				if err != nil {
					return out, fmt.Errorf("xfs: directory inode %d: %w", in.ino, err)
				}
			}
			lb += n
		}
	}
	return out, nil
}

// spanningDirBlock assembles the directory block at file block lb from the
// extents (starting with the one lb starts in), block by block.
func (f *FS) spanningDirBlock(exts []extent, lb, n uint64) ([]byte, int64, error) {
	bs := f.sb.BlockSize
	out := make([]byte, 0, int64(n)*bs)
	first := int64(-1)
	for b := lb; b < lb+n; b++ {
		found := false
		for _, e := range exts {
			if b >= e.fileOff && b < e.fileOff+e.n {
				off, _ := f.fsbOff(e.fsb+(b-e.fileOff), 1)
				blk := make([]byte, bs)
				if err := f.read(blk, off); err != nil {
					return nil, 0, err
				}
				out = append(out, blk...)
				if first < 0 {
					first = off
				}
				found = true
				break
			}
			if e.fileOff > b {
				break
			}
		}
		if !found {
			return nil, 0, model.Errorf(f.name, first, "xfs: directory block at file block %d has a hole", lb)
		}
	}
	return out, first, nil
}

// dataBlockEntries parses one directory data block (or the single block of
// a block-format directory) found at byte offset at. A malformed entry ends
// the block, as xfs_repair would treat the rest as lost.
func (f *FS) dataBlockEntries(b []byte, at int64, out []dirent) ([]dirent, error) {
	hdr := 16
	blockMagic, dataMagic := "XD2B", "XD2D"
	if f.crc() {
		hdr = 64
		blockMagic, dataMagic = "XDB3", "XDD3"
	}
	end := len(b)
	switch string(b[:4]) {
	case dataMagic:
	case blockMagic:
		// The block tail (leaf count, stale count) and the leaf entries
		// sit at the end of a single-block directory.
		count := int64(be.Uint32(b[len(b)-8:]))
		if count > int64(len(b)-hdr-8)/8 {
			return out, model.Errorf(f.name, at+int64(len(b))-8, "xfs: directory block tail counts %d leaf entries", count)
		}
		end = len(b) - 8 - int(count)*8
	default:
		return out, model.Errorf(f.name, at, "xfs: bad directory data block magic %q", b[:4])
	}
	ft := 0
	if f.hasFType() {
		ft = 1
	}
	for pos := hdr; pos+8 <= end; {
		if be.Uint16(b[pos:]) == 0xFFFF { // unused space: freetag, length
			l := int(be.Uint16(b[pos+2:]))
			if l < 8 || l%8 != 0 || l > end-pos {
				break
			}
			pos += l
			continue
		}
		if pos+9 > end {
			break
		}
		nl := int(b[pos+8])
		l := (8 + 1 + nl + ft + 2 + 7) &^ 7
		if nl == 0 || l > end-pos {
			break
		}
		e := dirent{name: string(b[pos+9 : pos+9+nl]), ino: be.Uint64(b[pos:])}
		if ft == 1 {
			e.ftype = b[pos+9+nl]
		}
		if e.name != "." && e.name != ".." {
			out = append(out, e)
		}
		pos += l
	}
	return out, nil
}

// shortformEntries parses a short-form directory kept in the inode: a
// header (count, 8-byte-number count, parent) and packed entries.
func (f *FS) shortformEntries(in *inode) ([]dirent, error) {
	b := in.fork
	if in.size < int64(len(b)) {
		b = b[:in.size]
	}
	bad := func(what string) error {
		return model.Errorf(f.name, in.off, "xfs: directory inode %d: short-form %s", in.ino, what)
	}
	if len(b) < 6 {
		return nil, bad("header")
	}
	count, i8 := int(b[0]), b[1]
	inoLen := 4
	if i8 > 0 {
		inoLen = 8
	}
	ft := 0
	if f.hasFType() {
		ft = 1
	}
	pos := 2 + inoLen
	out := make([]dirent, 0, count)
	for i := 0; i < count; i++ {
		if pos+3 > len(b) {
			return out, bad("entries past the fork")
		}
		nl := int(b[pos])
		l := 3 + nl + ft + inoLen
		if nl == 0 || pos+l > len(b) {
			return out, bad("entries past the fork")
		}
		e := dirent{name: string(b[pos+3 : pos+3+nl])}
		if ft == 1 {
			e.ftype = b[pos+3+nl]
		}
		p := b[pos+3+nl+ft:]
		if inoLen == 8 {
			e.ino = be.Uint64(p)
		} else {
			e.ino = uint64(be.Uint32(p))
		}
		out = append(out, e)
		pos += l
	}
	return out, nil
}
