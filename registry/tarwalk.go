package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/tarindex"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
	"github.com/klauspost/compress/zstd"
)

// maxFileName bounds a tar entry name that is kept in memory (PAX allows
// any length).
const maxFileName = 4096

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

// fileScanner scans the files of one blob.
type fileScanner struct {
	s   *Scanner
	res *blobResult
	buf []byte
	// lim keeps the blob's findings within the scan's limits; byRule finds
	// the finding (in res.Findings) of a rule and secret.
	lim    *scanner.Limiter
	byRule map[string]int
	// hitsAt maps a path with findings to the places (finding, location)
	// of those of its latest entry, so that an entry that appears again
	// later in the same tar marks the earlier copy replaced.
	hitsAt map[string][][2]int
	// scratch keeps decoders from one file's decoding for the next, on
	// the walk's goroutine (each pipeline worker has its own).
	scratch decode.Scratch
	// budget bounds what decoding this blob's files yields, on the walk
	// and its workers together, and digests what computing decoded
	// digests (apt's compressed lists) decodes.
	budget  *decode.Budget
	digests *pkgdb.DecodedBudget

	// at is the blob when it is read in place, pos the position of the
	// tar reader in it: the data of the current file starts there. The
	// disks found are read in place after the walk (disks.go).
	at    io.ReaderAt
	pos   func() int64
	disks []diskAt

	// recordsCut is set once keepRecord passed its caps (one note).
	recordsCut bool
	// recordEnc packs the layer's package records as the walk reads them
	// (keepRecord: each file once it is read and scrubbed), so that no
	// layer holds its records unpacked: two layers read side by side held
	// 64 MiB each. recordSizes are the
	// unpacked sizes of those kept, which the layer's caps count.
	recordEnc   *zstd.Encoder
	recordSizes map[string]int64
}

// entryPath is the path a layer's tar entry of that name has in the
// image: absolute, cleaned, its name cut at maxFileName.
func entryPath(name string) string {
	if len(name) > maxFileName {
		name = name[:maxFileName]
	}
	return cleanPath(name)
}

// walkTar reads every entry of a layer tar. Regular files go through the
// detectors (or the disk scanner); every entry goes into the path index.
func (fs *fileScanner) walkTar(ctx context.Context, r io.Reader, fail func(string, error)) {
	tr := tar.NewReader(r)
	var ib indexBuilder
	defer func() { fs.res.Index = ib.build() }()
	// Small files are scanned by the pipeline's workers (parallel.go);
	// flush applies what they found, in order, before the walk does
	// anything that depends on it, and false says a file's scan failed,
	// which stops the walk as it would have stopped it there.
	pl := fs.newFilePipeline(ctx, fs.s.opts.Engine.Workers())
	defer pl.close()
	failed := func(err error) {
		fe := err.(*fileError)
		fail(fmt.Sprintf("reading %q (tar entry %d)", fe.p, fe.n), fe.err)
	}
	flush := func() bool {
		if err := pl.drain(); err != nil {
			failed(err)
			return false
		}
		return true
	}
	prev := "(start of layer)"
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			if flush() {
				fail("reading tar", err)
			}
			return
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			flush()
			return
		}
		if err != nil {
			if flush() {
				fail(fmt.Sprintf("reading tar entry %d (after %q)", n, prev), err)
			}
			return
		}
		p := entryPath(hdr.Name)
		prev = p
		if pl.holds(p) && !flush() {
			return
		}
		isDir := hdr.Typeflag == tar.TypeDir
		ib.add(p, isDir)
		fs.replaced(p)
		if hdr.Typeflag == tar.TypeSymlink && path.Dir(p) == "/" {
			fs.keepLink(p, hdr.Linkname)
		}
		if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeGNUSparse {
			continue
		}
		if _, _, wh := whiteoutOf(p); wh {
			continue
		}
		fs.res.Files++
		notDisk := false
		if fs.at != nil && !tarindex.IsSparse(hdr) {
			var inPlace bool
			if inPlace, notDisk = fs.diskInPlace(p, hdr.Size); inPlace {
				continue // the tar reader seeks over it
			}
		}
		record := hdr.Typeflag == tar.TypeReg && pkgdb.IsRecordFile(p)
		var r io.Reader = tr
		var taken []byte
		if pl.takes(p, hdr.Size, record) {
			b, err := pl.readWhole(tr, hdr.Size)
			if err == nil && (notDisk || sniffDisk(b[:min(len(b), sniffHead)], hdr.Size, p) == "") {
				if err := pl.submit(p, n, b); err != nil {
					failed(err)
					return
				}
				continue
			}
			// A disk, or a read that failed: scanFile takes it from here,
			// with the bytes read so far.
			taken, r = b, io.MultiReader(bytes.NewReader(b), tr)
		}
		if !flush() {
			return
		}
		keep := func() error { return nil }
		if record {
			r, keep = fs.keepRecord(ctx, r, p, hdr.Size)
		}
		if err := fs.scanFile(ctx, r, p, hdr.Size, notDisk); err != nil {
			fail(fmt.Sprintf("reading %q (tar entry %d)", p, n), err)
			return
		}
		if err := keep(); err != nil {
			fail(fmt.Sprintf("reading %q (tar entry %d)", p, n), err)
			return
		}
		fs.noteUnhashed(p, n, hdr.Size)
		pl.release(taken)
	}
}

