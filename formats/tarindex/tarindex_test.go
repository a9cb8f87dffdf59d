package tarindex

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// archive builds a tar with GNU tar from a tree with files, links that
// stay inside and links that climb out, a FIFO, a sparse file and a file
// written twice, and returns it embedded at a nonzero offset of a larger
// file (as a layer lies inside a docker save tarball).
func archive(t *testing.T) (*Index, *hostfile.Log, map[string][]byte) {
	t.Helper()
	testutil.RequireTool(t, "tar", "mkfifo", "truncate")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	files := map[string][]byte{
		"disk/top.qcow2":  bytes.Repeat([]byte("top "), 1000),
		"disk/base.qcow2": bytes.Repeat([]byte("base"), 3000),
		"images/a.vdi":    []byte("a"),
		"images/b.vdi":    []byte("bb"),
		"etc/hostname":    []byte("web01\n"),
	}
	for n, b := range files {
		p := filepath.Join(root, n)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{
		"disk/rel.qcow2":    "base.qcow2",
		"disk/abs.qcow2":    "/disk/base.qcow2",
		"disk/escape.qcow2": "../../../etc/passwd",
		"disk/loop1":        "loop2",
		"disk/loop2":        "loop1",
		"store":             "disk",
	}
	for n, target := range links {
		if err := os.Symlink(target, filepath.Join(root, n)); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, "mkfifo", filepath.Join(root, "disk/fifo"))
	testutil.Run(t, "truncate", "-s", "1M", filepath.Join(root, "disk/sparse.img"))
	os.WriteFile(filepath.Join(root, "extra"), []byte("later copy\n"), 0o644)
	tarPath := filepath.Join(dir, "layer.tar")
	testutil.Run(t, "tar", "--format=posix", "--sparse", "-cf", tarPath, "-C", root, "disk", "images", "etc", "store", "extra")
	// A hard link, and the same name again: the later copy wins.
	os.WriteFile(filepath.Join(root, "etc/hostname"), []byte("web02\n"), 0o644)
	testutil.Run(t, "tar", "--format=posix", "-rf", tarPath, "-C", root, "etc/hostname")
	files["etc/hostname"] = []byte("web02\n")
	os.Link(filepath.Join(root, "extra"), filepath.Join(root, "hard"))
	testutil.Run(t, "tar", "--format=posix", "-rf", tarPath, "-C", root, "extra", "hard")
	files["hard"] = []byte("later copy\n")
	tb, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	outer := append(append(bytes.Repeat([]byte{0xee}, 12345), tb...), bytes.Repeat([]byte{0xdd}, 999)...)
	r := io.NewSectionReader(bytes.NewReader(outer), 12345, int64(len(tb)))
	x, err := Build(context.Background(), r, int64(len(tb)), "sha256:layer", 1000)
	if err != nil {
		t.Fatal(err)
	}
	log := &hostfile.Log{}
	return x.WithLog(log), log, files
}

func TestOpen(t *testing.T) {
	x, log, files := archive(t)
	tests := []struct {
		name     string
		from     string
		ref      string // the name as an image writes it
		want     string // the member read: a key of files, "" for a refusal
		path     string // the name Open returns
		wantErr  error
		errMatch func(error) bool
	}{
		{name: "relative", from: "/disk/top.qcow2", ref: "base.qcow2", want: "disk/base.qcow2", path: "/disk/base.qcow2"},
		{name: "absolute means the archive's root", from: "/disk/top.qcow2", ref: "/etc/hostname", want: "etc/hostname", path: "/etc/hostname"},
		{name: "dot dot inside", from: "/disk/top.qcow2", ref: "../images/a.vdi", want: "images/a.vdi", path: "/images/a.vdi"},
		{name: "relative symlink", from: "/disk/top.qcow2", ref: "rel.qcow2", want: "disk/base.qcow2", path: "/disk/rel.qcow2"},
		{name: "absolute symlink", from: "/disk/top.qcow2", ref: "abs.qcow2", want: "disk/base.qcow2", path: "/disk/abs.qcow2"},
		{name: "directory symlink", from: "/x", ref: "store/base.qcow2", want: "disk/base.qcow2", path: "/store/base.qcow2"},
		{name: "hard link", from: "/x", ref: "hard", want: "hard", path: "/hard"},
		{name: "later copy wins", from: "/x", ref: "etc/hostname", want: "etc/hostname", path: "/etc/hostname"},
		{name: "climbs out", from: "/disk/top.qcow2", ref: "../../etc/shadow", wantErr: model.ErrOutsideArchive},
		{name: "absolute climbs out", from: "/disk/top.qcow2", ref: "/../etc/shadow", wantErr: model.ErrOutsideArchive},
		{name: "symlink climbs out", from: "/disk/top.qcow2", ref: "escape.qcow2", wantErr: model.ErrOutsideArchive},
		{name: "not in the archive", from: "/disk/top.qcow2", ref: "/etc/shadow", wantErr: fs.ErrNotExist},
		{name: "fifo", from: "/disk/top.qcow2", ref: "fifo", wantErr: model.ErrNotRegular},
		{name: "directory", from: "/disk/top.qcow2", ref: "/images", wantErr: model.ErrNotRegular},
		{name: "sparse member", from: "/disk/top.qcow2", ref: "sparse.img", wantErr: model.ErrNotRegular},
		{name: "link loop", from: "/disk/top.qcow2", ref: "loop1", errMatch: func(err error) bool { return err != nil }},
		{name: "empty name", from: "/disk/top.qcow2", ref: "", wantErr: model.ErrBadName},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, p, err := x.Open(tc.from, tc.ref)
			switch {
			case tc.errMatch != nil:
				if !tc.errMatch(err) {
					t.Fatalf("err %v", err)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Open(%q) = %v, want %v", tc.ref, err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			defer f.Close()
			if p != tc.path {
				t.Errorf("path %q, want %q", p, tc.path)
			}
			st, _ := f.Stat()
			got := make([]byte, st.Size())
			if _, err := f.ReadAt(got, 0); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, files[tc.want]) {
				t.Errorf("read %q, want the bytes of %s", got[:min(len(got), 16)], tc.want)
			}
			if r, err := x.Resolve(tc.from, tc.ref); err != nil || r != tc.path {
				t.Errorf("Resolve = %q, %v", r, err)
			}
		})
	}
	// Every request is logged, with what it resolved to.
	uses := log.Uses()
	if len(uses) < len(tests) || uses[0].Real != "/disk/base.qcow2" || !uses[0].Opened {
		t.Errorf("log: %+v", uses[:min(3, len(uses))])
	}
}

