package decode

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"

	"github.com/anchore/go-lzo"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz/lzma"

	"github.com/imgaudit/imgaudit/report"
)

// A squashfs (version 4) reader of its own: go-diskfs's reads whole
// compressed blocks without a bound on what they decode to, re-reads a
// file's blocks from its start on every Read, and panics on some bad
// fragment references. This one reads a file's blocks in order, each
// decoded into a block-sized buffer, and checks every table reference
// against the image.

const (
	sqSuperLen     = 96
	sqMetaMax      = 8192
	sqNoFragment   = 0xffffffff
	sqUncompressed = 1 << 24
	sqMaxDirBytes  = 64 << 20 // directory listings read in one walk
	sqMaxPathDepth = 128
	sqMetaCache    = 256 // metadata blocks kept (2 MiB)
)

// sqfs is one opened squashfs image.
type sqfs struct {
	w          *walker
	r          io.ReaderAt
	size       int64
	blockSize  int64
	comp       uint16
	flags      uint16
	inodes     int64 // inode table start
	dirs       int64 // directory table start
	fragTable  int64
	fragCount  uint32
	root       uint64
	zstd       *zstd.Decoder
	meta       map[int64]metaBlock
	frag       fragCache
	dirBytes   int64
	compressed int64 // bytes read from the image
}

type metaBlock struct {
	data []byte
	next int64
}

type fragCache struct {
	start int64
	data  []byte
}

// squashfs walks the regular files of a squashfs image at s's position:
// read in place when it is the container itself, else read into memory
// (it needs random access) up to Limits.MaxSpool.
func (w *walker) squashfs(s *src, start int64, depth int, first bool) error {
	var r io.ReaderAt
	var size int64
	if first && w.root != nil {
		r, size = io.NewSectionReader(w.root, start, w.rootSize-start), w.rootSize-start
	} else {
		lim := w.lim.MaxSpool
		if w.mem+lim > w.lim.MaxDecoderMemory {
			lim = w.lim.MaxDecoderMemory - w.mem
		}
		// Held before it is read: the image is read whole.
		if err := w.hold(lim); err != nil {
			return err
		}
		b, err := io.ReadAll(io.LimitReader(s, lim+1))
		if err != nil {
			w.unhold(lim)
			return err
		}
		if int64(len(b)) > lim {
			w.unhold(lim)
			return &capError{reason: fmt.Sprintf("squashfs image inside a stream over the %s spool cap", report.HumanBytes(lim))}
		}
		w.unhold(lim - int64(len(b)))
		defer w.unhold(int64(len(b)))
		r, size = bytes.NewReader(b), int64(len(b))
	}
	q, err := openSquashfs(w, r, size)
	if err != nil {
		return err
	}
	defer q.close()
	return q.walk(depth)
}

// CheckSquashfs opens the squashfs (version 4) image in r[0:size) with this
// package's bounded reader and reads its root directory's inode: whether it
// is a squashfs that Walk can read. Package guestfs recognises squashfs
// partitions with it; go-diskfs's reader, used before, decoded each
// metadata block with no bound on its size (a 33 KB image whose id table
// block was a zstd frame of 900 MiB of zeros took 4.5 GiB) and reads tables
// this reader never needs.
func CheckSquashfs(ctx context.Context, r io.ReaderAt, size int64) error {
	lim := Limits{}.withDefaults()
	ctx, cancel := deadline(ctx, lim)
	defer cancel()
	w := &walker{parent: ctx, ctx: ctx, lim: lim, res: &Result{}, fn: func(Leaf) error { return nil }, root: r, rootSize: size}
	q, err := openSquashfs(w, r, size)
	if err != nil {
		return err
	}
	defer q.close()
	root, err := q.inode(q.root)
	if err != nil {
		return fmt.Errorf("squashfs: root inode: %w", err)
	}
	if root.typ != 1 && root.typ != 8 {
		return errors.New("squashfs: root is not a directory")
	}
	return nil
}

