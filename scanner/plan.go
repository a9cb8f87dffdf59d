package scanner

// planner decides which guest ranges of each view still need scanning.
//
// A match is at most margin bytes long. A match starting at physical
// position x is therefore fully determined by the margin bytes from x on.
// When x lies at least margin bytes before the end of a physically
// contiguous segment, those bytes are the same in every view that maps x:
// such "interior" positions are scanned once, in whichever view comes first,
// and remembered in done. The last margin bytes of a segment continue into
// whatever the view maps next; they are scanned again unless an earlier view
// had the very same junction (same physical end, same physical next segment
// at least margin long), remembered in junctions.
type planner struct {
	margin    int64
	done      map[physKey]*spanSet
	junctions map[junction]bool
	// byFile counts the bytes planned for scanning per host file, so that a
	// report can show each backing file was read about once.
	byFile map[string]int64
}

type junction struct {
	end  pos // physical position just past the segment
	next pos // physical start of the next segment, zeroKey for a hole
}

func newPlanner(margin int64) *planner {
	return &planner{margin: margin, done: map[physKey]*spanSet{}, junctions: map[junction]bool{}, byFile: map[string]int64{}}
}

// plan returns the guest ranges of v in which match starts must be reported.
func (p *planner) plan(v *viewState) []span {
	segs := v.segments()
	var out []span
	for i, s := range segs {
		interior := max(s.len-p.margin, 0)
		if !s.dedup {
			out = appendRange(out, s.guest, s.end())
			p.byFile[s.file] += s.len
			continue
		}
		set := p.done[s.start.key]
		if set == nil {
			set = &spanSet{}
			p.done[s.start.key] = set
		}
		if interior > 0 {
			for _, m := range set.missing(s.start.off, s.start.off+interior) {
				g := s.guest + (m.start - s.start.off)
				out = appendRange(out, g, g+(m.end-m.start))
				p.byFile[s.file] += m.end - m.start
			}
			set.add(s.start.off, s.start.off+interior)
		}
		// The tail: match starts whose bytes may run into the next segment.
		j := junction{end: pos{s.start.key, s.start.off + s.len}, next: pos{zeroKey, 0}}
		reusable := true
		if s.next != nil {
			// The first repetition of an aliased record: what follows
			// is the record again, as long as the record itself.
			j.next = *s.next
			reusable = s.nextLen >= p.margin
		} else if i+1 < len(segs) && segs[i+1].guest == s.end() {
			n := segs[i+1]
			j.next = n.start
			reusable = n.dedup && n.len >= p.margin
		}
		if reusable && p.junctions[j] {
			continue
		}
		out = appendRange(out, s.guest+interior, s.end())
		p.byFile[s.file] += s.len - interior
		if reusable {
			p.junctions[j] = true
		}
	}
	return out
}
