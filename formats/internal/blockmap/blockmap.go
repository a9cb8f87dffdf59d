// Package blockmap is the guest byte space shared by the VHD, VHDX and VDI
// readers: a disk cut into fixed-size blocks, each either absent (read the
// parent, else zeros), zero, stored whole at a host offset, or stored in part
// with a per-sector bitmap saying which sectors this file holds. It also
// provides the "unreferenced" space: host bytes that no table references.
package blockmap

import (
	"context"
	"io"
	"iter"

	"github.com/imgaudit/imgaudit/formats/model"
)

// State says how one block is stored.
type State uint8

const (
	// Absent blocks read from the parent, or as zeros without one.
	Absent State = iota
	// Zero blocks read as zeros and hide the parent.
	Zero
	// Data blocks are stored whole at Block.Data.
	Data
	// Partial blocks hold the sectors whose bitmap bit is set at Block.Data
	// (+ sector offset); the other sectors read from the parent.
	Partial
)

// Block is where one block lives in the host file.
type Block struct {
	State  State
	Data   int64 // host offset of the block's first byte (Data, Partial)
	Bitmap int64 // host offset of the block's sector bitmap (Partial)
}

// BitOrder is the bit numbering of a sector bitmap within each byte.
type BitOrder uint8

const (
	// MSBFirst: sector 0 is bit 7 of byte 0 (VHD).
	MSBFirst BitOrder = iota
	// LSBFirst: sector 0 is bit 0 of byte 0 (VHDX).
	LSBFirst
)

// Disk is a block-mapped guest space. Lookup must be safe for concurrent use
// (formats keep their immutable table and decode an entry per call).
type Disk struct {
	R          io.ReaderAt
	File       string // host path, for extents and errors
	Len        int64  // guest size
	BlockSize  int64  // a power of two is not required, only > 0
	SectorSize int64  // bitmap granularity for Partial blocks
	Order      BitOrder
	Lookup     func(i int64) Block
	Parent     model.Disk // nil: absent bytes read as zeros
}

func (d *Disk) Size() int64 { return d.Len }

