package guestfs

import (
	"cmp"
	"context"
	"errors"
	iofs "io/fs"
	"path"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// maxRuns bounds one filesystem's index (32 bytes a run: 128 MiB).
	// Past it, offsets still get their allocated/free state, without path.
	maxRuns = 4 << 20
	// maxNodes bounds the path table the same way.
	maxNodes = 4 << 20
	// maxPathDepth bounds path reconstruction on a corrupt parent chain.
	maxPathDepth = 4096
	// MaxLinkNames bounds the other names (hard links) a location lists;
	// the rest are counted (a backup tree that hard-links a file into
	// hundreds of daily copies).
	MaxLinkNames = 64
)

// Run flags, from fsys.Run and fsys.Entry.
const (
	runUnwritten uint8 = 1 << iota
	runCompressed
	runInline
	runDeleted
	// A compressed run's codec (fsys.Run.Codec) takes the next three
	// bits (codecFlags).
	runCodecShift = 4
)

// codecFlags is a compressed run's codec as a run's flags keep it.
func codecFlags(codec string) uint8 {
	switch codec {
	case "zlib":
		return 1 << runCodecShift
	case "lzo":
		return 2 << runCodecShift
	case "zstd":
		return 3 << runCodecShift
	case "lznt1":
		return 4 << runCodecShift
	}
	return 0
}

// codec is the compressed run's codec, or "" where none is known.
func (r run) codec() string {
	switch r.flags >> runCodecShift & 7 {
	case 1:
		return "zlib"
	case 2:
		return "lzo"
	case 3:
		return "zstd"
	case 4:
		return "lznt1"
	}
	return ""
}

// run maps n bytes at filesystem offset off to byte fileOff of node's file.
type run struct {
	off     int64
	n       int64
	fileOff int64
	node    uint32
	flags   uint8
}

// node is one path component: the path of node i is path(parent) + "/" + name.
// Node 0 is the root directory.
type node struct {
	parent uint32
	// alias, when not 0, is the node of the file's entry with runs: this
	// node is another name of that file (a hard link).
	alias   uint32
	name    string
	size    int64 // file size, for slack
	regular bool  // a regular file (RegularFiles lists those)
}

// fileIndex attributes the bytes of one filesystem: the runs its walk gave,
// sorted, and the filesystem itself for the bytes no run covers and for
// reading files.
type fileIndex struct {
	fs    fsys.FS
	runs  []run // sorted by off
	nodes []node
	// links are the other names of files with several (hard links), by
	// the node that carries the runs.
	links map[uint32][]uint32
	// noPaths marks a filesystem whose walk visited nothing (squashfs):
	// its findings are never attributed to paths.
	noPaths bool
	// truncated: some entries or runs are not indexed (over the caps).
	truncated bool
}

// dataOf returns the byte ranges of the regular file at path p that hold
// data, in file offsets ([start, end), sorted, joined), and false when
// the index cannot tell (see dataRuns).
func (x *fileIndex) dataOf(p string) ([][2]int64, bool) {
	runs, ok := x.dataRuns(p)
	if !ok {
		return nil, false
	}
	var out [][2]int64
	for _, r := range runs {
		if k := len(out); k > 0 && r.fileOff <= out[k-1][1] {
			out[k-1][1] = max(out[k-1][1], r.fileOff+r.n)
			continue
		}
		out = append(out, [2]int64{r.fileOff, r.fileOff + r.n})
	}
	return out, true
}

