package hostfile

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"maps"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// tree lays out an allowed root beside a directory outside it:
//
//	dir/root/img.qcow2, base.qcow2, sub/deep.qcow2, fifo, sock,
//	         to-outside -> ../outside/secret, to-base -> base.qcow2,
//	         to-proc -> /proc/self/status, to-null -> /dev/null
//	dir/outside/secret, to-secret -> secret, to-root -> ../root
//
// and in the root, to-outside-dir -> ../outside, to-nowhere ->
// /nonexistent-imgaudit-test/dir/file.
func tree(t *testing.T) (root, outside string) {
	t.Helper()
	dir := t.TempDir()
	root, outside = filepath.Join(dir, "root"), filepath.Join(dir, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"root/img.qcow2", "root/base.qcow2", "root/sub/deep.qcow2", "outside/secret"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("data of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Mkfifo(filepath.Join(root, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(root, "sock"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	for name, target := range map[string]string{
		"to-outside": "../outside/secret", "to-base": "base.qcow2",
		"to-proc": "/proc/self/status", "to-null": "/dev/null",
		"to-outside-dir": "../outside", "to-nowhere": "/nonexistent-imgaudit-test/dir/file",
		"../outside/to-secret": "secret", "../outside/to-root": "../root",
	} {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	return root, outside
}

// withTimeout fails the test if f blocks: a FIFO must never hang a scan.
func withTimeout(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("blocked for 10 s")
	}
}

func TestRootsResolve(t *testing.T) {
	root, outside := tree(t)
	from := filepath.Join(root, "img.qcow2")
	secret := filepath.Join(outside, "secret")
	cases := []struct {
		name     string
		from     string
		want     string // resolved path, or
		wantErr  error  // the refusal
		wantText string // in the error text
		notText  string // never in the error text
	}{
		{name: "base.qcow2", want: filepath.Join(root, "base.qcow2")},
		{name: "./sub/deep.qcow2", want: filepath.Join(root, "sub/deep.qcow2")},
		{name: "deep.qcow2", from: filepath.Join(root, "sub/x.qcow2"), want: filepath.Join(root, "sub/deep.qcow2")},
		{name: "../base.qcow2", from: filepath.Join(root, "sub/x.qcow2"), want: filepath.Join(root, "base.qcow2")},
		{name: filepath.Join(root, "base.qcow2"), want: filepath.Join(root, "base.qcow2")},
		{name: "to-base", want: filepath.Join(root, "to-base")},
		{name: secret, wantErr: model.ErrOutsideRoots, wantText: "outside the allowed roots: not followed (see --backing-root)"},
		{name: "../outside/secret", wantErr: model.ErrOutsideRoots},
		{name: "sub/../../outside/secret", wantErr: model.ErrOutsideRoots},
		{name: "to-outside", wantErr: model.ErrOutsideRoots, wantText: "resolves to " + secret},
		{name: "/etc/shadow", wantErr: model.ErrOutsideRoots},
		{name: "/nonexistent/file", wantErr: model.ErrOutsideRoots},
		// A name outside the roots is refused before the file system is
		// asked: the refusal names no path the host resolved.
		{name: filepath.Join(outside, "to-secret"), wantErr: model.ErrOutsideRoots, notText: secret},
		{name: "../outside/to-secret", wantErr: model.ErrOutsideRoots, notText: "resolves to"},
		{name: "/etc/localtime", wantErr: model.ErrOutsideRoots, notText: "zoneinfo"},
		// ... even one that a symbolic link outside leads back into a root.
		{name: filepath.Join(outside, "to-root/base.qcow2"), wantErr: model.ErrOutsideRoots, notText: "resolves to"},
		// A link inside a root that leads out is refused before its
		// target is looked at: the same answer whether the target exists.
		{name: "to-outside-dir/secret", wantErr: model.ErrOutsideRoots, wantText: "resolves to " + secret},
		{name: "to-outside-dir/missing", wantErr: model.ErrOutsideRoots},
		{name: "to-nowhere", wantErr: model.ErrOutsideRoots, wantText: "resolves to /nonexistent-imgaudit-test/dir/file"},
		{name: "missing.qcow2", wantErr: fs.ErrNotExist},
		{name: "fifo", wantErr: model.ErrNotRegular, wantText: "named pipe"},
		{name: "sock", wantErr: model.ErrNotRegular, wantText: "socket"},
		{name: "sub", wantErr: model.ErrNotRegular, wantText: "directory"},
		{name: "to-null", wantErr: model.ErrOutsideRoots},
		{name: "to-proc", wantErr: model.ErrOutsideRoots},
		{name: "", wantErr: model.ErrBadName},
		{name: "base.qcow2\x00x", wantErr: model.ErrBadName},
	}
	log := &Log{}
	r, err := NewRoots(root)
	if err != nil {
		t.Fatal(err)
	}
	r = r.WithLog(log)
	for _, c := range cases {
		t.Run(strings.ReplaceAll(c.name, "/", "|"), func(t *testing.T) {
			f := c.from
			if f == "" {
				f = from
			}
			withTimeout(t, func() {
				p, err := r.Resolve(f, c.name)
				if c.wantErr == nil {
					if err != nil || p != c.want {
						t.Errorf("Resolve = %q, %v; want %q", p, err, c.want)
					}
					return
				}
				if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.wantText) {
					t.Errorf("Resolve = %q, %v; want %v with %q", p, err, c.wantErr, c.wantText)
				}
				if c.notText != "" && err != nil && strings.Contains(err.Error(), c.notText) {
					t.Errorf("Resolve error %q names %q", err, c.notText)
				}
				of, _, oerr := r.Open(f, c.name)
				if oerr == nil {
					of.Close()
					t.Errorf("Open succeeded where Resolve refused")
				}
			})
		})
	}
	// The record: every request, and nothing outside the root allowed.
	uses := log.Uses()
	if len(uses) < len(cases) {
		t.Fatalf("%d requests recorded for %d cases", len(uses), len(cases))
	}
	for _, u := range uses {
		if u.Err == nil && !under(u.Real, r.Dirs()[0]) {
			t.Errorf("allowed %q -> %q, outside the root", u.Name, u.Real)
		}
		if u.Opened {
			t.Errorf("%q opened, but only refused names were opened", u.Name)
		}
	}
}

