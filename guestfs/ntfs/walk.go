package ntfs

import (
	"context"
	"fmt"
	"io/fs"
	"math/bits"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// link builds each directory's list of children from the records'
// $FILE_NAME parent references. A live record needs a live parent
// directory with the sequence number its reference names. A deleted
// record (in-use flag clear, record still intact) keeps its place under
// a live parent with that sequence number, or under a deleted parent
// directory whose sequence number is the one named or the next (NTFS
// drivers increment it when they free a record).
func (f *FS) link() {
	n := len(f.recs)
	f.firstChild = make([]int32, n)
	f.next = make([]int32, n)
	for i := range f.firstChild {
		f.firstChild[i], f.next[i] = -1, -1
	}
	if recRoot >= n {
		return
	}
	for i := n - 1; i >= 0; i-- { // pushed at the head: lists in record order
		r := &f.recs[i]
		p := int(r.parent)
		if i == recRoot || r.flags&(recValid|recNamed) != recValid|recNamed || !fsys.ValidName(r.name) || p >= n || p == i {
			continue
		}
		pr := &f.recs[p]
		if pr.flags&(recValid|recDir) != recValid|recDir {
			continue
		}
		live, parentLive := r.flags&recInUse != 0, pr.flags&recInUse != 0
		seqOK := r.parentSeq == 0 || r.parentSeq == pr.seq
		switch {
		case live && !(parentLive && seqOK):
			continue
		case !live && !parentLive && !seqOK && r.parentSeq+1 != pr.seq:
			continue
		case !live && parentLive && !seqOK:
			continue
		}
		f.next[i] = f.firstChild[p]
		f.firstChild[p] = int32(i)
	}
	// Other names of live records, for the reader.
	for i := range f.recs {
		r := &f.recs[i]
		if r.flags&recInUse == 0 {
			continue
		}
		for _, l := range r.links {
			if p := int(l.parent); p < n && f.recs[p].flags&(recInUse|recDir) == recInUse|recDir &&
				(l.parentSeq == 0 || l.parentSeq == f.recs[p].seq) && fsys.ValidName(l.name) {
				if f.links == nil {
					f.links = map[int32][]namedChild{}
				}
				f.links[int32(p)] = append(f.links[int32(p)], namedChild{rec: int32(i), name: l.name})
			}
		}
	}
}

// namedChild is a hard link: record rec under name in some directory.
type namedChild struct {
	rec  int32
	name string
}

// Walk visits the root directory and, from it down, every directory, file
// and alternate data stream ("path:stream") whose record names a
// resolvable parent, each directory before its entries, and a live file's
// other names (hard links) as Link entries. Entries of deleted
// records are marked Deleted; their runs are the parts whose clusters
// $Bitmap still has free (clusters allocated again belong to their new
// owner), and their resident data, which stays in the freed MFT record.
// $MFT's own data is not given (its bytes are the records: they are
// allocated metadata, with resident data attributed to its file).
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	type job struct {
		rec   int
		path  string
		depth int
	}
	var buf []fsys.Run
	budget := f.newClusterBudget()
	emitRecord := func(i int, p string) error {
		r := &f.recs[i]
		deleted := r.flags&recInUse == 0
		var id [2]uint64 // the file's unnamed stream: other names link to it
		if !deleted && r.flags&recDir == 0 {
			id = recordID(i)
		}
		if r.flags&recDir != 0 {
			buf = f.entryRuns(buf[:0], r.index, -1, deleted, budget)
			if err := fn(fsys.Entry{Path: p, Mode: fs.ModeDir | 0o755, Runs: buf, Deleted: deleted}); err != nil {
				return err
			}
		} else if r.stream("") == nil {
			if err := fn(fsys.Entry{Path: p, Mode: 0o644, Deleted: deleted, ID: id}); err != nil {
				return err
			}
		}
		for _, s := range r.streams {
			sp := p
			if s.name != "" {
				sp = p + ":" + s.name
			} else if r.flags&recDir != 0 {
				continue // a directory's unnamed data: none on a sane volume
			}
			buf = buf[:0]
			if i != recMFT || s.name != "" {
				buf = f.entryRuns(buf, s.runs, s.zeroFrom(), deleted, budget)
			}
			e := fsys.Entry{Path: sp, Mode: 0o644, Size: s.size, Runs: buf, Deleted: deleted}
			if s.name == "" {
				e.ID = id
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	}
	if err := emitRecord(recRoot, "/"); err != nil {
		return err
	}
	seen := make([]bool, len(f.recs))
	seen[recRoot] = true
	stack := []job{{rec: recRoot, path: "/"}}
	var notes []string
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		j := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for c := f.firstChild[j.rec]; c >= 0; c = f.next[c] {
			if seen[c] {
				continue
			}
			if err := ctx.Err(); err != nil { // a directory may hold a million records
				return err
			}
			seen[c] = true
			p := fsys.Join(j.path, f.recs[c].name)
			if err := emitRecord(int(c), p); err != nil {
				return err
			}
			if f.recs[c].flags&recDir != 0 && (f.firstChild[c] >= 0 || len(f.links[c]) > 0) {
				if j.depth >= maxDepth {
					notes = append(notes, fmt.Sprintf("%s: deeper than %d directories: not walked", p, maxDepth))
					continue
				}
				stack = append(stack, job{rec: int(c), path: p, depth: j.depth + 1})
			}
		}
		// The other names (hard links) of live files in this directory.
		for _, l := range f.links[int32(j.rec)] {
			if f.recs[l.rec].flags&recDir == 0 {
				if err := fn(fsys.Entry{Path: fsys.Join(j.path, l.name), Mode: 0o644, ID: recordID(int(l.rec)), Link: true}); err != nil {
					return err
				}
			}
		}
	}
	if n := budget.note(); n != "" {
		notes = append([]string{n}, notes...) // first, so that a shortened note still says it
	}
	if len(notes) > 0 {
		return &fsys.PartialError{Notes: notes[:min(len(notes), 8)]}
	}
	return nil
}

// recordID is the Entry.ID of the file in MFT record i.
func recordID(i int) [2]uint64 { return [2]uint64{0, uint64(i) + 1} }

// zeroFrom is where a stream's bytes start to read as zeros although the
// file goes on (its initialized size), or -1.
func (s *stream) zeroFrom() int64 {
	if s.resident || s.init >= s.size {
		return -1
	}
	return s.init
}

// clusterBudget bounds the clusters of deleted records' runs that one walk
// tests in $Bitmap to twice the volume's clusters: a hostile record can
// repeat a run over the whole volume a hundred times (delta 0), and a
// thousand records can. Past it, the deleted entries after keep no runs:
// their bytes are still scanned, located by $Bitmap without a path.
type clusterBudget struct {
	left, total int64
	out         bool // a run did not fit: it and the deleted runs after were dropped
}

func (f *FS) newClusterBudget() *clusterBudget {
	return &clusterBudget{left: 2 * f.clusters, total: 2 * f.clusters}
}

// note says that the budget ran out, or is "".
func (b *clusterBudget) note() string {
	if b == nil || !b.out {
		return ""
	}
	return fmt.Sprintf("ntfs: deleted records' runs: the walk tested its budget of %d clusters in $Bitmap (twice the volume's clusters), and the deleted files and directories after were listed without their clusters", b.total)
}

// entryRuns appends runs to dst for an entry: bytes from init (see
// zeroFrom; -1 for none) on read as zeros, so they are Unwritten;
// a deleted entry keeps only the clusters $Bitmap has free, tested within
// budget b (nil: none).
func (f *FS) entryRuns(dst, runs []fsys.Run, init int64, deleted bool, b *clusterBudget) []fsys.Run {
	for _, r := range runs {
		if init >= 0 && !r.Inline && !r.Compressed && r.FileOff+r.Len > init {
			if cut := init - r.FileOff; cut > 0 {
				head := r
				head.Len = cut
				dst = f.appendRun(dst, head, deleted, b)
				r.Off, r.FileOff, r.Len = r.Off+cut, r.FileOff+cut, r.Len-cut
			}
			r.Unwritten = true
		}
		dst = f.appendRun(dst, r, deleted, b)
	}
	return dst
}

func (f *FS) appendRun(dst []fsys.Run, r fsys.Run, deleted bool, b *clusterBudget) []fsys.Run {
	if !deleted || r.Inline || f.bitmap == nil {
		return append(dst, r)
	}
	if r.Len <= 0 {
		return dst
	}
	// Split into the stretches of clusters $Bitmap has free.
	cs := f.clusterSize
	end := r.Off + r.Len
	c0, c1 := r.Off/cs, (end+cs-1)/cs
	if b != nil {
		if b.out || c1-c0 > b.left {
			b.out, b.left = true, 0
			return dst
		}
		b.left -= c1 - c0
	}
	f.freeClusters(c0, c1, func(a, z int64) {
		dst = append(dst, sub(r, max(a*cs, r.Off), min(z*cs, end)))
	})
	return dst
}

// freeClusters calls fn with each stretch [a, z) of clusters in [c0, c1)
// that $Bitmap has free, in order, testing 64 clusters at a time.
// Clusters past $Bitmap are in use.
func (f *FS) freeClusters(c0, c1 int64, fn func(a, z int64)) {
	limit := min(c1, int64(len(f.bitmap))*8)
	for c := max(c0, 0); c < limit; {
		a := f.nextCluster(c, limit, false)
		if a >= limit {
			return
		}
		z := f.nextCluster(a, limit, true)
		fn(a, z)
		c = z
	}
}

// nextCluster is the first cluster from c on, before limit (at most
// $Bitmap's clusters), that is in use (used) or free (!used); limit when
// none is.
func (f *FS) nextCluster(c, limit int64, used bool) int64 {
	for c < limit {
		w := f.bitmapWord(c / 64)
		if !used {
			w = ^w
		}
		if w >>= uint(c % 64); w != 0 {
			return min(c+int64(bits.TrailingZeros64(w)), limit)
		}
		c = (c/64 + 1) * 64
	}
	return limit
}

// bitmapWord is word i of $Bitmap: the bits of clusters 64i to 64i+63,
// the first in bit 0; zeros past its end.
func (f *FS) bitmapWord(i int64) uint64 {
	if o := i * 8; o+8 <= int64(len(f.bitmap)) {
		return le.Uint64(f.bitmap[o:])
	}
	var w [8]byte
	copy(w[:], f.bitmap[i*8:])
	return le.Uint64(w[:])
}

// sub is the part [a, z) of run r (device offsets).
func sub(r fsys.Run, a, z int64) fsys.Run {
	r.FileOff += a - r.Off
	r.Off, r.Len = a, z-a
	return r
}
