package lzop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/adler32"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	lzo "github.com/anchore/go-lzo"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// marker is planted in the inputs; no error may quote it.
const marker = "imgaudit-lzop-marker password=hunter2"

// inputs returns named test inputs: empty, text, incompressible, zeros
// and a mix that spans several 256 KiB lzop blocks, stored and not.
func inputs() map[string][]byte {
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	var text bytes.Buffer
	for i := 0; text.Len() < 100<<10; i++ {
		text.WriteString("line ")
		text.WriteString(strings.Repeat("abc", i%17))
		text.WriteString(marker + "\n")
	}
	var mixed bytes.Buffer
	mixed.Write(random(300 << 10))
	mixed.Write(make([]byte, 200<<10))
	mixed.Write(text.Bytes())
	mixed.WriteString(marker)
	mixed.Write(random(123457))
	return map[string][]byte{
		"empty":  {},
		"text":   text.Bytes(),
		"random": random(300 << 10),
		"zeros":  make([]byte, 1<<20),
		"mixed":  mixed.Bytes(),
	}
}

// compress runs the real lzop CLI on data and returns the .lzo bytes;
// stdin compresses from a pipe, as libvirt does.
func compress(t testing.TB, dir, name string, data []byte, stdin bool, args ...string) []byte {
	t.Helper()
	testutil.RequireTool(t, "lzop")
	in := filepath.Join(dir, name)
	if err := os.WriteFile(in, data, 0o644); err != nil {
		t.Fatal(err)
	}
	out := in + ".lzo"
	if stdin {
		testutil.Run(t, "sh", "-c", "lzop "+strings.Join(args, " ")+" -c < \"$1\" > \"$2\"", "sh", in, out)
	} else {
		testutil.Run(t, "lzop", append(append([]string{"-q", "-f"}, args...), "-o", out, in)...)
	}
	return testutil.FileSnapshot(t, out)
}

// TestReadRealFiles decompresses files made by the real lzop CLI with
// each method and checksum option and compares with the input.
func TestReadRealFiles(t *testing.T) {
	dir := t.TempDir()
	for _, opt := range []struct {
		name  string
		stdin bool
		args  []string
		flags uint32 // must be set in the header
	}{
		{"default", false, nil, FlagAdler32D},
		{"fast", false, []string{"-1"}, FlagAdler32D},
		{"best", false, []string{"-9"}, FlagAdler32D},
		{"crc32", false, []string{"--crc32"}, FlagCRC32D | FlagHeaderCRC32},
		{"no-checksum", false, []string{"-F"}, 0},
		{"stdin", true, nil, FlagAdler32D | FlagStdin},
	} {
		for name, data := range inputs() {
			t.Run(opt.name+"/"+name, func(t *testing.T) {
				if opt.name == "best" && len(data) > 300<<10 {
					t.Skip("LZO1X-999 is slow; the other inputs cover it")
				}
				z := compress(t, dir, opt.name+"-"+name, data, opt.stdin, opt.args...)
				if !IsLZOP(z) {
					t.Fatal("IsLZOP rejects lzop output")
				}
				r, err := NewReader(bytes.NewReader(z))
				if err != nil {
					t.Fatal(err)
				}
				h := r.Header()
				if h.Flags&opt.flags != opt.flags {
					t.Errorf("flags 0x%x, want 0x%x set", h.Flags, opt.flags)
				}
				if h.Method < MethodLZO1X1 || h.Method > MethodLZO1X999 {
					t.Errorf("method %d", h.Method)
				}
				if !opt.stdin && h.Name != opt.name+"-"+name {
					t.Errorf("name %q", h.Name)
				}
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("decompressed %d bytes differ from the %d input bytes", len(got), len(data))
				}
				if r.Offset() != int64(len(z)) {
					t.Errorf("consumed %d of %d bytes", r.Offset(), len(z))
				}
			})
		}
	}
}

