package pkgdb

import (
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
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

// digestOf digests b with the algorithm a Digest names, to check a
// recorded digest against the bytes the real tool installed.
func digestOf(t testing.TB, algo string, b []byte) []byte {
	t.Helper()
	var h hash.Hash
	switch algo {
	case "md5":
		h = md5.New()
	case "sha1":
		h = sha1.New()
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		t.Fatalf("digest algorithm %q", algo)
	}
	h.Write(b)
	return h.Sum(nil)
}
