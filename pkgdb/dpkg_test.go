package pkgdb

import (
	"context"
	"crypto/md5"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// hostRoot reads a root filesystem tree made by the real tools on the
// host, the way the scanner reads one inside an image (paths absolute in
// the guest; symlinks are read, not followed, by Readlink).
type hostRoot string

func (h hostRoot) ReadFile(p string) ([]byte, error) { return os.ReadFile(filepath.Join(string(h), p)) }
func (h hostRoot) ReadDir(p string) ([]fs.DirEntry, error) {
	return os.ReadDir(filepath.Join(string(h), p))
}
func (h hostRoot) Readlink(p string) (string, error) { return os.Readlink(filepath.Join(string(h), p)) }

// plainRoot is hostRoot without Readlink.
type plainRoot struct{ h hostRoot }

func (p plainRoot) ReadFile(n string) ([]byte, error)       { return p.h.ReadFile(n) }
func (p plainRoot) ReadDir(n string) ([]fs.DirEntry, error) { return p.h.ReadDir(n) }

func md5Digest(b []byte) Digest { s := md5.Sum(b); return Digest{Algo: "md5", Sum: s[:]} }

// TestReadDpkgInstalledByDpkg installs real packages with dpkg --root
// (an arch:all one with a conffile, a Multi-Arch: same one whose info
// files carry the architecture, one whose file another package diverts,
// one that ships under /lib on a merged-/usr root) and checks every
// record Read files, with the digests of the bytes installed.
func TestReadDpkgInstalledByDpkg(t *testing.T) {
	testutil.RequireTool(t, "dpkg-divert")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	for _, d := range []string{"usr/lib", "usr/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// merged /usr, as debootstrap makes it for bookworm
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	data, conf, lib, tool := []byte("shipped data\n"), []byte("key = value\n"), []byte("library bytes\n"), []byte("#!/bin/sh\necho real\n")
	debs := []string{
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "demo", Version: "1.0-1", Files: []testutil.DebFile{
			{Path: "/usr/share/demo/data.txt", Data: data},
			{Path: "/etc/demo/demo.conf", Data: conf, Conffile: true},
		}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "libdemo1", Version: "2.0-3", Arch: "amd64", MultiArchSame: true, Files: []testutil.DebFile{
			{Path: "/lib/x86_64-linux-gnu/libdemo.so.1", Data: lib},
		}}),
		testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "tool", Version: "3", Files: []testutil.DebFile{
			{Path: "/usr/bin/tool", Data: tool},
		}}),
	}
	testutil.DpkgInstall(t, root, debs...)
	testutil.Run(t, "dpkg-divert", "--root="+root, "--package", "wrapper", "--rename",
		"--divert", "/usr/bin/tool.real", "--add", "/usr/bin/tool")
	wrapper := []byte("#!/bin/sh\nexec tool.real\n")
	if err := os.WriteFile(filepath.Join(root, "usr/bin/tool"), wrapper, 0o755); err != nil {
		t.Fatal(err)
	}

	db := Read(context.Background(), hostRoot(root))
	if len(db.Errors) > 0 || db.Truncated || !reflect.DeepEqual(db.Managers, []string{"dpkg"}) {
		t.Fatalf("errors %v, truncated %v, managers %v", db.Errors, db.Truncated, db.Managers)
	}
	cases := []struct {
		path string
		want []Owner
	}{
		{"/usr/share/demo/data.txt", []Owner{{Manager: "dpkg", Package: "demo", Version: "1.0-1", Arch: "all", Digest: md5Digest(data)}}},
		{"/etc/demo/demo.conf", []Owner{{Manager: "dpkg", Package: "demo", Version: "1.0-1", Arch: "all", Digest: md5Digest(conf), Conffile: true}}},
		// recorded as /lib/..., found by the index under /usr/lib/...
		{"/usr/lib/x86_64-linux-gnu/libdemo.so.1", []Owner{{Manager: "dpkg", Package: "libdemo1", Version: "2.0-3", Arch: "amd64", Digest: md5Digest(lib)}}},
		// the diverted file lives at the diversion's target
		{"/usr/bin/tool.real", []Owner{{Manager: "dpkg", Package: "tool", Version: "3", Arch: "all", Digest: md5Digest(tool)}}},
		{"/usr/bin/tool", nil},
		{"/etc/passwd", nil},
	}
	for _, c := range cases {
		if got := db.Lookup(c.path); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Lookup(%s) = %+v\nwant %+v", c.path, got, c.want)
		}
	}
	if got := Read(context.Background(), plainRoot{hostRoot(root)}).Lookup("/lib/x86_64-linux-gnu/libdemo.so.1"); len(got) != 1 {
		t.Errorf("without Readlink the recorded path stays: %+v", got)
	}
	// No dpkg database: no records and no error.
	empty := Read(context.Background(), hostRoot(t.TempDir()))
	if empty.Len() != 0 || len(empty.Errors) != 0 || len(empty.Managers) != 0 {
		t.Errorf("empty root: %d records, %v, %v", empty.Len(), empty.Errors, empty.Managers)
	}
}

