// Package sparseimg packs a filesystem image into a short byte string that
// keeps only its non-uniform blocks, and reads such a string back as an
// io.ReaderAt. Fuzz seeds of filesystems whose metadata lies megabytes
// apart (btrfs chunks, the NTFS MFT in the middle of the volume) are made
// this way from real images, small enough to commit, and the fuzzer
// mutates the kept bytes where they lie.
//
// Format: the image size (8 bytes, little-endian), then segments of
// offset (8 bytes), length (4 bytes) and that many bytes. Bytes no segment
// covers read as zeros.
package sparseimg

import (
	"encoding/binary"
	"io"
)

// MaxSize bounds the size a packed string may claim (1 TiB): readers are
// virtual, but parsers size their caps by it.
const MaxSize = 1 << 40

// Reader is the image a packed string describes.
type Reader struct {
	size int64
	segs []segment
}

type segment struct {
	off  int64
	data []byte
}

// Decode reads a packed string. It never fails: a truncated segment is cut
// short, a size over MaxSize is clamped, and later segments overlay earlier
// ones.
func Decode(b []byte) *Reader {
	r := &Reader{}
	if len(b) < 8 {
		return r
	}
	r.size = int64(binary.LittleEndian.Uint64(b) & (MaxSize - 1))
	b = b[8:]
	for len(b) >= 12 {
		off := int64(binary.LittleEndian.Uint64(b) & (MaxSize - 1))
		n := int(binary.LittleEndian.Uint32(b[8:]))
		b = b[12:]
		n = min(n, len(b))
		r.segs = append(r.segs, segment{off: off, data: b[:n]})
		b = b[n:]
	}
	return r
}

// Size is the image size.
func (r *Reader) Size() int64 { return r.size }

// ReadAt reads the image: segment bytes where they lie, zeros elsewhere.
func (r *Reader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= r.size {
		return 0, io.EOF
	}
	n := len(p)
	if rem := r.size - off; int64(n) > rem {
		n = int(rem)
	}
	clear(p[:n])
	end := off + int64(n)
	for _, s := range r.segs {
		se := s.off + int64(len(s.data))
		if se <= off || s.off >= end {
			continue
		}
		a, z := max(off, s.off), min(end, se)
		copy(p[a-off:z-off], s.data[a-s.off:z-s.off])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// Encode packs img, keeping each block of blockSize bytes that is not one
// byte repeated; adjacent kept blocks share a segment. Uniform blocks (all
// zeros, or the 0xFF fill of a fresh NTFS $LogFile) read back as zeros.
func Encode(img []byte, blockSize int) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(img)))
	start := -1
	flush := func(end int) {
		if start >= 0 {
			out = binary.LittleEndian.AppendUint64(out, uint64(start))
			out = binary.LittleEndian.AppendUint32(out, uint32(end-start))
			out = append(out, img[start:end]...)
			start = -1
		}
	}
	for i := 0; i < len(img); i += blockSize {
		b := img[i:min(len(img), i+blockSize)]
		uniform := true
		for _, c := range b {
			if c != b[0] {
				uniform = false
				break
			}
		}
		if uniform {
			flush(i)
		} else if start < 0 {
			start = i
		}
	}
	flush(len(img))
	return out
}
