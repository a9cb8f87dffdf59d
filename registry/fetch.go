package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/formats/tarindex"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
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
	// Truncated counts what the scan of the blob's files cut to stay
	// within the scan's limits, as a view's truncated does.
	Truncated *report.ViewTruncation `json:"truncated,omitempty"`
	// Decoding counts what decoding the blob's compressed and archived
	// files read and left out, as a view's decoding does; nil when it
	// decoded nothing (and in state files written before 2026-12-07).
	Decoding *report.ViewDecoding `json:"decoding,omitempty"`
	// Records are the layer's package-record files (pkgdb.IsRecordFile:
	// dpkg's status and md5sums, an rpm database...), by path, within
	// maxLayerRecordBytes, and Links its top-level symlinks (merged /usr):
	// the image's package records are merged from its layers'
	// (layerProvenance). Digests are the digests of the layer's files
	// that hold findings, by path and algorithm, for files the scan
	// window held whole. The walk packs each record as it reads it
	// (PackedRecords, zstd per file: records.go); Records is empty,
	// unless read from a state file written before packing.
	Records       map[string][]byte            `json:"records,omitempty"`
	PackedRecords map[string][]byte            `json:"records_zstd,omitempty"`
	Links         map[string]string            `json:"links,omitempty"`
	Digests       map[string]map[string][]byte `json:"digests,omitempty"`
	// Used is when a run last took the blob from the --state file or put
	// it there (State.Prune).
	Used time.Time `json:"used,omitzero"`
	// unhashed lists the files too large for the scan window to hash
	// that hold findings, for a second read (rehash.go).
	unhashed map[string]unhashedFile
	// recordBytes counts the kept records' unpacked bytes while the blob
	// is scanned.
	recordBytes int64
	// cuts counts it while the blob is scanned.
	cuts scanner.Cuts
	// decoded and decodedFiles count Decoding while the blob is
	// scanned: the walks' counts, and the files they decoded.
	decoded      decode.Result
	decodedFiles int64

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
	// openAt, when set, opens the blob in place: it is a local file (an
	// OCI layout's blob, a docker save tarball's member). Uncompressed, it
	// is read where it lies and the disks in it are not spooled.
	openAt func(ctx context.Context) (*blobFileAt, error)
}

// blobFileAt is a blob that lies in a local file, read in place.
type blobFileAt struct {
	io.ReaderAt
	size  int64
	close func() error
}

