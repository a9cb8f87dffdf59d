package registry

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/zeros"
	"github.com/imgaudit/imgaudit/report"
)

// Blob kinds recorded in blobResult.Kind.
const (
	blobTar    = "tar"    // an image layer: a tar stream
	blobFile   = "blob"   // an artifact blob that is not a tar: scanned as one file
	blobConfig = "config" // an image config (JSON)
)

// maxConfigBytes bounds an image config read into memory.
const maxConfigBytes = 8 << 20

// zstdMaxWindow bounds the zstd decoder's window (and so its memory); real
// layers use a few MiB, zstd --long=27 uses 128 MiB.
const zstdMaxWindow = 1 << 27

// maxFileName bounds a tar entry name that is kept in memory (PAX allows
// any length).
const maxFileName = 4096

// blobResult is what scanning one blob yields, independent of the image
// and the position it has there, so that it can be reused by every image
// sharing the blob and cached in the --state file by digest.
//
// Findings in plain files have one location each with ViewKind "layer",
// an empty Target, the file's path in the layer as Path and the offset in
// the file as Offset; Exposure is "layer" when a later entry of the same
// layer replaced the file, else empty (decided per image). Findings in a
// disk image inside the layer keep the disk scanner's locations, with
// Target, View and File rewritten relative to the disk's path in the layer
// ("/disk/disk.qcow2", "/disk/disk.qcow2#current").
type blobResult struct {
	Digest         string           `json:"digest"`
	Kind           string           `json:"kind"`
	MediaType      string           `json:"media_type,omitempty"`
	Compression    string           `json:"compression,omitempty"`
	CompressedSize int64            `json:"compressed_size"`
	Bytes          int64            `json:"bytes"`
	Scanned        int64            `json:"scanned"`
	Files          int              `json:"files"`
	Findings       []report.Finding `json:"findings"`
	Disks          []report.Target  `json:"disks,omitempty"`
	Index          pathIndex        `json:"index"`
	Notes          []string         `json:"notes,omitempty"`
	Errors         []string         `json:"errors,omitempty"`

	// transient is set when the blob stream itself failed (network), so
	// that the scan is retried; not stored.
	transient bool
}

// blob is one blob of an image to scan: a layer, a config or an artifact
// blob, with a way to open its (possibly compressed) stream.
type blob struct {
	Digest    string // cache key: the blob digest (diff ID for docker save layers)
	MediaType string
	Size      int64
	Title     string // org.opencontainers.image.title, for artifact blobs
	Kind      string // blobTar or blobConfig; a tar kind that is no tar becomes blobFile
	open      func(ctx context.Context) (io.ReadCloser, error)
}

// scanBlob scans one blob, retrying from the start (at most opts.Retries
// times) when the stream breaks on a network error. Other errors (a
// truncated or corrupt layer) are recorded in the result, whose findings
// up to the error are kept.
func (s *Scanner) scanBlob(ctx context.Context, b blob) *blobResult {
	var res *blobResult
	for attempt := 0; ; attempt++ {
		res = s.scanBlobOnce(ctx, b)
		if !res.transient || attempt >= s.opts.Retries || ctx.Err() != nil {
			break
		}
		s.logf("retrying %s after: %s", shortDigest(b.Digest), strings.Join(res.Errors, "; "))
	}
	if res.Findings == nil {
		res.Findings = []report.Finding{}
	}
	return res
}

// sourceReader counts the bytes read from a blob stream and remembers the
// stream's own error, to tell a network failure from a corrupt layer.
type sourceReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *sourceReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

func isTransient(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, unix.ECONNRESET)
}

