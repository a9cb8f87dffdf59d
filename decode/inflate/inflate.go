// Package inflate decodes DEFLATE streams (RFC 1951) and gzip members
// (RFC 1952), in pure Go, about twice as fast as klauspost/compress/flate,
// the fastest pure-Go inflater before it. It follows libdeflate's design:
// a 64-bit bit buffer refilled eight bytes at a time without branches,
// decode tables whose entries say at once whether a symbol is a literal
// or a length and how many extra bits follow, and a fast loop that runs
// while the input window and the output buffer have room for a whole
// symbol, falling back to a careful byte-at-a-time path near their ends.
//
// A Reader reads its stream from a bufio.Reader and leaves it positioned
// exactly after the byte that holds the stream's last bit, as
// compress/flate does when it reads an io.ByteReader one byte at a time:
// the gzip trailer, the next zip member or the next concatenated stream
// follow there. It gets the speed of wide loads anyway by decoding from
// the bufio.Reader's buffer (Peek) and discarding only what it consumed.
// It may fill that buffer one Read of the underlying reader before it
// needs the bytes, never more.
package inflate

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
)

const (
	windowSize = 32 << 10 // DEFLATE's history: the farthest a match reaches back
	bufLen     = 128 << 10
	// bufSlack lets the fast loop's 8-byte stores run past a match's end,
	// and lets indexes masked to bufLen-1 address 8 bytes without a
	// bounds check.
	bufSlack = 8
	maxMatch = 258

	// decodeChunk is the least that one Read decodes ahead (when the
	// stream holds that much): enough that the fixed cost of entering
	// the decoder is small, while a caller that wants only a few bytes
	// (decode.Exactly tries streams at many places) pays for few more.
	decodeChunk = 64 << 10
	// slideAt: once the buffer holds this much, it keeps only the last
	// windowSize bytes as history, so that the next decode has room.
	slideAt = bufLen - decodeChunk
)

// A CorruptError is a stream that is not valid DEFLATE, by the rules
// that zlib and Go's compress/flate apply (see buildTable for the codes
// they accept). Offset counts the stream's bytes from its start up to and
// including the one being read when the error was found. (A gzip
// member's bad header or trailer is ErrHeader or ErrChecksum instead.)
type CorruptError struct {
	Offset int64
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("inflate: corrupt stream at input offset %d: %s", e.Offset, e.Reason)
}

// Block decoding states.
const (
	stateHeader  = iota // at a block header (or after the final block)
	stateStored         // storedLeft bytes of a stored block to copy
	stateHuffman        // in a Huffman-coded block
)

// A Reader inflates one raw DEFLATE stream. Its memory is fixed: a
// 128 KiB buffer that holds the 32 KiB history and the output not yet
// read, and the decode tables, whatever the stream.
type Reader struct {
	br *bufio.Reader

	// The input window: in is what br had buffered when the window was
	// taken (Peek), pos the next byte to load into the bit buffer.
	// Nothing is discarded from br until the window is given back
	// (syncInput), so that the bytes still in the bit buffer can be.
	in    []byte
	pos   int
	bits  uint64 // the next nbits input bits, least significant first
	nbits uint   // (bits above nbits may hold the bytes from in[pos:])
	inOff int64  // bytes discarded from br since the stream's start
	inErr error  // br's error once it has no more bytes

	m    *mem
	op   int // where the next output byte goes
	rpos int // the next output byte that Read has not returned

	state      int
	final      bool // the current block is the last
	storedLeft int
	err        error // sticky: io.EOF after the final block
}

// mem is a Reader's fixed memory, one allocation: the output buffer, and
// after it the current block's decode tables, so that the fast loop
// addresses both from one pointer.
type mem struct {
	buf   [bufLen + bufSlack]byte
	dec   decodeTables // the current block's
	fixed bool         // dec holds fixedTables
	pre   [preTableSize]uint32
	lens  [maxNumLit + maxNumDist]uint8
}

// NewReader returns a Reader that inflates the raw DEFLATE stream read
// from br.
func NewReader(br *bufio.Reader) *Reader {
	r := &Reader{m: new(mem)}
	r.Reset(br)
	return r
}

// Reset makes r inflate a new stream read from br, keeping its buffer and
// tables.
func (r *Reader) Reset(br *bufio.Reader) {
	*r = Reader{br: br, m: r.m}
}

// Close ends the use of r. It reports the stream's error, if it failed,
// as compress/flate's Close does.
func (r *Reader) Close() error {
	if r.err == io.EOF {
		return nil
	}
	return r.err
}

