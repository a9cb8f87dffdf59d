package pkgdb

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestIsRecordFile(t *testing.T) {
	cases := []struct {
		path string
		want bool
	}{
		{"/var/lib/dpkg/status", true},
		{"var/lib/dpkg/diversions", true},
		{"/var/lib/dpkg/info/libc6:amd64.md5sums", true},
		{"/var/lib/dpkg/info/libc6:amd64.list", false},
		{"/var/lib/dpkg/status-old", false},
		{"/var/lib/rpm/rpmdb.sqlite", true},
		{"/usr/lib/sysimage/rpm/Packages.db", true},
		{"/var/lib/rpm/sub/Packages", false},
		{"/lib/apk/db/installed", true},
		{"/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/RECORD", true},
		{"/opt/app/venv/lib/python3.11/site-packages/flask-3.0.dist-info/METADATA", true},
		{"/usr/lib/python3/dist-packages/requests-2.28.1.dist-info/LICENSE", false},
		{"/tmp/x.dist-info/RECORD", false},
		{"/root/.local/share/pnpm/store/v10/index/6f/a894b0-@babel+helper@7.29.17.json", true},
		{"/home/dev/.pnpm-store/v3/files/3f/99a890-index.json", true},
		{"/root/.local/share/pnpm/store/v3/files/3f/99a890", false},
		{"/root/.local/share/pnpm/store/v10/files/3f/99a890-exec", false},
		{"/root/.local/share/pnpm/store/v10/projects/d758386a9911d6c0", false},
		{"/etc/passwd", false},
	}
	for _, c := range cases {
		if got := IsRecordFile(c.path); got != c.want {
			t.Errorf("IsRecordFile(%s) = %v, want %v", c.path, got, c.want)
		}
	}
}

// TestMemFSReadsAsTheRoot: the record files of a root that the real dpkg
// populated (as TestReadDpkgInstalledByDpkg: a conffile, Multi-Arch: same,
// a diversion, a package shipping under /lib on merged /usr), gathered
// by IsRecordFile with the root's top-level symlinks, as a container
// layer walk keeps them, give Read the same records as the root itself.
func TestMemFSReadsAsTheRoot(t *testing.T) {
	testutil.RequireTool(t, "dpkg-divert")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	testutil.DpkgInstall(t, root,
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "demo", Version: "1.0-1", Files: []testutil.DebFile{
			{Path: "/usr/share/demo/data.txt", Data: []byte("shipped data\n")},
			{Path: "/etc/demo/demo.conf", Data: []byte("key = value\n"), Conffile: true},
		}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "libdemo1", Version: "2.0-3", Arch: "amd64", MultiArchSame: true, Files: []testutil.DebFile{
			{Path: "/lib/x86_64-linux-gnu/libdemo.so.1", Data: []byte("library bytes\n")},
		}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "tool", Version: "3", Files: []testutil.DebFile{
			{Path: "/usr/bin/tool", Data: []byte("#!/bin/sh\n")},
		}}))
	testutil.Run(t, "dpkg-divert", "--root="+root, "--package", "wrapper", "--rename",
		"--divert", "/usr/bin/tool.real", "--add", "/usr/bin/tool")

	files, links := map[string][]byte{}, map[string]string{}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := "/" + filepath.ToSlash(must(filepath.Rel(root, p)))
		paths = append(paths, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0 && filepath.Dir(rel) == "/":
			links[rel] = must(os.Readlink(p))
		case d.Type().IsRegular() && IsRecordFile(rel):
			b, err := os.ReadFile(p)
			files[rel] = b
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := Read(context.Background(), hostRoot(root))
	got := Read(context.Background(), NewMemFS(files, links))
	if want.Len() == 0 || got.Len() != want.Len() || len(got.Errors) > 0 || !reflect.DeepEqual(got.Managers, want.Managers) {
		t.Fatalf("%d records (errors %v, managers %v), want %d (%v)", got.Len(), got.Errors, got.Managers, want.Len(), want.Managers)
	}
	for _, p := range append(paths, "/usr/lib/x86_64-linux-gnu/libdemo.so.1", "/usr/bin/tool.real") {
		if g, w := got.Lookup(p), want.Lookup(p); !reflect.DeepEqual(g, w) {
			t.Errorf("Lookup(%s) = %+v, want %+v", p, g, w)
		}
	}
	if _, err := NewMemFS(files, links).ReadFile("/etc/passwd"); !isNotExist(err) {
		t.Errorf("a file it does not hold: %v", err)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestReaderAtRecordCapTruncates: a reader stops at maxRecords without an
// error; the DB says it is truncated, so that the caller's note says the
// files past the cap are vouched for by nothing (dpkg's stop went unsaid
// when no other reader's records followed). One package's md5sums of one
// line more than the cap, with a line fewer as the control.
func TestReaderAtRecordCapTruncates(t *testing.T) {
	for _, tc := range []struct {
		lines int
		want  bool
	}{
		{maxRecords - 1, false},
		{maxRecords + 1, true},
	} {
		var sums strings.Builder
		for i := range tc.lines {
			fmt.Fprintf(&sums, "0123456789abcdef0123456789abcdef  usr/share/big/%d\n", i)
		}
		files := map[string][]byte{
			"var/lib/dpkg/status":           []byte("Package: big\nStatus: install ok installed\nVersion: 1\nArchitecture: all\n\n"),
			"var/lib/dpkg/info/big.md5sums": []byte(sums.String()),
		}
		db := Read(context.Background(), NewMemFS(files, nil))
		if n := db.Len(); n != min(tc.lines, maxRecords) {
			t.Errorf("%d lines: %d records", tc.lines, n)
		}
		if db.Truncated != tc.want {
			t.Errorf("%d lines: Truncated = %v, want %v", tc.lines, db.Truncated, tc.want)
		}
	}
}
