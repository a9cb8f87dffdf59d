package btrfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// readNode reads the tree block at logical address addr, which its parent
// says is at level: the first copy that is valid (its own address, this
// filesystem's id, the level, sane item counts, its crc32c) wins.
func (f *FS) readNode(addr uint64, level int) ([]byte, error) {
	if level < 0 || level > maxLevel {
		return nil, fmt.Errorf("tree block at logical %d: level %d: %w", addr, level, errCorrupt)
	}
	if b := f.cache.get(addr); b != nil {
		if int(b[0x64]) != level {
			return nil, fmt.Errorf("tree block at logical %d: level %d, parent says %d: %w", addr, b[0x64], level, errCorrupt)
		}
		return b, nil
	}
	ns := uint64(f.nodeSize)
	c := f.chunks.lookup(addr)
	if c == nil || !c.mapped || addr+ns > c.end() || addr+ns < addr {
		return nil, fmt.Errorf("tree block at logical %d: %w", addr, errUnmapped)
	}
	var firstErr error
	for _, cp := range c.copies {
		phys := cp + (addr - c.logical)
		b := make([]byte, ns)
		err := f.readPhys(b, phys)
		if err == nil {
			err = f.checkNode(b, addr, level)
		}
		if err == nil {
			f.cache.put(addr, b)
			return b, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("tree block at logical %d (byte %d): %w", addr, phys, err)
		}
	}
	return nil, firstErr
}

func (f *FS) readPhys(b []byte, phys uint64) error {
	if phys > uint64(f.size) || uint64(len(b)) > uint64(f.size)-phys {
		return fmt.Errorf("%d bytes at byte %d: past the end of the %d-byte partition: %w", len(b), phys, f.size, errCorrupt)
	}
	return fsys.ReadFull(f.r, b, int64(phys))
}

func (f *FS) checkNode(b []byte, addr uint64, level int) error {
	switch {
	case le.Uint64(b[0x30:]) != addr:
		return fmt.Errorf("header says logical %d: %w", le.Uint64(b[0x30:]), errCorrupt)
	case !bytes.Equal(b[0x20:0x30], f.fsid[:]):
		return fmt.Errorf("filesystem id differs: %w", errCorrupt)
	case int(b[0x64]) != level:
		return fmt.Errorf("level %d, parent says %d: %w", b[0x64], level, errCorrupt)
	case f.csum && crc32.Checksum(b[32:], crcTab) != le.Uint32(b):
		return fmt.Errorf("checksum mismatch: %w", errCorrupt)
	}
	n := int(le.Uint32(b[0x60:]))
	per := itemSize
	if level > 0 {
		per = keyPtrSize
		if n == 0 {
			return fmt.Errorf("empty internal node: %w", errCorrupt)
		}
	}
	if n > (len(b)-headerSize)/per {
		return fmt.Errorf("%d items: %w", n, errCorrupt)
	}
	return nil
}

// item is one leaf item met by iterate. data aliases the cached leaf: the
// callback copies what it keeps.
type item struct {
	k    key
	data []byte
	leaf uint64 // the leaf's logical address
	off  int    // the offset of data inside the leaf
}

// errStop ends an iteration early without error.
var errStop = errors.New("stop")

// budget bounds the tree blocks one walk visits: the same block reached
// again and again through hostile keys costs a visit each time. Each visit
// costs 1 and each item found earns itemCredit back: a sane search finds
// at least one item within its at most maxLevel+1 visits, while searches
// that wander through blocks holding nothing they want run out.
type budget struct{ left int64 }

const (
	walkBudget = 1 << 20
	itemCredit = 16
)

var errBudget = errors.New("tree block budget exhausted")

// iterate calls fn for each leaf item with lo <= key <= hi of the tree at
// root, in key order. A block is visited at most once (no cycles); b, when
// set, is charged for every block. fn returning errStop ends it early.
func (f *FS) iterate(ctx context.Context, root treeRoot, lo, hi key, b *budget, fn func(item) error) error {
	seen := map[uint64]bool{}
	err := f.descend(ctx, root.bytenr, int(root.level), lo, hi, seen, b, fn)
	if errors.Is(err, errStop) {
		return nil
	}
	return err
}

