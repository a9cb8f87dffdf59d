// Package lvm reads LVM2 physical volumes for package guestfs: the PV label
// (LABELONE, in one of the first four sectors), the metadata area's header
// and the current metadata text it points at, and the older metadata copies
// still in the area's circular buffer. It turns the text into a volume
// group model: its PVs, and its logical volumes as segments of physical
// extents. Mapping those to disk bytes is guestfs's job.
//
// Every structure comes from an untrusted image: offsets and sizes are
// checked against the device size, metadata text is bounded and parsed
// with depth and item limits, and errors name the device and the offset.
package lvm

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	labelID        = "LABELONE"
	labelType      = "LVM2 001"
	mdaMagic       = " LVM2 x[5A%r0N*>"
	mdaHeaderSize  = 512
	sector         = 512
	pvUUIDLen      = 32
	maxDiskLocns   = 16
	maxMetadata    = 16 << 20 // a metadata area larger than this is not read
	maxOldCopies   = 64
	maxExtentCount = 1 << 40
)

var le = binary.LittleEndian

// ErrNotPV is returned when no LVM2 label is found.
var ErrNotPV = errors.New("lvm: no LVM2 label")

// Probe reports an LVM2 label in one of the first four sectors of head.
func Probe(head []byte) bool {
	for s := 0; s < 4; s++ {
		b := head[min(len(head), s*sector):]
		if len(b) >= 0x20 && string(b[:8]) == labelID && string(b[0x18:0x20]) == labelType {
			return true
		}
	}
	return false
}

// PV is one physical volume as its label and metadata area describe it.
type PV struct {
	UUID      string // 32 characters, without dashes
	DevSize   int64
	DataStart int64 // byte offset of the first physical extent (pe_start)
	// MetadataAreas are the [start, end) byte ranges of the metadata
	// areas, and the label sector: LVM's own bytes, not extents.
	MetadataAreas [][2]int64
	// VG is the volume group of the current metadata, nil when the PV
	// belongs to no VG (or its metadata cannot be read).
	VG *VG
	// Old lists the older metadata copies still in the metadata area,
	// newest first: they may name logical volumes removed since.
	Old   []*VG
	Notes []string
}

// VG is one volume group's metadata.
type VG struct {
	Name       string
	ID         string
	Seqno      int64
	ExtentSize int64 // bytes
	PVs        []PVRef
	LVs        []LV
}

// PVRef is a physical volume as the VG metadata names it.
type PVRef struct {
	Name    string // "pv0", the name segments use
	UUID    string // without dashes
	PEStart int64  // bytes
	PECount int64
}

// LV is one logical volume.
type LV struct {
	Name     string
	ID       string
	Visible  bool
	Segments []Segment
}

// Segment maps ExtentCount logical extents from StartExtent.
type Segment struct {
	StartExtent int64
	ExtentCount int64
	// Type is "striped" (linear is one stripe) or what LVM names the
	// others: "thin-pool", "thin", "snapshot", "mirror", "raid1", ...
	Type       string
	StripeSize int64 // bytes, for more than one stripe
	Stripes    []Stripe
	// Origin and COWStore name the LVs of an old-style snapshot.
	Origin, COWStore string
	// Pool and Metadata name the sub-LVs of a thin pool (and Pool the
	// pool of a thin volume).
	Pool, Metadata string
	// DeviceID is a thin volume's device in its pool's metadata.
	DeviceID int64
}

// Stripe is one stripe of a segment: its PV and first physical extent.
type Stripe struct {
	PV          string // the PVRef name
	StartExtent int64
}

