// Package ntfs is a small read-only NTFS reader for package guestfs: the
// paths of files, directories and alternate data streams with the bytes
// that hold them (resident data inside its MFT record included), deleted
// files whose MFT record is still intact, and whether a cluster is
// allocated in $Bitmap.
//
// It is our own, on io.ReaderAt, rather than www.velocidex.com/golang/go-ntfs
// (Velociraptor's parser): go-ntfs reads MFT records into fixed-up copies in
// memory and so gives no device offset for resident data, returns runlists
// relative to the attribute without a bounded decoder, and pulls in
// ordereddict, Velocidex's json and yaml forks and go-spew; what we need
// (runs with cluster numbers, resident data at its place in the record,
// deleted records, $Bitmap) is a few hundred lines on the layout of
// ntfs-3g's layout.h.
//
// Paths come from each record's $FILE_NAME parent reference, not from the
// directory indexes: that way deleted records, which no index lists any
// more, keep their names when their parent directory is still resolvable.
//
// Every structure comes from an untrusted image: the boot sector's sizes
// are checked, MFT records must pass the update sequence check, attributes
// and runlists must stay inside their record, runs inside the volume, and
// the record count, $Bitmap size, runs and path depth are capped.
package ntfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// ErrNotNTFS is returned when the bytes hold no NTFS boot sector.
var ErrNotNTFS = errors.New("ntfs: no NTFS boot sector")

var errCorrupt = errors.New("corrupt")

var le = binary.LittleEndian

// Bounds on what a hostile image can make us hold or do.
const (
	maxClusterSize = 2 << 20
	maxRecordSize  = 64 << 10
	maxRecords     = 1 << 20  // MFT records read (1 GiB of 1 KiB records; ~100 bytes each kept, and their names: maxNameBytes)
	maxBitmapBytes = 64 << 20 // $Bitmap read: 512M clusters, 2 TiB at 4 KiB
	maxMFTRuns     = 1 << 16
	maxTotalRuns   = 8 << 20
	maxDepth       = 4096
	maxAttrList    = 256 << 10
)

// maxNameBytes bounds the bytes of the names ($FILE_NAME) the records
// keep, all together (FS.nameBudget, as Open sets it). A record keeps
// its name and up to maxLinks others, each up to 765 bytes (255 UTF-16
// units): a million records could keep 50 GB. A million records of a
// Windows install keep about 30 MB. Past it, a record's other names,
// then its name, are not kept (the record is not walked), and a note
// says so.
const maxNameBytes = 64 << 20

// Well-known MFT records.
const (
	recMFT    = 0
	recBitmap = 6
	recRoot   = 5
	firstUser = 16 // records below are system files
)

// Probe reports whether head holds the NTFS OEM id of a boot sector.
func Probe(head []byte) bool {
	return len(head) >= 11 && string(head[3:11]) == "NTFS    "
}

// Driver is the fsys driver of NTFS.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "ntfs",
		Probe: Probe,
		Open: func(ctx context.Context, r io.ReaderAt, size int64, name string) (fsys.FS, []string, error) {
			f, err := Open(ctx, r, size, name)
			if err != nil {
				return nil, nil, err
			}
			return f, f.notes, nil
		},
	}
}

// FS is an opened NTFS volume. It is safe for concurrent use: everything
// is read at Open.
type FS struct {
	r           io.ReaderAt
	size        int64
	name        string
	sectorSize  int64
	clusterSize int64
	clusters    int64 // clusters in the volume
	volumeBytes int64 // total sectors × sector size (the backup boot sector follows)
	recordSize  int64
	mft         *fsys.RunFile // the $MFT data stream
	mftRuns     []fsys.Run
	mftCut      int64  // where $MFT's runs start to repeat clusters (setMFT), or -1
	bitmap      []byte // $Bitmap; nil when unreadable or too large
	recs        []record
	// firstChild and next link each record into its parent's children
	// (record numbers; -1 ends a list).
	firstChild, next []int32
	links            map[int32][]namedChild // by directory: live records' other names
	notes            []string
	// nameBytes are the bytes of names the records keep, at most
	// nameBudget (maxNameBytes); namesCut counts the records that keep
	// fewer than they have.
	nameBytes, nameBudget, namesCut int
}

// Open reads the boot sector, the MFT (every record, through $MFT's own
// runlist) and $Bitmap of the NTFS in r[0:size). name ("p1", "disk")
// names the partition in errors and notes.
func Open(ctx context.Context, r io.ReaderAt, size int64, name string) (*FS, error) {
	return open(ctx, r, size, name, maxNameBytes)
}

