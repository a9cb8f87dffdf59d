package ntfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// Attribute types (ntfs-3g layout.h ATTR_TYPES).
const (
	attrAttributeList  = 0x20
	attrFileName       = 0x30
	attrData           = 0x80
	attrIndexAlloc     = 0xA0
	attrEnd            = 0xFFFFFFFF
	attrFlagCompressed = 0x0001
)

// MFT record header fields and flags.
const (
	recInUse = 1 << iota
	recDir
	recNamed // has a $FILE_NAME
	recValid // passed the checks: a FILE record
	recExtension
)

const (
	mftRecordInUse = 0x0001
	mftRecordIsDir = 0x0002
	fixupStride    = 512 // NTFS_BLOCK_SIZE: update sequence stride, whatever the sector size
	nsDOS          = 2
)

// record is what the walk and the reader need of one MFT record: its
// flags, its name and parent (from its $FILE_NAME), and its data streams.
type record struct {
	seq       uint16
	flags     uint8
	parent    uint32 // parent directory's record number
	parentSeq uint16
	nameNS    uint8
	nameInst  uint16 // the attribute instance of the chosen $FILE_NAME
	name      string
	// links are the record's other names (hard links), besides the DOS
	// aliases: the walk gives the record once, the reader opens it by any.
	links   []link
	streams []stream
	index   []fsys.Run // a directory's $INDEX_ALLOCATION:$I30 blocks
}

// link is one $FILE_NAME of a record.
type link struct {
	parent    uint32
	parentSeq uint16
	name      string
}

// stream is one $DATA attribute: the unnamed one is the file's data,
// named ones are alternate data streams.
type stream struct {
	name       string
	size, init int64
	resident   bool
	compressed bool
	cuLog      uint8 // a compressed stream's unit: 1<<cuLog clusters
	// runs are device runs. Resident data is one Inline run (or one per
	// piece when the record spans two MFT runs) at the value's place in
	// the record.
	runs []fsys.Run
	// valOff is a resident value's offset in its record, to read it
	// back with the update sequence fixups applied.
	valOff, valLen int
	sized          bool // size and init come from the attribute with lowest VCN 0
}

func (r *record) stream(name string) *stream {
	for i := range r.streams {
		if r.streams[i].name == name {
			return &r.streams[i]
		}
	}
	return nil
}

// fixup checks a record's update sequence array and puts back the two
// bytes that the update sequence number replaced at the end of every
// 512-byte stride.
func fixup(buf []byte) error {
	usaOff, usaCount := int(le.Uint16(buf[4:])), int(le.Uint16(buf[6:]))
	strides := len(buf) / fixupStride
	if usaCount != strides+1 || usaOff < 0x28 || usaOff+2*usaCount > len(buf) {
		return fmt.Errorf("update sequence array at %d, %d entries: %w", usaOff, usaCount, errCorrupt)
	}
	for i := 1; i < usaCount; i++ {
		p := i*fixupStride - 2
		if buf[p] != buf[usaOff] || buf[p+1] != buf[usaOff+1] {
			return fmt.Errorf("stride %d: update sequence number mismatch (torn write): %w", i, errCorrupt)
		}
		copy(buf[p:p+2], buf[usaOff+2*i:])
	}
	return nil
}

// attr is one attribute of a record: b is its bytes, off their offset in
// the record.
type attr struct {
	typ uint32
	off int
	b   []byte
}

func (a attr) nonResident() bool { return a.b[8] != 0 }

func (a attr) name() (string, error) {
	n, o := int(a.b[9]), int(le.Uint16(a.b[10:]))
	if n == 0 {
		return "", nil
	}
	if o+2*n > len(a.b) {
		return "", fmt.Errorf("attribute name at %d: %w", o, errCorrupt)
	}
	return decodeUTF16(a.b[o : o+2*n]), nil
}

