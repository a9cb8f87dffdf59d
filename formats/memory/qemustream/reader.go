package qemustream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
)

// cursor reads a stream sequentially, tracking the offset so that errors
// and the page index can name it.
type cursor struct {
	name string
	br   source
	pos  int64
	size int64
}

// source is what a cursor reads: a bufio.Reader over the stream, or the
// stream's bytes in place (inPlace).
type source interface {
	io.Reader
	io.ByteReader
	Peek(n int) ([]byte, error)
	Discard(n int) (int, error)
}

// newCursor reads r through a buffer: every byte is copied, page data
// included, though the parse only skips it.
func newCursor(name string, r io.ReaderAt, size int64) *cursor {
	return &cursor{name: name, br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 256<<10), size: size}
}

// newCursorInPlace reads b, the whole stream, in place: skipping page
// data is moving an offset, and only the record headers are read (see
// mapStream).
func newCursorInPlace(name string, b []byte) *cursor {
	return &cursor{name: name, br: &inPlace{b: b}, size: int64(len(b))}
}

// inPlace is a source over bytes in memory, with bufio.Reader's semantics
// for the methods a cursor uses.
type inPlace struct {
	b   []byte
	off int
}

func (r *inPlace) Read(p []byte) (int, error) {
	if r.off >= len(r.b) {
		if len(p) == 0 {
			return 0, nil
		}
		return 0, io.EOF
	}
	n := copy(p, r.b[r.off:])
	r.off += n
	return n, nil
}

func (r *inPlace) ReadByte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, io.EOF
	}
	r.off++
	return r.b[r.off-1], nil
}

func (r *inPlace) Peek(n int) ([]byte, error) {
	if n < 0 {
		return nil, bufio.ErrNegativeCount
	}
	if k := len(r.b) - r.off; k < n {
		return r.b[r.off:], io.EOF
	}
	return r.b[r.off : r.off+n], nil
}

func (r *inPlace) Discard(n int) (int, error) {
	if n < 0 {
		return 0, bufio.ErrNegativeCount
	}
	k := min(n, len(r.b)-r.off)
	r.off += k
	if k < n {
		return k, io.EOF
	}
	return k, nil
}

var errTruncated = errors.New("stream truncated")

func (c *cursor) fail(err error, what string) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = errTruncated
	}
	return model.Wrapf(err, c.name, c.pos, "%s", what)
}

func (c *cursor) full(p []byte, what string) error {
	n, err := io.ReadFull(c.br, p)
	c.pos += int64(n)
	if err != nil {
		return c.fail(err, what)
	}
	return nil
}

func (c *cursor) u8(what string) (byte, error) {
	b, err := c.br.ReadByte()
	if err != nil {
		return 0, c.fail(err, what)
	}
	c.pos++
	return b, nil
}

func (c *cursor) peek() (byte, bool) {
	b, err := c.br.Peek(1)
	if err != nil {
		return 0, false
	}
	return b[0], true
}

func (c *cursor) be16(what string) (uint16, error) {
	var b [2]byte
	if err := c.full(b[:], what); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint16(b[:]), nil
}

func (c *cursor) be32(what string) (uint32, error) {
	var b [4]byte
	if err := c.full(b[:], what); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]), nil
}

func (c *cursor) be64(what string) (uint64, error) {
	var b [8]byte
	if err := c.full(b[:], what); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b[:]), nil
}

// str reads a u8-length-prefixed string (idstr, block id).
func (c *cursor) str(what string) (string, error) {
	n, err := c.u8(what)
	if err != nil {
		return "", err
	}
	b := make([]byte, n)
	if err := c.full(b, what); err != nil {
		return "", err
	}
	return string(b), nil
}

// skip discards n bytes, failing if the stream ends first.
func (c *cursor) skip(n int64, what string) error {
	if n < 0 || n > c.size-c.pos {
		return model.Wrapf(errTruncated, c.name, c.pos, "%s: %d bytes past the end", what, n)
	}
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := c.br.Discard(k)
		c.pos += int64(d)
		if err != nil {
			return c.fail(err, what)
		}
		n -= int64(k)
	}
	return nil
}