// ReadPV reads the PV label and metadata of the device r[0:size). name is
// for errors. A PV whose metadata cannot be read is returned with notes.
func ReadPV(r io.ReaderAt, size int64, name string) (*PV, error) {
	b := make([]byte, 4*sector)
	if size < int64(len(b)) {
		return nil, fmt.Errorf("%s: %w", name, ErrNotPV)
	}
	if err := fsys.ReadFull(r, b, 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "lvm: read label")
	}
	for s := 0; s < 4; s++ {
		l := b[s*sector : (s+1)*sector]
		if string(l[:8]) != labelID || string(l[0x18:0x20]) != labelType {
			continue
		}
		return parseLabel(r, size, name, l, int64(s*sector))
	}
	return nil, fmt.Errorf("%s: %w", name, ErrNotPV)
}

func parseLabel(r io.ReaderAt, size int64, name string, l []byte, at int64) (*PV, error) {
	hdr := int64(le.Uint32(l[0x14:]))
	if hdr < 0x20 || hdr+pvUUIDLen+8 > sector {
		return nil, model.Errorf(name, at+0x14, "lvm: label contents at %d", hdr)
	}
	h := l[hdr:]
	pv := &PV{UUID: string(h[:pvUUIDLen]), DevSize: int64(le.Uint64(h[pvUUIDLen:]))}
	pv.MetadataAreas = append(pv.MetadataAreas, [2]int64{0, 4 * sector})
	// Two zero-terminated lists of (offset, size): data areas, then
	// metadata areas.
	pos := int(hdr) + pvUUIDLen + 8
	var lists [2][][2]int64
	for list := 0; list < 2; list++ {
		for n := 0; ; n++ {
			if pos+16 > sector || n > maxDiskLocns {
				return nil, model.Errorf(name, at+int64(pos), "lvm: disk area list runs off the label sector")
			}
			off, sz := int64(le.Uint64(l[pos:])), int64(le.Uint64(l[pos+8:]))
			pos += 16
			if off == 0 {
				break
			}
			// A data area may lie past the end of a truncated image (its
			// extents are then unreadable); a metadata area must be here.
			if off < 0 || sz < 0 || sz > maxBytes || (list == 1 && (off >= size || sz > size-off)) {
				return nil, model.Errorf(name, at+int64(pos-16), "lvm: disk area %d+%d outside the %d-byte device", off, sz, size)
			}
			lists[list] = append(lists[list], [2]int64{off, sz})
		}
	}
	if len(lists[0]) == 0 {
		return nil, model.Errorf(name, at, "lvm: PV label lists no data area")
	}
	pv.DataStart = lists[0][0][0]
	for _, a := range lists[1] {
		pv.MetadataAreas = append(pv.MetadataAreas, [2]int64{a[0], a[0] + a[1]})
		if pv.VG != nil {
			continue // the first readable area gives the metadata
		}
		vg, old, err := readMetadataArea(r, name, a[0], a[1])
		if err != nil {
			pv.Notes = append(pv.Notes, err.Error())
			continue
		}
		pv.VG, pv.Old = vg, old
	}
	return pv, nil
}

// readMetadataArea reads the mda header at off, the current metadata text
// its first raw location points at, and every older copy still in the
// circular buffer.
func readMetadataArea(r io.ReaderAt, name string, off, size int64) (*VG, []*VG, error) {
	if size <= mdaHeaderSize || size > maxMetadata {
		return nil, nil, model.Errorf(name, off, "lvm: metadata area of %d bytes not read", size)
	}
	area := make([]byte, size)
	if err := fsys.ReadFull(r, area, off); err != nil {
		return nil, nil, model.Wrapf(err, name, off, "lvm: read metadata area")
	}
	if string(area[4:20]) != mdaMagic {
		return nil, nil, model.Errorf(name, off, "lvm: bad metadata area magic")
	}
	if start := int64(le.Uint64(area[24:])); start != off {
		return nil, nil, model.Errorf(name, off, "lvm: metadata area header says it starts at %d", start)
	}
	// raw_locn[0]: offset (from the area's start), size, checksum, flags.
	locOff, locSize := int64(le.Uint64(area[40:])), int64(le.Uint64(area[48:]))
	if locOff == 0 {
		return nil, nil, nil // a PV outside any VG
	}
	if locOff < mdaHeaderSize || locOff >= size || locSize <= 0 || locSize > size-mdaHeaderSize {
		return nil, nil, model.Errorf(name, off+40, "lvm: metadata location %d+%d outside the %d-byte area", locOff, locSize, size)
	}
	// The buffer is circular: text that reaches the end goes on right
	// after the header.
	text := make([]byte, 0, locSize)
	first := min(locSize, size-locOff)
	text = append(text, area[locOff:locOff+first]...)
	text = append(text, area[mdaHeaderSize:mdaHeaderSize+locSize-first]...)
	cur, err := parseVG(string(bytes.TrimRight(text, "\x00")))
	if err != nil {
		return nil, nil, model.Wrapf(err, name, off+locOff, "lvm: current metadata")
	}
	return cur, oldCopies(area[mdaHeaderSize:], cur), nil
}

