package vma

import (
	"context"
	"fmt"
	"io"
	"iter"
	"math/bits"
	"slices"

	"github.com/imgaudit/imgaudit/formats/model"
)

// clusterRec locates the stored blocks of one 64 KiB cluster. The blocks
// whose mask bit is set follow each other, in block order, both in the
// archive and in the reader that serves them, so one offset each suffices.
type clusterRec struct {
	num  uint32
	mask uint16
	off  int64 // first stored block in the reader (the archive itself, or the spool)
	src  int64 // first stored block in the (decompressed) archive stream
}

// devIndex collects the clusters of one device during the pass.
type devIndex struct {
	Device
	vmstate     bool
	nextVMState uint32 // vmstate clusters must come in order (vma-reader.c)
	recs        []clusterRec
}

// index is the one-pass map of an archive: for each device, where each
// stored block lives. It never holds block data.
type index struct {
	hdr  *Header
	devs [256]*devIndex
}

func newIndex(h *Header) *index {
	ix := &index{hdr: h}
	for _, d := range h.Devices {
		ix.devs[d.ID] = &devIndex{Device: d, vmstate: d.Name == "vmstate"}
	}
	return ix
}

// check validates an extent's entries against the device list, as
// restore_extent does, before any of them is recorded.
func (ix *index) check(eh *ExtentHeader) error {
	next := map[uint8]uint32{}
	for i, bi := range eh.Entries {
		if bi.Dev == 0 {
			continue
		}
		d := ix.devs[bi.Dev]
		if d == nil {
			return fmt.Errorf("blockinfo %d names unknown device %d", i, bi.Dev)
		}
		if d.vmstate {
			want, ok := next[bi.Dev]
			if !ok {
				want = d.nextVMState
			}
			if bi.Cluster != want {
				return fmt.Errorf("blockinfo %d: vmstate cluster %d out of order (want %d)", i, bi.Cluster, want)
			}
			next[bi.Dev] = want + 1
			continue
		}
		if int64(bi.Cluster) >= (d.Size+clusterSize-1)/clusterSize {
			return fmt.Errorf("blockinfo %d: cluster %d beyond the end of device %q (%d bytes)", i, bi.Cluster, d.Name, d.Size)
		}
	}
	return nil
}

// commit records the entries of a checked extent whose blocks are wholly
// within the avail data bytes that follow its header (all of them unless
// the archive is truncated). dataSrc is the archive offset of the first
// data byte, dataOff its offset in the reader.
func (ix *index) commit(eh *ExtentHeader, dataSrc, dataOff, avail int64) {
	var k int64 // blocks before this entry in the extent
	for _, bi := range eh.Entries {
		if bi.Dev == 0 {
			continue
		}
		d := ix.devs[bi.Dev]
		n := int64(bi.Blocks())
		if d.vmstate {
			d.nextVMState = bi.Cluster + 1
		}
		if n > 0 && (k+n)*blockSize <= avail {
			d.recs = append(d.recs, clusterRec{num: bi.Cluster, mask: bi.Mask, off: dataOff + k*blockSize, src: dataSrc + k*blockSize})
		}
		k += n
	}
}

// finish sorts each device's clusters and drops duplicates (vma-reader.c
// refuses an archive that stores a cluster twice; we keep the first copy
// and report it).
func (ix *index) finish() []error {
	var errs []error
	for _, d := range ix.devs {
		if d == nil {
			continue
		}
		slices.SortStableFunc(d.recs, func(a, b clusterRec) int {
			switch {
			case a.num < b.num:
				return -1
			case a.num > b.num:
				return 1
			}
			return 0
		})
		out := d.recs[:0]
		dups := 0
		for _, r := range d.recs {
			if len(out) > 0 && out[len(out)-1].num == r.num {
				dups++
				if dups == 1 {
					errs = append(errs, fmt.Errorf("device %q stores cluster %d more than once (archive offset %d); the first copy is used", d.Name, r.num, r.src))
				}
				continue
			}
			out = append(out, r)
		}
		d.recs = slices.Clip(out)
	}
	return errs
}