// TestConcatenated reads two lzop files written back to back as one
// stream, as lzop -d does.
func TestConcatenated(t *testing.T) {
	dir := t.TempDir()
	in := inputs()
	a := compress(t, dir, "a", in["text"], false)
	b := compress(t, dir, "b", in["random"], false, "--crc32")
	r, err := NewReader(io.MultiReader(bytes.NewReader(a), bytes.NewReader(b)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, append(bytes.Clone(in["text"]), in["random"]...)) {
		t.Fatal("concatenated members do not read back")
	}
}

// TestNextBlock checks that the raw blocks decode to consecutive pieces
// of the input, with lzop's 256 KiB block size.
func TestNextBlock(t *testing.T) {
	data := inputs()["mixed"]
	z := compress(t, t.TempDir(), "m", data, false)
	r, err := NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	stored := 0
	for {
		b, err := r.NextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if b.Size > 256<<10 {
			t.Errorf("block of %d bytes", b.Size)
		}
		if b.Stored {
			stored++
			got = append(got, b.Data...)
			continue
		}
		out := make([]byte, b.Size)
		if n, err := lzo.Decompress(b.Data, out); err != nil || n != b.Size {
			t.Fatalf("block: %d, %v", n, err)
		}
		got = append(got, out...)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("blocks do not make up the input")
	}
	if stored == 0 {
		t.Error("no stored block for incompressible data")
	}
}

// headerEnd returns the offset of the first block of a file with one
// member.
func headerEnd(t *testing.T, z []byte) int {
	r, err := NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	return int(r.Offset())
}

// fixHeaderSum recomputes the Adler-32 header checksum ending at end.
func fixHeaderSum(z []byte, end int) []byte {
	binary.BigEndian.PutUint32(z[end-4:], adler32.Checksum(z[9:end-4]))
	return z
}

// rewrite rebuilds a real lzop file with both Adler-32 and CRC-32 of the
// uncompressed and compressed data (F_ADLER32_C and F_CRC32_C are in
// lzop.h, but lzop 1.04's CLI has no option to set them), in lzop.c's
// order: adler32 then crc32 of the uncompressed data, then those of the
// compressed data, the latter only for compressed blocks.
func rewrite(t *testing.T, z, data []byte) []byte {
	end := headerEnd(t, z)
	const flags = FlagAdler32D | FlagAdler32C | FlagCRC32D | FlagCRC32C
	hdr := bytes.Clone(z[:end])
	flagAt := 9 + 2 + 2 + 2 + 1 + 1
	binary.BigEndian.PutUint32(hdr[flagAt:], binary.BigEndian.Uint32(hdr[flagAt:])|flags)
	out := fixHeaderSum(hdr, end)
	r, _ := NewReader(bytes.NewReader(z))
	pos := 0
	be := binary.BigEndian
	for {
		b, err := r.NextBlock()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		plain := data[pos : pos+b.Size]
		pos += b.Size
		out = be.AppendUint32(out, uint32(b.Size))
		out = be.AppendUint32(out, uint32(len(b.Data)))
		out = be.AppendUint32(out, adler32.Checksum(plain))
		out = be.AppendUint32(out, crc32.ChecksumIEEE(plain))
		if !b.Stored {
			out = be.AppendUint32(out, adler32.Checksum(b.Data))
			out = be.AppendUint32(out, crc32.ChecksumIEEE(b.Data))
		}
		out = append(out, b.Data...)
	}
	return be.AppendUint32(out, 0)
}

func TestAllChecksums(t *testing.T) {
	data := inputs()["mixed"]
	z := rewrite(t, compress(t, t.TempDir(), "m", data, false), data)
	r, err := NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back: %v", err)
	}
	// The compressed-data CRC-32 of the first (stored: 300 KiB of random
	// data) block is absent; the second block is compressed (zeros).
	end := headerEnd(t, z)
	first := int(binary.BigEndian.Uint32(z[end+4:]))
	second := end + 8 + 8 + first
	bad := bytes.Clone(z)
	bad[second+8+12] ^= 1 // compressed-data crc32
	if _, err := io.ReadAll(mustReader(t, bad)); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "compressed block") {
		t.Errorf("bad compressed crc32: %v", err)
	}
}

func mustReader(t *testing.T, z []byte) *Reader {
	r, err := NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestErrors corrupts real lzop files; every error must be the right
// kind, name an offset and quote no data.
func TestErrors(t *testing.T) {
	dir := t.TempDir()
	text := inputs()["text"]
	good := compress(t, dir, "t", text, false)
	filtered := compress(t, dir, "f", text, false, "--filter=1")
	end := headerEnd(t, good)
	be := binary.BigEndian
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		data []byte
		want error
	}{
		{"not lzop", []byte("hello, not an lzop file at all"), ErrCorrupt},
		{"empty", nil, io.ErrUnexpectedEOF},
		{"header checksum", mod(func(b []byte) []byte { b[end-5] ^= 1; return b }), ErrCorrupt},
		{"filter", filtered, model.ErrUnsupported},
		{"method", mod(func(b []byte) []byte { b[15] = 0x1a; return fixHeaderSum(b, end) }), model.ErrUnsupported},
		{"level", mod(func(b []byte) []byte { b[16] = 10; return fixHeaderSum(b, end) }), ErrCorrupt},
		{"reserved flag", mod(func(b []byte) []byte { b[18] |= 0x01; return fixHeaderSum(b, end) }), ErrCorrupt},
		{"version needed", mod(func(b []byte) []byte { be.PutUint16(b[13:], 0x2000); return fixHeaderSum(b, end) }), model.ErrUnsupported},
		{"old version", mod(func(b []byte) []byte { be.PutUint16(b[9:], 0x0800); return b }), ErrCorrupt},
		{"truncated header", good[:end-2], io.ErrUnexpectedEOF},
		{"truncated data", good[:len(good)/2], io.ErrUnexpectedEOF},
		{"no end marker", good[:len(good)-4], io.ErrUnexpectedEOF},
		{"block data", mod(func(b []byte) []byte { b[end+12+100] ^= 0x55; return b }), ErrCorrupt},
		{"block checksum", mod(func(b []byte) []byte { b[end+8] ^= 1; return b }), ErrCorrupt},
		{"block too big", mod(func(b []byte) []byte { be.PutUint32(b[end:], MaxBlockSize+1); return b }), ErrCorrupt},
		{"split file", mod(func(b []byte) []byte { be.PutUint32(b[end:], 0xffffffff); return b }), ErrCorrupt},
		{"ratio", mod(func(b []byte) []byte { be.PutUint32(b[end:], MaxBlockSize); return b }), ErrCorrupt},
		{"compressed larger", mod(func(b []byte) []byte { be.PutUint32(b[end+4:], be.Uint32(b[end:])+1); return b }), ErrCorrupt},
		{"zero compressed", mod(func(b []byte) []byte { be.PutUint32(b[end+4:], 0); return b }), ErrCorrupt},
		{"size mismatch", mod(func(b []byte) []byte { be.PutUint32(b[end:], be.Uint32(b[end:])-1); return b }), ErrCorrupt},
		{"trailing garbage", append(bytes.Clone(good), "junk after the end"...), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			r, err := NewReader(bytes.NewReader(tc.data))
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), "offset ") {
				t.Errorf("error %q names no offset", err)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "abcabc") {
				t.Errorf("error quotes data: %q", err)
			}
		})
	}
}