func TestRootsOpenAndExtraRoot(t *testing.T) {
	root, outside := tree(t)
	from := filepath.Join(root, "img.qcow2")
	secret := filepath.Join(outside, "secret")
	for _, c := range []struct {
		roots []string
		ok    bool
	}{{[]string{root}, false}, {[]string{root, outside}, true}} {
		r, err := NewRoots(c.roots...)
		if err != nil {
			t.Fatal(err)
		}
		log := &Log{}
		f, p, err := r.WithLog(log).Open(from, secret)
		if (err == nil) != c.ok {
			t.Fatalf("roots %v: Open(%s) err %v, want ok=%v", c.roots, secret, err, c.ok)
		}
		if err == nil {
			b := make([]byte, 5)
			if _, err := f.ReadAt(b, 0); err != nil || string(b) != "data " || p != secret {
				t.Errorf("read %q, %v; path %q", b, err, p)
			}
			f.Close()
		}
		if u := log.Uses(); len(u) != 1 || u[0].Opened != c.ok || u[0].Name != secret {
			t.Errorf("record %+v", u)
		}
	}
	if _, err := NewRoots(filepath.Join(root, "missing")); err == nil {
		t.Error("a missing root was accepted")
	}
	if _, err := NewRoots(from); err == nil {
		t.Error("a file was accepted as a root")
	}
}

