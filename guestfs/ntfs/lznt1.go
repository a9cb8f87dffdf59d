package ntfs

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This file reads NTFS compressed streams: files in a folder with the
// compressed attribute. A stream is cut into compression units of 16
// clusters; a unit that holds fewer clusters than that (the rest sparse)
// stores LZNT1 (MS-XCA 2.5) in the ones it has, a full unit is stored as
// is, and an empty one reads as zeros.

// lznt1Chunk is what one LZNT1 chunk decodes to at most.
const lznt1Chunk = 4096

// errLZNT1 is corrupt LZNT1 data.
var errLZNT1 = errors.New("corrupt lznt1 data")

// decompressLZNT1 decodes src into dst and returns the decoded length. It
// stops at a zero chunk header or the end of src; a chunk that would
// decode past dst, or that refers before its own start, is corrupt.
func decompressLZNT1(src, dst []byte) (int, error) {
	out := 0
	for at := 0; at+2 <= len(src); {
		h := int(binary.LittleEndian.Uint16(src[at:]))
		if h == 0 {
			break
		}
		size := h&0x0FFF + 1 // the chunk's bytes after its header
		if at+2+size > len(src) {
			return out, fmt.Errorf("%w: chunk of %d bytes at %d past the unit's %d", errLZNT1, size, at, len(src))
		}
		data := src[at+2 : at+2+size]
		at += 2 + size
		if h&0x8000 == 0 { // stored
			if len(data) > len(dst)-out {
				return out, fmt.Errorf("%w: stored chunk at %d past the unit", errLZNT1, at-2-size)
			}
			out += copy(dst[out:], data)
			continue
		}
		start := out
		for i := 0; i < len(data); {
			flags := data[i]
			i++
			for bit := 0; bit < 8 && i < len(data); bit++ {
				pos := out - start
				if flags&(1<<bit) == 0 {
					if pos >= lznt1Chunk || out >= len(dst) {
						return out, fmt.Errorf("%w: chunk decodes past %d bytes", errLZNT1, lznt1Chunk)
					}
					dst[out] = data[i]
					out++
					i++
					continue
				}
				if i+2 > len(data) {
					return out, fmt.Errorf("%w: cut back-reference", errLZNT1)
				}
				tok := int(binary.LittleEndian.Uint16(data[i:]))
				i += 2
				// The split between offset and length bits moves with
				// the position in the chunk: 4 offset bits up to 16
				// bytes in, one more at each doubling.
				ob := 4
				for 1<<ob < pos {
					ob++
				}
				lb := 16 - ob
				n, back := tok&(1<<lb-1)+3, tok>>lb+1
				if pos == 0 || back > pos || pos+n > lznt1Chunk || out+n > len(dst) {
					return out, fmt.Errorf("%w: back-reference of %d bytes, %d back, at %d in its chunk", errLZNT1, n, back, pos)
				}
				for k := 0; k < n; k++ { // may overlap itself
					dst[out] = dst[out-back]
					out++
				}
			}
		}
	}
	return out, nil
}

// compressedStream reads a compressed non-resident stream one compression
// unit at a time (the last one kept, since reads go forward).
type compressedStream struct {
	f          *FS
	size, init int64      // bytes from init on read as zeros
	unit       int64      // bytes in a compression unit
	runs       []fsys.Run // the allocated clusters, by file offset
	// salvage marks a deleted file's stream, read from the clusters
	// $Bitmap still has free (OpenCompressedRuns): a unit reads what its
	// clusters decode to up to the first one that is missing or does
	// not decode, and zeros after it.
	salvage bool

	mu     sync.Mutex
	cached int64 // the unit in buf, -1 for none
	buf    []byte
	stored []byte
}

// maxUnit bounds a compression unit: NTFS compresses only with clusters of
// 4 KiB or less, 16 of them to a unit.
const maxUnit = 64 << 10

