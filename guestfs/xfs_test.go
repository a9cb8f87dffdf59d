package guestfs

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// xfsFixture makes a 300 MiB XFS filesystem (mkfs.xfs, populated through a
// loop mount) holding a live file, a file written, synced and deleted, and
// a file overwritten in place, each with its own marker.
func xfsFixture(t *testing.T) (img string, live, deleted, oldContent, newContent []byte) {
	t.Helper()
	testutil.RequireTool(t, "mkfs.xfs", "xfs_db")
	img = filepath.Join(t.TempDir(), "xfs.img")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 300<<20); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "mkfs.xfs", "-q", img)
	mnt, unmount := testutil.LoopMount(t, img)
	live = marker("/etc/app/credentials", 9000)
	deleted = marker("/tmp/token-deleted", 5000)
	oldContent = marker("/srv/overwritten-old", 6000)
	newContent = marker("/srv/overwritten-new", 6000)
	write := func(p string, b []byte) {
		full := filepath.Join(mnt, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil { // allocate and write the blocks now
			t.Fatal(err)
		}
		f.Close()
	}
	write("/etc/app/credentials", live)
	write("/tmp/token-deleted", deleted)
	write("/srv/overwritten", oldContent)
	if err := os.Remove(filepath.Join(mnt, "tmp/token-deleted")); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "srv/overwritten"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(newContent, 0); err != nil { // in place: same blocks
		t.Fatal(err)
	}
	f.Sync()
	f.Close()
	testutil.Run(t, "sync")
	unmount()
	return img, live, deleted, oldContent, newContent
}

// TestXFSLocate: on a whole-disk XFS and on an XFS in a GPT partition, the
// live and overwritten files get their paths and "allocated", the deleted
// file's bytes "free" without a path; xfs_db is the independent reader of
// where each file lies and which blocks are free.
func TestXFSLocate(t *testing.T) {
	img, live, deleted, oldContent, newContent := xfsFixture(t)
	fsData := testutil.FileSnapshot(t, img)
	if bytes.Contains(fsData, oldContent[:64]) {
		t.Fatal("the overwritten content is still in the image: not overwritten in place")
	}
	// xfs_db: where the live file's first block is, and the free extents.
	bmap := string(testutil.Run(t, "xfs_db", "-r", "-c", "path /etc/app/credentials", "-c", "bmap", img))
	var fileOff, fsb, ag, agbno, n, flag int64
	if _, err := fmt.Sscanf(strings.TrimSpace(bmap), "data offset %d startblock %d (%d/%d) count %d flag %d", &fileOff, &fsb, &ag, &agbno, &n, &flag); err != nil {
		t.Fatalf("xfs_db bmap: %v\n%s", err, bmap)
	}
	sb := string(testutil.Run(t, "xfs_db", "-r", "-c", "sb 0", "-c", "p agblocks blocksize", img))
	var agBlocks, bs int64
	fmt.Sscanf(sb, "agblocks = %d\nblocksize = %d", &agBlocks, &bs)
	if agBlocks == 0 || bs == 0 {
		t.Fatalf("xfs_db sb: %s", sb)
	}
	if want, got := (ag*agBlocks+agbno)*bs, int64(bytes.Index(fsData, live[:64])); want != got {
		t.Fatalf("live file at %d, xfs_db says %d", got, want)
	}
	delOff := int64(bytes.Index(fsData, deleted[:64]))
	freeByXfsDB := false
	for _, line := range strings.Split(string(testutil.Run(t, "xfs_db", "-r", "-c", "freesp -d", img)), "\n") {
		var a, b, l int64
		if len(strings.Fields(line)) == 3 {
			if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d %d %d", &a, &b, &l); err == nil {
				start := (a*agBlocks + b) * bs
				freeByXfsDB = freeByXfsDB || (delOff >= start && delOff < start+l*bs)
			}
		}
	}
	if delOff < 0 || !freeByXfsDB {
		t.Fatalf("deleted content at %d, free by xfs_db: %v", delOff, freeByXfsDB)
	}

	for _, l := range []struct {
		name, part string
		build      func(t *testing.T) (string, int64)
	}{
		{"whole-disk", WholeDisk, func(t *testing.T) (string, int64) { return img, 0 }},
		{"gpt", "p1", func(t *testing.T) (string, int64) {
			return sfdiskDisk(t, img, "label: gpt\nstart=2048, size=614400, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n", partStart), partStart
		}},
	} {
		t.Run(l.name, func(t *testing.T) {
			disk, base := l.build(t)
			m, data := analyzeFile(t, disk)
			if u := m.Unattributed(); len(u) > 0 {
				t.Errorf("unattributed: %q", u)
			}
			for _, c := range []struct {
				content []byte
				want    Location
			}{
				{live, Location{Partition: l.part, FS: "xfs", Path: "/etc/app/credentials", State: StateAllocated}},
				{newContent, Location{Partition: l.part, FS: "xfs", Path: "/srv/overwritten", State: StateAllocated}},
				{deleted, Location{Partition: l.part, FS: "xfs", State: StateFree}},
			} {
				off := int64(bytes.Index(data, c.content[:64]))
				if off < 0 {
					t.Fatalf("content of %s not in the disk", c.want.Path)
				}
				for _, o := range []int64{off, off + int64(len(c.content)) - 1} {
					if got := m.Locate(o); !sameLoc(got, c.want) {
						t.Errorf("Locate(%d) = %+v, want %+v", o, got, c.want)
					}
				}
			}
			if off := base + delOff; m.Locate(off).State != StateFree {
				t.Errorf("deleted block: %+v", m.Locate(off))
			}
			// Slack after the live file's last byte: free, path kept.
			slack := base + (ag*agBlocks+agbno)*bs + int64(len(live)) + 10
			if got := m.Locate(slack); got.Path != "/etc/app/credentials" || got.State != StateFree {
				t.Errorf("slack: %+v", got)
			}
			if got := m.Locate(base + 100); got.State != StateAllocated || got.Path != "" {
				t.Errorf("superblock: %+v", got)
			}
			b, err := m.ReadFile("/etc/app/credentials")
			if err != nil || !bytes.Equal(b, live) {
				t.Errorf("ReadFile: %d bytes, %v", len(b), err)
			}
			ents, err := m.ReadDir("/srv")
			if err != nil || len(ents) != 1 || ents[0].Name() != "overwritten" {
				t.Errorf("ReadDir: %v, %v", ents, err)
			}
			if !m.HasReadableFS() {
				t.Error("HasReadableFS: false")
			}
		})
	}
}
