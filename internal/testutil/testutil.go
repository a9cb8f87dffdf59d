// Package testutil holds helpers shared by tests that drive real tools
// (qemu-img, qemu-io, mkfs.ext4, debugfs, qemu-system-x86_64).
package testutil

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// RequireTool skips the test when a tool is missing, or fails it when
// IMGAUDIT_REQUIRE_TOOLS=1 (as `make test` sets it after installing the
// tools), so that CI can never pass by skipping.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := exec.LookPath(name); err != nil {
			Missing(t, name)
		}
	}
}

// Missing skips the test for want of what, or fails it under
// IMGAUDIT_REQUIRE_TOOLS=1, as RequireTool does for commands: for things
// that are not commands (a python module).
func Missing(t testing.TB, what string) {
	t.Helper()
	if os.Getenv("IMGAUDIT_REQUIRE_TOOLS") == "1" {
		t.Fatalf("required %s not found", what)
	}
	t.Skipf("%s not installed (make test installs it)", what)
}

// Run runs a command with a timeout and fails the test with its output on error.
func Run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out.String())
	}
	return out.Bytes()
}

// FileSnapshot returns a file's bytes, to prove later that it did not change.
func FileSnapshot(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// RepoRoot is the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// BuildDemo runs the committed demo generator (testdata/demo/make-demo.sh)
// into a temp dir, so that tests cover the very steps that made
// testdata/demo. It returns the directory of the images (web01.qcow2 over
// base.qcow2) and that of the secrets it planted.
func BuildDemo(t testing.TB) (images, secrets string) {
	t.Helper()
	RequireTool(t, "qemu-img", "qemu-io", "mkfs.ext4", "debugfs", "sfdisk", "ssh-keygen")
	dir := t.TempDir()
	images, secrets = filepath.Join(dir, "img"), filepath.Join(dir, "secrets")
	Run(t, "bash", filepath.Join(RepoRoot(), "testdata/demo/make-demo.sh"), images, secrets)
	return images, secrets
}

// Bash runs a bash script (with -euo pipefail) in dir and fails the test
// with its output on error: for fixtures made by piping the real tools
// together, as a person types them.
func Bash(t testing.TB, dir, script string) {
	t.Helper()
	cmd := exec.Command("bash", "-euo", "pipefail", "-c", script)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}
