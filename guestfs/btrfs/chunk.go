package btrfs

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
)

// Block group profile bits of a chunk's type.
const (
	bgRAID0   = 1 << 3
	bgRAID1   = 1 << 4
	bgDUP     = 1 << 5
	bgRAID10  = 1 << 6
	bgRAID5   = 1 << 7
	bgRAID6   = 1 << 8
	bgRAID1C3 = 1 << 9
	bgRAID1C4 = 1 << 10

	bgMirrored = bgRAID1 | bgDUP | bgRAID1C3 | bgRAID1C4
	bgStriped  = bgRAID0 | bgRAID10 | bgRAID5 | bgRAID6

	chunkHeader = 48 // struct btrfs_chunk without its stripes
	stripeSize  = 32 // struct btrfs_stripe
)

// chunk maps the logical range [logical, logical+length) to the copies of
// it on this device. Single and mirrored chunks (DUP, RAID1, RAID1C3/C4)
// hold whole copies, which map one to one; a striped or parity chunk
// (RAID0, RAID10, RAID5, RAID6) spreads its bytes over stripes and is not
// mapped.
type chunk struct {
	logical, length uint64
	typ             uint64
	copies          []uint64 // device offsets of the copies on this device
	// devLen is the bytes each stripe takes on its device, and stripes the
	// device offsets of this device's stripes (for State).
	devLen  uint64
	stripes []uint64
	mapped  bool // copies can be read
}

func (c *chunk) end() uint64 { return c.logical + c.length }

// physRange is one stripe of a chunk on this device.
type physRange struct {
	start, length uint64
	chunk         int // index in chunkMap.chunks
}

type chunkMap struct {
	chunks []chunk     // sorted by logical, not overlapping
	phys   []physRange // sorted by start
	notes  []string
}

// parseChunk decodes a btrfs_chunk item at logical from b and returns it
// with the bytes it took.
func parseChunk(logical uint64, b []byte, devid uint64) (chunk, int, error) {
	if len(b) < chunkHeader+stripeSize {
		return chunk{}, 0, fmt.Errorf("chunk item at logical %d: %d bytes: %w", logical, len(b), errCorrupt)
	}
	c := chunk{logical: logical, length: le.Uint64(b), typ: le.Uint64(b[24:])}
	n := int(le.Uint16(b[44:]))
	sub := uint64(le.Uint16(b[46:]))
	need := chunkHeader + n*stripeSize
	if n == 0 || need > len(b) || c.length == 0 || c.logical+c.length < c.logical {
		return chunk{}, 0, fmt.Errorf("chunk item at logical %d: %d stripes, length %d: %w", logical, n, c.length, errCorrupt)
	}
	ns := uint64(n)
	switch p := c.typ & bgStriped; {
	case p == 0:
		c.devLen = c.length
	case p&bgRAID10 != 0 && sub > 0 && sub <= ns:
		c.devLen = c.length * sub / ns
	case p&bgRAID5 != 0 && ns > 1:
		c.devLen = c.length / (ns - 1)
	case p&bgRAID6 != 0 && ns > 2:
		c.devLen = c.length / (ns - 2)
	default:
		c.devLen = c.length / ns
	}
	for i := 0; i < n; i++ {
		s := b[chunkHeader+i*stripeSize:]
		if le.Uint64(s) != devid {
			continue
		}
		off := le.Uint64(s[8:])
		c.stripes = append(c.stripes, off)
		if c.typ&bgStriped == 0 || n == 1 {
			c.copies = append(c.copies, off)
		}
	}
	c.mapped = len(c.copies) > 0
	return c, need, nil
}

// profile names a chunk's profile for notes.
func profile(typ uint64) string {
	for _, p := range []struct {
		bit  uint64
		name string
	}{{bgRAID0, "RAID0"}, {bgRAID10, "RAID10"}, {bgRAID5, "RAID5"}, {bgRAID6, "RAID6"},
		{bgRAID1, "RAID1"}, {bgRAID1C3, "RAID1C3"}, {bgRAID1C4, "RAID1C4"}, {bgDUP, "DUP"}} {
		if typ&p.bit != 0 {
			return p.name
		}
	}
	return "single"
}

// bootstrap maps the system chunks listed in the superblock's
// sys_chunk_array: they hold the chunk tree.
func (m *chunkMap) bootstrap(sb []byte, devid uint64) error {
	n := int(le.Uint32(sb[0xa0:]))
	if n > sysArrayMax {
		return fmt.Errorf("%d bytes: %w", n, errCorrupt)
	}
	arr := sb[sysArrayOff : sysArrayOff+n]
	var cs []chunk
	for len(arr) > 0 {
		if len(arr) < keySize {
			return fmt.Errorf("truncated key: %w", errCorrupt)
		}
		k := readKey(arr)
		if k.typ != typeChunkItem {
			return fmt.Errorf("key type %d: %w", k.typ, errCorrupt)
		}
		c, used, err := parseChunk(k.off, arr[keySize:], devid)
		if err != nil {
			return err
		}
		cs = append(cs, c)
		arr = arr[keySize+used:]
	}
	if len(cs) == 0 {
		return fmt.Errorf("no system chunk: %w", errCorrupt)
	}
	m.set(cs)
	return nil
}

