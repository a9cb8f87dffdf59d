package guestfs

import (
	"encoding/binary"
	"fmt"
)

// A ZFS vdev (a pool's disk or partition) starts with a label: 16 KiB
// of blank space and boot header, then the pool's configuration as an
// XDR-encoded nvlist (OpenZFS's vdev_impl.h, vdev_phys_t; nvpair.c's XDR
// encoding), whose first pairs are the pool's version and name. ZFS is not
// read here: the label names the pool, so that a partition imgaudit cannot
// attribute says what it holds rather than "no filesystem recognised".

const (
	zfsNVListAt = 16 << 10
	// zfsNVListEnd bounds the pairs read: the label's nvlist area ends
	// at 128 KiB; the head a probe reads holds its first 51 KiB.
	zfsNVListEnd  = 128 << 10
	zfsMaxPairs   = 64
	zfsTypeUint64 = 8 // DATA_TYPE_UINT64
	zfsTypeString = 9 // DATA_TYPE_STRING
)

// zfsLabel reads the pool's name and version from the first label's
// nvlist in head, a vdev's first bytes: ok when it starts as every label
// does (XDR encoding, then a "version" pair). Each pair is [encoded size,
// decoded size, name length, name padded to 4 bytes, type, element count,
// value], big-endian; a zero encoded size ends the list.
func zfsLabel(head []byte) (pool string, version uint64, ok bool) {
	if len(head) < zfsNVListAt+64 || string(head[zfsNVListAt:zfsNVListAt+2]) != "\x01\x01" {
		return "", 0, false
	}
	be := binary.BigEndian
	off := zfsNVListAt + 12 // encoding (4 bytes), nvl_version, nvl_nvflag
	end := min(len(head), zfsNVListEnd)
	for i := 0; i < zfsMaxPairs && off+24 <= end; i++ {
		size := int(be.Uint32(head[off:]))
		if size == 0 {
			break
		}
		nameLen := int(be.Uint32(head[off+8:]))
		if size < 24 || off+size > end || nameLen <= 0 || nameLen > size {
			break
		}
		nameEnd := off + 12 + nameLen
		pad := (nameLen + 3) &^ 3
		valAt := off + 12 + pad
		if valAt+8 > off+size {
			break
		}
		name := trimNUL(string(head[off+12 : nameEnd]))
		typ, n := be.Uint32(head[valAt:]), be.Uint32(head[valAt+4:])
		val := head[valAt+8 : off+size]
		switch {
		case i == 0 && (name != "version" || typ != zfsTypeUint64 || n != 1 || len(val) < 8):
			return "", 0, false
		case i == 0:
			version, ok = be.Uint64(val), true
		case name == "name" && typ == zfsTypeString && n == 1 && len(val) >= 4:
			l := int(be.Uint32(val))
			if l <= len(val)-4 {
				pool = printableName(string(val[4 : 4+l]))
			}
			return pool, version, ok
		}
		off += size
	}
	return pool, version, ok
}

func trimNUL(s string) string {
	for len(s) > 0 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	return s
}

// printableName keeps at most 64 bytes of a name from a label, with
// control and non-ASCII bytes as '?'.
func printableName(s string) string {
	b := []byte(s[:min(len(s), 64)])
	for i, c := range b {
		if c < 0x20 || c > 0x7e {
			b[i] = '?'
		}
	}
	return string(b)
}

// zfsNote is what a ZFS vdev's partition says.
func zfsNote(head []byte) string {
	pool, version, _ := zfsLabel(head)
	what := "ZFS pool"
	if pool != "" {
		what += fmt.Sprintf(" %q", pool)
	}
	if version == 5000 {
		what += " (feature flags)"
	} else {
		what += fmt.Sprintf(" (version %d)", version)
	}
	return what
}
