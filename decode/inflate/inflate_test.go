package inflate

import (
	"bufio"
	"bytes"
	"compress/flate"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kflate "github.com/klauspost/compress/flate"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// result is what a decoder made of a stream: its output, its error (nil
// at a clean end), and the input it left unread in the bufio.Reader.
// A reference's result may carry alt, the result of a second reference
// (Go's own compress/flate or compress/gzip) to consult where ours and
// the first disagree.
type result struct {
	out  []byte
	err  error
	rest []byte
	alt  func() result
}

// readAll reads r to its end with reads of n bytes, or with io.Copy
// (which uses the reader's WriteTo) if n is 0.
func readAll(r io.Reader, n int) ([]byte, error) {
	if n == 0 {
		if _, ok := r.(io.WriterTo); !ok {
			return nil, fmt.Errorf("%T has no WriteTo", r)
		}
		var b bytes.Buffer
		_, err := io.Copy(&b, r)
		return b.Bytes(), err
	}
	var out []byte
	p := make([]byte, n)
	for empty := 0; ; {
		k, err := r.Read(p)
		out = append(out, p[:k]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if k == 0 {
			if empty++; empty > 100 {
				return out, io.ErrNoProgress
			}
		}
	}
}

// reused are the Reader and GzipReader that ours and gzOurs Reset for
// each stream (a new one's memory would be most of a fuzzing run's work):
// every stream meets the stale history and tables of the one before.
var reused struct {
	r *Reader
	z *GzipReader
}

// ours inflates data with a Reader over a bufio.Reader of bufSize bytes,
// reading readSize bytes at a time.
func ours(data []byte, bufSize, readSize int) result {
	br := bufio.NewReaderSize(bytes.NewReader(data), bufSize)
	if reused.r == nil {
		reused.r = NewReader(br)
	}
	r := reused.r
	r.Reset(br)
	out, err := readAll(r, readSize)
	rest, _ := io.ReadAll(br)
	if err == nil && r.InputOffset() != int64(len(data)-len(rest)) {
		err = fmt.Errorf("InputOffset %d, but %d bytes were consumed", r.InputOffset(), len(data)-len(rest))
	}
	return result{out, err, rest, nil}
}

// reference inflates data with klauspost's flate reader over a
// bufio.Reader, which it reads exactly to the stream's end.
//
// Where klauspost is wrong, compress/flate (which reads a bufio.Reader
// byte by byte too) is the second reference: klauspost v1.20.4 decodes
// the symbols of an empty code (one with no codeword: allowed, but
// corrupt if used) with the table its decoder held before, the code
// length code's or the previous block's, and so accepts streams that
// zlib and compress/flate reject. See TestStaleTable.
func reference(data []byte) result {
	br := bufio.NewReader(bytes.NewReader(data))
	out, err := readAll(kflate.NewReader(br), 32<<10)
	rest, _ := io.ReadAll(br)
	return result{out, err, rest, func() result { return goReference(data) }}
}

// goReference inflates data with Go's compress/flate over a bufio.Reader.
func goReference(data []byte) result {
	br := bufio.NewReader(bytes.NewReader(data))
	out, err := readAll(flate.NewReader(br), 32<<10)
	rest, _ := io.ReadAll(br)
	return result{out, err, rest, nil}
}

// readShapes are the bufio.Reader sizes and Read sizes each stream is
// decoded with: the smallest bufio.Reader keeps the decoder on its careful
// path, Reads of 1 and 7 bytes cut the output anywhere, 0 is WriteTo.
var readShapes = []struct{ buf, read int }{
	{4096, 32 << 10},
	{64 << 10, 0}, // io.Copy: WriteTo
	{16, 7},
	{4096, 1},
	{1000, 7},
	{64 << 10, 1 << 20},
	{16, 0},
}

// agree checks that got is what want (klauspost's) says, or where they
// differ, what want.alt (compress/flate's) says: the same verdict; on
// success the same bytes and the same input left unread; on failure,
// outputs that agree as far as both go.
func agree(t *testing.T, name string, got, want result) {
	t.Helper()
	msg := differs(got, want)
	if msg == "" {
		return
	}
	if want.alt != nil && differs(got, want.alt()) == "" {
		return // klauspost is the odd one out
	}
	t.Fatalf("%s: %s", name, msg)
}

// differs says how got differs from want, or "" if it does not.
func differs(got, want result) string {
	switch {
	case want.err == nil && got.err != nil:
		return fmt.Sprintf("the reference accepts (%d bytes), we fail: %v", len(want.out), got.err)
	case want.err != nil && got.err == nil:
		return fmt.Sprintf("the reference fails (%v), we accept %d bytes", want.err, len(got.out))
	case want.err == nil:
		if !bytes.Equal(got.out, want.out) {
			return fmt.Sprintf("output differs: %d bytes, want %d (first difference at %d)", len(got.out), len(want.out), firstDiff(got.out, want.out))
		}
		if !bytes.Equal(got.rest, want.rest) {
			return fmt.Sprintf("left %d bytes unread, want %d", len(got.rest), len(want.rest))
		}
	default:
		n := min(len(got.out), len(want.out))
		if !bytes.Equal(got.out[:n], want.out[:n]) {
			return fmt.Sprintf("both fail, but the output differs at %d", firstDiff(got.out, want.out))
		}
	}
	return ""
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// check decodes data every way (readShapes), alone and followed by
// trailing bytes, against klauspost's verdict, and returns that verdict.
func check(t *testing.T, name string, data []byte) result {
	t.Helper()
	want := reference(data)
	for _, tail := range [][]byte{nil, []byte("\x00trailing bytes after the stream\xff")} {
		in := append(append([]byte(nil), data...), tail...)
		w := want
		if tail != nil {
			w = reference(in)
		}
		for _, s := range readShapes {
			if len(w.out) > 4<<20 && s.read < 4096 && s.read > 0 {
				continue // small reads of big outputs: slow, and the small cases cover it
			}
			agree(t, fmt.Sprintf("%s (bufio %d, reads of %d, %d trailing bytes)", name, s.buf, s.read, len(tail)), ours(in, s.buf, s.read), w)
		}
	}
	return want
}

// mustDecode checks data as check does and that it decodes to want.
func mustDecode(t *testing.T, name string, data, want []byte) {
	t.Helper()
	res := check(t, name, data)
	if res.err != nil {
		t.Fatalf("%s: klauspost fails: %v", name, res.err)
	}
	if !bytes.Equal(res.out, want) {
		t.Fatalf("%s: decodes to %d bytes, want %d", name, len(res.out), len(want))
	}
}

// mustFail checks data as check does and that we reject it, with a
// CorruptError whose reason holds reason.
func mustFail(t *testing.T, name string, data []byte, reason string) {
	t.Helper()
	check(t, name, data)
	got := ours(data, 4096, 32<<10)
	var ce *CorruptError
	if !errors.As(got.err, &ce) || !strings.Contains(ce.Reason, reason) {
		t.Fatalf("%s: error %v, want a CorruptError for %q", name, got.err, reason)
	}
	if !strings.HasPrefix(got.err.Error(), "inflate: corrupt stream at input offset ") || ce.Offset < 0 || ce.Offset > int64(len(data)) {
		t.Fatalf("%s: error %q", name, got.err)
	}
}

// goFlate compresses data with Go's compress/flate at level.
func goFlate(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := flate.NewWriter(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// gzipRaw compresses data with the gzip tool at a level and returns the
// raw DEFLATE stream inside the member.
func gzipRaw(t testing.TB, data []byte, level int) []byte {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "in"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	// From stdin: no FNAME, so that the header is 10 bytes.
	testutil.Bash(t, dir, fmt.Sprintf("gzip -c -%d < in > out", level))
	b, err := os.ReadFile(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < 18 || b[3] != 0 {
		t.Fatalf("gzip wrote a header with flags %#x", b[3])
	}
	return b[10 : len(b)-8]
}

// sampleFiles are real files: text from the documentation, and programs.
func sampleFiles(t testing.TB) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	docs, _ := filepath.Glob("/usr/share/doc/*/changelog.Debian.gz")
	for i, p := range docs {
		if i%40 != 0 || len(files) >= 3 {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		r, err := NewGzipReader(bufio.NewReader(bytes.NewReader(b)))
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		if files[p], err = io.ReadAll(r); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
	}
	for _, p := range []string{"/usr/bin/gzip", "/usr/bin/ls", "/bin/bash"} {
		if b, err := os.ReadFile(p); err == nil {
			files[p] = b
		}
		if len(files) >= 5 {
			break
		}
	}
	if len(files) == 0 {
		t.Fatal("no sample files")
	}
	return files
}

// TestRealStreams decodes what gzip and Go's compress/flate make of real
// files at every kind of level.
func TestRealStreams(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	for name, data := range sampleFiles(t) {
		for _, level := range []int{1, 6, 9} {
			mustDecode(t, fmt.Sprintf("gzip -%d %s", level, name), gzipRaw(t, data, level), data)
		}
		for _, level := range []int{flate.HuffmanOnly, 0, 1, 6, 9} {
			mustDecode(t, fmt.Sprintf("compress/flate level %d %s", level, name), goFlate(t, data, level), data)
		}
	}
}

// TestBigOutput decodes several MB, far more than the Reader's buffer
// holds, so that its history slides many times.
func TestBigOutput(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	var data []byte
	for _, b := range sampleFiles(t) {
		data = append(data, b...)
	}
	for len(data) < 6<<20 {
		data = append(data, data...)
	}
	mustDecode(t, "gzip -6 of several MB", gzipRaw(t, data, 6), data)
	mustDecode(t, "stored blocks of several MB", goFlate(t, data, 0), data)
}

// TestEdgeStreams decodes streams made to reach the edges of the format.
func TestEdgeStreams(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, 200<<10)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	text := bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog; "), 3000)

	// Distance 32768 and length 258, after exactly 32 KiB of history.
	hist := random[:32768]
	var lits []token
	for _, c := range hist {
		lits = append(lits, token{lit: c})
	}
	far := append(lits, token{length: 258, dist: 32768}, token{length: 3, dist: 32768}, token{length: 258, dist: 1})

	// Many blocks of every kind, each with a little data.
	var many []block
	var manyOut []byte
	for i := range 300 {
		switch i % 3 {
		case 0:
			s := text[i : i+i%7]
			many = append(many, block{kind: 0, stored: s})
			manyOut = append(manyOut, s...)
		case 1:
			tk := []token{{lit: byte(i)}, {lit: 'x'}}
			if len(manyOut) > 10 {
				tk = append(tk, token{length: 10, dist: 10})
			}
			many = append(many, block{kind: 1, tokens: tk})
			manyOut = expand(manyOut, tk)
		case 2:
			ll, dl := randomLens(rng, 286, 40, 15, endOfBlock), randomLens(rng, 30, 10, 15)
			tk := randomTokens(rng, ll, dl, len(manyOut), 20)
			many = append(many, block{kind: 2, litLens: ll, distLens: dl, tokens: tk})
			manyOut = expand(manyOut, tk)
		}
	}
	many = append(many, block{kind: 1, final: true})

	var flushed bytes.Buffer
	fw, _ := flate.NewWriter(&flushed, 6)
	for i := 0; i < len(text); i += 97 {
		fw.Write(text[i:min(i+97, len(text))])
		fw.Flush() // an empty stored block after each write
	}
	fw.Close()

	short := []token{{lit: 'a'}, {lit: 'b'}, {lit: 'c'}, {lit: 'd'}, {lit: 'e'}, {lit: 'f'}, {lit: 'g'},
		{length: 50, dist: 2}, {length: 50, dist: 3}, {length: 77, dist: 5}, {length: 258, dist: 7}, {length: 9, dist: 6}, {length: 30, dist: 4}}

	storedLen := 0
	cases := []struct {
		name string
		data []byte
		want []byte
	}{
		{"empty (compress/flate)", goFlate(t, nil, 6), nil},
		{"empty fixed block", encode(block{kind: 1, final: true}), nil},
		{"empty stored block", encode(block{kind: 0, final: true}), nil},
		{"empty stored block, LEN given", encode(block{kind: 0, final: true, storedLen: &storedLen}), nil},
		{"one byte", goFlate(t, []byte{'x'}, 6), []byte{'x'}},
		{"one byte, fixed", encode(block{kind: 1, final: true, tokens: []token{{lit: 0xff}}}), []byte{0xff}},
		{"stored 200 KiB (blocks of 64 KiB)", goFlate(t, random, 0), random},
		{"stored 64 KiB - 1 in one block", encode(block{kind: 0, final: true, stored: random[:65535]}), random[:65535]},
		{"long run of zeros (distance 1)", goFlate(t, make([]byte, 3<<20), 9), make([]byte, 3<<20)},
		{"long run, HuffmanOnly", goFlate(t, make([]byte, 100<<10), flate.HuffmanOnly), make([]byte, 100<<10)},
		{"text, level 9", goFlate(t, text, 9), text},
		{"distance 32768 and length 258", encode(block{kind: 1, final: true, tokens: far}), expand(nil, far)},
		{"distance 32768, dynamic", encode(block{kind: 2, final: true, tokens: far,
			litLens: randomLensWith(rng, 286, 286, 15), distLens: randomLensWith(rng, 30, 30, 15)}), expand(nil, far)},
		{"many small blocks", encode(many...), manyOut},
		{"sync-flushed every 97 bytes", flushed.Bytes(), text},
		{"non-final block then final", encode(block{kind: 1, tokens: []token{{lit: 'a'}}}, block{kind: 0, final: true, stored: []byte("bc")}), []byte("abc")},
		{"short distances 2-7", encode(block{kind: 1, final: true, tokens: short}), expand(nil, short)},
		{"a single 1-bit distance codeword", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 1, 256: 2, 257: 2}), distLens: lensOf(30, map[int]uint8{0: 1}),
			tokens: []token{{lit: 'a'}, {length: 3, dist: 1}, {lit: 'a'}}}), []byte("aaaaa")},
		{"no distance codes at all", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 1, 256: 1}), distLens: lensOf(1, nil),
			tokens: []token{{lit: 'a'}, {lit: 'a'}}}), []byte("aa")},
		{"only an end of block, 1-bit code", encode(block{kind: 2, final: true, litLens: lensOf(257, map[int]uint8{256: 1}), distLens: lensOf(1, nil)}), nil},
	}
	for _, c := range cases {
		mustDecode(t, c.name, c.data, c.want)
	}
}

