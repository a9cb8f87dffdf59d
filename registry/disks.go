package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/internal/zeros"
)

// scanDisk spools a VM disk or memory image found in a layer to a private
// temporary directory under TmpDir (the disk readers need random access)
// and audits it with the disk scanner. It returns handled=false, without
// consuming more of r, when the file is larger than MaxSpoolSize or the
// temporary file system lacks room; the caller then scans it as bytes.
func (fs *fileScanner) scanDisk(ctx context.Context, r io.Reader, head []byte, p string, size int64, format string) (bool, error) {
	s := fs.s
	note := func(msg string) { fs.res.Notes = append(fs.res.Notes, p+": "+msg) }
	if size > s.opts.MaxSpoolSize {
		note(fmt.Sprintf("%s disk image of %d bytes exceeds --max-spool-size %d: scanned as plain bytes, without views or exposures", format, size, s.opts.MaxSpoolSize))
		return false, nil
	}
	if err := os.MkdirAll(s.opts.TmpDir, 0o700); err != nil {
		return false, fmt.Errorf("--tmp-dir: %w", err)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(s.opts.TmpDir, &st); err == nil && int64(st.Bavail)*int64(st.Bsize) < size+64<<20 {
		note(fmt.Sprintf("%s disk image of %d bytes does not fit in --tmp-dir %s: scanned as plain bytes", format, size, s.opts.TmpDir))
		return false, nil
	}
	dir, err := os.MkdirTemp(s.opts.TmpDir, "imgaudit-spool-")
	if err != nil {
		return false, fmt.Errorf("spooling %s: %w", p, err)
	}
	defer os.RemoveAll(dir)
	base := path.Base(p)
	if base == "/" || base == "." || base == ".." {
		base = "disk"
	}
	spool := filepath.Join(dir, base)
	f, err := os.OpenFile(spool, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("spooling %s: %w", p, err)
	}
	w := &sparseWriter{f: f}
	if _, err := w.Write(head); err != nil {
		f.Close()
		return true, fmt.Errorf("spooling %s: %w", p, err)
	}
	rest := size - int64(len(head))
	copied, err := io.CopyBuffer(w, io.LimitReader(r, max(rest, 0)), make([]byte, 1<<20))
	if err == nil && copied < rest {
		err = fmt.Errorf("file ends after %d of %d bytes: %w", int64(len(head))+copied, size, io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = w.finish(size)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return true, fmt.Errorf("spooling %s: %w", p, err)
	}
	inner, err := s.opts.DiskScanner(ctx, spool)
	if inner == nil {
		if err == nil {
			err = errors.New("disk scanner returned no report")
		}
		return true, fmt.Errorf("auditing %s disk image %s: %w", format, p, err)
	}
	rw := strings.NewReplacer(spool, p, dir+string(filepath.Separator), "")
	rewriteView := func(id string) string {
		if strings.HasPrefix(id, base+"#") {
			return path.Dir(p) + "/" + id
		}
		return rw.Replace(id)
	}
	if path.Dir(p) == "/" {
		rewriteView = func(id string) string {
			if strings.HasPrefix(id, base+"#") {
				return "/" + id
			}
			return rw.Replace(id)
		}
	}
	for _, t := range inner.Targets {
		t.Path = rw.Replace(t.Path)
		for i := range t.Views {
			t.Views[i].ID = rewriteView(t.Views[i].ID)
			t.Views[i].Error = rw.Replace(t.Views[i].Error)
		}
		for i := range t.Errors {
			t.Errors[i] = rw.Replace(t.Errors[i])
		}
		for i := range t.Partitions {
			t.Partitions[i].View = rewriteView(t.Partitions[i].View)
		}
		for i := range t.Unattributed {
			t.Unattributed[i] = rw.Replace(t.Unattributed[i])
		}
		for i := range t.Backing {
			t.Backing[i].Path = rw.Replace(t.Backing[i].Path)
			t.Backing[i].Error = rw.Replace(t.Backing[i].Error)
		}
		fs.res.Disks = append(fs.res.Disks, t)
	}
	for _, f := range inner.Findings {
		f.New = nil
		for i := range f.Locations {
			l := &f.Locations[i]
			l.Target = rw.Replace(l.Target)
			l.View = rewriteView(l.View)
			l.File = rw.Replace(l.File)
		}
		fs.res.Findings = append(fs.res.Findings, f)
	}
	// The disk's own errors are in its target (above); only what concerns
	// the whole audit, an interruption, is the layer's error.
	for _, x := range inner.IncompleteReasons {
		if x.Target == "" {
			return true, fmt.Errorf("auditing %s: %s", p, x.Reason)
		}
	}
	if err != nil {
		return true, fmt.Errorf("auditing %s: %w", p, err)
	}
	return true, nil
}

// sparseWriter writes a spooled disk image, seeking over all-zero blocks so
// that the temporary file takes only the space of its data (disk images
// are mostly zeros) and the disk readers see holes as holes.
type sparseWriter struct {
	f   *os.File
	off int64
}

func (w *sparseWriter) Write(p []byte) (int, error) {
	const block = 64 << 10
	for i := 0; i < len(p); i += block {
		c := p[i:min(i+block, len(p))]
		if zeros.All(c) {
			w.off += int64(len(c))
			continue
		}
		if _, err := w.f.WriteAt(c, w.off); err != nil {
			return i, err
		}
		w.off += int64(len(c))
	}
	return len(p), nil
}

// finish sets the file's length (trailing holes are not written).
func (w *sparseWriter) finish(size int64) error {
	return w.f.Truncate(max(size, w.off))
}
