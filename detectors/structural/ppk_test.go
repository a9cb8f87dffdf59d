package structural

import (
	"bytes"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestParsePPK makes keys with puttygen; the oracle for type, bits and
// fingerprint is `puttygen -O public-openssh` followed by `ssh-keygen -lf`.
func TestParsePPK(t *testing.T) {
	testutil.RequireTool(t, "puttygen", "ssh-keygen")
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", nil)
	pw := writeFile(t, dir, "pw", []byte("secret1\n"))
	cases := []struct {
		name, typ, bits, version string
		encrypted                bool
	}{
		{"ed25519-v3", "ed25519", "256", "3", false},
		{"ed25519-v3-enc", "ed25519", "256", "3", true},
		{"ed25519-v2", "ed25519", "256", "2", false},
		{"rsa2048-v3", "rsa", "2048", "3", false},
		{"rsa1024-v2-enc", "rsa", "1024", "2", true},
		{"ecdsa256-v3", "ecdsa", "256", "3", false},
		{"ecdsa384-v2", "ecdsa", "384", "2", false},
		{"ecdsa521-v3-enc", "ecdsa", "521", "3", true},
		{"dsa-v2", "dsa", "1024", "2", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := dir + "/" + c.name + ".ppk"
			pass := empty
			if c.encrypted {
				pass = pw
			}
			testutil.Run(t, "puttygen", "-t", c.typ, "-b", c.bits, "-C", "test key", "-o", key,
				"--new-passphrase", pass, "--ppk-param", "version="+c.version)
			testutil.Run(t, "puttygen", key, "--old-passphrase", pass, "-O", "public-openssh", "-o", key+".pub")
			o := sshKeygenFingerprint(t, key+".pub")
			text := readFile(t, key)
			if !bytes.HasPrefix(text, []byte("PuTTY-User-Key-File-"+c.version+":")) {
				t.Fatalf("puttygen wrote another version: %q", bytes.SplitN(text, []byte("\n"), 2)[0])
			}
			got, err := ParsePPK(text)
			if err != nil {
				t.Fatalf("ParsePPK: %v", err)
			}
			want := KeyInfo{Type: o.typ, Bits: o.bits, Encrypted: c.encrypted, KeyFingerprint: o.fp}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			// CRLF line ends (a PPK copied through Windows) parse the same.
			crlf := bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
			if got2, err := ParsePPK(crlf); err != nil || got2 != want {
				t.Fatalf("CRLF: got %+v, %v", got2, err)
			}
			unchanged(t, key, text)
		})
	}

	// Negatives derived from a real unencrypted key.
	testutil.Run(t, "puttygen", "-t", "ed25519", "-C", "test", "-o", dir+"/n.ppk", "--new-passphrase", empty)
	good := string(readFile(t, dir+"/n.ppk"))
	neg := []struct{ name, in string }{
		{"empty", ""},
		{"edited-comment-bad-mac", strings.Replace(good, "Comment: test", "Comment: tesT", 1)},
		{"truncated", good[:len(good)/2]},
		{"no-mac", good[:strings.Index(good, "Private-MAC")]},
		{"unknown-version", strings.Replace(good, "File-3", "File-9", 1)},
		{"type-mismatch", strings.Replace(good, "File-3: ssh-ed25519", "File-3: ssh-rsa", 1)},
		{"bad-encryption", strings.Replace(good, "Encryption: none", "Encryption: rot13", 1)},
		{"huge-line-count", strings.Replace(good, "Public-Lines: 2", "Public-Lines: 99999", 1)},
		{"placeholder", "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: x\nPublic-Lines: 1\n<public key>\nPrivate-Lines: 1\n<private key>\nPrivate-MAC: 00\n"},
	}
	for _, c := range neg {
		t.Run("neg-"+c.name, func(t *testing.T) {
			info, err := ParsePPK([]byte(c.in))
			if err == nil {
				t.Fatalf("accepted: %+v", info)
			}
			assertNoLeak(t, err, []byte(c.in))
		})
	}
}