// lensOf returns n code lengths, set as lens says.
func lensOf(n int, lens map[int]uint8) []uint8 {
	l := make([]uint8, n)
	for s, v := range lens {
		l[s] = v
	}
	return l
}

// randomLensWith is a random complete code over all n symbols.
func randomLensWith(rng *rand.Rand, n, used int, maxLen uint8) []uint8 {
	return randomLens(rng, n, used, maxLen)
}

// TestRandomCodes decodes random symbols under random complete codes,
// whose codewords reach 15 bits in both tables (so that subtables of every
// width are used), and checks the output against what the symbols mean.
func TestRandomCodes(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range 300 {
		var blocks []block
		var out []byte
		for b := range 1 + rng.IntN(4) {
			nlit := 257 + rng.IntN(30)
			ll := randomLens(rng, nlit, 2+rng.IntN(nlit-1), uint8(9+rng.IntN(7)), endOfBlock)
			ndist := 1 + rng.IntN(30)
			dl := randomLens(rng, ndist, 1+rng.IntN(ndist), uint8(5+rng.IntN(11)))
			tk := randomTokens(rng, ll, dl, len(out), rng.IntN(3000))
			blocks = append(blocks, block{kind: 2, litLens: ll, distLens: dl, tokens: tk, final: b == 3})
			out = expand(out, tk)
		}
		blocks[len(blocks)-1].final = true
		mustDecode(t, fmt.Sprintf("random codes %d", i), encode(blocks...), out)
	}
}

