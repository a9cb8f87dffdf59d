package decode

import (
	"bytes"
	"encoding/binary"
)

// SniffLen is how many leading bytes Sniff wants to see (a tar header).
const SniffLen = 512

// Magic numbers.
var (
	magicGzip      = []byte{0x1f, 0x8b, 0x08}
	magicXz        = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}
	magicZstd      = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicLZ4       = []byte{0x04, 0x22, 0x4d, 0x18}
	magicLZ4Legacy = []byte{0x02, 0x21, 0x4c, 0x18}
	magicZip       = []byte{'P', 'K', 3, 4}
	magicAr        = []byte("!<arch>\n")
	magicSquashfs  = []byte("hsqs")
)

// Sniff names the codec or archive whose magic head starts with, or "".
// head should hold SniffLen bytes where the data has them (tar's magic is
// at offset 257).
func Sniff(head []byte) string {
	switch {
	case bytes.HasPrefix(head, magicGzip) && len(head) >= 10 && head[3]&0xe0 == 0:
		return Gzip
	case bytes.HasPrefix(head, magicXz):
		return Xz
	case bytes.HasPrefix(head, magicZstd):
		return Zstd
	case isBzip2(head):
		return Bzip2
	case bytes.HasPrefix(head, magicLZ4), bytes.HasPrefix(head, magicLZ4Legacy):
		return LZ4
	case bytes.HasPrefix(head, magicZip) && len(head) >= 30:
		return Zip
	case bytes.HasPrefix(head, magicAr):
		return Ar
	case isCpio(head):
		return Cpio
	case isSquashfs(head):
		return Squashfs
	case isTar(head):
		return Tar
	case bytes.HasPrefix(head, magicApport):
		return Apport
	}
	return ""
}

// IsStream reports whether codec is a compressed stream (as opposed to an
// archive of members).
func IsStream(codec string) bool {
	switch codec {
	case Gzip, Xz, Zstd, Bzip2, LZ4, Deflate:
		return true
	}
	return false
}

// Signature is a container's magic number, At bytes into it.
type Signature struct {
	Codec string
	At    int
	Magic []byte
	// Carve marks the containers worth decoding where no file says what
	// the bytes are (free space, unreferenced clusters, RAM): compressed
	// streams and zip archives, which decode from their first byte on
	// without knowing where they end, with magic numbers of at least
	// three bytes that text does not hold.
	Carve bool
}

// Signatures lists the magic numbers of the containers Sniff knows, for a
// scanner to look for at the places files start; Sniff has the last word.
func Signatures() []Signature {
	return []Signature{
		{Codec: Gzip, Magic: magicGzip, Carve: true},
		{Codec: Zstd, Magic: magicZstd, Carve: true},
		{Codec: Zip, Magic: magicZip, Carve: true},
		{Codec: Xz, Magic: magicXz, Carve: true},
		{Codec: Bzip2, Magic: []byte("BZh"), Carve: true},
		{Codec: LZ4, Magic: magicLZ4},
		{Codec: LZ4, Magic: magicLZ4Legacy},
		{Codec: Ar, Magic: magicAr},
		{Codec: Cpio, Magic: []byte("07070")},
		{Codec: Squashfs, Magic: magicSquashfs},
		{Codec: Tar, At: 257, Magic: []byte("ustar")},
		{Codec: Apport, Magic: magicApport},
	}
}

func isBzip2(h []byte) bool {
	if len(h) < 10 || h[0] != 'B' || h[1] != 'Z' || h[2] != 'h' || h[3] < '1' || h[3] > '9' {
		return false
	}
	// A block's magic (pi) or the end-of-stream magic (sqrt pi).
	blk := h[4:10]
	return bytes.Equal(blk, []byte{0x31, 0x41, 0x59, 0x26, 0x53, 0x59}) || bytes.Equal(blk, []byte{0x17, 0x72, 0x45, 0x38, 0x50, 0x90})
}

func isCpio(h []byte) bool {
	if len(h) < 6 {
		return false
	}
	switch string(h[:6]) {
	case "070701", "070702":
		return len(h) >= newcHeaderLen && allHex(h[6:newcHeaderLen])
	case "070707":
		return len(h) >= odcHeaderLen && allOctal(h[6:odcHeaderLen])
	}
	return false
}

func allHex(b []byte) bool {
	for _, c := range b {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func allOctal(b []byte) bool {
	for _, c := range b {
		if c < '0' || c > '7' {
			return false
		}
	}
	return true
}

func isSquashfs(h []byte) bool {
	return len(h) >= 96 && bytes.HasPrefix(h, magicSquashfs) && binary.LittleEndian.Uint16(h[28:]) == 4
}

// octal parses a tar header's octal number field, spaces and NULs around
// it, as strconv.ParseInt(field, 8, 64) would, without allocating: every
// file a layer's scan meets is sniffed, and ParseInt's error for text
// cost three allocations a file.
func octal(field []byte) (int64, bool) {
	field = bytes.Trim(field, " \x00")
	neg := false
	if len(field) > 0 && (field[0] == '+' || field[0] == '-') {
		neg, field = field[0] == '-', field[1:]
	}
	if len(field) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range field {
		if c < '0' || c > '7' {
			return 0, false
		}
		n = n<<3 | int64(c-'0') // at most 8 digits: no overflow
	}
	if neg {
		n = -n
	}
	return n, true
}

// isTar recognises a POSIX (ustar) header, or an old-style one by its
// checksum.
func isTar(b []byte) bool {
	if len(b) < 512 {
		return false
	}
	if string(b[257:262]) == "ustar" {
		return true
	}
	if b[0] == 0 {
		return false // no name: zeros, or not a header
	}
	want, ok := octal(b[148:156])
	if !ok {
		return false
	}
	var sum int64
	for i, c := range b[:512] {
		if i >= 148 && i < 156 {
			c = ' '
		}
		sum += int64(c)
	}
	return sum == want
}