func openSquashfs(w *walker, r io.ReaderAt, size int64) (*sqfs, error) {
	var sb [sqSuperLen]byte
	if _, err := r.ReadAt(sb[:], 0); err != nil {
		return nil, fmt.Errorf("squashfs: superblock: %w", err)
	}
	le := binary.LittleEndian
	if !isSquashfs(sb[:]) {
		return nil, errors.New("squashfs: not a version 4 superblock")
	}
	q := &sqfs{w: w, r: r, size: size, meta: map[int64]metaBlock{}}
	q.blockSize = int64(le.Uint32(sb[12:]))
	q.fragCount = le.Uint32(sb[16:])
	q.comp = le.Uint16(sb[20:])
	blockLog := le.Uint16(sb[22:])
	q.flags = le.Uint16(sb[24:])
	q.root = le.Uint64(sb[32:])
	used := int64(le.Uint64(sb[40:]))
	q.inodes = int64(le.Uint64(sb[64:]))
	q.dirs = int64(le.Uint64(sb[72:]))
	q.fragTable = int64(le.Uint64(sb[80:]))
	if q.blockSize < 4096 || q.blockSize > 1<<20 || q.blockSize != 1<<blockLog {
		return nil, fmt.Errorf("squashfs: block size %d (log %d)", q.blockSize, blockLog)
	}
	if used > size || used < sqSuperLen {
		return nil, fmt.Errorf("squashfs: claims %d bytes, image has %d", used, size)
	}
	q.size = used
	if q.inodes < sqSuperLen || q.inodes >= used || q.dirs < q.inodes || q.dirs >= used {
		return nil, errors.New("squashfs: inode or directory table outside the image")
	}
	if q.comp < 1 || q.comp > 6 {
		return nil, fmt.Errorf("squashfs: unknown compressor %d", q.comp)
	}
	// Two block buffers (data and fragment) and the metadata cache.
	need := 2*q.blockSize + sqMetaCache*sqMetaMax
	if w.mem+need > w.lim.MaxDecoderMemory {
		return nil, &capError{reason: "squashfs reader over the decoder memory cap"}
	}
	if err := w.hold(need); err != nil {
		return nil, err
	}
	if q.comp == 6 {
		d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(uint64(q.blockSize)), zstd.WithDecoderMaxWindow(uint64(max(q.blockSize, zstd.MinWindowSize))))
		if err != nil {
			w.unhold(need)
			return nil, err
		}
		q.zstd = d
	}
	return q, nil
}

func (q *sqfs) close() {
	q.w.unhold(2*q.blockSize + sqMetaCache*sqMetaMax)
	if q.zstd != nil {
		q.zstd.Close()
	}
}

// readAt reads image bytes, counted as the walk's input.
func (q *sqfs) readAt(b []byte, off int64) error {
	if off < 0 || off > q.size-int64(len(b)) {
		return fmt.Errorf("squashfs: %d bytes at offset %d: outside the image", len(b), off)
	}
	if _, err := q.r.ReadAt(b, off); err != nil {
		return fmt.Errorf("squashfs: read %d bytes at offset %d: %w", len(b), off, err)
	}
	q.compressed += int64(len(b))
	q.w.atRead += int64(len(b))
	return nil
}

func (q *sqfs) pos() int64 { return q.compressed }

