package inflate

import (
	"bufio"
	"compress/gzip"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"time"
)

// The gzip errors are compress/gzip's (klauspost/compress/gzip uses the
// same values), so that errors.Is matches whichever reader gave them.
var (
	// ErrChecksum: the trailer's CRC-32 or size does not match the data.
	ErrChecksum = gzip.ErrChecksum
	// ErrHeader: the bytes are not a gzip header.
	ErrHeader = gzip.ErrHeader
)

// gzip header flags (RFC 1952 section 2.3.1).
const (
	gzipHdrCRC  = 1 << 1
	gzipExtra   = 1 << 2
	gzipName    = 1 << 3
	gzipComment = 1 << 4
	// maxGzipString bounds FNAME and FCOMMENT as compress/gzip does: a
	// longer one is not a header.
	maxGzipString = 511
)

// A GzipHeader is what a gzip member's header says of its data.
type GzipHeader struct {
	Name    string // FNAME, read as Latin-1
	Comment string // FCOMMENT, read as Latin-1
	Extra   []byte // FEXTRA
	ModTime time.Time
	OS      byte
}

// A GzipReader inflates one gzip member: its header, its DEFLATE stream,
// and its trailer, whose CRC-32 and size it checks. After io.EOF its
// bufio.Reader stands exactly after the trailer, where a next member may
// start (as klauspost/compress/gzip's Reader with Multistream(false)
// leaves it).
type GzipReader struct {
	GzipHeader
	br   *bufio.Reader
	z    *Reader
	crc  uint32
	size uint32
	err  error
}

// NewGzipReader reads a gzip member's header from br and returns a reader
// of its data. Input that ends before any byte gives io.EOF, as
// compress/gzip does; one that is not a gzip header, ErrHeader.
func NewGzipReader(br *bufio.Reader) (*GzipReader, error) {
	z := &GzipReader{z: NewReader(br)}
	if err := z.Reset(br); err != nil {
		return nil, err
	}
	return z, nil
}

// Reset makes z read a new member from br, keeping its buffers, and reads
// the member's header.
func (z *GzipReader) Reset(br *bufio.Reader) error {
	*z = GzipReader{br: br, z: z.z}
	if z.z == nil {
		z.z = NewReader(br)
	} else {
		z.z.Reset(br)
	}
	z.GzipHeader, z.err = z.readHeader()
	return z.err
}

// Close ends the use of z, reporting the member's error if it failed.
func (z *GzipReader) Close() error {
	if z.err == io.EOF {
		return nil
	}
	return z.err
}

