package guestfs

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestFileData: a sparse file's data ranges (dd at three places of a
// 12 MiB file, mkfs.ext4 -d keeping its holes) are the logical ranges
// of the extents that debugfs, e2fsprogs' own reader, lists for it, in
// every partition layout, and FileRuns places each of those bytes in the
// disk; a path that names no regular file has none.
func TestFileData(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs")
	src := filepath.Join(t.TempDir(), "src")
	os.MkdirAll(filepath.Join(src, "d"), 0o755)
	f := filepath.Join(src, "d", "sparse")
	testutil.Bash(t, src, `set -e
dd if=/dev/urandom of=d/sparse bs=4096 count=16 status=none
dd if=/dev/urandom of=d/sparse bs=4096 count=1 seek=256 conv=notrunc status=none
dd if=/dev/urandom of=d/sparse bs=4096 count=33 seek=2047 conv=notrunc status=none
truncate -s 12M d/sparse`)
	if fi, err := os.Stat(f); err != nil || fi.Size() != 12<<20 {
		t.Fatalf("sparse file: %v", err)
	}
	content, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	fsImg := mkExt(t, src, "-b", "4096")
	var want [][2]int64
	ext := regexp.MustCompile(`(?m)^\s*\d+/\s*\d+\s+\d+/\s*\d+\s+(\d+)\s+-\s+(\d+)\s`)
	for _, m := range ext.FindAllStringSubmatch(string(testutil.Run(t, "debugfs", "-R", "ex /d/sparse", fsImg)), -1) {
		lo, _ := strconv.ParseInt(m[1], 10, 64)
		hi, _ := strconv.ParseInt(m[2], 10, 64)
		if n := len(want); n > 0 && want[n-1][1] == lo*4096 {
			want[n-1][1] = (hi + 1) * 4096
			continue
		}
		want = append(want, [2]int64{lo * 4096, (hi + 1) * 4096})
	}
	if len(want) != 3 {
		t.Fatalf("debugfs lists %d data ranges: %v", len(want), want)
	}
	for _, l := range layouts {
		t.Run(l.name, func(t *testing.T) {
			m, img := analyzeFile(t, l.build(t, fsImg))
			got, ok := m.FileData(l.part, "/d/sparse")
			if !ok || !slices.Equal(got, want) {
				t.Errorf("FileData = %v, %v; debugfs: %v", got, ok, want)
			}
			// FileRuns: the same data, each run's bytes in the disk
			// the file's own.
			runs, ok := m.FileRuns(l.part, "/d/sparse")
			var covered int64
			for _, r := range runs {
				covered += r.Len
				if !bytes.Equal(img[r.Off:r.Off+r.Len], content[r.FileOff:r.FileOff+r.Len]) {
					t.Errorf("run %+v: not the file's bytes", r)
				}
			}
			var wantLen int64
			for _, w := range want {
				wantLen += w[1] - w[0]
			}
			if !ok || covered != wantLen {
				t.Errorf("FileRuns: %d bytes in %d runs, %v; the data is %d bytes", covered, len(runs), ok, wantLen)
			}
			for _, p := range []string{"/d", "/d/none", "d/sparse"} {
				if got, ok := m.FileData(l.part, p); ok {
					t.Errorf("FileData(%q) = %v, true", p, got)
				}
			}
			if _, ok := m.FileData("p9", "/d/sparse"); ok {
				t.Error("FileData of a partition that does not exist")
			}
		})
	}
}