// value returns a resident attribute's value and its offset in the
// attribute.
func (a attr) value() ([]byte, int, error) {
	if len(a.b) < 24 {
		return nil, 0, fmt.Errorf("resident attribute of %d bytes: %w", len(a.b), errCorrupt)
	}
	n, o := int(le.Uint32(a.b[16:])), int(le.Uint16(a.b[20:]))
	if o > len(a.b) || n > len(a.b)-o {
		return nil, 0, fmt.Errorf("resident value at %d+%d of a %d-byte attribute: %w", o, n, len(a.b), errCorrupt)
	}
	return a.b[o : o+n], o, nil
}

func decodeUTF16(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = le.Uint16(b[2*i:])
	}
	return string(utf16.Decode(u))
}

// attrs calls fn for each attribute of a fixed-up record, in order.
func attrs(buf []byte, fn func(attr) error) error {
	off := int(le.Uint16(buf[20:]))
	end := min(int(le.Uint32(buf[24:])), len(buf))
	for {
		if off+4 > end {
			return nil // no end marker: take what was there
		}
		typ := le.Uint32(buf[off:])
		if typ == attrEnd {
			return nil
		}
		if off+16 > end {
			return fmt.Errorf("attribute at %d: %w", off, errCorrupt)
		}
		n := int(le.Uint32(buf[off+4:]))
		if n < 16 || n > end-off {
			return fmt.Errorf("attribute at %d of %d bytes: %w", off, n, errCorrupt)
		}
		if err := fn(attr{typ: typ, off: off, b: buf[off : off+n]}); err != nil {
			return err
		}
		off += n
	}
}

// nonResident is the header of a non-resident attribute.
type nonResident struct {
	lowVCN     int64
	size, init int64
	compressed bool
	cuLog      uint8
	runlist    []byte
}

func (a attr) nonResidentHeader() (nonResident, error) {
	if len(a.b) < 64 {
		return nonResident{}, fmt.Errorf("non-resident attribute of %d bytes: %w", len(a.b), errCorrupt)
	}
	h := nonResident{
		lowVCN:     int64(le.Uint64(a.b[16:])),
		size:       int64(le.Uint64(a.b[48:])),
		init:       int64(le.Uint64(a.b[56:])),
		compressed: le.Uint16(a.b[12:])&attrFlagCompressed != 0 && a.b[34] != 0,
		cuLog:      a.b[34],
	}
	rl := int(le.Uint16(a.b[32:]))
	if rl > len(a.b) || h.lowVCN < 0 || h.size < 0 || h.init < 0 {
		return nonResident{}, fmt.Errorf("non-resident attribute: runlist at %d, VCN %d, size %d: %w", rl, h.lowVCN, h.size, errCorrupt)
	}
	h.runlist = a.b[rl:]
	return h, nil
}

// maxVCN bounds virtual cluster numbers so that byte offsets fit an int64.
const maxVCN = 1 << 48

// decodeRuns decodes a runlist (mapping pairs) that starts at vcn into
// device runs; sparse runs (holes) give none. Every run must lie inside
// the volume.
func (f *FS) decodeRuns(b []byte, vcn int64, compressed bool) ([]fsys.Run, error) {
	var out []fsys.Run
	lcn := int64(0)
	for i := 0; i < len(b) && b[i] != 0; {
		h := b[i]
		ls, os := int(h&0xF), int(h>>4)
		if ls == 0 || ls > 8 || os > 8 || i+1+ls+os > len(b) {
			return out, fmt.Errorf("runlist byte %d: header %#x: %w", i, h, errCorrupt)
		}
		length := int64(0)
		for k := ls - 1; k >= 0; k-- {
			length = length<<8 | int64(b[i+1+k])
		}
		if length <= 0 || length > maxVCN || vcn > maxVCN-length {
			return out, fmt.Errorf("runlist byte %d: %d clusters at VCN %d: %w", i, length, vcn, errCorrupt)
		}
		if os > 0 {
			var delta int64
			for k := os - 1; k >= 0; k-- {
				delta = delta<<8 | int64(b[i+1+ls+k])
			}
			if shift := 64 - 8*os; shift > 0 {
				delta = delta << shift >> shift // sign-extend
			}
			lcn += delta
			if lcn < 0 || lcn >= f.clusters || length > f.clusters-lcn {
				return out, fmt.Errorf("runlist byte %d: %d clusters at cluster %d of %d: %w", i, length, lcn, f.clusters, errCorrupt)
			}
			r := fsys.Run{Off: lcn * f.clusterSize, Len: length * f.clusterSize, FileOff: vcn * f.clusterSize, Compressed: compressed}
			if compressed {
				r.Codec = "lznt1"
			}
			out = append(out, r)
		}
		vcn += length
		i += 1 + ls + os
	}
	return out, nil
}