// readHeader reads the member's header, with the checks compress/gzip
// makes.
func (z *GzipReader) readHeader() (GzipHeader, error) {
	var h GzipHeader
	var b [10]byte
	if _, err := io.ReadFull(z.br, b[:]); err != nil {
		return h, err // io.EOF if there is no member at all
	}
	if b[0] != 0x1f || b[1] != 0x8b || b[2] != 8 {
		return h, fmt.Errorf("magic and method %x, not gzip's 1f8b08: %w", b[:3], ErrHeader)
	}
	flags := b[3]
	if t := int64(binary.LittleEndian.Uint32(b[4:8])); t > 0 {
		h.ModTime = time.Unix(t, 0)
	}
	h.OS = b[9]
	crc := crc32.ChecksumIEEE(b[:])
	if flags&gzipExtra != 0 {
		if _, err := io.ReadFull(z.br, b[:2]); err != nil {
			return h, noEOF(err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, b[:2])
		h.Extra = make([]byte, binary.LittleEndian.Uint16(b[:2]))
		if _, err := io.ReadFull(z.br, h.Extra); err != nil {
			return h, noEOF(err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, h.Extra)
	}
	var err error
	if flags&gzipName != 0 {
		if h.Name, crc, err = z.readString(crc); err != nil {
			return h, err
		}
	}
	if flags&gzipComment != 0 {
		if h.Comment, crc, err = z.readString(crc); err != nil {
			return h, err
		}
	}
	if flags&gzipHdrCRC != 0 {
		if _, err := io.ReadFull(z.br, b[:2]); err != nil {
			return h, noEOF(err)
		}
		if binary.LittleEndian.Uint16(b[:2]) != uint16(crc) {
			return h, fmt.Errorf("header CRC-16 mismatch: %w", ErrHeader)
		}
	}
	if flags>>5 != 0 {
		return h, fmt.Errorf("reserved flags %#x: %w", flags, ErrHeader)
	}
	return h, nil
}

// readString reads a zero-terminated Latin-1 header string.
func (z *GzipReader) readString(crc uint32) (string, uint32, error) {
	var s []rune
	for {
		c, err := z.br.ReadByte()
		if err != nil {
			return "", crc, noEOF(err)
		}
		crc = crc32.Update(crc, crc32.IEEETable, []byte{c})
		if c == 0 {
			return string(s), crc, nil
		}
		if len(s) == maxGzipString {
			return "", crc, fmt.Errorf("header string over %d bytes: %w", maxGzipString, ErrHeader)
		}
		s = append(s, rune(c))
	}
}

// WriteTo writes the member's inflated data to w without copying it
// first (io.Copy uses it), then reads and checks the trailer as Read
// does. It returns nil at the member's end.
func (z *GzipReader) WriteTo(w io.Writer) (int64, error) {
	if z.err != nil {
		if z.err == io.EOF {
			return 0, nil
		}
		return 0, z.err
	}
	n, err := z.z.WriteTo(crcWriter{z, w})
	if err != nil {
		z.err = err
		return n, err
	}
	z.err = z.trailer()
	if z.err == io.EOF {
		return n, nil
	}
	return n, z.err
}

// crcWriter sums what it passes on to w.
type crcWriter struct {
	z *GzipReader
	w io.Writer
}

func (c crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.z.crc = crc32.Update(c.z.crc, crc32.IEEETable, p[:n])
	c.z.size += uint32(n)
	return n, err
}

// trailer reads and checks the member's trailer: io.EOF if it matches.
func (z *GzipReader) trailer() error {
	var t [8]byte
	if _, err := io.ReadFull(z.br, t[:]); err != nil {
		return noEOF(err)
	}
	if binary.LittleEndian.Uint32(t[:4]) != z.crc || binary.LittleEndian.Uint32(t[4:]) != z.size {
		return ErrChecksum
	}
	return io.EOF
}

// Read reads the member's inflated data. After the last byte it reads and
// checks the trailer, and returns io.EOF, or ErrChecksum if the data's
// CRC-32 or size does not match.
func (z *GzipReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.z.Read(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p[:n])
	z.size += uint32(n)
	switch {
	case err == io.EOF:
		z.err = z.trailer()
	case err != nil:
		z.err = err
	}
	if n > 0 && z.err == io.EOF {
		return n, nil // the end, on the next call
	}
	return n, z.err
}

// A MultiGzipReader reads the gzip members that follow each other in its
// bufio.Reader as one stream, as compress/gzip's Reader does by default:
// a container layer or a file may hold several. Bytes after a member
// that are not another member's header are ErrHeader, as there.
type MultiGzipReader struct {
	z   GzipReader
	err error
}

// NewMultiGzipReader reads the first member's header from br.
func NewMultiGzipReader(br *bufio.Reader) (*MultiGzipReader, error) {
	m := new(MultiGzipReader)
	if err := m.z.Reset(br); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *MultiGzipReader) Read(p []byte) (int, error) {
	for m.err == nil {
		n, err := m.z.Read(p)
		if err != io.EOF {
			if err != nil {
				m.err = err
			}
			return n, err
		}
		// The member ended: another may follow.
		if _, perr := m.z.br.Peek(1); perr != nil {
			m.err = io.EOF
		} else if herr := m.z.Reset(m.z.br); herr != nil {
			if herr == io.EOF {
				herr = io.ErrUnexpectedEOF
			}
			m.err = herr
		}
		if n > 0 || len(p) == 0 {
			return n, nil
		}
	}
	return 0, m.err
}

// Close ends the use of m, reporting its error if it failed.
func (m *MultiGzipReader) Close() error {
	if m.err == io.EOF {
		return nil
	}
	return m.err
}