// deviceDisk serves one device's guest bytes from the stored blocks;
// clusters and blocks the archive does not store read as zeros (vzdump
// omits all-zero blocks).
type deviceDisk struct {
	r    io.ReaderAt
	file string       // host file named in extents
	src  model.Source // SourceData (uncompressed) or SourceDerived (compressed)
	size int64
	recs []clusterRec // sorted by num, unique
}

func (d *deviceDisk) Size() int64 { return d.size }

func (d *deviceDisk) find(num uint32) (clusterRec, bool) {
	i, ok := slices.BinarySearchFunc(d.recs, num, func(r clusterRec, n uint32) int {
		switch {
		case r.num < n:
			return -1
		case r.num > n:
			return 1
		}
		return 0
	})
	if !ok {
		return clusterRec{}, false
	}
	return d.recs[i], true
}

func (d *deviceDisk) ReadAt(p []byte, off int64) (int, error) {
	want, err := model.ClampRead(p, off, d.size)
	if err != nil {
		return 0, err
	}
	done := 0
	for done < want {
		pos := off + int64(done)
		num := uint32(pos / clusterSize)
		in := pos % clusterSize
		j := int(in / blockSize)
		rec, ok := d.find(num)
		if !ok {
			// Whole rest of the cluster is zeros.
			n := min(int64(want-done), clusterSize-in)
			clear(p[done : done+int(n)])
			done += int(n)
			continue
		}
		// Run of blocks from j with the same presence.
		present := rec.mask&(1<<j) != 0
		k := j
		for k < blocksPerCluster && (rec.mask&(1<<k) != 0) == present {
			k++
		}
		n := min(int64(want-done), int64(k)*blockSize-in)
		buf := p[done : done+int(n)]
		if !present {
			clear(buf)
		} else {
			at := rec.off + int64(bits.OnesCount16(rec.mask&(1<<j-1)))*blockSize + in%blockSize
			if m, err := d.r.ReadAt(buf, at); m < len(buf) {
				if err == nil || err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				return done + m, fmt.Errorf("vma: %s: read stored block at %d: %w", d.file, at, err)
			}
		}
		done += int(n)
	}
	if want < len(p) {
		return want, io.EOF
	}
	return want, nil
}

// Extents yields the stored blocks as extents, merging runs that are
// contiguous both in the device and in the archive.
func (d *deviceDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return func(yield func(model.Extent, error) bool) {
		var cur model.Extent
		have := false
		for i, r := range d.recs {
			if i%1024 == 0 {
				if err := ctx.Err(); err != nil {
					yield(model.Extent{}, err)
					return
				}
			}
			base := int64(r.num) * clusterSize
			stored := int64(0)
			for j := 0; j < blocksPerCluster; {
				if r.mask&(1<<j) == 0 {
					j++
					continue
				}
				k := j
				for k < blocksPerCluster && r.mask&(1<<k) != 0 {
					k++
				}
				start := base + int64(j)*blockSize
				length := min(int64(k-j)*blockSize, d.size-start)
				fo := r.src + stored*blockSize
				stored += int64(k - j)
				j = k
				if length <= 0 {
					continue
				}
				if have && cur.End() == start && cur.FileOffset+cur.FileLength == fo {
					cur.Length += length
					cur.FileLength += length
					continue
				}
				if have && !yield(cur, nil) {
					return
				}
				cur = model.Extent{Offset: start, Length: length, Source: d.src, File: d.file, FileOffset: fo, FileLength: length}
				have = true
			}
		}
		if have {
			yield(cur, nil)
		}
	}
}

// storedBytes is the number of bytes the archive stores for the device.
func (d *deviceDisk) storedBytes() int64 {
	var n int64
	for _, r := range d.recs {
		n += int64(bits.OnesCount16(r.mask)) * blockSize
	}
	return n
}

// bytesDisk is a small guest space held in memory (a config blob read from
// a compressed archive's header).
type bytesDisk struct {
	b   []byte
	ext model.ExtentList
}

func (d *bytesDisk) Size() int64 { return int64(len(d.b)) }

func (d *bytesDisk) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("vma: negative offset %d", off)
	}
	if off >= int64(len(d.b)) {
		return 0, io.EOF
	}
	n := copy(p, d.b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (d *bytesDisk) Extents(ctx context.Context) iter.Seq2[model.Extent, error] {
	return d.ext.Seq(ctx)
}
