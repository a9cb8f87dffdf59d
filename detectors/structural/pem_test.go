package structural

import (
	"bytes"
	"crypto/dsa"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestParsePrivateKeyPEMSSHKeygen uses ssh-keygen both to make the keys and,
// through `ssh-keygen -lf` on the public half, as the fingerprint oracle.
func TestParsePrivateKeyPEMSSHKeygen(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen")
	cases := []struct {
		name, typ, bits, format, pass string
		label                         string // expected PEM label
		wantType                      string
		wantFP                        bool // fingerprint derivable
	}{
		{"rsa-openssh", "rsa", "2048", "RFC4716", "", "OPENSSH PRIVATE KEY", "rsa", true},
		{"rsa-openssh-enc", "rsa", "1024", "RFC4716", "secret1", "OPENSSH PRIVATE KEY", "rsa", true},
		{"rsa-pkcs1", "rsa", "2048", "PEM", "", "RSA PRIVATE KEY", "rsa", true},
		{"rsa-pkcs1-legacy-enc", "rsa", "1024", "PEM", "secret1", "RSA PRIVATE KEY", "rsa", false},
		{"rsa-pkcs8", "rsa", "1024", "PKCS8", "", "PRIVATE KEY", "rsa", true},
		{"rsa-pkcs8-enc", "rsa", "1024", "PKCS8", "secret1", "ENCRYPTED PRIVATE KEY", "unknown", false},
		{"ecdsa256-sec1", "ecdsa", "256", "PEM", "", "EC PRIVATE KEY", "ecdsa", true},
		{"ecdsa256-sec1-enc", "ecdsa", "256", "PEM", "secret1", "EC PRIVATE KEY", "ecdsa", false},
		{"ecdsa384-pkcs8", "ecdsa", "384", "PKCS8", "", "PRIVATE KEY", "ecdsa", true},
		{"ecdsa521-openssh", "ecdsa", "521", "RFC4716", "", "OPENSSH PRIVATE KEY", "ecdsa", true},
		{"ed25519-openssh", "ed25519", "256", "RFC4716", "", "OPENSSH PRIVATE KEY", "ed25519", true},
		{"ed25519-openssh-enc", "ed25519", "256", "RFC4716", "secret1", "OPENSSH PRIVATE KEY", "ed25519", true},
		{"dsa-pem", "dsa", "1024", "PEM", "", "DSA PRIVATE KEY", "dsa", true},
		{"dsa-pkcs8", "dsa", "1024", "PKCS8", "", "PRIVATE KEY", "dsa", true},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			key := dir + "/" + c.name
			testutil.Run(t, "ssh-keygen", "-q", "-t", c.typ, "-b", c.bits, "-m", c.format, "-N", c.pass, "-C", "test", "-f", key)
			text := readFile(t, key)
			if !bytes.HasPrefix(text, []byte("-----BEGIN "+c.label+"-----")) {
				t.Fatalf("ssh-keygen wrote %q, want label %s", bytes.SplitN(text, []byte("\n"), 2)[0], c.label)
			}
			oracle := sshKeygenFingerprint(t, key+".pub")
			got, err := ParsePrivateKeyPEM(text)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			want := KeyInfo{Type: c.wantType, Encrypted: c.pass != ""}
			if c.wantFP {
				want.Bits, want.KeyFingerprint = oracle.bits, oracle.fp
			}
			if c.wantType != "unknown" && oracle.typ != c.wantType {
				t.Fatalf("oracle type %q, case type %q", oracle.typ, c.wantType)
			}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
			// The same key inside a JSON string parses the same.
			js, _ := json.Marshal(map[string]string{"private_key": string(text)})
			val := js[bytes.Index(js, []byte(`"-----`))+1 : len(js)-2]
			if u := UnescapeArmored(val); !bytes.Equal(u, text) {
				t.Fatalf("UnescapeArmored of the JSON string differs from the .pem text")
			}
			if got2, err := ParsePrivateKeyPEM(val); err != nil || got2 != want {
				t.Fatalf("JSON-escaped: got %+v, %v", got2, err)
			}
			// Indented in a YAML block scalar, and with CRLF line ends.
			yaml := append([]byte("private_key: |\n"), bytes.ReplaceAll(text, []byte("\n"), []byte("\n    "))...)
			yaml = append([]byte("    "), yaml...)
			crlf := bytes.ReplaceAll(text, []byte("\n"), []byte("\r\n"))
			for name, in := range map[string][]byte{"yaml": yaml, "crlf": crlf} {
				if got2, err := ParsePrivateKeyPEM(in); err != nil || got2 != want {
					t.Fatalf("%s: got %+v, %v", name, got2, err)
				}
			}
			unchanged(t, key, text)
		})
	}
}