// InputOffset is how many bytes of the stream r has consumed from its
// bufio.Reader: after io.EOF, the stream's length. Between calls to Read
// the bufio.Reader stands exactly there (the bits of a byte that r has
// begun to use are kept in r).
func (r *Reader) InputOffset() int64 { return r.inOff }

// Read reads inflated bytes into p. It returns io.EOF after the final
// block, io.ErrUnexpectedEOF if the input ends before it, and a
// *CorruptError for input that is not DEFLATE.
func (r *Reader) Read(p []byte) (int, error) {
	for r.rpos == r.op {
		if r.err != nil {
			return 0, r.err
		}
		if len(p) == 0 {
			return 0, nil
		}
		if r.op >= slideAt {
			// All output is read: keep the history that matches may
			// still reach.
			copy(r.m.buf[:windowSize], r.m.buf[r.op-windowSize:r.op])
			r.op, r.rpos = windowSize, windowSize
		}
		r.decode(r.op + max(len(p), decodeChunk))
	}
	n := copy(p, r.m.buf[r.rpos:r.op])
	r.rpos += n
	return n, nil
}

// WriteTo writes the inflated stream to w, straight from r's buffer (no
// copy into a caller's buffer: io.Copy uses it). It returns nil at the
// stream's end, as io.Copy expects, and leaves br where Read would.
func (r *Reader) WriteTo(w io.Writer) (int64, error) {
	var total int64
	for {
		if r.rpos < r.op {
			n, err := w.Write(r.m.buf[r.rpos:r.op])
			r.rpos += n
			total += int64(n)
			if err != nil {
				return total, err
			}
			if r.rpos < r.op {
				return total, io.ErrShortWrite
			}
		}
		if r.err != nil {
			if r.err == io.EOF {
				return total, nil
			}
			return total, r.err
		}
		if r.op >= slideAt {
			copy(r.m.buf[:windowSize], r.m.buf[r.op-windowSize:r.op])
			r.op, r.rpos = windowSize, windowSize
		}
		r.decode(bufLen)
	}
}

// decode inflates until the buffer holds output up to limit (or as near as
// whole symbols allow), the buffer is full, or the stream ends or fails.
// It gives the input window back to br before it returns.
func (r *Reader) decode(limit int) {
	limit = min(limit, bufLen-maxMatch) // room for any symbol's output
	for r.err == nil && r.op < limit {
		switch r.state {
		case stateHeader:
			if r.final {
				r.err = io.EOF
				break
			}
			r.err = r.blockHeader()
		case stateStored:
			r.err = r.stored(limit)
		case stateHuffman:
			r.err = r.huffman(limit)
		}
	}
	if r.err == nil && r.state == stateHeader && r.final {
		// The output ended with the final block: report the end now,
		// not after one more Read that finds nothing.
		r.err = io.EOF
	}
	r.syncInput()
}

// syncInput gives the input window back to br: it discards the bytes
// consumed and keeps in the bit buffer only the bits left of the last
// byte begun.
func (r *Reader) syncInput() {
	if n := r.pos - int(r.nbits>>3); n > 0 {
		r.br.Discard(n) // they are buffered: it cannot fail
		r.inOff += int64(n)
	}
	r.bits &= 1<<(r.nbits&7) - 1
	r.nbits &= 7
	r.in, r.pos = nil, 0
}

// moreInput takes a new input window, reaching past the old one's end,
// after giving the old one back. It reads from br's reader only if br
// has no byte buffered past that end.
func (r *Reader) moreInput() error {
	back := int(r.nbits >> 3) // whole bytes the bit buffer gives back
	r.syncInput()
	if r.br.Buffered() <= back {
		if r.inErr == nil {
			_, r.inErr = r.br.Peek(back + 1) // one Read from br's reader
		}
		if r.br.Buffered() <= back {
			return noEOF(r.inErr)
		}
	}
	r.in, _ = r.br.Peek(r.br.Buffered())
	return nil
}

func noEOF(err error) error {
	if err == io.EOF || err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}

// need makes the bit buffer hold at least n bits (n <= 56), loading one
// byte at a time: the careful path, which never reads input that the
// stream may not have.
func (r *Reader) need(n uint) error {
	for r.nbits < n {
		if r.pos >= len(r.in) {
			if err := r.moreInput(); err != nil {
				return err
			}
			continue
		}
		r.bits |= uint64(r.in[r.pos]) << (r.nbits & 63)
		r.pos++
		r.nbits += 8
	}
	return nil
}

