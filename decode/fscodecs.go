package decode

import (
	"fmt"
	"io"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/btrfs"
	"github.com/imgaudit/imgaudit/report"
)

// What filesystems store compressed: btrfs's compressed extents (its
// transparent compression, which Fedora turns on by default) and NTFS's
// compressed files. A file's bytes are only in them. They have no magic
// of their own; the filesystem's records say which is which, so they are
// only decoded as a container of that codec (Options.Codec).
const (
	BtrfsZlib = "btrfs-zlib" // one zlib stream (RFC 1950)
	BtrfsLZO  = "btrfs-lzo"  // btrfs's own framing of LZO1X segments
	BtrfsZstd = "btrfs-zstd" // one zstd frame
	// NTFSLZNT1 is a file that NTFS stores compressed (LZNT1, in units
	// with holes), which the filesystem's reader decompresses: the
	// container's bytes are already the file's, and decode reads them as
	// they are.
	NTFSLZNT1 = "ntfs-lznt1"
)

// Magicless reports codecs that have no magic number: a container of one
// is only decoded as that codec (Options.Codec), never found by Sniff.
func Magicless(codec string) bool {
	switch codec {
	case Deflate, BtrfsZlib, BtrfsLZO, BtrfsZstd, NTFSLZNT1:
		return true
	}
	return false
}

// openBtrfs starts the decoder of a btrfs compressed extent's stream
// (guestfs/btrfs reads them for files opened by path as well).
func (w *walker) openBtrfs(kind string, s *src) (r io.Reader, cost int64, exact bool, err error) {
	codec := strings.TrimPrefix(kind, "btrfs-")
	cost = btrfs.ExtentMemory(codec)
	if w.mem+cost > w.lim.MaxDecoderMemory {
		return nil, 0, false, &capError{reason: fmt.Sprintf("%s decoder over the %s decoder memory cap", kind, report.HumanBytes(w.lim.MaxDecoderMemory))}
	}
	if err := w.hold(cost); err != nil {
		return nil, 0, false, err
	}
	dec, err := btrfs.NewExtentReader(codec, s.br)
	if err != nil {
		w.unhold(cost)
		return nil, 0, false, err
	}
	return dec, cost, false, nil
}
