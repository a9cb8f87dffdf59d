package structural

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// The memory-key search looks for AES key schedules and DER RSA private
// keys in one pass over the bytes. A block filter, run over 64-byte blocks
// (vector code where the CPU has it, memKeyBlocksGo elsewhere, with the same
// output), marks the few positions that can start either, and the exact
// checks (aesCandidates, rsaDERAt) run at those only.
//
// AES. For a schedule of Nk key words starting at byte s, every word j
// that is not the first of a key-length group satisfies
// w[j] = w[j-Nk] ^ w[j-1], so bytes r, r+4Nk-4 and r+4Nk XOR to zero for
// the 12 bytes (20 for AES-192) that start 4 bytes into the schedule, and
// again one key length (16, 24 or 32 bytes) later. Those 12 bytes always
// contain two 4-byte-aligned words, so the filter tests, at every aligned
// position q, the 64-bit XOR of each relation in the first two rows for
// each key size: q stands for the four start offsets s in [q-7, q-4]. The
// bit errors of those two rows are some of the errors the full check
// (aesScheduleErrors) counts, so their sum must not exceed maxBitErrors.
// This linear test passes on sparse data (zeros satisfy every XOR
// relation), the bulk of real memory; so a block of positions is also
// dropped when the 64 bytes after it hold more than 8 zero bytes: those
// bytes lie in the 176-byte entropy window (lowEntropy) of every start the
// block covers, and a window with 9 equal bytes is no schedule. Both tests
// are implied by the full check, so the search finds exactly what checking
// every offset in full would find; on /usr bytes they leave about one
// aligned position in 4,000 to check in full.
//
// DER. A PKCS#1 or PKCS#8 RSA key starts "30 82 LL LL 02 01 00"; the
// filter marks the bytes where its five fixed bytes match.

// memKeyBlockReach is how many bytes from a block's start the filter reads:
// the last load is 64 bytes at offset 68 (the second row of an AES-256
// relation for q = 4 mod 8).
const memKeyBlockReach = 132

// memKeyBatch is the number of blocks filtered per call, so that the hits
// fit a fixed array on the stack.
const memKeyBatch = 512

// maxFilterErrors caps the bit-error budget the filter is given: the sum
// of two 64-bit popcounts never exceeds 128.
const maxFilterErrors = 128

// memKeyBlocks returns how many 64-byte blocks of a buffer of n bytes the
// filter covers: those with memKeyBlockReach bytes to read. No schedule
// (176 bytes from a start at most 7 bytes before its block) and no DER key
// (260 bytes at least) starts in a later block.
func memKeyBlocks(n int) int {
	if n < memKeyBlockReach {
		return 0
	}
	return (n-memKeyBlockReach)/64 + 1
}

// memKeyBlocksGo is the portable block filter. For each block i of
// [first, first+n) it computes three masks: even (bit k: the aligned
// position q = 64i+8k passes the AES test of some key size), odd (bit k:
// q = 64i+8k+4) and der (bit b: the DER prefix matches at 64i+b). For
// each block with a mask set it appends i<<32 | odd<<8 | even and der to
// out, and it returns the number of such blocks. buf must hold
// 64*(first+n-1)+memKeyBlockReach bytes and out room for 2n words.
func memKeyBlocksGo(buf []byte, first, n int, m uint64, out []uint64) int {
	c := 0
	for i := first; i < first+n; i++ {
		b := buf[64*i : 64*i+memKeyBlockReach : 64*i+memKeyBlockReach]
		der := derPrefixMask(b)
		var even, odd uint64
		if zeroBytes64(b[64:128]) <= aesMaxRepeats {
			even, odd = aesBlockMasks(b, m)
		}
		if even|odd|der != 0 {
			out[2*c] = uint64(i)<<32 | odd<<8 | even
			out[2*c+1] = der
			c++
		}
	}
	return c
}

// derBlocksGo is the block filter of a search for DER keys alone: the
// entries of memKeyBlocksGo that have a DER mask, with the AES masks left
// empty. The AES relation tests are nearly all of the filter's cost, so a
// search without AES (only the rsa-private-key-der rule enabled, the
// search rsakeyfind does) skips them.
func derBlocksGo(buf []byte, first, n int, _ uint64, out []uint64) int {
	c := 0
	for i := first; i < first+n; i++ {
		if der := derPrefixMask(buf[64*i : 64*i+memKeyBlockReach : 64*i+memKeyBlockReach]); der != 0 {
			out[2*c] = uint64(i) << 32
			out[2*c+1] = der
			c++
		}
	}
	return c
}

