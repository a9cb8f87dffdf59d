package inflate

import (
	"bufio"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"hash"
	"hash/adler32"
	"io"
)

// A ZlibReader inflates one zlib stream (RFC 1950): a 2-byte header, the
// DEFLATE data, and the data's Adler-32, which it checks. Errors are
// compress/zlib's (ErrHeader, ErrChecksum, ErrDictionary), wrapped. After
// io.EOF its bufio.Reader stands exactly after the checksum.
type ZlibReader struct {
	br    *bufio.Reader
	z     *Reader
	adler hash.Hash32
	err   error
}

// NewZlibReader reads a zlib header from br and returns a reader of the
// stream's data. A preset dictionary is not supported (ErrDictionary), as
// compress/zlib's NewReader does not take one.
func NewZlibReader(br *bufio.Reader) (*ZlibReader, error) {
	z := new(ZlibReader)
	if err := z.Reset(br); err != nil {
		return nil, err
	}
	return z, nil
}

// Reset makes z read a new stream from br, keeping its buffers, and reads
// the stream's header.
func (z *ZlibReader) Reset(br *bufio.Reader) error {
	if z.z == nil {
		z.z, z.adler = NewReader(br), adler32.New()
	} else {
		z.z.Reset(br)
		z.adler.Reset()
	}
	z.br, z.err = br, nil
	var h [2]byte
	if _, err := io.ReadFull(br, h[:]); err != nil {
		z.err = err
		return err
	}
	switch {
	case h[0]&0x0f != 8 || h[0]>>4 > 7 || binary.BigEndian.Uint16(h[:])%31 != 0:
		z.err = fmt.Errorf("header %x: %w", h, zlib.ErrHeader)
	case h[1]&0x20 != 0:
		z.err = fmt.Errorf("header %x: %w", h, zlib.ErrDictionary)
	}
	return z.err
}

func (z *ZlibReader) Read(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	n, err := z.z.Read(p)
	z.adler.Write(p[:n])
	switch {
	case err == io.EOF:
		var b [4]byte
		if _, rerr := io.ReadFull(z.br, b[:]); rerr != nil {
			z.err = noEOF(rerr)
		} else if binary.BigEndian.Uint32(b[:]) != z.adler.Sum32() {
			z.err = fmt.Errorf("Adler-32 %x, the data's %08x: %w", b, z.adler.Sum32(), zlib.ErrChecksum)
		} else {
			z.err = io.EOF
		}
	case err != nil:
		z.err = err
	}
	if n > 0 && z.err == io.EOF {
		return n, nil
	}
	return n, z.err
}

// Close ends the use of z, reporting the stream's error if it failed.
func (z *ZlibReader) Close() error {
	if z.err == io.EOF {
		return nil
	}
	return z.err
}