func (s *Scanner) scanBlobOnce(ctx context.Context, b blob) *blobResult {
	res := &blobResult{Digest: b.Digest, Kind: b.Kind, MediaType: b.MediaType, CompressedSize: b.Size}
	rc, err := b.open(ctx)
	if err != nil {
		// Errors are shown under the layer's view, whose ID names the
		// digest: they do not repeat it.
		res.Errors = append(res.Errors, fmt.Sprintf("opening blob: %v", err))
		res.transient = isTransient(err)
		return res
	}
	var cleanup []func() error // run in order: stop readers, then close the stream
	defer func() {
		for _, c := range cleanup {
			c()
		}
		rc.Close()
	}()
	src := &sourceReader{r: rc}
	fail := func(where string, err error) {
		msg := fmt.Sprintf("%s at compressed byte %d (uncompressed byte %d): %v", where, src.n, res.Bytes, err)
		res.Errors = append(res.Errors, msg)
		res.transient = src.err != nil && isTransient(src.err)
	}
	if b.Kind == blobConfig {
		data, err := io.ReadAll(io.LimitReader(src, maxConfigBytes+1))
		if err != nil {
			fail("reading config", err)
			return res
		}
		if len(data) > maxConfigBytes {
			res.Notes = append(res.Notes, fmt.Sprintf("config larger than %d bytes: only its start was scanned", maxConfigBytes))
			data = data[:maxConfigBytes]
		}
		res.Bytes, res.Scanned = int64(len(data)), int64(len(data))
		for _, m := range s.opts.Engine.FindAll(data, s.scanOpts()) {
			if m.AllowedAt("config.json") {
				continue
			}
			f := matchFinding(m)
			f.Locations = []report.Location{{ViewKind: "config", Offset: m.Start, Length: m.End - m.Start, Path: "config.json", State: report.StateUnknown, Encoding: m.Encoding}}
			res.Findings = append(res.Findings, f)
		}
		return res
	}
	raw := bufio.NewReaderSize(src, 64<<10)
	dec, comp, err := decompressor(raw)
	if err != nil {
		fail("starting decompression", err)
		return res
	}
	res.Compression = comp
	ra := newReadAhead(ctx, dec, 1<<20, 4)
	// The read-ahead goroutine may be blocked reading the network: closing
	// the stream first unblocks it; the decompressor is closed only once
	// the goroutine is gone.
	cleanup = append(cleanup, func() error { ra.stop(); return nil }, rc.Close, ra.Close, dec.Close)
	ub := &countReader{r: ra, n: &res.Bytes}
	head := bufio.NewReaderSize(ub, 64<<10)
	first, err := head.Peek(512)
	if err != nil && !(errors.Is(err, io.EOF) && len(first) > 0) {
		if errors.Is(err, io.EOF) && len(first) == 0 {
			return res // an empty blob
		}
		fail("reading "+comp+" stream", err)
		return res
	}
	fs := &fileScanner{s: s, res: res, buf: s.scanBuffer()}
	if b.Kind == blobTar && looksLikeTar(first) {
		fs.walkTar(ctx, head, fail)
		return res
	}
	// An artifact blob that is no tar: one file, named by its title.
	res.Kind = blobFile
	name := "/" + b.Title
	if b.Title == "" {
		name = "/" + strings.ReplaceAll(b.Digest, ":", "-")
	}
	name = cleanPath(name)
	size := int64(-1)
	if comp == "none" && b.Size > 0 {
		size = b.Size
	}
	var ib indexBuilder
	ib.add(name, false)
	res.Index = ib.build()
	res.Files = 1
	if err := fs.scanFile(ctx, head, name, size, 0); err != nil {
		fail("reading blob", err)
	}
	return res
}

// decompressor detects gzip and zstd by their magic (media types lie) and
// returns a reader of the uncompressed stream.
func decompressor(r *bufio.Reader) (io.ReadCloser, string, error) {
	magic, _ := r.Peek(4)
	switch {
	case len(magic) >= 2 && magic[0] == 0x1f && magic[1] == 0x8b:
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, "gzip", err
		}
		return zr, "gzip", nil
	case len(magic) >= 4 && bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, "zstd", err
		}
		return zr.IOReadCloser(), "zstd", nil
	}
	return io.NopCloser(r), "none", nil
}

// looksLikeTar accepts a ustar/GNU/PAX header, a V7 header with a valid
// checksum, or an all-zero block (an empty archive).
func looksLikeTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	b = b[:512]
	if bytes.Equal(b, make([]byte, 512)) {
		return true
	}
	if string(b[257:262]) == "ustar" {
		return true
	}
	field := strings.TrimRight(strings.TrimSpace(string(bytes.TrimRight(b[148:156], "\x00"))), "\x00 ")
	want, err := strconv.ParseInt(field, 8, 64)
	if err != nil {
		return false
	}
	var sum int64
	for i, c := range b {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}

// countReader counts the bytes read into *n.
type countReader struct {
	r io.Reader
	n *int64
}

func (c *countReader) Read(p []byte) (int, error) {
	k, err := c.r.Read(p)
	*c.n += int64(k)
	return k, err
}

// fileScanner scans the files of one blob.
type fileScanner struct {
	s   *Scanner
	res *blobResult
	buf []byte
	// lastHit maps a path with findings to the index (in res.Findings) of
	// its first finding from the latest entry, so that an entry that
	// appears again later in the same tar marks the earlier copy replaced.
	hitsAt map[string][]int
}

// walkTar reads every entry of a layer tar. Regular files go through the
// detectors (or the disk scanner); every entry goes into the path index.
func (fs *fileScanner) walkTar(ctx context.Context, r io.Reader, fail func(string, error)) {
	tr := tar.NewReader(r)
	var ib indexBuilder
	defer func() { fs.res.Index = ib.build() }()
	prev := "(start of layer)"
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			fail("reading tar", err)
			return
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			fail(fmt.Sprintf("reading tar entry %d (after %q)", n, prev), err)
			return
		}
		name := hdr.Name
		if len(name) > maxFileName {
			name = name[:maxFileName]
		}
		p := cleanPath(name)
		prev = p
		isDir := hdr.Typeflag == tar.TypeDir
		ib.add(p, isDir)
		fs.replaced(p)
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
			continue
		}
		if _, _, wh := whiteoutOf(p); wh {
			continue
		}
		fs.res.Files++
		if err := fs.scanFile(ctx, tr, p, hdr.Size, n); err != nil {
			fail(fmt.Sprintf("reading %q (tar entry %d)", p, n), err)
			return
		}
	}
}