// oldCopies finds the other metadata texts in the circular buffer (LVM
// writes each new copy after the last one, NUL-terminated), keeps those of
// the same VG with a lower seqno, newest first.
func oldCopies(buf []byte, cur *VG) []*VG {
	var out []*VG
	seen := map[int64]bool{cur.Seqno: true}
	for _, chunk := range bytes.Split(buf, []byte{0}) {
		text := string(chunk)
		// A copy starts with the VG's name and an opening brace.
		i := strings.Index(text, cur.Name+" {")
		if i < 0 {
			continue
		}
		vg, err := parseVG(text[i:])
		if err != nil || vg.ID != cur.ID || vg.Seqno >= cur.Seqno || seen[vg.Seqno] {
			continue
		}
		seen[vg.Seqno] = true
		out = append(out, vg)
		if len(out) >= maxOldCopies {
			break
		}
	}
	slices.SortFunc(out, func(a, b *VG) int { return cmp.Compare(b.Seqno, a.Seqno) })
	return out
}

// parseVG turns metadata text into a VG: the one top-level section that
// has an id and a seqno.
func parseVG(text string) (*VG, error) {
	top, err := parseText(text)
	if err != nil {
		return nil, err
	}
	for _, s := range top.subs {
		id, okID := s.str("id")
		seq, okSeq := s.num("seqno")
		if !okID || !okSeq {
			continue
		}
		return vgFromSection(s, id, seq)
	}
	return nil, errors.New("no volume group in the metadata text")
}

func vgFromSection(s *section, id string, seq int64) (*VG, error) {
	vg := &VG{Name: s.name, ID: id, Seqno: seq}
	es, ok := s.num("extent_size")
	if !ok || es <= 0 || es > 1<<32 {
		return nil, fmt.Errorf("VG %s: extent size %d", s.name, es)
	}
	vg.ExtentSize = es * sector
	if pvs := s.sub("physical_volumes"); pvs != nil {
		for _, p := range pvs.subs {
			uuid, _ := p.str("id")
			start, _ := p.num("pe_start")
			count, _ := p.num("pe_count")
			if start < 0 || start > 1<<50 || count < 0 || count > maxExtentCount {
				return nil, fmt.Errorf("VG %s: PV %s: pe_start %d, pe_count %d", s.name, p.name, start, count)
			}
			vg.PVs = append(vg.PVs, PVRef{Name: p.name, UUID: strings.ReplaceAll(uuid, "-", ""), PEStart: start * sector, PECount: count})
		}
	}
	if lvs := s.sub("logical_volumes"); lvs != nil {
		for _, l := range lvs.subs {
			lv, err := lvFromSection(l)
			if err != nil {
				return nil, fmt.Errorf("VG %s: %w", s.name, err)
			}
			vg.LVs = append(vg.LVs, lv)
		}
	}
	return vg, vg.checkSizes()
}

// maxBytes bounds every byte offset and size the metadata implies, so that
// extents times the extent size never overflow.
const maxBytes = 1 << 62

