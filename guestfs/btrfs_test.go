package guestfs

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestBtrfsLocate: on a whole-disk btrfs and on a btrfs in a GPT
// partition, the live file, the small (inline) file and the overwritten
// file's new bytes get their paths and "allocated"; the deleted file and
// the overwritten file's old bytes (copy-on-write left them behind) are
// "free" without a path; slack past the live file's end is "free" with
// its path. guestfs/btrfs's tests check the same against btrfs-progs.
func TestBtrfsLocate(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "mount")
	live := marker("/etc/app/credentials", 9000)
	small := marker("/etc/small.conf", 40)
	deleted := marker("/tmp/token-deleted", 20000)
	oldContent, newContent := marker("/srv/overwritten-old", 12000), marker("/srv/overwritten-new", 12000)
	img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{
		Live:        map[string][]byte{"/etc/app/credentials": live, "/etc/small.conf": small},
		Deleted:     map[string][]byte{"/tmp/token-deleted": deleted},
		Overwritten: map[string][2][]byte{"/srv/overwritten": {oldContent, newContent}},
	}, nil)
	for _, l := range []struct {
		name, part string
		build      func(t *testing.T) (string, int64)
	}{
		{"whole-disk", WholeDisk, func(t *testing.T) (string, int64) { return img, 0 }},
		{"gpt", "p1", func(t *testing.T) (string, int64) {
			return sfdiskSized(t, img, 258<<20, "label: gpt\nstart=2048, size=524288, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4\n"), partStart
		}},
	} {
		t.Run(l.name, func(t *testing.T) {
			disk, base := l.build(t)
			m, data := analyzeFile(t, disk)
			if u := m.Unattributed(); len(u) > 0 {
				t.Errorf("unattributed: %q", u)
			}
			if ps := m.Partitions(); len(ps) != 1 || ps[0].FS != "btrfs" || !ps[0].Attributed {
				t.Fatalf("partitions: %+v", ps)
			}
			liveOff := int64(-1)
			for _, c := range []struct {
				content []byte
				want    Location
			}{
				{live, Location{Partition: l.part, FS: "btrfs", Path: "/etc/app/credentials", State: StateAllocated}},
				{small, Location{Partition: l.part, FS: "btrfs", Path: "/etc/small.conf", State: StateAllocated}},
				{newContent, Location{Partition: l.part, FS: "btrfs", Path: "/srv/overwritten", State: StateAllocated}},
				{oldContent, Location{Partition: l.part, FS: "btrfs", State: StateFree}},
				{deleted, Location{Partition: l.part, FS: "btrfs", State: StateFree}},
			} {
				// Copy-on-write leaves stale copies of metadata (and so of
				// inline data) behind: the occurrence that is the file's is
				// the one to check, and some occurrence must be it.
				found := false
				for i := 0; ; {
					j := bytes.Index(data[i:], c.content)
					if j < 0 {
						break
					}
					off := int64(i + j)
					i += j + 1
					got := m.Locate(off)
					if c.want.Path != "" && got.Path != c.want.Path {
						continue
					}
					found = true
					if end := m.Locate(off + int64(len(c.content)) - 1); !sameLoc(got, c.want) || !sameLoc(end, c.want) {
						t.Errorf("%s: Locate(%d) = %+v, end %+v, want %+v", c.content[:24], off, got, end, c.want)
					}
					if c.want.Path == "/etc/app/credentials" {
						liveOff = off
					}
				}
				if !found {
					t.Errorf("%s: no occurrence located at %+v", c.content[:24], c.want)
				}
			}
			// The live file ends inside its last 4 KiB sector: the rest
			// is slack, free with the path.
			if got := m.Locate(liveOff + int64(len(live)) + 10); got.Path != "/etc/app/credentials" || got.State != StateFree {
				t.Errorf("slack: %+v", got)
			}
			if got := m.Locate(base + 0x10000 + 10); got.State != StateAllocated || got.Path != "" {
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
		})
	}
}

// sfdiskSized makes a disk of size bytes with an sfdisk script and writes
// fsImg at partStart.
func sfdiskSized(t *testing.T, fsImg string, size int64, script string) string {
	t.Helper()
	testutil.RequireTool(t, "sfdisk")
	disk := filepath.Join(t.TempDir(), "disk.img")
	testutil.Run(t, "truncate", "-s", fmt.Sprint(size), disk)
	testutil.Run(t, "sh", "-c", fmt.Sprintf("sfdisk --no-reread --no-tell-kernel -q %s <<'EOF'\n%sEOF\n", disk, script))
	embed(t, disk, fsImg, partStart)
	return disk
}
