package registry

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/klauspost/compress/zstd"
)

// A layer's package records (dpkg's status and md5sums, an rpm database)
// are held from the layer's walk until the end of the run, since every
// image of the run that stacks the layer is judged with them, and they
// are stored with the layer in the --state file. A Debian layer's records
// are about 10 MiB, mostly md5 sums in hex and paths, which zstd packs to
// about a quarter; so a layer's records are held packed, file by file,
// and unpacked only while an image is judged (layerProvenance).

// maxRunRecordBytes bounds the packed records one run holds across all
// the layers it read (a registry scan of thousands of images); a layer
// read past it keeps none, with a note, and its result is not stored in
// the state, so that a later run reads the layer again.
const maxRunRecordBytes = 512 << 20

// maxImageRecordBytes bounds the records an image's judging holds
// unpacked (layerProvenance): a layer's own cap. A large Debian install's
// dpkg status and md5sums are about 10 MB (make precision's
// trixie-desktop: 9.4 MB), and an upper layer's copy of a file replaces
// the lower's.
const maxImageRecordBytes = maxLayerRecordBytes

// packedRecordBytes is the size of r's packed records.
func (r *blobResult) packedRecordBytes() int64 {
	var n int64
	for p, b := range r.PackedRecords {
		n += int64(len(p) + len(b))
	}
	return n
}

// dropRecords forgets r's records, with a note saying why.
func (r *blobResult) dropRecords(why string) {
	r.Records, r.PackedRecords = nil, nil
	r.Notes = append(r.Notes, "package records not kept: "+why+"; the files they list get no package provenance")
}

// unpackedRecords returns r's records by path: unpacked, or as a state
// file written before records were packed holds them. They are bounded
// as the walk bounds them (maxLayerRecordBytes), since a state file is
// read back from disk.
func (r *blobResult) unpackedRecords(dec *zstd.Decoder) (map[string][]byte, error) {
	if len(r.PackedRecords) == 0 {
		return r.Records, nil
	}
	paths := make([]string, 0, len(r.PackedRecords))
	for p := range r.PackedRecords {
		paths = append(paths, p)
	}
	sort.Strings(paths) // the same record is named in an error on every run
	out := make(map[string][]byte, len(paths)+len(r.Records))
	for p, b := range r.Records {
		out[p] = b
	}
	var total int64
	for _, p := range paths {
		b, err := dec.DecodeAll(r.PackedRecords[p], nil)
		if err != nil {
			return nil, fmt.Errorf("unpacking package record %q: %w", p, err)
		}
		if total += int64(len(b)); total > maxLayerRecordBytes {
			return nil, fmt.Errorf("unpacking package records: over %d MiB at %q", maxLayerRecordBytes>>20, p)
		}
		out[p] = b
	}
	return out, nil
}

// newRecordEncoder returns an encoder that packs records as a layer's
// walk reads them: one goroutine, and a 1 MiB window (an 8 MiB one held
// 8 MiB a layer; dpkg's md5sums files are a few KiB each, its status a
// few MiB).
func newRecordEncoder() (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1), zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithWindowSize(1<<20))
}

// newRecordDecoder returns a decoder for packed records: one goroutine,
// and no frame larger than a layer's records may be.
func newRecordDecoder() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(maxLayerRecordBytes), zstd.WithDecoderMaxWindow(zstdMaxWindow))
}

// A layer's package records are stored in the --state file, which, like
// the report, may not hold a secret value: a yarn.lock names its
// packages' tarballs by URL, a private registry's with its password
// (resolved "https://deploy:PASSWORD@npm.example.com/..."), and any
// record file may hold what a detector finds. So before a record is
// packed, scrubRecord masks it. Storing the provenance pkgdb parses out
// of the records instead would hold no file at all, but pkgdb reads an
// image's records merged over its layers (a layer's dpkg status with a
// lower layer's md5sums; an upper status replacing a lower one), not
// layer by layer: parsed per layer, the image's provenance would change.

// recordMask replaces a scrubbed byte. Line ends are kept, so that a
// record's lines stay lines.
const recordMask = '*'

// urlUserinfos returns the spans of the userinfo (a user, a password, a
// token in the user's place) of every URL in b: after a scheme and
// "://", what comes before an "@" that no "/", "?", "#", space or quote
// precedes. (A regexp took 0.8 s over a Debian install's 10 MB of dpkg
// records; this takes milliseconds.)
func urlUserinfos(b []byte) [][2]int {
	var out [][2]int
	sep := []byte("://")
	for off := 0; ; {
		i := bytes.Index(b[off:], sep)
		if i < 0 {
			return out
		}
		i += off
		off = i + len(sep)
		if i == 0 || !isSchemeByte(b[i-1]) {
			continue
		}
		for j := off; j < len(b); j++ {
			if c := b[j]; c == '@' {
				if j > off {
					out = append(out, [2]int{off, j})
				}
				break
			} else if c <= ' ' || strings.IndexByte("/?#\"'<>\\", c) >= 0 {
				break
			}
		}
	}
}

func isSchemeByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '+' || c == '.' || c == '-'
}

// errRecordEncoded refuses a record file that is a compressed stream or
// an archive: what lies inside it cannot be masked in place.
var errRecordEncoded = errors.New("it is compressed or an archive, whose contents cannot be scrubbed in place")

// scrubRecord masks, in place, every byte of b (a package-record file)
// that the detectors match (every rule, whatever the scan's limits have
// cut from the report, and matches an allowlist drops included), and the
// userinfo of every URL in it. The length and the line ends stay, so
// that the readers still parse what is left: a masked URL's package,
// version and path are intact. A record that is a compressed stream or
// an archive (no package manager writes one) is refused: the detectors'
// matches inside it have no place in its bytes.
func (s *Scanner) scrubRecord(ctx context.Context, b []byte) error {
	if codec := decode.Sniff(b[:min(len(b), decode.SniffLen)]); codec != "" {
		return fmt.Errorf("%s: %w", codec, errRecordEncoded)
	}
	mask := func(start, end int64) {
		for i := max(0, start); i < min(end, int64(len(b))); i++ {
			if b[i] != '\n' && b[i] != '\r' {
				b[i] = recordMask
			}
		}
	}
	var spans [][2]int64
	_, err := s.opts.Engine.Scan(ctx, bytes.NewReader(b), int64(len(b)), []detectors.Range{{Start: 0, End: int64(len(b))}}, s.scanOpts(), func(m detectors.Match) {
		spans = append(spans, [2]int64{m.Start, m.End})
	})
	if err != nil {
		return fmt.Errorf("scrubbing it: %w", err)
	}
	for _, sp := range spans {
		mask(sp[0], sp[1])
	}
	for _, sp := range urlUserinfos(b) {
		mask(int64(sp[0]), int64(sp[1]))
	}
	return nil
}
