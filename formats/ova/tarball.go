package ova

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/memory/kdump"
	"github.com/imgaudit/imgaudit/formats/memory/libvirtsave"
	"github.com/imgaudit/imgaudit/formats/memory/lime"
	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/memory/vmware"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/parallels"
	"github.com/imgaudit/imgaudit/formats/qcow2"
	"github.com/imgaudit/imgaudit/formats/qed"
	"github.com/imgaudit/imgaudit/formats/tarindex"
	"github.com/imgaudit/imgaudit/formats/vdi"
	"github.com/imgaudit/imgaudit/formats/vhdx"
	"github.com/imgaudit/imgaudit/formats/vmdk"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/internal/spool"
)

// Tarballs: VM disks shipped in a tar without an OVF descriptor, or in a
// compressed tar (gzip above all; xz, zstd, bzip2, lz4). A Google Compute Engine image is a disk.raw in a
// .tar.gz; a Vagrant box (.box) is a tar or tar.gz of a qcow2 (box.img,
// libvirt) or of an OVF and its VMDK (VirtualBox). Read as raw bytes, the
// disks of a compressed one were only decoded up to the decoders' 100:1
// expansion cap (a disk is mostly zeros), and nothing in them was
// attributed to a file.

// What ProbeTarball reads of a compressed file: enough input to
// decode the first members' headers, whatever they hold.
const (
	probeInput  = 64 << 10
	probeOutput = 1 << 20
)

// ProbeTarball reports whether a file is a tarball of VM disks: a tar,
// plain or compressed (gzip, xz, zstd, bzip2, lz4), among whose members that start in its first
// MiB (decompressed) one starts like a disk (the magic number of qcow2,
// VMDK, VHDX or VDI, a partition table, or a filesystem guestfs
// recognises), or, in a compressed tar, is an .ovf descriptor (a plain tar
// with one is an OVA: Probe). The content decides, never the file's name,
// so that a source tarball stays a file whose members the decoders read.
func ProbeTarball(head []byte, r io.ReaderAt, size int64) bool {
	if decode.IsStream(decode.Sniff(head)) {
		var p StreamProbe
		return p.Tarball(head, r, size)
	}
	if len(head) < 512 || !bytes.Equal(head[257:262], []byte("ustar")) {
		return false
	}
	b := make([]byte, min(size, probeOutput))
	n, _ := r.ReadAt(b, 0)
	return tarOfDisks(b[:n], false)
}

// tarOfDisks reports whether b, a tar's first bytes (at most
// probeOutput), holds among its first 16 members one that starts like a
// disk, or, when the tar was compressed, an .ovf descriptor.
func tarOfDisks(b []byte, compressed bool) bool {
	if len(b) < 512 || !bytes.Equal(b[257:262], []byte("ustar")) {
		return false
	}
	tr := tar.NewReader(bytes.NewReader(b))
	for range 16 {
		h, err := tr.Next()
		if err != nil {
			return false
		}
		if compressed && strings.EqualFold(path.Ext(h.Name), ".ovf") {
			return true
		}
		if !regularType(h.Typeflag) {
			continue
		}
		mh := make([]byte, min(h.Size, 4096))
		n, _ := io.ReadFull(tr, mh)
		if diskHead(mh[:n]) {
			return true
		}
	}
	return false
}

// StreamProbe answers ProbeTarball and ProbeCompressed for one compressed
// file from a single decoding of its head: formats.Probe asks both of
// every file, and a layer holds thousands of gzip'd man pages and
// changelogs, each of which then had two inflaters built and their
// buffers zeroed. The zero value is ready; it decodes on the first
// question, and answers for the file it was first asked about.
type StreamProbe struct {
	done          bool
	tarball, disk bool
}

// Tarball is ProbeTarball of a compressed file (false for any other).
func (p *StreamProbe) Tarball(head []byte, r io.ReaderAt, size int64) bool {
	p.probe(head, r, size)
	return p.tarball
}

// Compressed is ProbeCompressed.
func (p *StreamProbe) Compressed(head []byte, r io.ReaderAt, size int64) bool {
	p.probe(head, r, size)
	return p.disk
}

