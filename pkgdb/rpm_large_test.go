package pkgdb

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadRPMLargeOnDisk: an rpm database over guestfs's 16 MiB ReadFile
// cap, read from a real ext4 through guestfs as the scanner reads it. rpm
// writes the database; sqlite3 then grows it past 16 MiB with a table of
// 20 MiB (a long-lived server's database is that large from its packages
// and the pages they freed: Red Hat shows a Packages of 96 MB). The records
// must still be rpm's own; before, the read failed ("file too large") and
// no file of such a guest had package provenance. A Debian-like guest
// without rpm gives no records and no error.
func TestReadRPMLargeOnDisk(t *testing.T) {
	testutil.RequireTool(t, "sqlite3", "mkfs.ext4")
	installed := rpmInstalledRoot(t)
	want := rpmDumpRecords(t, installed)
	sortRecords(want)
	db := filepath.Join(installed, "var/lib/rpm/rpmdb.sqlite")
	testutil.Run(t, "sqlite3", db, "CREATE TABLE imgaudit_pad(b); INSERT INTO imgaudit_pad VALUES (zeroblob(20*1024*1024));")
	if st, err := os.Stat(db); err != nil || st.Size() <= guestfs.MaxReadFile {
		t.Fatalf("rpmdb.sqlite: %v, %v bytes: want more than %d", err, st, guestfs.MaxReadFile)
	}
	empty := t.TempDir()
	if err := os.MkdirAll(filepath.Join(empty, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, tc := range []struct {
		name, root string
		want       []Record
	}{
		{"rpm", installed, want},
		{"no rpm", empty, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := ext4Files(t, tc.root, filepath.Join(dir, tc.name+".ext4"))
			got, err := readRPM(context.Background(), files, newPathBudget())
			if err != nil {
				t.Fatal(err)
			}
			sortRecords(got)
			if !slices.EqualFunc(got, tc.want, recordEqual) {
				t.Errorf("records differ from rpm --dump:\ngot  %v\nwant %v", got, tc.want)
			}
		})
	}
}

// ext4Files makes img, an ext4 of 96 MiB, from the tree root with
// mkfs.ext4 -d, and returns its files as guestfs reads them in a scan.
func ext4Files(t *testing.T, root, img string) FS {
	t.Helper()
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "96M")
	im, err := raw.Open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { im.Close() })
	m, err := guestfs.Analyze(context.Background(), im.Views[0].Disk)
	if err != nil {
		t.Fatal(err)
	}
	files := m.Files(guestfs.WholeDisk)
	if files == nil {
		t.Fatal("no readable filesystem")
	}
	return files
}