// dataRuns returns the runs of the regular file at path p that hold data,
// sorted by file offset, and false when the index cannot tell: no live
// regular file there, an index cut at its caps, runs whose offsets do not
// map one to one onto the file (compressed, inline). Preallocated runs
// (unwritten) read as zeros, so they are no data.
func (x *fileIndex) dataRuns(p string) ([]run, bool) {
	if x.truncated || x.noPaths || !path.IsAbs(p) {
		return nil, false
	}
	// One pass over the nodes for the file's name, each match checked by
	// its parent chain: a hostile guest's 4 Mi nodes cost a pass per
	// lookup, not one per path component.
	p = path.Clean(p)
	base := path.Base(p)
	n, found := uint32(0), false
	for i := 1; i < len(x.nodes); i++ {
		if nd := x.nodes[i]; nd.name == base && (nd.regular || nd.alias != 0) && x.path(uint32(i)) == p {
			n, found = uint32(i), true
			if nd.alias != 0 {
				n = nd.alias // another name of the same file
			}
			break
		}
	}
	if !found {
		return nil, false
	}
	var out []run
	for _, r := range x.runs {
		if r.node != n {
			continue
		}
		switch {
		case r.flags&runDeleted != 0:
			return nil, false // a deleted entry of the same name: which is which
		case r.flags&(runCompressed|runInline) != 0:
			return nil, false
		case r.flags&runUnwritten != 0:
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b run) int { return cmp.Compare(a.fileOff, b.fileOff) })
	return out, true
}

// place is what the index says of one offset.
type place struct {
	path, state string
	// links are the file's other names (hard links), at most
	// MaxLinkNames of them, sorted; linksOmitted counts the rest.
	links        []string
	linksOmitted int
}

func (x *fileIndex) locate(off int64) place {
	i, _ := slices.BinarySearchFunc(x.runs, off+1, func(r run, t int64) int { return cmp.Compare(r.off, t) })
	if i > 0 {
		r := x.runs[i-1]
		if off < r.off+r.n {
			pl := place{path: x.path(r.node), state: StateAllocated}
			pl.links, pl.linksOmitted = x.linkNames(r.node, pl.path)
			switch {
			case r.flags&runDeleted != 0:
				pl.state = StateDeletedRecord
			case r.flags&runUnwritten != 0:
				pl.state = StateFree // preallocated: the guest reads zeros
			case r.flags&(runCompressed|runInline) != 0:
				// Compressed offsets do not map one to one onto the file,
				// and inline data is inside live metadata: no slack.
			case r.fileOff+(off-r.off) >= x.nodes[r.node].size:
				pl.state = StateFree // slack past the end of the file
			}
			return pl
		}
	}
	if x.fs == nil {
		return place{state: StateAllocated}
	}
	return place{state: x.fs.State(off)}
}

// linkNames lists the other names of node n's file, whose own path is
// p: at most MaxLinkNames, sorted, and how many more there are.
func (x *fileIndex) linkNames(n uint32, p string) ([]string, int) {
	ids := x.links[n]
	if len(ids) == 0 {
		return nil, 0
	}
	seen := map[string]bool{p: true}
	var out []string
	omitted := 0
	for _, a := range ids {
		q := x.path(a)
		if seen[q] {
			continue // a corrupt directory naming the file twice
		}
		seen[q] = true
		if len(out) == MaxLinkNames {
			omitted++
			continue
		}
		out = append(out, q)
	}
	slices.Sort(out)
	return out, omitted
}

func (x *fileIndex) path(n uint32) string {
	if n == 0 {
		return "/"
	}
	var parts []string
	for i := 0; n != 0 && i < maxPathDepth; i++ {
		nd := x.nodes[n]
		parts = append(parts, nd.name)
		n = nd.parent
	}
	slices.Reverse(parts)
	return "/" + strings.Join(parts, "/")
}

