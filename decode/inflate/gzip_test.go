package inflate

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// gzResult is what a gzip reader made of one member.
type gzResult struct {
	result
	hdr GzipHeader
}

func gzOurs(data []byte, bufSize, readSize int) gzResult {
	br := bufio.NewReaderSize(bytes.NewReader(data), bufSize)
	var res gzResult
	if reused.z == nil {
		reused.z = new(GzipReader)
	}
	z := reused.z
	err := z.Reset(br)
	if err == nil {
		res.hdr = z.GzipHeader
		res.out, err = readAll(z, readSize)
		if err == nil && z.Close() != nil {
			err = fmt.Errorf("Close after the end: %v", z.Close())
		}
	}
	res.err = err
	res.rest, _ = io.ReadAll(br)
	return res
}

// gzReference reads one member with klauspost's gzip reader, as the
// decode package did: Multistream(false) over a bufio.Reader. Its alt is
// compress/gzip's reading (see reference).
func gzReference(data []byte) gzResult {
	br := bufio.NewReader(bytes.NewReader(data))
	var res gzResult
	z, err := kgzip.NewReader(br)
	if err == nil {
		z.Multistream(false)
		res.hdr = GzipHeader{Name: z.Name, Comment: z.Comment, Extra: z.Extra, ModTime: z.ModTime, OS: z.OS}
		res.out, err = readAll(z, 32<<10)
	}
	res.err = err
	res.rest, _ = io.ReadAll(br)
	res.alt = func() result { return gzGoReference(data).result }
	return res
}

// gzGoReference reads one member with Go's compress/gzip.
func gzGoReference(data []byte) gzResult {
	br := bufio.NewReader(bytes.NewReader(data))
	var res gzResult
	z, err := gzip.NewReader(br)
	if err == nil {
		z.Multistream(false)
		res.hdr = GzipHeader{Name: z.Name, Comment: z.Comment, Extra: z.Extra, ModTime: z.ModTime, OS: z.OS}
		res.out, err = readAll(z, 32<<10)
	}
	res.err = err
	res.rest, _ = io.ReadAll(br)
	return res
}

// gzCheck reads data every way and checks it against klauspost (or,
// where klauspost is wrong, compress/gzip): the verdict, the header, the
// output, where the member ends, and the kind of error where it cannot
// depend on how far ahead a decoder reads (io.EOF for no member,
// ErrHeader, ErrChecksum). A stream that is both cut short and corrupt
// may fail as either: klauspost reads at least the end-of-block
// codeword's length plus 10 bits before it looks a symbol up,
// compress/flate that length, we only the codeword's own.
func gzCheck(t *testing.T, name string, data []byte) gzResult {
	t.Helper()
	return gzCheckShapes(t, name, data, readShapes)
}

func gzCheckShapes(t *testing.T, name string, data []byte, shapes []struct{ buf, read int }) gzResult {
	t.Helper()
	want := gzReference(data)
	var goRef *gzResult
	for _, s := range shapes {
		if s.read > 0 && s.read < 4096 && len(want.out) > 256<<10 {
			continue // slow, and covered by the small cases
		}
		got := gzOurs(data, s.buf, s.read)
		n := fmt.Sprintf("%s (bufio %d, reads of %d)", name, s.buf, s.read)
		ref := want
		if differs(got.result, want.result) != "" {
			if goRef == nil {
				r := gzGoReference(data)
				goRef = &r
			}
			ref = *goRef // klauspost is the odd one out, or agree fails below
		}
		agree(t, n, got.result, ref.result)
		for _, e := range []error{io.EOF, ErrHeader, ErrChecksum} {
			if errors.Is(got.err, e) != errors.Is(ref.err, e) {
				t.Fatalf("%s: error %v, the reference's %v", n, got.err, ref.err)
			}
		}
		if ref.err == nil && fmt.Sprint(got.hdr) != fmt.Sprint(ref.hdr) {
			t.Fatalf("%s: header %+v, the reference's %+v", n, got.hdr, ref.hdr)
		}
	}
	return want
}

// member builds a gzip member by hand: header flags and fields, the
// deflate stream, the trailer.
func member(flags byte, extra []byte, name, comment string, hcrc bool, deflate []byte, crc, size uint32) []byte {
	h := []byte{0x1f, 0x8b, 8, flags, 0x78, 0x56, 0x34, 0x12, 0, 3}
	if extra != nil {
		h = binary.LittleEndian.AppendUint16(h, uint16(len(extra)))
		h = append(h, extra...)
	}
	if name != "" {
		h = append(append(h, name...), 0)
	}
	if comment != "" {
		h = append(append(h, comment...), 0)
	}
	if hcrc {
		h = binary.LittleEndian.AppendUint16(h, uint16(crc32.ChecksumIEEE(h)))
	}
	h = append(h, deflate...)
	h = binary.LittleEndian.AppendUint32(h, crc)
	return binary.LittleEndian.AppendUint32(h, size)
}

