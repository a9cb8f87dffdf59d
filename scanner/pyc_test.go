package scanner

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestPycSource(t *testing.T) {
	cases := map[string]string{
		"/usr/lib/python3.11/__pycache__/getpass.cpython-311.pyc":              "/usr/lib/python3.11/getpass.py",
		"/usr/lib/python3/dist-packages/a/__pycache__/b.cpython-311.opt-1.pyc": "/usr/lib/python3/dist-packages/a/b.py",
		"/x/__pycache__/mod.name.cpython-312.pyc":                              "/x/mod.name.py",
		"/x/__pycache__/notag.pyc":                                             "",
		"/x/getpass.pyc":                                                       "", // Python 2 layout: no __pycache__
		"/x/__pycache__/a.cpython-311.py":                                      "",
	}
	for in, want := range cases {
		if got := pycSource(in); got != want {
			t.Errorf("pycSource(%s) = %q, want %q", in, got, want)
		}
	}
}

// TestPycCompiledFrom compiles modules with the real CPython into an ext4
// image and checks that a timestamp-based cache is recognised as compiled
// from its source, and that a source touched since, a cache compiled from
// other bytes, and hash-based caches are not.
func TestPycCompiledFrom(t *testing.T) {
	testutil.RequireTool(t, "python3", "mkfs.ext4")
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	compile := func(name, mode string) {
		src := filepath.Join(root, name+".py")
		if err := os.WriteFile(src, []byte("VALUE = "+`"`+name+`"`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		old := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
		if err := os.Chtimes(src, old, old); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, "env", "-u", "SOURCE_DATE_EPOCH", "python3", "-c",
			"import py_compile, sys; py_compile.compile(sys.argv[1], doraise=True, invalidation_mode=py_compile.PycInvalidationMode."+mode+")", src)
	}
	compile("stamped", "TIMESTAMP")
	compile("touched", "TIMESTAMP")
	compile("other", "TIMESTAMP")
	compile("checked", "CHECKED_HASH")
	compile("unchecked", "UNCHECKED_HASH")
	now := time.Now()
	if err := os.Chtimes(filepath.Join(root, "touched.py"), now, now); err != nil {
		t.Fatal(err)
	}
	// Same mtime, other size: another source than the one compiled.
	if err := os.WriteFile(filepath.Join(root, "other.py"), []byte("VALUE = 'a longer, different source'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(root, "other.py"), old, old); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "fs.raw")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "8M")
	im, err := raw.Open(context.Background(), img, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	m, err := guestfs.Analyze(context.Background(), im.Views[0].Disk)
	if err != nil {
		t.Fatal(err)
	}
	files := m.Files(guestfs.WholeDisk)
	ents, err := files.ReadDir("/__pycache__")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"stamped": true, "touched": false, "other": false, "checked": false, "unchecked": false}
	seen := 0
	for _, e := range ents {
		pyc := "/__pycache__/" + e.Name()
		src := pycSource(pyc)
		name := src[1 : len(src)-3]
		if got := pycCompiledFrom(files, pyc, src); got != want[name] {
			t.Errorf("%s compiled from %s: %v, want %v", pyc, src, got, want[name])
		}
		seen++
	}
	if seen != len(want) {
		t.Errorf("%d caches, want %d", seen, len(want))
	}
	if pycCompiledFrom(files, "/__pycache__/missing.cpython-311.pyc", "/missing.py") || pycCompiledFrom(nil, "/a", "/b") {
		t.Errorf("missing files count as compiled")
	}
}
