package guestfs

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/raw"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// pathMax is Linux's PATH_MAX, the longest path the index gives.
const pathMax = 4096

// deepChain makes under src a chain of depth directories with 255-byte
// names (as a hostile guest can: each mkdir is relative to the last
// directory, so no path the host resolves is long), writes content to
// file name in it at level at (0: src itself; depth: the bottom), and
// gives the bottom file links more names there. It returns the file's
// guest path ("" where it is longer than pathMax).
func deepChain(t *testing.T, src string, depth, at int, name string, content []byte, links int) string {
	t.Helper()
	fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	guest := ""
	for i := 0; i <= depth; i++ {
		if i == at {
			f, err := unix.Openat(fd, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := unix.Write(f, content); err != nil {
				t.Fatal(err)
			}
			unix.Close(f)
			if guest += "/" + name; len(guest) > pathMax {
				guest = ""
			}
			if i == depth {
				for k := range links {
					if err := unix.Linkat(fd, name, fd, fmt.Sprintf("%06d%s", k, strings.Repeat("l", 249)), 0); err != nil {
						t.Fatal(err)
					}
				}
			}
			break
		}
		dir := fmt.Sprintf("%04d%s", i, strings.Repeat("d", 251))
		if err := unix.Mkdirat(fd, dir, 0o755); err != nil && err != unix.EEXIST {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
		guest += "/" + dir
	}
	unix.Close(fd)
	return guest
}

// TestDeepPathsBounded: the index keeps each entry's name once, never
// its whole path, and gives no path longer than PATH_MAX: a chain of
// 2,048 directories of 255-byte names (mkfs.ext4 -d) kept every
// directory's path, half a gigabyte (and 2 GB more with 4,000 hard links
// at the bottom, 8 s), and the walk copied them for every entry below.
// The entries past PATH_MAX are listed without a path, as the note
// says, and a file's name that has a path stands for it. The budgets
// of names kept and paths given out cut with a note too.
func TestDeepPathsBounded(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	type secret struct {
		name    string
		at      int  // level of the chain (-1: /etc)
		hasPath bool // located with its path
	}
	for _, c := range []struct {
		name       string
		depth      int
		links      int    // more names of the bottom file, at the bottom
		topLink    string // another name of the bottom file, near the root
		secrets    []secret
		nameBytes  int   // budgets.nameBytes for the case (0: maxNameBytes)
		placeBytes int64 // budgets.placeBytes for the case (0: maxPlaceBytes)
		note       []string
		noNote     string
	}{
		{
			name: "chain past PATH_MAX", depth: 2048,
			secrets: []secret{{"mid.key", 8, true}, {"bottom.key", 2048, false}},
			note:    []string{"walk incomplete: ", "entries listed without a path: ", "deeper than PATH_MAX (4096 bytes of path)"},
		},
		{
			name: "hard links at the bottom", depth: 2048, links: 1000, topLink: "/zz/top.key",
			secrets: []secret{{"bottom.key", 2048, true}},
			note:    []string{"deeper than PATH_MAX", "1000 further names of files (hard links) without a path not listed"},
		},
		{
			name: "within PATH_MAX", depth: 15,
			secrets: []secret{{"bottom.key", 15, true}},
			noNote:  "walk incomplete",
		},
		{
			name: "names over budget", depth: 4, nameBytes: 3 * 256,
			secrets: []secret{{"etc.key", -1, true}, {"bottom.key", 4, false}},
			note:    []string{"entries listed without a path: ", "past the index's budget of 768 bytes of names", "in a directory that has no path"},
		},
		{
			name: "paths given over budget", depth: 4, placeBytes: 200,
			secrets: []secret{{"etc.key", -1, true}, {"bottom.key", 4, false}},
			note:    []string{"walk incomplete: the index's budget of 200 bytes of paths given to findings is spent"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			bud := defaultBudgets()
			if c.nameBytes > 0 {
				bud.nameBytes = c.nameBytes
			}
			if c.placeBytes > 0 {
				bud.placeBytes = c.placeBytes
			}
			src := t.TempDir()
			paths := map[string]string{}
			var bottom string
			for _, s := range c.secrets {
				content := marker(s.name, 6000)
				switch {
				case s.at < 0:
					if err := os.MkdirAll(filepath.Join(src, "etc"), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(src, "etc", s.name), content, 0o600); err != nil {
						t.Fatal(err)
					}
					paths[s.name] = "/etc/" + s.name
				default:
					links := 0
					if s.at == c.depth {
						links, bottom = c.links, s.name
					}
					paths[s.name] = deepChain(t, src, c.depth, s.at, s.name, content, links)
				}
			}
			if c.topLink != "" {
				// Linked through /proc/self/fd: no host path is long.
				fd, err := unix.Open(src, unix.O_RDONLY|unix.O_DIRECTORY, 0)
				if err != nil {
					t.Fatal(err)
				}
				for i := 0; i < c.depth; i++ {
					next, err := unix.Openat(fd, fmt.Sprintf("%04d%s", i, strings.Repeat("d", 251)), unix.O_RDONLY|unix.O_DIRECTORY, 0)
					if err != nil {
						t.Fatal(err)
					}
					unix.Close(fd)
					fd = next
				}
				if err := os.MkdirAll(filepath.Join(src, filepath.Dir(c.topLink)), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Link(fmt.Sprintf("/proc/self/fd/%d/%s", fd, bottom), filepath.Join(src, c.topLink)); err != nil {
					t.Fatal(err)
				}
				unix.Close(fd)
				paths[bottom] = c.topLink
			}
			img := filepath.Join(t.TempDir(), "fs.img")
			testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", src, img, "128M")

			im, err := raw.Open(context.Background(), img, model.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			m, err := analyze(context.Background(), im.Views[0].Disk, bud)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			runtime.GC()
			runtime.ReadMemStats(&after)
			kept := int64(after.HeapAlloc) - int64(before.HeapAlloc)
			allocated := after.TotalAlloc - before.TotalAlloc
			data := testutil.FileSnapshot(t, img)
			t.Logf("Analyze: %v, %d MiB kept, %d MiB allocated", took.Round(time.Millisecond), kept>>20, allocated>>20)
			if kept > 16<<20 || allocated > 64<<20 {
				t.Errorf("Analyze kept %d MiB and allocated %d MiB; want at most 16 and 64 (names kept once, no path past PATH_MAX)", kept>>20, allocated>>20)
			}

			for _, s := range c.secrets {
				got := m.Locate(contentOffset(t, data, s.name))
				want := ""
				if s.hasPath {
					want = paths[s.name]
				}
				if got.State != StateAllocated || got.Path != want || len(got.Links) != 0 || len(got.Path) > pathMax {
					t.Errorf("%s: Locate = %.200q %s, %d links; want %.200q allocated, no links", s.name, got.Path, got.State, len(got.Links), want)
				}
				if d, ok := m.FileData(got.Partition, paths[s.name]); s.hasPath && (!ok || len(d) != 1 || d[0][0] != 0 || d[0][1] < 6000) {
					t.Errorf("%s: FileData(%.100q) = %v %v; want its 6000 bytes", s.name, paths[s.name], d, ok)
				}
			}
			note := m.Partitions()[0].Note
			for _, w := range c.note {
				if !strings.Contains(note, w) {
					t.Errorf("note %q; want it to say %q", note, w)
				}
			}
			if c.noNote != "" && strings.Contains(note, c.noNote) {
				t.Errorf("note %q; want none saying %q", note, c.noNote)
			}
			runtime.KeepAlive(m)
		})
	}
}
