package registry

import (
	"fmt"
	"sort"

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
