package ova

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/spool"
)

// Disks compressed whole: a cloud image shipped as disk.raw.xz (Fedora's
// raw images), disk.img.gz, a qcow2.zst. Read as raw bytes, such a disk
// was decoded only up to the decoders' 100:1 expansion cap, and nothing
// in it was attributed to a file.

// ProbeCompressed reports whether a file is a gzip, xz, zstd, bzip2 or lz4
// stream whose first decompressed bytes start like a VM disk (see
// diskHead). A compressed tar is a tarball (ProbeTarball), a compressed
// Proxmox backup a VMA: neither starts like a disk.
func ProbeCompressed(head []byte, r io.ReaderAt, size int64) bool {
	codec := decode.Sniff(head)
	if !decode.IsStream(codec) {
		return false
	}
	in := make([]byte, min(size, probeInput))
	n, _ := r.ReadAt(in, 0)
	d, err := decode.NewStreamReader(context.Background(), codec, bytes.NewReader(in[:n]), probeDecoderMemory)
	if err != nil {
		return false
	}
	defer d.Close()
	b := make([]byte, 4096)
	m, _ := io.ReadFull(d, b)
	return diskHead(b[:m])
}

// probeDecoderMemory bounds what probing a compressed file may allocate:
// a probe reads its first 64 KiB.
const probeDecoderMemory = 64 << 20

// NewCompressed reads the disk image compressed whole that r holds, size
// bytes, named name (see ProbeCompressed). It is decompressed once into an
// already-unlinked temporary file, its zero blocks left as holes, at most
// to the Options' MaxInflate (--max-inflate, 8 GiB by default): past it
// the disk is cut there, read up to the cut, and its view says so, so the
// run is incomplete. The disk is then opened as whatever format its bytes
// are (formats.New, through Options.Open), alone (its own names, a qcow2's
// backing file, resolve to nothing), its views named like
// "disk.raw.xz#current:disk.raw".
func NewCompressed(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	head := make([]byte, min(size, decode.SniffLen))
	r.ReadAt(head, 0)
	codec := decode.Sniff(head)
	if !decode.IsStream(codec) {
		return nil, model.Errorf(name, 0, "not a compressed stream")
	}
	if opts.Open == nil {
		return nil, model.Errorf(name, 0, "no reader for the format of the compressed disk")
	}
	if opts.Depth >= maxTarballDepth {
		return nil, model.Errorf(name, 0, "compressed disk nested %d deep", opts.Depth)
	}
	// in counts the compressed bytes read: where a cut falls (the
	// decoder reads up to 1 MiB ahead of what it has decoded).
	in := &countingReader{r: io.NewSectionReader(r, 0, size)}
	d, err := decode.NewStreamReader(ctx, codec, in, 0)
	if err != nil {
		return nil, model.Wrapf(err, name, 0, "%s", codec)
	}
	defer d.Close()
	limit := cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	tmp, st, err := spool.Sparse(ctx, "", "imgaudit-disk-*.spool", d, limit)
	var cut error
	switch {
	case err != nil && ctx.Err() != nil:
		if tmp != nil {
			tmp.Close()
		}
		return nil, ctx.Err()
	case errors.Is(err, spool.ErrLimit):
		if terr := tmp.Truncate(limit); terr != nil {
			tmp.Close()
			return nil, terr
		}
		st.Size = limit
		cut = model.Errorf(name, in.n, "%s-compressed disk cut after %d decompressed bytes, at the inflate bound (--max-inflate): the rest is not decompressed or scanned", codec, limit)
	case err != nil:
		// The stream broke: what came out is read, and the view says
		// the rest is missing.
		cut = model.Wrapf(err, name, in.n, "%s-compressed disk cut after %d decompressed bytes", codec, st.Size)
	}
	if tmp == nil {
		return nil, cut
	}
	inner := strings.TrimSuffix(path.Base(name), path.Ext(name))
	im := &model.Image{Path: name, Format: "compressed", Attrs: map[string]string{"compression": codec}}
	im.AddCloser(tmp)
	sub, err := opts.Open(ctx, tmp, st.Size, inner, model.Options{Open: opts.Open, Depth: opts.Depth + 1, Chain: opts.Chain, NoBacking: true, MaxInflate: max(limit-st.Size, 1)})
	if err != nil {
		im.Close()
		return nil, errors.Join(model.Wrapf(err, name, -1, "the %s-compressed disk", codec), cut)
	}
	im.AddCloser(sub)
	for _, e := range sub.Errors {
		im.Errors = append(im.Errors, fmt.Errorf("%s: the %s-compressed disk: %w", name, codec, e))
	}
	note := fmt.Sprintf("%s disk compressed whole with %s: decompressed once (%d bytes) to an unlinked temporary file, %d bytes written and the zero blocks left as holes; extent offsets are offsets in the decompressed %s", sub.Format, codec, st.Size, min(st.Written, st.Size), inner)
	views := renameViews(name, inner, sub, []string{note}, name+"!"+inner, func(off int64) (int64, int64, bool) {
		return off, st.Size - off, off >= 0 && off < st.Size
	})
	if len(views) > 0 && views[0].Incomplete == nil {
		views[0].Incomplete = cut
	} else if cut != nil {
		im.Errors = append(im.Errors, cut)
	}
	addViews(im, views)
	if len(im.Views) == 0 {
		im.Close()
		return nil, errors.Join(model.Errorf(name, -1, "the %s-compressed disk has no view", codec), cut)
	}
	return im, nil
}

// countingReader counts what it read.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
