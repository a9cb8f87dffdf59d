package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// FSContent is what a filesystem fixture holds: files that stay, files
// written, synced and removed, and files overwritten in place.
type FSContent struct {
	Live    map[string][]byte
	Deleted map[string][]byte
	// Overwritten files are written with [0], synced, then [1] (of the same
	// length) is written over them at offset 0.
	Overwritten map[string][2][]byte
	// Extra, when set, runs while the filesystem is mounted at mnt, after
	// the files above are written and before the deletions and overwrites
	// (so that what it writes cannot reuse the deleted files' space).
	Extra func(mnt string)
}

// populate writes c's files under mnt (every file synced), runs Extra,
// removes the deleted ones and rewrites the overwritten ones in place.
func (c FSContent) populate(t testing.TB, mnt string) {
	t.Helper()
	write := func(p string, b []byte) {
		full := filepath.Join(mnt, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		f, err := os.Create(full)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.Write(b); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil { // allocate and write the blocks now
			t.Fatal(err)
		}
	}
	for p, b := range c.Live {
		write(p, b)
	}
	for p, b := range c.Deleted {
		write(p, b)
	}
	for p, b := range c.Overwritten {
		write(p, b[0])
	}
	if c.Extra != nil {
		c.Extra(mnt)
	}
	Run(t, "sync")
	for p := range c.Deleted {
		if err := os.Remove(filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
	}
	for p, b := range c.Overwritten {
		f, err := os.OpenFile(filepath.Join(mnt, p), os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b[1], 0); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	Run(t, "sync")
}

// newImageFile creates an empty sparse file of size bytes in a fresh
// temporary directory.
func newImageFile(t testing.TB, name string, size int64) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	return img
}

// MakeBtrfs makes a btrfs image of size bytes with mkfs.btrfs (extra
// arguments first), populated with c through a loop mount (mount options
// opts). It needs root.
func MakeBtrfs(t testing.TB, size int64, c FSContent, mkfsArgs []string, opts ...string) string {
	t.Helper()
	RequireTool(t, "mkfs.btrfs")
	img := newImageFile(t, "btrfs.img", size)
	Run(t, "mkfs.btrfs", append(append([]string{"-q"}, mkfsArgs...), img)...)
	mnt, unmount := LoopMount(t, img, opts...)
	c.populate(t, mnt)
	unmount()
	return img
}

// MakeNTFS makes an NTFS image of size bytes with mkntfs (quick format),
// populated with c through an ntfs-3g FUSE mount with the Windows stream
// interface ("file:stream" names an alternate data stream). It needs root
// and /dev/fuse.
func MakeNTFS(t testing.TB, size int64, c FSContent, mkfsArgs ...string) string {
	t.Helper()
	RequireTool(t, "mkntfs", "ntfs-3g")
	img := newImageFile(t, "ntfs.img", size)
	Run(t, "mkntfs", append(append([]string{"-F", "-Q", "-q"}, mkfsArgs...), img)...)
	mnt, unmount := NTFSMount(t, img, "streams_interface=windows")
	c.populate(t, mnt)
	unmount()
	return img
}

// NTFSMount mounts the NTFS image img through ntfs-3g (kept in the
// foreground, so that unmounting can wait for it to write everything
// back) on a fresh directory. The returned function unmounts it and waits
// for ntfs-3g to exit; the cleanup does the same if the test ends first.
func NTFSMount(t testing.TB, img string, opts ...string) (dir string, unmount func()) {
	t.Helper()
	RequireTool(t, "ntfs-3g", "umount")
	dir = filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := strings.Join(append([]string{"no_detach"}, opts...), ",")
	cmd := exec.Command("ntfs-3g", "-o", o, img, dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	mounted := func() bool {
		b, _ := os.ReadFile("/proc/self/mounts")
		return strings.Contains(string(b), " "+dir+" ")
	}
	for deadline := time.Now().Add(30 * time.Second); !mounted(); {
		select {
		case err := <-exited:
			t.Fatalf("ntfs-3g %s: exited before mounting: %v\n%s", img, err, out.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			t.Fatalf("ntfs-3g %s: not mounted after 30s\n%s", img, out.String())
		}
	}
	var once sync.Once
	unmount = func() {
		once.Do(func() {
			if b, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, b)
				cmd.Process.Kill()
			}
			select {
			case <-exited:
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				<-exited
				t.Errorf("ntfs-3g %s: still running 60s after umount", img)
			}
		})
	}
	t.Cleanup(unmount)
	return dir, unmount
}
