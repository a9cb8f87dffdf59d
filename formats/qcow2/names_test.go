package qcow2_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// planted is what a host file outside the allowed root holds: a fake
// credential that must never come back as the image's data.
var planted = []byte("aws_secret_access_key=PLANTEDhostCREDENTIALnotTheImages0123456789\n")

// hostileTree lays out an allowed root and, beside it, a directory the
// image must not reach:
//
//	dir/root/   the image, inside.raw, link.raw -> ../outside/secret.raw, fifo
//	dir/outside/secret.raw   1 MiB starting with the planted credential
func hostileTree(t *testing.T) (root, outside string) {
	t.Helper()
	dir := t.TempDir()
	root, outside = filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	secret := make([]byte, mib)
	copy(secret, planted)
	inside := make([]byte, mib)
	copy(inside, "inside the root")
	for p, b := range map[string][]byte{filepath.Join(outside, "secret.raw"): secret, filepath.Join(root, "inside.raw"): inside} {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../outside/secret.raw", filepath.Join(root, "link.raw")); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "mkfifo", filepath.Join(root, "fifo"))
	return root, outside
}

// dataFileNameOffset finds where the external data file name lies in a
// qcow2 header (the 0x44415441 header extension), independently of the
// reader.
func dataFileNameOffset(t *testing.T, img string) int64 {
	t.Helper()
	b := testutil.FileSnapshot(t, img)
	off := int64(binary.BigEndian.Uint32(b[100:])) // header_length
	for off+8 <= int64(len(b)) {
		typ, ln := binary.BigEndian.Uint32(b[off:]), int64(binary.BigEndian.Uint32(b[off+4:]))
		if typ == 0 {
			break
		}
		if typ == 0x44415441 {
			return off + 8
		}
		off += 8 + (ln+7)&^7
	}
	t.Fatal("no data file extension")
	return 0
}

// TestNamesOutsideRoots writes hostile backing and external data file
// names with qemu-img (create -u -b, amend -o data_file=) and checks that
// each is refused under the default root, with an error naming the image
// and the header offset of the name, that no file outside the root is
// allowed, and that the planted credential is never read; and that the
// same names are followed once their directory is an allowed root.
func TestNamesOutsideRoots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "mkfifo")
	root, outside := hostileTree(t)
	secret := filepath.Join(outside, "secret.raw")
	cases := []struct {
		name    string
		data    bool   // the name is the external data file's, not the backing file's
		written string // the name written into the image
		extra   []string
		wantErr error // nil: followed
		want    string
	}{
		{name: "backing-absolute", written: secret, wantErr: model.ErrOutsideRoots, want: "outside the allowed roots: not followed (see --backing-root)"},
		{name: "backing-dotdot", written: "../outside/secret.raw", wantErr: model.ErrOutsideRoots},
		{name: "backing-symlink", written: "link.raw", wantErr: model.ErrOutsideRoots, want: "resolves to " + secret},
		{name: "backing-fifo", written: "fifo", wantErr: model.ErrNotRegular, want: "named pipe"},
		{name: "backing-dev", written: "/dev/zero", wantErr: model.ErrOutsideRoots},
		{name: "backing-dev-in-root", written: "/dev/zero", extra: []string{"/dev"}, wantErr: model.ErrNotRegular, want: "character device"},
		{name: "backing-proc", written: "/proc/self/environ", extra: []string{"/proc"}, wantErr: model.ErrNotRegular, want: "/proc"},
		{name: "backing-inside", written: "inside.raw"},
		{name: "backing-absolute-root-given", written: secret, extra: []string{outside}},
		{name: "data-absolute", data: true, written: secret, wantErr: model.ErrOutsideRoots, want: "external data file"},
		{name: "data-dotdot", data: true, written: "../outside/secret.raw", wantErr: model.ErrOutsideRoots},
		{name: "data-symlink", data: true, written: "link.raw", wantErr: model.ErrOutsideRoots, want: "resolves to " + secret},
		{name: "data-fifo", data: true, written: "fifo", wantErr: model.ErrNotRegular, want: "named pipe"},
		{name: "data-dev", data: true, written: "/dev/zero", extra: []string{"/dev"}, wantErr: model.ErrNotRegular},
		{name: "data-absolute-root-given", data: true, written: secret, extra: []string{outside}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(root, c.name+".qcow2")
			var nameAt int64
			if c.data {
				// qemu-img creates the data file it is given, so the image
				// is made with a harmless one and then amended to the
				// hostile name (amend only writes the header extension).
				benign := filepath.Join(root, c.name+".data")
				createQcow2(t, img, "data_file="+benign+",data_file_raw=on", "1M")
				qemuIO(t, img, "write -q -P 0x41 0 64k")
				qemuImg(t, "amend", "-o", "data_file="+c.written, img)
				nameAt = dataFileNameOffset(t, img)
			} else {
				createQcow2(t, img, "", "1M", "-u", "-b", c.written, "-F", "raw")
				nameAt = int64(binary.BigEndian.Uint64(testutil.FileSnapshot(t, img)[8:]))
			}
			before := sha(t, img)
			roots, err := hostfile.NewRoots(append([]string{root}, c.extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			log := &hostfile.Log{}
			var im *model.Image
			done := make(chan struct{})
			go func() {
				defer close(done)
				im, err = formats.Open(context.Background(), img, model.Options{Opener: roots.WithLog(log)})
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("open blocked")
			}
			if im != nil {
				defer im.Close()
			}
			refusal := err // a data file is needed to open the image at all
			if !c.data && err == nil {
				for _, l := range im.Backing {
					refusal = errors.Join(refusal, l.Err)
				}
				if c.wantErr != nil && len(im.Errors) == 0 {
					t.Error("the refusal is not in Image.Errors")
				}
			} else if !c.data {
				t.Fatalf("open: %v", err)
			}
			if c.wantErr == nil {
				if refusal != nil {
					t.Fatalf("refused: %v", refusal)
				}
			} else {
				var fe *model.FormatError
				if !errors.Is(refusal, c.wantErr) || !errors.As(refusal, &fe) {
					t.Fatalf("error %v, want a FormatError wrapping %v", refusal, c.wantErr)
				}
				if fe.File != img || fe.Offset != nameAt || !strings.Contains(refusal.Error(), c.want) ||
					!strings.Contains(refusal.Error(), c.written) {
					t.Errorf("error %q: want file %s, offset %d, the name and %q", refusal, img, nameAt, c.want)
				}
			}
			// What the policy allowed, and what was opened, lies inside the
			// allowed roots; and no refused name was opened.
			allowed := roots.Dirs()
			for _, u := range log.Uses() {
				if (u.Err == nil || u.Opened) && !inside(u.Real, allowed) {
					t.Errorf("allowed %q -> %q outside %v", u.Name, u.Real, allowed)
				}
				if u.Err != nil && u.Opened {
					t.Errorf("refused %q but opened it", u.Name)
				}
			}
			if len(log.Uses()) == 0 {
				t.Error("the name was never asked for")
			}
			// The planted credential comes back only where its directory
			// was given as a root.
			leaked := false
			if im != nil {
				cur, _ := im.Current()
				leaked = bytes.Contains(readDisk(t, cur.Disk, mib), planted)
			}
			if wantLeak := c.wantErr == nil && slices.Contains(c.extra, outside); leaked != wantLeak {
				t.Errorf("planted credential read: %v, want %v", leaked, wantLeak)
			}
			if sha(t, img) != before {
				t.Error("image changed by reading it")
			}
		})
	}
}

func inside(p string, roots []string) bool {
	for _, r := range roots {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}
