package qcow2

import (
	"encoding/binary"
	"fmt"
	"sort"
	"strings"

	"github.com/imgaudit/imgaudit/formats/model"
)

// Limits from QEMU's block/qcow2.h. An image that exceeds one is refused
// with a FormatError before anything of that size is allocated.
const (
	maxL1Bytes           = 32 << 20 // QCOW_MAX_L1_SIZE
	maxRefcountTable     = 8 << 20  // QCOW_MAX_REFTABLE_SIZE
	maxSnapshots         = 65536    // QCOW_MAX_SNAPSHOTS
	maxSnapshotTable     = 64 << 20 // QCOW_MAX_SNAPSHOTS_SIZE
	maxSnapshotExtra     = 1024     // QCOW_MAX_SNAPSHOT_EXTRA_DATA
	maxBackingName       = 1023
	maxBitmaps           = 65535 // QCOW2_MAX_BITMAPS
	maxBitmapDirectory   = 1024 * maxBitmaps
	maxOffset            = int64(1) << 56 // host offsets are 56-bit
	minClusterBits       = 9
	maxClusterBits       = 21
	minClusterBitsSubclu = 14 // extended L2 needs 32 subclusters of >= 512 B
	v2HeaderLen          = 72
	v3HeaderLen          = 104
)

// Feature bits (docs/interop/qcow2.txt).
const (
	incompatDirty       = 1 << 0
	incompatCorrupt     = 1 << 1
	incompatDataFile    = 1 << 2
	incompatCompression = 1 << 3
	incompatExtendedL2  = 1 << 4
	incompatKnown       = incompatDirty | incompatCorrupt | incompatDataFile | incompatCompression | incompatExtendedL2

	compatLazyRefcounts = 1 << 0

	autoclearBitmaps     = 1 << 0
	autoclearDataFileRaw = 1 << 1
)

// Header extension types.
const (
	extEnd           = 0x00000000
	extBackingFormat = 0xE2792ACA
	extFeatureNames  = 0x6803F857
	extBitmaps       = 0x23852875
	extCrypto        = 0x0537BE77
	extDataFile      = 0x44415441
)

const (
	compressionZlib = 0
	compressionZstd = 1
)

// featureKey names one bit of one feature field in the feature name table.
type featureKey struct {
	kind uint8 // 0 incompatible, 1 compatible, 2 autoclear
	bit  uint8
}

// bitmapsExt is the bitmaps header extension.
type bitmapsExt struct {
	count  uint32
	dirLen uint64
	dirOff uint64
}

// header is a parsed qcow2 header with its extensions.
type header struct {
	version       uint32
	backingOff    uint64
	backingSize   uint32
	clusterBits   uint32
	size          uint64
	cryptMethod   uint32
	l1Size        uint32
	l1Off         uint64
	rtOff         uint64
	rtClusters    uint32
	nbSnapshots   uint32
	snapshotsOff  uint64
	incompat      uint64
	compat        uint64
	autoclear     uint64
	refcountOrder uint32
	headerLen     uint32
	compression   uint8

	backingName   string
	backingFormat string
	dataFile      string
	dataFileOff   int64 // where the data file name lies in the header
	hasDataExt    bool
	featureNames  map[featureKey]string
	bitmaps       *bitmapsExt
	luksOff       uint64
	luksLen       uint64
	hasLuks       bool
	// extensionsEnd is the offset just past the last header extension.
	extensionsEnd int64
}

func (h *header) clusterSize() int64  { return 1 << h.clusterBits }
func (h *header) extendedL2() bool    { return h.incompat&incompatExtendedL2 != 0 }
func (h *header) hasDataFile() bool   { return h.incompat&incompatDataFile != 0 }
func (h *header) dataFileRaw() bool   { return h.hasDataFile() && h.autoclear&autoclearDataFileRaw != 0 }
func (h *header) dirty() bool         { return h.incompat&incompatDirty != 0 }
func (h *header) corrupt() bool       { return h.incompat&incompatCorrupt != 0 }
func (h *header) refcountBits() int64 { return 1 << h.refcountOrder }

