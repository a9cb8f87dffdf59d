package pkgdb

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// A read-only walk of a BerkeleyDB hash database (rpm's Packages before
// 4.16), from the file's bytes, the way rpm's own bdb_ro backend walks it:
// bucket by bucket, each bucket's chain of hash pages, and each big value's
// chain of overflow pages. Keys and values live on hash pages as pairs of
// item offsets; an item is either its bytes (H_KEYDATA) or a pointer to an
// overflow chain (H_OFFPAGE), which is how rpm's headers are stored.

const (
	bdbHashMagic      = 0x061561
	bdbPageHeaderSize = 26

	bdbPageHashUnsorted = 2
	bdbPageOverflow     = 7
	bdbPageHash         = 13

	bdbItemKeyData = 1
	bdbItemOffPage = 3
)

func isBDBHash(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	m := binary.LittleEndian.Uint32(b[12:16])
	return m == bdbHashMagic || bits.ReverseBytes32(m) == bdbHashMagic
}

type bdbFile struct {
	b        []byte
	order    binary.ByteOrder
	pageSize uint32
	lastPage uint32
	seen     []uint64 // pages already walked: no page is read twice
}

// bdbHashValues calls fn with each key/value pair of the database, and the
// file offset of the pair's hash page.
func bdbHashValues(b []byte, fn func(off int64, key, val []byte) error) error {
	if !isBDBHash(b) {
		return fmt.Errorf("not a BerkeleyDB hash database")
	}
	f := &bdbFile{b: b, order: binary.LittleEndian}
	if binary.LittleEndian.Uint32(b[12:16]) != bdbHashMagic {
		f.order = binary.BigEndian
	}
	o := f.order
	if v := o.Uint32(b[16:20]); v < 8 || v > 10 {
		return fmt.Errorf("offset 16: hash version %d, want 8 to 10", v)
	}
	f.pageSize = o.Uint32(b[20:24])
	if f.pageSize < 512 || f.pageSize > 65536 || f.pageSize&(f.pageSize-1) != 0 {
		return fmt.Errorf("offset 20: bad page size %d", f.pageSize)
	}
	npages := uint64(len(b)) / uint64(f.pageSize)
	f.lastPage = o.Uint32(b[32:36])
	if uint64(f.lastPage) >= npages {
		return fmt.Errorf("offset 32: last page %d, but the file has %d pages", f.lastPage, npages)
	}
	f.seen = make([]uint64, f.lastPage/64+1)
	maxBucket := o.Uint32(b[72:76])
	if maxBucket > f.lastPage {
		return fmt.Errorf("offset 72: %d buckets in %d pages", maxBucket, f.lastPage)
	}
	var spares [32]uint32
	for i := range spares {
		spares[i] = o.Uint32(b[96+4*i:])
	}
	for bucket := uint32(0); bucket <= maxBucket; bucket++ {
		// A bucket's first page: the bucket number plus the spare pages
		// allocated before its doubling (rpm's hash_bucket_to_page).
		first := uint64(bucket) + uint64(spares[bits.Len32(bucket)%32])
		if err := f.walkBucket(first, fn); err != nil {
			return err
		}
	}
	return nil
}

func (f *bdbFile) page(n uint64) ([]byte, int64, error) {
	if n == 0 || n > uint64(f.lastPage) {
		return nil, 0, fmt.Errorf("page %d outside pages 1 to %d", n, f.lastPage)
	}
	if f.seen[n/64]&(1<<(n%64)) != 0 {
		return nil, 0, fmt.Errorf("page %d reached twice: a cycle", n)
	}
	f.seen[n/64] |= 1 << (n % 64)
	off := int64(n) * int64(f.pageSize)
	return f.b[off : off+int64(f.pageSize)], off, nil
}

func (f *bdbFile) walkBucket(pgno uint64, fn func(off int64, key, val []byte) error) error {
	o := f.order
	for head := true; pgno != 0; head = false {
		pg, off, err := f.page(pgno)
		if err != nil {
			return err
		}
		if o.Uint32(pg[8:12]) != uint32(pgno) {
			if head && o.Uint32(pg[8:12]) == 0 && pg[25] == 0 {
				return nil // a bucket never written to: BerkeleyDB leaves its page zeroed
			}
			return fmt.Errorf("offset %d: page says it is page %d, not %d", off, o.Uint32(pg[8:12]), pgno)
		}
		if t := pg[25]; t != bdbPageHash && t != bdbPageHashUnsorted {
			return fmt.Errorf("offset %d: page type %d in a hash bucket", off, t)
		}
		n := int(o.Uint16(pg[20:22]))
		if n%2 != 0 || bdbPageHeaderSize+2*n > len(pg) {
			return fmt.Errorf("offset %d: %d items on a page", off, n)
		}
		index := func(i int) int { return int(o.Uint16(pg[bdbPageHeaderSize+2*i:])) }
		for i := 0; i < n; i += 2 {
			// Items are laid from the page's end backwards: a key ends
			// where the previous pair's value begins.
			kOff, vOff := index(i), index(i+1)
			kEnd := len(pg)
			if i > 0 {
				kEnd = index(i - 1)
			}
			if !(bdbPageHeaderSize+2*n <= vOff && vOff < kOff && kOff < kEnd && kEnd <= len(pg)) {
				return fmt.Errorf("offset %d: item offsets %d, %d out of order", off, kOff, vOff)
			}
			key, err := f.item(pg[kOff:kEnd], off+int64(kOff))
			if err != nil {
				return err
			}
			val, err := f.item(pg[vOff:kOff], off+int64(vOff))
			if err != nil {
				return err
			}
			if err := fn(off, key, val); err != nil {
				return err
			}
		}
		pgno = uint64(o.Uint32(pg[16:20]))
	}
	return nil
}

// item returns an item's bytes, reading an overflow chain when the item
// points to one.
func (f *bdbFile) item(it []byte, off int64) ([]byte, error) {
	switch it[0] {
	case bdbItemKeyData:
		return it[1:], nil
	case bdbItemOffPage:
	default:
		return nil, fmt.Errorf("offset %d: item type %d (duplicates are not used by rpm)", off, it[0])
	}
	if len(it) != 12 {
		return nil, fmt.Errorf("offset %d: off-page item of %d bytes, want 12", off, len(it))
	}
	o := f.order
	pgno := uint64(o.Uint32(it[4:8]))
	total := uint64(o.Uint32(it[8:12]))
	if total == 0 || total > uint64(len(f.b)) || total > maxRPMHeaderBytes {
		return nil, fmt.Errorf("offset %d: off-page value of %d bytes", off, total)
	}
	out := make([]byte, 0, total)
	for uint64(len(out)) < total {
		pg, poff, err := f.page(pgno)
		if err != nil {
			return nil, fmt.Errorf("overflow of item at offset %d: %w", off, err)
		}
		if pg[25] != bdbPageOverflow || o.Uint32(pg[8:12]) != uint32(pgno) {
			return nil, fmt.Errorf("offset %d: not overflow page %d", poff, pgno)
		}
		// On an overflow page the "high free offset" field holds the
		// length of the data on the page.
		n := uint64(o.Uint16(pg[22:24]))
		if n == 0 || bdbPageHeaderSize+n > uint64(len(pg)) || n > total-uint64(len(out)) {
			return nil, fmt.Errorf("offset %d: %d bytes on an overflow page", poff, n)
		}
		out = append(out, pg[bdbPageHeaderSize:bdbPageHeaderSize+n]...)
		pgno = uint64(o.Uint32(pg[16:20]))
	}
	return out, nil
}
