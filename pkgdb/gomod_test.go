package pkgdb

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadGoModCache has the real go command download two modules (one
// whose path has capitals, which the cache escapes as "!x") into a
// developer's GOPATH. Each module zip is recorded with its ziphash, and
// ZipHash1 of the zip the go command wrote equals it; a zip with a file
// changed does not.
func TestReadGoModCache(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	testutil.GoModDownload(t, dir, filepath.Join(root, "home/dev/go"), []testutil.GoModule{
		{Path: "example.com/acme", Version: "v1.2.0", Files: map[string][]byte{"testdata/id_rsa": []byte("fixture\n"), "acme.go": []byte("package acme\n")}},
		{Path: "example.com/Big/Tools", Version: "v0.0.0-20260101000000-abcdef123456", Files: map[string][]byte{"tools.go": []byte("package tools\n")}},
	})
	recs, err := readGoModCache(context.Background(), hostRoot(root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"example.com/acme":      "/home/dev/go/pkg/mod/cache/download/example.com/acme/@v/v1.2.0.zip",
		"example.com/Big/Tools": "/home/dev/go/pkg/mod/cache/download/example.com/!big/!tools/@v/v0.0.0-20260101000000-abcdef123456.zip",
	}
	if len(recs) != 2 {
		t.Fatalf("records %+v, want both modules", recs)
	}
	for _, r := range recs {
		o := r.Owner
		if want[o.Package] != r.Path || o.Manager != "go" || o.Digest.Algo != GoModHashAlgo || !strings.HasSuffix(r.Path, o.Version+".zip") {
			t.Errorf("record %s %+v", r.Path, o)
			continue
		}
		f, err := os.Open(filepath.Join(root, r.Path))
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := f.Stat()
		sum, err := ZipHash1(f, fi.Size(), MaxGoModZipBytes)
		f.Close()
		if err != nil || string(sum) != string(o.Digest.Sum) {
			t.Errorf("%s: ZipHash1 %x (%v), the go command's ziphash %x", r.Path, sum, err, o.Digest.Sum)
		}
		if _, err := ZipHash1(mustOpen(t, filepath.Join(root, r.Path)), fi.Size(), 10); err == nil {
			t.Errorf("%s: ZipHash1 with a 10-byte cap did not fail", r.Path)
		}
	}
	// The same zip with one file changed (zip -u replaces it).
	z := filepath.Join(root, want["example.com/acme"])
	testutil.Bash(t, dir, "mkdir -p edit/example.com/acme@v1.2.0 && echo changed > edit/example.com/acme@v1.2.0/acme.go && cp "+z+" edited.zip && cd edit && zip -q ../edited.zip example.com/acme@v1.2.0/acme.go")
	fi, _ := os.Stat(filepath.Join(dir, "edited.zip"))
	sum, err := ZipHash1(mustOpen(t, filepath.Join(dir, "edited.zip")), fi.Size(), MaxGoModZipBytes)
	for _, r := range recs {
		if r.Owner.Package == "example.com/acme" && (err != nil || string(sum) == string(r.Owner.Digest.Sum)) {
			t.Errorf("an edited zip: ZipHash1 %x (%v), equal to the original's", sum, err)
		}
	}
}

func mustOpen(t *testing.T, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// FuzzZipHash1 hashes arbitrary bytes as a module zip: it must never
// panic, and never decompress past its cap.
func FuzzZipHash1(f *testing.F) {
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ZipHash1(bytes.NewReader(b), int64(len(b)), 1<<20)
	})
}