// l2Entries is the number of entries of one L2 table.
func (h *header) l2Entries() int64 {
	if h.extendedL2() {
		return h.clusterSize() / 16
	}
	return h.clusterSize() / 8
}

// l1Coverage is the number of guest bytes one L1 entry maps.
func (h *header) l1Coverage() int64 { return h.clusterSize() * h.l2Entries() }

// minHeadLen is how many bytes parseHeader needs to see the fixed fields.
const minHeadLen = v2HeaderLen

// parseHeader parses the header, its extensions and the backing file name
// from head, the first bytes of the file (at least the first cluster plus
// room for the backing name, or the whole file when it is shorter). fileSize
// bounds table offsets. It never allocates more than len(head).
func parseHeader(name string, head []byte, fileSize int64) (*header, error) {
	be := binary.BigEndian
	if len(head) < minHeadLen {
		return nil, model.Errorf(name, 0, "qcow2 header truncated (%d bytes)", len(head))
	}
	if string(head[:4]) != magic {
		return nil, model.Errorf(name, 0, "not a qcow2 image (bad magic)")
	}
	h := &header{
		version:      be.Uint32(head[4:]),
		backingOff:   be.Uint64(head[8:]),
		backingSize:  be.Uint32(head[16:]),
		clusterBits:  be.Uint32(head[20:]),
		size:         be.Uint64(head[24:]),
		cryptMethod:  be.Uint32(head[32:]),
		l1Size:       be.Uint32(head[36:]),
		l1Off:        be.Uint64(head[40:]),
		rtOff:        be.Uint64(head[48:]),
		rtClusters:   be.Uint32(head[56:]),
		nbSnapshots:  be.Uint32(head[60:]),
		snapshotsOff: be.Uint64(head[64:]),
	}
	switch h.version {
	case 2:
		h.refcountOrder = 4
		h.headerLen = v2HeaderLen
	case 3:
		if len(head) < v3HeaderLen {
			return nil, model.Errorf(name, 0, "qcow2 v3 header truncated (%d bytes)", len(head))
		}
		h.incompat = be.Uint64(head[72:])
		h.compat = be.Uint64(head[80:])
		h.autoclear = be.Uint64(head[88:])
		h.refcountOrder = be.Uint32(head[96:])
		h.headerLen = be.Uint32(head[100:])
		if h.headerLen < v3HeaderLen {
			return nil, model.Errorf(name, 100, "header_length %d is below the v3 minimum %d", h.headerLen, v3HeaderLen)
		}
	default:
		return nil, model.Wrapf(model.ErrUnsupported, name, 4, "qcow2 version %d", h.version)
	}
	if h.clusterBits < minClusterBits || h.clusterBits > maxClusterBits {
		return nil, model.Errorf(name, 20, "cluster_bits %d outside %d..%d", h.clusterBits, minClusterBits, maxClusterBits)
	}
	cs := h.clusterSize()
	if int64(h.headerLen) > cs {
		return nil, model.Errorf(name, 100, "header_length %d exceeds the cluster size %d", h.headerLen, cs)
	}
	if int64(h.headerLen) > int64(len(head)) {
		return nil, model.Errorf(name, 100, "header_length %d runs past the end of the file", h.headerLen)
	}
	if h.version == 3 && h.headerLen > v3HeaderLen {
		h.compression = head[104]
	}
	if unknown := h.incompat &^ incompatKnown; unknown != 0 {
		// Read the feature name table first so that the error can name them.
		_ = h.parseExtensions(name, head)
		return nil, model.Wrapf(model.ErrUnsupported, name, 72, "unknown incompatible feature bits %s", h.describeBits(0, unknown))
	}
	if h.refcountOrder > 6 {
		return nil, model.Errorf(name, 96, "refcount_order %d exceeds 6", h.refcountOrder)
	}
	switch h.cryptMethod {
	case 0:
	case 1:
		return nil, model.Wrapf(model.ErrEncrypted, name, 32, "qcow2 AES encryption (crypt_method 1)")
	case 2:
		return nil, model.Wrapf(model.ErrEncrypted, name, 32, "qcow2 LUKS encryption (crypt_method 2)")
	default:
		return nil, model.Errorf(name, 32, "unknown crypt_method %d", h.cryptMethod)
	}
	switch h.compression {
	case compressionZlib, compressionZstd:
	default:
		return nil, model.Wrapf(model.ErrUnsupported, name, 104, "compression_type %d", h.compression)
	}
	if h.compression != compressionZlib && h.incompat&incompatCompression == 0 {
		return nil, model.Errorf(name, 72, "compression_type %d without the compression-type feature bit", h.compression)
	}
	if h.extendedL2() && h.clusterBits < minClusterBitsSubclu {
		return nil, model.Errorf(name, 20, "extended L2 entries need clusters of at least 16 KiB (cluster_bits %d)", h.clusterBits)
	}

	// Offsets: 56-bit, cluster-aligned where QEMU requires it.
	for _, f := range []struct {
		what string
		at   int64
		v    uint64
	}{{"l1_table_offset", 40, h.l1Off}, {"refcount_table_offset", 48, h.rtOff}, {"snapshots_offset", 64, h.snapshotsOff}} {
		if int64(f.v) < 0 || int64(f.v) >= maxOffset {
			return nil, model.Errorf(name, f.at, "%s 0x%x is not a valid host offset", f.what, f.v)
		}
		if f.v&uint64(cs-1) != 0 {
			return nil, model.Errorf(name, f.at, "%s 0x%x is not cluster aligned", f.what, f.v)
		}
	}

	// L1: size cap, and big enough for the virtual size.
	if int64(h.size) < 0 {
		return nil, model.Errorf(name, 24, "virtual size %d too large", h.size)
	}
	if int64(h.l1Size) > maxL1Bytes/8 {
		return nil, model.Errorf(name, 36, "l1_size %d exceeds QEMU's limit of %d entries", h.l1Size, maxL1Bytes/8)
	}
	need := ceilDiv(int64(h.size), h.l1Coverage())
	if need > maxL1Bytes/8 {
		return nil, model.Errorf(name, 24, "virtual size %d needs an L1 table larger than %d bytes", h.size, maxL1Bytes)
	}
	if int64(h.l1Size) < need {
		return nil, model.Errorf(name, 36, "l1_size %d is too small for virtual size %d (needs %d)", h.l1Size, h.size, need)
	}
	if h.l1Size > 0 && int64(h.l1Off)+int64(h.l1Size)*8 > fileSize {
		return nil, model.Errorf(name, 40, "L1 table (%d entries at 0x%x) runs past the end of the file", h.l1Size, h.l1Off)
	}
	if h.l1Size > 0 && h.l1Off == 0 {
		return nil, model.Errorf(name, 40, "L1 table at offset 0 overlaps the header")
	}

	// Refcount table.
	if int64(h.rtClusters)*cs > maxRefcountTable {
		return nil, model.Errorf(name, 56, "refcount table of %d clusters exceeds QEMU's limit of %d bytes", h.rtClusters, maxRefcountTable)
	}
	if int64(h.rtOff)+int64(h.rtClusters)*cs > fileSize {
		return nil, model.Errorf(name, 48, "refcount table (%d clusters at 0x%x) runs past the end of the file", h.rtClusters, h.rtOff)
	}

	// Snapshots.
	if h.nbSnapshots > maxSnapshots {
		return nil, model.Errorf(name, 60, "%d snapshots exceed QEMU's limit of %d", h.nbSnapshots, maxSnapshots)
	}
	if h.nbSnapshots > 0 && int64(h.snapshotsOff) >= fileSize {
		return nil, model.Errorf(name, 64, "snapshot table at 0x%x lies past the end of the file", h.snapshotsOff)
	}

	// Backing file name: at most 1023 bytes, inside the first cluster.
	if h.backingOff != 0 {
		if h.backingOff > uint64(cs) {
			return nil, model.Errorf(name, 8, "backing_file_offset 0x%x lies outside the first cluster", h.backingOff)
		}
		if h.backingSize > maxBackingName {
			return nil, model.Errorf(name, 16, "backing file name of %d bytes exceeds %d", h.backingSize, maxBackingName)
		}
		end := h.backingOff + uint64(h.backingSize)
		if end > uint64(len(head)) {
			return nil, model.Errorf(name, int64(h.backingOff), "backing file name runs past the end of the file")
		}
		h.backingName = string(head[h.backingOff:end])
	}

	if err := h.parseExtensions(name, head); err != nil {
		return nil, err
	}
	if h.hasDataFile() && !h.hasDataExt {
		return nil, model.Errorf(name, 72, "external data file bit set but no data file name extension")
	}
	return h, nil
}

