package decode

import (
	"bufio"
	"context"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/decode/inflate"
)

// NewStreamReader returns what the compressed stream that r holds decodes
// to, codec being one of the streams Sniff names (gzip, xz, zstd, bzip2,
// lz4; concatenated gzip members, xz streams and zstd frames follow each
// other). It uses the walks' decoders under their memory cap, at most
// maxMemory bytes (an xz dictionary or zstd window that asks for more is
// an error before anything is allocated; 0: the default cap). It is for
// the readers of a file compressed whole (a disk image shipped as
// disk.raw.xz), which want the bytes, not a walk. Cancelling ctx ends it
// at its next xz block or read.
func NewStreamReader(ctx context.Context, codec string, r io.Reader, maxMemory int64) (io.ReadCloser, error) {
	return newStreamReader(ctx, codec, r, maxMemory, nil)
}

// StreamReader is NewStreamReader under the default memory cap, whose
// decoder's memory g bounds together with its other walks' (a gzip
// stream's, 160 KiB, is not counted): for readers that decode on every
// core.
func (g *MemoryGate) StreamReader(ctx context.Context, codec string, r io.Reader) (io.ReadCloser, error) {
	return newStreamReader(ctx, codec, r, 0, g)
}

func newStreamReader(ctx context.Context, codec string, r io.Reader, maxMemory int64, g *MemoryGate) (io.ReadCloser, error) {
	if codec == Gzip {
		// A MiB of buffer for a stream that is read far; as much as
		// there is for one already in memory (a probe's first 64 KiB:
		// a layer's thousands of .gz files each allocated and zeroed a
		// MiB here, most of a registry scan's time).
		size := 1 << 20
		if l, ok := r.(interface{ Len() int }); ok {
			size = max(4<<10, min(size, l.Len()))
		}
		z, err := inflate.NewMultiGzipReader(bufio.NewReaderSize(r, size))
		if err != nil {
			return nil, err
		}
		return &ctxStream{ctx: ctx, r: z, close: z.Close}, nil
	}
	if codec == Deflate || !IsStream(codec) {
		return nil, fmt.Errorf("decode: %s is not a stream this reads", codec)
	}
	lim := Limits{MaxDecoderMemory: maxMemory}.withDefaults()
	w := &walker{parent: ctx, ctx: ctx, lim: lim, scratch: &Scratch{}, gate: g.Reserve()}
	dec, cost, _, err := w.open(codec, newSrc(r))
	if err != nil {
		return nil, err
	}
	closed := false
	cs := &ctxStream{ctx: ctx, r: dec, close: func() error {
		if closed {
			return nil
		}
		closed = true
		var err error
		if c, ok := dec.(io.Closer); ok {
			err = c.Close() // an xz reader gives its dictionary back itself
		}
		w.unhold(cost)
		return err
	}}
	return cs, nil
}

// ctxStream stops reading once its context is done.
type ctxStream struct {
	ctx   context.Context
	r     io.Reader
	close func() error
}

func (c *ctxStream) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

func (c *ctxStream) Close() error { return c.close() }
