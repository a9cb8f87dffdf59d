package inflate

import "encoding/binary"

const (
	// fastInMargin is the window the fast loop needs left to enter: the
	// refill on entry, then an iteration's two (each loads 8 bytes and
	// advances at most 7). An iteration starts only with 16 left.
	fastInMargin = 24
	fastInIter   = 16
	// fastOutMargin is the room one iteration may write: a whole match,
	// and the 8-byte stores' overrun past it.
	fastOutMargin = maxMatch + 8

	bufMask  = bufLen - 1
	litMask  = 1<<litTableBits - 1
	distMask = 1<<distTableBits - 1
)

// fastLoop decodes the current block's symbols while the input window
// holds fastInIter bytes and the buffer has fastOutMargin of room, until
// the output reaches limit or the block ends. All it reads of the window
// it takes from the bit buffer: the caller gives back what it holds
// unused.
//
// The bit accounting follows libdeflate's. A refill leaves nbits at 56 to
// 63 and all 64 bits of the buffer real input, so that after consuming c
// bits the buffer still holds 64-c real bits, nbits+1 of them at least:
// a table lookup needs only that many (11 for litlen), and may be done
// before the bits it reads are counted as held. The next litlen entry is
// looked up (preloaded) before the refill that starts each iteration, so
// that the lookup's latency overlaps the refill and the match copy.
// Three literals (at most 11 bits each from the main table) fit one
// refill; so do a length (at most 20 bits) and a distance (28). Symbols
// are consumed by subtracting the whole entry from nbits: only its low
// byte counts, and that byte of the entry is the bits to consume, which
// never exceed what nbits holds. A length's or distance's extra bits are
// taken before its entry is consumed, so that no copy of the bit buffer
// stays live.
//
// Every path goes back through the loop's condition (one back edge), so
// that the compiler keeps the state in the same registers on all of them.
func (r *Reader) fastLoop(limit int) error {
	in := r.in
	inEnd := len(in) - fastInIter
	outEnd := min(limit, bufLen-fastOutMargin)
	m := r.m
	bits, nbits, pos, op := r.bits, r.nbits, r.pos, r.op
	reason := ""

	bits |= binary.LittleEndian.Uint64(in[pos:pos+8]) << (nbits & 63)
	pos += int(7 - nbits>>3&7)
	nbits |= 56
	e := m.dec[bits&litMask]
	for pos <= inEnd && op < outEnd {
		// e is the next litlen entry, looked up from real bits.
		bits |= binary.LittleEndian.Uint64(in[pos:pos+8]) << (nbits & 63)
		pos += int(7 - nbits>>3&7)
		nbits |= 56

		if e&entLiteral != 0 {
			bits >>= e & 63
			nbits -= uint(e)
			m.buf[op&bufMask] = byte(e >> 16)
			op++
			e = m.dec[bits&litMask]
			if e&entLiteral != 0 {
				bits >>= e & 63
				nbits -= uint(e)
				m.buf[op&bufMask] = byte(e >> 16)
				op++
				e = m.dec[bits&litMask]
				if e&entLiteral != 0 {
					bits >>= e & 63
					nbits -= uint(e)
					m.buf[op&bufMask] = byte(e >> 16)
					op++
					e = m.dec[bits&litMask]
					continue
				}
			}
		}
		// e is not a literal from the main table.
		if e&entExceptional != 0 {
			if e&entSubtable != 0 {
				bits >>= litTableBits
				nbits -= litTableBits
				e = m.dec[(e>>16+uint32(bits)&(1<<(e>>8&15)-1))&(litTableSize-1)]
				if e&entLiteral != 0 {
					bits >>= e & 63
					nbits -= uint(e)
					m.buf[op&bufMask] = byte(e >> 16)
					op++
					e = m.dec[bits&litMask]
					continue
				}
			}
			if e&entExceptional != 0 {
				if e&entEOB != 0 {
					bits >>= e & 63
					nbits -= uint(e)
					r.state = stateHeader
				} else {
					reason = "invalid literal/length code"
				}
				break
			}
		}

		// A match: its length, then its distance, which may need a
		// refill first: up to 28 bits, and 11 left after for the next
		// lookup.
		length := int(e>>16) + int(bits&(1<<(e&63)-1)>>(e>>8&15))
		bits >>= e & 63
		nbits -= uint(e)
		d := m.dec[litTableSize+bits&distMask]
		if uint8(nbits) < 38 {
			bits |= binary.LittleEndian.Uint64(in[pos:pos+8]) << (nbits & 63)
			pos += int(7 - nbits>>3&7)
			nbits |= 56
		}
		if d&entExceptional != 0 {
			if d&entSubtable != 0 {
				bits >>= distTableBits
				nbits -= distTableBits
				d = m.dec[litTableSize+(d>>16+uint32(bits)&(1<<(d>>8&15)-1))&(distTableSize-1)]
			}
			if d&entExceptional != 0 {
				reason = "invalid distance code"
				break
			}
		}
		distance := int(d>>16) + int(bits&(1<<(d&63)-1)>>(d>>8&15))
		bits >>= d & 63
		nbits -= uint(d)
		if distance > op {
			reason = "distance too far back"
			break
		}
		e = m.dec[bits&litMask]

		// Copy 8 bytes at a time, past the match's end if need be (the
		// buffer has the room; the next symbols overwrite it).
		src := op - distance
		end := op + length
		switch {
		case distance >= 8:
			// Two words cover most matches: no loop test for them.
			binary.LittleEndian.PutUint64(m.buf[op&bufMask:], binary.LittleEndian.Uint64(m.buf[src&bufMask:]))
			binary.LittleEndian.PutUint64(m.buf[(op+8)&bufMask:], binary.LittleEndian.Uint64(m.buf[(src+8)&bufMask:]))
			for op, src = op+16, src+16; op < end; op, src = op+8, src+8 {
				binary.LittleEndian.PutUint64(m.buf[op&bufMask:], binary.LittleEndian.Uint64(m.buf[src&bufMask:]))
			}
		case distance == 1:
			v := uint64(m.buf[src&bufMask]) * 0x0101010101010101
			for ; op < end; op += 8 {
				binary.LittleEndian.PutUint64(m.buf[op&bufMask:], v)
			}
		default:
			// The match overlaps the bytes it writes: each word copied
			// is right for its first distance bytes, so step by that.
			for ; op < end; op, src = op+distance, src+distance {
				binary.LittleEndian.PutUint64(m.buf[op&bufMask:], binary.LittleEndian.Uint64(m.buf[src&bufMask:]))
			}
		}
		op = end
	}
	r.bits, r.nbits, r.pos, r.op = bits, nbits&0xff, pos, op
	if reason != "" {
		return r.corrupt(reason)
	}
	return nil
}