// getBits reads n bits (n <= 32).
func (r *Reader) getBits(n uint) (uint32, error) {
	if err := r.need(n); err != nil {
		return 0, err
	}
	v := uint32(r.bits & (1<<n - 1))
	r.bits >>= n
	r.nbits -= n
	return v, nil
}

// offset is the input offset of the byte being read.
func (r *Reader) offset() int64 { return r.inOff + int64(r.pos) - int64(r.nbits>>3) }

func (r *Reader) corrupt(reason string) error {
	return &CorruptError{Offset: r.offset(), Reason: reason}
}

// codeOrder is the order of the code length code's lengths (RFC 1951
// section 3.2.7).
var codeOrder = [numPre]uint8{16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15}

// blockHeader reads a block's header: the state becomes the block's.
func (r *Reader) blockHeader() error {
	h, err := r.getBits(3)
	if err != nil {
		return err
	}
	r.final = h&1 != 0
	switch h >> 1 {
	case 0:
		// Stored: LEN and NLEN start at the next byte boundary.
		r.bits >>= r.nbits & 7
		r.nbits -= r.nbits & 7
		v, err := r.getBits(32)
		if err != nil {
			return err
		}
		if n := v & 0xffff; v>>16 != n^0xffff {
			return r.corrupt("stored block length does not match its complement")
		}
		r.syncInput() // at a byte boundary: the bit buffer gives back all
		r.storedLeft = int(v & 0xffff)
		r.state = stateStored
	case 1:
		if !r.m.fixed {
			r.m.dec = fixedTables // 18 KiB, when a dynamic block came before
			r.m.fixed = true
		}
		r.state = stateHuffman
	case 2:
		if err := r.dynamicHeader(); err != nil {
			return err
		}
		r.state = stateHuffman
	default:
		return r.corrupt("reserved block type")
	}
	return nil
}

// dynamicHeader reads a dynamic block's code definitions and builds its
// tables. It rejects what compress/flate and zlib reject.
func (r *Reader) dynamicHeader() error {
	v, err := r.getBits(14)
	if err != nil {
		return err
	}
	nlit, ndist, npre := int(v&31)+257, int(v>>5&31)+1, int(v>>10)+4
	if nlit > maxNumLit {
		return r.corrupt(fmt.Sprintf("%d literal/length codes", nlit))
	}
	if ndist > maxNumDist {
		return r.corrupt(fmt.Sprintf("%d distance codes", ndist))
	}
	t := r.m
	t.fixed = false
	var plens [numPre]uint8
	for _, s := range codeOrder[:npre] {
		l, err := r.getBits(3)
		if err != nil {
			return err
		}
		plens[s] = uint8(l)
	}
	if !buildTable(t.pre[:], plens[:], preSym[:], preTableBits) {
		return r.corrupt("invalid code length code")
	}
	lens := t.lens[:nlit+ndist]
	for i := 0; i < len(lens); {
		// A codeword (7 bits at most) and its extra bits (7): taken
		// from a branchless refill while the window has 8 bytes.
		if r.nbits < 14 && len(r.in)-r.pos >= 8 {
			r.bits |= binary.LittleEndian.Uint64(r.in[r.pos:r.pos+8]) << (r.nbits & 63)
			r.pos += int(7 - r.nbits>>3&7)
			r.nbits |= 56
		}
		var e uint32
		if r.nbits >= 14 {
			e = t.pre[r.bits&(preTableSize-1)]
		} else if e, err = r.slowEntry(t.pre[:], preTableBits); err != nil {
			return err
		}
		if e&entExceptional != 0 {
			return r.corrupt("invalid code length codeword")
		}
		r.bits >>= e & 63
		r.nbits -= uint(e & 63)
		sym := e >> 16
		if sym < 16 {
			lens[i] = uint8(sym)
			i++
			continue
		}
		var rep uint32
		var fill uint8
		switch sym {
		case 16:
			if i == 0 {
				return r.corrupt("code length repeat with no previous length")
			}
			fill = lens[i-1]
			rep, err = r.getBits(2)
			rep += 3
		case 17:
			rep, err = r.getBits(3)
			rep += 3
		default:
			rep, err = r.getBits(7)
			rep += 11
		}
		if err != nil {
			return err
		}
		if i+int(rep) > len(lens) {
			return r.corrupt("code length repeat past the last code")
		}
		for range rep {
			lens[i] = fill
			i++
		}
	}
	if !buildTable(t.dec.lit(), lens[:nlit], litSym[:], litTableBits) {
		return r.corrupt("invalid literal/length code lengths")
	}
	if !buildTable(t.dec.dist(), lens[nlit:], distSym[:], distTableBits) {
		return r.corrupt("invalid distance code lengths")
	}
	return nil
}

