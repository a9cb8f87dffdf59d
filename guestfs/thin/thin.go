// Package thin reads the metadata of an LVM2 thin pool (device-mapper's
// dm-thin, as the kernel and thin-provisioning-tools write it): which
// data block of the pool holds each block of each thin volume.
//
// The metadata device is made of 4 KiB blocks. Block 0 is the superblock
// (magic 27022010); it points to two B-trees of persistent-data's format:
// the device details tree (device id -> mapped blocks, transaction,
// times) and the two-level mapping tree (device id -> the root of that
// device's tree; virtual block -> data block << 24 | time). A B-tree node
// is a 32-byte header (flags: internal 1, leaf 2; nr_entries,
// max_entries, value_size), max_entries 64-bit keys, then the values.
//
// Everything here is bounded: nodes must lie in the metadata device, each
// is read once (a cycle is an error), keys must ascend, and the runs kept
// are capped (Limits). Errors name the metadata device and the byte
// offset.
package thin

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
)

// Magic is the superblock's magic number.
const Magic = 27022010

// BlockSize is the metadata block size.
const BlockSize = 4096

const (
	headerSize   = 32
	flagInternal = 1
	flagLeaf     = 2
	// maxDepth bounds a B-tree's height (a 4 KiB node of 64-bit keys
	// holds over 250 entries: 8 levels address far more blocks than any
	// pool holds).
	maxDepth = 8
)

// maxBlock bounds the byte offsets of the blocks Read accepts, virtual
// and data (2^60: no pool is an exbibyte).
const maxBlock = 1 << 60

// Limits bound what Read keeps.
type Limits struct {
	// MaxEntries bounds what Read keeps of all trees together: devices,
	// runs (a run is a range of consecutive virtual blocks in
	// consecutive data blocks, within one leaf) and the child references
	// of internal nodes; 0 is DefaultMaxEntries. A node that several
	// trees share (a snapshot's and its origin's) is kept once.
	MaxEntries int
}

// DefaultMaxEntries is 4 Mi (about 100 MB of runs): a 1 TiB thin volume
// of 64 KiB blocks, no two of them adjacent, has 16 Mi runs; a real
// pool's snapshots share their origin's leaves, which count once.
const DefaultMaxEntries = 4 << 20

// ErrTooManyEntries is returned (wrapped) when the metadata needs more
// than Limits.MaxEntries.
var ErrTooManyEntries = errors.New("thin pool metadata over the cap")

// Metadata is what a thin pool's metadata says.
type Metadata struct {
	// DataBlockSize is the pool's block size in bytes (its chunk size).
	DataBlockSize int64
	// DataBlocks is the number of blocks of the data device.
	DataBlocks uint64
	// Devices are the thin volumes, by device id.
	Devices map[uint64]*Device
}

// Device is one thin volume's mapping: a tree of the metadata's nodes,
// shared with the devices whose trees share them (a snapshot's leaves
// are its origin's until either writes there).
type Device struct {
	ID           uint64
	MappedBlocks uint64
	root         *node // nil: nothing mapped
}

// Run maps Len virtual blocks from VBlock to data blocks from DBlock.
type Run struct {
	VBlock, DBlock, Len uint64
}

// Leaf is one leaf node of the mapping trees: its runs, sorted by VBlock
// and disjoint. Devices that share the node share the *Leaf, so a
// caller can tell a shared leaf by its pointer.
type Leaf struct {
	// Block is the node's metadata block.
	Block uint64
	Runs  []Run
}

// node is a mapping tree node, read once however many trees reach it.
type node struct {
	lo, hi uint64 // the first and last virtual block mapped below it
	height int    // 0 for a leaf
	kids   []*node
	leaf   *Leaf
}

