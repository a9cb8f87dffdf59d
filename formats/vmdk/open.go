package vmdk

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
)

var errUnsupported = model.ErrUnsupported

// crossCheckTables bounds how many grain tables the redundant directory
// check compares (each pair is two reads of up to 16 KiB).
const crossCheckTables = 4096

// openSparse opens a sparse extent file (KDMV, COWD or seSparse, by magic).
// It returns the extent, the embedded descriptor text (hosted extents only)
// and notes for the view.
func openSparse(file string, r io.ReaderAt, size int64) (*sparse, []byte, []string, error) {
	head := make([]byte, min(size, cowdHeaderSize))
	if _, err := r.ReadAt(head, 0); err != nil && err != io.EOF {
		return nil, nil, nil, model.Wrapf(err, file, 0, "read sparse header")
	}
	switch {
	case bytes.HasPrefix(head, magicKDMV):
		return openHosted(file, r, size, head)
	case bytes.HasPrefix(head, magicCOWD):
		sp, err := openCOWD(file, r, size, head)
		return sp, nil, nil, err
	case len(head) >= 8 && binary.LittleEndian.Uint64(head) == seSparseConstMagic:
		sp, err := openSE(file, r, size, head)
		return sp, nil, nil, err
	}
	return nil, nil, nil, model.Errorf(file, 0, "not a sparse VMDK extent (no KDMV, COWD or seSparse magic)")
}

