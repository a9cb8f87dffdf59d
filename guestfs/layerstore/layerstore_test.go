package layerstore

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

func TestSplit(t *testing.T) {
	id := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		path             string
		kind             Kind
		store, dir, rest string
	}{
		{"/var/lib/docker/overlay2/" + id + "/diff/usr/share/x.gz", DockerOverlay2, "/var/lib/docker/overlay2", "/var/lib/docker/overlay2/" + id + "/diff", "/usr/share/x.gz"},
		{"/srv/docker/overlay2/" + id + "-init/diff/etc/hosts", DockerOverlay2, "/srv/docker/overlay2", "/srv/docker/overlay2/" + id + "-init/diff", "/etc/hosts"},
		{"/var/lib/containers/storage/overlay/" + id + "/diff/etc/passwd", ContainersOverlay, "/var/lib/containers/storage/overlay", "/var/lib/containers/storage/overlay/" + id + "/diff", "/etc/passwd"},
		{"/home/u/.local/share/containers/storage/vfs/dir/" + id + "/etc/ssl/k.pem", VFS, "/home/u/.local/share/containers/storage/vfs/dir", "/home/u/.local/share/containers/storage/vfs/dir/" + id, "/etc/ssl/k.pem"},
		{"/var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/17/fs/usr/bin/x", ContainerdOverlayfs,
			"/var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots", "/var/lib/docker/containerd/daemon/io.containerd.snapshotter.v1.overlayfs/snapshots/17/fs", "/usr/bin/x"},
		// A store inside a layer (docker-in-docker) is the inner store's.
		{"/var/lib/docker/overlay2/" + id + "/diff/var/lib/docker/overlay2/" + strings.Repeat("cd", 32) + "/diff/a", DockerOverlay2,
			"/var/lib/docker/overlay2/" + id + "/diff/var/lib/docker/overlay2", "/var/lib/docker/overlay2/" + id + "/diff/var/lib/docker/overlay2/" + strings.Repeat("cd", 32) + "/diff", "/a"},
		// Not in a layer: the layer directory itself, its metadata, a
		// short or non-hex ID, a merged mount point, a plain path.
		{"/var/lib/docker/overlay2/" + id + "/diff", "", "", "", ""},
		{"/var/lib/docker/overlay2/" + id + "/lower", "", "", "", ""},
		{"/var/lib/docker/overlay2/" + id + "/merged/etc/passwd", "", "", "", ""},
		{"/var/lib/docker/overlay2/abc/diff/etc/passwd", "", "", "", ""},
		{"/var/lib/docker/overlay2/" + strings.Repeat("AB", 32) + "/diff/etc/passwd", "", "", "", ""},
		{"/var/lib/docker/vfs/dir/../etc/passwd", "", "", "", ""},
		{"/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs/snapshots/x/fs/a", "", "", "", ""},
		{"/etc/ssh/ssh_host_rsa_key", "", "", "", ""},
	} {
		l, rest, ok := Split(tc.path)
		if ok != (tc.kind != "") || l.Kind != tc.kind || l.Store != tc.store || l.Dir != tc.dir || rest != tc.rest {
			t.Errorf("Split(%q) = %+v, %q, %v; want %s %s %s %s", tc.path, l, rest, ok, tc.kind, tc.store, tc.dir, tc.rest)
		}
	}
}

func TestParseLower(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"", nil, false},
		{"l/ABC\n", []string{"l/ABC"}, false},
		{"l/ABC:l/DEF", []string{"l/ABC", "l/DEF"}, false},
		{"/var/lib/docker/overlay2/x/diff", nil, true},
		{"l/../../etc", nil, true},
		{"l/", nil, true},
		{"l/A::l/B", nil, true},
		{"l/..", nil, true},
		{strings.Repeat("l/A:", MaxLowers) + "l/B", nil, true},
	} {
		got, err := ParseLower([]byte(tc.in))
		if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
			t.Errorf("ParseLower(%q) = %q, %v", tc.in, got, err)
		}
	}
}

// hostFS reads a directory of this machine as FS: the Docker data root
// that the real dockerd wrote, before it is copied into a guest.
type hostFS string

func (h hostFS) ReadFile(p string) ([]byte, error) {
	fi, err := os.Stat(filepath.Join(string(h), p))
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, errors.New(p + ": not a regular file")
	}
	return os.ReadFile(filepath.Join(string(h), p))
}
func (h hostFS) ReadDir(p string) ([]fs.DirEntry, error) {
	return os.ReadDir(filepath.Join(string(h), p))
}
func (h hostFS) Readlink(p string) (string, error) { return os.Readlink(filepath.Join(string(h), p)) }