func (f *FS) newCompressedStream(s *stream, runs []fsys.Run) (*compressedStream, error) {
	unit := f.clusterSize << s.cuLog
	if s.cuLog > 8 || unit > maxUnit {
		return nil, fmt.Errorf("compression unit of %d clusters of %d bytes: %w", 1<<s.cuLog, f.clusterSize, fsys.ErrCompressed)
	}
	rs := slices.Clone(runs)
	slices.SortFunc(rs, func(a, b fsys.Run) int { return cmp.Compare(a.FileOff, b.FileOff) })
	return &compressedStream{f: f, size: s.size, init: s.init, unit: unit, runs: rs, cached: -1}, nil
}

// OpenCompressedRuns reads a compressed stream from the runs a walk gave
// for it: how a deleted file's data, which no path opens, is decoded.
// Such a file's runs are the clusters $Bitmap still has free, so a unit
// some of whose clusters were allocated again since reads as what the
// clusters before the first one missing decode to, and zeros after:
// what the file held there is gone, and the new owner's bytes are not
// the deleted file's. The unit is 16 clusters, the only one that Windows
// and ntfs-3g write (the runs do not carry the record's own).
func (f *FS) OpenCompressedRuns(runs []fsys.Run, size int64) (fsys.File, error) {
	for _, r := range runs {
		if !r.Compressed || r.Codec != "lznt1" {
			return nil, fmt.Errorf("ntfs: %s: run of %d bytes at %d is not LZNT1-compressed", f.name, r.Len, r.Off)
		}
	}
	if size < 0 {
		return nil, fmt.Errorf("ntfs: %s: size %d", f.name, size)
	}
	c, err := f.newCompressedStream(&stream{size: size, init: size, compressed: true, cuLog: 4}, runs)
	if err != nil {
		return nil, fmt.Errorf("ntfs: %s: %w", f.name, err)
	}
	c.salvage = true
	return c, nil
}

func (c *compressedStream) Size() int64 { return c.size }

func (c *compressedStream) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("ntfs: negative offset %d", off)
	}
	if off >= c.size {
		return 0, io.EOF
	}
	want := min(int64(len(p)), c.size-off)
	c.mu.Lock()
	defer c.mu.Unlock()
	for done := int64(0); done < want; {
		pos := off + done
		u := pos / c.unit
		if err := c.load(u); err != nil {
			return int(done), fmt.Errorf("ntfs: %s: compression unit at %d: %w", c.f.name, u*c.unit, err)
		}
		done += int64(copy(p[done:want], c.buf[pos-u*c.unit:]))
	}
	if c.init < off+want {
		clear(p[max(0, c.init-off):want])
	}
	if want < int64(len(p)) {
		return int(want), io.EOF
	}
	return int(want), nil
}

// load decodes unit u into buf.
func (c *compressedStream) load(u int64) error {
	if c.cached == u {
		return nil
	}
	if c.buf == nil {
		c.buf, c.stored = make([]byte, c.unit), make([]byte, 0, c.unit)
	}
	c.cached = -1
	start, end := u*c.unit, (u+1)*c.unit
	// The unit's allocated clusters, in file order.
	c.stored = c.stored[:0]
	i, _ := slices.BinarySearchFunc(c.runs, start, func(r fsys.Run, t int64) int {
		if r.FileOff+r.Len <= t {
			return -1
		}
		return 1
	})
	for ; i < len(c.runs) && c.runs[i].FileOff < end; i++ {
		r := c.runs[i]
		s, e := max(start, r.FileOff), min(end, r.FileOff+r.Len)
		if c.salvage && s != start+int64(len(c.stored)) {
			break // a cluster allocated again: the unit's data stops here
		}
		if s >= e || int64(len(c.stored))+(e-s) > c.unit {
			continue
		}
		n := len(c.stored)
		c.stored = c.stored[:n+int(e-s)]
		if err := fsys.ReadFull(c.f.r, c.stored[n:], r.Off+(s-r.FileOff)); err != nil {
			return err
		}
	}
	clear(c.buf)
	switch int64(len(c.stored)) {
	case c.unit: // stored as is
		copy(c.buf, c.stored)
	case 0: // sparse
	default:
		// A salvaged unit keeps what decoded before the error (its
		// later clusters were allocated again); c.buf is zeros after.
		if _, err := decompressLZNT1(c.stored, c.buf); err != nil && !c.salvage {
			return err
		}
	}
	c.cached = u
	return nil
}
