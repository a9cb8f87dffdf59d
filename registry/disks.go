package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/tarindex"
	"github.com/imgaudit/imgaudit/internal/spool"
	"github.com/imgaudit/imgaudit/scanner"
)

// diskAt is a VM disk or memory image found in a blob read in place.
type diskAt struct {
	path   string // in the layer
	off    int64  // where its data starts in the blob
	size   int64
	format string // sniffDisk's
}

// diskInPlace sniffs the file p, size bytes, whose data starts at the tar
// reader's position in a blob read in place. A VM disk or memory image is
// recorded, to be audited where it lies once the walk is over
// (scanDisksInPlace), and the caller skips its data (inPlace). notDisk
// says that the file's head was read and is no disk: scanFile, which
// would read the same head, need not sniff it again (probing a gzip'd
// file decodes its head twice, a tenth of a registry scan's time).
func (fs *fileScanner) diskInPlace(p string, size int64) (inPlace, notDisk bool) {
	off := fs.pos()
	head := fs.buf[:min(size, sniffHead)]
	n, err := fs.at.ReadAt(head, off)
	if err != nil && err != io.EOF {
		return false, false // scanFile reads it, and says what is wrong
	}
	format := sniffDisk(head[:n], size, p)
	if format == "" {
		return false, true
	}
	fs.disks = append(fs.disks, diskAt{path: p, off: off, size: size, format: format})
	return true, false
}

// scanDisksInPlace audits the disks found in a blob read in place, where
// they lie: each is a section of the blob, never a copy. The names such a
// disk writes (a qcow2 overlay's backing file, a VMDK's extents) resolve
// to other members of the same layer, through an index of its tar, and
// never to files of this host.
func (fs *fileScanner) scanDisksInPlace(ctx context.Context, fail func(string, error)) {
	if len(fs.disks) == 0 {
		return
	}
	release, err := fs.s.takeDiskSlot(ctx)
	if err != nil {
		fail("waiting to audit the disks in the layer", err)
		return
	}
	defer release()
	var layer *tarindex.Index
	if fs.res.Kind == blobTar {
		x, err := tarindex.Build(ctx, fs.at, fs.res.Bytes, fs.res.Digest, maxTarEntries)
		if err != nil {
			fail("indexing the layer for the disks in it", err)
			return
		}
		layer = x
	}
	for _, d := range fs.disks {
		r := scanner.Reader{Name: d.path, R: io.NewSectionReader(fs.at, d.off, d.size), Size: d.size}
		if layer != nil {
			m, err := layer.At(d.off)
			if err != nil {
				fail(fmt.Sprintf("reading %q", d.path), err)
				return
			}
			r.R, r.Opener = m, layer
		}
		note := fmt.Sprintf("read in place: bytes %d to %d of the uncompressed layer", d.off, d.off+d.size)
		if err := fs.auditDisk(ctx, r, d.format, note); err != nil {
			fail(fmt.Sprintf("reading %q", d.path), err)
			return
		}
	}
}

// scanDisk spools a VM disk or memory image found in a layer that is read
// as a stream (compressed, or pulled from a registry) to an unlinked
// temporary file under TmpDir (the disk readers need random access), with
// its zero blocks left as holes, and audits it. It returns handled=false,
// without consuming more of r, when the file is larger than MaxSpoolSize
// or the temporary file system lacks room; the caller then scans it as
// bytes. The names a spooled disk writes resolve to nothing: the rest of
// its layer is not at hand.
func (fs *fileScanner) scanDisk(ctx context.Context, r io.Reader, head []byte, p string, size int64, format string) (bool, error) {
	s := fs.s
	note := func(msg string) { fs.res.Notes = append(fs.res.Notes, p+": "+msg) }
	if size < 0 {
		size = int64(len(head)) // the whole file is in head
	}
	if size > s.opts.MaxSpoolSize {
		note(fmt.Sprintf("%s disk image of %d bytes exceeds --max-spool-size %d: scanned as plain bytes, without views or exposures", format, size, s.opts.MaxSpoolSize))
		return false, nil
	}
	release, err := s.takeDiskSlot(ctx)
	if err != nil {
		return true, err
	}
	defer release()
	if err := os.MkdirAll(s.opts.TmpDir, 0o700); err != nil {
		return false, fmt.Errorf("--tmp-dir: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.opts.TmpDir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < size+64<<20 {
		note(fmt.Sprintf("%s disk image of %d bytes does not fit in --tmp-dir %s: scanned as plain bytes", format, size, s.opts.TmpDir))
		return false, nil
	}
	rest := io.LimitReader(r, max(size-int64(len(head)), 0))
	f, sp, err := spool.Sparse(ctx, s.opts.TmpDir, "imgaudit-spool-*", io.MultiReader(bytes.NewReader(head), rest), size)
	if err == nil && sp.Size < size {
		err = fmt.Errorf("file ends after %d of %d bytes: %w", sp.Size, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return true, fmt.Errorf("spooling %s: %w", p, err)
	}
	defer f.Close()
	how := fmt.Sprintf("spooled: the layer is read as a stream, so the disk was copied to an unlinked temporary file (%d of its %d bytes written, the zero blocks left as holes)", sp.Written, size)
	return true, fs.auditDisk(ctx, scanner.Reader{Name: p, R: f, Size: size}, format, how)
}

// takeDiskSlot waits until no other layer spools or audits a disk
// (Scanner.diskSlot), or ctx ends; release gives the slot back.
func (s *Scanner) takeDiskSlot(ctx context.Context) (release func(), err error) {
	select {
	case s.diskSlot <- struct{}{}:
		return func() { <-s.diskSlot }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// auditDisk audits a disk of the layer with the disk scanner and adds its
// target, which says how the disk was read (note), and its findings to the
// blob's result. The disk scanner names everything by the disk's path in
// the layer: nothing is renamed.
func (fs *fileScanner) auditDisk(ctx context.Context, r scanner.Reader, format, note string) error {
	inner, err := fs.s.opts.DiskScanner(ctx, r)
	if inner == nil {
		if err == nil {
			err = errors.New("disk scanner returned no report")
		}
		return fmt.Errorf("auditing %s disk image %s: %w", format, r.Name, err)
	}
	for _, t := range inner.Targets {
		t.Notes = append(t.Notes, note)
		fs.res.Disks = append(fs.res.Disks, t)
	}
	for _, f := range inner.Findings {
		f.New = nil
		fs.res.Findings = append(fs.res.Findings, f)
	}
	// The disk's own errors are in its target (above); only what concerns
	// the whole audit, an interruption, is the layer's error.
	for _, x := range inner.IncompleteReasons {
		if x.Target == "" {
			return fmt.Errorf("auditing %s: %s", r.Name, x.Reason)
		}
	}
	if err != nil {
		return fmt.Errorf("auditing %s: %w", r.Name, err)
	}
	return nil
}
