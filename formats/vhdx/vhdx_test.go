package vhdx

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func makeImage(t testing.TB, dir, name, opts string, size int64, offs ...int64) string {
	t.Helper()
	return blockmaptest.MakeImage(t, dir, name, "vhdx", "vhdx", opts, size, offs...)
}

func TestFidelity(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	cases := []struct {
		name, opts string
		size       int64
	}{
		{"dynamic", "subformat=dynamic", 6 << 20},
		{"dynamic-1m-blocks", "subformat=dynamic,block_size=1M", 6 << 20},
		{"dynamic-no-zero-state", "subformat=dynamic,block_state_zero=off,block_size=2M", 6 << 20},
		{"fixed", "subformat=fixed,block_size=1M", 6 << 20},
		{"odd-size", "subformat=dynamic,block_size=1M", 5<<20 + 3*512},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			img := makeImage(t, t.TempDir(), tc.name, tc.opts, tc.size)
			blockmaptest.CheckFidelity(t, Open, Probe, img, "vhdx", "")
		})
	}
}

// parsed returns the package's own parse of a fixture, used only to find
// where to patch it.
func parsed(t testing.TB, path string) *image {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, _ := f.Stat()
	x := &image{f: f, path: path, size: st.Size()}
	if err := x.parse(); err != nil {
		t.Fatal(err)
	}
	return x
}

// setHeaderField rewrites bytes of both headers and fixes their CRC-32C.
func setHeaderField(b []byte, off int, v []byte) {
	for _, at := range []int{header1Off, header2Off} {
		h := b[at : at+headerSize]
		copy(h[off:], v)
		binary.LittleEndian.PutUint32(h[4:], 0)
		binary.LittleEndian.PutUint32(h[4:], crc32.Checksum(h, castagnoli))
	}
}

func TestUnreferenced(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "unref", "subformat=dynamic,block_size=1M", 6<<20)
	x := parsed(t, img)
	b := testutil.FileSnapshot(t, img)
	// Block 4 holds the marker at 4 MiB + 4096; mark it unmapped but keep
	// its file offset, as Hyper-V does after a trim.
	i := int64(4)
	e := binary.LittleEndian.Uint64(b[x.bat.off+8*i:])
	if e&7 != payloadFull {
		t.Fatalf("block 4 state %d", e&7)
	}
	hostOff := int64(e&batOffsetMask) + 4096
	binary.LittleEndian.PutUint64(b[x.bat.off+8*i:], e&batOffsetMask|payloadUnmapped)
	if err := os.WriteFile(img, b, 0o644); err != nil {
		t.Fatal(err)
	}
	blockmaptest.CheckUnreferenced(t, Open, img, "vhdx", hostOff)
}

// logEntry builds one log entry header sector (spec 2.3.1.1) with no
// descriptors, its CRC-32C over the whole entry.
func logEntry(logGUID []byte, fileSize uint64) []byte {
	e := make([]byte, 4096)
	copy(e, "loge")
	binary.LittleEndian.PutUint32(e[8:], 4096) // entry length
	binary.LittleEndian.PutUint64(e[16:], 1)   // sequence number
	copy(e[32:48], logGUID)
	binary.LittleEndian.PutUint64(e[48:], fileSize) // flushed file offset
	binary.LittleEndian.PutUint64(e[56:], fileSize) // last file offset
	binary.LittleEndian.PutUint32(e[4:], crc32.Checksum(e, castagnoli))
	return e
}