func (p *StreamProbe) probe(head []byte, r io.ReaderAt, size int64) {
	if p.done {
		return
	}
	p.done = true
	codec := decode.Sniff(head)
	if !decode.IsStream(codec) {
		return
	}
	in := make([]byte, min(size, probeInput))
	n, _ := r.ReadAt(in, 0)
	d, err := decode.NewStreamReader(context.Background(), codec, bytes.NewReader(in[:n]), probeDecoderMemory)
	if err != nil {
		return
	}
	defer d.Close()
	// The first 4 KiB say whether it starts like a disk, and their first
	// header whether it is a tar at all, before a MiB is decoded: most
	// compressed files are neither.
	b := make([]byte, 4096, 64<<10)
	m, _ := io.ReadFull(d, b)
	b = b[:m]
	p.disk = diskHead(b)
	if m < 512 || !bytes.Equal(b[257:262], []byte("ustar")) {
		return
	}
	if m == 4096 {
		rest, _ := io.ReadAll(io.LimitReader(d, probeOutput-4096))
		b = append(b, rest...)
	}
	p.tarball = tarOfDisks(b, true)
}

// diskHead reports whether b, a file's first bytes (up to 4 KiB), starts
// a VM disk (a VMDK descriptor included: it is small), a memory image
// with a magic number (not a VirtualBox .sav, which no reader opens), or
// an OVA (not a Proxmox backup: a compressed one, .vma.zst, is the vma
// reader's, which knows its name) (a tar whose first member is its .ovf descriptor, as the OVF
// specification puts it).
// ImageHead reports whether b, the first bytes of a file or member,
// start like a disk or memory image that ProbeTarball, ProbeZip and
// ProbeCompressed open: a format's magic number, a VMDK descriptor, a
// partition table or a filesystem. The scanner asks it of what the decode
// pass decodes, to find archives of images in a guest.
func ImageHead(b []byte) bool { return diskHead(b) }

func diskHead(b []byte) bool {
	switch {
	case len(b) >= 512 && bytes.Equal(b[257:262], []byte("ustar")):
		name, _, _ := bytes.Cut(b[:100], []byte{0})
		return strings.EqualFold(path.Ext(string(name)), ".ovf")
	case qcow2.Probe(b, nil, 0), vmdk.Probe(b, nil, int64(len(b))), vhdx.Probe(b, nil, 0), vdi.Probe(b, nil, 0), parallels.Probe(b, nil, 0), qed.Probe(b, nil, 0):
		return true // vmdk.Probe: a sparse extent, or a descriptor naming its extents
	case libvirtsave.Probe(b, nil, 0), qemustream.Probe(b, nil, 0), elfcore.ProbeGuest(b), kdump.Probe(b, nil, 0), lime.Probe(b, nil, 0), vmware.Probe(b, nil, 0):
		return true // a memory image: opened as what it is (a process's core is none)
	case len(b) >= 520 && string(b[512:520]) == "EFI PART":
		return true
	case len(b) >= 512 && b[510] == 0x55 && b[511] == 0xAA:
		return true // an MBR, or a FAT or NTFS boot sector
	}
	return guestfs.Detect(b) != ""
}

// imageMember reports whether an archive member, named name and starting
// with head, is opened as an image: it starts like one (diskHead), or it
// is VMware guest memory, a .vmem, which has no magic number and is known
// by its name alone, as in a VMware VM's folder (the archive itself was
// recognised by content: ProbeTarball, ProbeZip).
func imageMember(name string, head []byte) bool {
	return diskHead(head) || strings.EqualFold(path.Ext(name), ".vmem")
}

// maxDiskViews bounds the disks of one archive: a tar of many small
// members that each start like a disk would otherwise make views of
// each. Past it, a disk is an error, so the run is incomplete.
const maxDiskViews = 256

// maxTarballDepth refuses a tarball inside a disk inside a tarball, and
// so on, past a few levels: each level spools.
const maxTarballDepth = 4

