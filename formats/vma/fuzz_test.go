package vma

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/vma/vmatest"
)

func fixMD5(eh []byte) {
	clear(eh[24:40])
	s := md5.Sum(eh[:512])
	copy(eh[24:40], s[:])
}

// smallArchive is a few-KiB archive for fuzz seeds: one drive with two
// stored blocks, one config.
func smallArchive(tb testing.TB) []byte {
	d := make([]byte, 3*4096)
	copy(d, "seed block zero")
	copy(d[2*4096:], "seed block two")
	var buf bytes.Buffer
	err := vmatest.Write(&buf, vmatest.Archive{UUID: [16]byte{5}, CTime: time.Unix(1700000000, 0),
		Configs: []vmatest.ConfigFile{{Name: "qemu-server.conf", Data: []byte("name: seed\n")}},
		Devices: []vmatest.Device{{Name: "drive-scsi0", Data: d}}})
	if err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// Compact fuzz inputs: a VMA header is 12 KiB of mostly zeros and an
// extent carries up to 3.7 MiB of data, far too big for the fuzzer to
// mutate and minimize. The fuzz inputs hold only the meaningful fields and
// the helpers below expand them into real archive bytes (md5 fixed up, so
// the checks behind the checksum get exercised).
const (
	compactFixed   = 60 // magic .. header_size
	compactConfigs = 8  // config name/data pointers 0..3
	compactDevs    = 3  // dev_info 1..3
	compactBlob    = compactFixed + compactConfigs*4 + compactDevs*32
)

// expandHeader builds a full header from a compact one: the fixed fields,
// config pointers 0-3, dev_info 1-3, then the blob table. header_size is
// set to the real length.
func expandHeader(in []byte) []byte {
	in = append(bytes.Clone(in), make([]byte, max(0, compactBlob-len(in)))...)
	h := make([]byte, fixedHeaderSize, fixedHeaderSize+len(in)-compactBlob)
	copy(h, in[:compactFixed])
	copy(h[offConfigName:], in[compactFixed:compactFixed+16])
	copy(h[offConfigData:], in[compactFixed+16:compactFixed+32])
	copy(h[offDevInfo+32:], in[compactFixed+32:compactBlob])
	h = append(h, in[compactBlob:]...)
	binary.BigEndian.PutUint32(h[offHeaderSize:], uint32(len(h)))
	clear(h[offMD5 : offMD5+16])
	s := md5.Sum(h)
	copy(h[offMD5:], s[:])
	return h
}

// compactHeader is the inverse of expandHeader for a real header.
func compactHeader(h []byte, size int) []byte {
	out := bytes.Clone(h[:compactFixed])
	out = append(out, h[offConfigName:offConfigName+16]...)
	out = append(out, h[offConfigData:offConfigData+16]...)
	out = append(out, h[offDevInfo+32:offDevInfo+32+96]...)
	end := fixedHeaderSize + int(binary.BigEndian.Uint32(h[offBlobSize:]))
	return append(out, h[fixedHeaderSize:min(end, size)]...)
}

const maxFuzzBlocks = 96

// expandExtents turns up to 4 extent headers of 512 bytes into extents:
// each header's md5 is fixed and its block_count data blocks (at most
// maxFuzzBlocks) follow, filled
// with a pattern; a byte after a header, if any, cuts that many 512-byte
// units off the end of the archive.
func expandExtents(in []byte) []byte {
	var out []byte
	for k := 0; k < 4 && len(in) > 0; k++ {
		eh := make([]byte, extentHeaderSize)
		n := copy(eh, in)
		in = in[n:]
		fixMD5(eh)
		out = append(out, eh...)
		// Capped so that one exec stays small: a larger extent is cut short,
		// which is a path worth fuzzing too.
		blocks := min(int(binary.BigEndian.Uint16(eh[6:])), maxFuzzBlocks)
		data := bytes.Repeat([]byte{byte(k + 1), 0xa5, 0x5a, 0x11}, blocks*blockSize/4)
		out = append(out, data...)
	}
	if len(in) > 0 {
		out = out[:max(0, len(out)-int(in[0])*512)]
	}
	return out
}

// openBytes writes b to a file in dir and opens it, exercising every view.
func openBytes(t *testing.T, dir string, b []byte) (*model.Image, error) {
	p := filepath.Join(dir, "f.vma")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	im, err := Open(context.Background(), p, model.Options{})
	if err != nil {
		return nil, err
	}
	for _, v := range im.Views {
		buf := make([]byte, 70000)
		v.Disk.ReadAt(buf, 0)
		v.Disk.ReadAt(buf, max(0, v.Disk.Size()-100))
		for e, err := range v.Disk.Extents(context.Background()) {
			if err != nil {
				break
			}
			if e.Offset < 0 || e.Length <= 0 || e.End() > v.Disk.Size() {
				t.Fatalf("extent %+v outside disk of %d", e, v.Disk.Size())
			}
		}
	}
	return im, nil
}

// FuzzVMAHeader fuzzes the header parser (compact input expanded to a
// full header, and the raw input as is), then opens the archive made of
// that header and one valid extent.
func FuzzVMAHeader(f *testing.F) {
	arch := smallArchive(f)
	h, err := ParseHeader(arch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(compactHeader(arch, h.Size))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 64<<10 {
			return
		}
		ParseHeader(in)
		full := expandHeader(in)
		if h, err := ParseHeader(full); err == nil {
			if h.Size != len(full) || len(h.Devices) == 0 || len(h.Devices) > 255 {
				t.Fatalf("bad header accepted: size %d, %d devices", h.Size, len(h.Devices))
			}
		}
		if im, err := openBytes(t, dir, append(full, arch[h.Size:]...)); err == nil {
			im.Close()
		}
	})
}

