// Package memdisk is the sparse guest-physical Disk shared by the memory
// readers: a sorted list of pieces, each either stored verbatim in a host
// file or decoded on demand (zlib pages, XBZRLE deltas, kdump pages).
package memdisk

import (
	"context"
	"fmt"
	"io"
	"iter"
	"sort"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
)

// MaxPiece is the largest piece length; callers split bigger runs.
const MaxPiece = 1 << 30

// Piece is one run of guest-physical bytes. It is kept small (32 bytes)
// because a migration stream has one piece per present page.
type Piece struct {
	Off     int64        // guest-physical offset
	FileOff int64        // offset in R (Data: of byte Off; else: start of the stored form)
	FileLen uint32       // stored length (compressed/encoded size)
	Len     uint32       // guest length
	Ref     uint32       // decoder-specific (version index, compression flags, fill byte)
	Src     model.Source // Data, Compressed or Derived
	// Fill marks a run of pages that all read as the byte Ref (a
	// migration stream's same-byte pages): read without a decoder, and
	// left out of Extents, since one byte repeated holds no secret.
	Fill bool
}

// End is the guest offset just past the piece.
func (p *Piece) End() int64 { return p.Off + int64(p.Len) }

// Decoder fills dst (len(dst) == p.Len) with the guest bytes of a piece
// whose Src is not SourceData.
type Decoder func(p *Piece, dst []byte) error

// Locator tells where n stored bytes at off in R physically live, for
// extents: the host file and its offset. ok is false when they are not
// stored verbatim in one place (a decompressed temp file, a compressed
// qcow2 cluster); the extent then becomes SourceDerived.
type Locator func(off, n int64) (file string, fileOff int64, ok bool)

// Disk is a sparse guest-physical space made of pieces.
type Disk struct {
	R      io.ReaderAt
	Len    int64
	Pieces []Piece // sorted by Off, non-overlapping
	Decode Decoder
	Locate Locator
	Name   string // file name for errors

	mu       sync.Mutex
	cacheIdx int
	cache    []byte
}

// New sorts pieces and checks that they do not overlap and lie below size.
func New(name string, r io.ReaderAt, size int64, pieces []Piece, dec Decoder, loc Locator) (*Disk, error) {
	sort.Slice(pieces, func(i, j int) bool { return pieces[i].Off < pieces[j].Off })
	for i := range pieces {
		p := &pieces[i]
		if p.Off < 0 || p.Len == 0 || p.End() > size {
			return nil, model.Errorf(name, p.FileOff, "memory range 0x%x+0x%x outside guest space of 0x%x bytes", p.Off, p.Len, size)
		}
		if i > 0 && pieces[i-1].End() > p.Off {
			return nil, model.Errorf(name, p.FileOff, "memory ranges overlap at guest-physical 0x%x", p.Off)
		}
		if p.Src != model.SourceData && !p.Fill && dec == nil {
			return nil, fmt.Errorf("memdisk: %s: encoded piece without decoder", name)
		}
	}
	return &Disk{R: r, Len: size, Pieces: pieces, Decode: dec, Locate: loc, Name: name, cacheIdx: -1}, nil
}

func (d *Disk) Size() int64 { return d.Len }

// find returns the index of the first piece ending after off.
func (d *Disk) find(off int64) int {
	return sort.Search(len(d.Pieces), func(i int) bool { return d.Pieces[i].End() > off })
}

// ReadAt reads guest-physical bytes; holes read as zeros.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memdisk: negative offset")
	}
	if off >= d.Len {
		return 0, io.EOF
	}
	want := len(p)
	if rem := d.Len - off; int64(want) > rem {
		want = int(rem)
	}
	buf := p[:want]
	i := d.find(off)
	pos := 0
	for pos < want {
		cur := off + int64(pos)
		if i >= len(d.Pieces) || d.Pieces[i].Off >= cur+int64(want-pos) {
			clear(buf[pos:])
			break
		}
		pc := &d.Pieces[i]
		if pc.Off > cur {
			gap := int(pc.Off - cur)
			clear(buf[pos : pos+gap])
			pos += gap
			continue
		}
		in := cur - pc.Off
		n := int(min(int64(want-pos), int64(pc.Len)-in))
		if err := d.readPiece(i, in, buf[pos:pos+n]); err != nil {
			return pos, err
		}
		pos += n
		i++
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

func (d *Disk) readPiece(i int, in int64, dst []byte) error {
	pc := &d.Pieces[i]
	if pc.Fill {
		for k := range dst {
			dst[k] = byte(pc.Ref)
		}
		return nil
	}
	if pc.Src == model.SourceData {
		n, err := d.R.ReadAt(dst, pc.FileOff+in)
		if n == len(dst) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return model.Wrapf(err, d.Name, pc.FileOff+in, "read memory at guest-physical 0x%x", pc.Off+in)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cacheIdx != i {
		if cap(d.cache) < int(pc.Len) {
			d.cache = make([]byte, pc.Len)
		}
		d.cache = d.cache[:pc.Len]
		d.cacheIdx = -1
		if err := d.Decode(pc, d.cache); err != nil {
			return model.Wrapf(err, d.Name, pc.FileOff, "decode memory at guest-physical 0x%x", pc.Off)
		}
		d.cacheIdx = i
	}
	copy(dst, d.cache[in:])
	return nil
}

// Extent describes piece i for scanners.
func (d *Disk) Extent(i int) model.Extent {
	pc := &d.Pieces[i]
	e := model.Extent{Offset: pc.Off, Length: int64(pc.Len), Source: pc.Src, File: d.Name, FileOffset: pc.FileOff, FileLength: int64(pc.FileLen)}
	if pc.Src == model.SourceData {
		e.FileLength = int64(pc.Len)
	}
	if d.Locate != nil {
		if f, fo, ok := d.Locate(pc.FileOff, e.FileLength); ok {
			e.File, e.FileOffset = f, fo
		} else {
			e.Source, e.FileOffset = model.SourceDerived, -1
		}
	}
	return e
}

// Extents yields one extent per piece, in guest-physical order; fill
// pieces are left out (see Piece.Fill).
func (d *Disk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		for i := range d.Pieces {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					yield(model.Extent{}, err)
					return
				}
			}
			if d.Pieces[i].Fill {
				continue
			}
			if !yield(d.Extent(i), nil) {
				return
			}
		}
	}
}

// Bytes sums the guest lengths of the pieces.
func (d *Disk) Bytes() int64 {
	var n int64
	for i := range d.Pieces {
		n += int64(d.Pieces[i].Len)
	}
	return n
}

// SplitRun appends pieces for a verbatim run of n bytes at guest off stored at
// fileOff, splitting at MaxPiece.
func SplitRun(out []Piece, off, fileOff, n int64) []Piece {
	for n > 0 {
		l := min(n, MaxPiece)
		out = append(out, Piece{Off: off, FileOff: fileOff, FileLen: uint32(l), Len: uint32(l), Src: model.SourceData})
		off += l
		fileOff += l
		n -= l
	}
	return out
}