func TestList(t *testing.T) {
	x, _, _ := archive(t)
	got, err := x.List("/images/a.vdi", ".")
	if err != nil || !slices.Equal(got, []string{"a.vdi", "b.vdi"}) {
		t.Errorf("List(.) = %q, %v", got, err)
	}
	if _, err := x.List("/images/a.vdi", "../.."); !errors.Is(err, model.ErrOutsideArchive) {
		t.Errorf("List(../..) = %v, want a refusal", err)
	}
}

// TestBuild: the index records links as links and each member's data
// where the tar reader finds it.
func TestBuild(t *testing.T) {
	x, _, files := archive(t)
	types := map[string]byte{}
	for _, e := range x.Entries() {
		types[e.Name] = e.Type
		if want, ok := files[e.Name[1:]]; ok && e.Type == '0' && e.Name != "/etc/hostname" {
			got := make([]byte, e.Size)
			x.r.ReadAt(got, e.Offset)
			if !bytes.Equal(got, want) {
				t.Errorf("%s: data at %d is not the file's", e.Name, e.Offset)
			}
		}
	}
	for name, want := range map[string]byte{"/hard": '1', "/store": '2', "/disk/fifo": '6', "/images": '5'} {
		if types[name] != want {
			t.Errorf("%s: type %q, want %q", name, types[name], want)
		}
	}
}

// TestHeaderOffsets: each entry's Header is where its header begins, so
// that a tar reader started there reads that member again, data and all:
// after a regular member, after a sparse one, and for a long name (GNU
// tar's ././@LongLink, or a PAX record), in the formats GNU tar writes.
// The index had recorded where the previous member's data began.
func TestHeaderOffsets(t *testing.T) {
	testutil.RequireTool(t, "tar", "fallocate")
	root := t.TempDir()
	long := "d/" + string(bytes.Repeat([]byte("n"), 120))
	want := map[string][]byte{
		"a.txt":   []byte("first\n"),
		"sp1.img": nil, // 3 MiB: holes around a run of data
		long:      []byte("long name\n"),
		"sp2.img": nil,
		"z.txt":   []byte("last\n"),
	}
	os.MkdirAll(filepath.Join(root, "d"), 0o755)
	for _, n := range []string{"sp1.img", "sp2.img"} {
		b := make([]byte, 3<<20)
		copy(b[1<<20:], bytes.Repeat([]byte(n), 5000))
		want[n] = b
	}
	for n, b := range want {
		if err := os.WriteFile(filepath.Join(root, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Punch the holes back: os.WriteFile wrote the zeros.
	for _, n := range []string{"sp1.img", "sp2.img"} {
		testutil.Run(t, "fallocate", "--dig-holes", filepath.Join(root, n))
	}
	for _, format := range []string{"gnu", "oldgnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			tarPath := filepath.Join(t.TempDir(), "a.tar")
			testutil.Run(t, "tar", "--format="+format, "--sparse", "-cf", tarPath, "-C", root, "a.txt", "sp1.img", long, "sp2.img", "z.txt")
			tb, err := os.ReadFile(tarPath)
			if err != nil {
				t.Fatal(err)
			}
			x, err := Build(context.Background(), bytes.NewReader(tb), int64(len(tb)), "a.tar", 100)
			if err != nil {
				t.Fatal(err)
			}
			sparse := 0
			for _, e := range x.Entries() {
				if e.Sparse {
					sparse++
				}
				tr := tar.NewReader(bytes.NewReader(tb[e.Header:]))
				h, err := tr.Next()
				if err != nil || h.Name != e.Raw {
					t.Errorf("%s: header at %d reads %v, %v", e.Raw, e.Header, h, err)
					continue
				}
				got, err := io.ReadAll(tr)
				if err != nil || !bytes.Equal(got, want[e.Raw]) {
					t.Errorf("%s: the member read from its header at %d is not the file (%d bytes, %v)", e.Raw, e.Header, len(got), err)
				}
			}
			if sparse != 2 {
				t.Errorf("%d sparse members, want 2", sparse)
			}
		})
	}
}