// zeroBytes64 counts the zero bytes of b[:64].
func zeroBytes64(b []byte) int {
	const lo7 = 0x7f7f7f7f7f7f7f7f
	n := 0
	for k := 0; k < 64; k += 8 {
		w := binary.LittleEndian.Uint64(b[k:])
		// The high bit of each byte of t is set where the byte is non-zero.
		t := (w&lo7 + lo7) | w
		n += bits.OnesCount64(^(t | lo7))
	}
	return n
}

// aesBlockMasks runs the AES relation test at the 16 aligned positions of
// block b (see memKeyBlocksGo).
func aesBlockMasks(b []byte, m uint64) (even, odd uint64) {
	b = b[:memKeyBlockReach]
	for q := 0; q <= 60; q += 4 {
		// The first rows, written out (a call per position costs more
		// than the test).
		a := le64(b, q)
		if popcnt(a^le64(b, q+12)^le64(b, q+16)) > m &&
			popcnt(a^le64(b, q+20)^le64(b, q+24)) > m &&
			popcnt(a^le64(b, q+28)^le64(b, q+32)) > m {
			continue
		}
		if aesSecondRows(b, q, m) {
			if q%8 == 0 {
				even |= 1 << (q / 8)
			} else {
				odd |= 1 << (q / 8)
			}
		}
	}
	return even, odd
}

// aesRefineMasks keeps the positions of masks that pass the first rows
// whose second rows pass too.
func aesRefineMasks(b []byte, even, odd, m uint64) (uint64, uint64) {
	b = b[:memKeyBlockReach]
	for k := range 8 {
		if even&(1<<k) != 0 && !aesSecondRows(b, 8*k, m) {
			even &^= 1 << k
		}
		if odd&(1<<k) != 0 && !aesSecondRows(b, 8*k+4, m) {
			odd &^= 1 << k
		}
	}
	return even, odd
}

// aesSecondRows says whether the first two rows of the relation at
// position q of block b have at most m bit errors together, for some key
// size.
func aesSecondRows(b []byte, q int, m uint64) bool {
	a := le64(b, q)
	for _, g := range [3]int{16, 24, 32} {
		if popcnt(a^le64(b, q+g-4)^le64(b, q+g))+popcnt(le64(b, q+g)^le64(b, q+2*g-4)^le64(b, q+2*g)) <= m {
			return true
		}
	}
	return false
}

func le64(b []byte, o int) uint64 { return binary.LittleEndian.Uint64(b[o:]) }

func popcnt(x uint64) uint64 { return uint64(bits.OnesCount64(x)) }

// derPrefixMask marks the offsets b (0..63) of block blk where
// "30 82 ?? ?? 02 01 00" starts.
func derPrefixMask(blk []byte) uint64 {
	var mask uint64
	for b := 0; b < 64; {
		k := bytes.IndexByte(blk[b:64], 0x30)
		if k < 0 {
			break
		}
		b += k
		if blk[b+1] == 0x82 && blk[b+4] == 0x02 && blk[b+5] == 0x01 && blk[b+6] == 0x00 {
			mask |= 1 << b
		}
		b++
	}
	return mask
}

// FindMemoryKeys finds AES-128/192/256 key schedules and DER RSA private
// keys in buf in one pass; either callback may be nil. AES schedules are
// reported as FindAESKeySchedules reports them, DER keys as
// FindRSAPrivateDER does.
func FindMemoryKeys(buf []byte, maxBitErrors int, aes func(off int, key []byte), der func(off, length int, info KeyInfo)) {
	var s MemoryKeySearch
	s.Start(buf, maxBitErrors, aes, der)
	s.Finish()
}

// MemoryKeySearch is FindMemoryKeys taken a part at a time, so that a
// caller that passes over a buffer in windows can search each window
// while its bytes are in the cache: in a pass of its own over a 16 MiB
// chunk, read back from memory, perf put half the filter's samples on one
// load waiting for the next cache line. The zero value is ready for
// Start; a search may be started again.
type MemoryKeySearch struct {
	filter  blockFilter
	buf     []byte
	m       int
	aes     func(off int, key []byte)
	der     func(off, length int, info KeyInfo)
	nb      int // blocks of buf the filter covers
	next    int // the first block not searched yet
	derNext int // the DER search resumes after an emitted key
	out     [2 * memKeyBatch]uint64
}

// Start begins a search of buf like FindMemoryKeys's; Until and Finish
// run it. Without aes the filter leaves out the AES tests (see
// derBlocksGo); without either callback there is nothing to search.
func (s *MemoryKeySearch) Start(buf []byte, maxBitErrors int, aes func(off int, key []byte), der func(off, length int, info KeyInfo)) {
	filter := memKeyFilter
	if aes == nil {
		filter = derFilter
	}
	s.start(filter, buf, maxBitErrors, aes, der)
}