func openHosted(file string, r io.ReaderAt, size int64, head []byte) (*sparse, []byte, []string, error) {
	h, err := ParseSparseHeader(head)
	if err != nil {
		return nil, nil, nil, model.Wrapf(err, file, 0, "sparse header")
	}
	var notes []string
	sp := &sparse{kind: kindHosted, file: file, r: r, fileSize: size}
	// The embedded descriptor is located by the header at offset 0, not by
	// the footer (QEMU reads it there too).
	var desc []byte
	if h.DescriptorOffset != 0 && h.DescriptorSize != 0 {
		off := int64(min(h.DescriptorOffset, uint64(size))) * sectorSize
		n := int64(min(h.DescriptorSize, maxDescriptorSize/sectorSize)) * sectorSize
		if off < size {
			n = min(n, size-off)
			desc = make([]byte, n)
			if _, err := r.ReadAt(desc, off); err != nil && err != io.EOF {
				return nil, nil, nil, model.Wrapf(err, file, off, "read embedded descriptor")
			}
			sp.descOff, sp.descLen = off, n
		}
	}
	if h.Capacity == 0 && desc != nil {
		return nil, desc, nil, nil // a descriptor wrapped in a sparse header
	}
	if h.GDOffset == gdAtEnd {
		// Virtual Disk Format 5.0, "Stream-Optimized Compressed Sparse
		// Extents": the footer (a copy of the header with the real gdOffset)
		// sits before the end-of-stream marker. Layout as QEMU reads it:
		// footer marker at EOF-1536, footer at EOF-1024, EOS at EOF-512.
		if size < 1536+sectorSize {
			return nil, nil, nil, model.Errorf(file, 56, "grain directory at end, but the file is too short for a footer")
		}
		var ft [1536]byte
		off := size - 1536
		if _, err := r.ReadAt(ft[:], off); err != nil {
			return nil, nil, nil, model.Wrapf(err, file, off, "read footer")
		}
		le := binary.LittleEndian
		if le.Uint32(ft[8:]) != 0 || le.Uint32(ft[12:]) != MarkerFooter ||
			le.Uint64(ft[1024:]) != 0 || le.Uint32(ft[1032:]) != 0 || le.Uint32(ft[1036:]) != MarkerEOS {
			return nil, nil, nil, model.Errorf(file, off, "invalid stream-optimized footer markers")
		}
		fh, err := ParseSparseHeader(ft[512:1024])
		if err != nil {
			return nil, nil, nil, model.Wrapf(err, file, off+512, "footer")
		}
		if fh.GDOffset == gdAtEnd {
			return nil, nil, nil, model.Errorf(file, off+512+56, "footer also puts the grain directory at the end")
		}
		h = fh
		sp.gdAtEnd = true
	}
	sp.header = h
	if h.Version > 3 {
		return nil, nil, nil, model.Wrapf(errUnsupported, file, 4, "VMDK version %d", h.Version)
	}
	if h.NumGTEsPerGT == 0 || h.NumGTEsPerGT > 512 {
		return nil, nil, nil, model.Errorf(file, 44, "grain table size %d out of range 1..512", h.NumGTEsPerGT)
	}
	if h.GrainSize == 0 || h.GrainSize > maxGrainSectors {
		return nil, nil, nil, model.Errorf(file, 20, "grain size %d sectors out of range", h.GrainSize)
	}
	if h.Capacity > uint64(maxExtentSectors) {
		return nil, nil, nil, model.Errorf(file, 12, "capacity %d sectors is absurd", h.Capacity)
	}
	if h.Overhead > uint64(size)/sectorSize {
		return nil, nil, nil, model.Errorf(file, 64, "file truncated: header says %d sectors of metadata, file has %d bytes", h.Overhead, size)
	}
	sp.compressed = h.CompressAlgorithm == 1
	if h.CompressAlgorithm > 1 {
		return nil, nil, nil, model.Wrapf(errUnsupported, file, 77, "compression algorithm %d", h.CompressAlgorithm)
	}
	if h.Flags&flagCompressed != 0 && !sp.compressed {
		return nil, nil, nil, model.Errorf(file, 8, "compressed flag set without a compression algorithm")
	}
	sp.markers = h.Flags&flagMarkers != 0
	sp.zeroGrain = h.Flags&flagZeroGrain != 0
	sp.grainSize = int64(h.GrainSize) * sectorSize
	if sp.compressed && sp.grainSize > maxCompressedGrain {
		return nil, nil, nil, model.Errorf(file, 20, "compressed grain size %d bytes exceeds %d", sp.grainSize, maxCompressedGrain)
	}
	sp.gtEntries = int64(h.NumGTEsPerGT)
	sp.gtBytes = sp.gtEntries * 4
	sp.capacity = int64(h.Capacity) * sectorSize
	span := uint64(h.NumGTEsPerGT) * h.GrainSize
	nGD := int64((h.Capacity + span - 1) / span)
	if h.GDOffset == 0 && nGD > 0 {
		return nil, nil, nil, model.Errorf(file, 56, "grain directory offset is 0")
	}
	if h.GDOffset > uint64(size) {
		return nil, nil, nil, model.Errorf(file, 56, "grain directory at sector %d is beyond the end of the file", h.GDOffset)
	}
	sp.gdOffset = int64(h.GDOffset) * sectorSize
	if sp.gd, err = sp.readDir(sp.gdOffset, nGD, "grain directory"); err != nil {
		return nil, nil, nil, err
	}
	if h.Flags&flagRGD != 0 && h.RGDOffset != 0 {
		if h.RGDOffset > uint64(size) {
			notes = append(notes, fmt.Sprintf("redundant grain directory offset (sector %d) is beyond the end of the file; using the primary", h.RGDOffset))
		} else {
			sp.rgdOffset = int64(h.RGDOffset) * sectorSize
			rgd, err := sp.readDir(sp.rgdOffset, nGD, "redundant grain directory")
			if err != nil {
				notes = append(notes, "redundant grain directory unreadable; using the primary: "+err.Error())
			} else {
				sp.rgd = rgd
				notes = append(notes, sp.crossCheck()...)
			}
		}
	}
	return sp, desc, notes, nil
}

// crossCheck compares the grain tables the two directories point at.
func (sp *sparse) crossCheck() []string {
	checked := 0
	for i := range sp.gd {
		a, b := sp.gd[i], sp.rgd[i]
		if (a == 0) != (b == 0) {
			return []string{fmt.Sprintf("redundant grain directory disagrees with the primary at entry %d (file %s offset %d); using the primary", i, sp.file, sp.rgdOffset+int64(i)*4)}
		}
		if a == 0 || a == b {
			continue
		}
		if checked >= crossCheckTables {
			return []string{fmt.Sprintf("redundant grain directory cross-check limited to the first %d grain tables", crossCheckTables)}
		}
		checked++
		ta, errA := sp.loadGT(a)
		tb, errB := sp.loadGT(b)
		if errA != nil || errB != nil {
			return []string{fmt.Sprintf("grain table %d or its redundant copy is unreadable; using the primary", i)}
		}
		for j := range ta {
			if ta[j] != tb[j] {
				return []string{fmt.Sprintf("redundant grain table %d disagrees with the primary at entry %d (file %s offset %d); using the primary", i, j, sp.file, b+int64(j)*4)}
			}
		}
	}
	return nil
}

