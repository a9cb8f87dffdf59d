package guestfs

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/lvm"
)

// LVM2 logical volumes are partitions of their own ("vg0/root"), each with
// its filesystem. A linear LV is one run of extents on one PV, a striped
// one alternates chunks between PVs, and an LV may have several segments:
// an LV is not contiguous on the disk. Two mappings join them:
//
//   - lvReader maps an LV offset to its PV's bytes, to read the LV's
//     filesystem;
//   - pvLayout maps a PV offset back to (LV, LV offset), for Locate.
//
// The VG's metadata comes from the PV with the highest seqno among the VG's
// PVs on this disk. Extents on a PV that is not on this disk (a VG spread
// over several disks) cannot be read: the LV is reported partial and reads
// there fail. Thin volumes are read through their pool (thinmap.go);
// old-style snapshots, mirrors and RAID are reported unsupported. Logical
// volumes that older metadata
// copies in the metadata area still name, and the current metadata no
// longer does, were removed: their extents (those no current LV took
// since) are free space of the VG, reported as partitions of type
// "lvm2:removed" and located with state "free".

// pvLayout says what each byte of a partition holding a PV belongs to.
type pvLayout struct {
	pv    *lvm.PV
	r     io.ReaderAt
	owner *partition // the partition (or the whole disk) that holds the PV
	size  int64
	vg    *lvm.VG   // the VG's current metadata, once analyzeLVM ran
	ref   lvm.PVRef // this PV in vg
	areas []pvArea  // sorted by off
}

// pvArea is one run of PV bytes that belongs to an LV (one stripe of one
// segment) or to a removed LV.
type pvArea struct {
	off, n int64 // PV byte range
	lv     *partition
	seg    *lvSegment // nil for a removed LV
	stripe int
}

// lvSegment maps n LV bytes from start to its stripes.
type lvSegment struct {
	start, n   int64
	stripeSize int64 // bytes per chunk; 0 with one stripe
	stripes    []lvStripe
}

// lvStripe is one stripe's area: on pv (nil when that PV is not on this
// disk) from PV byte off.
type lvStripe struct {
	pv     *pvLayout
	pvName string
	off    int64
}

// stripeLen is the bytes of one stripe of the segment.
func (s *lvSegment) stripeLen() int64 { return s.n / int64(len(s.stripes)) }

// toPV maps segment offset o to (stripe, PV offset) and says how many bytes
// from there stay contiguous.
func (s *lvSegment) toPV(o int64) (stripe int, pvOff, contiguous int64) {
	if len(s.stripes) == 1 {
		return 0, s.stripes[0].off + o, s.n - o
	}
	chunk := o / s.stripeSize
	stripe = int(chunk % int64(len(s.stripes)))
	row := chunk / int64(len(s.stripes))
	within := o % s.stripeSize
	return stripe, s.stripes[stripe].off + row*s.stripeSize + within, s.stripeSize - within
}

// fromPV maps byte q of stripe i's area back to a segment offset.
func (s *lvSegment) fromPV(i int, q int64) int64 {
	if len(s.stripes) == 1 {
		return q
	}
	row, within := q/s.stripeSize, q%s.stripeSize
	return (row*int64(len(s.stripes))+int64(i))*s.stripeSize + within
}

// lvReader reads a logical volume through its segments.
type lvReader struct {
	name string
	size int64
	segs []*lvSegment // sorted by start
}

func (r *lvReader) ReadAt(b []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("%s: negative offset %d", r.name, off)
	}
	done := 0
	for done < len(b) {
		pos := off + int64(done)
		if pos >= r.size {
			return done, io.EOF
		}
		i, _ := slices.BinarySearchFunc(r.segs, pos+1, func(s *lvSegment, t int64) int { return cmp.Compare(s.start, t) })
		if i == 0 || pos >= r.segs[i-1].start+r.segs[i-1].n {
			return done, fmt.Errorf("%s: offset %d is in no segment", r.name, pos)
		}
		s := r.segs[i-1]
		stripe, pvOff, contiguous := s.toPV(pos - s.start)
		st := s.stripes[stripe]
		n := min(int64(len(b)-done), contiguous)
		if st.pv == nil {
			return done, fmt.Errorf("%s: offset %d is on PV %s, which is not on this disk", r.name, pos, st.pvName)
		}
		got, err := st.pv.r.ReadAt(b[done:done+int(n)], pvOff)
		done += got
		if int64(got) < n {
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return done, fmt.Errorf("%s: offset %d (PV %s offset %d): %w", r.name, pos, st.pvName, pvOff, err)
		}
	}
	return done, nil
}

