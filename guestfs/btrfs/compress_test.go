package btrfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadCompressed: files on a btrfs mounted with compress-force read
// back by path exactly as the kernel read them, with each codec, after
// what splits and shares compressed extents: a write inside a file (the
// old extent is then used in two parts, around the new one), a reflink
// copy and a write into the copy, a truncation inside an extent, an
// append, and a small (inline) file.
func TestReadCompressed(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "dd", "cp", "truncate")
	var log strings.Builder
	for i := 0; log.Len() < 700<<10; i++ {
		fmt.Fprintf(&log, "Dec  6 10:%02d:%02d web01 sshd[%d]: Accepted publickey for deploy from 10.0.%d.%d\n", i/60%60, i%60, 800+i, i%256, i*7%256)
	}
	for _, codec := range []string{"zstd", "zlib", "lzo"} {
		t.Run(codec, func(t *testing.T) {
			img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{
				Live: map[string][]byte{
					"/small.conf":    []byte(strings.Repeat("listen = 127.0.0.1:8080\n", 30)),
					"/var/log/a.log": []byte(log.String()),
					"/var/log/b.log": []byte(log.String()[:300001]),
					"/var/log/c.log": []byte(log.String()[:200000]),
				},
				Extra: func(mnt string) {
					testutil.Bash(t, mnt, "sync && printf 'patched in the middle of an extent' | dd of=var/log/a.log bs=1 seek=150000 conv=notrunc status=none && "+
						"cp --reflink=always var/log/a.log var/log/a-copy.log && sync && printf 'the copy changed' | dd of=var/log/a-copy.log bs=1 seek=5000 conv=notrunc status=none && "+
						"truncate -s 250001 var/log/b.log && printf 'appended line\\n' >> var/log/c.log && sync")
				},
			}, nil, "compress-force="+codec)
			// The kernel's view, read back through a fresh mount.
			mnt, unmount := testutil.LoopMount(t, img, "ro")
			want := map[string][]byte{}
			for _, p := range []string{"/small.conf", "/var/log/a.log", "/var/log/a-copy.log", "/var/log/b.log", "/var/log/c.log"} {
				b, err := os.ReadFile(filepath.Join(mnt, p))
				if err != nil {
					t.Fatal(err)
				}
				want[p] = b
			}
			unmount()
			f, _ := openImage(t, img)
			fstest.ReadsBack(t, f, want)
			// Reads that start and end inside extents, across their
			// boundaries.
			fl, err := f.Open("/var/log/a.log")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range [][2]int64{{1, 10}, {131000, 200}, {149990, 40}, {262100, 70000}, {int64(len(want["/var/log/a.log"])) - 5, 5}} {
				got := make([]byte, r[1])
				if _, err := fl.ReadAt(got, r[0]); err != nil || string(got) != string(want["/var/log/a.log"][r[0]:r[0]+r[1]]) {
					t.Errorf("ReadAt(%d, %d bytes): %q, %v", r[0], r[1], got, err)
				}
			}
		})
	}
}