func TestOpenRegular(t *testing.T) {
	root, _ := tree(t)
	for _, c := range []struct {
		path    string
		wantErr error
		what    string
	}{
		{path: filepath.Join(root, "base.qcow2")},
		{path: filepath.Join(root, "to-base")},
		{path: filepath.Join(root, "fifo"), wantErr: model.ErrNotRegular, what: "named pipe"},
		{path: filepath.Join(root, "sock"), wantErr: model.ErrNotRegular, what: "socket"},
		{path: filepath.Join(root, "sub"), wantErr: model.ErrNotRegular, what: "directory"},
		{path: "/dev/null", wantErr: model.ErrNotRegular, what: "character device"},
		{path: filepath.Join(root, "to-null"), wantErr: model.ErrNotRegular, what: "character device"},
		{path: "/proc/self/status", wantErr: model.ErrNotRegular, what: "/proc"},
		{path: filepath.Join(root, "to-proc"), wantErr: model.ErrNotRegular, what: "/proc"},
		{path: "/sys/kernel/mm/transparent_hugepage/enabled", wantErr: model.ErrNotRegular, what: "/sys"},
		{path: filepath.Join(root, "missing"), wantErr: fs.ErrNotExist},
	} {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			if _, err := os.Lstat(c.path); err != nil && c.wantErr != fs.ErrNotExist {
				t.Skipf("%s: %v", c.path, err)
			}
			withTimeout(t, func() {
				f, err := OpenRegular(c.path)
				if c.wantErr == nil {
					if err != nil {
						t.Fatalf("OpenRegular: %v", err)
					}
					defer f.Close()
					// The descriptor reads like os.Open's: blocking mode.
					fl, err := unix.FcntlInt(f.Fd(), unix.F_GETFL, 0)
					if err != nil || fl&unix.O_NONBLOCK != 0 {
						t.Errorf("flags %#x, %v: O_NONBLOCK left set", fl, err)
					}
					return
				}
				if err == nil {
					f.Close()
					t.Fatal("opened")
				}
				if !errors.Is(err, c.wantErr) || !strings.Contains(err.Error(), c.what) {
					t.Errorf("error %v; want %v with %q", err, c.wantErr, c.what)
				}
			})
		})
	}
}

func TestSealedAndFor(t *testing.T) {
	root, _ := tree(t)
	log := &Log{}
	s := Sealed{Log: log}
	for _, name := range []string{"base.qcow2", "/etc/shadow", "../x"} {
		if _, err := s.Resolve(filepath.Join(root, "img.qcow2"), name); !errors.Is(err, model.ErrSealed) {
			t.Errorf("Sealed.Resolve(%q) = %v", name, err)
		}
		if f, _, err := s.Open(filepath.Join(root, "img.qcow2"), name); f != nil || !errors.Is(err, model.ErrSealed) {
			t.Errorf("Sealed.Open(%q) = %v", name, err)
		}
	}
	if n := len(log.Uses()); n != 6 {
		t.Errorf("%d refusals recorded, want 6", n)
	}
	img := filepath.Join(root, "img.qcow2")
	if _, err := For(model.Options{}, img).Resolve(img, "base.qcow2"); err != nil {
		t.Errorf("default opener of a top-level image: %v", err)
	}
	if _, err := For(model.Options{Depth: 1}, img).Resolve(img, "base.qcow2"); !errors.Is(err, model.ErrSealed) {
		t.Errorf("no opener below the top must fail closed, got %v", err)
	}
	if got := For(model.Options{Opener: s}, img); got != s {
		t.Errorf("For ignored opts.Opener")
	}
}