// NewTarball reads a tarball of VM disks that r holds, size bytes, named
// name (see ProbeTarball). Each member that starts like a disk (or is a
// VMDK descriptor) is opened as whatever format its bytes are
// (formats.New, through Options.Open), with IDs like
// "image.tar.gz#current:disk.raw". The names a disk writes (a VMDK
// descriptor's extents, an overlay's base) resolve to the archive's other
// members and nothing else (see openDisks); a member another disk reads
// is that disk's, not a disk of its own. Members that are no disk are
// scanned as files (archiveFiles).
//
// A plain tar's members are read in place. A compressed tar is
// decompressed once, as a stream: each disk member goes to an
// already-unlinked temporary file with its zero blocks left as holes (a
// disk is mostly zeros; a GNU sparse member, as GCE's `tar -S` writes
// disk.raw, is expanded the same way), and what the whole tar inflates
// to is bounded by the Options' MaxInflate (--max-inflate, 8 GiB by
// default). Past it the disk being inflated is cut there and read up to
// the cut, and its view says so: the run is incomplete.
func NewTarball(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	if opts.Depth >= maxTarballDepth {
		return nil, model.Errorf(name, 0, "tarball nested %d deep", opts.Depth)
	}
	im := &model.Image{Path: name, Format: "tar", Attrs: map[string]string{}}
	head := make([]byte, min(size, decode.SniffLen))
	r.ReadAt(head, 0)
	var err error
	if codec := decode.Sniff(head); decode.IsStream(codec) {
		im.Attrs["compression"] = codec
		err = streamTar(ctx, im, r, size, codec, opts)
	} else {
		err = inPlaceTar(ctx, im, r, size, opts)
	}
	if err == nil && len(im.Views) == 0 {
		err = model.Errorf(name, -1, "no member of the tar is a VM disk")
	}
	if err != nil {
		im.Close()
		if len(im.Errors) > 0 {
			err = fmt.Errorf("%w; %w", err, errors.Join(im.Errors...))
		}
		return nil, err
	}
	return im, nil
}

// inPlaceTar opens the disks of a plain tar where they are; a sparse
// member, whose data is not stored in one piece, is expanded to a
// temporary file first. Names resolve through the tar's own index.
func inPlaceTar(ctx context.Context, im *model.Image, r io.ReaderAt, size int64, opts model.Options) error {
	x, err := tarindex.Build(ctx, r, size, im.Path, maxMembers)
	if err != nil {
		return err
	}
	budget := cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	a := &archiveMembers{}
	for _, e := range x.Entries() {
		if err := ctx.Err(); err != nil {
			return err
		}
		if !regularType(e.Type) {
			continue
		}
		name := strings.TrimPrefix(e.Raw, "./")
		if e.Sparse {
			// Not stored in one piece: expanded to a temporary file.
			tr := tar.NewReader(io.NewSectionReader(r, e.Header, size-e.Header))
			h, err := tr.Next()
			var mh []byte
			if err == nil {
				mh, err = readHead(tr)
			}
			if err != nil {
				im.Errors = append(im.Errors, model.Wrapf(err, im.Path, e.Header, "tar member %.80q", name))
				continue
			}
			mr := io.MultiReader(bytes.NewReader(mh), tr)
			never := func() bool { return false }
			var spent int64
			if imageMember(name, mh) {
				spent, _, err = a.spoolDisk(ctx, im, mr, memberDisk(name, h.Size, e.Header), budget, never)
			} else {
				spent, _, err = a.files.fromStream(ctx, im, name, mr, h.Size, budget, never, func() int64 { return e.Header })
			}
			budget -= spent
			if err != nil {
				return err
			}
			continue
		}
		mh := make([]byte, min(e.Size, 4096))
		if _, err := r.ReadAt(mh, e.Offset); err != nil && err != io.EOF {
			im.Errors = append(im.Errors, model.Wrapf(err, im.Path, e.Offset, "read tar member %.80q", name))
			continue
		}
		if !imageMember(name, mh) {
			a.files.inPlace(im.Path, name, r, e.Offset, e.Size)
			continue
		}
		a.inPlace(im, r, name, e.Offset, e.Size, "tar member")
	}
	return a.open(ctx, im, x, budget, opts)
}