// blobSource opens one blob of an image: as a stream, and in place when it
// is a local file (openAt is nil for a registry's blobs).
type blobSource struct {
	open   func(ctx context.Context) (io.ReadCloser, error)
	openAt func(ctx context.Context) (*blobFileAt, error)
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
	if len(res.unhashed) > 0 && len(res.Errors) == 0 && ctx.Err() == nil {
		s.hashLater(ctx, b, res)
	}
	if res.Findings == nil {
		res.Findings = []report.Finding{}
	}
	res.Truncated = res.cuts.Truncation()
	if d := res.decoded; res.decodedFiles > 0 || len(d.Skipped) > 0 {
		res.Decoding = &report.ViewDecoding{Containers: res.decodedFiles, Leaves: d.Leaves, DecodedBytes: d.Decoded, Skipped: d.Skipped, StoredMembersNotRescanned: d.StoredSkipped}
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
	if b.Kind != blobConfig && b.openAt != nil {
		if res := s.scanInPlace(ctx, b); res != nil {
			return res
		}
	}
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
		fs := s.newFileScanner(res, nil)
		for _, m := range s.opts.Engine.FindAll(data, s.scanOpts()) {
			if m.AllowedAt("config.json") {
				continue
			}
			fs.keep(m, report.Location{ViewKind: "config", Offset: m.Start, Length: m.End - m.Start, Path: "config.json", State: report.StateUnknown, Encoding: m.Encoding})
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
	size := int64(-1)
	if comp == "none" && b.Size > 0 {
		size = b.Size
	}
	fs := s.newFileScanner(res, s.scanBuffer())
	fs.scanContent(ctx, b, head, first, size, fail)
	return res
}

// scanInPlace scans a blob that lies uncompressed in a local file where it
// lies: its tar is walked through a reader that seeks over what it skips,
// and the disks in it are read in place (disks.go). It returns nil, for
// the caller to stream the blob, when the blob is compressed or cannot be
// opened so.
func (s *Scanner) scanInPlace(ctx context.Context, b blob) *blobResult {
	at, err := b.openAt(ctx)
	if err != nil {
		return nil
	}
	defer at.close()
	first := make([]byte, min(at.size, 512))
	if n, err := at.ReadAt(first, 0); err != nil && err != io.EOF || n < len(first) {
		return nil
	}
	if compressed(first) {
		return nil
	}
	res := &blobResult{Digest: b.Digest, Kind: b.Kind, MediaType: b.MediaType, CompressedSize: b.Size, Compression: "none", Bytes: at.size}
	if at.size == 0 {
		return res // an empty blob
	}
	c := tarindex.NewCursor(at, at.size)
	c.ReadAhead(layerReadAhead)
	fail := func(where string, err error) {
		res.Errors = append(res.Errors, fmt.Sprintf("%s at compressed byte %d (uncompressed byte %d): %v", where, c.Pos(), c.Pos(), err))
	}
	fs := s.newFileScanner(res, s.scanBuffer())
	fs.at, fs.pos = at, c.Pos
	fs.scanContent(ctx, b, c, first, at.size, fail)
	fs.scanDisksInPlace(ctx, fail)
	return res
}

// layerReadAhead is how much of an uncompressed layer read in place one
// read takes at least: the tar reader reads each header alone, and a
// small file in a few reads, each a pread of the layer file.
const layerReadAhead = 64 << 10

// scanContent scans a blob's uncompressed bytes r, size bytes (-1:
// unknown), whose first bytes are first: a layer's tar is walked; an
// artifact blob that is no tar is one file, named by its title.
func (fs *fileScanner) scanContent(ctx context.Context, b blob, r io.Reader, first []byte, size int64, fail func(string, error)) {
	res := fs.res
	if b.Kind == blobTar && looksLikeTar(first) {
		fs.walkTar(ctx, r, fail)
		return
	}
	res.Kind = blobFile
	name := "/" + b.Title
	if b.Title == "" {
		name = "/" + strings.ReplaceAll(b.Digest, ":", "-")
	}
	name = cleanPath(name)
	var ib indexBuilder
	ib.add(name, false)
	res.Index = ib.build()
	res.Files = 1
	notDisk := false
	if fs.at != nil {
		var inPlace bool
		if inPlace, notDisk = fs.diskInPlace(name, size); inPlace {
			return
		}
	}
	if err := fs.scanFile(ctx, r, name, size, notDisk); err != nil {
		fail("reading blob", err)
	}
}

// compressed reports the gzip and zstd magics (media types lie).
func compressed(magic []byte) bool {
	return bytes.HasPrefix(magic, []byte{0x1f, 0x8b}) || bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd})
}

// decompressor detects gzip and zstd by their magic (media types lie) and
// returns a reader of the uncompressed stream.
func decompressor(r *bufio.Reader) (io.ReadCloser, string, error) {
	magic, _ := r.Peek(4)
	switch {
	case !compressed(magic):
	case magic[0] == 0x1f:
		// decode/inflate: about 2.4 times klauspost's rate, which bound
		// the scan of a gzip layer (every layer of most images).
		zr, err := inflate.NewMultiGzipReader(r)
		if err != nil {
			return nil, "gzip", err
		}
		return zr, "gzip", nil
	default:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(zstdMaxWindow), zstd.WithDecoderLowmem(true))
		if err != nil {
			return nil, "zstd", err
		}
		return zr.IOReadCloser(), "zstd", nil
	}
	return io.NopCloser(r), "none", nil
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

// shortDigest shortens "sha256:0123456789ab..." to "sha256:0123456789ab".
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}