func (s *MemoryKeySearch) start(filter blockFilter, buf []byte, maxBitErrors int, aes func(off int, key []byte), der func(off, length int, info KeyInfo)) {
	s.filter, s.buf, s.aes, s.der = filter, buf, aes, der
	s.m = min(max(maxBitErrors, 0), maxFilterErrors)
	s.nb, s.next, s.derNext = memKeyBlocks(len(buf)), 0, 0
	if aes == nil && der == nil {
		s.nb = 0
	}
}

// Until searches the positions before pos not searched yet (whole 64-byte
// blocks: up to pos rounded down to one). A key found may extend past pos:
// the search reads all of buf.
func (s *MemoryKeySearch) Until(pos int) {
	s.searchBlocks(min(s.nb, max(pos, 0)/64))
}

// Finish searches the rest of buf and drops the reference to it.
func (s *MemoryKeySearch) Finish() {
	s.searchBlocks(s.nb)
	s.buf, s.aes, s.der = nil, nil, nil
}

// searchBlocks runs the filter over blocks [s.next, to) and the exact
// checks at the positions it marks.
func (s *MemoryKeySearch) searchBlocks(to int) {
	buf, m := s.buf, s.m
	for first := s.next; first < to; first += memKeyBatch {
		n := min(memKeyBatch, to-first)
		hits := s.filter(buf, first, n, uint64(m), s.out[:])
		for h := 0; h < hits; h++ {
			e, dm := s.out[2*h], s.out[2*h+1]
			p := int(e>>32) * 64
			if s.aes != nil {
				for pm := spreadAESMask(e); pm != 0; pm &= pm - 1 {
					aesCandidates(buf, p+4*bits.TrailingZeros64(pm), m, s.aes)
				}
			}
			if s.der != nil {
				for ; dm != 0; dm &= dm - 1 {
					i := p + bits.TrailingZeros64(dm)
					if i < s.derNext {
						continue
					}
					if length, info, ok := rsaDERAt(buf, i); ok {
						s.der(i, length, info)
						s.derNext = i + length
					}
				}
			}
		}
	}
	s.next = max(s.next, to)
}

// blockFilter is memKeyBlocksGo or a vector version of it.
type blockFilter func(buf []byte, first, n int, m uint64, out []uint64) int

// findMemoryKeys is FindMemoryKeys with the given block filter.
func findMemoryKeys(filter blockFilter, buf []byte, maxBitErrors int, aes func(off int, key []byte), der func(off, length int, info KeyInfo)) {
	var s MemoryKeySearch
	s.start(filter, buf, maxBitErrors, aes, der)
	s.Finish()
}

// spreadAESMask turns a filter entry's even and odd masks into one mask
// with bit k for the aligned position 4k of the block.
func spreadAESMask(e uint64) uint64 {
	const evenBits = 0x5555
	return pdep8(e&0xff)&evenBits | pdep8(e>>8&0xff)<<1&^evenBits
}

// pdep8 spreads the 8 bits of v to the even bits 0, 2, ..., 14.
func pdep8(v uint64) uint64 {
	v = (v | v<<4) & 0x0f0f
	v = (v | v<<2) & 0x3333
	return (v | v<<1) & 0x5555
}

// FindAESKeySchedules finds AES-128/192/256 expanded key schedules in buf
// (aeskeyfind's method, with 192-bit keys added), tolerating up to
// maxBitErrors bit errors per schedule (aeskeyfind's default is 10). Every
// byte offset is a candidate; emit gets the offset of the schedule start and
// a copy of the key bytes as observed, in increasing offset order. An
// offset is reported once, with the longest key size that matches. A
// schedule must lie wholly inside buf. See FindMemoryKeys for how the search
// avoids checking every offset in full.
func FindAESKeySchedules(buf []byte, maxBitErrors int, emit func(off int, key []byte)) {
	FindMemoryKeys(buf, maxBitErrors, emit, nil)
}

// FindRSAPrivateDER scans buf for DER-encoded RSA private keys: PKCS#1
// RSAPrivateKey (version 0, n, e, d, p, q, dP, dQ, qInv) and PKCS#8
// PrivateKeyInfo wrapping one. Only positions that start "30 82 LL LL 02 01
// 00" are looked at; the lengths must nest exactly and p*q must equal n
// before a key is emitted. length is the outer SEQUENCE length including its
// header; the scan resumes after an emitted key, so a PKCS#1 key inside a
// PKCS#8 one is reported once, as the PKCS#8 key.
func FindRSAPrivateDER(buf []byte, emit func(off, length int, info KeyInfo)) {
	FindMemoryKeys(buf, 0, nil, emit)
}