// replaced marks the findings of an earlier entry at p in the same layer
// as replaced: the later entry is what the merged filesystem holds. The
// earlier entry's digests go (its findings get no provenance: they are
// rare, and the path now names other bytes), and so do its records.
func (fs *fileScanner) replaced(p string) {
	for _, at := range fs.hitsAt[p] {
		fs.res.Findings[at[0]].Locations[at[1]].Exposure = report.ExposureLayer
	}
	delete(fs.hitsAt, p)
	delete(fs.res.Digests, p)
	delete(fs.res.unhashed, p)
	if n, ok := fs.recordSizes[p]; ok {
		fs.res.recordBytes -= n
		delete(fs.recordSizes, p)
		delete(fs.res.PackedRecords, p)
	}
	delete(fs.res.Links, p)
}

// maxLayerRecordBytes and maxLayerRecordFiles bound the package-record
// files a layer keeps (a large Debian install's status and md5sums are
// a few MiB in a few thousand files, an rpm database tens of MiB), and
// so what a hostile layer can make the scan hold: every layer of an
// image keeps its own until the image is judged.
const (
	maxLayerRecordBytes = 64 << 20
	maxLayerRecordFiles = 1 << 16
)

// keepRecord keeps the package-record file at p (size bytes) for
// layerProvenance, scrubbed and packed: it returns the reader to scan the
// file through, and keep, to call once that scan has ended, which reads
// what the scan left and keeps the record once all its bytes went
// through. The record is held unpacked only until keep has scrubbed it
// (scrubRecord: what the detectors find in it, and the userinfo of its
// URLs, masked) and packed it: the state file stores it, and it may not
// hold a secret the report redacts (a yarn.lock's resolved URL with a
// registry password). Past maxLayerRecordBytes (unpacked) or
// maxLayerRecordFiles it keeps nothing, with a note: the files those
// records list get no provenance.
func (fs *fileScanner) keepRecord(ctx context.Context, r io.Reader, p string, size int64) (io.Reader, func() error) {
	none := func() error { return nil }
	if size < 0 || fs.res.recordBytes+size > maxLayerRecordBytes || len(fs.recordSizes) >= maxLayerRecordFiles {
		if !fs.recordsCut {
			fs.recordsCut = true
			fs.res.Notes = append(fs.res.Notes, fmt.Sprintf("%s: package records over %d MiB or %d files in the layer: this and later ones are not kept, so the files they list get no package provenance", p, maxLayerRecordBytes>>20, maxLayerRecordFiles))
		}
		return r, none
	}
	if fs.recordEnc == nil {
		enc, err := newRecordEncoder()
		if err != nil {
			fs.res.Notes = append(fs.res.Notes, fmt.Sprintf("%s: package records not kept: %v; the files they list get no package provenance", p, err))
			return r, none
		}
		fs.recordEnc = enc
	}
	raw := bytes.NewBuffer(make([]byte, 0, size))
	src := &io.LimitedReader{R: r, N: size}
	tee := io.TeeReader(src, raw)
	return tee, func() error {
		if _, err := io.Copy(io.Discard, tee); err != nil {
			return err
		}
		if src.N > 0 {
			return fmt.Errorf("package record: %d of its %d bytes: %w", size-src.N, size, io.ErrUnexpectedEOF)
		}
		b := raw.Bytes()
		if err := fs.s.scrubRecord(ctx, b); err != nil {
			fs.res.Notes = append(fs.res.Notes, fmt.Sprintf("%s: package record not kept: %v; the files it lists get no package provenance", p, err))
			return nil
		}
		if fs.res.PackedRecords == nil {
			fs.res.PackedRecords, fs.recordSizes = map[string][]byte{}, map[string]int64{}
		}
		fs.res.PackedRecords[p] = fs.recordEnc.EncodeAll(b, nil)
		fs.recordSizes[p] = size
		fs.res.recordBytes += size
		return nil
	}
}

