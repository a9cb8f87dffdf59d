package guestfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestHardLinkLocate: a file with several names (hard links), made by
// each filesystem's own tools, is located under one name with the others
// in Links, on every filesystem with hard links; its data is found under
// any name. A key in /etc hard-linked into a test directory must not
// read as test data only.
func TestHardLinkLocate(t *testing.T) {
	const key = "/etc/ssl/private/server.key"
	others := []string{"/srv/app/testdata/server.key", "/backup/etc/server.key"}
	content := marker(key, 9000)
	link := func(t *testing.T, root string) {
		for _, o := range others {
			if err := os.MkdirAll(filepath.Join(root, filepath.Dir(o)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Link(filepath.Join(root, key), filepath.Join(root, o)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// fromDir builds a filesystem from a source tree (mkfs -d, makefs);
	// mounted populates one through the kernel or ntfs-3g.
	fromDir := func(tool string, mk func(t *testing.T, src, img string)) func(t *testing.T) string {
		return func(t *testing.T) string {
			testutil.RequireTool(t, tool)
			src := t.TempDir()
			if err := os.MkdirAll(filepath.Join(src, filepath.Dir(key)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(src, key), content, 0o600); err != nil {
				t.Fatal(err)
			}
			link(t, src)
			img := filepath.Join(t.TempDir(), "fs.img")
			mk(t, src, img)
			return img
		}
	}
	live := map[string][]byte{key: content}
	for _, c := range []struct {
		fs    string
		build func(t *testing.T) string
	}{
		{"ext4", fromDir("mkfs.ext4", func(t *testing.T, src, img string) {
			testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img, "16M")
		})},
		{"ufs2", fromDir("makefs", func(t *testing.T, src, img string) {
			testutil.Run(t, "makefs", "-t", "ffs", "-o", "version=2", "-s", "32m", img, src)
		})},
		{"xfs", func(t *testing.T) string {
			testutil.RequireTool(t, "mkfs.xfs")
			img := filepath.Join(t.TempDir(), "xfs.img")
			if err := os.WriteFile(img, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(img, 300<<20); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "mkfs.xfs", "-q", img)
			mnt, unmount := testutil.LoopMount(t, img)
			if err := os.MkdirAll(filepath.Join(mnt, filepath.Dir(key)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(mnt, key), content, 0o600); err != nil {
				t.Fatal(err)
			}
			link(t, mnt)
			unmount()
			return img
		}},
		{"btrfs", func(t *testing.T) string {
			return testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{Live: live, Extra: func(mnt string) { link(t, mnt) }}, nil)
		}},
		{"ntfs", func(t *testing.T) string {
			return testutil.MakeNTFS(t, 16<<20, testutil.FSContent{Live: live, Extra: func(mnt string) { link(t, mnt) }})
		}},
	} {
		t.Run(c.fs, func(t *testing.T) {
			m, img := analyzeFile(t, c.build(t))
			names := append([]string{key}, others...)
			got := m.Locate(contentOffset(t, img, key))
			if got.FS != c.fs || got.State != StateAllocated || !slices.Contains(names, got.Path) || got.LinksOmitted != 0 {
				t.Fatalf("Locate = %+v; want one of %q, allocated, on %s", got, names, c.fs)
			}
			want := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == got.Path })
			slices.Sort(want)
			if !slices.Equal(got.Links, want) {
				t.Errorf("Links %q, want %q (path %s)", got.Links, want, got.Path)
			}
			// Every name reaches the file's data.
			first, ok := m.FileData(got.Partition, got.Path)
			for _, n := range names {
				if d, ok2 := m.FileData(got.Partition, n); ok2 != ok || fmt.Sprint(d) != fmt.Sprint(first) {
					t.Errorf("FileData(%s) = %v %v, %s's %v %v", n, d, ok2, got.Path, first, ok)
				}
			}
		})
	}
}

// TestHardLinkNamesCapped: a file with more names than a location lists
// (a backup tree hard-linking it into every daily copy) lists
// MaxLinkNames and counts the rest.
func TestHardLinkNamesCapped(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	src := t.TempDir()
	const key = "/etc/app.key"
	content := marker(key, 5000)
	if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, key), content, 0o600); err != nil {
		t.Fatal(err)
	}
	const copies = MaxLinkNames + 6
	for i := range copies {
		d := filepath.Join(src, "backup", fmt.Sprintf("daily.%03d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(src, key), filepath.Join(d, "app.key")); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(t.TempDir(), "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img, "16M")
	m, data := analyzeFile(t, img)
	got := m.Locate(contentOffset(t, data, key))
	if len(got.Links) != MaxLinkNames || got.LinksOmitted != copies+1-1-MaxLinkNames || !slices.IsSorted(got.Links) {
		t.Errorf("%s: %d links listed, %d omitted; want %d and %d, sorted", got.Path, len(got.Links), got.LinksOmitted, MaxLinkNames, copies-MaxLinkNames)
	}
}