// Find returns the data block that virtual block v maps to and how many
// blocks from v on map to consecutive data blocks within one leaf (ok);
// or, v unmapped, how many blocks from v on are unmapped (n 0: all the
// rest).
func (d *Device) Find(v uint64) (db, n uint64, ok bool) {
	nd := d.root
	var next uint64 // the first mapped block after nd's, 0: none
	for nd != nil && nd.leaf == nil {
		i, _ := slices.BinarySearchFunc(nd.kids, v+1, func(k *node, t uint64) int { return cmp.Compare(k.lo, t) })
		if i == 0 {
			return 0, nd.kids[0].lo - v, false
		}
		if i < len(nd.kids) {
			next = nd.kids[i].lo
		}
		if v > nd.kids[i-1].hi {
			if next > 0 { // the next kid's first block, or the parent's next
				return 0, next - v, false
			}
			return 0, 0, false
		}
		nd = nd.kids[i-1]
	}
	if nd == nil {
		return 0, 0, false
	}
	runs := nd.leaf.Runs
	i, _ := slices.BinarySearchFunc(runs, v+1, func(r Run, t uint64) int { return cmp.Compare(r.VBlock, t) })
	if i > 0 {
		if r := runs[i-1]; v < r.VBlock+r.Len {
			return r.DBlock + (v - r.VBlock), r.VBlock + r.Len - v, true
		}
	}
	if i < len(runs) {
		return 0, runs[i].VBlock - v, false
	}
	if next > 0 {
		return 0, next - v, false
	}
	return 0, 0, false
}

// Lookup returns the data block that virtual block v maps to.
func (d *Device) Lookup(v uint64) (uint64, bool) {
	db, _, ok := d.Find(v)
	return db, ok
}

// Leaves yields the device's leaves in virtual block order.
func (d *Device) Leaves() iter.Seq[*Leaf] {
	return func(yield func(*Leaf) bool) {
		var walk func(n *node) bool
		walk = func(n *node) bool {
			if n.leaf != nil {
				return yield(n.leaf)
			}
			for _, k := range n.kids {
				if !walk(k) {
					return false
				}
			}
			return true
		}
		if d.root != nil {
			walk(d.root)
		}
	}
}

// Runs returns the device's runs, sorted, adjacent ones joined across
// leaves too (a copy: for tools and tests; Find and Leaves read the
// shared nodes).
func (d *Device) Runs() []Run {
	var out []Run
	for l := range d.Leaves() {
		for _, r := range l.Runs {
			if n := len(out); n > 0 && out[n-1].VBlock+out[n-1].Len == r.VBlock && out[n-1].DBlock+out[n-1].Len == r.DBlock {
				out[n-1].Len += r.Len
				continue
			}
			out = append(out, r)
		}
	}
	return out
}

// First returns the device's first run.
func (d *Device) First() (Run, bool) {
	n := d.root
	for n != nil && n.leaf == nil {
		n = n.kids[0]
	}
	if n == nil {
		return Run{}, false
	}
	return n.leaf.Runs[0], true
}

// reader reads one metadata device.
type reader struct {
	r          io.ReaderAt
	name       string
	blocks     uint64 // metadata blocks in the device
	reads      int    // nodes read, all walks together
	entries    int
	maxEntries int
	dataBlocks uint64
	blockSize  int64
	// nodes are the mapping trees' nodes read so far (nil while one is
	// being read: reaching it again then is a cycle).
	nodes map[uint64]*node
}

// keep counts n entries kept against the cap.
func (rd *reader) keep(n int) error {
	if rd.entries+n > rd.maxEntries {
		return fmt.Errorf("%s: %w: more than %d devices, runs and nodes kept", rd.name, ErrTooManyEntries, rd.maxEntries)
	}
	rd.entries += n
	return nil
}

