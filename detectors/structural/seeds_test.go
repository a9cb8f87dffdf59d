package structural

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestWriteSeeds regenerates the committed seed corpora from throwaway
// keys made by the real tools. It only runs with IMGAUDIT_WRITE_SEEDS=1
// (make seeds).
func TestWriteSeeds(t *testing.T) {
	if os.Getenv("IMGAUDIT_WRITE_SEEDS") != "1" {
		t.Skip("set IMGAUDIT_WRITE_SEEDS=1 to rewrite testdata/fuzz")
	}
	testutil.RequireTool(t, "ssh-keygen", "puttygen", "gpg", "ktutil")
	dir := t.TempDir()
	seed := func(target, name string, args ...any) {
		if err := fuzzcorpus.Write(filepath.Join("testdata", "fuzz", target), name, args...); err != nil {
			t.Fatal(err)
		}
	}
	keygen := func(name string, args ...string) []byte {
		p := filepath.Join(dir, name)
		testutil.Run(t, "ssh-keygen", append([]string{"-q", "-C", "seed", "-f", p}, args...)...)
		return readFile(t, p)
	}
	ed := keygen("ed", "-t", "ed25519", "-N", "")
	seed("FuzzParsePrivateKeyPEM", "openssh-ed25519", ed)
	seed("FuzzParsePrivateKeyPEM", "openssh-ed25519-enc", keygen("ede", "-t", "ed25519", "-N", "secret1"))
	seed("FuzzParsePrivateKeyPEM", "ec-sec1", keygen("ec", "-t", "ecdsa", "-m", "PEM", "-N", ""))
	seed("FuzzParsePrivateKeyPEM", "ec-pkcs8", keygen("ec8", "-t", "ecdsa", "-m", "PKCS8", "-N", ""))
	seed("FuzzParsePrivateKeyPEM", "rsa-pkcs1", keygen("rsa", "-t", "rsa", "-b", "1024", "-m", "PEM", "-N", ""))
	seed("FuzzParsePrivateKeyPEM", "rsa-legacy-enc", keygen("rsae", "-t", "rsa", "-b", "1024", "-m", "PEM", "-N", "secret1"))
	seed("FuzzParsePrivateKeyPEM", "ec-pkcs8-enc", keygen("ec8e", "-t", "ecdsa", "-m", "PKCS8", "-N", "secret1"))
	js, _ := json.Marshal(string(ed))
	seed("FuzzParsePrivateKeyPEM", "json-escaped", js[1:len(js)-1])
	seed("FuzzUnescape", "json-escaped", js[1:len(js)-1])
	seed("FuzzUnescape", "unicode", []byte(`a\u002bb\ud83d\ude00\/\"\\\q\u12`))

	empty := writeFile(t, dir, "empty", nil)
	pw := writeFile(t, dir, "pw", []byte("secret1\n"))
	testutil.Run(t, "puttygen", "-t", "ed25519", "-C", "seed", "-o", dir+"/a.ppk", "--new-passphrase", empty)
	testutil.Run(t, "puttygen", "-t", "ecdsa", "-C", "seed", "-o", dir+"/b.ppk", "--new-passphrase", pw, "--ppk-param", "version=2")
	testutil.Run(t, "puttygen", "-t", "ed25519", "-C", "seed", "-o", dir+"/c.ppk", "--new-passphrase", pw)
	seed("FuzzParsePPK", "ed25519-v3", readFile(t, dir+"/a.ppk"))
	seed("FuzzParsePPK", "ecdsa-v2-enc", readFile(t, dir+"/b.ppk"))
	seed("FuzzParsePPK", "ed25519-v3-enc", readFile(t, dir+"/c.ppk"))

	gpg := gpgHome(t)
	gpg("--passphrase", "", "--quick-gen-key", "Seed <seed@example.com>", "ed25519", "sign", "never")
	seed("FuzzParsePGPPrivate", "ed25519", gpg("--passphrase", "", "--armor", "--export-secret-keys", "seed@example.com"))
	gpg("--passphrase", "secret1", "--quick-gen-key", "Seed2 <seed2@example.com>", "nistp256", "sign", "never")
	seed("FuzzParsePGPPrivate", "nistp256-enc", gpg("--passphrase", "secret1", "--armor", "--export-secret-keys", "seed2@example.com"))

	kt, _ := ktutilKeytab(t, [][2]string{{"alice@EXAMPLE.COM", "aes256-cts-hmac-sha1-96"}, {"host/h@EXAMPLE.COM", "aes128-cts-hmac-sha1-96"}})
	seed("FuzzParseKeytab", "two-entries", kt)
	seed("FuzzParseKeytab", "trailing", append(kt, 0xff, 0xff, 0xff, 0xd0, 1, 2, 3))

	seed("FuzzJWT", "hs256", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJl")
	seed("FuzzJWT", "none", "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxMjMifQ.")
	seed("FuzzJWT", "github", githubVectors[0])

	r := mrand.New(mrand.NewPCG(15, 16))
	for _, size := range []int{16, 24, 32} {
		buf := randBytes(r, 320)
		copy(buf[7:], ExpandAESKey(randBytes(r, size)))
		seed("FuzzFindAES", fmt.Sprintf("aes%d", 8*size), buf, uint8(10))
	}
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	buf := randBytes(r, 800)
	copy(buf[5:], x509.MarshalPKCS1PrivateKey(k))
	seed("FuzzFindRSADER", "pkcs1-1024", buf)
	p8, _ := x509.MarshalPKCS8PrivateKey(k)
	seed("FuzzFindRSADER", "pkcs8-1024", append([]byte{1, 2, 3}, p8...))
}