// analyzeLVM maps the logical volumes of every VG whose PVs are among the
// partitions, and analyzes each LV's filesystem.
func (m *Map) analyzeLVM(ctx context.Context) error {
	var order []string
	groups := map[string][]*pvLayout{}
	owner := map[*pvLayout]*partition{}
	for _, p := range m.parts {
		if p.pv == nil || p.pv.pv.VG == nil {
			continue
		}
		id := p.pv.pv.VG.ID
		if groups[id] == nil {
			order = append(order, id)
		}
		groups[id] = append(groups[id], p.pv)
		owner[p.pv] = p
	}
	for _, id := range order {
		if err := m.analyzeVG(ctx, groups[id], owner, ""); err != nil {
			return err
		}
	}
	return nil
}

// analyzeNestedLVM reads the volume groups of the VMs whose disks are
// kept in logical volumes: a PV in a partition of such a disk (Ubuntu's
// installer puts its root on LVM). Their LVs are named after the disk's
// LV ("pve/vm-100-disk-0/ubuntu-vg/ubuntu-lv"), and so are their PVs
// grouped: two VMs cloned from one template have VGs of the same name
// and UUID. One level: a PV in those LVs is not read.
func (m *Map) analyzeNestedLVM(ctx context.Context) error {
	var order []string
	groups := map[string][]*pvLayout{}
	owner := map[*pvLayout]*partition{}
	prefix := map[string]string{}
	for _, p := range m.lvs {
		if p.pv == nil || p.pv.pv.VG == nil || p.parent == nil {
			continue
		}
		key := p.parent.info.Name + "\x00" + p.pv.pv.VG.ID
		if groups[key] == nil {
			order = append(order, key)
			prefix[key] = p.parent.info.Name + "/"
		}
		groups[key] = append(groups[key], p.pv)
		owner[p.pv] = p
	}
	m.nesting = true
	defer func() { m.nesting, m.nestingOrigin = false, "" }()
	for _, key := range order {
		m.nestingOrigin = owner[groups[key][0]].origin
		if err := m.analyzeVG(ctx, groups[key], owner, prefix[key]); err != nil {
			return err
		}
	}
	return nil
}

// analyzeVG maps the LVs of the VG whose PVs are pvs, named prefix +
// "vg/lv".
func (m *Map) analyzeVG(ctx context.Context, pvs []*pvLayout, owner map[*pvLayout]*partition, prefix string) error {
	// The newest metadata among this disk's PVs of the VG.
	vg := pvs[0].pv.VG
	for _, l := range pvs {
		if l.pv.VG.Seqno > vg.Seqno {
			vg = l.pv.VG
		}
	}
	if prefix != "" {
		named := *vg
		named.Name = prefix + vg.Name
		vg = &named
	}
	byName := map[string]*pvLayout{}
	for _, ref := range vg.PVs {
		for _, l := range pvs {
			if l.pv.UUID == ref.UUID {
				l.vg, l.ref = vg, ref
				byName[ref.Name] = l
			}
		}
	}
	for _, l := range pvs {
		if l.vg == nil {
			p := owner[l]
			p.info.Note = joinNote(p.info.Note, fmt.Sprintf("PV not listed in the newest metadata of VG %s (seqno %d)", vg.Name, vg.Seqno))
		}
	}
	// LVs that belong to another LV: thin-pool data and metadata, the
	// COW store of an old-style snapshot.
	roles := map[string]string{}
	for _, lv := range vg.LVs {
		for _, s := range lv.Segments {
			for _, r := range []struct{ name, role string }{
				{s.Pool, "data of " + s.Type + " " + lv.Name},
				{s.Metadata, "metadata of " + s.Type + " " + lv.Name},
				{s.COWStore, "copy-on-write store of " + s.Type + " " + lv.Name},
			} {
				if r.name != "" && s.Type != "thin" { // a thin volume's pool is an LV of its own
					roles[r.name] = r.role
				}
			}
		}
	}
	current := map[string]bool{}
	for _, lv := range vg.LVs {
		if err := ctx.Err(); err != nil {
			return err
		}
		current[lv.ID] = true
		m.addLV(ctx, vg, lv, byName, roles[lv.Name])
	}
	m.addThinVolumes(ctx, vg)
	if err := m.addRemovedLVs(ctx, vg, pvs, owner, byName, current); err != nil {
		return err
	}
	for _, l := range pvs {
		slices.SortFunc(l.areas, func(a, b pvArea) int { return cmp.Compare(a.off, b.off) })
	}
	return nil
}