// keepLink keeps a top-level symlink (/lib -> usr/lib), for the package
// records' paths of a merged-/usr system. A hostile layer could list
// many: past 64 the rest are ignored.
func (fs *fileScanner) keepLink(p, target string) {
	if fs.res.Links == nil {
		fs.res.Links = map[string]string{}
	}
	if len(fs.res.Links) < 64 {
		fs.res.Links[p] = target
	}
}

// keepDigests keeps the digests of a file that holds findings, whose
// bytes are b, for layerProvenance: every algorithm a package manager
// records.
func (fs *fileScanner) keepDigests(ctx context.Context, p string, b []byte) {
	if fs.res.Digests == nil {
		fs.res.Digests = map[string]map[string][]byte{}
	}
	sums := map[string][]byte{}
	for algo, h := range map[string]hash.Hash{"md5": md5.New(), "sha1": sha1.New(), "sha256": sha256.New(), "sha512": sha512.New()} {
		h.Write(b)
		sums[algo] = h.Sum(nil)
	}
	if algo := pkgdb.StreamDigest(p); algo != "" {
		if _, decoded := pkgdb.IsDecodedDigest(algo); decoded {
			if sum, err := pkgdb.DecodedHash(ctx, bytes.NewReader(b), algo, pkgdb.DecodedDigestCap(int64(len(b))), fs.decodedDigests(), fs.s.gate); err == nil {
				sums[algo] = sum
			}
		}
	}
	if pkgdb.IsGoModZip(p) {
		if h1, err := pkgdb.ZipHash1(bytes.NewReader(b), int64(len(b)), pkgdb.MaxGoModZipBytes); err == nil {
			sums[pkgdb.GoModHashAlgo] = h1
		}
	}
	fs.res.Digests[p] = sums
}