// TestGzipRealTool reads what the gzip tool writes, with FNAME (-N, as
// for a named file) and without, and concatenated members one at a time.
func TestGzipRealTool(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	i := 0
	var all []byte
	var outs [][]byte
	for name, data := range sampleFiles(t) {
		p := filepath.Join(dir, fmt.Sprintf("f%d.bin", i))
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		level := []int{1, 6, 9}[i%3]
		testutil.Bash(t, dir, fmt.Sprintf("gzip -N -k -%d f%d.bin && gzip -c -%d < f%d.bin > f%d.anon.gz", level, i, level, i, i))
		for _, f := range []string{fmt.Sprintf("f%d.bin.gz", i), fmt.Sprintf("f%d.anon.gz", i)} {
			gz, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil {
				t.Fatal(err)
			}
			res := gzCheck(t, name+" "+f, gz)
			if res.err != nil || !bytes.Equal(res.out, data) {
				t.Fatalf("%s: %v", f, res.err)
			}
			all = append(all, gz...)
			outs = append(outs, data)
		}
		if res := gzCheck(t, name, all); res.err != nil || len(res.rest) == 0 && len(outs) > 1 {
			t.Fatalf("%s: first of concatenated members: %v, %d bytes left", name, res.err, len(res.rest))
		}
		i++
	}
	if z := gzReference(all[:20]); z.hdr.Name != "f0.bin" && z.err == nil {
		t.Fatalf("gzip -N wrote no FNAME: %+v", z.hdr)
	}

	// The members one after another from one bufio.Reader, as the
	// decode package reads a stream of concatenated members.
	for _, size := range []int{16, 4096, 1 << 20} {
		br := bufio.NewReaderSize(bytes.NewReader(all), size)
		var z GzipReader
		for k, want := range outs {
			if err := z.Reset(br); err != nil {
				t.Fatalf("bufio %d, member %d: %v", size, k, err)
			}
			got, err := readAll(&z, 1000)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("bufio %d, member %d: %d bytes, %v", size, k, len(got), err)
			}
		}
		if err := z.Reset(br); err != io.EOF {
			t.Fatalf("bufio %d: after the last member: %v, want io.EOF", size, err)
		}
	}
}

// TestGzipHeaders reads members with every header field, and with wrong
// trailers and headers.
func TestGzipHeaders(t *testing.T) {
	data := bytes.Repeat([]byte("gzip header fields "), 500)
	d := goFlate(t, data, 6)
	crc, size := crc32.ChecksumIEEE(data), uint32(len(data))
	long := string(bytes.Repeat([]byte("n"), 511))
	cases := []struct {
		name string
		gz   []byte
		want error // nil: decodes to data
	}{
		{"no fields", member(0, nil, "", "", false, d, crc, size), nil},
		{"FTEXT", member(1, nil, "", "", false, d, crc, size), nil},
		{"FEXTRA", member(4, []byte("AB\x04\x00data"), "", "", false, d, crc, size), nil},
		{"empty FEXTRA", member(4, []byte{}, "", "", false, d, crc, size), nil},
		{"FNAME", member(8, nil, "name.txt", "", false, d, crc, size), nil},
		{"FNAME, Latin-1", member(8, nil, "caf\xe9", "", false, d, crc, size), nil},
		{"FNAME of 511 bytes", member(8, nil, long, "", false, d, crc, size), nil},
		{"FNAME of 512 bytes", member(8, nil, long+"x", "", false, d, crc, size), ErrHeader},
		{"FCOMMENT", member(16, nil, "", "a comment", false, d, crc, size), nil},
		{"FHCRC", member(2, nil, "", "", true, d, crc, size), nil},
		{"all fields", member(2|4|8|16, []byte("XY\x00\x00"), "n", "c", true, d, crc, size), nil},
		{"bad FHCRC", func() []byte { m := member(2|8, nil, "n", "", true, d, crc, size); m[12] ^= 1; return m }(), ErrHeader},
		{"reserved flag", member(32, nil, "", "", false, d, crc, size), ErrHeader},
		{"not gzip", append([]byte("PK\x03\x04"), d...), ErrHeader},
		{"method 7", func() []byte { m := member(0, nil, "", "", false, d, crc, size); m[2] = 7; return m }(), ErrHeader},
		{"bad CRC", member(0, nil, "", "", false, d, crc^1, size), ErrChecksum},
		{"bad ISIZE", member(0, nil, "", "", false, d, crc, size+1), ErrChecksum},
		{"empty input", nil, io.EOF},
		{"header only", member(0, nil, "", "", false, nil, crc, size)[:10], io.ErrUnexpectedEOF},
		{"no trailer", member(0, nil, "", "", false, d, crc, size)[:10+len(d)], io.ErrUnexpectedEOF},
		{"half a trailer", member(0, nil, "", "", false, d, crc, size)[:10+len(d)+5], io.ErrUnexpectedEOF},
	}
	for _, c := range cases {
		gzCheck(t, c.name, c.gz)
		res := gzOurs(c.gz, 4096, 32<<10)
		switch {
		case c.want == nil && (res.err != nil || !bytes.Equal(res.out, data)):
			t.Fatalf("%s: %v", c.name, res.err)
		case c.want != nil && !errors.Is(res.err, c.want):
			t.Fatalf("%s: %v, want %v", c.name, res.err, c.want)
		}
		// And followed by another member: it must stop at its own end.
		if c.want == nil {
			gzCheck(t, c.name+", then another", append(append([]byte(nil), c.gz...), c.gz...))
		}
	}
}

