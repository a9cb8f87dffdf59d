package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// ZpoolCreate makes img a ZFS pool named pool, as the real zfs-fuse
// makes one (pool version 23: the newest zfs-fuse writes; OpenZFS's
// labels start the same way), whose root dataset holds files (paths
// relative to it), and exports it again. zfs-fuse's daemon is started for
// it, unless one already answers, and stopped after.
func ZpoolCreate(t testing.TB, img, pool string, size int64, files map[string][]byte) {
	t.Helper()
	RequireTool(t, "zfs-fuse", "zpool", "truncate")
	if exec.Command("zpool", "list").Run() != nil {
		run, err := os.MkdirTemp("/tmp", "zfs-fuse")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(run)
		d := exec.Command("zfs-fuse", "--no-daemon", "--pidfile", filepath.Join(run, "pid"))
		stop := startDaemon(t, d, filepath.Join(run, "log"), "zpool", "list")
		defer stop()
	}
	if err := os.Truncate(img, size); err != nil {
		if f, cerr := os.Create(img); cerr != nil {
			t.Fatal(cerr)
		} else {
			f.Close()
		}
		if err := os.Truncate(img, size); err != nil {
			t.Fatal(err)
		}
	}
	mnt := t.TempDir()
	Run(t, "zpool", "create", "-o", "version=23", "-R", mnt, pool, img)
	for name, b := range files {
		p := filepath.Join(mnt, pool, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	Run(t, "zpool", "export", pool)
}