// TestOverlayLayers reads the layers that the real dockerd
// (testutil.DockerLoad) and the real podman (testutil.PodmanLoad) store
// for a three-layer image: the top layer's chain is its own directory
// and the two below, and the merged view is what the container sees: the
// upper layer's copy of a file wins, whiteouts of a file and of a
// directory hide the lower layer's, and a lower layer's symlink shows
// through.
func TestOverlayLayers(t *testing.T) {
	for _, engine := range []struct {
		name  string
		load  func(t testing.TB, root, tag string, layerDirs ...string)
		store string // the driver's directory in root
		kind  Kind
	}{
		{"docker", testutil.DockerLoad, "overlay2", DockerOverlay2},
		{"podman", testutil.PodmanLoad, "overlay", ContainersOverlay},
	} {
		t.Run(engine.name, func(t *testing.T) {
			testOverlayLayers(t, engine.load, engine.store, engine.kind)
		})
	}
}

func testOverlayLayers(t *testing.T, load func(t testing.TB, root, tag string, layerDirs ...string), store string, kind Kind) {
	dir := t.TempDir()
	write := func(p, s string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("l1/var/lib/dpkg/status", "v1")
	write("l1/a", "a")
	write("l1/d/x", "x")
	if err := os.Symlink("usr/lib", filepath.Join(dir, "l1/lib")); err != nil {
		t.Fatal(err)
	}
	write("l2/var/lib/dpkg/status", "v2")
	write("l2/.wh.a", "")
	write("l2/.wh.d", "")
	write("l3/b", "b")
	data := filepath.Join(dir, "store")
	load(t, data, "layers:1", filepath.Join(dir, "l1"), filepath.Join(dir, "l2"), filepath.Join(dir, "l3"))

	fsys := hostFS(data)
	ents, err := os.ReadDir(filepath.Join(data, store))
	if err != nil {
		t.Fatal(err)
	}
	var top Layer
	var chain []string
	n := 0
	for _, e := range ents {
		if e.Name() == "l" || !e.IsDir() {
			continue // the links, podman's lock files
		}
		n++
		l, rest, ok := Split("/" + store + "/" + e.Name() + "/diff/etc/x")
		if !ok || rest != "/etc/x" || l.Kind != kind || l.ID != e.Name() {
			t.Fatalf("layer %s: Split gives %+v %q %v", e.Name(), l, rest, ok)
		}
		dirs, err := Chain(fsys, l)
		if err != nil {
			t.Fatalf("layer %s: %v", e.Name(), err)
		}
		if len(dirs) > len(chain) {
			top, chain = l, dirs
		}
	}
	if n != 3 || len(chain) != 3 || chain[0] != top.Dir {
		t.Fatalf("%d layers; the longest chain is %q", n, chain)
	}
	m := NewMerged(fsys, chain, nil)
	read := func(p string) string {
		b, err := m.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			return "(none)"
		}
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		return string(b)
	}
	for p, want := range map[string]string{"/var/lib/dpkg/status": "v2", "/a": "(none)", "/d/x": "(none)", "/b": "b", "/c": "(none)"} {
		if got := read(p); got != want {
			t.Errorf("%s: %q, want %q", p, got, want)
		}
	}
	root, err := m.ReadDir("/")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range root {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{"b", "lib", "var"}) {
		t.Errorf("the merged root lists %q", names)
	}
	if _, err := m.ReadDir("/d"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a whited-out directory lists: %v", err)
	}
	if target, err := m.Readlink("/lib"); err != nil || target != "usr/lib" {
		t.Errorf("Readlink(/lib) = %q, %v", target, err)
	}
	// Alone, the bottom layer still has what the upper ones hide.
	bottom := NewMerged(fsys, chain[2:], nil)
	if b, err := bottom.ReadFile("/a"); err != nil || string(b) != "a" {
		t.Errorf("the bottom layer's /a: %q, %v", b, err)
	}
}