// segments maps an LV's striped segments to PV areas. missing lists PVs
// the LV uses that are not on this disk; unsupported, segment types that
// are not striped.
func segments(vg *lvm.VG, lv lvm.LV, byName map[string]*pvLayout) (segs []*lvSegment, missing, unsupported []string) {
	es := vg.ExtentSize
	for _, s := range lv.Segments {
		if s.Type != "striped" {
			if !slices.Contains(unsupported, s.Type) {
				unsupported = append(unsupported, s.Type)
			}
			continue
		}
		n := int64(len(s.Stripes))
		seg := &lvSegment{start: s.StartExtent * es, n: s.ExtentCount * es}
		if n > 1 {
			seg.stripeSize = s.StripeSize
			if es%s.StripeSize != 0 {
				unsupported = append(unsupported, fmt.Sprintf("stripe size %d", s.StripeSize))
				continue
			}
		}
		for _, st := range s.Stripes {
			l := byName[st.PV]
			ref, ok := vg.PV(st.PV)
			if l == nil || !ok {
				if !slices.Contains(missing, st.PV) {
					missing = append(missing, st.PV)
				}
				seg.stripes = append(seg.stripes, lvStripe{pvName: st.PV})
				continue
			}
			seg.stripes = append(seg.stripes, lvStripe{pv: l, pvName: st.PV, off: ref.PEStart + st.StartExtent*es})
		}
		segs = append(segs, seg)
	}
	return segs, missing, unsupported
}

// locateIn places byte lo of logical volume lv (loc names lv): in a thin
// pool's data volume, in the thin volume that maps that block (free when
// none does); in a VM's disk in the volume, in its partition (unknown
// outside them: its table, gaps); then in the filesystem.
func (lv *partition) locateIn(lo int64, loc Location) Location {
	if lv.pool != nil {
		vol, vlo, ok := lv.pool.owner(lo)
		if !ok {
			loc.State = StateFree // a block of the pool no thin volume maps
			return loc
		}
		lv, lo = vol, vlo
		loc.Partition, loc.FS = lv.info.Name, lv.info.FS
	}
	if len(lv.subs) > 0 {
		loc.State = StateUnknown
		sub := lv.subAt(lo)
		if sub == nil {
			return loc
		}
		lv, lo = sub, lo-sub.lvOff
		loc.Partition, loc.FS = lv.info.Name, lv.info.FS
		if lv.pv != nil { // the VM's own volume group
			return lv.pv.locate(lo, loc)
		}
	}
	for _, x := range lv.excluded {
		if lo >= x[0] && lo < x[1] {
			loc.Excluded = lv.excludeWhy
		}
	}
	if lv.idx != nil {
		loc.setPlace(lv.idx.locate(lo))
	} else {
		loc.State = StateUnknown
	}
	return loc
}

// addLV adds logical volume lv as a partition and maps its extents.
func (m *Map) addLV(ctx context.Context, vg *lvm.VG, lv lvm.LV, byName map[string]*pvLayout, role string) {
	p := &partition{info: PartitionInfo{Name: vg.Name + "/" + lv.Name, Start: -1}, nested: m.nesting, origin: m.nestingOrigin}
	segs, missing, unsupported := segments(vg, lv, byName)
	var size int64
	p.info.Type = "lvm2:linear"
	for _, s := range segs {
		size = max(size, s.start+s.n)
		if len(s.stripes) > 1 {
			p.info.Type = "lvm2:striped"
		}
		for i, st := range s.stripes {
			if st.pv == nil {
				continue
			}
			st.pv.areas = append(st.pv.areas, pvArea{off: st.off, n: s.stripeLen(), lv: p, seg: s, stripe: i})
			if p.info.Start < 0 {
				p.info.Start = m.diskOffset(st.pv, st.off)
			}
		}
	}
	p.info.Size = size
	if len(segs) > 0 {
		// Also for the LVs a thin pool reads (its data and metadata).
		p.lv = &lvReader{name: p.info.Name, size: size, segs: segs}
	}
	m.lvs = append(m.lvs, p)
	switch {
	case len(unsupported) > 0:
		p.info.Type = "lvm2:" + strings.Join(unsupported, ",")
		p.info.Note = fmt.Sprintf("%s logical volume: unsupported, findings there are unattributed", strings.Join(unsupported, ", "))
		return
	case role != "":
		p.info.Note = fmt.Sprintf("%s: unsupported, findings there are unattributed", role)
		return
	case len(segs) == 0:
		p.info.Note = "no segments"
		return
	}
	if len(missing) > 0 {
		p.info.Note = fmt.Sprintf("extents on PV %s, which is not on this disk, cannot be read", strings.Join(missing, ", "))
	}
	m.analyzeVolume(ctx, p.lv, p, true)
}

