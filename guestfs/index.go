package guestfs

import (
	"cmp"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
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

// run maps n bytes at partition offset off to byte fileOff of node's file.
type run struct {
	off       int64
	n         int64
	fileOff   int64
	node      uint32
	unwritten bool // preallocated: the guest reads zeros here
}

// node is one path component: the path of node i is path(parent) + "/" + name.
// Node 0 is the root directory.
type node struct {
	parent uint32
	name   string
	size   int64 // file size, for slack
}

// fileIndex attributes the bytes of one filesystem.
type fileIndex struct {
	fs    string
	runs  []run // sorted by off
	nodes []node
	// state tells whether bytes no run covers are allocated (metadata,
	// orphaned data) or free; nil means allocated.
	state func(off int64) string
	ext   *ext4.FS // for ReadFile/ListDir; nil for other filesystems
	// noPaths marks a filesystem whose files cannot be located (squashfs):
	// everything is allocated, nothing has a path.
	noPaths bool
}

func (x *fileIndex) locate(off int64) (path, state string) {
	i, _ := slices.BinarySearchFunc(x.runs, off+1, func(r run, t int64) int { return cmp.Compare(r.off, t) })
	if i > 0 {
		r := x.runs[i-1]
		if off < r.off+r.n {
			nd := x.nodes[r.node]
			fo := r.fileOff + (off - r.off)
			if r.unwritten || fo >= nd.size {
				return x.path(r.node), StateFree // slack or preallocated space
			}
			return x.path(r.node), StateAllocated
		}
	}
	if x.state == nil {
		return "", StateAllocated
	}
	return "", x.state(off)
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

// indexBuilder collects nodes and runs during a walk. Walks visit a
// directory before its entries, so a parent's node always exists.
type indexBuilder struct {
	x         fileIndex
	dirs      map[string]uint32 // directory path -> node, during the build only
	truncated bool
}

func newIndexBuilder(fsName string) *indexBuilder {
	return &indexBuilder{
		x:    fileIndex{fs: fsName, nodes: []node{{}}},
		dirs: map[string]uint32{"/": 0},
	}
}

// addNode adds the node for absolute path p (not "/") and returns its id.
func (b *indexBuilder) addNode(p string, size int64, isDir bool) (uint32, bool) {
	if p == "/" {
		b.x.nodes[0].size = size
		return 0, true
	}
	if len(b.x.nodes) >= maxNodes {
		b.truncated = true
		return 0, false
	}
	i := strings.LastIndexByte(p, '/')
	parentPath, name := p[:i], p[i+1:]
	if parentPath == "" {
		parentPath = "/"
	}
	parent, ok := b.dirs[parentPath]
	if !ok {
		return 0, false // parent not indexed (truncated or unreadable)
	}
	id := uint32(len(b.x.nodes))
	b.x.nodes = append(b.x.nodes, node{parent: parent, name: name, size: size})
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
