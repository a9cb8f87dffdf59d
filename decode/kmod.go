package decode

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
)

// Compressed kernel modules. Debian 13 compresses its kernel modules with
// xz (Ubuntu and Fedora with zstd), and xz decodes at about 35 MB/s here.
// A booted guest's page cache holds hundreds of .ko.xz files, a kernel
// upgrade leaves the old kernel's 4,000 in free blocks, Debian 13's
// initramfs carries the 830 it boots with in its first, uncompressed cpio
// archive, and a kernel package left in apt's cache holds 4,260 in its
// data.tar.xz: decoding them made a Debian 13 VM's scan 7 to 50 times
// slower than its raw scan (24 s for one cached linux-image .deb), for
// compiled code that its distribution publishes. So a stream that decodes
// to an ELF relocatable object is not decoded further where nothing else
// says what it is: found by its magic number (the scanner's carved
// streams, IsKernelModule) or a member of an archive (an initramfs's cpio,
// a package's tar, a .tar.xz of modules). Each is counted in
// Result.Skipped with SkippedKernelModule. A module that is a file of its
// own (a live module no package vouches for, a DKMS build) is decoded as
// any file.
//
// How a member is told, by what its bytes allow:
//   - a member of an uncompressed archive that is the container itself:
//     its first bytes are read again where they lie (rootMemberIsModule);
//   - an xz member elsewhere: its first moduleProbeLen bytes are held in a
//     larger buffer and probed (bufferedIsModule), since its decoder,
//     given the stream's own 1 MiB dictionary, decodes up to 1 MiB before
//     it returns a byte;
//   - a gzip or zstd member elsewhere: its stream is opened as usual and
//     left after its first decoded bytes (walker.stream), which costs no
//     more than a probe would.

// SkippedKernelModule is the Result.Skipped reason of compressed kernel
// modules.
const SkippedKernelModule = "compressed kernel modules (ELF relocatable objects) found in free space, unreferenced clusters or RAM, or members of an archive (an initramfs, a package): not decoded"

// moduleProbeLen is how many compressed bytes IsKernelModule reads at
// most: an LZMA2 chunk's (its decoder returns nothing before it has the
// chunk whole). The decoders get the smallest window (HeadOnly), so that
// little is decoded.
const moduleProbeLen = 64<<10 + 64

// IsKernelModule reports whether the compressed stream at the start of r
// (size bytes) decodes to an ELF relocatable object, from its first bytes
// alone.
func IsKernelModule(ctx context.Context, r io.ReaderAt, size int64, lim Limits, scratch *Scratch) bool {
	var magic [10]byte
	if m, _ := r.ReadAt(magic[:], 0); m < len(magic) {
		return false
	}
	if !moduleCodec(Sniff(magic[:])) {
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

// moduleCodec reports whether kind is a codec that kernels compress
// modules with (CONFIG_MODULE_COMPRESS_GZIP, _XZ, _ZSTD). Only those are
// tried: a bzip2 stream would decode a whole block (up to 900 kB) twice to
// tell, and a zip is read again as a zip.
func moduleCodec(kind string) bool { return kind == Gzip || kind == Xz || kind == Zstd }

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

// rereadable reports whether the member whose data starts at off can be
// read again where it lies: the container itself is the uncompressed
// archive, so its bytes are the member's.
func (w *walker) rereadable(off int64) bool {
	return w.root != nil && len(w.chain) == 0 && off >= 0 && off < w.rootSize
}

// rootMemberIsModule reports whether the member whose data starts at off
// of the container, which must be rereadable, is a compressed kernel
// module (its bytes are read again where they lie, without disturbing the
// walk).
func (w *walker) rootMemberIsModule(off int64) bool {
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
	return IsKernelModule(w.ctx, io.NewSectionReader(w.root, off, w.rootSize-off), w.rootSize-off, w.lim, w.scratch)
}

// probeSrc returns a source reading s (not yet read from) whose buffer
// holds moduleProbeLen bytes, for bufferedIsModule; the walk reads the
// member from it afterwards, so the bytes probed are not read twice.
func (w *walker) probeSrc(s *src) *src {
	var p *src
	if n := len(w.scratch.probes); n > 0 {
		p = w.scratch.probes[n-1]
		w.scratch.probes = w.scratch.probes[:n-1]
		p.cr = countReader{r: s.br}
		p.br.Reset(&p.cr)
	} else {
		p = &src{cr: countReader{r: s.br}}
		p.br = bufio.NewReaderSize(&p.cr, moduleProbeLen)
	}
	return p
}

// freeProbeSrc keeps a probeSrc that the walk is done with.
func (w *walker) freeProbeSrc(p *src) {
	p.cr = countReader{}
	p.br.Reset(&p.cr)
	w.scratch.probes = append(w.scratch.probes, p)
}

// bufferedIsModule reports whether the stream that p's source starts with
// is a compressed kernel module, from the bytes p buffers.
func (w *walker) bufferedIsModule(p *src) bool {
	head, _ := p.Peek(moduleProbeLen)
	return IsKernelModule(w.ctx, bytes.NewReader(head), int64(len(head)), w.lim, w.scratch)
}
