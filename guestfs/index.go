package guestfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	iofs "io/fs"
	"path"
	"slices"
	"strings"
	"sync"

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

// Budgets of the bytes of names an index keeps: an analysis holds to
// its budgets (Map.budgets), these unless a test gives less.
const (
	// maxNameBytes bounds the bytes of the names the nodes keep, each
	// once (4 Mi nodes of 16 bytes; a Linux or Windows install's names
	// average under 30). The entries past it are listed without a
	// path, and the partition's note says so.
	maxNameBytes = 64 << 20
	// maxPlaceBytes bounds the paths locate builds and hands out with
	// places (a file's path and its other names, each file's once,
	// shared by every location in it): the paths of up to 500,000
	// locations, in as many files, each up to fsys.MaxPath bytes and
	// with MaxLinkNames links, would take gigabytes. Past it, places
	// are given without a path, and the partition's note says so.
	maxPlaceBytes int64 = 32 << 20
)

// sizeText is a budget in words: "64 MiB", "200 bytes".
func sizeText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}

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
	alias uint32
	// name is the node's own name, never a substring of the path the
	// walk gave (which would keep the whole path alive: a chain of
	// 2,048 directories of 255-byte names kept half a gigabyte of
	// paths); "" for a node without a path.
	name    string
	size    int64 // file size, for slack
	regular bool  // a regular file (RegularFiles lists those)
	// noPath marks an entry listed without a path (see
	// indexBuilder.addNode): its runs are indexed, its path is "".
	noPath bool
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

	// names are the names locate gives, by file; namesBytes charges
	// them to placeBudget (maxPlaceBytes), and namesCut says that a
	// place was given without its path, the budget spent. mu guards
	// them: the Map is used concurrently.
	mu          sync.Mutex
	names       map[uint32]fileNames
	namesBytes  int64
	placeBudget int64
	namesCut    bool
}

