// Package guestfs maps guest offsets of a disk to what the guest keeps
// there: the partition (GPT or MBR, or an LVM2 logical volume), the
// filesystem, the file path and whether the bytes are in allocated or free
// filesystem space.
//
// guestfs only detects and dispatches: each filesystem is a package of its
// own behind the fsys interface (guestfs/ext4, xfs, fat, iso9660,
// squashfs), LVM2 and LUKS are read by guestfs/lvm and guestfs/luks, and
// one generic index is built from any filesystem's walk.
//
// Analyze reads only metadata (partition tables, superblocks, group
// descriptors, inodes, directories, B+trees, FAT tables, LVM metadata),
// never file contents, and builds a compact index: per filesystem, one
// sorted slice of byte runs pointing into a parent/name table of paths,
// searched by binary search.
//
// States:
//   - "allocated": the bytes belong to a live file, directory or
//     filesystem metadata (Path is "" for metadata), or to LVM's own
//     label and metadata;
//   - "free": free filesystem space, the slack of a live file (bytes
//     past its end inside its last block, or in preallocated unwritten
//     extents), extents of a volume group no logical volume uses, or a
//     removed logical volume's extents. Slack is reported as "free" with
//     Path set to the file: the guest cannot read or overwrite it through
//     the file, so, like free space, it is outside the guest's control;
//   - "deleted-record": a deleted file whose record is still intact
//     (NTFS), with its path;
//   - "unknown": no filesystem could be read there (unsupported,
//     unrecognised or encrypted filesystem, space outside every partition).
package guestfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	iofs "io/fs"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/luks"
	"github.com/imgaudit/imgaudit/guestfs/lvm"
)

// States of a Location.
const (
	StateAllocated = fsys.StateAllocated
	StateFree      = fsys.StateFree
	StateUnknown   = fsys.StateUnknown
	// StateDeletedRecord: a deleted file whose record is intact, so its
	// path is known although its space is free (NTFS).
	StateDeletedRecord = fsys.StateDeletedRecord
)

// WholeDisk names the "partition" of a disk without a partition table.
const WholeDisk = "disk"

// Location is what a guest offset belongs to.
type Location struct {
	Partition string // "p1" (table slot), "disk" without a table, "vg0/root" (LVM2), "" outside every partition
	FS        string // "ext4", "xfs", "btrfs", "ntfs", "vfat", "iso9660", "lvm2", "luks", ... or ""
	Path      string // absolute path in the filesystem, "" for metadata/free space/unknown
	State     string // StateAllocated, StateFree, StateDeletedRecord or StateUnknown
	// Links are the file's other paths (hard links), sorted, at most
	// MaxLinkNames; LinksOmitted counts the rest. Path is the name the
	// walk met first.
	Links        []string
	LinksOmitted int
	// Excluded, when set, says why findings at this offset are not
	// secrets (a LUKS key-slot area: key material): the scanner drops them.
	Excluded string
}

func (l *Location) setPlace(pl place) {
	l.Path, l.State, l.Links, l.LinksOmitted = pl.path, pl.state, pl.links, pl.linksOmitted
}

// PartitionInfo describes one partition (or the whole disk).
type PartitionInfo struct {
	Name       string // "p1", "p5", "disk"
	Index      int    // table slot (1-based); 0 for the whole disk
	Start      int64  // guest byte offset
	Size       int64  // bytes
	Type       string // "gpt:Linux filesystem", "mbr:0x83", "lvm2:linear", "" for the whole disk
	FS         string // detected filesystem, "" when none was recognised
	Attributed bool   // offsets inside map to paths
	Note       string // why not, or what is partial
}

// Map is the result of Analyze. It is safe for concurrent use.
type Map struct {
	size   int64
	scheme string
	parts  []*partition // sorted by Start
	// lvs are the LVM2 logical volumes (and removed ones) of the PVs
	// among parts, in VG metadata order.
	lvs   []*partition
	notes []string
	// nesting is set while the VMs' own volume groups are analyzed
	// (analyzeNestedLVM): the LVs added are nested, in the snapshot of
	// nestingOrigin when it is set.
	nesting       bool
	nestingOrigin string
	// budgets bound what the analysis keeps (Analyze: defaultBudgets).
	budgets budgets
}

