package pkgdb

import (
	"io/fs"
	"os"
	"path"
	"testing"
)

// hostRootFS is the FS of a guest root laid out in a host directory by the
// real package tools. It is confined to that directory by os.Root: a name
// or a symlink that leads outside it is refused, as the guest filesystem
// readers refuse them.
type hostRootFS struct{ root *os.Root }

func newHostRootFS(t testing.TB, dir string) hostRootFS {
	t.Helper()
	r, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return hostRootFS{r}
}

// rel turns a guest path into a name relative to the root.
func (h hostRootFS) rel(p string) string {
	p = path.Clean("/" + p)
	if p == "/" {
		return "."
	}
	return p[1:]
}

func (h hostRootFS) ReadFile(p string) ([]byte, error) { return h.root.ReadFile(h.rel(p)) }

func (h hostRootFS) ReadDir(p string) ([]fs.DirEntry, error) {
	f, err := h.root.Open(h.rel(p))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}
