package decode

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/ulikunitz/xz/lzma"
)

// The xz container is read here, and only its LZMA2 data by
// github.com/ulikunitz/xz/lzma: that package's own xz reader allocates
// whatever dictionary a block header asks for (up to 4 GiB) before
// decoding a byte, so each block's dictionary is checked against the walk's
// decoder memory cap first. Checks (CRC32, CRC64, SHA-256) are skipped,
// not verified: what decodes is scanned, intact or not.

// xzReader decodes the blocks of one or more concatenated xz streams.
type xzReader struct {
	s      *src
	charge func(int64) error // charges a dictionary; see walker.open
	w      *walker
	check  int // bytes of each block's check
	cur    io.Reader
	held   int64 // the current block's charged dictionary
	// maxDict, when set, caps the dictionary allocated: a squashfs
	// block decodes to at most its block size, whatever the header asks.
	maxDict int64
	bstart  int64 // position of the current block's header
	err     error
}

// newXzReader reads the stream header at s's position.
func newXzReader(s *src, charge func(int64) error) (*xzReader, error) {
	x := &xzReader{s: s, charge: charge}
	if err := x.streamHeader(); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *xzReader) streamHeader() error {
	var h [12]byte
	if _, err := io.ReadFull(x.s, h[:]); err != nil {
		return err
	}
	if !bytes.HasPrefix(h[:], magicXz) || h[6] != 0 || h[7] > 0x0f {
		return errors.New("xz: bad stream header")
	}
	x.check = checkSize(h[7])
	return nil
}

// checkSize is the size of a block check of type t.
func checkSize(t byte) int {
	switch {
	case t == 0:
		return 0
	case t <= 3:
		return 4
	case t <= 6:
		return 8
	case t <= 9:
		return 16
	case t <= 12:
		return 32
	}
	return 64
}

func (x *xzReader) Read(p []byte) (int, error) {
	for x.err == nil {
		if x.cur == nil {
			x.err = x.next()
			continue
		}
		n, err := x.cur.Read(p)
		if err == io.EOF {
			x.err = x.endBlock()
			if n > 0 {
				return n, nil
			}
			continue
		}
		if err != nil {
			x.err = err
		}
		return n, err
	}
	return 0, x.err
}

// Close releases the last block's dictionary charge.
func (x *xzReader) Close() error {
	x.release()
	return nil
}

func (x *xzReader) release() {
	if x.held > 0 && x.w != nil {
		x.w.unhold(x.held)
	}
	x.held = 0
}

// next reads a block header and starts its LZMA2 reader, or reads the
// index, the stream footer and any following stream.
func (x *xzReader) next() error {
	x.bstart = x.s.pos()
	b, err := x.s.ReadByte()
	if err != nil {
		return io.ErrUnexpectedEOF
	}
	if b == 0 {
		return x.index()
	}
	hdr := make([]byte, (int(b)+1)*4)
	hdr[0] = b
	if _, err := io.ReadFull(x.s, hdr[1:]); err != nil {
		return io.ErrUnexpectedEOF
	}
	flags := hdr[1]
	if flags&0x3c != 0 {
		return errors.New("xz: reserved block flags set")
	}
	p := hdr[2 : len(hdr)-4]
	if flags&0x40 != 0 {
		if _, p, err = uvarint(p); err != nil {
			return err
		}
	}
	if flags&0x80 != 0 {
		if _, p, err = uvarint(p); err != nil {
			return err
		}
	}
	if flags&3 != 0 {
		return &capError{reason: "xz stream with filters other than LZMA2 alone (BCJ, delta) not decoded"}
	}
	id, p, err := uvarint(p)
	if err != nil {
		return err
	}
	size, p, err := uvarint(p)
	if err != nil {
		return err
	}
	if id != 0x21 || size != 1 || len(p) < 1 {
		return &capError{reason: fmt.Sprintf("xz filter %#x not supported", id)}
	}
	dict, err := dictSize(p[0])
	if err != nil {
		return err
	}
	x.release()
	if err := x.charge(dict); err != nil {
		return err
	}
	x.held = dict
	if x.maxDict > 0 {
		dict = min(dict, x.maxDict)
	}
	dictCap := int(max(dict, lzma.MinDictCap))
	if x.w != nil && x.w.headOnly {
		dictCap = lzma.MinDictCap // Options.HeadOnly
	}
	r, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(x.s.br)
	if err != nil {
		return err
	}
	x.cur = r
	return nil
}

// dictSize decodes an LZMA2 dictionary size byte.
func dictSize(b byte) (int64, error) {
	if b > 40 {
		return 0, errors.New("xz: bad LZMA2 dictionary size")
	}
	if b == 40 {
		return 1<<32 - 1, nil
	}
	return int64(2|b&1) << (b/2 + 11), nil
}

// endBlock skips the block padding and the check.
func (x *xzReader) endBlock() error {
	x.cur = nil
	pad := (4 - (x.s.pos()-x.bstart)%4) % 4
	if _, err := x.s.Discard(pad + int64(x.check)); err != nil {
		return io.ErrUnexpectedEOF
	}
	return nil
}

// index skips the index and the footer; another stream may follow, after
// stream padding.
func (x *xzReader) index() error {
	x.release()
	start := x.s.pos() - 1
	n, err := binaryUvarint(x.s)
	if err != nil {
		return err
	}
	for i := uint64(0); i < n; i++ {
		if _, err := binaryUvarint(x.s); err != nil {
			return err
		}
		if _, err := binaryUvarint(x.s); err != nil {
			return err
		}
		if x.w != nil {
			if err := x.w.check(); err != nil {
				return err
			}
		}
	}
	pad := (4 - (x.s.pos()-start)%4) % 4
	if _, err := x.s.Discard(pad + 4 + 12); err != nil {
		return io.ErrUnexpectedEOF
	}
	// Stream padding, then maybe another stream.
	for {
		b, err := x.s.Peek(4)
		if len(b) < 4 || err != nil || !bytes.Equal(b, []byte{0, 0, 0, 0}) {
			break
		}
		x.s.Discard(4)
	}
	if b, _ := x.s.Peek(len(magicXz)); bytes.Equal(b, magicXz) {
		return x.streamHeader()
	}
	return io.EOF
}

// uvarint reads an xz multibyte integer from p.
func uvarint(p []byte) (uint64, []byte, error) {
	var v uint64
	for i := 0; i < 9 && i < len(p); i++ {
		v |= uint64(p[i]&0x7f) << (7 * i)
		if p[i]&0x80 == 0 {
			return v, p[i+1:], nil
		}
	}
	return 0, nil, errors.New("xz: bad integer")
}

func binaryUvarint(r io.ByteReader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		c, err := r.ReadByte()
		if err != nil {
			return 0, io.ErrUnexpectedEOF
		}
		v |= uint64(c&0x7f) << (7 * i)
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("xz: bad integer")
}
