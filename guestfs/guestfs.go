// Package guestfs maps guest offsets of a disk to what the guest keeps
// there: the partition (GPT or MBR), the filesystem, the file path and
// whether the bytes are in allocated or free filesystem space.
//
// Analyze reads only metadata (partition tables, superblocks, group
// descriptors, inodes, directories, FAT tables), never file contents, and
// builds a compact index: per filesystem, one sorted slice of byte runs
// pointing into a parent/name table of paths, searched by binary search.
//
// States:
//   - "allocated": the bytes belong to a live file, directory or
//     filesystem metadata (Path is "" for metadata);
//   - "free": free filesystem space, or the slack of a live file (bytes
//     past its end inside its last block, or in preallocated unwritten
//     extents). Slack is reported as "free" with Path set to the file:
//     the guest cannot read or overwrite it through the file, so, like
//     free space, it is outside the guest's control;
//   - "unknown": no filesystem could be read there (unsupported or
//     unrecognised filesystem, space outside every partition).
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
	Partition string // "p1" (table slot), "disk" without a table, "" outside every partition
	FS        string // "ext4", "vfat", "iso9660", ... or ""
	Path      string // absolute path in the filesystem, "" for metadata/free space/unknown
	State     string // StateAllocated, StateFree or StateUnknown
}

// PartitionInfo describes one partition (or the whole disk).
type PartitionInfo struct {
	Name       string // "p1", "p5", "disk"
	Index      int    // table slot (1-based); 0 for the whole disk
	Start      int64  // guest byte offset
	Size       int64  // bytes
	Type       string // "gpt:Linux filesystem", "mbr:0x83", "" for the whole disk
	FS         string // detected filesystem, "" when none was recognised
	Attributed bool   // offsets inside map to paths
	Note       string // why not, or what is partial
}

// Map is the result of Analyze. It is safe for concurrent use.
type Map struct {
	size   int64
	scheme string
	parts  []*partition // sorted by Start
	notes  []string
}

type partition struct {
	info PartitionInfo
	idx  *fileIndex // nil when unattributed
}

// Analyze reads d's partition table and filesystems and builds the index.
func Analyze(ctx context.Context, d model.Disk) (*Map, error) {
	size := d.Size()
	m := &Map{size: size}
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
		m.analyzePartition(ctx, d, p)
		m.parts = append(m.parts, p)
	}
	slices.SortStableFunc(m.parts, func(a, b *partition) int { return cmp.Compare(a.info.Start, b.info.Start) })
	return m, nil
}

func (m *Map) analyzePartition(ctx context.Context, d model.Disk, p *partition) {
	sec := io.NewSectionReader(d, p.info.Start, p.info.Size)
	head, err := readHead(sec, 0, p.info.Size)
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
		f, notes, err = drv.Open(ctx, sec, p.info.Size, p.info.Name)
		if err == nil {
			p.info.FS = f.Kind()
			var more []string
			p.idx, more, err = buildIndex(ctx, f)
			notes = append(notes, more...)
		}
	case kind == "":
		err = errors.New("no filesystem recognised")
	case kind == "swap":
		err = errors.New("swap space, findings there are unattributed (and may be saved guest memory)")
	case kind == "luks":
		err = fmt.Errorf("encrypted (LUKS): %w, findings there are unattributed", model.ErrEncrypted)
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
	p.info.Attributed = !p.idx.noPaths
}

func joinNote(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Scheme is "gpt", "mbr", or "" for a disk without a partition table.
func (m *Map) Scheme() string { return m.scheme }

// Partitions lists the partitions (or the whole disk) in disk order.
func (m *Map) Partitions() []PartitionInfo {
	out := make([]PartitionInfo, len(m.parts))
	for i, p := range m.parts {
		out[i] = p.info
	}
	return out
}

// Unattributed lists, in words, the partitions whose findings cannot be
// mapped to paths, and other problems met while reading the tables.
func (m *Map) Unattributed() []string {
	var out []string
	for _, n := range m.notes {
		out = append(out, "partition table: "+n)
	}
	for _, p := range m.parts {
		if p.info.Attributed || p.idx != nil {
			if p.info.Note != "" {
				out = append(out, fmt.Sprintf("%s: %s: partial: %s", p.info.Name, p.info.FS, p.info.Note))
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

// Locate maps a guest offset to its partition, filesystem, path and state.
func (m *Map) Locate(off int64) Location {
	p := m.partitionAt(off)
	if p == nil {
		return Location{State: StateUnknown}
	}
	loc := Location{Partition: p.info.Name, FS: p.info.FS, State: StateUnknown}
	if p.idx != nil {
		loc.Path, loc.State = p.idx.locate(off - p.info.Start)
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
	for _, p := range m.parts {
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
func (m *Map) ReadFile(path string) ([]byte, error) {
	f, err := m.Open(path)
	if err != nil {
		return nil, err
	}
	if f.Size() > MaxReadFile {
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
