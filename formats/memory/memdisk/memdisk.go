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

	// mu guards the decoded piece kept for reads that want part of it
	// (cacheIdx, cache); decoding itself runs outside it, so that the
	// scanner's workers decode compressed pages in parallel.
	mu       sync.Mutex
	cacheIdx int
	cache    []byte
	// runs holds the buffers of readRun (*[]byte of maxRun bytes).
	runs sync.Pool
}

// Coalesced reads (readRun): stored pieces that continue each other in
// the guest and lie at most maxRunGap bytes apart in the file are read
// with one ReadAt of at most maxRun bytes. A migration stream stores each
// page after an 8-byte record header: a 4 MiB scan chunk made 1,024
// preads, 21% of the scan's time.
const (
	maxRunGap = 64
	maxRun    = 1 << 20
)

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
		if pc.Src == model.SourceData && !pc.Fill {
			k, n, err := d.readRun(i, in, buf[pos:])
			if err != nil {
				return pos, err
			}
			pos += n
			i += k
			continue
		}
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

// readRun reads stored pieces from piece i (in bytes into it) into dst,
// as far as dst goes and the pieces continue each other in the guest, with
// one ReadAt where they lie within maxRunGap of each other in the file. It
// returns how many pieces it finished or entered and the bytes it wrote.
func (d *Disk) readRun(i int, in int64, dst []byte) (pieces, n int, err error) {
	first := &d.Pieces[i]
	start := first.FileOff + in
	n = int(min(int64(len(dst)), int64(first.Len)-in))
	end := start + int64(n) // file end of the bytes wanted so far
	j := i + 1
	gaps := false
	// Each piece but the last is taken whole: n < len(dst) says so.
	for ; j < len(d.Pieces) && n < len(dst); j++ {
		q, prev := &d.Pieces[j], &d.Pieces[j-1]
		if q.Src != model.SourceData || q.Fill || q.Off != prev.End() || q.FileOff < end || q.FileOff-end > maxRunGap {
			break
		}
		take := int(min(int64(len(dst)-n), int64(q.Len)))
		if q.FileOff+int64(take)-start > maxRun {
			break
		}
		gaps = gaps || q.FileOff != end
		n += take
		end = q.FileOff + int64(take)
	}
	if !gaps {
		// One piece, or pieces stored back to back: read in place.
		got, rerr := d.R.ReadAt(dst[:n], start)
		if got < n {
			return 0, 0, d.readErr(rerr, start, first.Off+in)
		}
		return j - i, n, nil
	}
	bp, _ := d.runs.Get().(*[]byte)
	if bp == nil {
		b := make([]byte, maxRun)
		bp = &b
	}
	defer d.runs.Put(bp)
	span := (*bp)[:end-start]
	if got, rerr := d.R.ReadAt(span, start); got < len(span) {
		return 0, 0, d.readErr(rerr, start, first.Off+in)
	}
	w := copy(dst, span[:int64(first.Len)-in])
	for k := i + 1; k < j; k++ {
		q := &d.Pieces[k]
		w += copy(dst[w:min(n, w+int(q.Len))], span[q.FileOff-start:])
	}
	return j - i, n, nil
}

// readErr is the error of a short read of stored bytes at file offset off
// (guest-physical guest).
func (d *Disk) readErr(err error, off, guest int64) error {
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return model.Wrapf(err, d.Name, off, "read memory at guest-physical 0x%x", guest)
}

// readPiece reads the bytes [in, in+len(dst)) of piece i, one that is not
// stored as is: a fill, or decoded. A whole piece is decoded into dst;
// part of one through a decoded copy kept for the next read, which
// likely wants more of it.
func (d *Disk) readPiece(i int, in int64, dst []byte) error {
	pc := &d.Pieces[i]
	if pc.Fill {
		for k := range dst {
			dst[k] = byte(pc.Ref)
		}
		return nil
	}
	if in == 0 && len(dst) == int(pc.Len) {
		if err := d.Decode(pc, dst); err != nil {
			return model.Wrapf(err, d.Name, pc.FileOff, "decode memory at guest-physical 0x%x", pc.Off)
		}
		return nil
	}
	d.mu.Lock()
	if d.cacheIdx == i {
		copy(dst, d.cache[in:])
		d.mu.Unlock()
		return nil
	}
	d.mu.Unlock()
	page := make([]byte, pc.Len)
	if err := d.Decode(pc, page); err != nil {
		return model.Wrapf(err, d.Name, pc.FileOff, "decode memory at guest-physical 0x%x", pc.Off)
	}
	copy(dst, page[in:])
	d.mu.Lock()
	d.cacheIdx, d.cache = i, page
	d.mu.Unlock()
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