func TestParseMD5Sums(t *testing.T) {
	in := "b1946ac92492d2347c6235b4d2611184  usr/share/a b.txt\n" +
		"b1946ac92492d2347c6235b4d2611184 *usr/bin/x\r\n" +
		"zz946ac92492d2347c6235b4d2611184  usr/bad-hex\n" +
		"b1946ac92492d2347c6235b4d2611184 usr/one-space\n" +
		"short\n\n" +
		"b1946ac92492d2347c6235b4d2611184  ../../etc/escape\n"
	var got []string
	parseMD5Sums([]byte(in), func(p string, sum []byte, _ int) bool {
		if len(sum) != 16 {
			t.Errorf("%s: %d-byte sum", p, len(sum))
		}
		got = append(got, p)
		return true
	})
	want := []string{"/usr/share/a b.txt", "/usr/bin/x", "/etc/escape"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
}

// memRoot is an in-memory root filesystem for the fuzz target.
type memRoot fstest.MapFS

func (m memRoot) ReadFile(p string) ([]byte, error) {
	return fs.ReadFile(fstest.MapFS(m), strings.TrimPrefix(path.Clean(p), "/"))
}
func (m memRoot) ReadDir(p string) ([]fs.DirEntry, error) {
	return fs.ReadDir(fstest.MapFS(m), strings.TrimPrefix(path.Clean(p), "/"))
}

// FuzzReadDpkg reads arbitrary status, md5sums and diversions files: it
// must never panic, and every record must have an absolute path, a
// package and an md5 or no digest.
func FuzzReadDpkg(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\nConffiles:\n /etc/a 0123456789abcdef0123456789abcdef\n"),
		[]byte("0123456789abcdef0123456789abcdef  usr/bin/a\n"),
		[]byte("/usr/bin/a\n/usr/bin/a.real\nother\n"))
	f.Fuzz(func(t *testing.T, status, sums, div []byte) {
		root := memRoot{
			"var/lib/dpkg/status":               {Data: status},
			"var/lib/dpkg/info/a.md5sums":       {Data: sums},
			"var/lib/dpkg/info/a:amd64.md5sums": {Data: sums},
			"var/lib/dpkg/diversions":           {Data: div},
		}
		recs, _ := readDpkg(context.Background(), root, newPathBudget())
		for _, r := range recs {
			if !strings.HasPrefix(r.Path, "/") || r.Owner.Package == "" || r.Owner.Manager != "dpkg" ||
				r.Owner.Digest.Sum != nil && (r.Owner.Digest.Algo != "md5" || len(r.Owner.Digest.Sum) != 16) {
				t.Fatalf("bad record %+v", r)
			}
		}
		Read(context.Background(), root)
	})
}
