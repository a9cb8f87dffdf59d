package structural

import (
	"bytes"
	"encoding/base64"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// gpgHome is a throwaway GnuPG home whose agent is stopped at the end.
func gpgHome(t *testing.T) func(args ...string) []byte {
	t.Helper()
	testutil.RequireTool(t, "gpg", "gpgconf")
	home := t.TempDir()
	t.Cleanup(func() {
		_ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run()
	})
	return func(args ...string) []byte {
		return testutil.Run(t, "gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback"}, args...)...)
	}
}

// TestParsePGPPrivate makes keys with gpg; gpg's colon listing is the oracle
// for algorithm and bits, and `gpg --export-ssh-key` + `ssh-keygen -lf` for
// the fingerprint.
func TestParsePGPPrivate(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen")
	gpg := gpgHome(t)
	cases := []struct {
		name, algo, pass, wantType string
	}{
		{"ed25519", "ed25519", "", "ed25519"},
		{"ed25519-enc", "ed25519", "secret1", "ed25519"},
		{"rsa2048", "rsa2048", "", "rsa"},
		{"nistp256-enc", "nistp256", "secret1", "ecdsa"},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			uid := c.name + "@example.com"
			gpg("--passphrase", c.pass, "--quick-gen-key", "Test <"+uid+">", c.algo, "sign,auth", "never")
			var fpr string
			var bits int
			for _, l := range strings.Split(string(gpg("--with-colons", "--list-secret-keys", uid)), "\n") {
				f := strings.Split(l, ":")
				switch {
				case f[0] == "sec":
					bits, _ = strconv.Atoi(f[2])
				case f[0] == "fpr" && fpr == "":
					fpr = f[9]
				}
			}
			if fpr == "" || bits == 0 {
				t.Fatal("gpg listing without fingerprint or bits")
			}
			sshPub := writeFile(t, dir, c.name+".pub", gpg("--export-ssh-key", fpr+"!"))
			o := sshKeygenFingerprint(t, sshPub)
			block := gpg("--passphrase", c.pass, "--armor", "--export-secret-keys", fpr)
			got, err := ParsePGPPrivate(block)
			if err != nil {
				t.Fatalf("ParsePGPPrivate: %v", err)
			}
			want := KeyInfo{Type: c.wantType, Bits: bits, Encrypted: c.pass != "", KeyFingerprint: o.fp}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}

	// Negatives from a real unencrypted key.
	gpg("--passphrase", "", "--quick-gen-key", "Neg <neg@example.com>", "ed25519", "sign", "never")
	good := gpg("--passphrase", "", "--armor", "--export-secret-keys", "neg@example.com")
	pub := gpg("--armor", "--export", "neg@example.com")
	body, err := pgpDearmor(good)
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte of the secret scalar (just before the 2-byte checksum of
	// the first packet) and re-armour with a correct CRC: only the packet
	// checksum can catch it.
	_, _, _, ok := pgpPacket(body)
	if !ok {
		t.Fatal("no first packet")
	}
	_, _, rest, _ := pgpPacket(body)
	end := len(body) - len(rest)
	flipped := bytes.Clone(body)
	flipped[end-3] ^= 0x10
	crcLine := good[bytes.LastIndex(good, []byte("\n=")) : bytes.LastIndex(good, []byte("\n="))+6]
	neg := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"bad-crc", bytes.Replace(good, crcLine, []byte("\n=AAAA"), 1)},
		{"truncated", good[:len(good)/2]},
		{"no-end", good[:bytes.Index(good, []byte("-----END"))]},
		{"public-block-relabelled", bytes.ReplaceAll(pub, []byte("PUBLIC KEY"), []byte("PRIVATE KEY"))},
		{"public-block", pub},
		{"secret-checksum", armorPGP(flipped)},
		{"placeholder", []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\n<your key here>\n-----END PGP PRIVATE KEY BLOCK-----\n")},
	}
	for _, c := range neg {
		t.Run("neg-"+c.name, func(t *testing.T) {
			info, err := ParsePGPPrivate(c.in)
			if err == nil {
				t.Fatalf("accepted: %+v", info)
			}
			t.Log(err)
			assertNoLeak(t, err, c.in)
		})
	}
}

func armorPGP(body []byte) []byte {
	var b bytes.Buffer
	b.WriteString(pgpBeginPrivate + "\n\n")
	s := base64.StdEncoding.EncodeToString(body)
	for len(s) > 64 {
		b.WriteString(s[:64] + "\n")
		s = s[64:]
	}
	b.WriteString(s + "\n")
	c := crc24(body)
	b.WriteString("=" + base64.StdEncoding.EncodeToString([]byte{byte(c >> 16), byte(c >> 8), byte(c)}) + "\n")
	b.WriteString(pgpEndPrivate + "\n")
	return b.Bytes()
}