// streamTar decompresses a compressed tar once and opens its disks from
// temporary files.
func streamTar(ctx context.Context, im *model.Image, r io.ReaderAt, size int64, codec string, opts model.Options) error {
	cr := tarindex.NewCursor(r, size)
	zr, err := decode.NewStreamReader(ctx, codec, cr, 0)
	if err != nil {
		return model.Wrapf(err, im.Path, 0, "%s", codec)
	}
	defer zr.Close()
	// All the tar inflates to, skipped members included, counts: a member
	// that is no disk is still inflated to reach the next header.
	budget := cmp.Or(opts.MaxInflate, DefaultMaxInflate)
	lr := &io.LimitedReader{R: zr, N: budget}
	tr := tar.NewReader(lr)
	a := &archiveMembers{}
	consumed := cr.Pos // where decompression had read to (up to 1 MiB ahead of what it decoded)
	err = func() error {
		for range maxMembers {
			if err := ctx.Err(); err != nil {
				return err
			}
			h, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				if lr.N <= 0 {
					err = fmt.Errorf("the inflate bound (--max-inflate, %d bytes) reached between members", budget)
				}
				im.Errors = append(im.Errors, model.Wrapf(err, im.Path, consumed(), "%s-compressed tar", im.Attrs["compression"]))
				return nil
			}
			if !regularType(h.Typeflag) {
				continue
			}
			name := strings.TrimPrefix(h.Name, "./")
			at := consumed()
			mh, err := readHead(tr)
			if err != nil {
				if lr.N <= 0 {
					err = fmt.Errorf("the inflate bound (--max-inflate, %d bytes) reached", budget)
				}
				im.Errors = append(im.Errors, model.Wrapf(err, im.Path, consumed(), "%s-compressed tar: member %.80q", im.Attrs["compression"], name))
				return nil
			}
			mr := io.MultiReader(bytes.NewReader(mh), tr)
			exhausted := func() bool { return lr.N <= 0 }
			var cut bool
			if imageMember(name, mh) {
				d := spooledDisk{name: name, where: "in the archive member " + name, size: h.Size, at: consumed}
				_, cut, err = a.spoolDisk(ctx, im, mr, d, lr.N+int64(len(mh)), exhausted)
			} else {
				_, cut, err = a.files.fromStream(ctx, im, name, mr, h.Size, lr.N+int64(len(mh)), exhausted, func() int64 { return at })
			}
			if err != nil || cut {
				return err // a cut member says why; nothing after it was inflated
			}
		}
		im.Errors = append(im.Errors, model.Errorf(im.Path, consumed(), "more than %d tar members", maxMembers))
		return nil
	}()
	if err != nil {
		return err
	}
	return a.open(ctx, im, nil, max(lr.N, 1), opts)
}

// readHead reads a member's first 4 KiB (fewer if it is shorter), which
// say whether it is a disk (diskHead).
func readHead(r io.Reader) ([]byte, error) {
	mh := make([]byte, 4096)
	n, err := io.ReadFull(r, mh)
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		err = nil
	}
	return mh[:n], err
}

// archiveMembers gathers an archive's members before any disk among them
// is opened: a disk may name another member (a VMDK descriptor its
// extents, an overlay its base), which a stream may give only later.
type archiveMembers struct {
	disks []diskMember
	files archiveFiles
}

// diskMember is a member that starts like a disk, not opened yet.
type diskMember struct {
	name string
	r    io.ReaderAt // its bytes: a section of the archive, or a temporary file
	size int64
	at   int64  // where it is in the archive, for errors
	how  string // how it is read, for its views' notes
	// file is the file its extents name (the archive, or archive!member
	// for a temporary file), and host maps its offsets to file's.
	file string
	host func(off int64) (int64, int64, bool)
	cut  error // why it ends early, or nil
}

// room reports whether another disk may be gathered, and makes the one
// that may not an error of the image.
func (a *archiveMembers) room(im *model.Image, name string, at int64) bool {
	if len(a.disks) < maxDiskViews {
		return true
	}
	im.Errors = append(im.Errors, model.Errorf(im.Path, at, "archive member %.80q: not opened: the archive already has %d disks", name, maxDiskViews))
	return false
}

// inPlace gathers the disk member name, size bytes at off in the archive
// r (what holds it: "tar member", "stored zip member").
func (a *archiveMembers) inPlace(im *model.Image, r io.ReaderAt, name string, off, size int64, what string) {
	if !a.room(im, name, off) {
		return
	}
	st := &pieces{r: r, parts: []piece{{at: 0, off: off, size: size}}, size: size}
	a.disks = append(a.disks, diskMember{name: name, r: io.NewSectionReader(r, off, size), size: size, at: off,
		how: fmt.Sprintf("read in place from the %s %s at offset %d", what, name, off), file: im.Path, host: st.hostOffset})
}