// readRecordAt reads and fixes up the record at byte off of r.
func (f *FS) readRecordAt(r io.ReaderAt, off int64) ([]byte, error) {
	buf := make([]byte, f.recordSize)
	if err := fsys.ReadFull(r, buf, off); err != nil {
		return nil, err
	}
	if string(buf[:4]) != "FILE" {
		return nil, fmt.Errorf("no FILE magic: %w", errCorrupt)
	}
	return buf, fixup(buf)
}

// readMFTRuns reads record 0 where the boot sector says and decodes the
// runlist of $MFT's data, following its $ATTRIBUTE_LIST to the extension
// records that hold the rest of a fragmented MFT's runlist.
func (f *FS) readMFTRuns() error {
	at := f.mftRuns[0].Off
	buf, err := f.readRecordAt(f.r, at)
	if err != nil {
		return fmt.Errorf("record 0 at byte %d: %w", at, err)
	}
	var runs []fsys.Run
	var size int64 = -1
	var list []byte
	err = attrs(buf, func(a attr) error {
		switch a.typ {
		case attrData:
			if n, _ := a.name(); n != "" || !a.nonResident() {
				return nil
			}
			h, err := a.nonResidentHeader()
			if err != nil {
				return err
			}
			rs, err := f.decodeRuns(h.runlist, h.lowVCN, false)
			if err != nil {
				return err
			}
			runs = append(runs, rs...)
			if h.lowVCN == 0 {
				size = h.size
			}
		case attrAttributeList:
			list, err = f.attrValue(a)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record 0 at byte %d: %w", at, err)
	}
	if size < f.recordSize || len(runs) == 0 {
		return fmt.Errorf("record 0 at byte %d: no $DATA: %w", at, errCorrupt)
	}
	f.mftCut = -1
	f.setMFT(runs, size)
	if list != nil {
		f.extendMFTRuns(list, runs, size)
	}
	if f.mftCut >= 0 {
		f.notes = append(f.notes, fmt.Sprintf("$MFT's runs map clusters twice (from byte %d of $MFT on): records from %d on are not read", f.mftCut, f.mftCut/f.recordSize))
	}
	return nil
}

// setMFT makes runs (of a stream of size bytes) $MFT's data, up to the
// first run whose clusters an earlier run (in file order) maps too:
// records there would be read again, and a small volume whose $MFT repeats
// its clusters could present a million records. f.mftCut says where.
func (f *FS) setMFT(runs []fsys.Run, size int64) {
	slices.SortFunc(runs, func(a, b fsys.Run) int { return cmp.Compare(a.FileOff, b.FileOff) })
	if k := firstRepeat(runs); k < len(runs) {
		cut := runs[k].FileOff
		if f.mftCut < 0 || cut < f.mftCut {
			f.mftCut = cut
		}
		runs = runs[:k]
	}
	if f.mftCut >= 0 {
		size = min(size, f.mftCut)
	}
	f.mftRuns = runs
	f.mft = fsys.NewRunFile(f.r, size, runs)
}

// firstRepeat returns the index of the first of runs (sorted by file
// offset) whose device bytes overlap those of a run before it, or
// len(runs): the longest prefix whose runs are disjoint on the device,
// by binary search over its length, each probe one pass over the runs
// in device order.
func firstRepeat(runs []fsys.Run) int {
	byOff := make([]int, len(runs))
	for i := range byOff {
		byOff[i] = i
	}
	slices.SortFunc(byOff, func(a, b int) int { return cmp.Compare(runs[a].Off, runs[b].Off) })
	disjoint := func(k int) bool { // runs[:k]
		end := int64(-1)
		for _, i := range byOff {
			if i >= k {
				continue
			}
			if runs[i].Off < end {
				return false
			}
			end = runs[i].Off + runs[i].Len
		}
		return true
	}
	// The first k for which runs[:k+1] overlap.
	return sort.Search(len(runs), func(k int) bool { return !disjoint(k + 1) })
}

// extendMFTRuns adds the $DATA runs that $MFT's attribute list places in
// extension records, reading each through the runs known so far.
func (f *FS) extendMFTRuns(list []byte, runs []fsys.Run, size int64) {
	var refs []int64
	for o := 0; o+26 <= len(list); {
		n := int(le.Uint16(list[o+4:]))
		if n < 26 || o+n > len(list) {
			break
		}
		if le.Uint32(list[o:]) == attrData && list[o+6] == 0 {
			if rec := int64(le.Uint64(list[o+16:]) & (1<<48 - 1)); rec != recMFT {
				refs = append(refs, rec)
			}
		}
		o += n
	}
	for progress := true; progress && len(refs) > 0 && len(runs) < maxMFTRuns; {
		progress = false
		for i := 0; i < len(refs); i++ {
			buf, err := f.readRecordAt(f.mft, refs[i]*f.recordSize)
			if err != nil {
				continue // not mapped yet, or unreadable
			}
			attrs(buf, func(a attr) error {
				if n, _ := a.name(); a.typ != attrData || n != "" || !a.nonResident() {
					return nil
				}
				if h, err := a.nonResidentHeader(); err == nil && h.lowVCN > 0 {
					rs, _ := f.decodeRuns(h.runlist, h.lowVCN, false)
					runs = append(runs, rs...)
				}
				return nil
			})
			refs = slices.Delete(refs, i, i+1)
			i--
			progress = true
		}
		f.setMFT(runs, size)
	}
	if len(refs) > 0 {
		f.notes = append(f.notes, fmt.Sprintf("%d extension records of $MFT unreadable: part of the MFT is not read", len(refs)))
	}
}

// attrValue returns an attribute's value: resident, or read through its
// runs (an attribute list), at most maxAttrList bytes.
func (f *FS) attrValue(a attr) ([]byte, error) {
	if !a.nonResident() {
		v, _, err := a.value()
		return v, err
	}
	h, err := a.nonResidentHeader()
	if err != nil {
		return nil, err
	}
	if h.size > maxAttrList {
		return nil, fmt.Errorf("attribute list of %d bytes: %w", h.size, errCorrupt)
	}
	rs, err := f.decodeRuns(h.runlist, 0, false)
	if err != nil {
		return nil, err
	}
	b := make([]byte, h.size)
	if _, err := fsys.NewRunFile(f.r, h.size, rs).ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// recordRuns maps the bytes [off, off+n) of record rec to device runs
// through the MFT's runlist, as Inline runs from file offset fileOff.
func (f *FS) recordRuns(rec, off, n, fileOff int64, dst []fsys.Run) []fsys.Run {
	s := rec*f.recordSize + off
	// The first run that ends after s; runs are sorted by file offset.
	i, _ := slices.BinarySearchFunc(f.mftRuns, s, func(r fsys.Run, t int64) int {
		if r.FileOff+r.Len <= t {
			return -1
		}
		return 1
	})
	for ; i < len(f.mftRuns) && f.mftRuns[i].FileOff < s+n; i++ {
		r := f.mftRuns[i]
		a, z := max(s, r.FileOff), min(s+n, r.FileOff+r.Len)
		if a < z {
			dst = append(dst, fsys.Run{Off: r.Off + a - r.FileOff, Len: z - a, FileOff: fileOff + a - s, Inline: true})
		}
	}
	return dst
}

// ext is an extension record's attributes, merged into its base record
// once every record is read.
type ext struct {
	base   int64
	inUse  bool
	record record
}

// readRecords reads every MFT record, in batches through $MFT's runlist.
func (f *FS) readRecords(ctx context.Context) error {
	n := f.mft.Size() / f.recordSize
	if n > maxRecords {
		f.notes = append(f.notes, fmt.Sprintf("MFT of %d records: only the first %d are read", n, maxRecords))
		n = maxRecords
	}
	batch := max(1, (1<<20)/f.recordSize)
	buf := make([]byte, batch*f.recordSize)
	var exts []ext
	bad, badErr := 0, error(nil)
	total := 0
	for i := int64(0); i < n; i += batch {
		if err := ctx.Err(); err != nil {
			return err
		}
		k := min(batch, n-i)
		b := buf[:k*f.recordSize]
		if _, err := f.mft.ReadAt(b, i*f.recordSize); err != nil && !errors.Is(err, io.EOF) {
			return model.Wrapf(err, f.name, f.recordOffset(i), "ntfs: MFT records %d-%d", i, i+k-1)
		}
		for j := int64(0); j < k; j++ {
			no := i + j
			rb := b[j*f.recordSize : (j+1)*f.recordSize]
			if string(rb[:4]) != "FILE" {
				continue // never used, or "BAAD"
			}
			rec, base, err := f.parseRecord(rb, no)
			if err != nil {
				if bad++; badErr == nil {
					badErr = fmt.Errorf("record %d: %w", no, err)
				}
				continue
			}
			f.keepNames(&rec)
			for _, s := range rec.streams {
				total += len(s.runs)
			}
			total += len(rec.index)
			if total > maxTotalRuns {
				f.notes = append(f.notes, fmt.Sprintf("more than %d runs: records from %d on are not read", maxTotalRuns, no))
				return nil
			}
			// The table grows to the last record read, not to what
			// $MFT's size claims.
			if grow := int(no) + 1 - len(f.recs); grow > 0 {
				f.recs = append(f.recs, make([]record, grow)...)
			}
			if base != 0 {
				exts = append(exts, ext{base: base, inUse: rec.flags&recInUse != 0, record: rec})
				f.recs[no].flags = recExtension
				continue
			}
			f.recs[no] = rec
		}
	}
	if bad > 0 {
		f.notes = append(f.notes, fmt.Sprintf("%d MFT records unreadable (first: %v)", bad, badErr))
	}
	if f.namesCut > 0 {
		f.notes = append(f.notes, fmt.Sprintf("names past the budget of %d bytes: %d MFT records keep fewer names than they have (those without a name are not walked: their bytes are scanned, unattributed)", f.nameBudget, f.namesCut))
	}
	for _, e := range exts {
		if e.base >= int64(len(f.recs)) {
			continue
		}
		b := &f.recs[e.base]
		if b.flags&recValid == 0 || (b.flags&recInUse != 0) != e.inUse {
			continue // the base is gone or was reused
		}
		b.merge(&e.record)
	}
	return nil
}

// maxLinks bounds the names kept per record.
const maxLinks = 64

// keepNames charges the names record r keeps to f.nameBudget: past it, r
// keeps no other names, and no name when that does not fit either.
func (f *FS) keepNames(r *record) {
	n := 0
	if r.flags&recNamed != 0 {
		n = len(r.name)
	}
	for _, l := range r.links {
		n += len(l.name)
	}
	if f.nameBytes+n <= f.nameBudget {
		f.nameBytes += n
		return
	}
	f.namesCut++
	r.links = nil
	if r.flags&recNamed != 0 && f.nameBytes+len(r.name) <= f.nameBudget {
		f.nameBytes += len(r.name)
		return
	}
	r.name = ""
	r.flags &^= recNamed
}

// addName records a $FILE_NAME of attribute instance inst. The record's
// name is its oldest long name (the lowest instance: names are numbered as
// they are added), a DOS 8.3 alias only when it has no other; its other
// long names are kept as links.
func (r *record) addName(l link, ns uint8, inst uint16) {
	if ns == nsDOS {
		if r.flags&recNamed == 0 {
			r.name, r.parent, r.parentSeq, r.nameNS, r.nameInst = l.name, l.parent, l.parentSeq, ns, inst
			r.flags |= recNamed
		}
		return
	}
	if r.flags&recNamed == 0 || r.nameNS == nsDOS || inst < r.nameInst {
		if r.flags&recNamed != 0 && r.nameNS != nsDOS && len(r.links) < maxLinks {
			r.links = append(r.links, link{r.parent, r.parentSeq, r.name})
		}
		r.name, r.parent, r.parentSeq, r.nameNS, r.nameInst = l.name, l.parent, l.parentSeq, ns, inst
		r.flags |= recNamed
		return
	}
	if len(r.links) < maxLinks {
		r.links = append(r.links, l)
	}
}

// merge adds an extension record's names and streams to its base record.
func (r *record) merge(e *record) {
	if e.flags&recNamed != 0 {
		r.addName(link{e.parent, e.parentSeq, e.name}, e.nameNS, e.nameInst)
	}
	for _, l := range e.links {
		r.addName(l, 0, ^uint16(0))
	}
	r.index = append(r.index, e.index...)
	for _, s := range e.streams {
		d := r.stream(s.name)
		if d == nil {
			r.streams = append(r.streams, s)
			continue
		}
		d.runs = append(d.runs, s.runs...)
		if s.sized && !d.sized {
			d.size, d.init, d.sized, d.compressed, d.cuLog = s.size, s.init, true, s.compressed, s.cuLog
		}
	}
}

// parseRecord decodes record no (raw bytes b, fixed up in place) and
// returns it with its base record number (0 for a base record).
func (f *FS) parseRecord(b []byte, no int64) (record, int64, error) {
	if err := fixup(b); err != nil {
		return record{}, 0, err
	}
	var rec record
	rec.seq = le.Uint16(b[16:])
	fl := le.Uint16(b[22:])
	rec.flags = recValid
	if fl&mftRecordInUse != 0 {
		rec.flags |= recInUse
	}
	if fl&mftRecordIsDir != 0 {
		rec.flags |= recDir
	}
	base := int64(le.Uint64(b[32:]) & (1<<48 - 1))
	if int(le.Uint16(b[20:])) >= len(b) {
		return record{}, 0, fmt.Errorf("attributes at %d: %w", le.Uint16(b[20:]), errCorrupt)
	}
	err := attrs(b, func(a attr) error {
		switch a.typ {
		case attrFileName:
			v, _, err := a.value()
			if err != nil || a.nonResident() || len(v) < 66 {
				return nil
			}
			nl, ns := int(v[64]), v[65]
			if 66+2*nl > len(v) {
				return nil
			}
			ref := le.Uint64(v)
			l := link{parent: uint32(min(ref&(1<<48-1), 1<<32-1)), parentSeq: uint16(ref >> 48), name: decodeUTF16(v[66 : 66+2*nl])}
			rec.addName(l, ns, le.Uint16(a.b[14:]))
		case attrData:
			return f.addStream(&rec, a, no)
		case attrIndexAlloc:
			if n, _ := a.name(); n != "$I30" || !a.nonResident() {
				return nil
			}
			h, err := a.nonResidentHeader()
			if err != nil {
				return err
			}
			rs, err := f.decodeRuns(h.runlist, h.lowVCN, false)
			rec.index = append(rec.index, rs...)
			return err
		}
		return nil
	})
	return rec, base, err
}

// addStream adds a $DATA attribute to rec: resident data as Inline runs
// at the value's place in record no, non-resident data as its runs.
func (f *FS) addStream(rec *record, a attr, no int64) error {
	name, err := a.name()
	if err != nil {
		return err
	}
	s := rec.stream(name)
	if s == nil {
		rec.streams = append(rec.streams, stream{name: name})
		s = &rec.streams[len(rec.streams)-1]
	}
	if !a.nonResident() {
		v, o, err := a.value()
		if err != nil {
			return err
		}
		s.resident, s.sized = true, true
		s.size, s.init = int64(len(v)), int64(len(v))
		s.valOff, s.valLen = a.off+o, len(v)
		s.runs = f.recordRuns(no, int64(a.off+o), int64(len(v)), 0, s.runs[:0])
		return nil
	}
	h, err := a.nonResidentHeader()
	if err != nil {
		return err
	}
	if h.lowVCN == 0 {
		s.size, s.init, s.sized, s.compressed, s.cuLog = h.size, min(h.init, h.size), true, h.compressed, h.cuLog
	}
	rs, err := f.decodeRuns(h.runlist, h.lowVCN, h.compressed)
	s.runs = append(s.runs, rs...)
	return err
}
