package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"io"
	"slices"
	"testing"
)

// FuzzScanBlob feeds arbitrary bytes to the layer reader as a blob of a
// (possibly compressed) tar: it must never panic, hang or allocate beyond
// its windows, whatever the decompressor and tar reader make of them.
// The layer's findings are then judged by the package records it kept,
// packed as a run holds them (layerProvenance), which must not panic
// either. A seed is a layer with dpkg records that own a file holding a
// key.
func FuzzScanBlob(f *testing.F) {
	s := newScanner(f, Options{MaxSpoolSize: 1 << 20})
	key := testSecrets(f).rsaPEM
	sum := md5.Sum([]byte(key))
	f.Add(tarBytes(f, []entry{
		dir("lib/"), {name: "lib", typ: tar.TypeSymlink, link: "usr/lib"},
		file("var/lib/dpkg/status", "Package: keys\nStatus: install ok installed\nArchitecture: all\nVersion: 1\n\n"),
		file("var/lib/dpkg/info/keys.md5sums", hex.EncodeToString(sum[:])+"  usr/share/keys/test.pem\n"),
		file("usr/share/keys/test.pem", key),
		file("opt/app/tests/other.pem", key+"\n"),
	}))
	f.Fuzz(func(t *testing.T, data []byte) {
		b := blob{Digest: "sha256:fuzz", Kind: blobTar, Size: int64(len(data)), open: func(context.Context) (io.ReadCloser, error) {
			return io.NopCloser(bytes.NewReader(data)), nil
		}}
		res := s.scanBlobOnce(context.Background(), b)
		if res.Bytes < 0 || res.Scanned > res.Bytes+int64(len(data))+1<<20 {
			t.Fatalf("implausible counts: %d bytes, %d scanned", res.Bytes, res.Scanned)
		}
		findings := slices.Clone(res.Findings)
		for i := range findings {
			findings[i].Locations = slices.Clone(findings[i].Locations)
			for j := range findings[i].Locations {
				findings[i].Locations[j].Target, findings[i].Locations[j].LayerIndex = "fuzz", new(int)
			}
		}
		layerProvenance(context.Background(), "fuzz", []*blobResult{res}, []*pathIndex{&res.Index}, findings, maxImageRecordBytes)
	})
}

// FuzzPathIndex checks that any entry list builds an index that survives
// its JSON form and answers the same.
func FuzzPathIndex(f *testing.F) {
	f.Add([]byte("a/b\x00.wh.c\x00d/.wh..wh..opq\x00e/"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var b indexBuilder
		names := bytes.Split(data, []byte{0})
		for _, n := range names {
			b.add(cleanPath(string(n)), bytes.HasSuffix(n, []byte("/")))
		}
		x := b.build()
		raw, err := x.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		var y pathIndex
		if err := y.UnmarshalJSON(raw); err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			p := cleanPath(string(n))
			if x.hides(p) != y.hides(p) {
				t.Fatalf("hides(%q) differs after JSON", p)
			}
		}
	})
}