// TestOpenTarget: a block device opens as a target the user names (a loop
// device standing for a logical volume), with its size where it ends,
// and only so: OpenRegular, which opens every name an image writes,
// refuses it, and OpenTarget refuses what OpenRegular refuses otherwise.
func TestOpenTarget(t *testing.T) {
	root, _ := tree(t)
	img := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(img, make([]byte, 3<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	dev, _ := testutil.LoopDevice(t, img, 0, 0)
	if _, err := OpenRegular(dev); !errors.Is(err, model.ErrNotRegular) || !strings.Contains(err.Error(), "block device") {
		t.Errorf("OpenRegular(%s): %v, want a refusal", dev, err)
	}
	f, err := OpenTarget(dev)
	if err != nil {
		t.Fatalf("OpenTarget(%s): %v", dev, err)
	}
	f.Close()
	for _, p := range []string{"/dev/null", filepath.Join(root, "fifo"), "/proc/self/status", filepath.Join(root, "sub")} {
		withTimeout(t, func() {
			if f, err := OpenTarget(p); !errors.Is(err, model.ErrNotRegular) {
				if f != nil {
					f.Close()
				}
				t.Errorf("OpenTarget(%s): %v, want a refusal", p, err)
			}
		})
	}
	im, err := OpenImage(context.Background(), "raw", dev, model.Options{BlockDevice: true}, func(_ context.Context, _ io.ReaderAt, size int64, name string, _ model.Options) (*model.Image, error) {
		return &model.Image{Path: name, VirtualSize: size}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if im.VirtualSize != 3<<20 {
		t.Errorf("size %d, want the device's, %d", im.VirtualSize, 3<<20)
	}
	if _, err := OpenImage(context.Background(), "raw", dev, model.Options{}, nil); !errors.Is(err, model.ErrNotRegular) {
		t.Errorf("OpenImage without BlockDevice: %v, want a refusal", err)
	}
}

// TestLogHolds: Hold counts open handles until each release (a second
// call of one release does nothing), and a nil *Log, which records
// nothing, answers every method rather than panicking.
func TestLogHolds(t *testing.T) {
	var l Log
	a, b := l.Hold("/x"), l.Hold("/x")
	for _, step := range []struct {
		release func()
		want    bool
	}{
		{nil, true},
		{a, true},
		{a, true}, // a second release of the same handle
		{b, false},
	} {
		if step.release != nil {
			step.release()
		}
		if got := l.Holds("/x"); got != step.want {
			t.Fatalf("Holds = %v, want %v", got, step.want)
		}
	}
	l.Add(model.NameUse{Name: "n"})
	if u := l.Uses(); len(u) != 1 || u[0].Name != "n" {
		t.Errorf("Uses = %+v", u)
	}

	var none *Log
	none.Hold("/x")()
	none.Add(model.NameUse{Name: "n"})
	if none.Holds("/x") || none.Uses() != nil {
		t.Error("a nil Log holds or records something")
	}
}

// TestLogTeeAndAllowed: a Tee records in itself and in its parent, and
// Allowed lists the names the policy allowed, as named and after
// symlinks, whether or not the open then succeeded, and none it refused.
func TestLogTeeAndAllowed(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"base.img", "other.img"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("other.img", filepath.Join(dir, "link.img")); err != nil {
		t.Fatal(err)
	}
	var run Log
	target := run.Tee()
	roots, err := NewRoots(dir)
	if err != nil {
		t.Fatal(err)
	}
	r := roots.WithLog(target)
	from := filepath.Join(dir, "top.img")
	for _, name := range []string{"base.img", "link.img", "/etc/passwd", "missing.img"} {
		if f, _, err := r.Open(from, name); err == nil {
			f.Close()
		}
	}
	real := func(p string) string {
		q, err := filepath.EvalSymlinks(p)
		if err != nil {
			t.Fatal(err)
		}
		return q
	}
	want := map[string]bool{
		filepath.Join(dir, "base.img"): true, real(filepath.Join(dir, "base.img")): true,
		filepath.Join(dir, "link.img"): true, real(filepath.Join(dir, "link.img")): true,
	}
	got := map[string]bool{}
	for _, p := range target.Allowed() {
		got[p] = true
	}
	if !maps.Equal(got, want) {
		t.Errorf("Allowed = %v, want %v", got, want)
	}
	if a, b := len(run.Uses()), len(target.Uses()); a != 4 || b != 4 {
		t.Errorf("the run's log has %d uses and the target's %d, want 4 each", a, b)
	}
	var none *Log
	if none.Allowed() != nil {
		t.Error("a nil Log allowed something")
	}
}

// TestRootsLexical: which root a name lies under is decided from the
// name alone, before any system call, against each root as given and
// after symlinks; and EvalSymlinks looks only at paths under a root or
// at the directories above one.
func TestRootsLexical(t *testing.T) {
	root, outside := tree(t)
	dir := filepath.Dir(root)
	alias := filepath.Join(dir, "alias") // a root given through a link
	if err := os.Symlink("root", alias); err != nil {
		t.Fatal(err)
	}
	r, err := NewRoots(alias)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path     string
		ok       bool
		wantRest string
	}{
		{path: filepath.Join(root, "base.qcow2"), ok: true, wantRest: "/base.qcow2"},
		{path: filepath.Join(alias, "sub/deep.qcow2"), ok: true, wantRest: "/sub/deep.qcow2"},
		{path: root, ok: true},
		{path: alias, ok: true},
		{path: filepath.Join(outside, "to-root/base.qcow2")},
		{path: root + "x/base.qcow2"},
		{path: dir},
		{path: "/etc/localtime"},
		{path: "/net/host/x"},
	} {
		d, rest, ok := r.lexical(c.path)
		if ok != c.ok || (ok && (d != root || rest != c.wantRest)) {
			t.Errorf("lexical(%s) = %q, %q, %v; want %q, %q, %v", c.path, d, rest, ok, root, c.wantRest, c.ok)
		}
	}
	for p, want := range map[string]bool{
		"/": true, dir: true, root: true, filepath.Join(root, "sub/x"): true,
		outside: false, filepath.Join(outside, "secret"): false, alias: false,
		"/etc": false, "/net": false, "/proc": false,
	} {
		if got := r.mayLook(p); got != want {
			t.Errorf("mayLook(%s) = %v, want %v", p, got, want)
		}
	}
	if got, err := r.EvalSymlinks(filepath.Join(alias, "to-base")); err != nil || got != filepath.Join(root, "base.qcow2") {
		t.Errorf("EvalSymlinks through the root's link = %q, %v", got, err)
	}
}

// TestRootsList: List reads a directory only under the policy; the
// directory above a root, or one a link leads out to, is refused unread,
// and the refusal names none of its files.
func TestRootsList(t *testing.T) {
	root, outside := tree(t)
	from := filepath.Join(root, "img.qcow2")
	r, err := NewRoots(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir     string
		want    []string // regular files listed, or
		wantErr error    // the refusal
	}{
		{dir: ".", want: []string{"base.qcow2", "img.qcow2"}},
		{dir: "sub", want: []string{"deep.qcow2"}},
		{dir: root, want: []string{"base.qcow2", "img.qcow2"}},
		{dir: "..", wantErr: model.ErrOutsideRoots},
		{dir: "../outside", wantErr: model.ErrOutsideRoots},
		{dir: outside, wantErr: model.ErrOutsideRoots},
		{dir: "to-outside-dir", wantErr: model.ErrOutsideRoots},
		{dir: "/etc", wantErr: model.ErrOutsideRoots},
		{dir: "missing", wantErr: fs.ErrNotExist},
		{dir: "", wantErr: model.ErrBadName},
	} {
		t.Run(strings.ReplaceAll(c.dir, "/", "|"), func(t *testing.T) {
			got, err := r.List(from, c.dir)
			if c.wantErr == nil {
				if err != nil || strings.Join(got, ",") != strings.Join(c.want, ",") {
					t.Errorf("List = %q, %v; want %q", got, err, c.want)
				}
				return
			}
			if !errors.Is(err, c.wantErr) || got != nil {
				t.Errorf("List = %q, %v; want %v", got, err, c.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("List error %q names a file outside the roots", err)
			}
		})
	}
}
