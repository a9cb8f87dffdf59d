package ova

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/tarindex"
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
	var p StreamProbe
	return p.Compressed(head, r, size)
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
// are (formats.New, through Options.Open), alone (a backing file it names
// resolves to nothing, and is an error), its views named like
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
	in := tarindex.NewCursor(r, size)
	d, err := decode.NewStreamReader(ctx, codec, in, 0)
	if err != nil {
		return nil, model.Wrapf(err, name, 0, "%s", codec)
	}
	defer d.Close()
	inner := strings.TrimSuffix(path.Base(name), path.Ext(name))
	im := &model.Image{Path: name, Format: "compressed", Attrs: map[string]string{"compression": codec}}
	disk := spooledDisk{name: inner, where: "compressed whole with " + codec, size: -1, at: in.Pos}
	budget := cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	a := &archiveMembers{}
	spent, _, err := a.spoolDisk(ctx, im, d, disk, budget, func() bool { return false })
	if err == nil {
		err = a.open(ctx, im, nil, max(budget-spent, 1), opts)
	}
	if err != nil && err != errNoDisk {
		im.Close()
		return nil, err
	}
	if len(im.Views) == 0 {
		im.Close()
		err := model.Errorf(name, 0, "the %s-compressed file is no disk", codec)
		if len(im.Errors) > 0 {
			err = fmt.Errorf("%w; %w", err, errors.Join(im.Errors...))
		}
		return nil, err
	}
	return im, nil
}
