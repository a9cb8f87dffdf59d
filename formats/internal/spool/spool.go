// Package spool copies a stream into a bounded temporary file, for readers
// that need random access to data that only arrives as a stream (gzip disks
// in an OVA, compressed libvirt save payloads).
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// ErrLimit is returned (wrapped) when the stream is longer than the limit.
var ErrLimit = errors.New("spool limit exceeded")

// File copies r into a new temporary file in dir (os.TempDir() when
// empty), at most limit bytes, stopping when ctx is cancelled. The file is
// unlinked at once, so its space is freed when it is closed, even if the
// process dies. On a copy error the file is still returned with what was
// copied, for callers that keep partial data; others close it.
func File(ctx context.Context, dir, pattern string, r io.Reader, limit int64) (*os.File, int64, error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, 0, fmt.Errorf("temp file: %w", err)
	}
	os.Remove(tmp.Name())
	n, err := io.Copy(tmp, &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)})
	if err == nil && n > limit {
		err = fmt.Errorf("%w: more than %d bytes", ErrLimit, limit)
	}
	return tmp, n, err
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