// slowEntry returns the table entry of the next codeword, loading input a
// byte at a time until it holds the whole codeword. For a codeword in a
// subtable, it consumes the main table's bits and returns the subtable's
// entry. The caller consumes the rest.
func (r *Reader) slowEntry(table []uint32, tableBits uint) (uint32, error) {
	for {
		e := table[r.bits&(1<<tableBits-1)]
		if e&entSubtable != 0 {
			if r.nbits >= tableBits {
				i := int(e>>16) + int(r.bits>>tableBits&(1<<(e>>8&15)-1))
				if i >= len(table) {
					return 0, r.corrupt("bad decode table") // cannot happen
				}
				sub := table[i]
				if tableBits+uint(sub>>8&15) <= r.nbits {
					r.bits >>= tableBits
					r.nbits -= tableBits
					return sub, nil
				}
			}
		} else if uint(e>>8&15) <= r.nbits {
			return e, nil
		}
		if err := r.need(r.nbits + 1); err != nil {
			return 0, err
		}
	}
}

// stored copies a stored block's bytes straight from br.
func (r *Reader) stored(limit int) error {
	for r.storedLeft > 0 && r.op < limit {
		n, err := r.br.Read(r.m.buf[r.op:min(limit, r.op+r.storedLeft)])
		r.op += n
		r.storedLeft -= n
		r.inOff += int64(n)
		if n == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return noEOF(err)
		}
	}
	if r.storedLeft == 0 {
		r.state = stateHeader
	}
	return nil
}

// huffman decodes a Huffman-coded block's symbols until the block ends or
// the output reaches limit: in the fast loop while the window and the
// buffer allow, else one symbol at a time.
func (r *Reader) huffman(limit int) error {
	for r.state == stateHuffman && r.op < limit {
		if len(r.in)-r.pos < fastInMargin {
			// Take a fuller window: what br has buffered, topped up by
			// one Read of its reader if that is less than the fast loop
			// needs. (Reading a little ahead into br's buffer consumes
			// nothing; the careful path takes the stream's last bytes.)
			r.syncInput()
			if n := r.br.Buffered(); n < fastInMargin && n < r.br.Size() && r.inErr == nil {
				_, r.inErr = r.br.Peek(n + 1)
			}
			r.in, _ = r.br.Peek(r.br.Buffered())
		}
		if len(r.in)-r.pos >= fastInMargin && r.op < min(limit, bufLen-fastOutMargin) {
			if err := r.fastLoop(limit); err != nil {
				return err
			}
			continue
		}
		if err := r.slowSymbol(); err != nil {
			return err
		}
	}
	return nil
}

// slowSymbol decodes one literal, match or end of block, reading input a
// byte at a time as it needs it.
func (r *Reader) slowSymbol() error {
	e, err := r.slowEntry(r.m.dec.lit(), litTableBits)
	if err != nil {
		return err
	}
	switch {
	case e&entLiteral != 0:
		r.bits >>= e & 63
		r.nbits -= uint(e & 63)
		r.m.buf[r.op] = byte(e >> 16)
		r.op++
		return nil
	case e&entEOB != 0:
		r.bits >>= e & 63
		r.nbits -= uint(e & 63)
		r.state = stateHeader
		return nil
	case e&entExceptional != 0:
		return r.corrupt("invalid literal/length code")
	}
	if err := r.need(uint(e & 63)); err != nil {
		return err
	}
	length := int(e>>16) + int(r.bits&(1<<(e&63)-1)>>(e>>8&15))
	r.bits >>= e & 63
	r.nbits -= uint(e & 63)

	d, err := r.slowEntry(r.m.dec.dist(), distTableBits)
	if err != nil {
		return err
	}
	if d&entExceptional != 0 {
		return r.corrupt("invalid distance code")
	}
	if err := r.need(uint(d & 63)); err != nil {
		return err
	}
	dist := int(d>>16) + int(r.bits&(1<<(d&63)-1)>>(d>>8&15))
	r.bits >>= d & 63
	r.nbits -= uint(d & 63)
	if dist > r.op {
		return r.corrupt("distance too far back")
	}
	out := r.m.buf[r.op : r.op+length]
	src := r.m.buf[r.op-dist : r.op-dist+length]
	for i := range out {
		out[i] = src[i]
	}
	r.op += length
	return nil
}
