package decode

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
)

// Compressed kernel modules. Debian 13 compresses its kernel modules with
// xz (Ubuntu and Fedora with zstd), and xz decodes at about 35 MB/s here.
// A booted guest's page cache holds hundreds of .ko.xz files, a kernel
// upgrade leaves the old kernel's 4,000 in free blocks, and Debian 13's
// initramfs carries the 830 it boots with in its first, uncompressed cpio
// archive: decoding them made a Debian 13 VM's scan 14 to 50 times slower
// than its raw scan, for compiled code that its distribution publishes.
// So a stream that decodes to an ELF relocatable object is not decoded
// further where nothing else says what it is: found by its magic number
// (the scanner's carved streams, IsKernelModule) or a member of an
// uncompressed archive that is the container itself (an initramfs's
// first cpio). Each is counted in Result.Skipped with
// SkippedKernelModule. A module that is a file of its own (a live module
// no package vouches for, a DKMS build) is decoded as any file.

// SkippedKernelModule is the Result.Skipped reason of compressed kernel
// modules.
const SkippedKernelModule = "compressed kernel modules (ELF relocatable objects) found in free space, unreferenced clusters or RAM, or in an uncompressed archive such as an initramfs: not decoded"

// moduleProbeLen is how many compressed bytes IsKernelModule reads at
// most: an LZMA2 chunk's (its decoder returns nothing before it has the
// chunk whole). The decoders get the smallest window (HeadOnly), so that
// little is decoded.
const moduleProbeLen = 64<<10 + 64

// IsKernelModule reports whether the compressed stream at the start of r
// (size bytes) decodes to an ELF relocatable object, from its first bytes
// alone.
func IsKernelModule(ctx context.Context, r io.ReaderAt, size int64, lim Limits, scratch *Scratch) bool {
	// Only the codecs kernels compress modules with (CONFIG_MODULE_COMPRESS_
	// GZIP, _XZ, _ZSTD): a bzip2 stream would decode a whole block (up to
	// 900 kB) twice to tell, and a zip is read again as a zip.
	var magic [10]byte
	if m, _ := r.ReadAt(magic[:], 0); m < len(magic) {
		return false
	}
	switch Sniff(magic[:]) {
	case Gzip, Xz, Zstd:
	default:
		return false
	}
	var head [20]byte
	n := 0
	Walk(ctx, io.NewSectionReader(r, 0, min(size, moduleProbeLen)), min(size, moduleProbeLen), Options{Limits: lim, HeadOnly: true, Scratch: scratch}, func(l Leaf) error {
		if len(l.Chain) == 1 && IsStream(l.Chain[0].Codec) {
			n, _ = io.ReadFull(l.R, head[:])
		}
		return errProbed
	})
	return relocatableELF(head[:n])
}

// errProbed ends IsKernelModule's walk at its first leaf.
var errProbed = errors.New("probed")

// relocatableELF reports whether head starts an ELF relocatable object
// (e_type ET_REL, in the byte order the header declares): a kernel
// module, or an object file.
func relocatableELF(head []byte) bool {
	if len(head) < 18 || string(head[:4]) != "\x7fELF" || head[4] != 1 && head[4] != 2 {
		return false
	}
	switch head[5] {
	case 1:
		return binary.LittleEndian.Uint16(head[16:]) == 1
	case 2:
		return binary.BigEndian.Uint16(head[16:]) == 1
	}
	return false
}

// rootMemberIsModule reports whether the member whose data starts at off
// of the container is a compressed kernel module, when the container
// itself is the uncompressed archive (its bytes can be read again where
// they lie, without disturbing the walk).
func (w *walker) rootMemberIsModule(off int64) bool {
	if w.root == nil || len(w.chain) != 0 || off < 0 || off >= w.rootSize {
		return false
	}
	// The member's first bytes: where the walk reads them anyway (the
	// root source stands at the member's data), else read where they lie.
	var head []byte
	if w.rootSrc != nil && w.rootSrc.pos() == off {
		head, _ = w.rootSrc.Peek(SniffLen)
	} else {
		var b [SniffLen]byte
		n, _ := w.root.ReadAt(b[:min(int64(len(b)), w.rootSize-off)], off)
		head = b[:n]
	}
	if !IsStream(Sniff(head)) {
		return false
	}
	return IsKernelModule(w.ctx, io.NewSectionReader(w.root, off, w.rootSize-off), w.rootSize-off, w.lim, nil)
}
