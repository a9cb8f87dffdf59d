package decode

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// fuzzLimits keep a fuzzing run's walks small and quick.
var fuzzLimits = Limits{MaxTime: 2 * time.Second, MaxDecoderMemory: 48 << 20, MaxSpool: 4 << 20, MaxMembers: 1000}

// fuzzWalk walks data as a container (or with codec given) both ways,
// through Walk and WalkStream, with and without SkipStoredLeaves and
// HeadOnly, and checks the caps held. The walks share one Scratch, as a
// scanner worker's walks do, and a last walk through it must give what a
// walk with a fresh one gave: decoders and buffers that earlier walks left
// behind change nothing.
func fuzzWalk(t *testing.T, data []byte, codec string) {
	fresh, freshLeaves := fuzzWalkOnce(t, data, codec, walkMode{}, nil)
	var scratch Scratch
	for _, m := range []walkMode{{stream: true}, {skipStored: true}, {headOnly: true}, {packaged: packagedHalfSet{}}} {
		fuzzWalkOnce(t, data, codec, m, &scratch)
	}
	again, againLeaves := fuzzWalkOnce(t, data, codec, walkMode{}, &scratch)
	if !reflect.DeepEqual(fresh, again) || !slices.Equal(freshLeaves, againLeaves) {
		t.Fatalf("a reused Scratch changed the walk: %+v %q, fresh %+v %q", again, againLeaves, fresh, freshLeaves)
	}
	// Members held and hashed, none accepted, walk as if never held.
	none, noneLeaves := fuzzWalkOnce(t, data, codec, walkMode{packaged: packagedNoneSet{}}, &scratch)
	if !reflect.DeepEqual(fresh, none) || !slices.Equal(freshLeaves, noneLeaves) {
		t.Fatalf("holding members for Options.Packaged changed the walk: %+v %q, fresh %+v %q", none, noneLeaves, fresh, freshLeaves)
	}
}

// walkMode is how fuzzWalkOnce walks.
type walkMode struct {
	stream, skipStored, headOnly bool
	packaged                     PackagedFiles
}

// packagedNoneSet holds every size and no file; packagedHalfSet about
// half of the files of every size.
type (
	packagedNoneSet struct{}
	packagedHalfSet struct{}
)

func (packagedNoneSet) HasSize(int64) bool                   { return true }
func (packagedNoneSet) Has(int64, [md5.Size]byte) bool       { return false }
func (packagedHalfSet) HasSize(int64) bool                   { return true }
func (packagedHalfSet) Has(_ int64, sum [md5.Size]byte) bool { return sum[0]&1 == 0 }

// fuzzWalkOnce walks data once and returns the result and, for each leaf,
// its chain and a digest of its bytes.
func fuzzWalkOnce(t *testing.T, data []byte, codec string, mode walkMode, scratch *Scratch) (Result, []string) {
	const budget = 8 << 20
	// The walk holds its decoders' memory through a gate, which it must
	// leave as it found it, whatever the input.
	gate := NewMemoryGate(GatePool, GatePerWalk)
	opts := Options{Limits: fuzzLimits, Budget: NewBudget(budget), Codec: codec, SkipStoredLeaves: mode.skipStored, HeadOnly: mode.headOnly, Packaged: mode.packaged, Scratch: scratch, Gate: gate}
	var got int64
	var leaves []string
	fn := func(l Leaf) error {
		h := sha256.New()
		n, err := io.Copy(h, l.R)
		got += n
		if len(l.Chain) == 0 || len(l.Chain) > DefaultLimits().MaxDepth {
			t.Fatalf("leaf with a chain of %d steps", len(l.Chain))
		}
		leaves = append(leaves, fmt.Sprintf("%+v %x", l.Chain, h.Sum(nil)))
		return err
	}
	var res Result
	var err error
	if mode.stream {
		res, err = WalkStream(context.Background(), bytes.NewReader(data), opts, fn)
	} else {
		res, err = Walk(context.Background(), bytes.NewReader(data), int64(len(data)), opts, fn)
	}
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	checkGateEmpty(t, gate, "after the walk")
	if got > budget {
		t.Fatalf("decoded %d bytes, over the budget of %d", got, budget)
	}
	if res.Decoded != got {
		t.Fatalf("result counts %d decoded bytes, leaves gave %d", res.Decoded, got)
	}
	_ = res.Notes()
	return res, leaves
}

// FuzzWalk decodes arbitrary bytes as whatever container they start with.
// It must never panic, hang, or decode past its caps.
func FuzzWalk(f *testing.F) {
	f.Add([]byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03"))
	// An Ubuntu crash report: a text field and two binary ones.
	f.Add(apportReport(f, [][2]string{{"ProcStatus", "Name:\tx\nState:\tS"}}, [][2]any{{"CoreDump", []byte("core bytes\n")}, {"ProcMaps", []byte("maps")}}))
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, data, "") })
}

// FuzzInflate decodes arbitrary bytes as raw deflate, the way compressed
// cluster slack is tried.
func FuzzInflate(f *testing.F) {
	f.Add([]byte{0x4b, 0x4c, 0x4a, 0x06, 0x00})
	f.Fuzz(func(t *testing.T, data []byte) { fuzzWalk(t, data, Deflate) })
}