// FuzzVMAExtents fuzzes extent headers (expanded by expandExtents) behind
// a fixed valid archive header.
func FuzzVMAExtents(f *testing.F) {
	arch := smallArchive(f)
	h, err := ParseHeader(arch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(bytes.Clone(arch[h.Size : h.Size+512]))
	f.Add(append(bytes.Clone(arch[h.Size:h.Size+512]), 3))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 4*512+1 {
			return
		}
		ext := expandExtents(in)
		if len(ext) >= 512 {
			if eh, err := ParseExtentHeader(ext, h.UUID); err == nil {
				ix := newIndex(h)
				if ix.check(eh) == nil {
					ix.commit(eh, 0, 0, int64(len(ext)-512))
					ix.finish()
				}
			}
		}
		im, err := openBytes(t, dir, append(bytes.Clone(arch[:h.Size]), ext...))
		if err != nil {
			t.Fatalf("valid header refused: %v", err)
		}
		im.Close()
	})
}

// TestCompactSeeds proves the compact fuzz encodings expand back into the
// archive they came from, so that the seeds start from valid input.
func TestCompactSeeds(t *testing.T) {
	arch := smallArchive(t)
	h, err := ParseHeader(arch)
	if err != nil {
		t.Fatal(err)
	}
	h2, err := ParseHeader(expandHeader(compactHeader(arch, h.Size)))
	if err != nil {
		t.Fatal(err)
	}
	if len(h2.Devices) != 1 || h2.Devices[0] != h.Devices[0] || len(h2.Configs) != 1 || string(h2.Configs[0].Data) != "name: seed\n" {
		t.Errorf("expanded header %+v", h2)
	}
	if got := expandExtents(arch[h.Size : h.Size+512]); len(got) != len(arch)-h.Size || !bytes.Equal(got[:512], arch[h.Size:h.Size+512]) {
		t.Errorf("expanded extent: %d bytes, want %d", len(got), len(arch)-h.Size)
	}
}
