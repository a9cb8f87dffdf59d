package scanner

import (
	"sort"

	"github.com/imgaudit/imgaudit/formats/model"
)

// physKey names a physical byte space: a host file read as-is, one
// compressed stream of a host file, or (for bytes with no host identity) a
// view of its own.
type physKey struct {
	file   string
	src    model.Source
	stream int64 // start of the compressed stream; -1 for as-is bytes
}

// pos is a physical position: a key and an offset inside its byte space
// (host offset for as-is bytes, offset in the decompressed output otherwise).
type pos struct {
	key physKey
	off int64
}

// piece is a run of a view's guest bytes that is contiguous physically.
type piece struct {
	at  pos
	len int64
}

// zeroKey stands for holes and zero extents, which have no identity.
var zeroKey = physKey{src: model.SourceZero, stream: -1}

// identity reports where guest byte delta of e lives. ok is false for bytes
// that must never be deduplicated against other views.
func identity(e model.Extent, file string, viewID string, delta int64) (pos, bool) {
	switch e.Source {
	case model.SourceData:
		if e.FileOffset >= 0 && file != "" {
			return pos{physKey{file, model.SourceData, -1}, e.FileOffset + delta}, true
		}
	case model.SourceCompressed, model.SourceDerived:
		if e.FileOffset >= 0 && file != "" {
			return pos{physKey{file, e.Source, e.FileOffset}, delta}, true
		}
	case model.SourceZero:
		return pos{zeroKey, 0}, true
	}
	// Unique to this extent of this view.
	return pos{physKey{"view:" + viewID, e.Source, e.Offset}, delta}, false
}

// rep is the number of times record i of a view repeats (see
// viewState.reps): 1 for an ordinary extent.
func (v *viewState) rep(i int) int64 {
	if i < len(v.reps) {
		return v.reps[i]
	}
	return 1
}

// runEnd is the guest offset just past record i and all its repetitions.
func (v *viewState) runEnd(i int) int64 {
	e := v.ext[i]
	return e.Offset + e.Length*v.rep(i)
}

// firstRepetition maps guest range [g, g+n) to the same place in the first
// repetition of the record holding it, where the bytes read are provably
// the same (every repetition but the last, or the last when the range does
// not run past it); else it returns g.
func (v *viewState) firstRepetition(g, n int64) int64 {
	i := sort.Search(len(v.ext), func(i int) bool { return v.runEnd(i) > g })
	if i == len(v.ext) || v.rep(i) == 1 || v.ext[i].Offset > g {
		return g
	}
	e := v.ext[i]
	in := (g - e.Offset) % e.Length
	if last := e.Offset + (v.rep(i)-1)*e.Length; g >= last && in+n > e.Length {
		return g
	}
	return e.Offset + in
}

// segment is a maximal run of a view's extents contiguous both in guest and
// in physical space.
type segment struct {
	guest int64
	len   int64
	start pos
	file  string // host file of the first extent ("" when none)
	dedup bool   // identity is shared across views
	// next, when set, is where the bytes after the segment physically
	// are although the next segment does not follow it in the guest:
	// the first repetition of a record is followed by the record's own
	// start (the repetitions between are not segments).
	next    *pos
	nextLen int64 // bytes of next before it repeats
}

func (s segment) end() int64 { return s.guest + s.len }

// segments merges a view's extents (sorted by guest offset, no zero
// extents). A record that repeats (aliased tables: many guest ranges
// reading one host range) gives only its first and last repetition: the
// ones between read the same bytes, in the same surroundings, as the
// first, so scanning them again could find nothing new.
func (v *viewState) segments() []segment {
	var out []segment
	add := func(e model.Extent, file string) {
		p, ok := identity(e, file, v.view.ID, 0)
		ok = ok && v.dedupe
		if n := len(out); n > 0 {
			last := &out[n-1]
			if last.next == nil && last.dedup == ok && last.end() == e.Offset && last.start.key == p.key &&
				p.key.src == model.SourceData && last.start.off+last.len == p.off {
				last.len += e.Length
				return
			}
		}
		out = append(out, segment{guest: e.Offset, len: e.Length, start: p, file: file, dedup: ok})
	}
	for i, e := range v.ext {
		add(e, v.files[i])
		if k := v.rep(i); k > 1 {
			p, _ := identity(e, v.files[i], v.view.ID, 0)
			out[len(out)-1].next, out[len(out)-1].nextLen = &p, e.Length
			e.Offset += (k - 1) * e.Length
			add(e, v.files[i])
		}
	}
	return out
}

// pieces returns the physical makeup of guest range [g, g+n) of a view.
func (v *viewState) pieces(g, n int64) []piece {
	var out []piece
	add := func(p pos, l int64) {
		if k := len(out); k > 0 {
			last := &out[k-1]
			if last.at.key == p.key && (p.key == zeroKey || last.at.off+last.len == p.off) {
				last.len += l
				return
			}
		}
		out = append(out, piece{p, l})
	}
	end := g + n
	i := sort.Search(len(v.ext), func(i int) bool { return v.runEnd(i) > g })
	cur := g
	for i < len(v.ext) && cur < end {
		e := v.ext[i]
		if e.Offset > cur {
			gap := min(e.Offset, end) - cur
			add(pos{zeroKey, 0}, gap)
			cur += gap
			if cur >= end {
				break
			}
		}
		// Inside a repeating record, each repetition reads the same
		// bytes: the delta is taken within one repetition.
		delta := (cur - e.Offset) % e.Length
		l := min(e.Length-delta, end-cur)
		p, _ := identity(e, v.files[i], v.view.ID, delta)
		add(p, l)
		cur += l
		if cur >= v.runEnd(i) {
			i++
		}
	}
	if cur < end {
		add(pos{zeroKey, 0}, end-cur)
	}
	return out
}

func samePieces(a, b []piece) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