// TestWriteSeeds regenerates the committed seed corpora from the real
// tools' output (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	testutil.RequireTool(t, "gzip", "xz", "zstd", "bzip2", "lz4", "zip", "tar", "cpio", "mksquashfs", "dpkg-deb", "python3")
	dir := t.TempDir()
	tree(t, dir, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nseed\n"))
	const key = "src/etc/dropbear/dropbear_rsa_host_key"
	seeds := map[string]string{
		"gzip":           "gzip -c " + key,
		"xz":             "xz -c " + key,
		"zstd":           "zstd -q -c " + key,
		"bzip2":          "bzip2 -c " + key,
		"lz4":            "lz4 -q -c " + key,
		"lz4-legacy":     "lz4 -q -l -c " + key,
		"tar-gz":         "tar -C src -czf - etc",
		"zip":            "cd src && zip -q -r - etc",
		"zip-descriptor": "cat " + key + " | zip -q - -",
		"cpio-newc":      "cd src && find etc | cpio -o -H newc --quiet",
		"cpio-odc":       "cd src && find etc | cpio -o -H odc --quiet",
		"initramfs":      "(cd src && find etc/hostname | cpio -o -H newc --quiet) && (cd src && find etc | cpio -o -H newc --quiet | zstd -q)",
		"squashfs-gzip":  "mksquashfs src/etc sq -quiet -no-progress -comp gzip >/dev/null && cat sq && rm sq",
		"squashfs-xz":    "mksquashfs src/etc sq -quiet -no-progress -comp xz >/dev/null && cat sq && rm sq",
		"squashfs-zstd":  "mksquashfs src/etc sq -quiet -no-progress -comp zstd >/dev/null && cat sq && rm sq",
		"squashfs-lz4":   "mksquashfs src/etc sq -quiet -no-progress -comp lz4 >/dev/null && cat sq && rm sq",
		"squashfs-lzo":   "mksquashfs src/etc sq -quiet -no-progress -comp lzo >/dev/null && cat sq && rm sq",
	}
	write := func(target, name string, values ...any) {
		if err := fuzzcorpus.Write(filepath.Join("testdata", "fuzz", target), name, values...); err != nil {
			t.Fatal(err)
		}
	}
	for name, script := range seeds {
		testutil.Bash(t, dir, "("+script+") > seed")
		b, err := os.ReadFile(filepath.Join(dir, "seed"))
		if err != nil {
			t.Fatal(err)
		}
		write("FuzzWalk", name, b)
	}
	// Raw deflate as zlib writes it (Python's zlib, wbits -15), as qcow2
	// compressed clusters hold it.
	testutil.Bash(t, dir, `python3 -c 'import sys, zlib; c = zlib.compressobj(6, zlib.DEFLATED, -15); sys.stdout.buffer.write(c.compress(open("`+key+`", "rb").read() * 20) + c.flush())' > seed`)
	b, err := os.ReadFile(filepath.Join(dir, "seed"))
	if err != nil {
		t.Fatal(err)
	}
	write("FuzzInflate", "deflate", b)
	// A cluster's worth (64 KiB) of raw deflate and of zstd, as qcow2's
	// zlib and zstd compression types write them.
	testutil.Bash(t, dir, `python3 -c 'import sys, zlib; c = zlib.compressobj(6, zlib.DEFLATED, -12); sys.stdout.buffer.write(c.compress((open("`+key+`", "rb").read() * 2000)[:65536]) + c.flush())' > seed`)
	if b, err = os.ReadFile(filepath.Join(dir, "seed")); err != nil {
		t.Fatal(err)
	}
	write("FuzzExactly", "deflate-cluster", b, false)
	testutil.Bash(t, dir, `python3 -c 'import sys; sys.stdout.buffer.write((open("`+key+`", "rb").read() * 2000)[:65536])' | zstd -q -c > seed`)
	if b, err = os.ReadFile(filepath.Join(dir, "seed")); err != nil {
		t.Fatal(err)
	}
	write("FuzzExactly", "zstd-cluster", b, true)
	writeBtrfsSeeds(t)
}

// FuzzExactly tries arbitrary bytes as one deflate or zstd stream of a
// cluster's size, as compressed-cluster slack is tried.
func FuzzExactly(f *testing.F) {
	f.Add([]byte{0x4b, 0x4c, 0x4a, 0x06, 0x00}, false)
	f.Fuzz(func(t *testing.T, data []byte, zstd bool) {
		codec := Deflate
		if zstd {
			codec = Zstd
		}
		for _, size := range []int{1, 4096, 65536} {
			out, used, err := Exactly(data, codec, size)
			if err == nil && (len(out) != size || used < 0 || used > len(data)) {
				t.Fatalf("%d bytes out, %d used of %d, for size %d", len(out), used, len(data), size)
			}
		}
	})
}

// TestFuzzSeedsDecode: the committed seeds still reach what they were
// made for: each FuzzWalk seed yields a leaf, each FuzzExactly seed is a
// stream of one 64 KiB cluster.
func TestFuzzSeedsDecode(t *testing.T) {
	walk, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzWalk", "*"))
	exact, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzExactly", "*"))
	if len(walk) < 10 || len(exact) < 2 {
		t.Fatalf("%d FuzzWalk and %d FuzzExactly seeds", len(walk), len(exact))
	}
	for _, p := range walk {
		leaves, _ := walkAll(t, testutil.FuzzSeed(t, p), Options{})
		if len(leaves) == 0 {
			t.Errorf("%s yields no leaf", p)
		}
	}
	for _, p := range exact {
		file := testutil.FileSnapshot(t, p)
		b, err := fuzzcorpus.Decode(file)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		codec := Deflate
		if strings.HasSuffix(strings.TrimSpace(string(file)), "bool(true)") {
			codec = Zstd
		}
		if _, _, err := Exactly(b, codec, 65536); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
}