// TestChainRejects: a lower list that leads out of the store, or repeats
// a layer, is an error naming the file and the entry; the layer's own
// directory is still returned.
func TestChainRejects(t *testing.T) {
	dir := t.TempDir()
	id1, id2 := strings.Repeat("1", 64), strings.Repeat("2", 64)
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("overlay2/l")
	mk("overlay2/" + id1 + "/diff")
	mk("overlay2/" + id2 + "/diff")
	for link, target := range map[string]string{"A": "../" + id2 + "/diff", "OUT": "/etc", "UP": "../../" + id2 + "/diff", "SELF": "../" + id1 + "/diff"} {
		if err := os.Symlink(target, filepath.Join(dir, "overlay2/l", link)); err != nil {
			t.Fatal(err)
		}
	}
	l := Layer{Kind: DockerOverlay2, Store: "/overlay2", ID: id1, Dir: "/overlay2/" + id1 + "/diff"}
	for _, tc := range []struct {
		lower, wantErr string
		wantDirs       int
	}{
		{"l/A", "", 2},
		{"l/OUT", `entry 1 (l/OUT) leads to "/etc"`, 1},
		{"l/A:l/UP", `entry 2 (l/UP) leads to "../../`, 2},
		{"l/SELF", "appears twice", 1},
		{"l/A:l/A", "appears twice", 2},
		{"l/MISSING", "entry 1 (l/MISSING)", 1},
		{"/abs/path", "not a link in the store's l/ directory", 1},
	} {
		if err := os.WriteFile(filepath.Join(dir, "overlay2", id1, "lower"), []byte(tc.lower), 0o644); err != nil {
			t.Fatal(err)
		}
		dirs, err := Chain(hostFS(dir), l)
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), id1+"/lower")) {
			t.Errorf("lower %q: %v, want %q", tc.lower, err, tc.wantErr)
		}
		if len(dirs) != tc.wantDirs || dirs[0] != l.Dir {
			t.Errorf("lower %q: dirs %q", tc.lower, dirs)
		}
	}
}

func FuzzParseLower(f *testing.F) {
	f.Add([]byte("l/ABC:l/DEF\n"))
	f.Add([]byte("l/../x"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, b []byte) {
		links, err := ParseLower(b)
		if err != nil {
			return
		}
		if len(links) > MaxLowers {
			t.Fatalf("%d links", len(links))
		}
		for _, l := range links {
			name, ok := strings.CutPrefix(l, "l/")
			if !ok || name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00:") {
				t.Fatalf("accepted %q", l)
			}
		}
	})
}

func FuzzSplit(f *testing.F) {
	f.Add("/var/lib/docker/overlay2/" + strings.Repeat("ab", 32) + "/diff/etc/x")
	f.Add("/var/lib/containers/storage/vfs/dir/x/etc/y")
	f.Add("/a/io.containerd.snapshotter.v1.overlayfs/snapshots/1/fs/b")
	f.Fuzz(func(t *testing.T, p string) {
		l, rest, ok := Split(p)
		if !ok {
			return
		}
		if !strings.HasPrefix(l.Dir, l.Store+"/") || !strings.HasPrefix(rest, "/") || rest == "/" ||
			strings.Contains(rest, "/../") || strings.HasSuffix(rest, "/..") {
			t.Fatalf("Split(%q) = %+v %q", p, l, rest)
		}
	})
}

// TestMergedBudget: a merged filesystem spends a lookup for each layer
// directory it looks in, and once the budget is spent its reads fail with
// ErrLookups, which the package readers report; what it read before
// stands.
func TestMergedBudget(t *testing.T) {
	dir := t.TempDir()
	var dirs []string
	for i := range 100 {
		d := filepath.Join(dir, fmt.Sprintf("layer%03d", i))
		if err := os.MkdirAll(filepath.Join(d, "etc"), 0o755); err != nil {
			t.Fatal(err)
		}
		dirs = append(dirs, "/"+filepath.Base(d))
	}
	// Only the bottom layer has the file: reading it looks in all 100.
	if err := os.WriteFile(filepath.Join(dir, "layer099/etc/f"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		budget int64
		reads  int // of /etc/f that succeed
	}{
		{100, 1}, {250, 2}, {99, 0}, {0, 0},
	} {
		b := NewBudget(tc.budget)
		m := NewMerged(hostFS(dir), dirs, b)
		ok := 0
		for range 3 {
			if _, err := m.ReadFile("/etc/f"); err == nil {
				ok++
			} else if !errors.Is(err, ErrLookups) {
				t.Fatalf("budget %d: %v", tc.budget, err)
			}
		}
		if ok != tc.reads {
			t.Errorf("budget %d: %d of 3 reads, want %d", tc.budget, ok, tc.reads)
		}
		if _, err := m.ReadDir("/etc"); tc.budget < 300 && !errors.Is(err, ErrLookups) {
			t.Errorf("budget %d: listing past the budget: %v", tc.budget, err)
		}
	}
}