// budgets are the bounds an analysis holds to. Analyze gives the
// package's constants; tests give less through analyze, and no
// package state changes.
type budgets struct {
	nameBytes    int   // maxNameBytes: names a filesystem's index keeps
	placeBytes   int64 // maxPlaceBytes: paths an index gives to findings
	removedAreas int   // maxRemovedAreas: PV areas of a VG's removed LVs
}

// defaultBudgets are Analyze's budgets.
func defaultBudgets() budgets {
	return budgets{nameBytes: maxNameBytes, placeBytes: maxPlaceBytes, removedAreas: maxRemovedAreas}
}

// SnapshotOf says, for a partition as Location names it, the logical
// volume it is a snapshot of when it lies in an LVM2 thin snapshot
// volume (a Proxmox snapshot of a VM on local-lvm), "" otherwise.
func (m *Map) SnapshotOf(partition string) string {
	for _, p := range m.lvs {
		if p.info.Name == partition {
			return p.origin
		}
	}
	return ""
}

// partition is a partition, the whole disk or a logical volume.
type partition struct {
	info PartitionInfo
	// r reads the volume (a partition, the whole disk, a logical
	// volume), and lv maps a logical volume's offsets to the disk.
	r  io.ReaderAt
	lv *lvReader
	// parent is the logical volume (linear, striped or thin) that a
	// partition of a VM's disk kept in it lies in, from byte lvOff of
	// the volume; subs are such a volume's partitions.
	parent *partition
	lvOff  int64
	subs   []*partition
	// thin maps a thin volume's blocks to its pool's data volume; pool,
	// on a thin pool's data volume, maps its blocks back to the thin
	// volumes (for Locate).
	thin *thinVolume
	pool *thinData
	// origin, on a thin snapshot volume and what lies in it (its VM
	// disk's partitions, their volume groups' LVs), names the volume it
	// is a snapshot of.
	origin string
	// nested marks the logical volumes of a VM's own volume group (in
	// a VM's disk kept in an LV), and their partitions: a PV in them is
	// not read (one level of nesting).
	nested bool
	idx    *fileIndex // nil when unattributed
	// pv is set on a partition holding an LVM2 physical volume: its bytes
	// belong to logical volumes or to the VG's free space.
	pv *pvLayout
	// excluded are partition-relative [start, end) ranges whose findings
	// are not secrets (LUKS key material), and why.
	excluded   [][2]int64
	excludeWhy string
}

// Analyze reads d's partition table and filesystems and builds the index.
func Analyze(ctx context.Context, d model.Disk) (*Map, error) {
	return analyze(ctx, d, defaultBudgets())
}

// analyze is Analyze within the budgets bud.
func analyze(ctx context.Context, d model.Disk, bud budgets) (*Map, error) {
	size := d.Size()
	m := &Map{size: size, budgets: bud}
	pt, err := readPartitionTable(d, size)
	if err != nil {
		return nil, fmt.Errorf("guestfs: partition table: %w", err)
	}
	m.scheme = pt.Scheme
	m.notes = append(m.notes, pt.Notes...)
	if pt.Scheme == "" {
		pt.Entries = []tableEntry{{Index: 0, Start: 0, Size: size}}
	}
	for _, e := range pt.Entries {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p := &partition{info: PartitionInfo{
			Name: fmt.Sprintf("p%d", e.Index), Index: e.Index, Start: e.Start, Size: e.Size, Type: e.Type,
		}}
		if pt.Scheme == "" {
			p.info.Name = WholeDisk
		}
		if e.Start >= size {
			p.info.Size = 0
			p.info.Note = "starts past the end of the disk"
			m.parts = append(m.parts, p)
			continue
		}
		if e.Size > size-e.Start {
			p.info.Size = size - e.Start
			p.info.Note = fmt.Sprintf("truncated: table says %d bytes, disk has %d", e.Size, p.info.Size)
		}
		m.analyzeVolume(ctx, io.NewSectionReader(d, p.info.Start, p.info.Size), p, false)
		m.parts = append(m.parts, p)
	}
	slices.SortStableFunc(m.parts, func(a, b *partition) int { return cmp.Compare(a.info.Start, b.info.Start) })
	if err := m.analyzeLVM(ctx); err != nil {
		return nil, err
	}
	if err := m.analyzeNestedLVM(ctx); err != nil {
		return nil, err
	}
	return m, nil
}

