package vmdk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// planted is what the files outside the allowed root hold: a fake
// credential that must never come back as the image's data.
var planted = []byte("aws_secret_access_key=PLANTEDhostCREDENTIALnotTheImages0123456789\n")

// TestNamesOutsideRoots writes hostile parentFileNameHint and extent names
// into VMDKs made by qemu-img (a delta's embedded descriptor, a
// monolithicFlat descriptor) and checks that each is refused under the
// default root with an error naming the descriptor line's offset, that
// nothing outside the root is allowed, and that the planted credential is
// read only where its directory is given as a root.
func TestNamesOutsideRoots(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "mkfifo")
	dir := t.TempDir()
	root, outside := filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	os.Mkdir(root, 0o755)
	os.Mkdir(outside, 0o755)
	secretRaw := make([]byte, 1<<20)
	copy(secretRaw, planted)
	if err := os.WriteFile(filepath.Join(outside, "secret-flat.vmdk"), secretRaw, 0o644); err != nil {
		t.Fatal(err)
	}
	secretParent := filepath.Join(outside, "secret.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", filepath.Join(outside, "secret-flat.vmdk"), secretParent)
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", filepath.Join(root, "base.vmdk"), "1M")
	for name, target := range map[string]string{"link.vmdk": "../outside/secret.vmdk", "link-flat.vmdk": "../outside/secret-flat.vmdk"} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, "mkfifo", filepath.Join(root, "fifo"))

	cases := []struct {
		name    string
		extent  bool // the name is a flat extent's, not the parent's
		written string
		extra   []string
		wantErr error // nil: followed
		want    string
	}{
		{name: "parent-absolute", written: secretParent, wantErr: model.ErrOutsideRoots, want: "outside the allowed roots: not followed (see --backing-root)"},
		{name: "parent-dotdot", written: "../outside/secret.vmdk", wantErr: model.ErrOutsideRoots},
		{name: "parent-symlink", written: "link.vmdk", wantErr: model.ErrOutsideRoots, want: "resolves to " + secretParent},
		{name: "parent-fifo", written: "fifo", wantErr: model.ErrNotRegular, want: "named pipe"},
		{name: "parent-absolute-root-given", written: secretParent, extra: []string{outside}},
		{name: "extent-absolute", extent: true, written: filepath.Join(outside, "secret-flat.vmdk"), wantErr: model.ErrOutsideRoots},
		{name: "extent-dotdot", extent: true, written: "../outside/secret-flat.vmdk", wantErr: model.ErrOutsideRoots},
		{name: "extent-symlink", extent: true, written: "link-flat.vmdk", wantErr: model.ErrOutsideRoots, want: "resolves to "},
		{name: "extent-fifo", extent: true, written: "fifo", wantErr: model.ErrNotRegular, want: "named pipe"},
		{name: "extent-dev", extent: true, written: "/dev/zero", extra: []string{"/dev"}, wantErr: model.ErrNotRegular, want: "character device"},
		{name: "extent-absolute-root-given", extent: true, written: filepath.Join(outside, "secret-flat.vmdk"), extra: []string{outside}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := filepath.Join(root, c.name+".vmdk")
			var marker string
			if c.extent {
				testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", img, "1M")
				b := testutil.FileSnapshot(t, img)
				b = bytes.Replace(b, []byte(`"`+c.name+`-flat.vmdk"`), []byte(`"`+c.written+`"`), 1)
				if err := os.WriteFile(img, b, 0o644); err != nil {
					t.Fatal(err)
				}
				marker = "RW 2048 FLAT"
			} else {
				testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-b", "base.vmdk", "-F", "vmdk", img)
				rewriteEmbeddedDescriptor(t, img, func(s string) string {
					return strings.Replace(s, `parentFileNameHint="base.vmdk"`, `parentFileNameHint="`+c.written+`"`, 1)
				})
				marker = "parentFileNameHint="
			}
			nameAt := int64(bytes.Index(testutil.FileSnapshot(t, img), []byte(marker)))
			if nameAt < 0 {
				t.Fatalf("no %q in the image", marker)
			}
			before := dirHashes(t, root)
			roots, err := hostfile.NewRoots(append([]string{root}, c.extra...)...)
			if err != nil {
				t.Fatal(err)
			}
			log := &hostfile.Log{}
			opts := openOpts()
			opts.Opener = roots.WithLog(log)
			var im *model.Image
			done := make(chan struct{})
			go func() {
				defer close(done)
				im, err = Open(context.Background(), img, opts)
			}()
			select {
			case <-done:
			case <-time.After(20 * time.Second):
				t.Fatal("open blocked")
			}
			if im != nil {
				defer im.Close()
			}
			refusal := err // an extent is needed to open the image at all
			if !c.extent {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				for _, l := range im.Backing {
					refusal = errors.Join(refusal, l.Err)
				}
			}
			if c.wantErr == nil {
				if refusal != nil && !strings.Contains(refusal.Error(), "parentCID") {
					t.Fatalf("refused: %v", refusal)
				}
			} else {
				var fe *model.FormatError
				if !errors.Is(refusal, c.wantErr) || !errors.As(refusal, &fe) {
					t.Fatalf("error %v, want a FormatError wrapping %v", refusal, c.wantErr)
				}
				if fe.File != img || fe.Offset != nameAt || !strings.Contains(refusal.Error(), c.want) || !strings.Contains(refusal.Error(), c.written) {
					t.Errorf("error %q: want file %s, offset %d, the name and %q", refusal, img, nameAt, c.want)
				}
			}
			allowed := roots.Dirs()
			for _, u := range log.Uses() {
				if (u.Err == nil || u.Opened) && !slices.ContainsFunc(allowed, func(r string) bool { return strings.HasPrefix(u.Real, r+"/") }) {
					t.Errorf("allowed %q -> %q outside %v", u.Name, u.Real, allowed)
				}
			}
			leaked := false
			if im != nil {
				leaked = bytes.Contains(readDisk(t, currentDisk(t, im)), planted)
			}
			if want := c.wantErr == nil; leaked != want {
				t.Errorf("planted credential read: %v, want %v", leaked, want)
			}
			checkUnchanged(t, root, before)
		})
	}
}