// buildIndex walks f and indexes every entry's runs. A partial walk (a
// *fsys.PartialError) gives an index and notes; any other error, none.
func buildIndex(ctx context.Context, f fsys.FS) (*fileIndex, []string, error) {
	b := newIndexBuilder()
	visited := 0
	err := f.Walk(ctx, func(e fsys.Entry) error {
		visited++
		id, ok := b.addNode(e.Path, e.Size, e.Mode)
		if !ok {
			return nil
		}
		switch {
		case e.Link:
			if e.ID != ([2]uint64{}) {
				b.x.nodes[id].regular = false
				b.pending = append(b.pending, pendingLink{id, e.ID})
			}
			return nil // its runs are the entry with the same ID's
		case e.ID != ([2]uint64{}) && e.Mode.IsRegular() && !e.Deleted:
			if _, dup := b.byID[e.ID]; !dup {
				b.byID[e.ID] = id
			}
		}
		var extra uint8
		if e.Deleted {
			extra = runDeleted
		}
		for _, r := range e.Runs {
			fl := extra
			if r.Unwritten {
				fl |= runUnwritten
			}
			if r.Compressed {
				fl |= runCompressed | codecFlags(r.Codec)
			}
			if r.Inline {
				fl |= runInline
			}
			b.addRun(run{off: r.Off, n: r.Len, fileOff: r.FileOff, node: id, flags: fl})
		}
		return nil
	})
	var notes []string
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var pe *fsys.PartialError
		if !errors.As(err, &pe) {
			return nil, nil, err
		}
		notes = append(notes, shortErr(pe))
	}
	if b.truncated {
		notes = append(notes, "index truncated: some paths are not attributed")
	}
	x := b.finish()
	x.fs = f
	x.noPaths = visited == 0
	x.truncated = b.truncated
	return x, notes, nil
}

func shortErr(err error) string {
	s := err.Error()
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	return strings.ReplaceAll(s, "\n", "; ")
}

// indexBuilder collects nodes and runs during a walk. Walks visit a
// directory before its entries, so a parent's node always exists.
type indexBuilder struct {
	x         fileIndex
	dirs      map[string]uint32 // directory path -> node, during the build only
	truncated bool
	// byID is the node of each regular file with runs, by Entry.ID, and
	// pending the Link entries to tie to them once the walk is done (a
	// walk may give a link before the file's entry with runs).
	byID    map[[2]uint64]uint32
	pending []pendingLink
}

// pendingLink is a Link entry's node and the ID of the file it names.
type pendingLink struct {
	node uint32
	id   [2]uint64
}

func newIndexBuilder() *indexBuilder {
	return &indexBuilder{
		x:    fileIndex{nodes: []node{{}}},
		dirs: map[string]uint32{"/": 0},
		byID: map[[2]uint64]uint32{},
	}
}

// addNode adds the node for absolute path p and returns its id.
func (b *indexBuilder) addNode(p string, size int64, mode iofs.FileMode) (uint32, bool) {
	isDir := mode.IsDir()
	if p == "/" {
		b.x.nodes[0].size = size
		return 0, true
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return 0, false // not absolute
	}
	if len(b.x.nodes) >= maxNodes {
		b.truncated = true
		return 0, false
	}
	parentPath, name := p[:i], p[i+1:]
	if parentPath == "" {
		parentPath = "/"
	}
	parent, ok := b.dirs[parentPath]
	if !ok {
		return 0, false // parent not indexed (truncated or unreadable)
	}
	id := uint32(len(b.x.nodes))
	b.x.nodes = append(b.x.nodes, node{parent: parent, name: name, size: size, regular: mode.IsRegular()})
	if isDir {
		b.dirs[p] = id
	}
	return id, true
}

func (b *indexBuilder) addRun(r run) {
	if r.n <= 0 {
		return
	}
	if len(b.x.runs) >= maxRuns {
		b.truncated = true
		return
	}
	b.x.runs = append(b.x.runs, r)
}

func (b *indexBuilder) finish() *fileIndex {
	for _, l := range b.pending {
		if n, ok := b.byID[l.id]; ok && n != l.node {
			b.x.nodes[l.node].alias = n
			if b.x.links == nil {
				b.x.links = map[uint32][]uint32{}
			}
			b.x.links[n] = append(b.x.links[n], l.node)
		}
	}
	b.byID, b.pending = nil, nil
	slices.SortFunc(b.x.runs, func(a, c run) int { return cmp.Compare(a.off, c.off) })
	b.x.runs = slices.Clip(b.x.runs)
	b.x.nodes = slices.Clip(b.x.nodes)
	b.dirs = nil
	return &b.x
}