// analyzeVolume detects and reads what r (a partition, the whole disk or
// a logical volume, of p.info.Size bytes) holds. inLV says r is a logical
// volume: an LVM2 PV there (nested LVM) is not read.
func (m *Map) analyzeVolume(ctx context.Context, r io.ReaderAt, p *partition, inLV bool) {
	p.r = r
	p.lv, _ = r.(*lvReader)
	head, err := readHead(r, 0, p.info.Size)
	if err != nil {
		p.info.Note = joinNote(p.info.Note, fmt.Sprintf("unreadable: %v", err))
		return
	}
	kind, drv := detectFS(head, drivers())
	p.info.FS = kind
	var notes []string
	switch {
	case drv != nil:
		var f fsys.FS
		f, notes, err = drv.Open(ctx, r, p.info.Size, p.info.Name)
		if err == nil {
			p.info.FS = f.Kind()
			var more []string
			p.idx, more, err = buildIndex(ctx, f, m.budgets)
			notes = append(notes, more...)
		}
	case kind == "lvm2" && (!inLV || p.parent != nil && !p.parent.nested):
		// A PV on the disk, or in a partition of a VM's disk kept in
		// an LV (the VM's own volume group), not deeper.
		var pv *lvm.PV
		if pv, err = lvm.ReadPV(r, p.info.Size, p.info.Name); err == nil {
			p.pv = &pvLayout{pv: pv, r: r, owner: p}
			notes = pv.Notes
			if pv.VG == nil {
				err = errors.New("LVM2 physical volume of no volume group (or with unreadable metadata), findings there are unattributed")
			}
		}
	case kind == "luks":
		var h *luks.Header
		if h, err = luks.Read(r, p.info.Size, p.info.Name); err == nil {
			p.excluded = h.KeyMaterial
			p.excludeWhy = fmt.Sprintf("LUKS%d key-slot area (key material, not secrets)", h.Version)
			err = fmt.Errorf("%s; findings there are unattributed, and those in its key-slot areas (%s) are dropped", h.Note(), rangesText(h.KeyMaterial))
		}
	case kind == "" && inLV && (p.lv != nil || p.thin != nil):
		// A VM's disk in a logical volume (a Proxmox host's LVM storage,
		// a libvirt logical pool): its own partition table.
		err = m.analyzeLVDisk(ctx, r, p)
		if err == nil {
			return
		}
	case kind == "":
		err = errors.New("no filesystem recognised")
	case kind == "swap":
		err = errors.New("swap space, findings there are unattributed (and may be saved guest memory)")
	case kind == "zfs":
		err = fmt.Errorf("%s, whose filesystems are not read (%w): findings there are unattributed", zfsNote(head), model.ErrUnsupported)
	default:
		err = fmt.Errorf("%s: filesystem %w, findings there are unattributed", kind, model.ErrUnsupported)
	}
	if err != nil {
		p.idx = nil
		p.info.Note = joinNote(p.info.Note, err.Error())
		return
	}
	if len(notes) > 0 {
		p.info.Note = joinNote(p.info.Note, strings.Join(notes, "; "))
	}
	p.info.Attributed = p.pv != nil || !p.idx.noPaths
}

// maxLVPartitions bounds the partitions read in one logical volume
// (a GPT holds 128 entries).
const maxLVPartitions = 128

