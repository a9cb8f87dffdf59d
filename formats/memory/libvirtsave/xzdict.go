package libvirtsave

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// xz framing (the .xz file format, version 1.2.1).
var (
	xzMagic       = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	errXZDictSize = errors.New("xz dictionary larger than allowed")
)

const lzma2FilterID = 0x21

// checkXZDict walks the framing of the xz streams in r – stream headers,
// block headers, LZMA2 chunk headers, indexes, footers – without
// decoding anything, and fails when a block asks for an LZMA2
// dictionary over max bytes. ulikunitz/xz takes ReaderConfig.DictCap as
// a floor, not a ceiling, and allocates each block's dictionary at once,
// so a hostile header could otherwise make it allocate 4 GiB. Where the
// framing stops making sense or the data ends, the walk stops quietly:
// the decoder reports those errors itself, and never reads further.
func checkXZDict(r io.ReaderAt, size, max int64) error {
	pos := int64(0)
	for pos+12 <= size {
		var sh [12]byte
		if _, err := r.ReadAt(sh[:], pos); err != nil {
			return nil
		}
		if bytes.Equal(sh[:4], []byte{0, 0, 0, 0}) { // stream padding
			pos += 4
			continue
		}
		if !bytes.Equal(sh[:6], xzMagic) {
			return nil
		}
		start := pos
		checkLen := xzCheckSize(sh[7] & 0x0f)
		pos += 12
		for {
			var b [1]byte
			if _, err := r.ReadAt(b[:], pos); err != nil {
				return nil
			}
			if b[0] == 0 { // index indicator: skip index and footer
				next, ok := skipXZIndex(r, pos, size)
				if !ok {
					return nil
				}
				pos = next + 12
				break
			}
			hdr := make([]byte, (int(b[0])+1)*4)
			if _, err := r.ReadAt(hdr, pos); err != nil {
				return nil
			}
			dict, ok := xzBlockDict(hdr)
			if !ok {
				return nil
			}
			if dict > max {
				return fmt.Errorf("block at payload offset %d: %w: %d bytes (at most %d)", pos, errXZDictSize, dict, max)
			}
			pos += int64(len(hdr))
			if pos, ok = skipLZMA2(r, pos); !ok {
				return nil
			}
			pos += (4 - (pos-start)%4) % 4 // block padding
			pos += checkLen
		}
	}
	return nil
}

// xzCheckSize is the size of a block's check field for a check ID.
func xzCheckSize(id byte) int64 {
	if id == 0 {
		return 0
	}
	return 4 << ((id - 1) / 3)
}

// xzBlockDict returns the LZMA2 dictionary size a block header asks for.
func xzBlockDict(hdr []byte) (int64, bool) {
	if len(hdr) < 8 {
		return 0, false
	}
	flags := hdr[1]
	p := hdr[2 : len(hdr)-4] // without the CRC32
	skip := func() bool {
		_, n := binary.Uvarint(p)
		if n <= 0 {
			return false
		}
		p = p[n:]
		return true
	}
	if flags&0x40 != 0 && !skip() { // compressed size
		return 0, false
	}
	if flags&0x80 != 0 && !skip() { // uncompressed size
		return 0, false
	}
	for range int(flags&3) + 1 {
		id, n := binary.Uvarint(p)
		if n <= 0 {
			return 0, false
		}
		p = p[n:]
		psize, n := binary.Uvarint(p)
		if n <= 0 || psize > uint64(len(p)-n) {
			return 0, false
		}
		props := p[n : n+int(psize)]
		p = p[n+int(psize):]
		if id == lzma2FilterID && len(props) == 1 {
			c := props[0]
			if c > 40 {
				return 0, false
			}
			if c == 40 {
				return 1<<32 - 1, true
			}
			return int64(2|c&1) << (c/2 + 11), true
		}
	}
	return 0, false
}

// skipLZMA2 steps over the chunks of an LZMA2 stream by their headers and
// returns the offset after its end marker.
func skipLZMA2(r io.ReaderAt, pos int64) (int64, bool) {
	var h [6]byte
	for {
		if _, err := r.ReadAt(h[:1], pos); err != nil {
			return 0, false
		}
		c := h[0]
		switch {
		case c == 0:
			return pos + 1, true
		case c == 1 || c == 2: // uncompressed chunk
			if _, err := r.ReadAt(h[:3], pos); err != nil {
				return 0, false
			}
			pos += 3 + int64(binary.BigEndian.Uint16(h[1:])) + 1
		case c >= 0x80: // LZMA chunk, with a properties byte on reset states 2 and 3
			if _, err := r.ReadAt(h[:5], pos); err != nil {
				return 0, false
			}
			hl := int64(5)
			if c >= 0xc0 {
				hl = 6
			}
			pos += hl + int64(binary.BigEndian.Uint16(h[3:])) + 1
		default:
			return 0, false
		}
	}
}

// skipXZIndex steps over an index starting at pos (its indicator byte)
// and returns the offset of the stream footer.
func skipXZIndex(r io.ReaderAt, pos, size int64) (int64, bool) {
	cr := &countReader{r: bufio.NewReader(io.NewSectionReader(r, pos+1, size-pos-1))}
	n, err := binary.ReadUvarint(cr)
	if err != nil || n > uint64(size) { // every record takes bytes
		return 0, false
	}
	for range 2 * n {
		if _, err := binary.ReadUvarint(cr); err != nil {
			return 0, false
		}
	}
	end := pos + 1 + cr.n
	end += (4 - (end-pos)%4) % 4 // index padding
	return end + 4, true         // CRC32
}

type countReader struct {
	r *bufio.Reader
	n int64
}

func (c *countReader) ReadByte() (byte, error) {
	b, err := c.r.ReadByte()
	if err == nil {
		c.n++
	}
	return b, err
}