// TestCorruptStreams: streams that klauspost (and zlib) reject, each for
// one reason.
func TestCorruptStreams(t *testing.T) {
	lit := lensOf(286, map[int]uint8{'a': 2, 256: 2, 257: 2, 258: 2})
	dist := lensOf(30, map[int]uint8{0: 1, 1: 1})
	oneLit := []token{{lit: 'a'}}
	storedLen := 5
	cases := []struct {
		name, reason string
		data         []byte
	}{
		{"reserved block type", "reserved block type", encode(block{kind: 3, final: true})},
		{"stored NLEN wrong", "complement", encode(block{kind: 0, final: true, stored: []byte("hello"), storedLen: &storedLen, badNLEN: true})},
		{"distance before the start", "distance too far back", encode(block{kind: 1, final: true, tokens: []token{{lit: 'a'}, {length: 3, dist: 2}}})},
		{"distance 1 with nothing before", "distance too far back", encode(block{kind: 1, final: true, tokens: []token{{length: 3, dist: 1}}})},
		{"distance past 32 KiB of history", "distance too far back", encode(block{kind: 1, final: true, tokens: append(make([]token, 100), token{length: 3, dist: 101})})},
		{"fixed litlen 286", "invalid literal/length code", fixedWith(func(w *bitWriter) { w.code(0xc6, 8) })},
		{"fixed litlen 287", "invalid literal/length code", fixedWith(func(w *bitWriter) { w.code(0xc7, 8) })},
		{"fixed distance 30", "invalid distance code", fixedWith(func(w *bitWriter) { w.code(1, 7); w.code(30, 5) })},
		{"fixed distance 31", "invalid distance code", fixedWith(func(w *bitWriter) { w.code(1, 7); w.code(31, 5) })},
		{"287 litlen codes", "literal/length codes", encode(block{kind: 2, final: true, litLens: lit, distLens: dist, hlit: 287})},
		{"31 distance codes", "distance codes", encode(block{kind: 2, final: true, litLens: lit, distLens: dist, hdist: 31})},
		{"over-subscribed litlen code", "literal/length code lengths", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 1, 'b': 2, 'c': 2, 256: 2}), distLens: dist})},
		{"incomplete litlen code", "literal/length code lengths", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 2, 'b': 2, 256: 2}), distLens: dist})},
		{"single 2-bit litlen codeword", "literal/length code lengths", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{256: 2}), distLens: dist})},
		{"incomplete distance code", "distance code lengths", encode(block{kind: 2, final: true, litLens: lit, distLens: lensOf(30, map[int]uint8{0: 2, 1: 2, 2: 2})})},
		{"single 2-bit distance codeword", "distance code lengths", encode(block{kind: 2, final: true, litLens: lit, distLens: lensOf(30, map[int]uint8{3: 2})})},
		{"over-subscribed code length code", "code length code", encode(block{kind: 2, final: true, litLens: lit, distLens: dist, preLens: append([]uint8{1, 1, 1}, make([]uint8, 16)...)})},
		{"incomplete code length code", "code length code", encode(block{kind: 2, final: true, litLens: lit, distLens: dist, preLens: append([]uint8{2, 2, 2}, make([]uint8, 16)...)})},
		{"repeat with no previous length", "no previous length", encode(block{kind: 2, final: true, litLens: lit, distLens: dist, preSyms: []preSymbol{{sym: 16}}})},
		{"repeat past the last length", "past the last code", encode(block{kind: 2, final: true, litLens: lit, distLens: dist,
			preSyms: append(repeatSyms(0, 284), preSymbol{sym: 18, extra: 127})})},
		{"unused 1-bit distance codeword", "invalid distance code", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 1, 256: 2, 257: 2}), distLens: lensOf(30, map[int]uint8{0: 1}),
			tokDist: lensOf(30, map[int]uint8{0: 1, 1: 1}), tokens: []token{{lit: 'a'}, {length: 3, dist: 2}}})},
		{"a match with no distance code", "invalid distance code", encode(block{kind: 2, final: true, litLens: lensOf(286, map[int]uint8{'a': 1, 256: 2, 257: 2}), distLens: lensOf(1, nil),
			tokens: append(oneLit, token{length: 3, dist: 1})})},
		{"no litlen code at all", "invalid literal/length code", encode(block{kind: 2, final: true, litLens: lensOf(257, nil), distLens: lensOf(1, nil), noEOB: true})},
	}
	for _, c := range cases {
		mustFail(t, c.name, c.data, c.reason)
	}
}