// analyzeLVDisk reads the partition table a logical volume holds, as the
// disk of a VM that the host keeps in an LV, and each partition's
// filesystem, as partitions "vg/lv/p1"... of the map. No table: an error,
// the LV holds no filesystem known here. A partition holding an LVM2 PV
// (the VM's own volume group) is not read.
func (m *Map) analyzeLVDisk(ctx context.Context, r io.ReaderAt, p *partition) error {
	pt, err := readPartitionTable(r, p.info.Size)
	if err != nil || pt.Scheme == "" {
		return errors.New("no filesystem recognised")
	}
	for _, e := range pt.Entries[:min(len(pt.Entries), maxLVPartitions)] {
		if err := ctx.Err(); err != nil {
			return err
		}
		sub := &partition{info: PartitionInfo{
			Name: fmt.Sprintf("%s/p%d", p.info.Name, e.Index), Index: e.Index, Start: -1, Size: e.Size, Type: e.Type,
		}}
		if e.Start >= p.info.Size {
			sub.info.Size = 0
			sub.info.Note = "starts past the end of the logical volume"
			m.lvs = append(m.lvs, sub)
			continue
		}
		if e.Size > p.info.Size-e.Start {
			sub.info.Size = p.info.Size - e.Start
			sub.info.Note = fmt.Sprintf("truncated: table says %d bytes, logical volume has %d", e.Size, sub.info.Size)
		}
		sub.parent, sub.lvOff, sub.nested, sub.origin = p, e.Start, p.nested, p.origin
		m.analyzeVolume(ctx, io.NewSectionReader(r, e.Start, sub.info.Size), sub, true)
		if g := m.appendGuestRuns(nil, sub, fsys.Run{Off: 0, Len: 1}); len(g) > 0 {
			sub.info.Start = g[0].Off
		}
		p.subs = append(p.subs, sub)
		m.lvs = append(m.lvs, sub)
	}
	// The type says what the LV holds ("lvm2:linear,gpt"); the note only
	// what was not read.
	p.info.Type += "," + pt.Scheme
	p.info.Attributed = true
	notes := pt.Notes
	if len(pt.Entries) > maxLVPartitions {
		notes = append(notes, fmt.Sprintf("%d more partitions of its %s not read (over %d)", len(pt.Entries)-maxLVPartitions, strings.ToUpper(pt.Scheme), maxLVPartitions))
	}
	if len(notes) > 0 {
		p.info.Note = joinNote(p.info.Note, strings.Join(notes, "; "))
	}
	return nil
}

// subAt returns the partition of LV p holding LV offset lo, nil for none.
func (p *partition) subAt(lo int64) *partition {
	for _, s := range p.subs {
		if lo >= s.lvOff && lo-s.lvOff < s.info.Size {
			return s
		}
	}
	return nil
}

// rangesText writes byte ranges as "bytes 4096-8191, 16384-20479".
func rangesText(rs [][2]int64) string {
	var parts []string
	for _, r := range rs {
		parts = append(parts, fmt.Sprintf("%d-%d", r[0], r[1]-1))
	}
	return "bytes " + strings.Join(parts, ", ")
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Scheme is "gpt", "mbr", or "" for a disk without a partition table.
func (m *Map) Scheme() string { return m.scheme }

// Partitions lists the partitions (or the whole disk) in disk order, then
// the LVM2 logical volumes (removed ones included, with Type
// "lvm2:removed").
func (m *Map) Partitions() []PartitionInfo {
	out := make([]PartitionInfo, 0, len(m.parts)+len(m.lvs))
	for _, p := range m.all() {
		out = append(out, p.infoNow())
	}
	return out
}

// infoNow is p's info with what Locate has noted since Analyze: places
// given without their path (see maxPlaceBytes).
func (p *partition) infoNow() PartitionInfo {
	info := p.info
	if p.idx != nil {
		if n := p.idx.placeNote(); n != "" {
			info.Note = joinNote(info.Note, n)
		}
	}
	return info
}

// all lists the partitions, then the logical volumes.
func (m *Map) all() []*partition {
	return append(slices.Clip(m.parts), m.lvs...)
}

// Unattributed lists, in words, the partitions whose findings cannot be
// mapped to paths, and other problems met while reading the tables.
func (m *Map) Unattributed() []string {
	var out []string
	for _, n := range m.notes {
		out = append(out, "partition table: "+n)
	}
	for _, p := range m.all() {
		if info := p.infoNow(); p.info.Attributed || p.idx != nil {
			if info.Note != "" {
				out = append(out, fmt.Sprintf("%s: %s: partial: %s", info.Name, info.FS, info.Note))
			}
			continue
		}
		fsName := p.info.FS
		if fsName == "" {
			fsName = "unknown"
		}
		out = append(out, fmt.Sprintf("%s: %s: %s", p.info.Name, fsName, p.info.Note))
	}
	return out
}

// Locate maps a guest offset to its partition (or logical volume),
// filesystem, path and state.
func (m *Map) Locate(off int64) Location {
	p := m.partitionAt(off)
	if p == nil {
		return Location{State: StateUnknown}
	}
	rel := off - p.info.Start
	loc := Location{Partition: p.info.Name, FS: p.info.FS, State: StateUnknown}
	for _, x := range p.excluded {
		if rel >= x[0] && rel < x[1] {
			loc.Excluded = p.excludeWhy
		}
	}
	switch {
	case p.pv != nil:
		return p.pv.locate(rel, loc)
	case p.idx != nil:
		loc.setPlace(p.idx.locate(rel))
	}
	return loc
}

func (m *Map) partitionAt(off int64) *partition {
	if off < 0 || off >= m.size {
		return nil
	}
	// Partitions are few and sorted; the last one starting at or before off
	// wins, but overlapping (hostile) tables are scanned backwards.
	i, _ := slices.BinarySearchFunc(m.parts, off+1, func(p *partition, t int64) int { return cmp.Compare(p.info.Start, t) })
	for j := i - 1; j >= 0; j-- {
		p := m.parts[j]
		if off >= p.info.Start && off-p.info.Start < p.info.Size {
			return p
		}
	}
	return nil
}

// ErrNoFilesystem is returned when no readable filesystem has the path.
var ErrNoFilesystem = errors.New("guestfs: no readable filesystem has this path")

// MaxReadFile is ReadFile's size cap.
const MaxReadFile = 16 << 20

// ErrTooLarge is returned (wrapped) by ReadFile for files over MaxReadFile.
var ErrTooLarge = errors.New("guestfs: file too large")

// readers lists the filesystems that can be read by path, in disk order.
func (m *Map) readers() []namedReader {
	var out []namedReader
	for _, p := range m.all() {
		if p.idx == nil {
			continue
		}
		if r, ok := p.idx.fs.(fsys.Reader); ok {
			out = append(out, namedReader{p.info.Name, r})
		}
	}
	return out
}

type namedReader struct {
	name string
	r    fsys.Reader
}

// firstHaving runs op on each readable filesystem in disk order and
// returns the first success; a filesystem without the path is skipped.
func firstHaving[T any](m *Map, path string, op func(fsys.Reader) (T, error)) (T, error) {
	var errs []error
	for _, nr := range m.readers() {
		v, err := op(nr.r)
		if err == nil {
			return v, nil
		}
		if !errors.Is(err, iofs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("%s: %w", nr.name, err))
		}
	}
	var zero T
	if len(errs) > 0 {
		return zero, errors.Join(errs...)
	}
	return zero, fmt.Errorf("%s: %w", path, ErrNoFilesystem)
}

