package inflate

import "math/bits"

// Decode table entries.
//
// A Huffman code is decoded with one lookup of the next tableBits input
// bits (least significant bit first, as DEFLATE packs them) in a main
// table, and for the few codewords longer than tableBits a second lookup
// in a subtable that the main entry points to. Each entry says all that
// the decoder needs for its symbol, so that the hot loop does no second
// lookup to learn a length's base or how many extra bits follow:
//
//	bits  0-7   bits to consume: the codeword's length plus the symbol's
//	            extra bits (for a subtable pointer: the main table's bits)
//	bits  8-11  the codeword's length (where the extra bits start); for a
//	            subtable pointer, the subtable's index bits
//	bits 12-15  flags
//	bits 16-31  the value: a literal byte, a length or distance base, a
//	            precode symbol, or a subtable's start index
//
// Within a subtable the codeword length is what remains after the main
// table's bits.
const (
	entLiteral     = 1 << 15 // a literal byte
	entExceptional = 1 << 14 // end of block, subtable pointer or invalid
	entSubtable    = 1 << 13 // points to a subtable
	entEOB         = 1 << 12 // end of block

	// An entry with entExceptional and neither entSubtable nor entEOB is
	// an invalid code: a codeword that no symbol of the block may use
	// (litlen 286/287, distance 30/31), or bits that an incomplete code
	// leaves unassigned.
)

// Table sizes. The main tables are indexed by tableBits input bits; the
// subtables follow them. The largest possible tables (zlib's "enough"
// counts for these widths and a 15-bit maximum codeword length: 2342
// litlen entries for 11 bits, 402 distance entries for 8 bits) fit in the
// power-of-two sizes below, so that an index masked to the size needs no
// bounds check.
const (
	litTableBits  = 11
	litTableSize  = 4096
	distTableBits = 8
	distTableSize = 512
	preTableBits  = 7
	preTableSize  = 128

	maxCodeLen = 15
	numLitLen  = 288 // symbols of the fixed code; a dynamic code has at most 286
	maxNumLit  = 286
	numDist    = 32 // of the fixed code; a dynamic code has at most 30
	maxNumDist = 30
	numPre     = 19
	endOfBlock = 256
)

// Per-symbol entries without the codeword length (added when a table is
// built): bits 0-7 hold the extra bit count.
var (
	litSym  [numLitLen]uint32
	distSym [numDist]uint32
	preSym  [numPre]uint32
)

// decodeTables are a block's litlen table and, after it, its distance
// table: one array, so that the fast loop holds one pointer for both.
type decodeTables [litTableSize + distTableSize]uint32

func (t *decodeTables) lit() []uint32  { return t[:litTableSize] }
func (t *decodeTables) dist() []uint32 { return t[litTableSize:] }

// fixedTables are the fixed Huffman code's (RFC 1951 section 3.2.6),
// built once.
var fixedTables decodeTables

func init() {
	for s := range 256 {
		litSym[s] = entLiteral | uint32(s)<<16
	}
	litSym[endOfBlock] = entExceptional | entEOB
	// Lengths 3-10 have no extra bits; then four codes for each count
	// of extra bits from 1 to 5; 285 is 258.
	base := uint32(3)
	for s := 257; s < 285; s++ {
		extra := uint32(0)
		if s >= 265 {
			extra = uint32(s-261) / 4
		}
		litSym[s] = base<<16 | extra
		base += 1 << extra
	}
	litSym[285] = 258 << 16
	litSym[286] = entExceptional
	litSym[287] = entExceptional

	// Distances 1-4 have no extra bits; then two codes for each count of
	// extra bits from 1 to 13.
	base = 1
	for s := range maxNumDist {
		extra := uint32(0)
		if s >= 4 {
			extra = uint32(s-2) / 2
		}
		distSym[s] = base<<16 | extra
		base += 1 << extra
	}
	distSym[30] = entExceptional
	distSym[31] = entExceptional

	for s := range numPre {
		preSym[s] = uint32(s) << 16
	}

	var lens [numLitLen]uint8
	for s := range lens {
		switch {
		case s < 144:
			lens[s] = 8
		case s < 256:
			lens[s] = 9
		case s < 280:
			lens[s] = 7
		default:
			lens[s] = 8
		}
	}
	if !buildTable(fixedTables.lit(), lens[:], litSym[:], litTableBits) {
		panic("inflate: the fixed litlen code does not build")
	}
	var dlens [numDist]uint8
	for s := range dlens {
		dlens[s] = 5
	}
	if !buildTable(fixedTables.dist(), dlens[:], distSym[:], distTableBits) {
		panic("inflate: the fixed distance code does not build")
	}
}

