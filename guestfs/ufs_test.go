package guestfs

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// freeBSDUFSType is the GPT partition type of a FreeBSD UFS partition.
const freeBSDUFSType = "516E7CB6-6ECF-11D6-8FF8-00022D09712B"

// TestUFS2Locate: a UFS2 filesystem made by makefs, whole-disk and in a
// GPT partition (written there as dd would), is detected and read: its
// files get their paths and "allocated", the empty end of the filesystem
// "free", and files read by path.
func TestUFS2Locate(t *testing.T) {
	testutil.RequireTool(t, "makefs")
	src := writeTree(t)
	fsImg := filepath.Join(t.TempDir(), "ufs2.img")
	testutil.Run(t, "makefs", "-t", "ffs", "-o", "version=2", "-s", "32m", fsImg, src)
	head := testutil.FileSnapshot(t, fsImg)[:probeSize]
	if got := Detect(head); got != "ufs2" {
		t.Fatalf("Detect: %q", got)
	}
	for _, l := range []struct {
		name, part string
		fsOffset   int64
		build      func(t *testing.T) string
	}{
		{"whole-disk", WholeDisk, 0, func(t *testing.T) string { return fsImg }},
		{"gpt", "p1", partStart, func(t *testing.T) string {
			return sfdiskDisk(t, fsImg, "label: gpt\nstart=2048, size=65536, type="+freeBSDUFSType+"\n", partStart)
		}},
	} {
		t.Run(l.name, func(t *testing.T) {
			m, img := analyzeFile(t, l.build(t))
			if u := m.Unattributed(); len(u) > 0 {
				t.Errorf("unattributed: %q", u)
			}
			for p := range testFiles {
				off := contentOffset(t, img, p)
				want := Location{Partition: l.part, FS: "ufs2", Path: p, State: StateAllocated}
				if got := m.Locate(off); !sameLoc(got, want) {
					t.Errorf("Locate(%d) for %s = %+v, want %+v", off, p, got, want)
				}
			}
			// The superblock is metadata; the filesystem's last fragment,
			// far past the few files makefs wrote, is free.
			if got := m.Locate(l.fsOffset + 8192 + 100); got.State != StateAllocated || got.Path != "" {
				t.Errorf("superblock: %+v", got)
			}
			if got := m.Locate(l.fsOffset + 32<<20 - 1); got.State != StateFree || got.Path != "" {
				t.Errorf("last fragment: %+v", got)
			}
			b, err := m.ReadFile("/root/.ssh/authorized_keys")
			if err != nil || !bytes.Equal(b, marker("/root/.ssh/authorized_keys", 900)) {
				t.Errorf("ReadFile: %d bytes, %v", len(b), err)
			}
			ps := m.Partitions()
			found := false
			for _, p := range ps {
				if p.Name == l.part {
					found = p.FS == "ufs2" && p.Attributed && p.Start == l.fsOffset
				}
			}
			if !found {
				t.Errorf("partitions: %+v", ps)
			}
		})
	}
}

// TestUFS1Recognised: a UFS1 filesystem (makefs's default) is named, not
// read.
func TestUFS1Recognised(t *testing.T) {
	testutil.RequireTool(t, "makefs")
	src := writeTree(t)
	img := filepath.Join(t.TempDir(), "ufs1.img")
	testutil.Run(t, "makefs", "-t", "ffs", "-s", "8m", img, src)
	if err := os.Truncate(img, 8<<20); err != nil {
		t.Fatal(err)
	}
	m, _ := analyzeFile(t, img)
	ps := m.Partitions()
	if len(ps) != 1 || ps[0].FS != "ufs1" || ps[0].Attributed {
		t.Fatalf("partitions: %+v", ps)
	}
	if u := m.Unattributed(); len(u) != 1 || !strings.HasPrefix(u[0], "disk: ufs1: ") {
		t.Errorf("unattributed: %q", u)
	}
}
