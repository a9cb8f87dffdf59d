package vmdk

// Fixture generator for the VMDK forms qemu-img cannot write. Each builder
// names the section of the spec it follows; QEMU can read all of them, so
// the tests still compare against `qemu-img convert -O raw`.

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/imgaudit/imgaudit/internal/zeros"
	"github.com/klauspost/compress/zlib"
)

func put32(b []byte, off int, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
func put64(b []byte, off int, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }

func padSector(b []byte) []byte {
	if r := len(b) % 512; r != 0 {
		b = append(b, make([]byte, 512-r)...)
	}
	return b
}

func zlibBytes(p []byte) []byte {
	var buf bytes.Buffer
	w, _ := zlib.NewWriterLevel(&buf, zlib.BestSpeed)
	w.Write(p)
	w.Close()
	return buf.Bytes()
}

// hostedHeader builds a hosted sparse extent header: Virtual Disk Format 5.0,
// "Hosted Sparse Extent Header" (SparseExtentHeader, 512 bytes, little-endian).
func hostedHeader(flags uint32, capacity, grain, descOff, descSize, rgd, gd, overhead uint64) []byte {
	h := make([]byte, 512)
	copy(h, "KDMV")
	put32(h, 4, 3) // version 3: stream-optimized
	put32(h, 8, flags)
	put64(h, 12, capacity)
	put64(h, 20, grain)
	put64(h, 28, descOff)
	put64(h, 36, descSize)
	put32(h, 44, 512) // numGTEsPerGT
	put64(h, 48, rgd)
	put64(h, 56, gd)
	put64(h, 64, overhead)
	copy(h[73:], "\n \r\n")                  // singleEndLineChar, nonEndLineChar, doubleEndLineChar1/2
	binary.LittleEndian.PutUint16(h[77:], 1) // compressAlgorithm: deflate
	return h
}

// metadataMarker: Virtual Disk Format 5.0, "Stream-Optimized Compressed
// Sparse Extents", MetaDataMarker {numSectors, size=0, type, pad}.
func metadataMarker(numSectors uint64, typ uint32) []byte {
	m := make([]byte, 512)
	put64(m, 0, numSectors)
	put32(m, 12, typ)
	return m
}

// synthStream builds a stream-optimized extent (Virtual Disk Format 5.0,
// "Stream-Optimized Compressed Sparse Extents"): header, embedded
// descriptor, grain markers {lba, size, zlib data} padded to sectors, then a
// GT marker + grain table per table, a GD marker + grain directory, a footer
// marker + footer (the header with the real gdOffset) and an end-of-stream
// marker. With gdAtEnd the header says gdOffset = GD_AT_END, as VMware and
// VirtualBox write. stale grains are written as valid grain markers that no
// grain table references.
func synthStream(data []byte, gdAtEnd bool, stale [][]byte) []byte {
	const grainSectors = 128
	grain := grainSectors * 512
	capSectors := uint64((len(data) + 511) / 512)
	nGrains := (len(data) + grain - 1) / grain
	nGT := (nGrains + 511) / 512
	desc := []byte(fmt.Sprintf("# Disk DescriptorFile\nversion=1\nCID=5a5a5a5a\nparentCID=ffffffff\ncreateType=\"streamOptimized\"\n\n# Extent description\nRDONLY %d SPARSE \"synth.vmdk\"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = \"lsilogic\"\n", capSectors))
	descSectors := uint64(2)
	overhead := uint64(1 + descSectors)
	flags := uint32(flagNLDetect | flagCompressed | flagMarkers)
	f := make([]byte, overhead*512)
	copy(f[512:], desc)
	gt := make([]uint32, nGT*512)
	for i := 0; i < nGrains; i++ {
		g := data[i*grain : min((i+1)*grain, len(data))]
		if zeros.All(g) {
			continue // unallocated grain: GT entry 0
		}
		c := zlibBytes(g)
		gt[i] = uint32(len(f) / 512)
		m := make([]byte, 12)
		put64(m, 0, uint64(i*grainSectors))
		put32(m, 8, uint32(len(c)))
		f = padSector(append(append(f, m...), c...))
	}
	for _, s := range stale {
		c := zlibBytes(s)
		m := make([]byte, 12)
		put32(m, 8, uint32(len(c))) // lba 0: an older copy of grain 0
		f = padSector(append(append(f, m...), c...))
	}
	gd := make([]uint32, nGT)
	for t := 0; t < nGT; t++ {
		f = append(f, metadataMarker(4, MarkerGT)...)
		gd[t] = uint32(len(f) / 512)
		for _, e := range gt[t*512 : (t+1)*512] {
			f = binary.LittleEndian.AppendUint32(f, e)
		}
	}
	gdSectors := uint64((nGT*4 + 511) / 512)
	f = append(f, metadataMarker(gdSectors, MarkerGD)...)
	gdOff := uint64(len(f) / 512)
	for _, e := range gd {
		f = binary.LittleEndian.AppendUint32(f, e)
	}
	f = padSector(f)
	f = append(f, metadataMarker(1, MarkerFooter)...)
	f = append(f, hostedHeader(flags, capSectors, grainSectors, 1, descSectors, 0, gdOff, overhead)...)
	f = append(f, metadataMarker(0, MarkerEOS)...)
	hdrGD := gdOff
	if gdAtEnd {
		hdrGD = gdAtEnd64
	}
	copy(f, hostedHeader(flags, capSectors, grainSectors, 1, descSectors, 0, hdrGD, overhead))
	return f
}

const gdAtEnd64 = ^uint64(0)

// synthCOWD builds an ESX Server sparse extent: Virtual Disk Format 1.1,
// "ESX Server Sparse Extents" (COWDisk_Header of 2048 bytes, then the grain
// directory, grain tables of 4096 entries and grains, all in sectors).
func synthCOWD(data []byte, grainSectors int) []byte {
	grain := grainSectors * 512
	numSectors := (len(data) + 511) / 512
	nGrains := (len(data) + grain - 1) / grain
	nGD := (numSectors + grainSectors*4096 - 1) / (grainSectors * 4096)
	h := make([]byte, 2048)
	copy(h, "COWD")
	put32(h, 4, 1) // version
	put32(h, 8, 3) // flags
	put32(h, 12, uint32(numSectors))
	put32(h, 16, uint32(grainSectors))
	put32(h, 20, 4) // gdOffset: right after the 4-sector header
	put32(h, 24, uint32(nGD))
	gdSectors := (nGD*4 + 511) / 512
	gtStart := 4 + gdSectors
	f := padSector(append(h, make([]byte, nGD*4)...))
	gts := make([]byte, nGD*4096*4)
	f = append(f, gts...)
	for i := 0; i < nGrains; i++ {
		g := data[i*grain : min((i+1)*grain, len(data))]
		if zeros.All(g) {
			continue
		}
		t := i / 4096
		put32(f, 2048+t*4, uint32(gtStart+t*32))
		put32(f, (gtStart+t*32)*512+(i%4096)*4, uint32(len(f)/512))
		f = append(f, g...)
		f = padSector(append(f, make([]byte, grain-len(g))...))
	}
	put32(f, 28, uint32(len(f)/512)) // freeSector
	return f
}

// synthSESparse builds an ESXi seSparse extent following the structures in
// QEMU's block/vmdk.c (VMDKSESparseConstHeader / VolatileHeader; VMware has
// published no spec): grain size 8 sectors, grain tables of 64 sectors
// (4096 u64 entries), GD entries 0x1000000000000000|table, GT entries with
// top nibble 3 (allocated, index split across bits), 2 (zero) or 0.
func synthSESparse(data []byte, zeroGrain int) []byte {
	const grain = 4096
	capSectors := uint64((len(data) + 511) / 512)
	nGrains := (len(data) + grain - 1) / grain
	nGT := (nGrains + 4095) / 4096
	const (
		volOff, jhOff, jOff, gdOff = 1, 2, 3, 4
		gdSize                     = 1
		gtOff                      = gdOff + gdSize
	)
	gtSize := uint64(nGT * 64)
	fbOff := gtOff + gtSize
	bmOff := fbOff + 1
	grainsOff := bmOff + 1
	h := make([]byte, 512)
	for i, v := range []uint64{seSparseConstMagic, 0x0000000200000001, capSectors, 8, 64, 0, 0, 0, 0, 0,
		volOff, 1, jhOff, 1, jOff, 1, gdOff, gdSize, gtOff, gtSize, fbOff, 1, bmOff, 1, grainsOff, 0} {
		put64(h, i*8, v)
	}
	f := make([]byte, grainsOff*512)
	copy(f, h)
	put64(f, volOff*512, seSparseVolatileMagic)
	for t := 0; t < nGT; t++ {
		put64(f, gdOff*512+t*8, 0x1000000000000000|uint64(t))
	}
	idx := uint64(0)
	for i := 0; i < nGrains; i++ {
		g := data[i*grain : min((i+1)*grain, len(data))]
		pos := int(gtOff*512) + i*8
		if i == zeroGrain {
			put64(f, pos, 0x2000000000000000)
			continue
		}
		if zeros.All(g) {
			continue
		}
		put64(f, pos, 0x3000000000000000|(idx&0xfff)<<48|(idx>>12))
		f = append(f, g...)
		f = append(f, make([]byte, grain-len(g))...)
		idx++
	}
	put64(f, 25*8, idx*8) // grains_size
	return f
}
