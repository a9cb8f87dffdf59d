package guestfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
)

// probeSize covers every magic we test: btrfs's superblock sits at 64 KiB.
const probeSize = 0x10000 + 0x100

// readHead reads up to probeSize bytes at off; a short partition gives a
// short head.
func readHead(r io.ReaderAt, off, size int64) ([]byte, error) {
	n := int64(probeSize)
	if size < n {
		n = size
	}
	if n <= 0 {
		return nil, nil
	}
	b := make([]byte, n)
	got, err := r.ReadAt(b, off)
	if got == len(b) {
		return b, nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		return b[:got], nil
	}
	return nil, err
}

// detectFS names the filesystem or container whose magic starts head: "ext2",
// "ext3", "ext4" (refined later by the ext reader), "vfat", "iso9660",
// "squashfs", "xfs", "btrfs", "ntfs", "lvm2", "luks", "swap", or "".
func detectFS(head []byte) string {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	switch {
	case at(0, "LUKS\xba\xbe"):
		return "luks"
	case at(0, "XFSB"):
		return "xfs"
	case at(0, "hsqs"):
		return "squashfs"
	case at(3, "NTFS    "):
		return "ntfs"
	case ext4.Probe(head):
		return "ext4"
	case at(0x10040, "_BHRfS_M"):
		return "btrfs"
	case at(0x8001, "CD001"):
		return "iso9660"
	case at(4096-10, "SWAPSPACE2") || at(4096-10, "SWAP-SPACE"):
		return "swap"
	}
	for s := 0; s < 4; s++ { // LVM2 label in one of the first four sectors
		if at(512*s, "LABELONE") && at(512*s+0x18, "LVM2 001") {
			return "lvm2"
		}
	}
	if isFATBoot(head) {
		return "vfat"
	}
	return ""
}

// isFATBoot checks a FAT boot sector: signature, a jump, and a sane BPB.
func isFATBoot(b []byte) bool {
	if len(b) < 512 || binary.LittleEndian.Uint16(b[510:]) != 0xAA55 {
		return false
	}
	if b[0] != 0xEB && b[0] != 0xE9 {
		return false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	spc := b[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	if binary.LittleEndian.Uint16(b[14:]) == 0 || b[16] == 0 {
		return false // no reserved sectors or no FAT
	}
	return bytes.HasPrefix(b[54:], []byte("FAT")) || bytes.HasPrefix(b[82:], []byte("FAT32")) ||
		binary.LittleEndian.Uint16(b[22:]) != 0 || binary.LittleEndian.Uint32(b[36:]) != 0
}
