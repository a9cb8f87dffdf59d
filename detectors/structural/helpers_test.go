package structural

import (
	"crypto/sha256"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// sshOracle is what `ssh-keygen -lf` prints for a key: "<bits> SHA256:... comment (TYPE)".
type sshOracle struct {
	bits int
	fp   string
	typ  string // lower-case, e.g. "rsa", "ecdsa", "ed25519", "dsa"
}

func sshKeygenFingerprint(t *testing.T, path string) sshOracle {
	t.Helper()
	out := strings.TrimSpace(string(testutil.Run(t, "ssh-keygen", "-lf", path)))
	f := strings.Fields(out)
	if len(f) < 3 {
		t.Fatalf("unexpected ssh-keygen -lf output %q", out)
	}
	bits, err := strconv.Atoi(f[0])
	if err != nil {
		t.Fatalf("unexpected ssh-keygen -lf output %q", out)
	}
	typ := strings.ToLower(strings.Trim(f[len(f)-1], "()"))
	return sshOracle{bits: bits, fp: f[1], typ: typ}
}

// publicFromPrivate writes `ssh-keygen -y -f key` to key.pub and returns its path.
func publicFromPrivate(t *testing.T, key string) string {
	t.Helper()
	pub := testutil.Run(t, "ssh-keygen", "-y", "-f", key)
	p := key + ".oracle.pub"
	if err := os.WriteFile(p, pub, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// assertNoLeak checks that an error message does not quote the input: no
// 12-byte run of the secret text appears in it.
func assertNoLeak(t *testing.T, err error, secret []byte) {
	t.Helper()
	if err == nil {
		return
	}
	msg := err.Error()
	if len(msg) > 200 {
		t.Errorf("error message suspiciously long (%d bytes)", len(msg))
	}
	for _, line := range strings.Split(string(secret), "\n") {
		line = strings.TrimSpace(line)
		for i := 0; i+12 <= len(line); i += 6 {
			if strings.Contains(msg, line[i:i+12]) {
				t.Fatalf("error message quotes input bytes")
			}
		}
	}
}

// unchanged asserts a fixture file is byte-identical to its snapshot.
func unchanged(t *testing.T, path string, before []byte) {
	t.Helper()
	after := readFile(t, path)
	if sha256.Sum256(after) != sha256.Sum256(before) {
		t.Fatalf("%s changed while being parsed", path)
	}
}
