package pkgdb

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"fmt"
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
		"head -c -20 Translation-en.xz > cut.xz && cp Translation-en.lz4 misnamed.gz && head -c 64M /dev/zero | lz4 -q > zeros.lz4")
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
		// a bomb: 64 MiB of zeros in 257 KB, over the expansion cap of
		// its size (-1: DecodedDigestCap)
		{"zeros.lz4", "sha256-decoded", -1, nil, "decodes to over"},
		{"Translation-en.lz4", "sha256-decoded", -1, want256[:], ""},
	} {
		f, err := os.Open(filepath.Join(dir, c.file))
		if err != nil {
			t.Fatal(err)
		}
		if c.max < 0 {
			fi, err := f.Stat()
			if err != nil {
				t.Fatal(err)
			}
			c.max = DecodedDigestCap(fi.Size())
		}
		got, err := DecodedHash(context.Background(), f, c.algo, c.max, nil, nil)
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

// TestDecodedBudget: files hashed one after the other draw on one budget;
// the file that finds it spent fails, and so does every later one.
func TestDecodedBudget(t *testing.T) {
	testutil.RequireTool(t, "lz4")
	dir := t.TempDir()
	testutil.Bash(t, dir, "head -c 3M /dev/zero | lz4 -q > zeros.lz4")
	b, err := os.ReadFile(filepath.Join(dir, "zeros.lz4"))
	if err != nil {
		t.Fatal(err)
	}
	budget := NewDecodedBudget(7 << 20)
	var errs []string
	for range 4 {
		_, err := DecodedHash(context.Background(), bytes.NewReader(b), "sha256-decoded", 8<<20, budget, nil)
		errs = append(errs, fmt.Sprint(err))
	}
	if errs[0] != "<nil>" || errs[1] != "<nil>" || !strings.Contains(errs[2], "over the budget") || !strings.Contains(errs[3], "over the budget") {
		t.Errorf("3 MiB each from a budget of 7 MiB: %q", errs)
	}
}

// TestDecodedDigestCap: 100 bytes per compressed byte past the first
// MiB, and never past MaxDecodedDigestBytes, however large or unknown
// the file.
func TestDecodedDigestCap(t *testing.T) {
	for _, c := range []struct{ size, want int64 }{
		{0, 1 << 20},
		{13 << 20, 1301 << 20},
		{10 << 20, 1001 << 20},
		{1 << 40, MaxDecodedDigestBytes},
		{-1, MaxDecodedDigestBytes},
	} {
		if got := DecodedDigestCap(c.size); got != min(c.want, MaxDecodedDigestBytes) {
			t.Errorf("DecodedDigestCap(%d) = %d, want %d", c.size, got, min(c.want, MaxDecodedDigestBytes))
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
		if sum, err := DecodedHash(context.Background(), bytes.NewReader(b), "sha256-decoded", 1<<20, nil, nil); err == nil && len(sum) != sha256.Size {
			t.Fatalf("a digest of %d bytes", len(sum))
		}
	})
}
