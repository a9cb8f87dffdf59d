package decode

import (
	"bytes"
	"context"
	"crypto/md5"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/decode/inflate"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// leafSeen is one leaf a walk gave: its chain and its bytes.
type leafSeen struct {
	chain []Step
	data  []byte
}

func walkAll(t *testing.T, data []byte, opts Options) ([]leafSeen, Result) {
	t.Helper()
	var out []leafSeen
	res, err := Walk(context.Background(), bytes.NewReader(data), int64(len(data)), opts, func(l Leaf) error {
		b, err := io.ReadAll(l.R)
		out = append(out, leafSeen{chain: append([]Step(nil), l.Chain...), data: b})
		return err
	})
	if err != nil {
		t.Fatalf("walk: %v", err)
	}
	return out, res
}

// countingReaderAt counts the bytes read through it.
type countingReaderAt struct {
	r io.ReaderAt
	n int64
}

func (c *countingReaderAt) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	c.n += int64(n)
	return n, err
}

// tree writes the files of a small tree under dir/src: a secret-bearing
// file among others.
func tree(t *testing.T, dir string, secret []byte) {
	t.Helper()
	files := map[string][]byte{
		"src/etc/dropbear/dropbear_rsa_host_key": secret,
		"src/etc/hostname":                       []byte("web01\n"),
		"src/usr/share/doc/readme.txt":           bytes.Repeat([]byte("documentation line\n"), 400),
	}
	for p, b := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWalkRealTools(t *testing.T) {
	secret := testutil.Marker("decode-secret", 3000)
	const key = "etc/dropbear/dropbear_rsa_host_key"
	cases := []struct {
		name   string
		tools  []string
		script string // makes "out" in the case's directory from src/
		chain  string // the secret's chain
		// offset of the chain's first step
		first int64
	}{
		{"gzip", []string{"gzip"}, "gzip -c src/" + key + " > out", "gzip", 0},
		{"xz", []string{"xz"}, "xz -c src/" + key + " > out", "xz", 0},
		{"xz crc64 two streams", []string{"xz"}, "xz -c -C crc64 src/etc/hostname > out; xz -c -C sha256 src/" + key + " >> out", "xz", 0},
		{"zstd", []string{"zstd"}, "zstd -q -c src/" + key + " > out", "zstd", 0},
		{"bzip2", []string{"bzip2"}, "bzip2 -c src/" + key + " > out", "bzip2", 0},
		{"lz4", []string{"lz4"}, "lz4 -q -c src/" + key + " > out", "lz4", 0},
		{"lz4 legacy", []string{"lz4"}, "lz4 -q -l -c src/" + key + " > out", "lz4", 0},
		{"tar", []string{"tar"}, "tar -C src -cf out .", "tar member " + key, -1},
		{"tar.gz", []string{"tar", "gzip"}, "tar -C src -czf out .", "gzip > tar member " + key, 0},
		{"tar.xz", []string{"tar", "xz"}, "tar -C src -cJf out .", "xz > tar member " + key, 0},
		{"tar.zst", []string{"tar", "zstd"}, "tar -C src --zstd -cf out .", "zstd > tar member " + key, 0},
		{"tar.bz2", []string{"tar", "bzip2"}, "tar -C src -cjf out .", "bzip2 > tar member " + key, 0},
		{"zip deflate", []string{"zip"}, "cd src && zip -q -r ../out.zip . && mv ../out.zip ../out", "zip member " + key, -1},
		{"zip stored", []string{"zip"}, "cd src && zip -q -0 -r ../out.zip . && mv ../out.zip ../out", "zip member " + key, -1},
		{"zip from a pipe (data descriptors)", []string{"zip"}, "cd src && cat " + key + " | zip -q ../out.zip - && mv ../out.zip ../out", "zip member -", -1},
		{"cpio newc", []string{"cpio"}, "cd src && find . | cpio -o -H newc --quiet > ../out", "cpio member " + key, -1},
		{"cpio odc", []string{"cpio"}, "cd src && find . | cpio -o -H odc --quiet > ../out", "cpio member " + key, -1},
		// An initramfs: an uncompressed early cpio (microcode), then the
		// main cpio compressed, as mkinitramfs and dracut write it.
		{"initramfs", []string{"cpio", "zstd"}, "mkdir -p early/kernel/x86/microcode && echo ucode > early/kernel/x86/microcode/GenuineIntel.bin && " +
			"(cd early && find . | cpio -o -H newc --quiet) > out && (cd src && find . | cpio -o -H newc --quiet | zstd -q -19) >> out", "zstd > cpio member " + key, -2},
		{"initramfs gzip", []string{"cpio", "gzip"}, "mkdir -p early/kernel && echo ucode > early/kernel/ucode.bin && " +
			"(cd early && find . | cpio -o -H newc --quiet) > out && (cd src && find . | cpio -o -H newc --quiet | gzip -9) >> out", "gzip > cpio member " + key, -2},
		{"deb", []string{"dpkg-deb", "xz"}, "mkdir -p src/DEBIAN && printf 'Package: t\\nVersion: 1\\nArchitecture: all\\nMaintainer: t <t@t>\\nDescription: t\\n' > src/DEBIAN/control && dpkg-deb -Zxz --root-owner-group -b src out >/dev/null",
			"ar member data.tar.xz > xz > tar member " + key, -1},
		{"tar.gz in zip", []string{"zip", "tar", "gzip"}, "tar -C src -czf inner.tar.gz . && zip -q -0 out.zip inner.tar.gz && mv out.zip out", "zip member inner.tar.gz > gzip > tar member " + key, -1},
		{"squashfs gzip", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp gzip >/dev/null", "squashfs member " + key, -1},
		{"squashfs xz", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp xz >/dev/null", "squashfs member " + key, -1},
		{"squashfs zstd", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp zstd >/dev/null", "squashfs member " + key, -1},
		{"squashfs lz4", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp lz4 >/dev/null", "squashfs member " + key, -1},
		{"squashfs lzo", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp lzo >/dev/null", "squashfs member " + key, -1},
		{"squashfs without fragments, 4 KiB blocks", []string{"mksquashfs"}, "mksquashfs src out -quiet -no-progress -comp gzip -no-fragments -b 4096 >/dev/null", "squashfs member " + key, -1},
		// Streams inside a zstd stream: the zstd decoder is charged its
		// frame's window, not all the decoder memory left, which failed
		// every stream inside on the memory cap.
		{"xz in zstd", []string{"xz", "zstd"}, "xz -c src/" + key + " | zstd -q -c > out", "zstd > xz", 0},
		{"gzip in tar.zst", []string{"gzip", "tar", "zstd"}, "mkdir in && gzip -c src/" + key + " > in/key.gz && tar -C in --zstd -cf out .", "zstd > tar member key.gz > gzip", 0},
		{"squashfs.gz", []string{"mksquashfs", "gzip"}, "mksquashfs src sq -quiet -no-progress -comp xz >/dev/null && gzip -c sq > out", "gzip > squashfs member " + key, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.RequireTool(t, c.tools...)
			dir := t.TempDir()
			tree(t, dir, secret)
			testutil.Bash(t, dir, c.script)
			data, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			if kind := Sniff(data[:min(len(data), SniffLen)]); kind == "" {
				t.Fatalf("Sniff does not recognise the %s output", c.name)
			}
			leaves, res := walkAll(t, data, Options{})
			var got []string
			found := false
			for _, l := range leaves {
				cs := ChainString(l.chain)
				got = append(got, cs)
				if cs == c.chain && bytes.Contains(l.data, secret) {
					found = true
					switch {
					case c.first >= 0 && l.chain[0].Offset != c.first:
						t.Errorf("first step at offset %d, want %d", l.chain[0].Offset, c.first)
					case c.first == -2 && l.chain[0].Offset == 0:
						t.Errorf("the compressed segment is at offset 0, want after the early cpio")
					}
					// An archive member's offset is where its bytes are in
					// the level above: for stored members, the secret itself.
					last := l.chain[len(l.chain)-1]
					if last.Member != "" && (c.name == "tar" || c.name == "cpio newc" || c.name == "cpio odc" || c.name == "zip stored") &&
						!bytes.HasPrefix(data[last.Offset:], secret[:64]) {
						t.Errorf("member offset %d does not hold the member's bytes", last.Offset)
					}
				}
			}
			if !found {
				t.Fatalf("no leaf %q holds the secret; leaves: %q (skipped %v)", c.chain, got, res.Skipped)
			}
			if len(res.Skipped) > 0 {
				t.Errorf("skipped %v", res.Skipped)
			}
		})
	}
}

// TestBombs: each bomb stays inside the caps, in bounded time, with the
// cap counted.
func TestBombs(t *testing.T) {
	cases := []struct {
		name   string
		tools  []string
		script string // writes out, or the bomb to standard output (pipe)
		pipe   bool
		reason string // a substring of the counted reason
		opts   Options
	}{
		// 10 GiB of zeros through gzip -1 (46 MB here), read from the
		// pipe as gzip writes it: the walk stops at the ratio cap, and the
		// rest is never made.
		{"gzip of 10 GiB of zeros", []string{"gzip"}, "head -c 10G /dev/zero | gzip -1", true, "gzip stream over the 100:1 expansion ratio", Options{}},
		// A zip of many members of zeros, 20 MiB each (20 KB).
		{"zip bomb of many members", []string{"zip"}, "head -c 20M /dev/zero > z && for i in $(seq 16); do ln z z$i; done && zip -q -9 out.zip z* && mv out.zip out", false, "zip stream over the 100:1 expansion ratio", Options{}},
		// Members that do not compress, within a small decoded budget:
		// the absolute cap.
		{"decoded cap", []string{"zip"}, "for i in $(seq 40); do head -c 2M /dev/urandom > r$i; done && zip -q -0 out.zip r* && mv out.zip out", false, "over the 16.0 MiB decoded cap", Options{Budget: NewBudget(16 << 20)}},
		// A sparse tar member: a 2 GiB file of one hole and a line,
		// 10 KiB of tar; archive/tar hands its hole over as zeros (Go's
		// own testdata has two such files, pax-sparse-big.tar and
		// gnu-sparse-big.tar, on every guest with a Go toolchain).
		{"sparse tar member", []string{"tar"}, "truncate -s 2G f && echo leaf >> f && tar --sparse -cf out f", false, "tar member over the 100:1 expansion ratio cap", Options{}},
		// tar.gz in tar.gz, 12 levels deep.
		{"self-nesting beyond the depth cap", []string{"tar", "gzip"}, "echo leaf > f && tar -czf l0.tgz f && for i in $(seq 12); do tar -czf l$i.tgz l$((i-1)).tgz; rm l$((i-1)).tgz; done && mv l12.tgz out", false, "nested deeper than 8 levels", Options{}},
		// No ratio cap: the walk's time cap stops it.
		{"time cap", []string{"gzip"}, "head -c 10G /dev/zero | gzip -1", true, "over the 200ms time cap", Options{Limits: Limits{MaxTime: 200 * time.Millisecond, MaxRatio: 1 << 40}}},
		// An xz block asking for a 192 MiB dictionary: refused before
		// anything is allocated.
		{"xz dictionary over the memory cap", []string{"xz"}, "echo hi | xz --lzma2=dict=192MiB,mode=fast > out", false, "xz decoder would need 192.0 MiB, over the 160.0 MiB decoder memory cap", Options{}},
		// 42.zip's shape: zips of 16 copies of a zip, four levels, over a
		// zip of zeros: 64 Ki times 10 MiB from a few tens of KB.
		{"nested zip bomb", []string{"zip"}, "head -c 10M /dev/zero > z && zip -q -9 l0.zip z && rm z && for i in 1 2 3 4; do for j in $(seq 16); do cp l$((i-1)).zip c$j.zip; done; zip -q -9 l$i.zip c*.zip; rm c*.zip; done && mv l4.zip out", false, "expansion ratio", Options{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.RequireTool(t, c.tools...)
			dir := t.TempDir()
			var decoded, size int64
			count := func(l Leaf) error {
				n, err := io.Copy(io.Discard, l.R)
				decoded += n
				return err
			}
			start := time.Now()
			var res Result
			var err error
			if c.pipe {
				cmd := exec.Command("bash", "-c", c.script)
				out, perr := cmd.StdoutPipe()
				if perr != nil {
					t.Fatal(perr)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				res, err = WalkStream(context.Background(), out, c.opts, count)
				cmd.Process.Kill()
				cmd.Wait()
				size = res.Consumed
			} else {
				testutil.Bash(t, dir, c.script)
				f, ferr := os.Open(filepath.Join(dir, "out"))
				if ferr != nil {
					t.Fatal(ferr)
				}
				defer f.Close()
				st, _ := f.Stat()
				size = st.Size()
				start = time.Now()
				res, err = Walk(context.Background(), f, size, c.opts, count)
			}
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			hit := false
			for r := range res.Skipped {
				hit = hit || strings.Contains(r, c.reason)
			}
			if !hit {
				t.Errorf("no cap %q counted: %v", c.reason, res.Notes())
			}
			// Bounded: a stream grows to its floor or 100 times its
			// input, and the whole walk the same.
			lim := c.opts.Limits.withDefaults()
			if bound := min(lim.MaxRatio, DefaultLimits().MaxRatio)*size + 2*lim.RatioFloor + (16 << 20); decoded > bound && c.name != "time cap" {
				t.Errorf("decoded %d bytes from %d, over %d", decoded, size, bound)
			}
			t.Logf("%d bytes in, %d decoded in %v; %v", size, decoded, took, res.Notes())
			if took > 20*time.Second {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestExactly: a raw deflate stream (as zlib writes it with negative window
// bits, as qemu writes compressed clusters) is found among other bytes at
// its exact place, and only a stream of the size asked for.
func TestExactly(t *testing.T) {
	testutil.RequireTool(t, "python3")
	dir := t.TempDir()
	testutil.Bash(t, dir, `python3 -c '
import sys, zlib
data = bytes(range(256)) * 256
c = zlib.compressobj(6, zlib.DEFLATED, -12)
sys.stdout.buffer.write(b"\xaa" * 100 + c.compress(data) + c.flush() + b"\x55" * 100)' > out`)
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	found := -1
	for p := range b {
		out, used, err := Exactly(b[p:], Deflate, 65536)
		if err == nil {
			if found >= 0 {
				t.Fatalf("streams at %d and %d", found, p)
			}
			found = p
			if len(out) != 65536 || out[300] != byte(300%256) || p+used != len(b)-100 {
				t.Errorf("stream at %d: %d bytes, used %d", p, len(out), used)
			}
		}
	}
	if found != 100 {
		t.Errorf("stream found at %d, want 100", found)
	}
	if _, _, err := Exactly(b[100:], Deflate, 65535); err == nil {
		t.Error("a stream of 65536 bytes passed for one of 65535")
	}
}

// TestSkipStoredLeaves: with Options.SkipStoredLeaves, the plain members
// of uncompressed archives (whose bytes are the container's own) are not
// handed over, and counted; a container inside such a member, and every
// member of an archive inside a stream, still are.
func TestSkipStoredLeaves(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "cpio", "ar")
	secret := testutil.Marker("stored-secret", 3000)
	cases := []struct {
		name, script string
		leaves       []string // the chains handed over with SkipStoredLeaves
		skipped      int64
	}{
		{"tar with a plain member and a .gz member", "tar -C src -cf out plain.txt key.gz", []string{"tar member key.gz > gzip"}, 1},
		{"cpio", "cd src && printf 'plain.txt\\nkey.gz\\n' | cpio -o -H newc --quiet > ../out", []string{"cpio member key.gz > gzip"}, 1},
		{"ar", "cd src && ar rc ../out plain.txt key.gz", []string{"ar member key.gz > gzip"}, 1},
		{"tar inside gzip: nothing is the container's own bytes", "tar -C src -czf out plain.txt key.gz", []string{"gzip > tar member plain.txt", "gzip > tar member key.gz > gzip"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.MkdirAll(filepath.Join(dir, "src"), 0o755); err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "src", "plain.txt"), bytes.Repeat([]byte("plain text, no secret\n"), 5000), 0o644)
			os.WriteFile(filepath.Join(dir, "src", "key"), secret, 0o644)
			testutil.Bash(t, dir, "gzip -n -c src/key > src/key.gz && "+c.script)
			data, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			full, fullRes := walkAll(t, data, Options{})
			leaves, res := walkAll(t, data, Options{SkipStoredLeaves: true})
			// A skipped member at the first level is seeked over, not read,
			// and still counts as consumed.
			if res.Consumed != fullRes.Consumed {
				t.Errorf("consumed %d bytes skipping, %d reading", res.Consumed, fullRes.Consumed)
			}
			if c.skipped > 0 {
				cr := &countingReaderAt{r: bytes.NewReader(data)}
				if _, err := Walk(context.Background(), cr, int64(len(data)), Options{SkipStoredLeaves: true}, func(l Leaf) error {
					_, err := io.Copy(io.Discard, l.R)
					return err
				}); err != nil {
					t.Fatal(err)
				}
				if plain := int64(110000); cr.n > int64(len(data))-plain+2*bufSize {
					t.Errorf("read %d of the container's %d bytes: the skipped member's %d were read", cr.n, len(data), plain)
				}
			}
			var got []string
			for _, l := range leaves {
				got = append(got, ChainString(l.chain))
			}
			if !slices.Equal(got, c.leaves) || res.StoredSkipped != c.skipped {
				t.Errorf("leaves %q, %d stored members skipped; want %q, %d", got, res.StoredSkipped, c.leaves, c.skipped)
			}
			if want := len(c.leaves) + int(c.skipped); len(full) != want {
				t.Errorf("without the option: %d leaves, want %d", len(full), want)
			}
			for _, l := range leaves {
				if strings.HasSuffix(ChainString(l.chain), "key.gz > gzip") && !bytes.Equal(l.data, secret) {
					t.Errorf("the nested stream's leaf does not hold the secret")
				}
			}
		})
	}
}

// TestScratchReused: walks that share a Scratch reuse one gzip reader (and
// its 150 KiB of buffer and tables) instead of making one each, and decode
// the same as walks without one.
func TestScratchReused(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), bytes.Repeat([]byte("some text to compress\n"), 5000), 0o644)
	testutil.Bash(t, dir, "gzip -c a > a.gz")
	data, err := os.ReadFile(filepath.Join(dir, "a.gz"))
	if err != nil {
		t.Fatal(err)
	}
	var sc Scratch
	var first *inflate.GzipReader
	for i := 0; i < 3; i++ {
		leaves, _ := walkAll(t, data, Options{Scratch: &sc})
		plain, _ := walkAll(t, data, Options{})
		if len(leaves) != 1 || len(plain) != 1 || !bytes.Equal(leaves[0].data, plain[0].data) || len(leaves[0].data) != 110000 {
			t.Fatalf("walk %d: %d leaves", i, len(leaves))
		}
		if len(sc.gzips) != 1 {
			t.Fatalf("walk %d: the scratch keeps %d gzip readers, want 1", i, len(sc.gzips))
		}
		if first == nil {
			first = sc.gzips[0]
		} else if sc.gzips[0] != first {
			t.Errorf("walk %d made a new gzip reader", i)
		}
	}
}

// TestInflaterMemoryCharged: a gzip stream's reader (about 150 KiB) counts
// against the decoder memory cap like the other decoders.
func TestInflaterMemoryCharged(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), []byte("some text\n"), 0o644)
	testutil.Bash(t, dir, "gzip -c a > a.gz")
	data, err := os.ReadFile(filepath.Join(dir, "a.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		mem    int64
		leaves int
	}{{100 << 10, 0}, {1 << 20, 1}} {
		leaves, res := walkAll(t, data, Options{Limits: Limits{MaxDecoderMemory: c.mem}})
		if len(leaves) != c.leaves || (c.leaves == 0) != (len(res.Skipped) == 1) {
			t.Errorf("cap %d: %d leaves, skipped %v", c.mem, len(leaves), res.Skipped)
		}
	}
}

// packagedSet is a PackagedFiles of files by size and MD5.
type packagedSet map[int64][md5.Size]byte

func (p packagedSet) HasSize(n int64) bool { _, ok := p[n]; return ok }
func (p packagedSet) Has(n int64, sum [md5.Size]byte) bool {
	s, ok := p[n]
	return ok && s == sum
}

// TestPackagedMembers: an archive member whose size and MD5 are those of
// a file of Options.Packaged (a compressed package file the caller
// proved unmodified) is left, counted, and not decoded; another member
// of the same archive is; a member over MaxPackagedMember is walked
// unchecked; a member of a size that no file of the set has is not held,
// so members inside it are checked; a member of a size in the set is
// held while it is walked, so members inside it are not. Archives made
// by gzip, tar and zip.
func TestPackagedMembers(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "zip", "head")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(src, "packaged"), testutil.Marker("packaged-page", 4000), 0o644)
	os.WriteFile(filepath.Join(src, "local"), testutil.Marker("local-notes", 4000), 0o644)
	// "big" compresses to more than MaxPackagedMember bytes: random data.
	testutil.Bash(t, dir, "head -c 3000000 /dev/urandom > src/big && cd src && gzip -n -k packaged local big && tar -czf nested.tar.gz packaged.gz")
	file := func(name string) (int64, [md5.Size]byte) {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		return int64(len(b)), md5.Sum(b)
	}
	set := packagedSet{}
	for _, name := range []string{"packaged.gz", "big.gz"} {
		n, sum := file(name)
		set[n] = sum
	}
	// With a file of nested.tar.gz's size but other bytes, nested.tar.gz
	// is held, and not left.
	n, sum := file("nested.tar.gz")
	sum[0] ^= 1
	withNested := packagedSet{n: sum}
	for k, v := range set {
		withNested[k] = v
	}
	cases := []struct {
		name, script string
		set          packagedSet
		leaves       []string // the chains handed over with the set
		packaged     int64
	}{
		{"tar", "tar -C src -cf out packaged.gz local.gz big.gz", set, []string{"tar member local.gz > gzip", "tar member big.gz > gzip"}, 1},
		{"tar.gz, as a container store's layer blob", "tar -C src -czf out packaged.gz local.gz", set, []string{"gzip > tar member local.gz > gzip"}, 1},
		{"zip", "cd src && zip -q -0 - packaged.gz local.gz > ../out", set, []string{"zip member local.gz > gzip"}, 1},
		{"a member inside a member of another size", "tar -C src -cf out nested.tar.gz", set, nil, 1},
		{"a member inside a held member is not checked", "tar -C src -cf out nested.tar.gz", withNested, []string{"tar member nested.tar.gz > gzip > tar member packaged.gz > gzip"}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			testutil.Bash(t, dir, "rm -f out && "+c.script)
			data, err := os.ReadFile(filepath.Join(dir, "out"))
			if err != nil {
				t.Fatal(err)
			}
			full, fullRes := walkAll(t, data, Options{})
			leaves, res := walkAll(t, data, Options{Packaged: c.set})
			var got []string
			for _, l := range leaves {
				got = append(got, ChainString(l.chain))
			}
			if !slices.Equal(got, c.leaves) || res.PackagedMembers != c.packaged {
				t.Errorf("leaves %q, %d packaged members; want %q, %d", got, res.PackagedMembers, c.leaves, c.packaged)
			}
			if len(full) != len(c.leaves)+int(c.packaged) || fullRes.PackagedMembers != 0 {
				t.Errorf("without the option: %d leaves, %d packaged members", len(full), fullRes.PackagedMembers)
			}
			// What is walked decodes the same whether it was held or not.
			for _, l := range leaves {
				for _, f := range full {
					if ChainString(f.chain) == ChainString(l.chain) && (!bytes.Equal(f.data, l.data) || !slices.Equal(f.chain, l.chain)) {
						t.Errorf("%s: held, it decodes %d bytes at %+v; unheld %d at %+v", ChainString(l.chain), len(l.data), l.chain, len(f.data), f.chain)
					}
				}
			}
		})
	}
}