// errNoDisk is spoolDisk's answer for bytes that do not start like a
// disk: nothing was spooled, and the caller goes on.
var errNoDisk = errors.New("not a disk")

// spooledDisk says what spoolDisk reads: a disk named name, size bytes
// by its archive's record (-1: unknown), described in its view's note as
// where ("in the archive member disk.raw"). at gives the offset in the
// archive that an error names: where the member starts, or where the
// decompression had read to.
type spooledDisk struct {
	name, where string
	size        int64
	at          func() int64
}

// spoolDisk reads a disk's bytes from r (a tar's member, a zip member's
// decompressor, a stream's decoder), and if they start like a disk,
// writes them to an unlinked temporary file (zero blocks as holes), at
// most limit bytes, and gathers that; exhausted reports whether what
// feeds r has reached its inflate bound, which then is why it ends early.
// A disk cut short (the bound, a broken stream, fewer bytes than its
// record says) is read as far as it goes and its first view is
// incomplete. It returns the bytes it spooled and whether the disk was
// cut; its error is errNoDisk for bytes that are no disk, else only a
// cancelled ctx.
func (a *archiveMembers) spoolDisk(ctx context.Context, im *model.Image, r io.Reader, d spooledDisk, limit int64, exhausted func() bool) (int64, bool, error) {
	mh, err := readHead(r)
	if err != nil {
		im.Errors = append(im.Errors, model.Wrapf(err, im.Path, d.at(), "%.80q", d.name))
		return 0, true, nil
	}
	if !imageMember(d.name, mh) {
		return 0, false, errNoDisk
	}
	if !a.room(im, d.name, d.at()) {
		return 0, false, nil // not spooled for nothing
	}
	res, err := spoolMember(ctx, im, io.MultiReader(bytes.NewReader(mh), r), fmt.Sprintf("disk %.80q", d.name), d.size, limit, exhausted, d.at)
	if err != nil || res.f == nil {
		return res.size, true, err
	}
	size := res.size
	a.disks = append(a.disks, diskMember{name: d.name, r: res.f, size: size, at: d.at(), cut: res.cut,
		how:  fmt.Sprintf("%s, %d bytes: decompressed or expanded once to an unlinked temporary file, %d bytes written and the zero blocks left as holes; extent offsets are offsets in the decompressed %s", d.where, size, res.written, d.name),
		file: im.Path + "!" + d.name,
		host: func(off int64) (int64, int64, bool) { return off, size - off, off >= 0 && off < size },
	})
	return size, res.cut != nil, nil
}

// spooledMember is what spoolMember made of a member.
type spooledMember struct {
	f       *os.File // nil when no temporary file could be made: cut says why
	size    int64    // the member's bytes it holds
	written int64    // of which were written: the rest are holes
	cut     error    // why it ends early, or nil
}

// spoolMember copies a member's bytes from r to an unlinked temporary
// file (zero blocks as holes), at most limit bytes, and says why it ends
// early, if it does: the inflate bound (limit reached, or exhausted
// reporting that what feeds r has reached its own while the member is
// short of its record's size bytes), a broken stream, or an archive cut
// short (size -1: unknown, never short). what names the member in those
// errors ("disk \"disk.raw\""), at where it is in the archive (called
// once the copy is done: where decompression had read to). The file is
// im's to close. Its error is only ctx's, or a failed truncation.
func spoolMember(ctx context.Context, im *model.Image, r io.Reader, what string, size, limit int64, exhausted func() bool, at func() int64) (spooledMember, error) {
	tmp, st, err := spool.Sparse(ctx, "", "imgaudit-member-*.spool", r, limit)
	res := spooledMember{f: tmp, size: st.Size, written: min(st.Written, st.Size)}
	switch {
	case err != nil && ctx.Err() != nil:
		if tmp != nil {
			tmp.Close()
		}
		return spooledMember{size: st.Size}, ctx.Err()
	case errors.Is(err, spool.ErrLimit) || size >= 0 && st.Size < size && exhausted():
		if st.Size > limit {
			if terr := tmp.Truncate(limit); terr != nil {
				tmp.Close()
				return spooledMember{size: limit}, terr
			}
			res.size = limit
		}
		res.cut = model.Errorf(im.Path, at(), "%s cut after %d bytes, at the inflate bound (--max-inflate): the rest is not decompressed or scanned", what, res.size)
	case err != nil:
		// The stream broke inside the member: what came out is read,
		// and the view says the rest is missing.
		res.cut = model.Wrapf(err, im.Path, at(), "%s cut after %d bytes", what, st.Size)
	case size >= 0 && st.Size < size:
		// The spool takes a stream that ends early for the end.
		res.cut = model.Errorf(im.Path, at(), "%s ends after %d of its %d bytes: the archive is cut short", what, st.Size, size)
	}
	if tmp == nil {
		im.Errors = append(im.Errors, res.cut)
		return res, nil
	}
	im.AddCloser(tmp)
	return res, nil
}