// scanFile scans one file of size bytes (-1: unknown, read to EOF) from r:
// a VM disk or memory image is spooled and audited with the disk readers
// (a blob read in place reads its disks in place instead: diskInPlace),
// anything else streams through the detectors in windows of the scan
// buffer, so that memory stays bounded whatever the file size. notDisk
// says that diskInPlace sniffed the file's head already, and found no
// disk.
func (fs *fileScanner) scanFile(ctx context.Context, r io.Reader, p string, size int64, notDisk bool) error {
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
	format := "" // notDisk: diskInPlace sniffed these very bytes already
	if !notDisk {
		format = sniffDisk(buf[:min(n, sniffHead)], sizeOr(size, int64(n)), p)
	}
	if format != "" && (size >= 0 || eof) {
		handled, err := fs.scanDisk(ctx, r, buf[:n], p, size, format)
		if handled || err != nil {
			return err
		}
	}
	// A file the window holds whole and that turns out to hold findings
	// is hashed from the window, for its package provenance: neither
	// scanStream nor scanDecoding changes a window that holds the whole
	// file.
	whole, hits := eof && size >= 0 && int64(n) == size, len(fs.hitsAt[p])
	// A larger file is hashed as it streams where its path says which
	// digest its records hold (npm's cache, addressed by SHA-512: an
	// 11.8 MB aws-sdk tarball is common; apt's lists, by the SHA-256 of
	// their Release file: Translation-en is 35 MB), since its records
	// may come later in the layer.
	// A list apt keeps compressed, when the decode pass decodes it, is
	// hashed as that pass reads it, rather than decoded a second time.
	var streamed *streamHash
	algo := pkgdb.StreamDigest(p)
	_, decodedDigest := pkgdb.IsDecodedDigest(algo)
	decoding := !fs.s.opts.NoDecode && decode.Sniff(buf[:min(n, decode.SniffLen)]) != ""
	if !whole && algo != "" && !(decodedDigest && decoding) {
		streamed = newStreamHash(ctx, algo, size, fs.decodedDigests(), fs.s.gate)
		defer streamed.close()
		streamed.Write(buf[:n])
		r = io.TeeReader(r, streamed)
	}
	var leafSum []byte
	if decoding {
		leafDigest := ""
		if !whole && decodedDigest {
			leafDigest = algo
		}
		leafSum, err = fs.scanDecoding(ctx, r, buf, n, eof, p, size, leafDigest)
	} else {
		err = fs.scanStream(ctx, r, buf, n, eof, p, size)
	}
	switch {
	case err != nil || len(fs.hitsAt[p]) == hits:
	case whole:
		fs.keepDigests(ctx, p, buf[:n])
	case leafSum != nil:
		if fs.res.Digests == nil {
			fs.res.Digests = map[string]map[string][]byte{}
		}
		fs.res.Digests[p] = map[string][]byte{algo: leafSum}
	case decodedDigest && decoding:
		fs.res.Notes = append(fs.res.Notes, p+": package provenance: not hashed, as it did not decode whole as one stream")
	case streamed != nil:
		sum, serr := streamed.sum()
		if serr != nil {
			// The file's records cannot vouch for it: its findings keep
			// their severity.
			fs.res.Notes = append(fs.res.Notes, fmt.Sprintf("%s: package provenance: %v", p, serr))
			break
		}
		if fs.res.Digests == nil {
			fs.res.Digests = map[string]map[string][]byte{}
		}
		fs.res.Digests[p] = map[string][]byte{algo: sum}
	}
	return err
}

// decodedDigests is the blob's budget for decoded digests, made at first
// use.
func (fs *fileScanner) decodedDigests() *pkgdb.DecodedBudget {
	if fs.digests == nil {
		fs.digests = pkgdb.NewDecodedBudget(pkgdb.DefaultDecodedBudget)
	}
	return fs.digests
}

// streamHash computes a file's digest as the file streams through it
// (Write): the digest of its bytes, or, for a decoded digest (a list apt
// keeps compressed), of what they decode to (within the expansion cap of
// the file's size), decoded by a goroutine of its own from a pipe, as
// the layer's tar stream cannot be read twice.
type streamHash struct {
	h    hash.Hash // a plain digest
	pw   *io.PipeWriter
	done chan struct{}
	s    []byte
	err  error
}

func newStreamHash(ctx context.Context, algo string, size int64, budget *pkgdb.DecodedBudget, gate *decode.MemoryGate) *streamHash {
	if _, decoded := pkgdb.IsDecodedDigest(algo); !decoded {
		if algo == "sha256" {
			return &streamHash{h: sha256.New()}
		}
		return &streamHash{h: sha512.New()}
	}
	pr, pw := io.Pipe()
	sh := &streamHash{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(sh.done)
		sh.s, sh.err = pkgdb.DecodedHash(ctx, pr, algo, pkgdb.DecodedDigestCap(size), budget, gate)
		// A stream that stopped decoding (corrupt, a bomb) still takes
		// the rest of the file, so that the scan's writes never block.
		io.Copy(io.Discard, pr)
	}()
	return sh
}