// fixedWith is a final fixed block of a literal, then what write writes.
func fixedWith(write func(w *bitWriter)) []byte {
	var w bitWriter
	w.bits(1, 1)
	w.bits(1, 2)
	w.code(0x30+'a', 8)
	write(&w)
	w.code(0, 7)
	w.bits(0, 16)
	return w.bytes()
}

// repeatSyms writes n lengths of l one by one.
func repeatSyms(l, n int) []preSymbol {
	s := make([]preSymbol, n)
	for i := range s {
		s[i] = preSymbol{sym: l}
	}
	return s
}

// TestTruncated cuts small streams at every byte: each cut must fail with
// io.ErrUnexpectedEOF, as klauspost's does, and never panic.
func TestTruncated(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	text := []byte(strings.Repeat("Truncated streams must fail cleanly. ", 60))
	ll, dl := randomLens(rng, 286, 200, 15, endOfBlock), randomLens(rng, 30, 30, 15)
	streams := map[string][]byte{
		"level 6":  goFlate(t, text, 6),
		"level 0":  goFlate(t, text[:300], 0),
		"huffman":  goFlate(t, text, flate.HuffmanOnly),
		"fixed":    encode(block{kind: 1, tokens: []token{{lit: 'a'}, {length: 258, dist: 1}}}, block{kind: 1, final: true, tokens: []token{{lit: 'b'}}}),
		"dynamic":  encode(block{kind: 2, final: true, litLens: ll, distLens: dl, tokens: randomTokens(rng, ll, dl, 0, 400)}),
		"two kind": encode(block{kind: 0, stored: []byte("stored")}, block{kind: 2, final: true, litLens: ll, distLens: dl, tokens: randomTokens(rng, ll, dl, 6, 100)}),
	}
	for name, s := range streams {
		if res := reference(s); res.err != nil {
			t.Fatalf("%s: klauspost fails on the whole stream: %v", name, res.err)
		}
		for cut := range len(s) {
			in := s[:cut]
			if w := reference(in); !errors.Is(w.err, io.ErrUnexpectedEOF) {
				t.Fatalf("%s cut at %d: klauspost says %v", name, cut, w.err)
			}
			for _, sh := range readShapes {
				got := ours(in, sh.buf, sh.read)
				if got.err != io.ErrUnexpectedEOF {
					t.Fatalf("%s cut at %d (bufio %d, reads of %d): %v, want io.ErrUnexpectedEOF", name, cut, sh.buf, sh.read, got.err)
				}
			}
		}
	}
}

