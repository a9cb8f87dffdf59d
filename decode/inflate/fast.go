package inflate

import "encoding/binary"

const (
	// fastInMargin is the window the fast loop needs left for one
	// iteration: its refills load 8 bytes at a time and each advances at
	// most 7.
	fastInMargin = 16
	// fastOutMargin is the room one iteration may write: a whole match,
	// and the 8-byte stores' overrun past it.
	fastOutMargin = maxMatch + 8

	bufMask = bufLen - 1
)

// fastLoop decodes the current block's symbols while the input window
// holds fastInMargin bytes and the buffer has fastOutMargin of room,
// until the output reaches limit or the block ends. All it reads of the
// window it takes from the bit buffer: the caller gives back what it
// holds unused.
//
// One refill gives at least 56 bits, enough for any whole symbol: a
// litlen codeword (15 bits) with its extra bits (5), then a distance
// codeword (15) with its extra bits (13).
func (r *Reader) fastLoop(limit int) error {
	in := r.in
	inEnd := len(in) - fastInMargin
	outEnd := min(limit, bufLen-fastOutMargin)
	buf := r.buf
	lit, dist := r.lit, r.dist
	bits, nbits, pos, op := r.bits, r.nbits, r.pos, r.op
	reason := ""
	for pos <= inEnd && op < outEnd {
		// Branchless refill: load 8 bytes and keep as many whole ones as
		// fit; the bits above nbits are the next input's, so that
		// loading them again is harmless.
		bits |= binary.LittleEndian.Uint64(in[pos:]) << (nbits & 63)
		pos += int(7 - nbits>>3&7)
		nbits |= 56

		e := lit[bits&(1<<litTableBits-1)]
		if e&entLiteral != 0 {
			bits >>= e & 63
			nbits -= uint(e & 63)
			buf[op&bufMask] = byte(e >> 16)
			op++
			continue
		}
		if e&entExceptional != 0 {
			if e&entSubtable != 0 {
				bits >>= litTableBits
				nbits -= litTableBits
				e = lit[(e>>16+uint32(bits)&(1<<(e>>8&15)-1))&(litTableSize-1)]
				if e&entLiteral != 0 {
					bits >>= e & 63
					nbits -= uint(e & 63)
					buf[op&bufMask] = byte(e >> 16)
					op++
					continue
				}
			}
			if e&entExceptional != 0 {
				if e&entEOB != 0 {
					bits >>= e & 63
					nbits -= uint(e & 63)
					r.state = stateHeader
				} else {
					reason = "invalid literal/length code"
				}
				break
			}
		}

		// A match: its length, then its distance.
		saved := bits
		bits >>= e & 63
		nbits -= uint(e & 63)
		length := int(e>>16) + int(saved&(1<<(e&63)-1)>>(e>>8&15))

		d := dist[bits&(1<<distTableBits-1)]
		if d&entExceptional != 0 {
			if d&entSubtable != 0 {
				bits >>= distTableBits
				nbits -= distTableBits
				d = dist[(d>>16+uint32(bits)&(1<<(d>>8&15)-1))&(distTableSize-1)]
			}
			if d&entExceptional != 0 {
				reason = "invalid distance code"
				break
			}
		}
		saved = bits
		bits >>= d & 63
		nbits -= uint(d & 63)
		distance := int(d>>16) + int(saved&(1<<(d&63)-1)>>(d>>8&15))
		if distance > op {
			reason = "distance too far back"
			break
		}

		// Copy 8 bytes at a time, past the match's end if need be (the
		// buffer has the room; the next symbols overwrite it).
		src := op - distance
		end := op + length
		switch {
		case distance >= 8:
			for {
				v := binary.LittleEndian.Uint64(buf[src&bufMask:])
				binary.LittleEndian.PutUint64(buf[op&bufMask:], v)
				op += 8
				src += 8
				if op >= end {
					break
				}
			}
		case distance == 1:
			v := uint64(buf[src&bufMask]) * 0x0101010101010101
			for {
				binary.LittleEndian.PutUint64(buf[op&bufMask:], v)
				op += 8
				if op >= end {
					break
				}
			}
		default:
			// The match overlaps the bytes it writes: byte by byte.
			for ; op < end; op++ {
				buf[op&bufMask] = buf[src&bufMask]
				src++
			}
		}
		op = end
	}
	r.bits, r.nbits, r.pos, r.op = bits, nbits, pos, op
	if reason != "" {
		return r.corrupt(reason)
	}
	return nil
}