// Write never fails: a decoder's error is sum's.
func (sh *streamHash) Write(p []byte) (int, error) {
	if sh.h != nil {
		return sh.h.Write(p)
	}
	sh.pw.Write(p)
	return len(p), nil
}

// sum ends the stream and returns the digest.
func (sh *streamHash) sum() ([]byte, error) {
	if sh.h != nil {
		return sh.h.Sum(nil), nil
	}
	sh.close()
	return sh.s, sh.err
}

// close ends the stream, if sum did not, and waits for the decoder.
func (sh *streamHash) close() {
	if sh.pw != nil {
		sh.pw.Close()
		<-sh.done
	}
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
	opts := fs.s.scanOpts()
	opts.Skipped = fs.res.cuts.Skipped
	opts.Enough = func(rule string) bool { return fs.lim.Enough(layerView, rule) }
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
			_, err := e.Scan(ctx, bytes.NewReader(window), int64(filled), []detectors.Range{{Start: ownStart - base, End: ownEnd - base}}, opts, func(m detectors.Match) {
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
	fs.addLocated(m, p, report.Location{ViewKind: "layer", Offset: m.Start, Length: m.End - m.Start, Path: p, State: report.StateAllocated, Encoding: m.Encoding})
}

// addLocated records match m of the file at p, seen at loc.
func (fs *fileScanner) addLocated(m detectors.Match, p string, loc report.Location) {
	if m.AllowedAt(p) {
		return // an allowlist's paths cover this file
	}
	i, j, ok := fs.keep(m, loc)
	if !ok {
		return
	}
	if fs.hitsAt == nil {
		fs.hitsAt = map[string][][2]int{}
	}
	fs.hitsAt[p] = append(fs.hitsAt[p], [2]int{i, j})
}

// layerView is the one view of a blob's file scan, for the Limiter.
const layerView = "layer"

// newFileScanner returns the scanner of res's files, with buf as its
// detector window (nil for a config, scanned whole).
func (s *Scanner) newFileScanner(res *blobResult, buf []byte) *fileScanner {
	return &fileScanner{s: s, res: res, buf: buf, lim: scanner.NewLimiter(s.opts.Limits, s.opts.Engine), byRule: map[string]int{},
		budget: decode.NewBudget(layerDecodeBudget)}
}

// keep adds match m, found at loc, to the blob's findings within the
// scan's limits (scanner.Limiter, as the disk scanner keeps its own): one
// finding per rule and secret, at most LocationsPerFinding locations
// each, at most FindingsPerRulePerView findings per rule and severity.
// What is cut is counted. It returns where loc was put, if it was.
func (fs *fileScanner) keep(m detectors.Match, loc report.Location) (finding, location int, ok bool) {
	k := m.RuleID + "\x00" + m.Fingerprint
	i, seen := fs.byRule[k]
	if !seen {
		if !fs.lim.Admit(layerView, m.RuleID, m.Severity) {
			fs.res.cuts.Drop(m.RuleID)
			return 0, 0, false
		}
		i = len(fs.res.Findings)
		fs.res.Findings = append(fs.res.Findings, matchFinding(m))
		fs.byRule[k] = i
	}
	f := &fs.res.Findings[i]
	if !fs.lim.KeepLocation(f, len(f.Locations)) {
		return 0, 0, false
	}
	f.Locations = append(f.Locations, loc)
	return i, len(f.Locations) - 1, true
}

// matchFinding turns a detector match into a finding without locations.
func matchFinding(m detectors.Match) report.Finding {
	return report.Finding{
		Rule: m.RuleID, Description: m.Description, Category: m.Category, Severity: m.Severity.String(),
		Fingerprint: m.Fingerprint, KeyFingerprint: m.KeyFingerprint, Preview: m.Preview, Metadata: m.Meta,
	}
}
