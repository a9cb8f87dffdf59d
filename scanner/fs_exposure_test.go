package scanner_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestFilesystemExposure scans raw btrfs and NTFS images, each holding an
// AWS credentials file that stays and ones that were deleted: the live
// secret is "live" at its path, "allocated"; a deleted one is "deleted"
// and never "live": on btrfs in free space without a path, on NTFS at its
// old path in state "deleted-record" (the MFT record is intact), whether
// its data was resident in the record or in clusters.
func TestFilesystemExposure(t *testing.T) {
	liveFile, liveSecret := awsCredentials(t)
	smallDeleted, smallDeletedSecret := awsCredentials(t)
	bigDeleted, bigDeletedSecret := awsCredentials(t)
	// Padding keeps the big one out of btrfs's leaves and NTFS's records.
	bigDeleted = append(bigDeleted, bytes.Repeat([]byte("# padding\n"), 800)...)
	content := testutil.FSContent{
		Live:    map[string][]byte{"/home/alice/.aws/credentials": liveFile},
		Deleted: map[string][]byte{"/tmp/small-creds": smallDeleted, "/tmp/big-creds": bigDeleted},
	}
	type want struct {
		secret   string
		exposure string // must be in the finding's exposure
		notLive  bool
		path     string // a current-view location with this path and state
		state    string
	}
	for _, c := range []struct {
		name string
		make func(t *testing.T) string
		want []want
	}{
		{"btrfs", func(t *testing.T) string {
			testutil.RequireTool(t, "mkfs.btrfs", "mount")
			return testutil.MakeBtrfs(t, 256<<20, content, nil)
		}, []want{
			{liveSecret, report.ExposureLive, false, "/home/alice/.aws/credentials", report.StateAllocated},
			{bigDeletedSecret, report.ExposureDeleted, true, "", report.StateFree},
		}},
		{"ntfs", func(t *testing.T) string {
			testutil.RequireTool(t, "mkntfs", "ntfs-3g")
			return testutil.MakeNTFS(t, 64<<20, content)
		}, []want{
			{liveSecret, report.ExposureLive, false, "/home/alice/.aws/credentials", report.StateAllocated},
			{smallDeletedSecret, report.ExposureDeleted, true, "/tmp/small-creds", report.StateDeletedRecord},
			{bigDeletedSecret, report.ExposureDeleted, true, "/tmp/big-creds", report.StateDeletedRecord},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fsImg := c.make(t)
			img := filepath.Join(t.TempDir(), c.name+".img")
			if err := os.Rename(fsImg, img); err != nil {
				t.Fatal(err)
			}
			before := testutil.FileSnapshot(t, img)
			rep, err := scanner.New(scanner.Options{Engine: newEngine(t)}).Scan(context.Background(), []string{img})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
				t.Fatal("the image changed during the scan")
			}
			for _, w := range c.want {
				var f *report.Finding
				for i := range rep.Findings {
					if rep.Findings[i].Fingerprint == fp([]byte(w.secret)) {
						f = &rep.Findings[i]
					}
				}
				if f == nil {
					t.Fatalf("%s: not found; findings: %s", w.path, summary(rep))
				}
				if !slices.Contains(f.Exposure, w.exposure) || (w.notLive && slices.Contains(f.Exposure, report.ExposureLive)) {
					t.Errorf("%s: exposure %v, want %s (live allowed: %v); locations %+v", w.path, f.Exposure, w.exposure, !w.notLive, f.Locations)
				}
				ok := false
				for _, l := range f.Locations {
					ok = ok || (l.Path == w.path && l.State == w.state && l.Exposure == w.exposure)
				}
				if !ok {
					t.Errorf("%s: no location with state %s, exposure %s: %+v", w.path, w.state, w.exposure, f.Locations)
				}
			}
		})
	}
}
