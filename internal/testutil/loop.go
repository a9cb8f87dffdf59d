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

// LoopMount mounts the filesystem image img (read-write, through a loop
// device, as root) on a fresh directory and returns the directory and a
// function that unmounts it, which the test calls before reading img. The
// cleanup unmounts it too if the test ends first, so that no mount or loop
// device outlives a failed test.
func LoopMount(t testing.TB, img string, opts ...string) (dir string, unmount func()) {
	t.Helper()
	RequireTool(t, "mount", "umount")
	dir = filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	o := strings.Join(append([]string{"loop"}, opts...), ",")
	// Several test processes may ask for a free loop device at once; the
	// loser of that race retries.
	var out []byte
	var err error
	for try := 0; try < 5; try++ {
		if out, err = exec.Command("mount", "-o", o, img, dir).CombinedOutput(); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("mount -o %s %s: %v\n%s", o, img, err, out)
	}
	var once sync.Once
	unmount = func() {
		once.Do(func() {
			if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
				t.Errorf("umount %s: %v\n%s", dir, err, out)
			}
		})
	}
	t.Cleanup(unmount)
	return dir, unmount
}

// LoopDevice attaches img to a free loop device and returns its path; the
// cleanup detaches it even if the test fails.
func LoopDevice(t testing.TB, img string) string {
	t.Helper()
	RequireTool(t, "losetup")
	var out []byte
	var err error
	for try := 0; try < 5; try++ {
		if out, err = exec.Command("losetup", "--find", "--show", img).CombinedOutput(); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("losetup --find --show %s: %v\n%s", img, err, out)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}