// checkSizes refuses extent counts whose byte sizes would pass maxBytes.
func (vg *VG) checkSizes() error {
	limit := maxBytes / vg.ExtentSize
	for _, p := range vg.PVs {
		if p.PECount > limit || p.PEStart > maxBytes-p.PECount*vg.ExtentSize {
			return fmt.Errorf("VG %s: PV %s: %d extents from byte %d", vg.Name, p.Name, p.PECount, p.PEStart)
		}
	}
	for _, lv := range vg.LVs {
		for _, s := range lv.Segments {
			if s.StartExtent > limit-s.ExtentCount {
				return fmt.Errorf("VG %s: LV %s: extents %d+%d", vg.Name, lv.Name, s.StartExtent, s.ExtentCount)
			}
			for _, st := range s.Stripes {
				if st.StartExtent > limit-s.ExtentCount {
					return fmt.Errorf("VG %s: LV %s: stripe on %s from extent %d", vg.Name, lv.Name, st.PV, st.StartExtent)
				}
			}
		}
	}
	return nil
}

func lvFromSection(l *section) (LV, error) {
	lv := LV{Name: l.name, Visible: slices.Contains(l.strings("status"), "VISIBLE")}
	lv.ID, _ = l.str("id")
	for _, sg := range l.subs {
		if !strings.HasPrefix(sg.name, "segment") {
			continue
		}
		seg := Segment{}
		seg.StartExtent, _ = sg.num("start_extent")
		seg.ExtentCount, _ = sg.num("extent_count")
		seg.Type, _ = sg.str("type")
		seg.Origin, _ = sg.str("origin")
		seg.COWStore, _ = sg.str("cow_store")
		seg.Pool, _ = sg.str("pool")
		seg.Metadata, _ = sg.str("metadata")
		if seg.Type == "thin" {
			seg.Pool, _ = sg.str("thin_pool")
			seg.DeviceID, _ = sg.num("device_id")
		}
		if seg.StartExtent < 0 || seg.ExtentCount <= 0 || seg.StartExtent > maxExtentCount || seg.ExtentCount > maxExtentCount {
			return LV{}, fmt.Errorf("LV %s: %s: extents %d+%d", l.name, sg.name, seg.StartExtent, seg.ExtentCount)
		}
		if seg.Type == "striped" {
			ss, _ := sg.num("stripe_size")
			if ss < 0 || ss > 1<<32 {
				return LV{}, fmt.Errorf("LV %s: %s: stripe size %d", l.name, sg.name, ss)
			}
			seg.StripeSize = ss * sector
			list, _ := sg.list("stripes")
			for i := 0; i+1 < len(list); i += 2 {
				if !list[i].isStr || list[i+1].isStr || list[i+1].isArr || list[i+1].num < 0 || list[i+1].num > maxExtentCount {
					return LV{}, fmt.Errorf("LV %s: %s: bad stripes list", l.name, sg.name)
				}
				seg.Stripes = append(seg.Stripes, Stripe{PV: list[i].str, StartExtent: list[i+1].num})
			}
			n := int64(len(seg.Stripes))
			if n == 0 || seg.ExtentCount%n != 0 || (n > 1 && seg.StripeSize <= 0) {
				return LV{}, fmt.Errorf("LV %s: %s: %d extents in %d stripes of %d bytes", l.name, sg.name, seg.ExtentCount, n, seg.StripeSize)
			}
		}
		lv.Segments = append(lv.Segments, seg)
	}
	slices.SortFunc(lv.Segments, func(a, b Segment) int { return cmp.Compare(a.StartExtent, b.StartExtent) })
	return lv, nil
}

// PV returns the VG's PV named name.
func (vg *VG) PV(name string) (PVRef, bool) {
	for _, p := range vg.PVs {
		if p.Name == name {
			return p, true
		}
	}
	return PVRef{}, false
}
