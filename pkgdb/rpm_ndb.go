package pkgdb

import (
	"encoding/binary"
	"fmt"
	"hash/adler32"
)

// A read-only walk of rpm's "ndb" Packages.db (rpm's lib/backend/ndb/
// rpmpkg.c; SUSE's default since 15 SP3), from the file's bytes. The file
// is a 32-byte header, slot pages of 4 KiB, and 16-byte blocks. Each used
// slot names a package index, its first block and its block count; there
// a blob header {magic, package index, timestamp, length} precedes the
// header blob, and a tail {adler32, length, magic} follows it. Every slot
// and blob is checked as rpm checks it before it reads a blob.

const (
	ndbHeaderSize = 32
	ndbSlotSize   = 16
	ndbBlockSize  = 16
	ndbPageSize   = 4096
	ndbBlobHead   = 16
	ndbBlobTail   = 12

	ndbMagic     = 'R' | 'p'<<8 | 'm'<<16 | 'P'<<24
	ndbSlotMagic = 'S' | 'l'<<8 | 'o'<<16 | 't'<<24
	ndbHeadMagic = 'B' | 'l'<<8 | 'b'<<16 | 'S'<<24
	ndbTailMagic = 'B' | 'l'<<8 | 'b'<<16 | 'E'<<24
)

func isNDB(b []byte) bool {
	return len(b) >= ndbHeaderSize && binary.LittleEndian.Uint32(b) == ndbMagic
}

// ndbBlobs calls fn with the file offset and the bytes of each package's
// header blob.
func ndbBlobs(b []byte, fn func(off int64, blob []byte) error) error {
	le := binary.LittleEndian
	if !isNDB(b) {
		return fmt.Errorf("not an rpm ndb database")
	}
	if v := le.Uint32(b[4:]); v != 0 {
		return fmt.Errorf("offset 4: ndb version %d, want 0", v)
	}
	if len(b)%ndbBlockSize != 0 {
		return fmt.Errorf("file of %d bytes is not whole %d-byte blocks", len(b), ndbBlockSize)
	}
	slotPages := uint64(le.Uint32(b[12:]))
	if slotPages == 0 || slotPages*ndbPageSize > uint64(len(b)) {
		return fmt.Errorf("offset 12: %d slot pages in a %d-byte file", slotPages, len(b))
	}
	fileBlocks := uint64(len(b)) / ndbBlockSize
	minBlock := slotPages * ndbPageSize / ndbBlockSize
	for so := uint64(ndbHeaderSize); so < slotPages*ndbPageSize; so += ndbSlotSize {
		s := b[so : so+ndbSlotSize]
		if le.Uint32(s) != ndbSlotMagic {
			return fmt.Errorf("offset %d: bad slot magic", so)
		}
		pkgIdx := le.Uint32(s[4:])
		blkOff := uint64(le.Uint32(s[8:]))
		blkCnt := uint64(le.Uint32(s[12:]))
		if blkOff == 0 {
			continue // a free slot
		}
		if pkgIdx == 0 || blkCnt == 0 || blkOff < minBlock || blkOff+blkCnt > fileBlocks {
			return fmt.Errorf("offset %d: bad slot (package %d, blocks %d+%d of %d)", so, pkgIdx, blkOff, blkCnt, fileBlocks)
		}
		off := blkOff * ndbBlockSize
		end := off + blkCnt*ndbBlockSize
		if blkCnt*ndbBlockSize < ndbBlobHead+ndbBlobTail {
			return fmt.Errorf("offset %d: blob of %d blocks is too small", off, blkCnt)
		}
		head := b[off : off+ndbBlobHead]
		if le.Uint32(head) != ndbHeadMagic || le.Uint32(head[4:]) != pkgIdx {
			return fmt.Errorf("offset %d: bad blob header for package %d", off, pkgIdx)
		}
		blobLen := uint64(le.Uint32(head[12:]))
		if (ndbBlobHead+blobLen+ndbBlobTail+ndbBlockSize-1)/ndbBlockSize != blkCnt {
			return fmt.Errorf("offset %d: blob of %d bytes does not fill its %d blocks", off, blobLen, blkCnt)
		}
		tail := b[end-ndbBlobTail : end]
		if le.Uint32(tail[4:]) != uint32(blobLen) || le.Uint32(tail[8:]) != ndbTailMagic {
			return fmt.Errorf("offset %d: bad blob tail for package %d", end-ndbBlobTail, pkgIdx)
		}
		if adler32.Checksum(b[off:end-ndbBlobTail]) != le.Uint32(tail) {
			return fmt.Errorf("offset %d: blob checksum mismatch for package %d", off, pkgIdx)
		}
		if err := fn(int64(off), b[off+ndbBlobHead:off+ndbBlobHead+blobLen]); err != nil {
			return err
		}
	}
	return nil
}
