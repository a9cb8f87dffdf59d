package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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

// LoopDevice attaches size bytes of img from byte off (size 0: to the
// end) to a free loop device and returns its path and a function that
// detaches it, which the cleanup calls too if the test ends first.
func LoopDevice(t testing.TB, img string, off, size int64) (dev string, detach func()) {
	t.Helper()
	RequireTool(t, "losetup")
	args := []string{"--find", "--show", "--offset", strconv.FormatInt(off, 10)}
	if size > 0 {
		args = append(args, "--sizelimit", strconv.FormatInt(size, 10))
	}
	var out []byte
	var err error
	for try := 0; try < 5; try++ {
		if out, err = exec.Command("losetup", append(args, img)...).CombinedOutput(); err == nil {
			break
		}
		time.Sleep(time.Duration(try+1) * 200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("losetup %v %s: %v\n%s", args, img, err, out)
	}
	dev = strings.TrimSpace(string(out))
	var once sync.Once
	detach = func() {
		once.Do(func() {
			if out, err := exec.Command("losetup", "-d", dev).CombinedOutput(); err != nil {
				t.Errorf("losetup -d %s: %v\n%s", dev, err, out)
			}
		})
	}
	t.Cleanup(detach)
	return dev, detach
}
