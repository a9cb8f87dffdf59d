package ova

import (
	"archive/zip"
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Zips of VM disks: appliances and developer VMs are downloaded as a .zip
// of an OVA, a VMDK and its OVF, or a VHDX. Read as raw bytes, such a disk
// was decoded only up to the decoders' 100:1 expansion cap.

// probeZipMembers is how many members (in central directory order)
// ProbeZip looks at.
const probeZipMembers = 64

// ProbeZip reports whether a file is a zip archive one of whose first
// members starts like a VM disk or an OVA (see diskHead).
func ProbeZip(head []byte, r io.ReaderAt, size int64) bool {
	if !bytes.HasPrefix(head, []byte("PK\x03\x04")) {
		return false
	}
	zr, err := newZipReader(r, size)
	if err != nil {
		return false
	}
	buf := make([]byte, 4096)
	for _, f := range zr.File[:min(len(zr.File), probeZipMembers)] {
		if !f.Mode().IsRegular() {
			continue
		}
		if b, err := zipHead(f, buf); err == nil && diskHead(b) {
			return true
		}
	}
	return false
}

// newZipReader reads the zip's central directory, with this repository's
// DEFLATE decoder (decode/inflate: over twice compress/flate's rate).
// The inflaters, each with its 64 KiB input buffer and its tables, are
// reused from one member to the next: a zip of 200,000 one-byte files,
// each opened to read its head, took 18 s and 221 MB allocating a new
// pair for each.
func newZipReader(r io.ReaderAt, size int64) (*zip.Reader, error) {
	zr, err := zip.NewReader(r, size)
	if err != nil {
		return nil, err
	}
	idle := &idleInflaters{}
	zr.RegisterDecompressor(zip.Deflate, idle.open)
	return zr, nil
}

// idleInflaters keeps the inflaters of closed zip members for the next.
type idleInflaters struct {
	mu   sync.Mutex
	free []*zipInflater
}

func (p *idleInflaters) open(in io.Reader) io.ReadCloser {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		z := p.free[n-1]
		p.free = p.free[:n-1]
		z.br.Reset(in)
		z.r.Reset(z.br)
		z.closed = false
		return z
	}
	br := bufio.NewReaderSize(in, 64<<10)
	return &zipInflater{br: br, r: inflate.NewReader(br), idle: p}
}

// zipInflater is one member's inflater; Close gives it back.
type zipInflater struct {
	br     *bufio.Reader
	r      *inflate.Reader
	idle   *idleInflaters
	closed bool
}

func (z *zipInflater) Read(b []byte) (int, error) { return z.r.Read(b) }

func (z *zipInflater) Close() error {
	err := z.r.Close()
	z.idle.mu.Lock()
	defer z.idle.mu.Unlock()
	if !z.closed {
		z.closed = true
		z.br.Reset(nil)
		z.idle.free = append(z.idle.free, z)
	}
	return err
}

// zipHead reads a member's first 4 KiB, decompressed, into buf (4 KiB,
// reused from member to member) and returns them.
func zipHead(f *zip.File, buf []byte) ([]byte, error) {
	rc, err := f.Open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	n, err := io.ReadFull(rc, buf[:4096])
	if err == io.ErrUnexpectedEOF || err == io.EOF {
		err = nil
	}
	return buf[:n], err
}

// NewZip reads a zip of VM disks that r holds, size bytes, named name
// (see ProbeZip). Each member that starts like a disk or an OVA becomes
// the views of its format (formats.New, through Options.Open), with IDs
// like "appliance.zip#current:disk1.vmdk"; the names it writes resolve to
// the zip's other members only, as in a tarball (archiveMembers.open).
// Other members are scanned as files. A stored member is read in place; a compressed one is
// decompressed once to an unlinked temporary file, its zero blocks left
// as holes, all of them together at most to the Options' MaxInflate
// (--max-inflate, 8 GiB by default): past it the disk is cut there, read
// up to the cut, and its view says so. A member whose CRC-32 does not
// match is read as far as it decoded, its view incomplete.
func NewZip(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	if opts.Depth >= maxTarballDepth {
		return nil, model.Errorf(name, 0, "zip nested %d deep", opts.Depth)
	}
	zr, err := newZipReader(r, size)
	if err != nil {
		return nil, model.Wrapf(err, name, 0, "zip")
	}
	im := &model.Image{Path: name, Format: "zip", Attrs: map[string]string{}}
	budget := cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	a := &archiveMembers{}
	members := zr.File
	if len(members) > maxMembers {
		at, _ := members[maxMembers].DataOffset()
		im.Errors = append(im.Errors, model.Errorf(name, at, "more than %d zip members: the other %d are not read", maxMembers, len(members)-maxMembers))
		members = members[:maxMembers]
	}
	buf := make([]byte, 4096)
	for _, f := range members {
		if err := ctx.Err(); err != nil {
			im.Close()
			return nil, err
		}
		if !f.Mode().IsRegular() {
			continue
		}
		at, _ := f.DataOffset()
		b, err := zipHead(f, buf)
		if err != nil {
			im.Errors = append(im.Errors, model.Wrapf(err, name, at, "zip member %.80q", f.Name))
			continue
		}
		usize := int64(min(f.UncompressedSize64, 1<<62))
		stored := f.Method == zip.Store && f.Flags&1 == 0 && at > 0 && usize <= size-at
		disk := imageMember(f.Name, b)
		switch {
		case stored && disk:
			a.inPlace(im, r, f.Name, at, usize, "stored zip member")
			continue
		case stored:
			a.files.inPlace(name, f.Name, r, at, usize)
			continue
		case disk && budget <= 0:
			im.Errors = append(im.Errors, model.Errorf(name, at, "zip member %.80q not decompressed: the inflate bound (--max-inflate) is spent", f.Name))
			continue
		}
		rc, err := f.Open()
		if err != nil {
			im.Errors = append(im.Errors, model.Wrapf(err, name, at, "zip member %.80q", f.Name))
			continue
		}
		var spent int64
		never := func() bool { return false }
		if disk {
			spent, _, err = a.spoolDisk(ctx, im, rc, memberDisk(f.Name, usize, at), budget, never)
		} else {
			spent, _, err = a.files.fromStream(ctx, im, f.Name, rc, usize, budget, never, func() int64 { return at })
		}
		rc.Close()
		budget -= spent
		if err != nil {
			im.Close()
			return nil, err
		}
	}
	if err := a.open(ctx, im, nil, max(budget, 1), opts); err != nil {
		im.Close()
		return nil, err
	}
	if len(im.Views) == 0 {
		im.Close()
		err := model.Errorf(name, -1, "no member of the zip is a VM disk")
		if len(im.Errors) > 0 {
			err = fmt.Errorf("%w; %w", err, errors.Join(im.Errors...))
		}
		return nil, err
	}
	return im, nil
}