func TestLog(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	src := makeImage(t, dir, "log", "subformat=dynamic,block_size=1M", 6<<20)
	orig := testutil.FileSnapshot(t, src)
	x := parsed(t, src)
	logGUID := guid("11223344-5566-7788-99AA-BBCCDDEEFF00")

	t.Run("guid-without-entries", func(t *testing.T) {
		// A log GUID with an empty log: nothing to replay, QEMU opens it.
		p := filepath.Join(dir, "empty-log.vhdx")
		b := bytes.Clone(orig)
		setHeaderField(b, 48, logGUID[:])
		os.WriteFile(p, b, 0o644)
		want := blockmaptest.QemuRaw(t, p, "vhdx")
		im, err := Open(context.Background(), p, model.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer im.Close()
		cur, _ := im.Current()
		blockmaptest.CheckDisk(t, cur.Disk, want)
	})
	t.Run("dirty", func(t *testing.T) {
		p := filepath.Join(dir, "dirty.vhdx")
		b := bytes.Clone(orig)
		setHeaderField(b, 48, logGUID[:])
		copy(b[x.hdr.logOffset:], logEntry(logGUID[:], uint64(len(b))))
		os.WriteFile(p, b, 0o644)
		before := blockmaptest.Sum(t, p)
		// QEMU refuses a read-only open of this file too.
		out, qerr := exec.Command("qemu-img", "convert", "-f", "vhdx", "-O", "raw", p, filepath.Join(dir, "dirty.raw")).CombinedOutput()
		if qerr == nil || !strings.Contains(string(out), "log") {
			t.Logf("qemu-img accepted the log entry (%v): %s", qerr, out)
		}
		im, err := Open(context.Background(), p, model.Options{})
		if err == nil {
			im.Close()
			t.Fatal("opened an image whose log needs replay")
		}
		var fe *model.FormatError
		if !errors.As(err, &fe) || fe.File != p || fe.Offset != int64(x.hdr.logOffset) || !errors.Is(err, model.ErrUnsupported) || !strings.Contains(err.Error(), "log") {
			t.Fatalf("error %v does not name the file, the log and its offset", err)
		}
		if blockmaptest.Sum(t, p) != before {
			t.Fatal("image changed")
		}
	})
}

func utf16le(s string) []byte {
	var b []byte
	for _, c := range utf16.Encode([]rune(s)) {
		b = binary.LittleEndian.AppendUint16(b, c)
	}
	return b
}

// makeDifferencing turns a qemu-img dynamic VHDX (1 MiB blocks) into a
// differencing image of base: it sets HasParent in the file parameters
// (spec 2.6.2.1), adds a parent locator item with parent_linkage and
// relative_path (2.6.2.6), lays the BAT out with one sector bitmap entry
// per chunk (2.5), turns ZERO blocks into NOT_PRESENT ones (read from the
// parent) and makes block 0 PARTIALLY_PRESENT with a 1 MiB sector bitmap
// block appended to the file, where clearSectors read from the parent
// (2.5.1.1, 2.5.1.2).
func makeDifferencing(t *testing.T, child, base string, clearSectors []int) {
	t.Helper()
	x := parsed(t, child)
	bx := parsed(t, base)
	b := testutil.FileSnapshot(t, child)
	b = append(b, make([]byte, (mib-len(b)%mib)%mib)...)
	sbOff := int64(len(b))
	b = append(b, make([]byte, mib)...)

	// File parameters: HasParent.
	mt := b[x.meta.off : x.meta.off+metaTableSize]
	count := int(binary.LittleEndian.Uint16(mt[10:]))
	for i := range count {
		e := mt[32+32*i:]
		if bytes.Equal(e[:16], metaFileParams[:]) {
			item := x.meta.off + int64(binary.LittleEndian.Uint32(e[16:]))
			b[item+4] |= 2
		}
	}
	// Parent locator item at +512 KiB in the metadata region.
	rel, err := filepath.Rel(filepath.Dir(child), base)
	if err != nil {
		t.Fatal(err)
	}
	keys := [][2]string{{"parent_linkage", "{" + bx.hdr.dataWriteGUID.String() + "}"}, {"relative_path", `.\` + strings.ReplaceAll(rel, "/", `\`)}}
	item := make([]byte, 20+12*len(keys))
	copy(item, parentLocatorVHD[:])
	binary.LittleEndian.PutUint16(item[18:], uint16(len(keys)))
	for i, kv := range keys {
		k, v := utf16le(kv[0]), utf16le(kv[1])
		e := item[20+12*i:]
		binary.LittleEndian.PutUint32(e, uint32(len(item)))
		binary.LittleEndian.PutUint16(e[8:], uint16(len(k)))
		item = append(item, k...)
		e = item[20+12*i:]
		binary.LittleEndian.PutUint32(e[4:], uint32(len(item)))
		binary.LittleEndian.PutUint16(e[10:], uint16(len(v)))
		item = append(item, v...)
	}
	const itemOff = 512 << 10
	copy(b[x.meta.off+itemOff:], item)
	ne := mt[32+32*count:]
	copy(ne, metaParentLoc[:])
	binary.LittleEndian.PutUint32(ne[16:], itemOff)
	binary.LittleEndian.PutUint32(ne[20:], uint32(len(item)))
	binary.LittleEndian.PutUint32(ne[24:], 2|4) // virtual disk, required
	binary.LittleEndian.PutUint16(mt[10:], uint16(count+1))

	// BAT: payload entries keep their place (i + i/chunk_ratio); the
	// chunk's sector bitmap entry follows them.
	bat := b[x.bat.off : x.bat.off+x.bat.length]
	dataBlocks := (x.virtSize + x.blockSize - 1) / x.blockSize
	for blk := range dataBlocks {
		i := blk + blk/x.chunkRatio
		e := binary.LittleEndian.Uint64(bat[8*i:])
		switch {
		case blk == 0 && e&7 == payloadFull:
			binary.LittleEndian.PutUint64(bat[8*i:], e&batOffsetMask|payloadPartial)
		case e&7 == payloadZero:
			binary.LittleEndian.PutUint64(bat[8*i:], payloadNotPresent)
		}
	}
	binary.LittleEndian.PutUint64(bat[8*x.chunkRatio:], uint64(sbOff)|sbPresent)
	// Block 0's bitmap: every sector present but the cleared ones.
	bm := b[sbOff : sbOff+x.blockSize/512/8]
	for i := range bm {
		bm[i] = 0xff
	}
	for _, s := range clearSectors {
		bm[s/8] &^= 1 << (s % 8)
	}
	if err := os.WriteFile(child, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestDifferencing(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	const size = 6 << 20
	base := makeImage(t, dir, "base", "subformat=dynamic,block_size=1M", size)
	child := makeImage(t, dir, "child", "subformat=dynamic,block_size=1M", size, 512*8, 4<<20+8192)
	childData := blockmaptest.QemuRaw(t, child, "vhdx")
	// qemu-img map reports every VHDX block as data, so the child's own
	// BAT says which blocks it stores.
	cx := parsed(t, child)
	var full []int64
	for blk := range cx.virtSize / cx.blockSize {
		if e := cx.entry(blk + blk/cx.chunkRatio); e&7 == payloadFull {
			full = append(full, blk)
		}
	}
	if len(full) != 2 {
		t.Fatalf("child has %d full blocks, want 2", len(full))
	}
	baseData := blockmaptest.QemuRaw(t, base, "vhdx")
	cleared := []int{8, 9, 10, 11}
	makeDifferencing(t, child, base, cleared)

	want := bytes.Clone(baseData)
	for _, blk := range full {
		lo, hi := blk*mib, (blk+1)*mib
		copy(want[lo:hi], childData[lo:hi])
	}
	for _, s := range cleared {
		copy(want[s*512:(s+1)*512], baseData[s*512:(s+1)*512])
	}
	blockmaptest.CheckDifferencing(t, Open, model.Options{Open: New}, child, base, "child.vhdx#backing:base.vhdx", want, baseData)

	// The partial block's chunk loses its sector bitmap: nothing says
	// which sectors are the child's, and the block is read whole (read
	// as the parent's, its own bytes were read by no view).
	b := testutil.FileSnapshot(t, child)
	binary.LittleEndian.PutUint64(b[cx.bat.off+8*cx.chunkRatio:], 0)
	if err := os.WriteFile(child, b, 0o644); err != nil {
		t.Fatal(err)
	}
	copy(want[:mib], childData[:mib])
	blockmaptest.CheckDifferencing(t, Open, model.Options{Open: New}, child, base, "child.vhdx#backing:base.vhdx", want, baseData)
}

func TestHostile(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	img := makeImage(t, dir, "h", "subformat=dynamic,block_size=1M", 6<<20)
	orig := testutil.FileSnapshot(t, img)
	x := parsed(t, img)
	fixRegions := func(b []byte) {
		for _, at := range []int{regionTable1Off, regionTable2Off} {
			r := b[at : at+regionTableSize]
			binary.LittleEndian.PutUint32(r[4:], 0)
			binary.LittleEndian.PutUint32(r[4:], crc32.Checksum(r, castagnoli))
		}
	}
	metaItem := func(b []byte, id GUID) int64 {
		mt := b[x.meta.off:]
		for i := range int(binary.LittleEndian.Uint16(mt[10:])) {
			if bytes.Equal(mt[32+32*i:32+32*i+16], id[:]) {
				return x.meta.off + int64(binary.LittleEndian.Uint32(mt[32+32*i+16:]))
			}
		}
		t.Fatal("item not found")
		return 0
	}
	cases := []struct {
		name   string
		mutate func([]byte) []byte
		want   string
	}{
		{"both-headers-bad", func(b []byte) []byte { b[header1Off+100] ^= 1; b[header2Off+100] ^= 1; return b }, "no valid header"},
		{"region-table-bad", func(b []byte) []byte { b[regionTable1Off+100] ^= 1; b[regionTable2Off+100] ^= 1; return b }, "checksum"},
		{"region-count", func(b []byte) []byte {
			for _, at := range []int{regionTable1Off, regionTable2Off} {
				binary.LittleEndian.PutUint32(b[at+8:], 100000)
			}
			fixRegions(b)
			return b
		}, "region table entries"},
		{"region-past-eof", func(b []byte) []byte {
			for _, at := range []int{regionTable1Off, regionTable2Off} {
				binary.LittleEndian.PutUint64(b[at+16+16:], 1<<50)
			}
			fixRegions(b)
			return b
		}, "outside the file"},
		{"block-size-small", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[metaItem(b, metaFileParams):], 4096)
			return b
		}, "block size"},
		{"block-size-huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[metaItem(b, metaFileParams):], 1<<30)
			return b
		}, "block size"},
		{"virtual-size-huge", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[metaItem(b, metaVirtualSize):], 1<<60)
			return b
		}, "64 TiB"},
		{"bat-too-small", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[metaItem(b, metaVirtualSize):], 60<<40)
			return b
		}, "too small"},
		{"sector-size", func(b []byte) []byte {
			binary.LittleEndian.PutUint32(b[metaItem(b, metaLogicalSS):], 1000)
			return b
		}, "sector size"},
		{"bat-entry-past-eof", func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[x.bat.off:], 1<<50|payloadFull)
			return b
		}, "outside the file"},
		{"metadata-item-outside", func(b []byte) []byte {
			mt := b[x.meta.off:]
			binary.LittleEndian.PutUint32(mt[32+16:], 0xfffffff0)
			return b
		}, "outside the metadata region"},
		{"truncated", func(b []byte) []byte { return b[:300<<10] }, "smaller than"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			blockmaptest.CheckRefused(t, Open, filepath.Join(dir, tc.name+".vhdx"), tc.mutate(bytes.Clone(orig)), tc.want)
		})
	}
}

// TestParentOutsideRoots: a differencing image whose parent (found by its
// relative_path, with the right DataWriteGuid) lies outside the allowed
// root is refused, with the parent locator's offset, until the parent's
// directory is a root.
func TestParentOutsideRoots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	const size = 6 << 20
	base := makeImage(t, outside, "base", "subformat=dynamic,block_size=1M", size)
	child := makeImage(t, root, "child", "subformat=dynamic,block_size=1M", size)
	locAt := parsed(t, child).meta.off + 512<<10
	makeDifferencing(t, child, base, nil)
	blockmaptest.CheckParentOutsideRoots(t, Open, New, child, base, root, outside, locAt)
}
