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
	parent  uint32
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
		if x.nodes[i].name == base && x.nodes[i].regular && x.path(uint32(i)) == p {
			n, found = uint32(i), true
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

func (x *fileIndex) locate(off int64) (path, state string) {
	i, _ := slices.BinarySearchFunc(x.runs, off+1, func(r run, t int64) int { return cmp.Compare(r.off, t) })
	if i > 0 {
		r := x.runs[i-1]
		if off < r.off+r.n {
			p := x.path(r.node)
			switch {
			case r.flags&runDeleted != 0:
				return p, StateDeletedRecord
			case r.flags&runUnwritten != 0:
				return p, StateFree // preallocated: the guest reads zeros
			case r.flags&(runCompressed|runInline) != 0:
				// Compressed offsets do not map one to one onto the file,
				// and inline data is inside live metadata: no slack.
				return p, StateAllocated
			case r.fileOff+(off-r.off) >= x.nodes[r.node].size:
				return p, StateFree // slack past the end of the file
			}
			return p, StateAllocated
		}
	}
	if x.fs == nil {
		return "", StateAllocated
	}
	return "", x.fs.State(off)
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
}

func newIndexBuilder() *indexBuilder {
	return &indexBuilder{
		x:    fileIndex{nodes: []node{{}}},
		dirs: map[string]uint32{"/": 0},
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
	slices.SortFunc(b.x.runs, func(a, c run) int { return cmp.Compare(a.off, c.off) })
	b.x.runs = slices.Clip(b.x.runs)
	b.x.nodes = slices.Clip(b.x.nodes)
	b.dirs = nil
	return &b.x
}