// openCOWD opens an ESX Server sparse extent (Virtual Disk Format 1.1, "ESX
// Server Sparse Extents"), as QEMU's vmdk_open_vmfs_sparse does.
func openCOWD(file string, r io.ReaderAt, size int64, head []byte) (*sparse, error) {
	h, err := ParseCOWDHeader(head)
	if err != nil {
		return nil, model.Wrapf(err, file, 0, "COWD header")
	}
	if h.GrainSize == 0 || h.GrainSize > maxGrainSectors {
		return nil, model.Errorf(file, 16, "grain size %d sectors out of range", h.GrainSize)
	}
	sp := &sparse{kind: kindCOWD, file: file, r: r, fileSize: size,
		grainSize: int64(h.GrainSize) * sectorSize, gtEntries: cowdGTEntries, gtBytes: cowdGTEntries * 4,
		capacity: int64(h.NumSectors) * sectorSize, gdOffset: int64(h.GDOffset) * sectorSize}
	need := (int64(h.NumSectors) + cowdGTEntries*int64(h.GrainSize) - 1) / (cowdGTEntries * int64(h.GrainSize))
	if int64(h.NumGDEntries) < need {
		return nil, model.Errorf(file, 24, "grain directory has %d entries, %d sectors need %d", h.NumGDEntries, h.NumSectors, need)
	}
	if sp.gd, err = sp.readDir(sp.gdOffset, int64(h.NumGDEntries), "grain directory"); err != nil {
		return nil, err
	}
	return sp, nil
}

// openSE opens an ESXi seSparse extent, following QEMU's vmdk_open_se_sparse
// (the format is not publicly documented).
func openSE(file string, r io.ReaderAt, size int64, head []byte) (*sparse, error) {
	if len(head) < 512 {
		return nil, model.Errorf(file, 0, "seSparse header truncated")
	}
	h, err := ParseSESparseHeader(head[:512])
	if err != nil {
		return nil, model.Wrapf(err, file, 0, "seSparse header")
	}
	if h.Capacity > uint64(maxExtentSectors) {
		return nil, model.Errorf(file, 16, "capacity %d sectors is absurd", h.Capacity)
	}
	for _, o := range []uint64{h.VolatileHeaderOffset, h.GrainDirOffset, h.GrainTablesOffset, h.GrainsOffset, h.GrainDirSize} {
		if o > uint64(size)/sectorSize {
			return nil, model.Errorf(file, 0, "seSparse header points beyond the end of the file")
		}
	}
	vo := int64(h.VolatileHeaderOffset) * sectorSize
	var vb [512]byte
	if _, err := r.ReadAt(vb[:], vo); err != nil {
		return nil, model.Wrapf(err, file, vo, "read seSparse volatile header")
	}
	if err := checkSESparseVolatile(vb[:]); err != nil {
		return nil, model.Wrapf(err, file, vo, "seSparse volatile header")
	}
	sp := &sparse{kind: kindSE, file: file, r: r, fileSize: size, se: h,
		grainSize: int64(h.GrainSize) * sectorSize, gtEntries: int64(h.GrainTableSize) * sectorSize / 8,
		gtBytes: int64(h.GrainTableSize) * sectorSize, capacity: int64(h.Capacity) * sectorSize,
		gdOffset: int64(h.GrainDirOffset) * sectorSize, seGrains: int64(h.GrainsOffset) * sectorSize}
	nGD := int64(h.GrainDirSize) * sectorSize / 8
	if need := (sp.capacity + sp.gtEntries*sp.grainSize - 1) / (sp.gtEntries * sp.grainSize); nGD < need {
		return nil, model.Errorf(file, 136, "grain directory has %d entries, capacity needs %d", nGD, need)
	}
	if sp.gd, err = sp.readDir(sp.gdOffset, nGD, "grain directory"); err != nil {
		return nil, err
	}
	return sp, nil
}
