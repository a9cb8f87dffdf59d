package registry

import (
	"bytes"
	"context"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/pkgdb"
)

// TestPackedRecords: a layer's walk packs this machine's own dpkg records
// (status, md5sums and the rest pkgdb reads) as it reads them: they pack
// to well under half, unpack to the same bytes, and a packed record that
// is corrupt, or that unpacks past a layer's cap (a state file's), is an
// error naming the record. A record past the layer's cap is not kept,
// with a note.
func TestPackedRecords(t *testing.T) {
	records := map[string][]byte{}
	var entries []entry
	var raw int64
	err := filepath.WalkDir("/var/lib/dpkg", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !pkgdb.IsRecordFile(strings.TrimPrefix(p, "/")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		records[p] = b
		entries = append(entries, entry{name: strings.TrimPrefix(p, "/"), body: b})
		raw += int64(len(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw < 1<<20 {
		t.Fatalf("this machine's dpkg records are %d bytes: too few to measure packing", raw)
	}
	data := tarBytes(t, entries)
	s := newScanner(t, Options{})
	r := s.scanBlobOnce(context.Background(), blob{Digest: "sha256:records", Kind: blobTar, Size: int64(len(data)),
		open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil }})
	if len(r.Errors) > 0 || r.Records != nil || len(r.PackedRecords) != len(records) {
		t.Fatalf("after the walk: errors %v, %d unpacked, %d packed records, want none, 0 and %d", r.Errors, len(r.Records), len(r.PackedRecords), len(records))
	}
	packed := r.packedRecordBytes()
	t.Logf("%d records: %d bytes, packed %d (%.0f %%)", len(records), raw, packed, 100*float64(packed)/float64(raw))
	if packed > raw/2 {
		t.Errorf("records packed to %d of %d bytes", packed, raw)
	}
	dec, err := newRecordDecoder()
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	got, err := r.unpackedRecords(dec)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.EqualFunc(got, records, bytes.Equal) {
		t.Errorf("unpacked records differ from the originals")
	}

	var some string
	for p := range r.PackedRecords {
		some = p
		break
	}
	corrupt := &blobResult{PackedRecords: map[string][]byte{some: []byte("not zstd")}}
	if _, err := corrupt.unpackedRecords(dec); err == nil || !strings.Contains(err.Error(), some) {
		t.Errorf("corrupt packed record: error %v, want one naming %q", err, some)
	}
	enc, err := newRecordEncoder()
	if err != nil {
		t.Fatal(err)
	}
	big := &blobResult{PackedRecords: map[string][]byte{"/var/lib/dpkg/status": enc.EncodeAll(make([]byte, maxLayerRecordBytes+1), nil)}}
	if _, err := big.unpackedRecords(dec); err == nil || !strings.Contains(err.Error(), "/var/lib/dpkg/status") {
		t.Errorf("records over the layer cap: error %v, want one naming the record", err)
	}

	over := tarBytes(t, []entry{{name: "var/lib/dpkg/status", body: make([]byte, maxLayerRecordBytes+1)}})
	r = s.scanBlobOnce(context.Background(), blob{Digest: "sha256:over", Kind: blobTar, Size: int64(len(over)),
		open: func(context.Context) (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(over)), nil }})
	if len(r.PackedRecords) != 0 || len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "package records over 64 MiB") {
		t.Errorf("a record past the layer's cap: %d kept, notes %q; want none kept and one note", len(r.PackedRecords), r.Notes)
	}
}
