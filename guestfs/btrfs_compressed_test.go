package guestfs

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestBtrfsCompressedRuns: files written to a btrfs mounted with
// compress-force (zstd, zlib, lzo) have their bytes only in compressed
// extents, inline and regular. CompressedRuns lists each with its path,
// codec and file offset, and decoding them (decode's btrfs codecs) gives
// back exactly the bytes written through the kernel's btrfs.
func TestBtrfsCompressedRuns(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "mount")
	var log strings.Builder
	for i := 0; log.Len() < 600<<10; i++ {
		fmt.Fprintf(&log, "Dec  6 10:%02d:%02d web01 sshd[%d]: Accepted publickey for deploy from 10.0.%d.%d\n", i/60%60, i%60, 800+i, i%256, i*7%256)
	}
	// Log lines with random request ids: LZO segments of about 2 KiB,
	// thousands of them, so that some segment header falls within 4 bytes
	// of a sector's end (btrfs then pads to the next sector).
	var noisy strings.Builder
	id := make([]byte, 12)
	for noisy.Len() < 12<<20 {
		rand.Read(id)
		fmt.Fprintf(&noisy, "Dec  6 10:00:01 web01 app[4242]: request id=%s status=200\n", hex.EncodeToString(id))
	}
	files := map[string][]byte{
		"/var/log/app.log":  []byte(noisy.String()),
		"/etc/small.conf":   []byte(strings.Repeat("listen = 127.0.0.1:8080\n", 40)), // inline
		"/var/log/auth.log": []byte(log.String()),                                    // several 128 KiB extents
		"/srv/odd-size.txt": []byte(log.String()[:200001]),
	}
	for _, codec := range []string{"zstd", "zlib", "lzo"} {
		t.Run(codec, func(t *testing.T) {
			img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{Live: files}, nil, "compress-force="+codec)
			m, _ := analyzeFile(t, img)
			got := map[string][]byte{}
			runs := map[string]int{}
			err := m.CompressedRuns(context.Background(), func(r CompressedRun) error {
				if r.Codec != codec {
					t.Errorf("%s at %d: codec %q", r.Path, r.FileOff, r.Codec)
				}
				var leaf []byte
				res, err := decode.Walk(context.Background(), r.R, r.Size, decode.Options{Codec: "btrfs-" + r.Codec}, func(l decode.Leaf) error {
					b, err := io.ReadAll(l.R)
					leaf = b
					return err
				})
				if err != nil || len(res.Skipped) > 0 {
					t.Errorf("%s at %d: %v, skipped %v", r.Path, r.FileOff, err, res.Skipped)
				}
				runs[r.Path]++
				buf := got[r.Path]
				if end := r.FileOff + int64(len(leaf)); int64(len(buf)) < end {
					buf = append(buf, make([]byte, end-int64(len(buf)))...)
				}
				copy(buf[r.FileOff:], leaf)
				got[r.Path] = buf
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for p, want := range files {
				// btrfs leaves a tail shorter than a sector uncompressed,
				// in a run of its own that the raw scan reads.
				b := got[p]
				n := min(len(b), len(want))
				if len(want)-n >= 4096 || !bytes.Equal(b[:n], want[:n]) {
					t.Errorf("%s: decoded %d bytes from %d runs, not the file's %d", p, len(b), runs[p], len(want))
				}
				if rest := b[n:]; len(bytes.Trim(rest, "\x00")) > 0 {
					t.Errorf("%s: %d bytes past the end that are not zero padding", p, len(rest))
				}
			}
			if runs["/var/log/auth.log"] < 5 {
				t.Errorf("auth.log in %d compressed runs; want one per 128 KiB", runs["/var/log/auth.log"])
			}
		})
	}
}