// fileNames are a file's path and other names (hard links) as locate
// gives them (see place).
type fileNames struct {
	path    string
	links   []string
	omitted int
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
	if x.truncated || x.noPaths || !path.IsAbs(p) || len(p) > fsys.MaxPath {
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
			fn := x.namesOf(r.node)
			pl := place{path: fn.path, state: StateAllocated, links: fn.links, linksOmitted: fn.omitted}
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

// namesOf returns the path and other names of node n's file, built once
// and shared by every place in the file (callers must not modify them).
// A file listed without a path takes the first of its other names that
// has one. Past x.placeBudget, a file not named yet gets none.
func (x *fileIndex) namesOf(n uint32) fileNames {
	x.mu.Lock()
	defer x.mu.Unlock()
	if fn, ok := x.names[n]; ok {
		return fn
	}
	ids, omitted := x.linkIDs(n)
	cost := int64(64 + x.pathLen(n) + 16*len(ids))
	for _, a := range ids {
		cost += int64(x.pathLen(a))
	}
	if x.namesBytes+cost > x.placeBudget {
		x.namesCut = true
		return fileNames{}
	}
	x.namesBytes += cost
	fn := fileNames{path: x.path(n), omitted: omitted}
	if len(ids) > 0 {
		fn.links = make([]string, len(ids))
		for i, a := range ids {
			fn.links[i] = x.path(a)
		}
		slices.Sort(fn.links)
		if fn.path == "" {
			fn.path, fn.links = fn.links[0], fn.links[1:]
		}
		if len(fn.links) == 0 {
			fn.links = nil
		}
	}
	if x.names == nil {
		x.names = map[uint32]fileNames{}
	}
	x.names[n] = fn
	return fn
}

// placeNote says what namesOf left without a path, for the partition's
// note; "" when nothing.
func (x *fileIndex) placeNote() string {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.namesCut {
		return ""
	}
	return fmt.Sprintf("walk incomplete: the index's budget of %s of paths given to findings is spent: findings in further files have no path", sizeText(x.placeBudget))
}

// linkIDs lists the nodes of the other names of node n's file: at most
// MaxLinkNames, one per path (a corrupt directory may name the file
// twice), and how many more there are. Two nodes have the same path when
// they have the same parent and name (the builder keys directories so),
// so no path is built to tell.
func (x *fileIndex) linkIDs(n uint32) ([]uint32, int) {
	ids := x.links[n]
	if len(ids) == 0 {
		return nil, 0
	}
	own := x.nodes[n]
	seen := map[dirKey]bool{}
	if !own.noPath {
		seen[dirKey{own.parent, own.name}] = true
	}
	var out []uint32
	omitted := 0
	for _, a := range ids {
		nd := x.nodes[a]
		if k := (dirKey{nd.parent, nd.name}); nd.noPath || seen[k] {
			continue
		} else {
			seen[k] = true
		}
		if len(out) == MaxLinkNames {
			omitted++
			continue
		}
		out = append(out, a)
	}
	return out, omitted
}

// path is node n's path: "/" for the root, "" for a node without a path.
func (x *fileIndex) path(n uint32) string {
	size := x.pathLen(n)
	switch {
	case n == 0:
		return "/"
	case size == 0:
		return ""
	}
	b := make([]byte, size)
	for at := size; n != 0; n = x.nodes[n].parent {
		nd := &x.nodes[n]
		at -= len(nd.name)
		copy(b[at:], nd.name)
		at--
		b[at] = '/'
	}
	return string(b)
}

// pathLen is the length of node n's path, 0 for a node without a path
// (or for a parent chain longer than maxPathDepth, which the builder
// never makes).
func (x *fileIndex) pathLen(n uint32) int {
	if n == 0 {
		return 1
	}
	size := 0
	for i := 0; n != 0; i++ {
		nd := &x.nodes[n]
		if nd.noPath || i == maxPathDepth {
			return 0
		}
		size += 1 + len(nd.name)
		n = nd.parent
	}
	return size
}

// buildIndex walks f and indexes every entry's runs, within the budgets
// bud. A partial walk (a *fsys.PartialError) gives an index and notes;
// any other error, none.
func buildIndex(ctx context.Context, f fsys.FS, bud budgets) (*fileIndex, []string, error) {
	b := newIndexBuilder(bud)
	visited := 0
	err := f.Walk(ctx, func(e fsys.Entry) error {
		visited++
		id, ok := b.addNode(e.Path, e.Size, e.Mode, e.Link)
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
	var walkNotes []string
	if err != nil {
		if ctx.Err() != nil {
			return nil, nil, ctx.Err()
		}
		var pe *fsys.PartialError
		if !errors.As(err, &pe) {
			return nil, nil, err
		}
		walkNotes = pe.Notes
	}
	if ns := b.pathNotes(); len(ns) > 0 {
		// After the walk's first note (a budget of block maps, named
		// first), so that a shortened note still says both.
		k := min(1, len(walkNotes))
		walkNotes = slices.Concat(walkNotes[:k], ns, walkNotes[k:])
	}
	if len(walkNotes) > 0 {
		notes = append(notes, shortErr(&fsys.PartialError{Notes: walkNotes}))
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
	x fileIndex
	// dirs are the directories' nodes by parent and name, during the
	// build only. Keyed by path, they held every directory's path: the
	// square of the depth.
	dirs map[dirKey]uint32
	// lastDir is the last directory path resolved (a walk gives a
	// directory's entries together), and lastID its node.
	lastDir    string
	lastID     uint32
	lastOK     bool
	nameBytes  int // the names the nodes keep, at most nameBudget
	nameBudget int // maxNameBytes
	// The entries listed without a path, by why (see addNode), and the
	// further names of files (Link entries) not listed.
	deep, overBudget, orphans, linksDropped int
	truncated                               bool
	// byID is the node of each regular file with runs, by Entry.ID, and
	// pending the Link entries to tie to them once the walk is done (a
	// walk may give a link before the file's entry with runs).
	byID    map[[2]uint64]uint32
	pending []pendingLink
}

// dirKey is a directory entry: the directory's node and the name.
type dirKey struct {
	parent uint32
	name   string
}

// pendingLink is a Link entry's node and the ID of the file it names.
type pendingLink struct {
	node uint32
	id   [2]uint64
}

func newIndexBuilder(bud budgets) *indexBuilder {
	return &indexBuilder{
		x:          fileIndex{nodes: []node{{}}, placeBudget: bud.placeBytes},
		dirs:       map[dirKey]uint32{},
		byID:       map[[2]uint64]uint32{},
		nameBudget: bud.nameBytes,
	}
}

// addNode adds the node for absolute path p and returns its id. An entry
// it cannot give a path is listed without one (its runs are still
// indexed, unattributed): a path longer than fsys.MaxPath bytes (which
// walks give as ""), a name past b.nameBudget, a parent directory that
// has no node (it has no path, or was not indexed). A Link entry
// (link) without a path is not listed: it is only a name.
func (b *indexBuilder) addNode(p string, size int64, mode iofs.FileMode, link bool) (uint32, bool) {
	if p == "/" {
		b.x.nodes[0].size = size
		return 0, true
	}
	if len(b.x.nodes) >= maxNodes {
		b.truncated = true
		return 0, false
	}
	parent, name := uint32(0), ""
	var why *int // the count of entries without a path this one is in
	switch i := strings.LastIndexByte(p, '/'); {
	case i < 0 || p[0] != '/' || len(p) > fsys.MaxPath:
		why = &b.deep // "", or a stream of such an entry (NTFS's ":name")
	case i == len(p)-1:
		why = &b.orphans // no name: no walk gives such a path
	default:
		name = p[i+1:]
		var ok bool
		switch parent, ok = b.dir(p[:i]); {
		case !ok:
			why = &b.orphans
		case b.nameBytes+len(name) > b.nameBudget:
			why = &b.overBudget
		}
	}
	if why != nil {
		if link {
			b.linksDropped++
			return 0, false
		}
		*why++
		id := uint32(len(b.x.nodes))
		b.x.nodes = append(b.x.nodes, node{size: size, regular: mode.IsRegular(), noPath: true})
		return id, true
	}
	name = strings.Clone(name)
	b.nameBytes += len(name)
	id := uint32(len(b.x.nodes))
	b.x.nodes = append(b.x.nodes, node{parent: parent, name: name, size: size, regular: mode.IsRegular()})
	if mode.IsDir() {
		k := dirKey{parent, name}
		if _, dup := b.dirs[k]; dup {
			b.lastOK = false // a directory named twice: the later one holds the entries after
		}
		b.dirs[k] = id
	}
	return id, true
}

// dir returns the node of directory path dir ("" for the root), resolved
// name by name from the root.
func (b *indexBuilder) dir(dir string) (uint32, bool) {
	if dir == "" {
		return 0, true
	}
	if b.lastOK && dir == b.lastDir {
		return b.lastID, true
	}
	id := uint32(0)
	for rest := dir[1:]; ; {
		name, tail, more := strings.Cut(rest, "/")
		next, ok := b.dirs[dirKey{id, name}]
		if !ok {
			return 0, false
		}
		id = next
		if !more {
			break
		}
		rest = tail
	}
	b.lastDir, b.lastID, b.lastOK = dir, id, true
	return id, true
}

// pathNotes say which entries the index lists without a path, for the
// walk's note.
func (b *indexBuilder) pathNotes() []string {
	var why []string
	if b.deep > 0 {
		why = append(why, fmt.Sprintf("%d deeper than PATH_MAX (%d bytes of path)", b.deep, fsys.MaxPath))
	}
	if b.overBudget > 0 {
		why = append(why, fmt.Sprintf("%d past the index's budget of %s of names", b.overBudget, sizeText(int64(b.nameBudget))))
	}
	if b.orphans > 0 {
		why = append(why, fmt.Sprintf("%d in a directory that has no path", b.orphans))
	}
	var out []string
	if len(why) > 0 {
		out = append(out, fmt.Sprintf("%d entries listed without a path: %s", b.deep+b.overBudget+b.orphans, strings.Join(why, ", ")))
	}
	if b.linksDropped > 0 {
		out = append(out, fmt.Sprintf("%d further names of files (hard links) without a path not listed", b.linksDropped))
	}
	return out
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
	b.dirs, b.lastDir = nil, ""
	return &b.x
}