// ReadAt reads guest bytes. Host-contiguous runs of whole blocks are read
// with one call so that large sequential reads stay cheap.
func (d *Disk) ReadAt(p []byte, off int64) (int, error) {
	want, err := model.ClampRead(p, off, d.Len)
	if err != nil {
		return 0, err
	}
	done := 0
	for done < want {
		pos := off + int64(done)
		bi := pos / d.BlockSize
		in := pos % d.BlockSize
		n := min(int64(want-done), d.BlockSize-in)
		b := d.Lookup(bi)
		buf := p[done : done+int(n)]
		var err error
		switch b.State {
		case Data:
			// Extend over following blocks that continue on the host.
			for next := bi + 1; int64(done)+n < int64(want); next++ {
				nb := d.Lookup(next)
				if nb.State != Data || nb.Data != b.Data+(next-bi)*d.BlockSize {
					break
				}
				n = min(int64(want-done), n+d.BlockSize)
			}
			buf = p[done : done+int(n)]
			err = d.readHost(buf, b.Data+in)
		case Partial:
			err = d.readPartial(buf, b, pos, in)
		case Zero:
			clear(buf)
		default:
			err = d.readParent(buf, pos)
		}
		if err != nil {
			return done, err
		}
		done += int(n)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// readHost reads host bytes; a short file reads as zeros past its end, as
// QEMU does.
func (d *Disk) readHost(buf []byte, hostOff int64) error {
	n, err := d.R.ReadAt(buf, hostOff)
	if n < len(buf) {
		if err != nil && err != io.EOF {
			return model.Wrapf(err, d.File, hostOff, "read block data")
		}
		clear(buf[n:])
	}
	return nil
}

func (d *Disk) readParent(buf []byte, pos int64) error {
	if d.Parent == nil {
		clear(buf)
		return nil
	}
	n, err := d.Parent.ReadAt(buf, pos)
	if n < len(buf) {
		if err != nil && err != io.EOF {
			return err
		}
		clear(buf[n:]) // past the parent's end reads as zeros
	}
	return nil
}

// bitmap reads the bits of the sectors [first, first+count) of a partial block.
func (d *Disk) bitmap(b Block, first, count int64) ([]bool, error) {
	lo := first / 8
	hi := (first + count + 7) / 8
	raw := make([]byte, hi-lo)
	if err := d.readHost(raw, b.Bitmap+lo); err != nil {
		return nil, err
	}
	bits := make([]bool, count)
	for i := range count {
		s := first + i
		by := raw[s/8-lo]
		if d.Order == MSBFirst {
			bits[i] = by&(0x80>>(s%8)) != 0
		} else {
			bits[i] = by&(1<<(s%8)) != 0
		}
	}
	return bits, nil
}

// runs splits [in, in+len) of a partial block into runs of present and
// absent sectors.
func (d *Disk) runs(b Block, in, length int64, f func(start, n int64, present bool) error) error {
	ss := d.SectorSize
	first := in / ss
	last := (in + length - 1) / ss
	bits, err := d.bitmap(b, first, last-first+1)
	if err != nil {
		return err
	}
	pos := in
	end := in + length
	for pos < end {
		k := pos/ss - first
		present := bits[k]
		stop := pos
		for stop < end && bits[stop/ss-first] == present {
			stop = (stop/ss + 1) * ss
		}
		stop = min(stop, end)
		if err := f(pos, stop-pos, present); err != nil {
			return err
		}
		pos = stop
	}
	return nil
}

func (d *Disk) readPartial(buf []byte, b Block, pos, in int64) error {
	return d.runs(b, in, int64(len(buf)), func(start, n int64, present bool) error {
		dst := buf[start-in : start-in+n]
		if present {
			return d.readHost(dst, b.Data+start)
		}
		return d.readParent(dst, pos-in+start)
	})
}

// Extents yields this file's allocated runs and, where blocks or sectors are
// absent, the parent's extents clipped to those ranges, in guest order.
func (d *Disk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		var parent parentCursor
		if d.Parent != nil {
			next, stop := iter.Pull2(d.Parent.Extents(ctx))
			defer stop()
			parent.next = next
		}
		var m merger
		m.yield = yield
		emitOwn := func(goff, hoff, n int64) bool {
			return m.add(model.Extent{Offset: goff, Length: n, Source: model.SourceData, File: d.File, FileOffset: hoff, FileLength: n})
		}
		emitParent := func(a, b int64) bool {
			if d.Parent == nil {
				return true
			}
			b = min(b, d.Parent.Size())
			if a >= b {
				return true
			}
			for e, err := range parent.within(a, b) {
				if err != nil {
					yield(model.Extent{}, err)
					return false
				}
				if !m.add(e) {
					return false
				}
			}
			return true
		}
		nblocks := (d.Len + d.BlockSize - 1) / d.BlockSize
		for bi := range nblocks {
			if bi%1024 == 0 {
				if err := ctx.Err(); err != nil {
					yield(model.Extent{}, err)
					return
				}
			}
			start := bi * d.BlockSize
			n := min(d.BlockSize, d.Len-start)
			b := d.Lookup(bi)
			ok := true
			switch b.State {
			case Data:
				ok = emitOwn(start, b.Data, n)
			case Partial:
				err := d.runs(b, 0, n, func(s, l int64, present bool) error {
					if present {
						ok = emitOwn(start+s, b.Data+s, l)
					} else {
						ok = emitParent(start+s, start+s+l)
					}
					if !ok {
						return errStop
					}
					return nil
				})
				if err != nil && err != errStop {
					yield(model.Extent{}, err)
					return
				}
			case Absent:
				ok = emitParent(start, start+n)
			}
			if !ok {
				return
			}
		}
		m.flush()
	}
}

type stopErr struct{}

func (stopErr) Error() string { return "stop" }

var errStop error = stopErr{}

// parentCursor walks the parent's extents once, for ranges asked in
// increasing order.
type parentCursor struct {
	next func() (model.Extent, error, bool)
	cur  model.Extent
	have bool
	done bool
}

func (c *parentCursor) within(a, b int64) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		for {
			if !c.have {
				if c.done {
					return
				}
				e, err, ok := c.next()
				if !ok {
					c.done = true
					return
				}
				if err != nil {
					c.done = true
					yield(model.Extent{}, err)
					return
				}
				c.cur, c.have = e, true
			}
			e := c.cur
			if e.End() <= a {
				c.have = false
				continue
			}
			if e.Offset >= b {
				return
			}
			if !yield(Clip(e, a, b), nil) {
				return
			}
			if e.End() <= b {
				c.have = false
				continue
			}
			return
		}
	}
}

// Clip cuts an extent to the guest range [a, b). Host offsets move with the
// guest offset only for stored-as-is bytes.
func Clip(e model.Extent, a, b int64) model.Extent {
	lo := max(e.Offset, a)
	hi := min(e.End(), b)
	out := e
	out.Offset, out.Length = lo, hi-lo
	if e.Source == model.SourceData || e.Source == model.SourceZero {
		if e.FileOffset >= 0 {
			out.FileOffset = e.FileOffset + (lo - e.Offset)
		}
		out.FileLength = hi - lo
	}
	return out
}

// merger joins extents that continue each other in guest and host space.
type merger struct {
	yield   func(model.Extent, error) bool
	pending model.Extent
	have    bool
}

func (m *merger) add(e model.Extent) bool {
	if e.Length <= 0 {
		return true
	}
	p := &m.pending
	if m.have && e.Source == model.SourceData && p.Source == model.SourceData && p.File == e.File &&
		p.End() == e.Offset && p.FileOffset >= 0 && p.FileOffset+p.Length == e.FileOffset {
		p.Length += e.Length
		p.FileLength += e.FileLength
		return true
	}
	if m.have && !m.yield(*p, nil) {
		return false
	}
	m.pending, m.have = e, true
	return true
}

func (m *merger) flush() {
	if m.have {
		m.yield(m.pending, nil)
		m.have = false
	}
}