// Open opens a regular file from the first filesystem that has it,
// following symlinks inside that filesystem. Its bytes are read on demand:
// this is the way to hash large files.
func (m *Map) Open(path string) (fsys.File, error) {
	return firstHaving(m, path, func(r fsys.Reader) (fsys.File, error) { return r.Open(path) })
}

// ReadFile reads a regular file of at most MaxReadFile bytes from the
// first filesystem that has it, following symlinks inside that filesystem.
func (m *Map) ReadFile(path string) ([]byte, error) { return m.ReadFileLimit(path, MaxReadFile) }

// ReadFileLimit is ReadFile with a cap of limit bytes (package databases:
// an rpm database of a long-lived server is about 100 MB).
func (m *Map) ReadFileLimit(path string, limit int64) ([]byte, error) {
	f, err := m.Open(path)
	if err != nil {
		return nil, err
	}
	return readWhole(path, f, limit)
}

// readWhole reads an opened file of at most limit bytes.
func readWhole(path string, f fsys.File, limit int64) ([]byte, error) {
	if f.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes: %w", path, f.Size(), ErrTooLarge)
	}
	b := make([]byte, f.Size())
	if n, err := f.ReadAt(b, 0); n != len(b) {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// ReadDir lists a directory, without "." and "..", from the first
// filesystem that has it. With ReadFile it makes *Map the read-only guest
// filesystem that rollback and pkgdb read.
func (m *Map) ReadDir(path string) ([]iofs.DirEntry, error) {
	return firstHaving(m, path, func(r fsys.Reader) ([]iofs.DirEntry, error) { return r.ReadDir(path) })
}

// ListDir is ReadDir.
func (m *Map) ListDir(path string) ([]iofs.DirEntry, error) { return m.ReadDir(path) }

// HasReadableFS reports whether some partition has a filesystem that
// ReadFile and ReadDir can read (for "rollback analysis skipped" notes).
func (m *Map) HasReadableFS() bool { return len(m.readers()) > 0 }