// dsaOpenSSL is OpenSSL's DSA private key layout.
type dsaOpenSSL struct {
	Version       int
	P, Q, G, Y, X *big.Int
}

// TestParsePrivateKeyPEMGoKeys parses keys made by crypto/* and x509, with
// `ssh-keygen -y` + `ssh-keygen -lf` as the fingerprint oracle.
func TestParsePrivateKeyPEMGoKeys(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen")
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	var dsaKey dsa.PrivateKey
	if err := dsa.GenerateParameters(&dsaKey.Parameters, rand.Reader, dsa.L1024N160); err != nil {
		t.Fatal(err)
	}
	if err := dsa.GenerateKey(&dsaKey, rand.Reader); err != nil {
		t.Fatal(err)
	}
	x25519, _ := ecdh.X25519().GenerateKey(rand.Reader)

	must := func(b []byte, err error) []byte {
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	dsaDER := must(asn1.Marshal(dsaOpenSSL{0, dsaKey.P, dsaKey.Q, dsaKey.G, dsaKey.Y, dsaKey.X}))
	cases := []struct {
		name     string
		label    string
		der      []byte
		wantType string
		wantBits int
		oracle   bool   // ssh-keygen can read it
		pubLine  string // else: an authorized_keys line for ssh-keygen -lf
	}{
		{"rsa-pkcs1", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey), "rsa", 2048, true, ""},
		{"rsa-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsaKey)), "rsa", 2048, true, ""},
		{"ec-sec1", "EC PRIVATE KEY", must(x509.MarshalECPrivateKey(ecKey)), "ecdsa", 256, true, ""},
		{"ec384-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(ec384)), "ecdsa", 384, true, ""},
		{"ed25519-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(edKey)), "ed25519", 256, false, ed25519PubLine(edKey.Public().(ed25519.PublicKey))},
		{"dsa-openssl", "DSA PRIVATE KEY", dsaDER, "dsa", 1024, true, ""},
		{"x25519-pkcs8", "PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(x25519)), "x25519", 256, false, ""},
	}
	dir := t.TempDir()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			text := pem.EncodeToMemory(&pem.Block{Type: c.label, Bytes: c.der})
			got, err := ParsePrivateKeyPEM(text)
			if err != nil {
				t.Fatalf("ParsePrivateKeyPEM: %v", err)
			}
			want := KeyInfo{Type: c.wantType, Bits: c.wantBits}
			if c.oracle {
				path := writeFile(t, dir, c.name, text)
				o := sshKeygenFingerprint(t, publicFromPrivate(t, path))
				if o.bits != c.wantBits {
					t.Fatalf("oracle bits %d, want %d", o.bits, c.wantBits)
				}
				want.KeyFingerprint = o.fp
			}
			if c.pubLine != "" {
				o := sshKeygenFingerprint(t, writeFile(t, dir, c.name+".pub", []byte(c.pubLine)))
				want.KeyFingerprint = o.fp
			}
			if got != want {
				t.Fatalf("got %+v, want %+v", got, want)
			}
		})
	}
}

func TestParsePrivateKeyPEMNegative(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := x509.MarshalPKCS1PrivateKey(rsaKey)
	goodPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: good})
	// Corrupt p: its last byte sits before q's header; flipping it keeps the
	// DER well-formed but p*q != n.
	badP := bytes.Clone(good)
	pOff := bytes.Index(badP, rsaKey.Primes[0].Bytes())
	if pOff < 0 {
		t.Fatal("p not found in DER")
	}
	badP[pOff+len(rsaKey.Primes[0].Bytes())-1] ^= 0x02

	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	edPKCS8, _ := x509.MarshalPKCS8PrivateKey(edKey)

	// OpenSSH container with a broken check integer.
	opensshBad := func() []byte {
		dir := t.TempDir()
		testutil.RequireTool(t, "ssh-keygen")
		testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", dir+"/k")
		p, _ := pem.Decode(readFile(t, dir+"/k"))
		// Walk to the private section: cipher, kdf, kdf options, key count,
		// public key, then the section length and two equal check integers.
		r := sshReader{b: p.Bytes[len(opensshMagic):]}
		r.str()
		r.str()
		r.str()
		r.u32()
		r.str()
		r.u32()
		if r.err {
			t.Fatal("unexpected openssh layout")
		}
		off := len(p.Bytes) - len(r.b) + 5 // second byte of checkint1
		b := bytes.Clone(p.Bytes)
		b[off] ^= 1
		return pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: b})
	}()

	cases := []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"placeholder", []byte("-----BEGIN RSA PRIVATE KEY-----\n...\n-----END RSA PRIVATE KEY-----\n")},
		{"placeholder-text", []byte("-----BEGIN RSA PRIVATE KEY-----\nYOUR_KEY_HERE\n-----END RSA PRIVATE KEY-----\n")},
		{"truncated", goodPEM[:len(goodPEM)/2]},
		{"truncated-der", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: good[:len(good)-40]})},
		{"corrupted-p", pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: badP})},
		{"wrong-label", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: good})},
		{"public-key", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: good})},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: good})},
		{"pkcs8-truncated-seed", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: edPKCS8[:len(edPKCS8)-1]})},
		{"encrypted-pkcs8-garbage", pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte("0123456789abcdef")})},
		{"legacy-enc-no-dek", []byte("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n" + base64.StdEncoding.EncodeToString(good[:64]) + "\n-----END RSA PRIVATE KEY-----\n")},
		{"openssh-bad-checkint", opensshBad},
		{"openssh-random", pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: []byte("openssh-key-v1\x00\x00\x00\x00\x04none")})},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			info, err := ParsePrivateKeyPEM(c.in)
			if err == nil {
				t.Fatalf("accepted: %+v", info)
			}
			t.Log(err)
			assertNoLeak(t, err, c.in)
			if !strings.Contains(err.Error(), ErrNotKey.Error()) {
				t.Fatalf("error does not wrap ErrNotKey: %v", err)
			}
		})
	}
}

