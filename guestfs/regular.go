package guestfs

import (
	"cmp"
	"context"
	"io"
	"slices"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// GuestRun says that Len bytes at guest offset Off hold a file's bytes from
// FileOff on.
type GuestRun struct {
	Off, Len, FileOff int64
}

// RegularFile is one regular file of an attributed filesystem, as the index
// of Analyze holds it: where its bytes are on the disk, and a way to read
// them. The scanner decodes the files whose contents are compressed
// streams or archives through it.
type RegularFile struct {
	Partition string
	Path      string
	Size      int64
	// Runs are the file's bytes on the disk, in guest offsets, sorted by
	// file offset; a hole is where no run is. A run of a logical volume
	// is split where the volume's extents are.
	Runs []GuestRun
	// Deleted marks a deleted file whose record is intact (NTFS): its
	// bytes are in state deleted-record.
	Deleted bool
	// File reads the file's bytes (holes and unwritten extents as zeros).
	File fsys.File
}

// Start is the guest offset of the file's first byte, or -1 when no run
// holds it (a hole, or a logical volume's extent that is not on this
// disk).
func (f RegularFile) Start() int64 {
	if len(f.Runs) > 0 && f.Runs[0].FileOff == 0 {
		return f.Runs[0].Off
	}
	return -1
}

// RegularFiles calls fn for every regular file of every attributed
// filesystem of at least minSize bytes whose bytes the index holds as they
// are: files with a compressed run (btrfs, NTFS compression) are left out,
// as nothing here decompresses them. An error from fn stops the walk.
func (m *Map) RegularFiles(ctx context.Context, minSize int64, fn func(RegularFile) error) error {
	for _, p := range m.all() {
		x := p.idx
		if x == nil || p.r == nil {
			continue
		}
		// The runs, grouped by file.
		order := make([]int32, 0, len(x.runs))
		for i, r := range x.runs {
			if nd := x.nodes[r.node]; nd.regular && nd.size >= minSize && r.flags&runUnwritten == 0 {
				order = append(order, int32(i))
			}
		}
		slices.SortFunc(order, func(a, b int32) int {
			ra, rb := &x.runs[a], &x.runs[b]
			return cmp.Or(cmp.Compare(ra.node, rb.node), cmp.Compare(ra.fileOff, rb.fileOff))
		})
		for i := 0; i < len(order); {
			if err := ctx.Err(); err != nil {
				return err
			}
			nodeID := x.runs[order[i]].node
			j := i
			compressed, deleted := false, false
			var runs []fsys.Run
			for ; j < len(order) && x.runs[order[j]].node == nodeID; j++ {
				r := x.runs[order[j]]
				compressed = compressed || r.flags&runCompressed != 0
				deleted = deleted || r.flags&runDeleted != 0
				runs = append(runs, fsys.Run{Off: r.off, Len: r.n, FileOff: r.fileOff, Inline: r.flags&runInline != 0})
			}
			i = j
			if compressed {
				continue
			}
			nd := x.nodes[nodeID]
			f := RegularFile{
				Partition: p.info.Name, Path: x.path(nodeID), Size: nd.size, Deleted: deleted,
				File: fsys.NewRunFile(p.r, nd.size, runs),
			}
			for _, r := range runs {
				f.Runs = m.appendGuestRuns(f.Runs, p, r)
			}
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendGuestRuns maps a run of volume p to guest offsets.
func (m *Map) appendGuestRuns(out []GuestRun, p *partition, r fsys.Run) []GuestRun {
	switch {
	case p.parent != nil:
		return m.appendGuestRuns(out, p.parent, fsys.Run{Off: p.lvOff + r.Off, Len: r.Len, FileOff: r.FileOff})
	case p.thin != nil:
		return m.appendThinRuns(out, p.thin, r)
	case p.lv == nil:
		return append(out, GuestRun{Off: p.info.Start + r.Off, Len: r.Len, FileOff: r.FileOff})
	}
	for done := int64(0); done < r.Len; {
		pos := r.Off + done
		i, _ := slices.BinarySearchFunc(p.lv.segs, pos+1, func(s *lvSegment, t int64) int { return cmp.Compare(s.start, t) })
		if i == 0 || pos >= p.lv.segs[i-1].start+p.lv.segs[i-1].n {
			return out
		}
		s := p.lv.segs[i-1]
		stripe, pvOff, contiguous := s.toPV(pos - s.start)
		n := min(r.Len-done, contiguous)
		if st := s.stripes[stripe]; st.pv != nil {
			if g := m.diskOffset(st.pv, pvOff); g >= 0 {
				out = append(out, GuestRun{Off: g, Len: n, FileOff: r.FileOff + done})
			}
		}
		done += n
	}
	return out
}

// extentCodec reports the codecs whose compressed runs are each one whole
// stream (btrfs's extents), unlike NTFS's units.
func extentCodec(codec string) bool { return codec == "zlib" || codec == "lzo" || codec == "zstd" }

// CompressedRun is one compressed extent of a regular file whose codec the
// filesystem names (btrfs: zlib, lzo, zstd): the stored stream, which
// decodes to the file's bytes from FileOff on.
type CompressedRun struct {
	Partition string
	Path      string
	Codec     string
	FileOff   int64
	// Guest is where the stream starts on the disk (a guest offset), or
	// -1 when it is not on this disk (a logical volume's extent
	// elsewhere).
	Guest int64
	// Deleted marks a deleted file whose record is intact.
	Deleted bool
	// R reads the stored stream, Size bytes.
	R    io.ReaderAt
	Size int64
}

// CompressedRuns calls fn for every compressed run with a known codec of a
// regular file in an attributed filesystem, every stored copy of it (a
// btrfs inline extent sits in metadata that is often kept twice). An
// extent striped over several devices' ranges (btrfs RAID0) gives one run
// per stripe, of which only the first starts the stream. An error from fn
// stops the walk.
func (m *Map) CompressedRuns(ctx context.Context, fn func(CompressedRun) error) error {
	for _, p := range m.all() {
		x := p.idx
		if x == nil || p.r == nil {
			continue
		}
		for _, r := range x.runs {
			if r.flags&runCompressed == 0 || !extentCodec(r.codec()) || !x.nodes[r.node].regular {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			c := CompressedRun{
				Partition: p.info.Name, Path: x.path(r.node), Codec: r.codec(), FileOff: r.fileOff,
				Guest: -1, Deleted: r.flags&runDeleted != 0,
				R: io.NewSectionReader(p.r, r.off, r.n), Size: r.n,
			}
			if g := m.appendGuestRuns(nil, p, fsys.Run{Off: r.off, Len: r.n}); len(g) > 0 && g[0].FileOff == 0 {
				c.Guest = g[0].Off
			}
			if err := fn(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// CompressedFiles calls fn for every regular file that NTFS stores
// compressed (LZNT1), with File reading its bytes decompressed through
// the filesystem's reader: a live file opened by its path, a deleted one
// (whose record is intact) from the clusters of it that are still free
// (fsys.CompressedRunReader), as is a live one listed without a path. An error from fn stops the walk.
func (m *Map) CompressedFiles(ctx context.Context, minSize int64, fn func(RegularFile) error) error {
	for _, p := range m.all() {
		x := p.idx
		if x == nil || p.r == nil {
			continue
		}
		rd, ok := x.fs.(fsys.Reader)
		if !ok {
			continue
		}
		// The compressed files' runs, by file, in one pass over the index.
		byNode := map[uint32][]run{}
		var nodes []uint32
		for _, r := range x.runs {
			if r.flags&runCompressed == 0 || r.codec() != "lznt1" {
				continue
			}
			if nd := x.nodes[r.node]; !nd.regular || nd.size < minSize {
				continue
			}
			if byNode[r.node] == nil {
				nodes = append(nodes, r.node)
			}
			byNode[r.node] = append(byNode[r.node], r)
		}
		slices.Sort(nodes)
		for _, n := range nodes {
			if err := ctx.Err(); err != nil {
				return err
			}
			path, runs := x.path(n), byNode[n]
			f := RegularFile{Partition: p.info.Name, Path: path, Size: x.nodes[n].size, Deleted: runs[0].flags&runDeleted != 0}
			var err error
			if f.Deleted || path == "" {
				// No path opens it: a deleted file, or one listed
				// without a path (see indexBuilder.addNode).
				cr, ok := x.fs.(fsys.CompressedRunReader)
				if !ok {
					continue
				}
				stored := make([]fsys.Run, len(runs))
				for i, q := range runs {
					stored[i] = fsys.Run{Off: q.off, Len: q.n, FileOff: q.fileOff, Compressed: true, Codec: q.codec()}
				}
				f.File, err = cr.OpenCompressedRuns(stored, f.Size)
			} else {
				f.File, err = rd.Open(path)
			}
			if err != nil {
				continue // unreadable
			}
			for _, q := range runs {
				f.Runs = m.appendGuestRuns(f.Runs, p, fsys.Run{Off: q.off, Len: q.n, FileOff: q.fileOff})
			}
			slices.SortFunc(f.Runs, func(a, b GuestRun) int { return cmp.Compare(a.FileOff, b.FileOff) })
			if err := fn(f); err != nil {
				return err
			}
		}
	}
	return nil
}