// set replaces the map with cs: sorted, chunks that overlap an earlier one
// dropped, and the per-device index rebuilt.
func (m *chunkMap) set(cs []chunk) {
	slices.SortStableFunc(cs, func(a, b chunk) int { return cmp.Compare(a.logical, b.logical) })
	m.chunks = m.chunks[:0]
	dropped := 0
	for _, c := range cs {
		if n := len(m.chunks); n > 0 && c.logical < m.chunks[n-1].end() {
			dropped++
			continue
		}
		m.chunks = append(m.chunks, c)
	}
	if dropped > 0 {
		m.notes = append(m.notes, fmt.Sprintf("%d overlapping chunk items ignored", dropped))
	}
	m.phys = m.phys[:0]
	for i, c := range m.chunks {
		for _, s := range c.stripes {
			if s+c.devLen > s {
				m.phys = append(m.phys, physRange{start: s, length: c.devLen, chunk: i})
			}
		}
	}
	slices.SortFunc(m.phys, func(a, b physRange) int { return cmp.Compare(a.start, b.start) })
}

// lookup returns the chunk holding logical, or nil.
func (m *chunkMap) lookup(logical uint64) *chunk {
	i, _ := slices.BinarySearchFunc(m.chunks, logical+1, func(c chunk, t uint64) int { return cmp.Compare(c.logical, t) })
	if i == 0 {
		return nil
	}
	c := &m.chunks[i-1]
	if logical >= c.end() {
		return nil
	}
	return c
}

// atPhys returns the chunk stripe holding device offset off, or nil.
func (m *chunkMap) atPhys(off uint64) (*physRange, *chunk) {
	i, _ := slices.BinarySearchFunc(m.phys, off+1, func(p physRange, t uint64) int { return cmp.Compare(p.start, t) })
	// Stripes do not overlap on a sane device; on a corrupt one, look back
	// a little for a longer stripe that covers off.
	for j := i - 1; j >= 0 && j >= i-4; j-- {
		p := &m.phys[j]
		if off >= p.start && off-p.start < p.length {
			return p, &m.chunks[p.chunk]
		}
	}
	return nil, nil
}

var errUnmapped = errors.New("logical address not in a chunk mapped on this device")

// piece is a device range that holds a logical range's bytes.
type piece struct {
	phys    uint64
	length  uint64
	logical uint64
}

// mapRange calls fn for each device piece that holds [logical,
// logical+n): for each copy when all is set, else the first copy only.
func (m *chunkMap) mapRange(logical, n uint64, all bool, fn func(piece)) error {
	for n > 0 {
		c := m.lookup(logical)
		if c == nil || !c.mapped {
			return fmt.Errorf("logical %d: %w", logical, errUnmapped)
		}
		take := min(n, c.end()-logical)
		for i, cp := range c.copies {
			if i > 0 && !all {
				break
			}
			fn(piece{phys: cp + (logical - c.logical), length: take, logical: logical})
		}
		logical += take
		n -= take
	}
	return nil
}

// readChunkTree reads every CHUNK_ITEM of the chunk tree (whose blocks the
// bootstrap chunks map) and makes them the map; system chunks the tree
// lacks stay as the superblock listed them.
func (f *FS) readChunkTree(ctx context.Context, root treeRoot) error {
	var cs []chunk
	seen := map[uint64]bool{}
	lo := key{obj: firstChunkObj, typ: typeChunkItem}
	hi := key{obj: firstChunkObj, typ: typeChunkItem, off: ^uint64(0)}
	err := f.iterate(ctx, root, lo, hi, nil, func(it item) error {
		if len(cs) >= maxChunks {
			return fmt.Errorf("more than %d chunks: %w", maxChunks, errCorrupt)
		}
		c, _, err := parseChunk(it.k.off, it.data, f.devid)
		if err != nil {
			return err
		}
		seen[c.logical] = true
		cs = append(cs, c)
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range f.chunks.chunks {
		if !seen[c.logical] {
			cs = append(cs, c)
		}
	}
	f.chunks.set(cs)
	unmapped := map[string]int{}
	other := 0
	for _, c := range f.chunks.chunks {
		switch {
		case c.typ&bgStriped != 0 && !c.mapped:
			unmapped[profile(c.typ)]++
		case len(c.stripes) == 0:
			other++
		}
	}
	for _, p := range []string{"RAID0", "RAID10", "RAID5", "RAID6"} {
		if n := unmapped[p]; n > 0 {
			f.chunks.notes = append(f.chunks.notes, fmt.Sprintf("%d %s chunks not supported: their files and space are not attributed", n, p))
		}
	}
	if other > 0 {
		f.chunks.notes = append(f.chunks.notes, fmt.Sprintf("%d chunks only on other devices: not read", other))
	}
	return nil
}