// Read reads the thin pool metadata that r holds, size bytes, named name
// (for errors).
func Read(r io.ReaderAt, size int64, name string, lim Limits) (*Metadata, error) {
	if size < BlockSize {
		return nil, model.Errorf(name, 0, "thin pool metadata of %d bytes: no superblock", size)
	}
	sb := make([]byte, 512)
	if _, err := r.ReadAt(sb, 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "read thin pool superblock")
	}
	le := binary.LittleEndian
	if m := le.Uint64(sb[32:]); m != Magic {
		return nil, model.Errorf(name, 32, "not thin pool metadata: magic %d", m)
	}
	mappingRoot, detailsRoot := le.Uint64(sb[320:]), le.Uint64(sb[328:])
	dbs := int64(le.Uint32(sb[336:]))
	if dbs < 128 || dbs > 2097152 || dbs%8 != 0 { // 64 KiB to 1 GiB, as dm-thin allows, in 4 KiB multiples here
		return nil, model.Errorf(name, 336, "thin pool data block size of %d sectors", dbs)
	}
	if mbs := le.Uint32(sb[340:]); mbs != BlockSize/512 {
		return nil, model.Errorf(name, 340, "metadata block size of %d sectors", mbs)
	}
	md := &Metadata{DataBlockSize: dbs * 512, DataBlocks: le.Uint64(sb[64:]), Devices: map[uint64]*Device{}}
	rd := &reader{r: r, name: name, blocks: uint64(size / BlockSize), maxEntries: lim.MaxEntries,
		dataBlocks: md.DataBlocks, blockSize: md.DataBlockSize, nodes: map[uint64]*node{}}
	if rd.maxEntries <= 0 {
		rd.maxEntries = DefaultMaxEntries
	}
	device := func(id uint64) (*Device, error) {
		if d := md.Devices[id]; d != nil {
			return d, nil
		}
		if err := rd.keep(1); err != nil {
			return nil, err
		}
		d := &Device{ID: id}
		md.Devices[id] = d
		return d, nil
	}
	// The device details: mapped blocks, for the report.
	err := rd.walk(detailsRoot, 24, func(k uint64, v []byte, _ int64) error {
		d, err := device(k)
		if err != nil {
			return err
		}
		d.MappedBlocks = le.Uint64(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The top level: device id -> the root of its mapping tree.
	err = rd.walk(mappingRoot, 8, func(k uint64, v []byte, _ int64) error {
		d, err := device(k)
		if err != nil {
			return err
		}
		if d.root, err = rd.mapping(le.Uint64(v), 0); err != nil {
			return fmt.Errorf("device %d: %w", k, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return md, nil
}

// readNode reads the B-tree node at block, checks its header and returns
// it, whether it is internal, its entries and its value size. Internal
// nodes' values are 8-byte block numbers; a leaf's are valueSize bytes.
func (rd *reader) readNode(block uint64, depth, valueSize int) (node []byte, internal bool, nr, maxEntries, vs int, err error) {
	off := int64(block) * BlockSize
	switch {
	case depth > maxDepth:
		return nil, false, 0, 0, 0, model.Errorf(rd.name, off, "B-tree deeper than %d levels", maxDepth)
	case block == 0 || block >= rd.blocks:
		return nil, false, 0, 0, 0, model.Errorf(rd.name, off, "B-tree node at block %d, outside the %d metadata blocks", block, rd.blocks)
	case rd.reads >= maxNodeReads:
		return nil, false, 0, 0, 0, model.Errorf(rd.name, off, "more than %d B-tree nodes read", maxNodeReads)
	}
	rd.reads++
	node = make([]byte, BlockSize)
	if _, err := rd.r.ReadAt(node, off); err != nil {
		return nil, false, 0, 0, 0, model.Wrapf(err, rd.name, off, "read B-tree node")
	}
	le := binary.LittleEndian
	flags := le.Uint32(node[4:])
	nr, maxEntries, vs = int(le.Uint32(node[16:])), int(le.Uint32(node[20:])), int(le.Uint32(node[24:]))
	if got := le.Uint64(node[8:]); got != block {
		return nil, false, 0, 0, 0, model.Errorf(rd.name, off+8, "B-tree node says it is block %d", got)
	}
	internal = flags&flagInternal != 0
	want := valueSize
	if internal {
		want = 8
	}
	if internal == (flags&flagLeaf != 0) || vs != want || maxEntries <= 0 || nr > maxEntries || headerSize+maxEntries*(8+vs) > BlockSize {
		return nil, false, 0, 0, 0, model.Errorf(rd.name, off, "B-tree node: flags %d, %d of %d entries of %d-byte values", flags, nr, maxEntries, vs)
	}
	return node, internal, nr, maxEntries, vs, nil
}

// mapping reads the device mapping tree rooted at block (virtual block
// -> data block << 24 | time), at depth, once: a node that another tree
// reached before is that tree's (a snapshot shares its origin's nodes).
// A subtree whose keys do not all ascend after its left sibling's is an
// error, so no tree holds a node twice. It returns nil for a tree that
// maps nothing.
func (rd *reader) mapping(block uint64, depth int) (*node, error) {
	off := int64(block) * BlockSize
	if n, ok := rd.nodes[block]; ok {
		switch {
		case n == nil:
			return nil, model.Errorf(rd.name, off, "B-tree node at block %d reached twice (a cycle)", block)
		case n.height < 0: // an empty node: maps nothing
			return nil, nil
		case depth+n.height > maxDepth:
			return nil, model.Errorf(rd.name, off, "B-tree deeper than %d levels", maxDepth)
		}
		return n, nil
	}
	rd.nodes[block] = nil
	raw, internal, nr, maxEntries, vs, err := rd.readNode(block, depth, 8)
	if err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	keys, vals := raw[headerSize:], raw[headerSize+8*maxEntries:]
	n := &node{}
	if internal {
		for i := range nr {
			k, err := rd.mapping(le.Uint64(vals[8*i:]), depth+1)
			if err != nil {
				return nil, err
			}
			if k == nil {
				continue
			}
			if len(n.kids) > 0 && k.lo <= n.hi {
				return nil, model.Errorf(rd.name, off+int64(headerSize+8*maxEntries+8*i), "B-tree keys out of order: %d after %d", k.lo, n.hi)
			}
			if err := rd.keep(1); err != nil {
				return nil, err
			}
			if len(n.kids) == 0 {
				n.lo = k.lo
			}
			n.kids, n.hi, n.height = append(n.kids, k), k.hi, max(n.height, k.height+1)
		}
		if len(n.kids) == 0 {
			n = nil
		}
	} else {
		l := &Leaf{Block: block}
		for i := range nr {
			vb, at := le.Uint64(keys[8*i:]), off+int64(headerSize+8*maxEntries+vs*i)
			if i > 0 && vb <= n.hi {
				return nil, model.Errorf(rd.name, off+headerSize+8*int64(i), "B-tree keys out of order: %d after %d", vb, n.hi)
			}
			db := le.Uint64(vals[vs*i:]) >> 24
			if rd.dataBlocks > 0 && db >= rd.dataBlocks {
				return nil, model.Errorf(rd.name, at, "virtual block %d maps to data block %d of %d", vb, db, rd.dataBlocks)
			}
			// Byte offsets must fit an int64, with room to add (a data
			// block, 40 bits, always does).
			if vb >= maxBlock/uint64(rd.blockSize) {
				return nil, model.Errorf(rd.name, at, "virtual block %d: past 2^60 bytes", vb)
			}
			if i == 0 {
				n.lo = vb
			}
			n.hi = vb
			if m := len(l.Runs); m > 0 {
				if last := &l.Runs[m-1]; last.VBlock+last.Len == vb && last.DBlock+last.Len == db {
					last.Len++
					continue
				}
			}
			if err := rd.keep(1); err != nil {
				return nil, err
			}
			l.Runs = append(l.Runs, Run{VBlock: vb, DBlock: db, Len: 1})
		}
		if len(l.Runs) == 0 {
			n = nil
		} else {
			n.leaf = l
		}
	}
	if n == nil {
		rd.nodes[block] = &node{height: -1} // maps nothing, wherever it is reached again
		return nil, nil
	}
	rd.nodes[block] = n
	return n, nil
}

// maxNodeReads bounds the B-tree nodes one Read reads, all trees
// together (16 GiB, dm-thin's largest metadata device): each node is
// read once, however many trees share it.
const maxNodeReads = 1 << 22

// walk calls fn for every leaf entry of the B-tree rooted at block (the
// device details tree, or the top level of the mapping tree), in key
// order. Keys must ascend across the whole tree, and no node is read
// twice (a cycle).
func (rd *reader) walk(block uint64, valueSize int, fn func(k uint64, v []byte, at int64) error) error {
	last, first := uint64(0), true
	visited := map[uint64]bool{}
	var visit func(block uint64, depth int) error
	visit = func(block uint64, depth int) error {
		off := int64(block) * BlockSize
		if visited[block] {
			return model.Errorf(rd.name, off, "B-tree node at block %d reached twice (a cycle)", block)
		}
		visited[block] = true
		node, internal, nr, maxEntries, vs, err := rd.readNode(block, depth, valueSize)
		if err != nil {
			return err
		}
		le := binary.LittleEndian
		keys := node[headerSize:]
		vals := node[headerSize+8*maxEntries:]
		for i := range nr {
			k := le.Uint64(keys[8*i:])
			v := vals[vs*i : vs*(i+1)]
			if internal {
				if err := visit(le.Uint64(v), depth+1); err != nil {
					return err
				}
				continue
			}
			if !first && k <= last {
				return model.Errorf(rd.name, off+headerSize+8*int64(i), "B-tree keys out of order: %d after %d", k, last)
			}
			first, last = false, k
			if err := fn(k, v, off+int64(headerSize+8*maxEntries+vs*i)); err != nil {
				return err
			}
		}
		return nil
	}
	return visit(block, 0)
}