// TestBitFlips flips random bits of real streams: the verdict must be
// klauspost's, and what decodes, the same, with nothing panicking.
func TestBitFlips(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	text := []byte(strings.Repeat("Flipped bits decode to something or fail. 0123456789\n", 80))
	ll, dl := randomLens(rng, 286, 150, 15, endOfBlock), randomLens(rng, 30, 20, 15)
	streams := [][]byte{
		goFlate(t, text, 6),
		goFlate(t, text, 1),
		goFlate(t, text, flate.HuffmanOnly),
		goFlate(t, text[:200], 0),
		encode(block{kind: 2, final: true, litLens: ll, distLens: dl, tokens: randomTokens(rng, ll, dl, 0, 500)}),
	}
	n := 0
	for i := range 4000 {
		s := append([]byte(nil), streams[i%len(streams)]...)
		for range 1 + rng.IntN(3) {
			bit := rng.IntN(len(s) * 8)
			s[bit/8] ^= 1 << (bit % 8)
		}
		want := reference(s)
		if want.err != nil {
			n++
		}
		agree(t, fmt.Sprintf("flip %d", i), ours(s, 4096, 32<<10), want)
		agree(t, fmt.Sprintf("flip %d, careful path", i), ours(s, 16, 7), want)
	}
	t.Logf("%d of 4000 rejected", n)
}

