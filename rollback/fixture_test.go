package rollback

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// Helpers that build guest filesystems with the real tools: openssl for
// crypt hashes, ssh-keygen for keys, mkfs.ext4 -d for filesystems, debugfs
// for changes, qemu-img and qemu-io for images.

// cryptHash runs `openssl passwd -6 -salt SALT PW`.
func cryptHash(t *testing.T, salt, pw string) string {
	t.Helper()
	testutil.RequireTool(t, "openssl")
	return strings.TrimSpace(string(testutil.Run(t, "openssl", "passwd", "-6", "-salt", salt, pw)))
}

// sshKey is a key pair made by ssh-keygen.
type sshKey struct {
	private []byte // the private key file
	pubLine string // the .pub line
	blob    []byte // decoded public key blob
	fp      string // "SHA256:..." from ssh-keygen -lf
}

func newSSHKey(t *testing.T, typ, comment string) sshKey {
	t.Helper()
	testutil.RequireTool(t, "ssh-keygen")
	dir := t.TempDir()
	f := filepath.Join(dir, "key")
	args := []string{"-q", "-t", typ, "-N", "", "-C", comment, "-f", f}
	if typ == "ecdsa" || typ == "rsa" {
		args = append(args, "-m", "PEM")
	}
	if typ == "ecdsa" {
		args = append(args, "-b", "256")
	}
	testutil.Run(t, "ssh-keygen", args...)
	var k sshKey
	k.private = testutil.FileSnapshot(t, f)
	k.pubLine = strings.TrimSpace(string(testutil.FileSnapshot(t, f+".pub")))
	fields := strings.Fields(k.pubLine)
	blob, err := base64.StdEncoding.DecodeString(fields[1])
	if err != nil {
		t.Fatal(err)
	}
	k.blob = blob
	lf := strings.Fields(string(testutil.Run(t, "ssh-keygen", "-lf", f+".pub")))
	if len(lf) < 2 || !strings.HasPrefix(lf[1], "SHA256:") {
		t.Fatalf("ssh-keygen -lf: unexpected output %q", lf)
	}
	k.fp = lf[1]
	return k
}

// block is the private key's PEM block as the detectors fingerprint it.
func (k sshKey) block() string { return strings.TrimRight(string(k.private), "\r\n") }

// body is the private key's base64 body, without the public BEGIN/END
// lines (which previews show), for leak checks.
func (k sshKey) body() string {
	var out []string
	for _, l := range strings.Split(k.block(), "\n") {
		if !strings.HasPrefix(l, "-----") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// tree is a guest filesystem's files (path -> contents).
type tree map[string]string

func (tr tree) clone() tree {
	out := tree{}
	for k, v := range tr {
		out[k] = v
	}
	return out
}

func (tr tree) write(t *testing.T, root string) {
	t.Helper()
	for p, c := range tr {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// mkfs builds an ext4 filesystem image of sizeMB holding tr.
func mkfs(t *testing.T, tr tree, out string, sizeMB int) {
	t.Helper()
	testutil.RequireTool(t, "mkfs.ext4")
	root := filepath.Join(t.TempDir(), "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		t.Fatal(err)
	}
	tr.write(t, root)
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, out, fmt.Sprintf("%dM", sizeMB))
}

// debugfsApply changes fsImg in place so that it holds `to` instead of
// `from`: changed files are removed and written again, removed files
// removed, new files written (their directories must exist).
func debugfsApply(t *testing.T, fsImg string, from, to tree) {
	t.Helper()
	testutil.RequireTool(t, "debugfs")
	src := t.TempDir()
	var cmds strings.Builder
	i := 0
	for p, c := range to {
		if old, ok := from[p]; ok && old == c {
			continue
		}
		if _, ok := from[p]; ok {
			fmt.Fprintf(&cmds, "rm %s\n", p)
		}
		f := filepath.Join(src, fmt.Sprintf("f%d", i))
		i++
		if err := os.WriteFile(f, []byte(c), 0o600); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&cmds, "write %s %s\n", f, p)
	}
	for p := range from {
		if _, ok := to[p]; !ok {
			fmt.Fprintf(&cmds, "rm %s\n", p)
		}
	}
	cmdFile := filepath.Join(src, "cmds")
	if err := os.WriteFile(cmdFile, []byte(cmds.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := testutil.Run(t, "debugfs", "-w", "-f", cmdFile, fsImg)
	if bytes.Contains(out, []byte("rror")) || bytes.Contains(out, []byte("not found")) {
		t.Fatalf("debugfs: %s", out)
	}
}

// syncChunks writes into the qcow2 every 64 KiB chunk that differs
// between the raw files prev and cur, the way the guest's writes would
// reach it (the technique of testdata/demo/make-demo.sh).
func syncChunks(t *testing.T, prev, cur, qcow2 string) {
	t.Helper()
	testutil.RequireTool(t, "qemu-io")
	a, b := testutil.FileSnapshot(t, prev), testutil.FileSnapshot(t, cur)
	if len(a) != len(b) {
		t.Fatalf("sizes differ: %d, %d", len(a), len(b))
	}
	const chunk = 64 << 10
	dir := t.TempDir()
	args := []string{"-f", "qcow2"}
	for off := 0; off < len(b); off += chunk {
		end := min(off+chunk, len(b))
		if bytes.Equal(a[off:end], b[off:end]) {
			continue
		}
		f := filepath.Join(dir, fmt.Sprintf("c%d", off))
		if err := os.WriteFile(f, b[off:end], 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "-c", fmt.Sprintf("write -s %s %d %d", f, off, end-off))
	}
	if len(args) == 2 {
		t.Fatal("no chunk changed")
	}
	testutil.Run(t, "qemu-io", append(args, qcow2)...)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	if err := os.WriteFile(to, testutil.FileSnapshot(t, from), 0o600); err != nil {
		t.Fatal(err)
	}
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	return sha256.Sum256(testutil.FileSnapshot(t, p))
}

func writeFile(p string, b []byte) error { return os.WriteFile(p, b, 0o600) }