// memberDisk is a spooledDisk for an archive member that starts at at.
func memberDisk(name string, size, at int64) spooledDisk {
	return spooledDisk{name: name, where: "in the archive member " + name, size: size, at: func() int64 { return at }}
}

// open opens the gathered disks, each as whatever format its bytes are
// (Options.Open: formats.New), and adds their views and then the files'
// to im. The names a disk writes (a qcow2's backing file, a VMDK's
// extents or parent) resolve through x, the tar's index, or, when x is
// nil (members decompressed from a stream, a zip's), an index of the
// gathered members (tarindex.FromMembers): another member of the
// archive, never a host file; one that is not there is an error of the
// image, so the run is incomplete. A member that another opened disk
// reads is that disk's: it is no disk, and no file, of its own (an
// extent, a base). What the disks may still inflate (an archive in one)
// is budget.
func (a *archiveMembers) open(ctx context.Context, im *model.Image, x *tarindex.Index, budget int64, opts model.Options) error {
	if x == nil {
		var members []tarindex.Entry
		for _, d := range a.disks {
			members = append(members, tarindex.Entry{Name: d.name, R: d.r, Size: d.size, Offset: d.at})
		}
		for _, f := range a.files.members {
			members = append(members, f)
		}
		x = tarindex.FromMembers(im.Path, members)
	}
	type opened struct {
		sub   *model.Image
		err   error
		reads map[string]bool // the members it opened by name
	}
	res := make([]opened, len(a.disks))
	for i, d := range a.disks {
		if err := ctx.Err(); err != nil {
			for _, o := range res[:i] {
				if o.sub != nil {
					o.sub.Close()
				}
			}
			return err
		}
		if opts.Open == nil {
			res[i].err = model.Errorf(im.Path, d.at, "archive member %.80q: no reader for its format", d.name)
			continue
		}
		log := &hostfile.Log{}
		sub, err := opts.Open(ctx, d.r, d.size, d.name, model.Options{Open: opts.Open, Depth: opts.Depth + 1, Chain: opts.Chain, MaxInflate: budget, Opener: x.WithLog(log)})
		if err != nil {
			res[i].err = model.Wrapf(err, im.Path, d.at, "archive member %.80q", d.name)
			continue
		}
		// What the disk reads is what it opened and still holds open (a
		// parent, an extent): a VDI opens every .vdi beside it to find its
		// parent by UUID and closes the others, which a disk of their
		// own must not lose (before, an unrelated .vdi was dropped).
		res[i].sub, res[i].reads = sub, map[string]bool{}
		for _, u := range log.Uses() {
			if u.Opened && u.Real != tarindex.Clean(d.name) && log.Holds(u.Real) {
				res[i].reads[u.Real] = true
			}
		}
	}
	// A disk that a kept disk reads is dropped, until none is left to
	// drop; of two that read each other (a cycle, which the later open
	// refused), the first goes and the second stays, with its error.
	kept := make([]bool, len(a.disks))
	for i := range kept {
		kept[i] = res[i].sub != nil
	}
	for changed := true; changed; {
		changed = false
		for i, d := range a.disks {
			for j := range a.disks {
				if kept[i] && j != i && kept[j] && res[j].reads[tarindex.Clean(d.name)] {
					kept[i], changed = false, true
				}
			}
		}
	}
	read := map[string]bool{}
	for i, d := range a.disks {
		o := res[i]
		switch {
		case o.err != nil:
			im.Errors = append(im.Errors, errors.Join(d.cut, o.err))
			continue
		case !kept[i]:
			o.sub.Close()
			if d.cut != nil {
				im.Errors = append(im.Errors, d.cut) // what reads it reads it cut
			}
			continue
		}
		for n := range o.reads {
			read[n] = true
		}
		im.AddCloser(o.sub)
		for _, e := range o.sub.Errors {
			im.Errors = append(im.Errors, fmt.Errorf("%s: archive member %s: %w", im.Path, d.name, e))
		}
		views := renameViews(im.Path, d.name, o.sub, []string{fmt.Sprintf("%s disk %s", o.sub.Format, d.how)}, d.file, d.host)
		if len(views) > 0 && views[0].Incomplete == nil {
			views[0].Incomplete = d.cut
		} else if d.cut != nil {
			im.Errors = append(im.Errors, d.cut)
		}
		addViews(im, views)
	}
	a.files.finish(im, read)
	uniqueViewIDs(im.Views)
	return nil
}