// TestReset reuses one Reader: a stream must not see the one before it
// (its history, its tables, its end).
func TestReset(t *testing.T) {
	text := bytes.Repeat([]byte("history of the stream before "), 20000)
	r := NewReader(bufio.NewReader(bytes.NewReader(goFlate(t, text, 6))))
	if out, err := io.ReadAll(r); err != nil || !bytes.Equal(out, text) {
		t.Fatalf("first stream: %v", err)
	}
	// A match reaching back before its stream's start.
	bad := encode(block{kind: 1, final: true, tokens: []token{{length: 5, dist: 3}}})
	r.Reset(bufio.NewReader(bytes.NewReader(bad)))
	var ce *CorruptError
	if _, err := io.ReadAll(r); !errors.As(err, &ce) {
		t.Fatalf("after Reset, a distance before the start: %v", err)
	}
	if r.Close() == nil {
		t.Fatal("Close after a failure reports nothing")
	}
	ll := lensOf(286, map[int]uint8{'z': 1, 256: 1})
	good := encode(block{kind: 2, final: true, litLens: ll, distLens: lensOf(1, nil), tokens: []token{{lit: 'z'}}})
	r.Reset(bufio.NewReader(bytes.NewReader(good)))
	if out, err := io.ReadAll(r); err != nil || string(out) != "z" {
		t.Fatalf("after Reset: %q, %v", out, err)
	}
	if r.Close() != nil || r.InputOffset() != int64(len(good)) {
		t.Fatalf("Close %v, InputOffset %d of %d", r.Close(), r.InputOffset(), len(good))
	}
}

