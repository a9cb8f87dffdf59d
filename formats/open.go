package formats

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
)

// A reader recognises a format by its magic bytes and opens it.
type reader struct {
	name  string
	probe func(head []byte, r io.ReaderAt, size int64) bool
	open  model.OpenFunc
}

// readers lists the formats in probe order. Formats with a magic at offset 0
// come first; raw is the fallback.
func readers() []reader {
	return []reader{
		{"raw", func([]byte, io.ReaderAt, int64) bool { return true }, raw.Open},
	}
}

// headLen is how much of the file probes see up front.
const headLen = 4096

// Detect returns the name of the format of the file at path, by content.
func Detect(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := detect(f, path)
	if err != nil {
		return "", err
	}
	return r.name, nil
}

func detect(f *os.File, path string) (reader, error) {
	st, err := f.Stat()
	if err != nil {
		return reader{}, err
	}
	size := st.Size()
	head := make([]byte, headLen)
	n, err := f.ReadAt(head, 0)
	if err != nil && err != io.EOF {
		return reader{}, model.Wrapf(err, path, 0, "read header")
	}
	head = head[:n]
	for _, r := range readers() {
		if r.probe(head, f, size) {
			return r, nil
		}
	}
	return reader{}, model.Wrapf(model.ErrUnknownFormat, path, 0, "no reader recognises this file")
}

// Open opens the image at path read-only, detecting its format by magic
// bytes, and follows its backing chain unless opts.NoBacking is set.
func Open(ctx context.Context, path string, opts Options) (*Image, error) {
	if opts.Depth > model.MaxChainDepth {
		return nil, model.Errorf(path, -1, "backing chain deeper than %d", model.MaxChainDepth)
	}
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	if abs, err := filepath.Abs(real); err == nil {
		real = abs
	}
	if slices.Contains(opts.Chain, real) {
		return nil, model.Errorf(path, -1, "backing chain has a cycle: %s is its own ancestor", path)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	r, err := detect(f, path)
	f.Close()
	if err != nil {
		return nil, err
	}
	if opts.Format == "raw" {
		// A parent that declares its backing file raw is obeyed even when the
		// bytes look like another format, as QEMU does: a guest can write any
		// magic into a raw disk.
		r = readers()[len(readers())-1]
	}
	if opts.Open == nil {
		opts.Open = Open
	}
	opts.Chain = append(slices.Clone(opts.Chain), real)
	im, err := r.open(ctx, path, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.name, err)
	}
	return im, nil
}