func (f *FS) descend(ctx context.Context, addr uint64, level int, lo, hi key, seen map[uint64]bool, b *budget, fn func(item) error) error {
	if seen[addr] {
		return fmt.Errorf("tree block at logical %d reached twice: %w", addr, errCorrupt)
	}
	seen[addr] = true
	if b != nil {
		if b.left--; b.left < 0 {
			return errBudget
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	node, err := f.readNode(addr, level)
	if err != nil {
		return err
	}
	n := int(le.Uint32(node[0x60:]))
	if level > 0 {
		for i := 0; i < n; i++ {
			p := node[headerSize+i*keyPtrSize:]
			if hi.less(readKey(p)) {
				break
			}
			if i+1 < n && !lo.less(readKey(node[headerSize+(i+1)*keyPtrSize:])) {
				continue // the next child starts at or before lo
			}
			if err := f.descend(ctx, le.Uint64(p[keySize:]), level-1, lo, hi, seen, b, fn); err != nil {
				return err
			}
		}
		return nil
	}
	for i := 0; i < n; i++ {
		p := node[headerSize+i*itemSize:]
		k := readKey(p)
		if k.less(lo) {
			continue
		}
		if hi.less(k) {
			break
		}
		o, sz := uint64(le.Uint32(p[keySize:])), uint64(le.Uint32(p[keySize+4:]))
		if o+sz > uint64(len(node)-headerSize) {
			return fmt.Errorf("tree block at logical %d: item %d at %d+%d: %w", addr, i, o, sz, errCorrupt)
		}
		start := headerSize + int(o)
		if b != nil {
			b.left += itemCredit
		}
		if err := fn(item{k: k, data: node[start : start+int(sz)], leaf: addr, off: start}); err != nil {
			return err
		}
	}
	return nil
}

// findRoot returns the tree root of tree id, from its ROOT_ITEM in the
// root tree, with the root directory's inode number.
func (f *FS) findRoot(ctx context.Context, id uint64) (treeRoot, uint64, error) {
	var tr treeRoot
	var dirid uint64
	found := false
	lo, hi := key{obj: id, typ: typeRootItem}, key{obj: id, typ: typeRootItem, off: ^uint64(0)}
	err := f.iterate(ctx, f.rootTree, lo, hi, nil, func(it item) error {
		if len(it.data) < rootItemLevel+1 {
			return fmt.Errorf("root item of tree %d: %d bytes: %w", id, len(it.data), errCorrupt)
		}
		tr = treeRoot{le.Uint64(it.data[rootItemBytenr:]), it.data[rootItemLevel]}
		dirid = le.Uint64(it.data[rootItemDirid:])
		found = true
		return errStop
	})
	if err != nil {
		return tr, 0, err
	}
	if !found {
		return tr, 0, fmt.Errorf("tree %d: no root item: %w", id, errCorrupt)
	}
	return tr, dirid, nil
}

// Offsets in struct btrfs_root_item (after its 160-byte inode item).
const (
	rootItemDirid  = 168
	rootItemBytenr = 176
	rootItemRefs   = 216
	rootItemLevel  = 238
)

// hasRootRef reports whether the root tree links subvolume child into
// directory dir of subvolume parent under name (a ROOT_REF item: dirid,
// sequence, name_len, name).
func (f *FS) hasRootRef(ctx context.Context, parent, child, dir uint64, name string) (bool, error) {
	k := key{obj: parent, typ: typeRootRef, off: child}
	ok := false
	err := f.iterate(ctx, f.rootTree, k, k, nil, func(it item) error {
		d := it.data
		if len(d) >= 18 {
			nl := int(le.Uint16(d[16:]))
			ok = le.Uint64(d) == dir && 18+nl <= len(d) && string(d[18:18+nl]) == name
		}
		return errStop
	})
	return ok, err
}