// uniqueViewIDs gives a view whose ID an earlier view has (a tar that
// holds a name twice, as appending to it does: both copies are scanned,
// though extraction keeps the later) the ID with "~2", "~3" appended.
func uniqueViewIDs(views []model.View) {
	taken := map[string]bool{}
	for _, v := range views {
		taken[v.ID] = false
	}
	for i := range views {
		id := views[i].ID
		for n := 2; taken[views[i].ID]; n++ {
			views[i].ID = fmt.Sprintf("%s~%d", id, n)
		}
		taken[views[i].ID] = true
	}
}

// A member that is no disk (a Vagrantfile, metadata.json, an OVF, a
// README, a provisioning bundle) is a file the archive ships with its
// disks: each is scanned as it is, as a view of its own
// ("box.tar.gz#current:Vagrantfile"). One stored whole in the archive is
// read in place, whatever its size; a decompressed one is held in memory
// when small (maxHeldBytes each, maxHeldTotal in all), else spooled to an
// unlinked temporary file as a disk is, within the inflate bound. Past
// maxFileViews of them, a member is not scanned, and that is an error of
// the image: the run is incomplete, so the gate fails closed.
const (
	maxFileViews = 256
	maxHeldBytes = 256 << 10
	maxHeldTotal = 16 << 20
)

// archiveFiles collects the views of an archive's files that are no disk.
type archiveFiles struct {
	views []model.View
	// members are the same files, for the names a disk writes (a flat
	// VMDK extent need not start like a disk).
	members []tarindex.Entry
	held    int64 // bytes held in memory
	skipped int   // members past maxFileViews
	firstAt int64 // where the first of them is in the archive
	// anchored is one more than the last anchor a decompressed member's
	// extent was given: anchors are the scan's identity of derived bytes,
	// so no two members may share one.
	anchored int64
}

// inPlace adds the member name, size bytes at off in the archive r.
func (a *archiveFiles) inPlace(archive, name string, r io.ReaderAt, off, size int64) {
	if !a.room(size, off) {
		return
	}
	ext := model.ExtentList{{Length: size, File: archive, FileOffset: off, FileLength: size}}
	a.add(archive, name, &model.FileDisk{R: r, Name: archive, Base: off, Len: size, Allocd: ext}, fmt.Sprintf("read in place from the archive at offset %d", off), nil)
}

