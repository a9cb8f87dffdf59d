package guestfs

import (
	"bytes"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestNTFSLocate: on a whole-disk NTFS and on an NTFS in an MBR partition,
// live files (resident data inside its MFT record, and not) and the new
// bytes of a file overwritten in place get their paths and "allocated";
// deleted files whose MFT record is intact get their old paths and
// "deleted-record", resident or not; slack past a live file's end is
// "free" with its path. guestfs/ntfs's tests check the same against
// ntfsls, ntfsinfo and ntfsundelete.
func TestNTFSLocate(t *testing.T) {
	testutil.RequireTool(t, "mkntfs", "ntfs-3g")
	live := marker("/etc/app/credentials", 9000)
	small := marker("/etc/small.conf", 40)
	deleted := marker("/tmp/token-deleted", 20000)
	smallDeleted := marker("/tmp/small-deleted", 60)
	oldContent, newContent := marker("/srv/overwritten-old", 12000), marker("/srv/overwritten-new", 12000)
	img := testutil.MakeNTFS(t, 64<<20, testutil.FSContent{
		Live:        map[string][]byte{"/etc/app/credentials": live, "/etc/small.conf": small},
		Deleted:     map[string][]byte{"/tmp/token-deleted": deleted, "/tmp/small-deleted": smallDeleted},
		Overwritten: map[string][2][]byte{"/srv/overwritten": {oldContent, newContent}},
	})
	for _, l := range []struct {
		name, part string
		build      func(t *testing.T) (string, int64)
	}{
		{"whole-disk", WholeDisk, func(t *testing.T) (string, int64) { return img, 0 }},
		{"mbr", "p1", func(t *testing.T) (string, int64) {
			return sfdiskSized(t, img, 66<<20, "label: dos\nstart=2048, size=131072, type=7\n"), partStart
		}},
	} {
		t.Run(l.name, func(t *testing.T) {
			disk, _ := l.build(t)
			m, data := analyzeFile(t, disk)
			if u := m.Unattributed(); len(u) > 0 {
				t.Errorf("unattributed: %q", u)
			}
			if ps := m.Partitions(); len(ps) != 1 || ps[0].FS != "ntfs" || !ps[0].Attributed {
				t.Fatalf("partitions: %+v", ps)
			}
			if bytes.Contains(data, oldContent[:64]) {
				t.Fatal("the overwritten content is still in the image: not overwritten in place")
			}
			at := func(p string, state string) Location {
				return Location{Partition: l.part, FS: "ntfs", Path: p, State: state}
			}
			for _, c := range []struct {
				content []byte
				want    Location
			}{
				{live, at("/etc/app/credentials", StateAllocated)},
				{small, at("/etc/small.conf", StateAllocated)},
				{newContent, at("/srv/overwritten", StateAllocated)},
				{deleted, at("/tmp/token-deleted", StateDeletedRecord)},
				{smallDeleted, at("/tmp/small-deleted", StateDeletedRecord)},
			} {
				off := int64(bytes.Index(data, c.content[:min(64, len(c.content))]))
				if off < 0 {
					t.Fatalf("content of %s not in the disk", c.want.Path)
				}
				for _, o := range []int64{off, off + int64(len(c.content)) - 1} {
					if got := m.Locate(o); !sameLoc(got, c.want) {
						t.Errorf("Locate(%d) = %+v, want %+v", o, got, c.want)
					}
				}
				if c.want.Path == "/etc/app/credentials" {
					// 9000 bytes in 4 KiB clusters: the rest of the last
					// cluster is slack.
					if got := m.Locate(off + int64(len(live)) + 10); !sameLoc(got, at("/etc/app/credentials", StateFree)) {
						t.Errorf("slack: %+v", got)
					}
				}
			}
			b, err := m.ReadFile("/etc/small.conf")
			if err != nil || !bytes.Equal(b, small) {
				t.Errorf("ReadFile: %d bytes, %v", len(b), err)
			}
			ents, err := m.ReadDir("/srv")
			if err != nil || len(ents) != 1 || ents[0].Name() != "overwritten" {
				t.Errorf("ReadDir: %v, %v", ents, err)
			}
		})
	}
}
