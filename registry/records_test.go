package registry

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/pkgdb"
)

// TestPackedRecords packs this machine's own dpkg records (status,
// md5sums and the rest pkgdb reads) as a layer's walk keeps them: they
// pack to well under half, unpack to the same bytes, and a packed record
// that is corrupt, or that unpacks past a layer's cap, is an error naming
// the record.
func TestPackedRecords(t *testing.T) {
	records := map[string][]byte{}
	var raw int64
	err := filepath.WalkDir("/var/lib/dpkg", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !pkgdb.IsRecordFile(strings.TrimPrefix(p, "/")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		records[strings.TrimPrefix(p, "/")] = b
		raw += int64(len(b))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if raw < 1<<20 {
		t.Fatalf("this machine's dpkg records are %d bytes: too few to measure packing", raw)
	}
	r := &blobResult{Records: maps.Clone(records)}
	if err := r.packRecords(); err != nil {
		t.Fatal(err)
	}
	if r.Records != nil || len(r.PackedRecords) != len(records) {
		t.Fatalf("after packing: %d unpacked, %d packed records, want 0 and %d", len(r.Records), len(r.PackedRecords), len(records))
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
	big := &blobResult{Records: map[string][]byte{"var/lib/dpkg/status": make([]byte, maxLayerRecordBytes+1)}}
	if err := big.packRecords(); err != nil {
		t.Fatal(err)
	}
	if _, err := big.unpackedRecords(dec); err == nil || !strings.Contains(err.Error(), "var/lib/dpkg/status") {
		t.Errorf("records over the layer cap: error %v, want one naming the record", err)
	}
}