// replaced marks the findings of an earlier entry at p in the same layer
// as replaced: the later entry is what the merged filesystem holds.
func (fs *fileScanner) replaced(p string) {
	for _, i := range fs.hitsAt[p] {
		for j := range fs.res.Findings[i].Locations {
			fs.res.Findings[i].Locations[j].Exposure = report.ExposureLayer
		}
	}
	delete(fs.hitsAt, p)
}

// scanFile scans one file of size bytes (-1: unknown, read to EOF) from r:
// a VM disk or memory image is spooled and audited with the disk readers,
// anything else streams through the detectors in windows of the scan
// buffer, so that memory stays bounded whatever the file size.
func (fs *fileScanner) scanFile(ctx context.Context, r io.Reader, p string, size int64, entry int) error {
	buf := fs.buf
	n, err := io.ReadFull(r, buf[:min(int64(len(buf)), sizeOr(size, int64(len(buf))))])
	eof := false
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		eof = true
		if size >= 0 && int64(n) < size {
			// The stream broke inside this file: scan what arrived, then
			// report the break.
			return fs.scanStream(ctx, r, buf, n, true, p, size)
		}
	case err != nil:
		if serr := fs.scanStream(ctx, r, buf, n, true, p, -1); serr != nil {
			return serr
		}
		return err
	}
	if size >= 0 && int64(n) == size {
		eof = true
	}
	if format := sniffDisk(buf[:min(n, sniffHead)], sizeOr(size, int64(n)), p); format != "" && (size >= 0 || eof) {
		handled, err := fs.scanDisk(ctx, r, buf[:n], p, size, format)
		if handled || err != nil {
			return err
		}
	}
	return fs.scanStream(ctx, r, buf, n, eof, p, size)
}

func sizeOr(size, def int64) int64 {
	if size < 0 {
		return def
	}
	return size
}

// scanStream runs the detectors over a file whose first n bytes are in
// buf, reading the rest from r window by window; each window keeps
// Margin bytes of the previous one so that no match is cut.
func (fs *fileScanner) scanStream(ctx context.Context, r io.Reader, buf []byte, n int, eof bool, p string, size int64) error {
	e := fs.s.opts.Engine
	margin := int64(e.Margin())
	var base, ownStart int64 // file offset of buf[0]; first offset not yet owned
	var readErr error
	filled := n
	for {
		ownEnd := base + int64(filled)
		if !eof {
			ownEnd -= margin
		}
		if ownEnd > ownStart {
			window := buf[:filled]
			_, err := e.Scan(ctx, bytes.NewReader(window), int64(filled), []detectors.Range{{Start: ownStart - base, End: ownEnd - base}}, fs.s.scanOpts(), func(m detectors.Match) {
				m.Start += base
				m.End += base
				fs.addHit(m, p)
			})
			if err != nil {
				return err
			}
			fs.res.Scanned += ownEnd - ownStart
			ownStart = ownEnd
		}
		if eof {
			if readErr == nil && size >= 0 && base+int64(filled) < size {
				readErr = fmt.Errorf("file ends after %d of %d bytes: %w", base+int64(filled), size, io.ErrUnexpectedEOF)
			}
			return readErr
		}
		keep := int(max(0, ownStart-margin-base))
		copy(buf, buf[keep:filled])
		filled -= keep
		base += int64(keep)
		k, err := io.ReadFull(r, buf[filled:])
		filled += k
		switch {
		case err == io.EOF || err == io.ErrUnexpectedEOF:
			eof = true
		case err != nil:
			// Scan what arrived before the error, then report it.
			readErr = err
			eof = true
		}
	}
}

func (fs *fileScanner) addHit(m detectors.Match, p string) {
	if m.AllowedAt(p) {
		return // an allowlist's paths cover this file
	}
	f := matchFinding(m)
	f.Locations = []report.Location{{ViewKind: "layer", Offset: m.Start, Length: m.End - m.Start, Path: p, State: report.StateAllocated, Encoding: m.Encoding}}
	if fs.hitsAt == nil {
		fs.hitsAt = map[string][]int{}
	}
	fs.hitsAt[p] = append(fs.hitsAt[p], len(fs.res.Findings))
	fs.res.Findings = append(fs.res.Findings, f)
}

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

// matchFinding turns a detector match into a finding without locations.
func matchFinding(m detectors.Match) report.Finding {
	return report.Finding{
		Rule: m.RuleID, Description: m.Description, Category: m.Category, Severity: m.Severity.String(),
		Fingerprint: m.Fingerprint, KeyFingerprint: m.KeyFingerprint, Preview: m.Preview, Metadata: m.Meta,
	}
}

// shortDigest shortens "sha256:0123456789ab..." to "sha256:0123456789ab".
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