// parseExtensions reads the header extensions that follow the fixed header,
// up to the backing file name or the end of the first cluster.
func (h *header) parseExtensions(name string, head []byte) error {
	be := binary.BigEndian
	end := min(h.clusterSize(), int64(len(head)))
	if h.backingOff != 0 && int64(h.backingOff) < end {
		end = int64(h.backingOff)
	}
	off := int64(h.headerLen)
	h.extensionsEnd = off
	for off+8 <= end {
		typ := be.Uint32(head[off:])
		ln := int64(be.Uint32(head[off+4:]))
		if typ == extEnd {
			h.extensionsEnd = off + 8
			return nil
		}
		data := off + 8
		if ln > end-data {
			return model.Errorf(name, off, "header extension 0x%08x of %d bytes runs past the header area", typ, ln)
		}
		b := head[data : data+ln]
		switch typ {
		case extBackingFormat:
			if ln >= 16 {
				return model.Errorf(name, off, "backing format name of %d bytes is too long", ln)
			}
			h.backingFormat = string(b)
		case extFeatureNames:
			if h.featureNames == nil {
				h.featureNames = map[featureKey]string{}
			}
			for i := int64(0); i+48 <= ln; i += 48 {
				e := b[i : i+48]
				n := string(e[2:])
				if j := strings.IndexByte(n, 0); j >= 0 {
					n = n[:j]
				}
				if len(h.featureNames) < 3*64 {
					h.featureNames[featureKey{e[0], e[1]}] = printable(n)
				}
			}
		case extBitmaps:
			if ln < 24 {
				return model.Errorf(name, off, "bitmaps extension of %d bytes is too short", ln)
			}
			h.bitmaps = &bitmapsExt{count: be.Uint32(b), dirLen: be.Uint64(b[8:]), dirOff: be.Uint64(b[16:])}
		case extCrypto:
			if ln < 16 {
				return model.Errorf(name, off, "crypto header extension of %d bytes is too short", ln)
			}
			h.luksOff, h.luksLen, h.hasLuks = be.Uint64(b), be.Uint64(b[8:]), true
		case extDataFile:
			h.dataFile = string(b)
			h.dataFileOff = data
			h.hasDataExt = true
		}
		off = data + (ln+7)&^7
		h.extensionsEnd = min(off, end)
	}
	return nil
}

// describeBits lists the bits set in v, with their names from the feature
// name table when the image has one.
func (h *header) describeBits(kind uint8, v uint64) string {
	var parts []string
	for bit := range 64 {
		if v&(1<<bit) == 0 {
			continue
		}
		if n, ok := h.featureNames[featureKey{kind, uint8(bit)}]; ok && n != "" {
			parts = append(parts, fmt.Sprintf("%d (%s)", bit, n))
		} else {
			parts = append(parts, fmt.Sprint(bit))
		}
	}
	sort.Strings(parts)
	return strings.Join(parts, ", ")
}

// printable keeps a name from the image safe to show: ASCII graphic runes
// only, others replaced, and bounded in length.
func printable(s string) string { return printableN(s, 64) }

// printableName is printable for a file name: whole up to QEMU's cap on
// backing file names, so that the name a refusal reports is the name the
// image wrote.
func printableName(s string) string { return printableN(s, maxBackingName) }

// printableN keeps at most n bytes of s and replaces control and non-ASCII
// bytes by '?'.
func printableN(s string, n int) string {
	if len(s) > n {
		s = s[:n]
	}
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

func ceilDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 {
		q++
	}
	return q
}
