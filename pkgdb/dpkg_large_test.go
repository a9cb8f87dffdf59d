package pkgdb

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestReadDpkgLargeStatusOnDisk: a dpkg status file over guestfs's 16 MiB
// ReadFile cap, read from a real ext4 through guestfs as the scanner
// reads it. dpkg installs a package with a file and two whose extended
// descriptions are 9 MiB each, so that dpkg's own status file passes 16
// MiB (a long-lived desktop's is 5 to 10 MB, and grows with every
// package's description). The file's record must be dpkg's; before, the
// status read failed ("file too large") and no file of such a guest had
// package provenance.
func TestReadDpkgLargeStatusOnDisk(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "usr/share"), 0o755); err != nil {
		t.Fatal(err)
	}
	data := []byte("shipped data\n")
	line := strings.Repeat("x", 79)
	long := make([]string, 9<<20/80)
	for i := range long {
		long[i] = line
	}
	debs := []string{testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "demo", Version: "1.0-1", Files: []testutil.DebFile{{Path: "/usr/share/demo/data.txt", Data: data}}})}
	for i := range 2 {
		debs = append(debs, testutil.BuildDeb(t, dir, testutil.DebPackage{Name: fmt.Sprintf("described%d", i), Version: "1", LongDescription: long}))
	}
	testutil.DpkgInstall(t, root, debs...)
	if st, err := os.Stat(filepath.Join(root, dpkgStatusPath)); err != nil || st.Size() <= guestfs.MaxReadFile {
		t.Fatalf("status: %v, %v: want more than %d bytes", err, st, guestfs.MaxReadFile)
	}
	db := Read(context.Background(), ext4Files(t, root, filepath.Join(dir, "root.ext4")))
	if len(db.Errors) > 0 {
		t.Fatalf("errors: %v", db.Errors)
	}
	want := []Owner{{Manager: "dpkg", Package: "demo", Version: "1.0-1", Arch: "all", Digest: md5Digest(data)}}
	if got := db.Lookup("/usr/share/demo/data.txt"); !reflect.DeepEqual(got, want) {
		t.Errorf("Lookup = %+v, want %+v", got, want)
	}
}
