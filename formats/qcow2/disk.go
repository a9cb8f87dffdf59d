package qcow2

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync"

	"github.com/imgaudit/imgaudit/formats/model"
)

// maxRun bounds one coalesced host read, so a huge ReadAt still makes
// progress in pieces of reasonable size.
const maxRun = 16 << 20

// mapDisk is a guest byte space mapped by one L1 table: the current state,
// a snapshot, or (with base > 0) a snapshot's saved VM state.
type mapDisk struct {
	m       *mapper
	l1      func() ([]uint64, error)
	base    int64 // L1-space offset of guest byte 0
	size    int64
	backing model.Disk // nil: unallocated bytes read as zeros
}

func (d *mapDisk) Size() int64 { return d.size }

// lazyL1 loads an L1 table on first use and keeps it (and its error).
func lazyL1(m *mapper, off uint64, n uint32, what string) func() ([]uint64, error) {
	return sync.OnceValues(func() ([]uint64, error) { return m.readL1(off, n, what) })
}

func (d *mapDisk) ReadAt(p []byte, off int64) (int, error) {
	want, err := model.ClampRead(p, off, d.size)
	if err != nil {
		return 0, err
	}
	if err := d.read(p[:want], off); err != nil {
		return 0, err
	}
	if want < len(p) {
		return want, io.EOF
	}
	return int(want), nil
}

// read fills p with guest bytes from off; p lies inside the disk.
func (d *mapDisk) read(p []byte, off int64) error {
	l1, err := d.l1()
	if err != nil {
		return err
	}
	var c cursor
	// A pending data read: host bytes contiguous across L2 tables are read
	// with one ReadAt.
	var pendBuf []byte
	var pendHost int64
	flush := func() error {
		if len(pendBuf) == 0 {
			return nil
		}
		err := d.m.readData(pendBuf, pendHost)
		pendBuf = nil
		return err
	}
	done := int64(0)
	for done < int64(len(p)) {
		pos := off + done
		r, err := d.m.lookup(&c, l1, d.base+pos, min(int64(len(p))-done, maxRun))
		if err != nil {
			return err
		}
		buf := p[done : done+r.length]
		if r.kind == runData && len(pendBuf) > 0 && pendHost+int64(len(pendBuf)) == r.host {
			pendBuf = p[done-int64(len(pendBuf)) : done+r.length]
			done += r.length
			continue
		}
		if err := flush(); err != nil {
			return err
		}
		switch r.kind {
		case runData:
			pendBuf, pendHost = buf, r.host
		case runZero:
			clear(buf)
		case runUnallocated:
			if err := d.readBacking(buf, pos); err != nil {
				return err
			}
		case runCompressed:
			inCl := d.base + pos - r.cstart
			if err := d.m.dec.readAt(d.m.f, r.host, r.clen, inCl, buf); err != nil {
				return model.Wrapf(err, d.m.name, r.host, "decompress cluster at guest offset %d", r.cstart-d.base)
			}
		}
		done += r.length
	}
	return flush()
}

// readBacking reads unallocated bytes from the backing disk; bytes past its
// end (or with no backing disk) read as zeros.
func (d *mapDisk) readBacking(p []byte, off int64) error {
	n := int64(0)
	if d.backing != nil && off < d.backing.Size() {
		n = min(int64(len(p)), d.backing.Size()-off)
		got, err := d.backing.ReadAt(p[:n], off)
		if int64(got) < n {
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	clear(p[n:])
	return nil
}

// Extents yields this layer's allocated runs and, where it leaves guest
// ranges unallocated, the backing disk's extents clipped to them.
func (d *mapDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		l1, err := d.l1()
		if err != nil {
			yield(model.Extent{}, err)
			return
		}
		var m merger
		m.yield = yield
		var bnext func() (model.Extent, error, bool)
		if d.backing != nil {
			var stop func()
			bnext, stop = iter.Pull2(d.backing.Extents(ctx))
			defer stop()
		}
		var bcur model.Extent
		bvalid, bdone := false, bnext == nil
		// fromBacking emits the backing extents inside [start, end).
		fromBacking := func(start, end int64) bool {
			for !bdone {
				if !bvalid {
					e, err, ok := bnext()
					if !ok {
						bdone = true
						return true
					}
					if err != nil {
						m.flush()
						yield(model.Extent{}, err)
						return false
					}
					bcur, bvalid = e, true
				}
				if bcur.End() <= start {
					bvalid = false
					continue
				}
				if bcur.Offset >= end {
					return true
				}
				if !m.add(clip(bcur, start, end)) {
					return false
				}
				if bcur.End() > end {
					return true
				}
				bvalid = false
			}
			return true
		}
		var c cursor
		lastTable := uint64(0)
		for pos := int64(0); pos < d.size; {
			if c.off != lastTable {
				lastTable = c.off
				if err := ctx.Err(); err != nil {
					m.flush()
					yield(model.Extent{}, err)
					return
				}
			}
			r, err := d.m.lookup(&c, l1, d.base+pos, d.size-pos)
			if err != nil {
				m.flush()
				yield(model.Extent{}, err)
				return
			}
			var ok = true
			switch r.kind {
			case runUnallocated:
				ok = fromBacking(pos, pos+r.length)
			case runZero:
				ok = m.add(model.Extent{Offset: pos, Length: r.length, Source: model.SourceZero, FileOffset: -1})
			case runData:
				ok = m.add(model.Extent{Offset: pos, Length: r.length, Source: model.SourceData, File: d.m.dataName, FileOffset: r.host, FileLength: r.length})
			case runCompressed:
				// A compressed cluster is listed whole even when the disk
				// ends inside it, so that the extent names its stream.
				start := r.cstart - d.base
				length := min(d.m.clusterSize, d.size-start)
				ok = m.add(model.Extent{Offset: start, Length: length, Source: model.SourceCompressed, File: d.m.name, FileOffset: r.host, FileLength: r.clen})
				r.length = start + length - pos
			}
			if !ok {
				return
			}
			pos += r.length
		}
		m.flush()
	}
}

// clip narrows an extent to [start, end). A compressed extent keeps its
// stream location: the stream still holds the clipped bytes.
func clip(e model.Extent, start, end int64) model.Extent {
	if e.Offset < start {
		d := start - e.Offset
		e.Offset += d
		e.Length -= d
		if e.Source == model.SourceData {
			e.FileOffset += d
			e.FileLength -= d
		}
	}
	if e.End() > end {
		d := e.End() - end
		e.Length -= d
		if e.Source == model.SourceData {
			e.FileLength -= d
		}
	}
	return e
}

// merger joins extents that are contiguous in guest and host space before
// yielding them.
type merger struct {
	yield func(model.Extent, error) bool
	pend  model.Extent
	has   bool
	dead  bool
}

func (m *merger) add(e model.Extent) bool {
	if m.dead {
		return false
	}
	if e.Length <= 0 {
		return true
	}
	if m.has && m.pend.End() == e.Offset && m.pend.Source == e.Source && m.pend.File == e.File {
		switch e.Source {
		case model.SourceData:
			if m.pend.FileOffset+m.pend.FileLength == e.FileOffset {
				m.pend.Length += e.Length
				m.pend.FileLength += e.Length
				return true
			}
		case model.SourceZero:
			m.pend.Length += e.Length
			return true
		}
	}
	if m.has && !m.yield(m.pend, nil) {
		m.dead = true
		return false
	}
	m.pend, m.has = e, true
	return true
}

func (m *merger) flush() {
	if m.has && !m.dead {
		m.has = false
		if !m.yield(m.pend, nil) {
			m.dead = true
		}
	}
}
