package decode

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

const (
	// exactMaxWindow is the largest zstd window Exactly accepts.
	exactMaxWindow = 8 << 20
	// exactReadSize is what Exactly copies of b at a time to inflate it:
	// where no stream starts, the first few bytes fail it.
	exactReadSize = 4096
)

// An Exacter tries streams by Exactly's rules, keeping its DEFLATE reader
// and output buffer between tries. Exactly is tried at every byte of a
// slack area and most tries fail within a few bytes, where a new reader's
// buffers (about 150 KiB, zeroed) would cost more than the try: on random
// bytes, 36 us a try against klauspost's 20; reused, 12. One goroutine
// uses an Exacter at a time.
type Exacter struct {
	br  *bufio.Reader
	z   *inflate.Reader
	out []byte
}

// ErrNotExact is returned by Exactly when the bytes do not hold one whole
// stream of the size asked for.
var ErrNotExact = errors.New("decode: not a stream of that size")

// Exactly decodes the stream of codec (deflate or zstd) at the start of b
// and returns its bytes and how many bytes of b it used, when it ends
// cleanly and decodes to exactly size bytes; else ErrNotExact. It decodes
// at most size+1 bytes whatever b holds, so trying it at many places (the
// slack of qcow2 compressed clusters, where a freed cluster's stream
// decodes to one cluster) costs little where there is no stream.
func Exactly(b []byte, codec string, size int) ([]byte, int, error) {
	return new(Exacter).Exactly(b, codec, size)
}

// Exactly is the package's Exactly, with e's reader and buffer.
func (e *Exacter) Exactly(b []byte, codec string, size int) ([]byte, int, error) {
	if size <= 0 {
		return nil, 0, ErrNotExact
	}
	br := bytes.NewReader(b)
	var r io.Reader
	var z *inflate.Reader
	switch codec {
	case Deflate:
		if e.z == nil {
			e.br = bufio.NewReaderSize(br, exactReadSize)
			e.z = inflate.NewReader(e.br)
		}
		e.br.Reset(br)
		e.z.Reset(e.br)
		z = e.z
		r = z
	case Zstd:
		if !bytes.HasPrefix(b, magicZstd) {
			return nil, 0, ErrNotExact
		}
		// A frame written from a stream declares a window larger than
		// its contents; what is read stays bounded by size below.
		win := uint64(max(size, exactMaxWindow))
		d, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(win), zstd.WithDecoderMaxMemory(win))
		if err != nil {
			return nil, 0, ErrNotExact
		}
		defer d.Close()
		r = d
	default:
		return nil, 0, fmt.Errorf("decode: Exactly: codec %q", codec)
	}
	if cap(e.out) < size+1 {
		e.out = make([]byte, size+1)
	}
	out := e.out[:size+1]
	n := 0
	for {
		k, err := r.Read(out[n:])
		n += k
		if err == io.EOF {
			break // the stream's end, not the input's
		}
		if err != nil || n > size {
			return nil, 0, ErrNotExact
		}
	}
	if n != size {
		return nil, 0, ErrNotExact
	}
	used := 0 // zstd: the decoder reads ahead, the frame's end is not known here
	if z != nil {
		used = int(z.InputOffset())
	}
	return bytes.Clone(out[:n]), used, nil
}
