package inflate

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// fuzzShapes keep a fuzzing run quick: the fast path by Read and by
// WriteTo, and the careful path with Reads that cut the output anywhere.
var fuzzShapes = readShapes[:3]

// FuzzInflate decodes arbitrary bytes as raw DEFLATE, alone and followed
// by more bytes, against klauspost's decoder: the same verdict, the same
// output, the same bytes left unread, and never a panic.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0x4b, 0x4c, 0x4a, 0x06, 0x00})
	f.Add(encode(block{kind: 1, final: true, tokens: []token{{lit: 'a'}, {length: 258, dist: 1}}}))
	f.Add(encode(block{kind: 0, stored: []byte("stored")}, block{kind: 1, final: true}))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, tail := range []string{"", "\x00\xff trailing"} {
			in := append(data[:len(data):len(data)], tail...)
			want := reference(in)
			for _, s := range fuzzShapes {
				if s.read > 0 && s.read < 4096 && len(want.out) > 256<<10 {
					continue // slow, and covered by the tests' small cases
				}
				agree(t, fmt.Sprintf("bufio %d, reads of %d, %d trailing bytes", s.buf, s.read, len(tail)), ours(in, s.buf, s.read), want)
			}
		}
	})
}

// FuzzGzip reads arbitrary bytes as one gzip member against klauspost's
// reader (Multistream(false)), as FuzzInflate does.
func FuzzGzip(f *testing.F) {
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03\x03\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		gzCheckShapes(t, "fuzz", data, fuzzShapes)
	})
}

// seedText is what the seeds compress: text with repeats near and far,
// like the documentation that the decoder mostly reads.
func seedText() []byte {
	var b bytes.Buffer
	for i := range 40 {
		fmt.Fprintf(&b, "pkg (1.%d-%d) unstable; urgency=medium\n\n  * Fix the thing number %d.\n  * Rebuild.\n\n -- Maintainer <m@example.org>  Mon, %02d Jan 2024\n\n", i/3, i%5, i*7, i%28+1)
	}
	return b.Bytes()
}

const smallSeed = "a small file\n"

// TestWriteSeeds regenerates the committed seed corpora from the gzip
// tool's output (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "changelog"), seedText(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "small"), []byte(smallSeed), 0o600); err != nil {
		t.Fatal(err)
	}
	write := func(target, name string, b []byte) {
		if err := fuzzcorpus.Write(filepath.Join("testdata", "fuzz", target), name, b); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct{ name, script string }{
		{"gzip-1", "gzip -c -1 < changelog"},
		{"gzip-6", "gzip -c -6 < changelog"},
		{"gzip-9", "gzip -c -9 < changelog"},
		{"gzip-small", "gzip -c < small"},
		{"gzip-N", "gzip -N -c changelog"},
		{"gzip-two-members", "gzip -c < small && gzip -c -9 < changelog"},
	} {
		testutil.Bash(t, dir, "("+c.script+") > seed")
		b, err := os.ReadFile(filepath.Join(dir, "seed"))
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzGzip", c.name, b)
		if c.name != "gzip-N" && c.name != "gzip-two-members" {
			write("FuzzInflate", c.name, b[10:len(b)-8]) // the raw stream
		}
	}
}

// TestFuzzSeeds checks that the committed seeds made by TestWriteSeeds
// still reach what they were made for: whole streams that decode to their
// text. (Crashers kept as seeds are run by the fuzz targets themselves.)
func TestFuzzSeeds(t *testing.T) {
	for _, target := range []string{"FuzzInflate", "FuzzGzip"} {
		dir := filepath.Join("testdata", "fuzz", target)
		names, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range names {
			if !strings.HasPrefix(n.Name(), "gzip-") {
				continue
			}
			data := testutil.FuzzSeed(t, filepath.Join(dir, n.Name()))
			var res result
			if target == "FuzzGzip" {
				res = gzOurs(data, 4096, 4096).result
			} else {
				res = ours(data, 4096, 4096)
			}
			want := seedText()
			if n.Name() == "gzip-small" || n.Name() == "gzip-two-members" {
				want = []byte(smallSeed) // the first member
			}
			if res.err != nil || !bytes.Equal(res.out, want) {
				t.Errorf("%s/%s: %d bytes, %v", target, n.Name(), len(res.out), res.err)
			}
		}
	}
}