// open is Open with a budget of nameBudget bytes for the names the
// records keep (tests give less than maxNameBytes).
func open(ctx context.Context, r io.ReaderAt, size int64, name string, nameBudget int) (*FS, error) {
	f := &FS{r: r, size: size, name: name, nameBudget: nameBudget}
	if err := f.readBoot(); err != nil {
		return nil, err
	}
	if err := f.readMFTRuns(); err != nil {
		return nil, model.Wrapf(err, name, f.mftRuns[0].Off, "ntfs: $MFT record 0")
	}
	if err := f.readRecords(ctx); err != nil {
		return nil, err
	}
	if recRoot >= len(f.recs) || f.recs[recRoot].flags&(recValid|recInUse|recDir) != recValid|recInUse|recDir {
		return nil, model.Wrapf(errCorrupt, name, f.recordOffset(recRoot), "ntfs: root directory (MFT record %d) unreadable", recRoot)
	}
	if err := f.readBitmap(); err != nil {
		f.notes = append(f.notes, fmt.Sprintf("$Bitmap unreadable (%v): free and allocated clusters are unknown", err))
	}
	f.link()
	return f, nil
}

func (f *FS) readBoot() error {
	b := make([]byte, 512)
	if err := fsys.ReadFull(f.r, b, 0); err != nil {
		return model.Wrapf(err, f.name, 0, "ntfs: boot sector")
	}
	if !Probe(b) {
		return fmt.Errorf("%s: %w", f.name, ErrNotNTFS)
	}
	bps := int64(le.Uint16(b[0x0B:]))
	spc := int64(b[0x0D])
	if spc > 0x80 {
		if s := 256 - spc; s < 32 {
			spc = 1 << s
		}
	}
	sizeOf := func(v int8) int64 {
		if v < 0 {
			if -int(v) >= 31 {
				return 0
			}
			return 1 << -int(v)
		}
		return int64(v) * bps * spc
	}
	f.sectorSize = bps
	f.clusterSize = bps * spc
	f.recordSize = sizeOf(int8(b[0x40]))
	total := int64(le.Uint64(b[0x28:]))
	mftLCN := int64(le.Uint64(b[0x30:]))
	switch {
	case bps < 256 || bps > 4096 || bps&(bps-1) != 0,
		spc == 0 || spc&(spc-1) != 0 || f.clusterSize > maxClusterSize,
		f.recordSize < 512 || f.recordSize > maxRecordSize || f.recordSize&(f.recordSize-1) != 0,
		total <= 0 || total > f.size/bps+1:
		return model.Wrapf(errCorrupt, f.name, 0, "ntfs: boot sector: %d-byte sectors, %d per cluster, %d-byte records, %d sectors in a %d-byte partition",
			bps, spc, f.recordSize, total, f.size)
	}
	f.volumeBytes = total * bps
	f.clusters = f.volumeBytes / f.clusterSize
	if mftLCN <= 0 || mftLCN >= f.clusters {
		return model.Wrapf(errCorrupt, f.name, 0x30, "ntfs: boot sector: $MFT at cluster %d of %d", mftLCN, f.clusters)
	}
	f.mftRuns = []fsys.Run{{Off: mftLCN * f.clusterSize, Len: f.recordSize}}
	return nil
}

// Kind is "ntfs".
func (f *FS) Kind() string { return "ntfs" }

// Notes say what Open could not read.
func (f *FS) Notes() []string { return f.notes }

// State says whether a byte that no walked run covers is allocated (its
// cluster is set in $Bitmap, or it is the backup boot sector after the
// volume) or free; unknown when $Bitmap could not be read.
func (f *FS) State(off int64) string {
	switch {
	case off < 0 || off >= f.size:
		return fsys.StateUnknown
	case off >= f.volumeBytes && off < f.volumeBytes+f.sectorSize:
		return fsys.StateAllocated // the backup boot sector
	case off >= f.clusters*f.clusterSize:
		return fsys.StateFree // inside the partition, past the volume
	case f.bitmap == nil:
		return fsys.StateUnknown
	}
	if f.clusterUsed(off / f.clusterSize) {
		return fsys.StateAllocated
	}
	return fsys.StateFree
}

func (f *FS) clusterUsed(c int64) bool {
	return c < 0 || c/8 >= int64(len(f.bitmap)) || f.bitmap[c/8]&(1<<(c%8)) != 0
}

// readBitmap reads $Bitmap's unnamed data stream (record 6).
func (f *FS) readBitmap() error {
	need := (f.clusters + 7) / 8
	if need > maxBitmapBytes {
		return fmt.Errorf("%d bytes: too large", need)
	}
	if recBitmap >= len(f.recs) {
		return fmt.Errorf("no record %d", recBitmap)
	}
	s := f.recs[recBitmap].stream("")
	if s == nil || s.resident || s.size < need {
		return fmt.Errorf("record %d: no $DATA of %d bytes", recBitmap, need)
	}
	b := make([]byte, need)
	if _, err := fsys.NewRunFile(f.r, s.size, s.runs).ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	f.bitmap = b
	return nil
}

// recordOffset is the device offset of MFT record no, for errors; -1 when
// the MFT's runs do not map it.
func (f *FS) recordOffset(no int64) int64 {
	if rs := f.recordRuns(no, 0, 1, 0, nil); len(rs) > 0 {
		return rs[0].Off
	}
	return -1
}