// TestConcatenated reads streams that follow each other in one
// bufio.Reader, each with its own Reader: each must stop at its end.
func TestConcatenated(t *testing.T) {
	var all []byte
	var parts [][]byte
	for i := range 20 {
		p := bytes.Repeat([]byte{byte('a' + i)}, i*1000)
		parts = append(parts, p)
		all = append(all, goFlate(t, p, i%10)...)
	}
	for _, size := range []int{16, 4096, 1 << 20} {
		br := bufio.NewReaderSize(bytes.NewReader(all), size)
		r := NewReader(br)
		for i, p := range parts {
			r.Reset(br)
			out, err := readAll(r, 333)
			if err != nil || !bytes.Equal(out, p) {
				t.Fatalf("bufio %d, stream %d: %d bytes, %v", size, i, len(out), err)
			}
		}
		if _, err := br.ReadByte(); err != io.EOF {
			t.Fatalf("bufio %d: bytes left after the last stream", size)
		}
	}
}

// errReader fails after its data.
type errReader struct {
	data []byte
	err  error
}

func (e *errReader) Read(p []byte) (int, error) {
	if len(e.data) == 0 {
		return 0, e.err
	}
	n := copy(p, e.data)
	e.data = e.data[n:]
	return n, nil
}

// TestReadError: an error of the underlying reader (not io.EOF) comes
// back as it is.
func TestReadError(t *testing.T) {
	s := goFlate(t, bytes.Repeat([]byte("abc"), 1000), 6)
	boom := errors.New("disk on fire")
	r := NewReader(bufio.NewReaderSize(&errReader{data: s[:len(s)/2], err: boom}, 16))
	if _, err := io.ReadAll(r); err != boom {
		t.Fatalf("got %v, want the reader's error", err)
	}
}