// Bounds on what removed logical volumes add. Hostile metadata can name,
// in an older copy, an LV over extents that a current LV splits into a
// million one-extent stripes (the 16 MiB metadata area holds that many),
// and many such LVs.
const maxRemovedAreas = 1 << 20 // PV areas of one VG's removed LVs, together (the default of budgets.removedAreas)

const maxRemovedNoteRanges = 16 // disk ranges a removed LV's note lists

// addRemovedLVs lists the LVs that older metadata copies name and the
// current metadata does not, with their extents that no current LV uses,
// in at most m.budgets.removedAreas areas for the VG; past them, the
// note of the PV's partition (owner) says how many volumes were not
// mapped (their bytes are still scanned, and located as free space of
// the VG).
func (m *Map) addRemovedLVs(ctx context.Context, vg *lvm.VG, pvs []*pvLayout, owner map[*pvLayout]*partition, byName map[string]*pvLayout, current map[string]bool) error {
	done := map[string]bool{}
	covered := map[*pvLayout]coverage{} // each PV's current LV areas, merged once
	left := m.budgets.removedAreas
	unmapped := 0 // removed LVs not mapped once the areas ran out
	steps := 0
	tick := func() error { // a cancelled scan stops within 1,024 steps
		steps++
		if steps%1024 == 1 {
			return ctx.Err()
		}
		return nil
	}
	for _, l := range pvs {
		for _, old := range l.pv.Old {
			for _, lv := range old.LVs {
				if err := tick(); err != nil {
					return err
				}
				if current[lv.ID] || done[lv.ID] {
					continue
				}
				done[lv.ID] = true
				if left == 0 {
					unmapped++
					continue
				}
				p := &partition{info: PartitionInfo{
					Name: vg.Name + "/" + lv.Name, Type: "lvm2:removed", Start: -1,
					Note: fmt.Sprintf("removed logical volume: in metadata seqno %d, gone from seqno %d; its extents no current volume uses are free space of the VG, findings there are reported free", old.Seqno, vg.Seqno),
				}}
				segs, _, _ := segments(old, lv, byName)
				var ranges []string
				listed, cut := 0, false
				for _, s := range segs {
					for _, st := range s.stripes {
						if err := tick(); err != nil {
							return err
						}
						if st.pv == nil || cut {
							continue
						}
						c, ok := covered[st.pv]
						if !ok {
							c = st.pv.coverage()
							covered[st.pv] = c
						}
						cut = c.unused(st.off, s.stripeLen(), func(a, z int64) bool {
							if left == 0 {
								return false
							}
							left--
							st.pv.areas = append(st.pv.areas, pvArea{off: a, n: z - a, lv: p})
							p.info.Size += z - a
							if listed++; listed <= maxRemovedNoteRanges {
								start := m.diskOffset(st.pv, a)
								if p.info.Start < 0 {
									p.info.Start = start
								}
								ranges = append(ranges, fmt.Sprintf("%d-%d", start, start+z-a-1))
							}
							return true
						})
					}
				}
				if listed == 0 {
					continue // every extent reused, or on other disks
				}
				p.info.Note += " (disk bytes " + strings.Join(ranges, ", ")
				if listed > maxRemovedNoteRanges {
					p.info.Note += fmt.Sprintf(" and %d more ranges", listed-maxRemovedNoteRanges)
				}
				p.info.Note += ")"
				if cut {
					p.info.Note += fmt.Sprintf("; the VG's removed volumes reached their cap of %d PV areas: this volume's further extents are not mapped (their bytes are scanned, and located as free space of the VG)", m.budgets.removedAreas)
				}
				m.lvs = append(m.lvs, p)
			}
		}
	}
	if unmapped > 0 {
		p := owner[pvs[0]]
		p.info.Note = joinNote(p.info.Note, fmt.Sprintf("%d more removed logical volumes of VG %s are not listed: the removed volumes reached their cap of %d PV areas (their bytes are scanned, and located as free space of the VG)", unmapped, vg.Name, m.budgets.removedAreas))
	}
	return nil
}

