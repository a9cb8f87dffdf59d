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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
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
	// MaxRuns bounds the runs of all devices together (a run is a range
	// of consecutive virtual blocks in consecutive data blocks); 0 is
	// DefaultMaxRuns.
	MaxRuns int
}

// DefaultMaxRuns is 4 Mi runs (about 100 MB): a 1 TiB thin volume of
// 64 KiB blocks, no two of them adjacent, has 16 Mi.
const DefaultMaxRuns = 4 << 20

// ErrTooManyRuns is returned (wrapped) when the mappings need more runs
// than Limits.MaxRuns.
var ErrTooManyRuns = errors.New("thin pool mappings over the cap")

// Metadata is what a thin pool's metadata says.
type Metadata struct {
	// DataBlockSize is the pool's block size in bytes (its chunk size).
	DataBlockSize int64
	// DataBlocks is the number of blocks of the data device.
	DataBlocks uint64
	// Devices are the thin volumes, by device id.
	Devices map[uint64]*Device
}

// Device is one thin volume's mapping.
type Device struct {
	ID           uint64
	MappedBlocks uint64
	// Runs are sorted by VBlock and do not overlap.
	Runs []Run
}

// Run maps Len virtual blocks from VBlock to data blocks from DBlock.
type Run struct {
	VBlock, DBlock, Len uint64
}

// Find returns the data block that virtual block v maps to and how many
// blocks from v on map to consecutive data blocks (ok); or, v unmapped,
// how many blocks from v on are unmapped (n 0: all the rest).
func (d *Device) Find(v uint64) (db, n uint64, ok bool) {
	i, _ := slices.BinarySearchFunc(d.Runs, v+1, func(r Run, t uint64) int {
		switch {
		case r.VBlock < t:
			return -1
		case r.VBlock > t:
			return 1
		}
		return 0
	})
	if i > 0 {
		if r := d.Runs[i-1]; v < r.VBlock+r.Len {
			return r.DBlock + (v - r.VBlock), r.VBlock + r.Len - v, true
		}
	}
	if i < len(d.Runs) {
		return 0, d.Runs[i].VBlock - v, false
	}
	return 0, 0, false
}

// Lookup returns the data block that virtual block v maps to.
func (d *Device) Lookup(v uint64) (uint64, bool) {
	db, _, ok := d.Find(v)
	return db, ok
}

// reader reads one metadata device.
type reader struct {
	r       io.ReaderAt
	name    string
	blocks  uint64 // metadata blocks in the device
	reads   int    // nodes read, all walks together
	runs    int
	maxRuns int
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
	rd := &reader{r: r, name: name, blocks: uint64(size / BlockSize), maxRuns: lim.MaxRuns}
	if rd.maxRuns <= 0 {
		rd.maxRuns = DefaultMaxRuns
	}
	// The device details: mapped blocks, for the report.
	err := rd.walk(detailsRoot, 24, 0, func(k uint64, v []byte, _ int64) error {
		md.Devices[k] = &Device{ID: k, MappedBlocks: le.Uint64(v)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The top level: device id -> the root of its mapping tree.
	var roots [][2]uint64
	err = rd.walk(mappingRoot, 8, 0, func(k uint64, v []byte, _ int64) error {
		roots = append(roots, [2]uint64{k, le.Uint64(v)})
		return nil
	})
	if err != nil {
		return nil, err
	}
	for _, kr := range roots {
		d := md.Devices[kr[0]]
		if d == nil {
			d = &Device{ID: kr[0]}
			md.Devices[kr[0]] = d
		}
		err := rd.walk(kr[1], 8, 0, func(vb uint64, v []byte, at int64) error {
			db := le.Uint64(v) >> 24
			if md.DataBlocks > 0 && db >= md.DataBlocks {
				return model.Errorf(name, at, "device %d: virtual block %d maps to data block %d of %d", d.ID, vb, db, md.DataBlocks)
			}
			// Byte offsets must fit an int64, with room to add (a data
			// block, 40 bits, always does).
			if vb >= maxBlock/uint64(md.DataBlockSize) {
				return model.Errorf(name, at, "device %d: virtual block %d: past 2^60 bytes", d.ID, vb)
			}
			if n := len(d.Runs); n > 0 {
				last := &d.Runs[n-1]
				if last.VBlock+last.Len == vb && last.DBlock+last.Len == db {
					last.Len++
					return nil
				}
			}
			if rd.runs >= rd.maxRuns {
				return fmt.Errorf("%s: %w: more than %d runs", name, ErrTooManyRuns, rd.maxRuns)
			}
			rd.runs++
			d.Runs = append(d.Runs, Run{VBlock: vb, DBlock: db, Len: 1})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("device %d: %w", d.ID, err)
		}
	}
	return md, nil
}

// maxNodeReads bounds the B-tree nodes one Read reads, all trees
// together (16 GiB): a snapshot's tree shares nodes with its origin's,
// so each tree is walked whole.
const maxNodeReads = 1 << 22

// walk calls fn for every leaf entry of the B-tree rooted at block, in
// key order. Every node must hold values of valueSize bytes (internal
// nodes: 8-byte block numbers), keys must ascend across the whole tree,
// and no node is read twice in one tree (trees may share nodes: a thin
// snapshot's and its origin's).
func (rd *reader) walk(block uint64, valueSize int, depth int, fn func(k uint64, v []byte, at int64) error) error {
	last, first := uint64(0), true
	visited := map[uint64]bool{}
	var visit func(block uint64, depth int) error
	visit = func(block uint64, depth int) error {
		off := int64(block) * BlockSize
		switch {
		case depth > maxDepth:
			return model.Errorf(rd.name, off, "B-tree deeper than %d levels", maxDepth)
		case block == 0 || block >= rd.blocks:
			return model.Errorf(rd.name, off, "B-tree node at block %d, outside the %d metadata blocks", block, rd.blocks)
		case visited[block]:
			return model.Errorf(rd.name, off, "B-tree node at block %d reached twice (a cycle)", block)
		case rd.reads >= maxNodeReads:
			return model.Errorf(rd.name, off, "more than %d B-tree nodes read", maxNodeReads)
		}
		visited[block] = true
		rd.reads++
		node := make([]byte, BlockSize)
		if _, err := rd.r.ReadAt(node, off); err != nil {
			return model.Wrapf(err, rd.name, off, "read B-tree node")
		}
		le := binary.LittleEndian
		flags, nr, maxEntries, vs := le.Uint32(node[4:]), int(le.Uint32(node[16:])), int(le.Uint32(node[20:])), int(le.Uint32(node[24:]))
		if got := le.Uint64(node[8:]); got != block {
			return model.Errorf(rd.name, off+8, "B-tree node says it is block %d", got)
		}
		internal := flags&flagInternal != 0
		want := valueSize
		if internal {
			want = 8
		}
		if internal == (flags&flagLeaf != 0) || vs != want || maxEntries <= 0 || nr > maxEntries || headerSize+maxEntries*(8+vs) > BlockSize {
			return model.Errorf(rd.name, off, "B-tree node: flags %d, %d of %d entries of %d-byte values", flags, nr, maxEntries, vs)
		}
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
	return visit(block, depth)
}
