package formats

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/imgaudit/imgaudit/formats/model"
)

const copyBlock = 1 << 20

// WriteSparse writes d's bytes into f as a raw image: allocated extents are
// written at their offsets and f is sized to d.Size(), so holes stay holes.
func WriteSparse(ctx context.Context, f *os.File, d model.Disk) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	buf := make([]byte, copyBlock)
	for e, err := range d.Extents(ctx) {
		if err != nil {
			return err
		}
		if e.Source == model.SourceZero {
			continue
		}
		for off := e.Offset; off < e.End(); {
			n := int(min(int64(len(buf)), e.End()-off))
			if err := readFull(d, buf[:n], off); err != nil {
				return err
			}
			if _, err := f.WriteAt(buf[:n], off); err != nil {
				return err
			}
			off += int64(n)
		}
	}
	return f.Truncate(d.Size())
}

// WriteStream writes all of d's bytes, zeros included, to w.
func WriteStream(ctx context.Context, w io.Writer, d model.Disk) error {
	buf := make([]byte, copyBlock)
	for off := int64(0); off < d.Size(); {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(int64(len(buf)), d.Size()-off))
		if err := readFull(d, buf[:n], off); err != nil {
			return err
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

func readFull(d model.Disk, p []byte, off int64) error {
	n, err := d.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read at guest offset %d: %w", off, err)
}
