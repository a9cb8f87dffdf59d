package model

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// EnterChain is what a reader does first when the image it reads may name
// other images (backing files, parents): it refuses a chain deeper than
// MaxChainDepth and a file that is its own ancestor, and returns opts with
// the file added to Chain for the links below. A host file (*os.File) is
// known by its real path, so that two names of one file are one; a member
// of an archive by its Name(), which names the archive too; anything else
// by name.
func EnterChain(r io.ReaderAt, name string, opts Options) (Options, error) {
	if opts.Depth > MaxChainDepth {
		return opts, Errorf(name, -1, "backing chain deeper than %d", MaxChainDepth)
	}
	key := chainKey(r, name)
	if slices.Contains(opts.Chain, key) {
		return opts, Errorf(name, -1, "backing chain has a cycle: %s is its own ancestor", name)
	}
	opts.Chain = append(slices.Clone(opts.Chain), key)
	return opts, nil
}

func chainKey(r io.ReaderAt, name string) string {
	switch f := r.(type) {
	case *os.File:
		p := f.Name()
		if real, err := filepath.EvalSymlinks(p); err == nil {
			p = real
		}
		if abs, err := filepath.Abs(p); err == nil {
			p = abs
		}
		return p
	case interface{ Name() string }:
		return f.Name()
	}
	return name
}

// OpenLinked reads f, a file that an image names as its backing file or
// parent and that opts.Opener opened as path, through opts.Open, one link
// down the chain; format is the format the naming image declares ("" if
// none). The image returned owns f; on an error f is closed.
func OpenLinked(ctx context.Context, opts Options, f File, path, format string) (*Image, error) {
	if opts.Open == nil {
		f.Close()
		return nil, Errorf(path, -1, "backing file not followed: no reader for it (Options.Open)")
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, Wrapf(err, path, -1, "stat")
	}
	im, err := opts.Open(ctx, f, st.Size(), path, Options{
		Open: opts.Open, Format: format, Depth: opts.Depth + 1, Chain: opts.Chain, Opener: opts.Opener,
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	im.AddCloser(f)
	return im, nil
}
