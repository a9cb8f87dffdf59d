package pkgdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestDecodedHash: a file that gzip, xz, zstd, bzip2 or lz4 compressed
// hashes to the digest of the file before compression, whatever its name;
// text that is no stream, a stream cut short and one that decodes past
// the cap are errors, and so is an algorithm that is no decoded digest.
func TestDecodedHash(t *testing.T) {
	testutil.RequireTool(t, "gzip", "xz", "zstd", "bzip2", "lz4")
	dir := t.TempDir()
	var text bytes.Buffer
	for i := 0; text.Len() < 300<<10; i++ {
		text.WriteString("Package: acme-" + strings.Repeat("x", i%37) + "\nDescription-en: acme\n\n")
	}
	plain := filepath.Join(dir, "Translation-en")
	if err := os.WriteFile(plain, text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, "gzip -k Translation-en && xz -k Translation-en && zstd -q Translation-en && bzip2 -k Translation-en && lz4 -q Translation-en Translation-en.lz4 && "+
		"head -c -20 Translation-en.xz > cut.xz && cp Translation-en.lz4 misnamed.gz")
	want256, want512 := sha256.Sum256(text.Bytes()), sha512.Sum512(text.Bytes())
	for _, c := range []struct {
		file, algo string
		max        int64
		want       []byte
		err        string
	}{
		{"Translation-en.gz", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en.xz", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en.zst", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en.bz2", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en.lz4", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en.lz4", "sha512-decoded", 1 << 20, want512[:], ""},
		{"misnamed.gz", "sha256-decoded", 1 << 20, want256[:], ""},
		{"Translation-en", "sha256-decoded", 1 << 20, nil, "not a compressed stream"},
		{"cut.xz", "sha256-decoded", 1 << 20, nil, "xz: decoded offset"},
		{"Translation-en.gz", "sha256-decoded", 100 << 10, nil, "decodes to over 102400 bytes"},
		{"Translation-en.gz", "sha256", 1 << 20, nil, "not a decoded digest"},
		{"Translation-en.gz", "md5-decoded", 1 << 20, nil, "not a decoded digest"},
	} {
		f, err := os.Open(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodedHash(context.Background(), f, c.algo, c.max)
		f.Close()
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s %s: %x, %v; want an error with %q", c.file, c.algo, got, err, c.err)
			}
			continue
		}
		if err != nil || !bytes.Equal(got, c.want) {
			t.Errorf("%s %s: %x, %v; want %x", c.file, c.algo, got, err, c.want)
		}
	}
}

// FuzzDecodedHash: any bytes give a digest or an error, within the cap,
// and never a panic.
func FuzzDecodedHash(f *testing.F) {
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x4b\x4c\x4a\x06\x00\xc2\x41\x24\x35\x03\x00\x00\x00"))
	f.Add([]byte("\x04\x22\x4d\x18\x64\x40\xa7\x03\x00\x00\x80abc\x00\x00\x00\x00"))
	f.Add([]byte("\x28\xb5\x2f\xfd\x00\x58\x19\x00\x00abc"))
	f.Add([]byte("BZh91AY&SY"))
	f.Add([]byte("\xfd7zXZ\x00\x00\x04"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if sum, err := DecodedHash(context.Background(), bytes.NewReader(b), "sha256-decoded", 1<<20); err == nil && len(sum) != sha256.Size {
			t.Fatalf("a digest of %d bytes", len(sum))
		}
	})
}