// TestGzipTruncated cuts a member at every byte.
func TestGzipTruncated(t *testing.T) {
	data := bytes.Repeat([]byte("cut me anywhere "), 100)
	gz := member(2|4|8|16, []byte("ex"), "name", "comment", true, goFlate(t, data, 6), crc32.ChecksumIEEE(data), uint32(len(data)))
	for cut := range len(gz) {
		gzCheck(t, fmt.Sprintf("cut at %d", cut), gz[:cut])
		want := io.ErrUnexpectedEOF
		if cut == 0 {
			want = io.EOF
		}
		for _, s := range readShapes {
			if res := gzOurs(gz[:cut], s.buf, s.read); res.err != want {
				t.Fatalf("cut at %d (bufio %d, reads of %d): %v, want %v", cut, s.buf, s.read, res.err, want)
			}
		}
	}
}

// TestMultiGzip: members back to back (gzip of two files, concatenated by
// cat) read as one stream, as compress/gzip reads them; bytes after the
// last member that are no header fail as there; an empty input is io.EOF
// at once.
func TestMultiGzip(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a"), bytes.Repeat([]byte("first member's line\n"), 30000), 0o644)
	os.WriteFile(filepath.Join(dir, "b"), bytes.Repeat([]byte("the second one\n"), 20000), 0o644)
	testutil.Bash(t, dir, "gzip -c a > one.gz && gzip -c b >> one.gz")
	two, err := os.ReadFile(filepath.Join(dir, "one.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		in   []byte
	}{
		{"two members", two},
		{"trailing garbage", append(bytes.Clone(two), "not gzip"...)},
		{"cut in the second", two[:len(two)-100]},
	} {
		t.Run(c.name, func(t *testing.T) {
			want, wantErr := func() ([]byte, error) {
				z, err := gzip.NewReader(bytes.NewReader(c.in))
				if err != nil {
					return nil, err
				}
				return io.ReadAll(z)
			}()
			m, err := NewMultiGzipReader(bufio.NewReaderSize(bytes.NewReader(c.in), 4096))
			if err != nil {
				t.Fatal(err)
			}
			got, gotErr := io.ReadAll(m)
			if !bytes.Equal(got, want) || (gotErr == nil) != (wantErr == nil) {
				t.Errorf("%d bytes, %v; compress/gzip: %d bytes, %v", len(got), gotErr, len(want), wantErr)
			}
		})
	}
	if _, err := NewMultiGzipReader(bufio.NewReader(bytes.NewReader(nil))); err != io.EOF {
		t.Errorf("empty input: %v, want io.EOF", err)
	}
}

// TestZlib: zlib streams as Python's zlib (the C library) writes them, at
// several levels, read as compress/zlib reads them, stopping exactly after
// the checksum; a damaged checksum, a bad header and a preset dictionary
// fail as there.
func TestZlib(t *testing.T) {
	testutil.RequireTool(t, "python3")
	dir := t.TempDir()
	data := bytes.Repeat([]byte("a zlib stream of some text, as btrfs writes for an extent\n"), 3000)
	os.WriteFile(filepath.Join(dir, "in"), data, 0o644)
	for _, level := range []string{"1", "6", "9"} {
		testutil.Bash(t, dir, `python3 -c 'import sys, zlib; sys.stdout.buffer.write(zlib.compress(open("in", "rb").read(), `+level+`))' > out`+level)
		stream, err := os.ReadFile(filepath.Join(dir, "out"+level))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			name string
			in   []byte
			ok   bool
		}{
			{"as written, then trailing bytes", append(bytes.Clone(stream), "next"...), true},
			{"checksum damaged", append(bytes.Clone(stream[:len(stream)-1]), stream[len(stream)-1]^1), false},
			{"bad header", append([]byte{0x78, 0x9d}, stream[2:]...), false},
			{"preset dictionary", append([]byte{0x78, 0xbb}, stream[2:]...), false},
			{"cut", stream[:len(stream)-2], false},
		} {
			br := bufio.NewReaderSize(bytes.NewReader(c.in), 512)
			var got []byte
			z, err := NewZlibReader(br)
			if err == nil {
				got, err = io.ReadAll(z)
			}
			if c.ok != (err == nil) || c.ok && !bytes.Equal(got, data) {
				t.Errorf("level %s, %s: %d bytes, %v", level, c.name, len(got), err)
			}
			if c.ok {
				rest, _ := io.ReadAll(br)
				if string(rest) != "next" {
					t.Errorf("level %s: %q left after the stream", level, rest)
				}
			}
		}
	}
}