// buildTable fills table with the decode table of the canonical Huffman
// code whose codeword lengths (0 for an unused symbol, at most 15) are
// lens, syms giving each symbol's entry. It reports false for a code that
// zlib and Go's compress/flate reject: one that is over-subscribed, or
// incomplete other than the two cases they allow, an empty code (which
// fails only if used) and a single codeword of length 1 (the other 1-bit
// pattern fails if met). An empty code's table is all invalid entries,
// whatever the table held before: klauspost/compress v1.20.4 decodes an
// empty code with its decoder's previous table instead, and so accepts a
// match in a block without distance codes (TestStaleTable); zlib and
// compress/flate reject it, and so do we.
func buildTable(table []uint32, lens []uint8, syms []uint32, tableBits uint) bool {
	var count [maxCodeLen + 1]int
	for _, l := range lens {
		count[l&maxCodeLen]++
	}
	count[0] = 0
	total, maxLen := 0, uint(0)
	left := 1 // codewords of the current length still unassigned
	for l := uint(1); l <= maxCodeLen; l++ {
		left = left<<1 - count[l]
		if left < 0 {
			return false // over-subscribed
		}
		if count[l] != 0 {
			maxLen = l
		}
		total += count[l]
	}
	mainSize := 1 << tableBits
	invalid := uint32(0)
	if left != 0 {
		// Incomplete. What no codeword fills is a corrupt stream if
		// met, found after reading as many bits as zlib reads.
		switch {
		case total == 0:
			invalid = entExceptional // fails at once when used
			for i := range table[:mainSize] {
				table[i] = invalid
			}
			return true
		case total == 1 && count[1] == 1:
			invalid = entExceptional | 1 | 1<<8
		default:
			return false
		}
	}

	// Symbols sorted by codeword length, then by value: the order of
	// their canonical codewords.
	var offs [maxCodeLen + 2]int
	for l := 1; l <= maxCodeLen; l++ {
		offs[l+1] = offs[l] + count[l]
	}
	var sorted [numLitLen]uint16
	for s, l := range lens {
		if l != 0 {
			sorted[offs[l]] = uint16(s)
			offs[l]++
		}
	}

	// The main table, a length at a time: the table of the codewords up
	// to length l-1 is doubled (each entry then stands for both values of
	// bit l-1, which those codewords do not read), and the codewords of
	// length l go where they belong. A codeword is stored once, and the
	// doubling is a copy, not a strided loop of 2^(tableBits-l) stores
	// for each codeword.
	main := table[:mainSize]
	main[0], main[1] = invalid, invalid // all but an incomplete code's fill these
	code, i := 0, 0                     // the next canonical codeword, its symbol's index in sorted
	for l := uint(1); l <= tableBits; l++ {
		if l > 1 {
			copy(main[1<<(l-1):1<<l], main[:1<<(l-1)])
		}
		for range count[l] {
			s := sorted[i]
			main[reverse(code, l)&(mainSize-1)] = syms[s] + uint32(l) | uint32(l)<<8
			code++
			i++
		}
		code <<= 1
	}

	// Longer codewords: the first tableBits bits of each pick its
	// subtable (a pointer entry in the main table), and the codewords
	// that share them are consecutive.
	remaining := count // long codewords not yet placed, by length
	end := mainSize
	prefix, subStart, subBits := -1, 0, uint(0)
	for l := tableBits + 1; l <= maxLen; l++ {
		for range count[l] {
			s := sorted[i]
			if p := code >> (l - tableBits); p != prefix {
				prefix = p
				// The subtable is as wide as the longest codeword that
				// shares the prefix needs: grow it until the codewords
				// left fill it.
				subBits = l - tableBits
				room := 1 << subBits
				for subBits+tableBits < maxLen {
					room -= remaining[subBits+tableBits]
					if room <= 0 {
						break
					}
					subBits++
					room <<= 1
				}
				subStart = end
				end += 1 << subBits
				if end > len(table) {
					return false // cannot happen for a code that passed the checks above
				}
				main[reverse(p, tableBits)&(mainSize-1)] = entExceptional | entSubtable | uint32(subStart)<<16 | uint32(subBits)<<8 | uint32(tableBits)
			}
			sl := l - tableBits
			e := syms[s] + uint32(sl) | uint32(sl)<<8
			sub := table[subStart : subStart+1<<subBits]
			step := 1 << sl
			for j := reverse(code&(step-1), sl); j < len(sub); j += step {
				sub[j] = e
			}
			remaining[l]--
			code++
			i++
		}
		code <<= 1
	}
	return true
}

// reverse returns the low n bits of code in reverse order: DEFLATE sends
// a codeword's most significant bit first, into the low end of the bit
// buffer.
func reverse(code int, n uint) int {
	return int(bits.Reverse16(uint16(code)) >> (16 - n))
}
