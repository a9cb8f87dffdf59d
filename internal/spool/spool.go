// Package spool copies a stream into a bounded temporary file, for readers
// that need random access to data that only arrives as a stream (gzip disks
// in an OVA, compressed libvirt save payloads, disks in compressed container
// layers).
package spool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imgaudit/imgaudit/internal/zeros"
)

// ErrLimit is returned (wrapped) when the stream is longer than the limit.
var ErrLimit = errors.New("spool limit exceeded")

// Stats says what a spool took: Size bytes of stream, of which Written
// reached the disk; the zero blocks between were skipped (a sparse file).
type Stats struct {
	Size, Written int64
}

// holeBlock is the unit of zero runs that are skipped instead of written:
// a gzip bomb of zeros (a 10 MB OVA inflating to 10 GiB) then costs no
// temporary disk, and a disk image's unused space none either.
const holeBlock = 64 << 10

// File copies r into a new temporary file in dir (os.TempDir() when
// empty), at most limit bytes, stopping when ctx is cancelled. The file is
// unlinked at once, so its space is freed when it is closed, even if the
// process dies. On a copy error the file is still returned with what was
// copied, for callers that keep partial data; others close it.
func File(ctx context.Context, dir, pattern string, r io.Reader, limit int64) (*os.File, int64, error) {
	f, st, err := Sparse(ctx, dir, pattern, r, limit)
	return f, st.Size, err
}

// Sparse is File, writing only the blocks of holeBlock bytes that are not
// all zeros: the rest are holes, which read back as zeros.
func Sparse(ctx context.Context, dir, pattern string, r io.Reader, limit int64) (*os.File, Stats, error) {
	tmp, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, Stats{}, fmt.Errorf("temp file: %w", err)
	}
	os.Remove(tmp.Name())
	var st Stats
	buf := make([]byte, holeBlock)
	lr := &ctxReader{ctx: ctx, r: io.LimitReader(r, limit+1)}
	for {
		n, rerr := io.ReadFull(lr, buf)
		if n > 0 {
			b := buf[:n]
			if zeros.All(b) {
				st.Size += int64(n)
			} else {
				w, werr := tmp.WriteAt(b, st.Size)
				st.Size += int64(w)
				st.Written += int64(w)
				if werr != nil {
					return tmp, st, werr
				}
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return tmp, st, rerr
		}
	}
	// A trailing hole must still count in the file's size.
	if err := tmp.Truncate(st.Size); err != nil {
		return tmp, st, err
	}
	if st.Size > limit {
		return tmp, st, fmt.Errorf("%w: more than %d bytes", ErrLimit, limit)
	}
	return tmp, st, nil
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