// coverage is the PV byte ranges [start, end) that current LVs use, sorted
// and merged: starts and ends both increase.
type coverage [][2]int64

// coverage merges the PV's current LV areas (one sort, one sweep).
func (l *pvLayout) coverage() coverage {
	var c coverage
	for _, a := range l.areas {
		if a.seg != nil && a.n > 0 { // a nil seg: another removed LV
			c = append(c, [2]int64{a.off, a.off + a.n})
		}
	}
	slices.SortFunc(c, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	out := c[:0]
	for _, r := range c {
		if n := len(out); n > 0 && r[0] <= out[n-1][1] {
			out[n-1][1] = max(out[n-1][1], r[1])
			continue
		}
		out = append(out, r)
	}
	return out
}

// unused calls fn, in order, with each part [a, z) of PV bytes [off,
// off+n) that c does not cover, until fn returns false; then it returns
// true (cut). Each covered range it visits ends one part, so it takes
// O(log len(c)) steps plus one per part.
func (c coverage) unused(off, n int64, fn func(a, z int64) bool) (cut bool) {
	if n <= 0 {
		return false
	}
	end := off + n
	i, _ := slices.BinarySearchFunc(c, off+1, func(r [2]int64, t int64) int { return cmp.Compare(r[1], t) }) // the first range that ends past off
	pos := off
	for ; i < len(c) && c[i][0] < end; i++ {
		if c[i][0] > pos && !fn(pos, c[i][0]) {
			return true
		}
		pos = max(pos, c[i][1])
	}
	if pos < end && !fn(pos, end) {
		return true
	}
	return false
}

// diskOffset converts a PV offset to a guest offset.
func (m *Map) diskOffset(l *pvLayout, off int64) int64 {
	if o := l.owner; o != nil && (o.parent != nil || o.lv != nil || o.thin != nil) {
		// A PV in a VM's disk kept in an LV: through that LV.
		if g := m.appendGuestRuns(nil, o, fsys.Run{Off: off, Len: 1}); len(g) > 0 {
			return g[0].Off
		}
		return -1
	}
	for _, p := range m.parts {
		if p.pv == l {
			return p.info.Start + off
		}
	}
	return -1
}

// locate places PV offset o: in a logical volume (then in its
// filesystem), in a removed LV or the VG's free space (free), in LVM's
// label and metadata (allocated), or past the PV's last extent (unknown).
func (l *pvLayout) locate(o int64, loc Location) Location {
	i, _ := slices.BinarySearchFunc(l.areas, o+1, func(a pvArea, t int64) int { return cmp.Compare(a.off, t) })
	// Areas of removed LVs may overlap nothing else; look back a little
	// in case hostile metadata made areas overlap.
	for j := i - 1; j >= 0 && j >= i-4; j-- {
		a := l.areas[j]
		if o < a.off || o >= a.off+a.n {
			continue
		}
		lv := a.lv
		loc.Partition, loc.FS = lv.info.Name, lv.info.FS
		if a.seg == nil {
			loc.State = StateFree
			return loc
		}
		return lv.locateIn(a.seg.start+a.seg.fromPV(a.stripe, o-a.off), loc)
	}
	if l.vg == nil {
		return loc
	}
	dataEnd := l.ref.PEStart + l.ref.PECount*l.vg.ExtentSize
	switch {
	case o < l.ref.PEStart:
		loc.State = StateAllocated // label, metadata area, alignment
	case o < dataEnd:
		loc.State = StateFree // an extent no LV uses
	}
	for _, a := range l.pv.MetadataAreas {
		if o >= a[0] && o < a[1] {
			loc.State = StateAllocated
		}
	}
	return loc
}
