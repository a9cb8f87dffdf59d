package hostfile

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// TestOpenBeneath: a file under a directory opens only when no component
// below the directory is a symlink (to a directory or to a file, inside
// the directory or out of it); a FIFO is refused unopened, and a path
// that climbs or is empty is invalid. The directory itself may be a link.
func TestOpenBeneath(t *testing.T) {
	root, outside := tree(t)
	for _, mk := range []func() error{
		func() error { return os.MkdirAll(filepath.Join(root, "blobs", "sha256"), 0o755) },
		func() error {
			return os.WriteFile(filepath.Join(root, "blobs", "sha256", "ok"), []byte("inside"), 0o644)
		},
		func() error { return os.Symlink(filepath.Dir(outside), filepath.Join(root, "linked-dir")) },
		func() error { return os.Symlink("blobs", filepath.Join(root, "inner-link")) },
		func() error { return os.Symlink("ok", filepath.Join(root, "blobs", "sha256", "to-ok")) },
		func() error { return os.Symlink(root, filepath.Join(filepath.Dir(root), "root-link")) },
	} {
		if err := mk(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		dir, rel string
		wantErr  error
		what     string
	}{
		{dir: root, rel: "blobs/sha256/ok"},
		{dir: filepath.Join(filepath.Dir(root), "root-link"), rel: "blobs/sha256/ok"},
		{dir: root, rel: "linked-dir/outside/secret", wantErr: ErrSymlink, what: filepath.Join(root, "linked-dir") + " is a symlink"},
		{dir: root, rel: "inner-link/sha256/ok", wantErr: ErrSymlink, what: filepath.Join(root, "inner-link") + " is a symlink"},
		{dir: root, rel: "blobs/sha256/to-ok", wantErr: ErrSymlink, what: "to-ok is a symlink"},
		{dir: root, rel: "to-base", wantErr: ErrSymlink, what: "to-base is a symlink"},
		{dir: root, rel: "fifo", wantErr: model.ErrNotRegular, what: "named pipe"},
		{dir: root, rel: "sub", wantErr: model.ErrNotRegular, what: "directory"},
		{dir: root, rel: "base.qcow2/x", wantErr: nil, what: "not a directory"},
		{dir: root, rel: "../outside/secret", wantErr: fs.ErrInvalid},
		{dir: root, rel: "blobs//ok", wantErr: fs.ErrInvalid},
		{dir: root, rel: "missing", wantErr: fs.ErrNotExist},
	} {
		t.Run(c.rel, func(t *testing.T) {
			withTimeout(t, func() {
				f, err := OpenBeneath(c.dir, c.rel)
				if c.wantErr == nil && c.what == "" {
					if err != nil {
						t.Fatalf("OpenBeneath: %v", err)
					}
					defer f.Close()
					if b, err := io.ReadAll(f); err != nil || string(b) != "inside" {
						t.Errorf("read %q, %v", b, err)
					}
					return
				}
				if err == nil {
					f.Close()
					t.Fatal("opened")
				}
				if c.wantErr != nil && !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.what) {
					t.Errorf("error %v; want %v with %q", err, c.wantErr, c.what)
				}
			})
		})
	}
}