func TestUnescapeArmored(t *testing.T) {
	pemText := "-----BEGIN X-----\nab+c/d=\n-----END X-----"
	once, _ := json.Marshal(pemText)
	twice, _ := json.Marshal(string(once))
	cases := []struct {
		name, in, want string
	}{
		{"plain", pemText, pemText},
		{"json", string(once[1 : len(once)-1]), pemText},
		{"json-in-json", string(twice[1 : len(twice)-1]), `"` + pemText + `"`},
		{"unicode-escapes", `ab\u002bc\u002fd\u003d`, "ab+c/d="},
		{"surrogate-pair", `\ud83d\ude00`, "\U0001F600"},
		{"crlf-tab", `a\r\nb\tc`, "a\r\nb\tc"},
		{"slash-quote", `\/\"\\`, `/"\`},
		{"bad-unicode", `\u12`, `\u12`},
		{"trailing-backslash", `abc\`, `abc\`},
		{"unknown-escape", `\q`, `\q`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := string(UnescapeArmored([]byte(c.in))); got != c.want {
				t.Fatalf("got %q, want %q", got, c.want)
			}
		})
	}
}

// ed25519PubLine is an authorized_keys line for pub, which ssh-keygen -lf reads.
func ed25519PubLine(pub ed25519.PublicKey) string {
	var w sshWire
	w.str([]byte("ssh-ed25519"))
	w.str(pub)
	return "ssh-ed25519 " + base64.StdEncoding.EncodeToString(w.b) + " test\n"
}