// fromStream adds the member name, whose bytes r gives (decompressed, or
// a sparse member expanded), size bytes by the archive's record (-1 when
// unknown), reading at most limit bytes of it; exhausted reports whether
// what feeds r has reached its inflate bound, and at where the
// decompression had read to. A member that r ends early or breaks in is
// scanned as far as it goes, and its view is incomplete. It returns the bytes it read (what the bound is charged)
// and whether the member was cut, and an error only for a cancelled ctx.
func (a *archiveFiles) fromStream(ctx context.Context, im *model.Image, name string, r io.Reader, size, limit int64, exhausted func() bool, at func() int64) (int64, bool, error) {
	if !a.room(size, at()) {
		return 0, false, nil
	}
	// The anchor is where the decompression had read to, which reads
	// ahead: several small members share that position, and the scan,
	// which reads derived bytes once per file and anchor, skipped all but
	// the first (an audit found a key in a .tar.gz member unread). It is
	// made unique, and stays near the member's place.
	anchor := max(at(), a.anchored)
	a.anchored = anchor + 1
	derived := func(n int64) model.ExtentList {
		return model.ExtentList{{Length: n, Source: model.SourceDerived, File: im.Path, FileOffset: anchor, FileLength: n}}
	}
	if size >= 0 && size <= maxHeldBytes && a.held+size <= maxHeldTotal && size <= limit {
		b, err := io.ReadAll(io.LimitReader(r, size+1)) // to the end: a zip member's CRC-32 is checked there
		var cut error
		switch {
		case int64(len(b)) > size:
			b = b[:size]
			cut = model.Errorf(im.Path, at(), "archive member %.80q is longer than its record's %d bytes", name, size)
		case err != nil:
			cut = model.Wrapf(err, im.Path, at(), "archive member %.80q cut after %d bytes", name, len(b))
		case int64(len(b)) < size:
			cut = model.Errorf(im.Path, at(), "archive member %.80q ends after %d of its %d bytes: the archive is cut short", name, len(b), size)
		}
		a.held += int64(len(b))
		if len(b) > 0 {
			a.add(im.Path, name, &model.FileDisk{R: bytes.NewReader(b), Name: im.Path + "!" + name, Len: int64(len(b)), Allocd: derived(int64(len(b)))}, "decompressed or expanded from the archive", cut)
		} else if cut != nil {
			im.Errors = append(im.Errors, cut)
		}
		return int64(len(b)), cut != nil, nil
	}
	res, err := spoolMember(ctx, im, r, fmt.Sprintf("archive member %.80q", name), size, limit, exhausted, at)
	if err != nil || res.f == nil {
		return res.size, true, err
	}
	if res.size == 0 {
		if res.cut != nil {
			im.Errors = append(im.Errors, res.cut)
		}
		return 0, res.cut != nil, nil
	}
	how := fmt.Sprintf("decompressed or expanded once to an unlinked temporary file, %d bytes written and the zero blocks left as holes", res.written)
	a.add(im.Path, name, &model.FileDisk{R: res.f, Name: im.Path + "!" + name, Len: res.size, Allocd: derived(res.size)}, how, res.cut)
	return res.size, res.cut != nil, nil
}

// room reports whether a member of size bytes at off gets a view: an
// empty one needs none, and past maxFileViews none is made.
func (a *archiveFiles) room(size, off int64) bool {
	if size == 0 {
		return false
	}
	if len(a.views) >= maxFileViews {
		if a.skipped == 0 {
			a.firstAt = off
		}
		a.skipped++
		return false
	}
	return true
}

func (a *archiveFiles) add(archive, name string, d *model.FileDisk, how string, incomplete error) {
	a.members = append(a.members, tarindex.Entry{Name: name, R: io.NewSectionReader(d.R, d.Base, d.Len), Size: d.Len, Offset: d.Allocd[0].FileOffset})
	a.views = append(a.views, model.View{
		ID: filepath.Base(archive) + "#" + string(model.KindCurrent) + ":" + name, Kind: model.KindCurrent, Name: name, Disk: d,
		Notes:      []string{"a file the archive ships beside its disks, scanned as it is: " + how},
		Attrs:      map[string]string{"href": name, model.AttrArchiveFile: "true"},
		Incomplete: incomplete,
	})
}

// finish adds the files' views after the disks' (only to an archive that
// has a disk: the caller fails one without), but not those of the files
// a disk reads (read: cleaned names, as tarindex.Clean makes them), and
// makes the members past maxFileViews an error of the image.
func (a *archiveFiles) finish(im *model.Image, read map[string]bool) {
	if len(im.Views) == 0 {
		return
	}
	if a.skipped > 0 {
		im.Errors = append(im.Errors, model.Errorf(im.Path, a.firstAt, "%d members of the archive not scanned: no disks, past the %d files scanned beside its disks", a.skipped, maxFileViews))
	}
	for _, v := range a.views {
		if !read[tarindex.Clean(v.Name)] {
			im.Views = append(im.Views, v)
		}
	}
}

// regularType reports a regular file's tar type, a GNU sparse one's
// included.
func regularType(t byte) bool {
	return t == tar.TypeReg || t == tar.TypeRegA || t == tar.TypeGNUSparse
}

func addViews(im *model.Image, views []model.View) {
	im.Views = append(im.Views, views...)
	if v, ok := firstCurrent(views); ok && im.VirtualSize == 0 {
		im.VirtualSize = v.Disk.Size()
	}
}
