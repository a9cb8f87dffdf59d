package guestfs

import (
	"errors"
	"io"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/btrfs"
	"github.com/imgaudit/imgaudit/guestfs/ext4"
	"github.com/imgaudit/imgaudit/guestfs/fat"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/iso9660"
	"github.com/imgaudit/imgaudit/guestfs/luks"
	"github.com/imgaudit/imgaudit/guestfs/lvm"
	"github.com/imgaudit/imgaudit/guestfs/ntfs"
	"github.com/imgaudit/imgaudit/guestfs/squashfs"
	"github.com/imgaudit/imgaudit/guestfs/ufs"
	"github.com/imgaudit/imgaudit/guestfs/xfs"
)

// probeSize covers every magic we test: btrfs's superblock sits at 64 KiB,
// and so does UFS2's, whose magic ends 1376 bytes into it.
const probeSize = 0x10000 + 0x600

// drivers lists the filesystems guestfs reads, in probing order: the
// stricter magics first, FAT's loose boot-sector check last.
func drivers() []fsys.Driver {
	return []fsys.Driver{
		xfs.Driver(),
		squashfs.Driver(),
		btrfs.Driver(),
		ext4.Driver(),
		iso9660.Driver(),
		ntfs.Driver(),
		ufs.Driver(),
		fat.Driver(),
	}
}

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

// detectFS names what head (a partition's first bytes) holds: a container
// ("luks", "lvm2"), a filesystem some driver reads (with that driver), one
// recognised but not read ("btrfs", "ntfs", "swap", "ufs1", "zfs"), or "".
func detectFS(head []byte, drivers []fsys.Driver) (string, *fsys.Driver) {
	at := func(off int, magic string) bool {
		return len(head) >= off+len(magic) && string(head[off:off+len(magic)]) == magic
	}
	if luks.Probe(head) {
		return "luks", nil
	}
	if lvm.Probe(head) {
		return "lvm2", nil
	}
	for i := range drivers {
		if drivers[i].Probe(head) {
			return drivers[i].Name, &drivers[i]
		}
	}
	switch {
	case at(3, "NTFS    "):
		return "ntfs", nil
	case at(0x10040, "_BHRfS_M"):
		return "btrfs", nil
	case len(head) >= 4096 && SwapMagic(head[4096-10:4096]):
		return "swap", nil
	case ufs.IsUFS1(head):
		return "ufs1", nil
	}
	if _, _, ok := zfsLabel(head); ok {
		return "zfs", nil
	}
	return "", nil
}

// SwapMagic reports whether b, the 10 bytes that end a swap area's first
// 4 KiB page, are mkswap's magic ("SWAPSPACE2", or the old
// "SWAP-SPACE"), or the signature a Linux hibernation image writes there
// while it is in the area: the kernel's (swsusp: "S1SUSPEND"), uswsusp's
// ("ULSUSPEND") or TuxOnIce's ("LINHIB0001"). A hibernated area is
// still swap, and its image is the guest's RAM.
func SwapMagic(b []byte) bool {
	if len(b) != 10 {
		return false
	}
	for _, m := range []string{"SWAPSPACE2", "SWAP-SPACE", "S1SUSPEND", "ULSUSPEND", "LINHIB0001"} {
		if strings.HasPrefix(string(b), m) {
			return true
		}
	}
	return false
}

// Detect names the filesystem or container whose magic starts head (the
// first bytes of a disk or partition; 4 KiB is enough for every kind but
// ISO 9660, btrfs and UFS), or "" when none is recognised. Callers that sniff
// files ("is this a raw disk?") use it instead of testing magics of their
// own.
func Detect(head []byte) string {
	kind, _ := detectFS(head, detectDrivers)
	return kind
}

// detectDrivers is drivers(), made once for Detect, which a container
// layer's scan calls for every file (through formats.Probe); nothing
// changes it.
var detectDrivers = drivers()