// TestWindowEdges decodes streams through bufio.Readers of every small
// size, over readers that return short reads, so that the input window
// ends at every place in the fast loop's refills and the careful path.
func TestWindowEdges(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	text := bytes.Repeat([]byte("window edges: the fast loop stops short of them. "), 400)
	ll, dl := randomLens(rng, 286, 286, 15, endOfBlock), randomLens(rng, 30, 30, 15)
	streams := map[string][]byte{
		"level 6":         goFlate(t, text, 6),
		"huffman only":    goFlate(t, text, flate.HuffmanOnly),
		"15-bit codes":    encode(block{kind: 2, final: true, litLens: ll, distLens: dl, tokens: randomTokens(rng, ll, dl, 0, 3000)}),
		"stored and more": encode(block{kind: 0, stored: text[:999]}, block{kind: 1, final: true, tokens: []token{{lit: 'x'}, {length: 258, dist: 999}}}),
	}
	for name, s := range streams {
		want := reference(s)
		if want.err != nil {
			t.Fatalf("%s: %v", name, want.err)
		}
		in := append(append([]byte(nil), s...), "tail"...)
		for size := 16; size < 400; size++ {
			for _, short := range []bool{false, true} {
				var src io.Reader = bytes.NewReader(in)
				if short {
					src = &shortReader{data: in, rng: rand.New(rand.NewPCG(uint64(size), 1))}
				}
				br := bufio.NewReaderSize(src, size)
				out, err := readAll(NewReader(br), 4096)
				rest, _ := io.ReadAll(br)
				agree(t, fmt.Sprintf("%s, bufio %d, short reads %v", name, size, short), result{out, err, rest, nil}, result{want.out, nil, []byte("tail"), nil})
			}
		}
	}
}

// shortReader returns 1 to 40 bytes a Read.
type shortReader struct {
	data []byte
	rng  *rand.Rand
}

func (s *shortReader) Read(p []byte) (int, error) {
	if len(s.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+s.rng.IntN(40))], s.data)
	s.data = s.data[n:]
	return n, nil
}

// TestStaleTable: the one verdict where we differ from klauspost (v1.20.4)
// and follow zlib and compress/flate. A code with no codeword at all is
// allowed (a block of literals needs no distance code), and using it is
// corrupt. klauspost's decoder keeps its previous table when it builds an
// empty code, and decodes with it: a match in a block without distance
// codes takes the previous block's, so that klauspost accepts the first
// stream below, which zlib ("invalid distance code", by hand with
// Python's zlib.decompress(s, -15)), compress/flate and we reject; and a
// block with no litlen codeword decodes, in klauspost, with the code
// length code's table.
func TestStaleTable(t *testing.T) {
	ll := lensOf(286, map[int]uint8{'a': 1, 256: 2, 257: 2})
	dl := lensOf(30, map[int]uint8{0: 1, 1: 1})
	cases := []struct {
		name, reason string
		data         []byte
	}{
		{"a match after a block's distance code, in a block with none", "invalid distance code", encode(
			block{kind: 2, litLens: ll, distLens: dl, tokens: []token{{lit: 'a'}, {length: 3, dist: 1}}},
			block{kind: 2, final: true, litLens: ll, distLens: lensOf(1, nil), tokDist: dl, tokens: []token{{length: 3, dist: 1}, {lit: 'a'}}})},
		{"symbols in a block with no litlen codeword", "invalid literal/length code",
			[]byte{0x24, 0x97, 0x3d, 0x4b, 0xc3, 0x60, 0x14, 0x46, 0x7f, 0xff, 0xff, 0xff, 0x58, 0x00, 0, 0, 0, 0, 0, 0, 0, 0}},
	}
	for _, c := range cases {
		k, g := reference(c.data), goReference(c.data)
		t.Logf("%s: klauspost: %d bytes, %v; compress/flate: %d bytes, %v", c.name, len(k.out), k.err, len(g.out), g.err)
		if g.err == nil {
			t.Fatalf("%s: compress/flate accepts it", c.name)
		}
		mustFail(t, c.name, c.data, c.reason)
	}
}
