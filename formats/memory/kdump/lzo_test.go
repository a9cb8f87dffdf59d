package kdump

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/compress/zlib"

	"github.com/imgaudit/imgaudit/formats/internal/lzop"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// lzoPage is a page re-encoded in a dump (as LZO1X or snappy): its data
// offset in the new file and its size.
type lzoPage struct{ off, size int64 }

// reencodeLZO copies the normal-form zlib kdump src to dst with its zlib
// pages re-encoded as LZO1X (flag 2). This QEMU cannot write LZO dumps,
// so the LZO1X bytes come from the real lzop CLI: each page goes through
// `lzop` as its own page-sized file, and the one block of that lzop
// container is the raw LZO1X stream of the page (lzop.Reader.NextBlock
// exposes it). Pages lzop stores uncompressed stay zlib.
func reencodeLZO(t *testing.T, src, dst string) []lzoPage {
	t.Helper()
	testutil.RequireTool(t, "lzop")
	return reencodePages(t, src, dst, flagLZO, func(dir string, ats []int64, bs int64) map[int64][]byte {
		testutil.Run(t, "sh", "-c", `cd "$1" && for f in *; do lzop -q "$f"; done`, "sh", dir)
		out := map[int64][]byte{}
		for _, at := range ats {
			z := testutil.FileSnapshot(t, filepath.Join(dir, fmt.Sprintf("%08d.lzo", at)))
			r, err := lzop.NewReader(bytes.NewReader(z))
			if err != nil {
				t.Fatal(err)
			}
			blk, err := r.NextBlock()
			if err != nil {
				t.Fatal(err)
			}
			if blk.Size != int(bs) {
				t.Fatalf("lzop block of %d bytes for a %d-byte page", blk.Size, bs)
			}
			if !blk.Stored {
				out[at] = blk.Data
			}
		}
		return out
	})
}

// reencodePages copies the normal-form zlib kdump src to dst with its zlib
// pages re-encoded by compress and flagged flag. compress gets a
// directory holding each page as a file named after its descriptor's
// offset ("%08d") and returns the new bytes per descriptor offset; pages
// it leaves out stay zlib (a compressor that would store them). The new
// data is appended and the page descriptors are pointed at it.
func reencodePages(t *testing.T, src, dst string, flag uint32, compress func(dir string, ats []int64, bs int64) map[int64][]byte) []lzoPage {
	t.Helper()
	b := testutil.FileSnapshot(t, src)
	bo := binary.LittleEndian
	bs := int64(bo.Uint32(b[428:]))
	subHdr, bitmapBlocks := int64(bo.Uint32(b[432:])), int64(bo.Uint32(b[436:]))
	d, info, _, err := NewDisk(context.Background(), src, bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	if d.Size() == 0 || bs != info.BlockSize {
		t.Fatalf("block size %d (%d at 428)", info.BlockSize, bs)
	}
	descOff := (1 + subHdr + bitmapBlocks) * bs
	pages := t.TempDir()
	var zlibDesc []int64 // descriptor offsets of zlib pages
	for i := range int64(info.Pages) {
		at := descOff + i*24
		if bo.Uint32(b[at+12:]) != flagZlib {
			continue
		}
		off, sz := int64(bo.Uint64(b[at:])), int64(bo.Uint32(b[at+8:]))
		zr, err := zlib.NewReader(bytes.NewReader(b[off : off+sz]))
		if err != nil {
			t.Fatal(err)
		}
		page, err := io.ReadAll(zr)
		if err != nil || int64(len(page)) != bs {
			t.Fatalf("zlib page at %d: %d bytes, %v", off, len(page), err)
		}
		if err := os.WriteFile(filepath.Join(pages, fmt.Sprintf("%08d", at)), page, 0o644); err != nil {
			t.Fatal(err)
		}
		zlibDesc = append(zlibDesc, at)
	}
	if len(zlibDesc) == 0 {
		t.Fatal("no zlib pages to re-encode")
	}
	enc := compress(pages, zlibDesc, bs)
	var out []lzoPage
	for _, at := range zlibDesc {
		data, ok := enc[at]
		if !ok {
			continue
		}
		p := lzoPage{off: int64(len(b)), size: int64(len(data))}
		b = append(b, data...)
		bo.PutUint64(b[at:], uint64(p.off))
		bo.PutUint32(b[at+8:], uint32(p.size))
		bo.PutUint32(b[at+12:], flag)
		out = append(out, p)
	}
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}