// decompress decodes one block of at most max bytes into dst.
func (q *sqfs) decompress(dst, in []byte, max int) ([]byte, error) {
	dst = dst[:0]
	readAll := func(r io.Reader) ([]byte, error) {
		b := bytes.NewBuffer(dst)
		n, err := io.Copy(b, io.LimitReader(r, int64(max)+1))
		if err != nil {
			return nil, err
		}
		if n > int64(max) {
			return nil, fmt.Errorf("squashfs: block decodes to more than %d bytes", max)
		}
		return b.Bytes(), nil
	}
	switch q.comp {
	case 1:
		z, err := zlib.NewReader(bytes.NewReader(in))
		if err != nil {
			return nil, err
		}
		return readAll(z)
	case 2:
		if len(in) < 13 {
			return nil, errors.New("squashfs: short lzma block")
		}
		d := int64(binary.LittleEndian.Uint32(in[1:]))
		if d > 64<<20 {
			return nil, &capError{reason: "squashfs lzma dictionary over 64 MiB"}
		}
		// A block of max bytes needs no larger dictionary, and the
		// decoder allocates the header's whole: mksquashfs writes 8 MiB
		// (and a hostile image 64) for blocks of 128 KiB.
		var hdr [13]byte
		copy(hdr[:], in)
		if limit := int64(max); d > limit {
			binary.LittleEndian.PutUint32(hdr[1:], uint32(limit))
		}
		z, err := lzma.NewReader(io.MultiReader(bytes.NewReader(hdr[:]), bytes.NewReader(in[13:])))
		if err != nil {
			return nil, err
		}
		return readAll(z)
	case 3:
		out := make([]byte, max)
		n, err := lzo.Decompress(in, out)
		if err != nil {
			return nil, err
		}
		return out[:n], nil
	case 4:
		x, err := newXzReader(newSrc(bytes.NewReader(in)), func(d int64) error {
			if d > 64<<20 {
				return &capError{reason: "squashfs xz dictionary over 64 MiB"}
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		x.w = nil
		x.maxDict = int64(max) // as for lzma above
		return readAll(x)
	case 5:
		out := make([]byte, max)
		n, err := lz4.UncompressBlock(in, out)
		if err != nil {
			return nil, err
		}
		return out[:n], nil
	case 6:
		return q.zstd.DecodeAll(in, dst)
	}
	return nil, fmt.Errorf("squashfs: compressor %d", q.comp)
}

// metaBlock reads the metadata block at pos.
func (q *sqfs) metaBlock(pos int64) (metaBlock, error) {
	if m, ok := q.meta[pos]; ok {
		return m, nil
	}
	var h [2]byte
	if err := q.readAt(h[:], pos); err != nil {
		return metaBlock{}, err
	}
	n := int64(binary.LittleEndian.Uint16(h[:]))
	stored := n&0x8000 != 0
	n &= 0x7fff
	if n == 0 || n > sqMetaMax {
		return metaBlock{}, fmt.Errorf("squashfs: metadata block of %d bytes at offset %d", n, pos)
	}
	raw := make([]byte, n)
	if err := q.readAt(raw, pos+2); err != nil {
		return metaBlock{}, err
	}
	data := raw
	if !stored {
		var err error
		if data, err = q.decompress(nil, raw, sqMetaMax); err != nil {
			return metaBlock{}, fmt.Errorf("squashfs: metadata block at offset %d: %w", pos, err)
		}
	}
	if len(q.meta) >= sqMetaCache {
		clear(q.meta)
	}
	m := metaBlock{data: data, next: pos + 2 + n}
	q.meta[pos] = m
	return m, nil
}

// metaReader reads a metadata stream from a block and an offset in it.
type metaReader struct {
	q   *sqfs
	blk metaBlock
	off int
}

func (q *sqfs) metaAt(table int64, block uint64, off int) (*metaReader, error) {
	if block > uint64(q.size) {
		return nil, fmt.Errorf("squashfs: metadata reference %d past the image", block)
	}
	b, err := q.metaBlock(table + int64(block))
	if err != nil {
		return nil, err
	}
	if off > len(b.data) {
		return nil, fmt.Errorf("squashfs: offset %d in a metadata block of %d bytes", off, len(b.data))
	}
	return &metaReader{q: q, blk: b, off: off}, nil
}

func (m *metaReader) read(p []byte) error {
	for len(p) > 0 {
		if m.off == len(m.blk.data) {
			b, err := m.q.metaBlock(m.blk.next)
			if err != nil {
				return err
			}
			m.blk, m.off = b, 0
		}
		n := copy(p, m.blk.data[m.off:])
		p, m.off = p[n:], m.off+n
	}
	return nil
}

func (m *metaReader) skip(n int64) error {
	var buf [256]byte
	for n > 0 {
		k := min(n, int64(len(buf)))
		if err := m.read(buf[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// inode is what the walk needs of an inode.
type inode struct {
	typ uint16
	// directories
	dirBlock uint32
	dirOff   uint16
	dirSize  int64
	// regular files
	blocks     int64 // start of the data blocks
	size       int64
	frag       uint32
	fragOff    uint32
	blockSizes *metaReader // positioned at the block size list
}

func (q *sqfs) inode(ref uint64) (inode, error) {
	m, err := q.metaAt(q.inodes, ref>>16, int(ref&0xffff))
	if err != nil {
		return inode{}, err
	}
	var h [16]byte
	if err := m.read(h[:]); err != nil {
		return inode{}, err
	}
	le := binary.LittleEndian
	in := inode{typ: le.Uint16(h[:])}
	switch in.typ {
	case 1:
		var b [16]byte
		if err := m.read(b[:]); err != nil {
			return inode{}, err
		}
		in.dirBlock, in.dirSize, in.dirOff = le.Uint32(b[0:]), int64(le.Uint16(b[8:])), le.Uint16(b[10:])
	case 8:
		var b [24]byte
		if err := m.read(b[:]); err != nil {
			return inode{}, err
		}
		in.dirSize, in.dirBlock, in.dirOff = int64(le.Uint32(b[4:])), le.Uint32(b[8:]), le.Uint16(b[18:])
	case 2:
		var b [16]byte
		if err := m.read(b[:]); err != nil {
			return inode{}, err
		}
		in.blocks, in.frag, in.fragOff, in.size = int64(le.Uint32(b[0:])), le.Uint32(b[4:]), le.Uint32(b[8:]), int64(le.Uint32(b[12:]))
		in.blockSizes = m
	case 9:
		var b [40]byte
		if err := m.read(b[:]); err != nil {
			return inode{}, err
		}
		in.blocks, in.size = int64(le.Uint64(b[0:])), int64(le.Uint64(b[8:]))
		in.frag, in.fragOff = le.Uint32(b[28:]), le.Uint32(b[32:])
		in.blockSizes = m
		if in.size < 0 || in.blocks < 0 {
			return inode{}, errors.New("squashfs: file size or start out of range")
		}
	}
	return in, nil
}

// walk visits every regular file, depth first, from the root directory.
func (q *sqfs) walk(depth int) error {
	root, err := q.inode(q.root)
	if err != nil {
		return err
	}
	if root.typ != 1 && root.typ != 8 {
		return errors.New("squashfs: root is not a directory")
	}
	seen := map[uint64]bool{q.root: true}
	n := 0
	return q.dir(root, "", depth, 0, seen, &n)
}

// dir walks one directory's entries.
func (q *sqfs) dir(d inode, dirPath string, depth, level int, seen map[uint64]bool, n *int) error {
	if level > sqMaxPathDepth {
		return errors.New("squashfs: directories nested too deep")
	}
	size := d.dirSize - 3 // the listing's size counts "." and ".."
	if size <= 0 {
		return nil
	}
	q.dirBytes += size
	if q.dirBytes > sqMaxDirBytes {
		return fmt.Errorf("squashfs: directory listings over %d bytes", sqMaxDirBytes)
	}
	m, err := q.metaAt(q.dirs, uint64(d.dirBlock), int(d.dirOff))
	if err != nil {
		return err
	}
	le := binary.LittleEndian
	for read := int64(0); read < size; {
		var h [12]byte
		if err := m.read(h[:]); err != nil {
			return err
		}
		read += 12
		count, start := int64(le.Uint32(h[0:]))+1, le.Uint32(h[4:])
		if count > 256 {
			return errors.New("squashfs: directory header of more than 256 entries")
		}
		for i := int64(0); i < count && read < size; i++ {
			if err := q.w.check(); err != nil {
				return err
			}
			var e [8]byte
			if err := m.read(e[:]); err != nil {
				return err
			}
			nameLen := int(le.Uint16(e[6:])) + 1
			name := make([]byte, nameLen)
			if err := m.read(name); err != nil {
				return err
			}
			read += 8 + int64(nameLen)
			ref := uint64(start)<<16 | uint64(le.Uint16(e[0:]))
			p := path.Join(dirPath, string(name))
			in, err := q.inode(ref)
			if err != nil {
				return err
			}
			switch in.typ {
			case 1, 8:
				if seen[ref] {
					return errors.New("squashfs: directory cycle")
				}
				seen[ref] = true
				if err := q.dir(in, p, depth, level+1, seen, n); err != nil {
					return err
				}
			case 2, 9:
				if q.w.tooMany(*n) {
					return nil
				}
				*n++
				if err := q.file(in, p, depth); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// file walks one regular file as a member.
func (q *sqfs) file(in inode, name string, depth int) error {
	if in.size == 0 {
		return nil
	}
	f := &sqFile{q: q, in: in, left: in.size, next: in.blocks}
	off := in.blocks
	if in.size < q.blockSize && in.frag != sqNoFragment {
		off = -1 // only a fragment: its place is set when it is read
		if e, err := q.fragEntry(in.frag); err == nil {
			off = e.start
		}
	}
	g := &guard{w: q.w, r: f, in: q, inStart: q.compressed, kind: Squashfs}
	err := memberError(q.w.member(Squashfs, cleanName(name), max(off, 0), int64(in.size), g, depth))
	if err != nil {
		return err
	}
	if f.err != nil && !errors.Is(f.err, io.EOF) {
		var c *capError
		if errors.As(f.err, &c) && c.whole {
			return f.err
		}
	}
	return nil
}

// sqFile reads a regular file's blocks in order, then its fragment.
type sqFile struct {
	q    *sqfs
	in   inode
	left int64 // bytes of the file not yet decoded
	next int64 // image offset of the next data block
	buf  []byte
	err  error
}

func (f *sqFile) Read(p []byte) (int, error) {
	for len(f.buf) == 0 {
		if f.err != nil {
			return 0, f.err
		}
		if f.left == 0 {
			f.err = io.EOF
			return 0, io.EOF
		}
		f.err = f.fill()
	}
	n := copy(p, f.buf)
	f.buf = f.buf[n:]
	return n, nil
}

// fill decodes the next block (or the fragment) into buf.
func (f *sqFile) fill() error {
	q := f.q
	bs := q.blockSize
	if f.left < bs && f.in.frag != sqNoFragment {
		data, err := q.fragment(f.in.frag)
		if err != nil {
			return err
		}
		a, b := int64(f.in.fragOff), int64(f.in.fragOff)+f.left
		if b > int64(len(data)) {
			return errors.New("squashfs: fragment reference past its block")
		}
		f.buf, f.left = data[a:b], 0
		return nil
	}
	var e [4]byte
	if err := f.in.blockSizes.read(e[:]); err != nil {
		return err
	}
	v := binary.LittleEndian.Uint32(e[:])
	n := int64(v &^ sqUncompressed)
	want := min(bs, f.left)
	if n == 0 { // a sparse block
		f.buf = make([]byte, want)
		f.left -= want
		return nil
	}
	if n > bs {
		return fmt.Errorf("squashfs: data block of %d bytes at offset %d", n, f.next)
	}
	raw := make([]byte, n)
	if err := q.readAt(raw, f.next); err != nil {
		return err
	}
	f.next += n
	data := raw
	if v&sqUncompressed == 0 {
		var err error
		if data, err = q.decompress(nil, raw, int(bs)); err != nil {
			return fmt.Errorf("squashfs: data block at offset %d: %w", f.next-n, err)
		}
	}
	if int64(len(data)) < want {
		return fmt.Errorf("squashfs: data block at offset %d decodes to %d bytes, not %d", f.next-n, len(data), want)
	}
	f.buf, f.left = data[:want], f.left-want
	return nil
}

type fragEntry struct {
	start int64
	size  uint32
}

func (q *sqfs) fragEntry(i uint32) (fragEntry, error) {
	if i >= q.fragCount || q.flags&0x10 != 0 {
		return fragEntry{}, fmt.Errorf("squashfs: fragment %d of %d", i, q.fragCount)
	}
	// The fragment table's metadata blocks are listed at fragTable.
	var loc [8]byte
	if err := q.readAt(loc[:], q.fragTable+int64(i/512)*8); err != nil {
		return fragEntry{}, err
	}
	m, err := q.metaAt(0, binary.LittleEndian.Uint64(loc[:]), int(i%512)*16)
	if err != nil {
		return fragEntry{}, err
	}
	var e [16]byte
	if err := m.read(e[:]); err != nil {
		return fragEntry{}, err
	}
	return fragEntry{start: int64(binary.LittleEndian.Uint64(e[:])), size: binary.LittleEndian.Uint32(e[8:])}, nil
}

// fragment decodes fragment block i (the last one is kept).
func (q *sqfs) fragment(i uint32) ([]byte, error) {
	e, err := q.fragEntry(i)
	if err != nil {
		return nil, err
	}
	if q.frag.data != nil && q.frag.start == e.start {
		return q.frag.data, nil
	}
	n := int64(e.size &^ sqUncompressed)
	if n == 0 || n > q.blockSize {
		return nil, fmt.Errorf("squashfs: fragment block of %d bytes", n)
	}
	raw := make([]byte, n)
	if err := q.readAt(raw, e.start); err != nil {
		return nil, err
	}
	data := raw
	if e.size&sqUncompressed == 0 {
		if data, err = q.decompress(nil, raw, int(q.blockSize)); err != nil {
			return nil, fmt.Errorf("squashfs: fragment block at offset %d: %w", e.start, err)
		}
	}
	q.frag = fragCache{start: e.start, data: data}
	return data, nil
}
