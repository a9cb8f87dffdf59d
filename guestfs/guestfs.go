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
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/ext4"
)

// States of a Location.
const (
	StateAllocated = "allocated"
	StateFree      = "free"
	StateUnknown   = "unknown"
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
	p.info.FS = detectFS(head)
	name := p.info.Name
	var idx *fileIndex
	var notes []string
	switch p.info.FS {
	case "ext4":
		idx, notes, err = buildExtIndex(ctx, sec, p.info.Size, name)
		if idx != nil {
			p.info.FS = idx.fs
		}
	case "vfat":
		idx, notes, err = buildFATIndex(ctx, sec, p.info.Size, name)
	case "iso9660":
		idx, notes, err = buildISOIndex(ctx, sec, p.info.Size, name)
	case "squashfs":
		idx, notes, err = buildSquashfsIndex(ctx, sec, p.info.Size, name)
	case "":
		err = errors.New("no filesystem recognised")
	case "swap":
		err = errors.New("swap space, findings there are unattributed (and may be saved guest memory)")
	case "luks":
		err = fmt.Errorf("encrypted (LUKS): %w, findings there are unattributed", model.ErrEncrypted)
	default:
		err = fmt.Errorf("%s: filesystem %w, findings there are unattributed", p.info.FS, model.ErrUnsupported)
	}
	if err != nil {
		p.info.Note = joinNote(p.info.Note, err.Error())
		return
	}
	if len(notes) > 0 {
		p.info.Note = joinNote(p.info.Note, strings.Join(notes, "; "))
	}
	p.idx = idx
	p.info.Attributed = !idx.noPaths
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

// ErrNoFilesystem is returned when no readable ext filesystem has the path.
var ErrNoFilesystem = errors.New("guestfs: no readable ext filesystem has this path")

// ReadFile reads a regular file (at most ext4.MaxReadFile bytes) from the
// first ext2/3/4 filesystem that has it, following symlinks inside that
// filesystem.
func (m *Map) ReadFile(path string) ([]byte, error) {
	var errs []error
	for _, p := range m.parts {
		if p.idx == nil || p.idx.ext == nil {
			continue
		}
		b, err := p.idx.ext.ReadFile(path)
		if err == nil {
			return b, nil
		}
		if !errors.Is(err, ext4.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", p.info.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("%s: %w", path, ErrNoFilesystem)
}

// ListDir lists a directory from the first ext2/3/4 filesystem that has it.
func (m *Map) ListDir(path string) ([]ext4.DirEntry, error) {
	var errs []error
	for _, p := range m.parts {
		if p.idx == nil || p.idx.ext == nil {
			continue
		}
		ents, err := p.idx.ext.ReadDir(path)
		if err == nil {
			return ents, nil
		}
		if !errors.Is(err, ext4.ErrNotFound) {
			errs = append(errs, fmt.Errorf("%s: %w", p.info.Name, err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return nil, fmt.Errorf("%s: %w", path, ErrNoFilesystem)
}

// HasReadableFS reports whether some partition has an ext2/3/4 filesystem
// that ReadFile and ListDir can read (for "rollback analysis skipped" notes).
func (m *Map) HasReadableFS() bool {
	for _, p := range m.parts {
		if p.idx != nil && p.idx.ext != nil {
			return true
		}
	}
	return false
}
