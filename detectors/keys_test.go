package detectors

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// keyFixture is a private key file made at test time and what must be
// reported for it.
type keyFixture struct {
	name, rule string
	file       []byte // the key file as written by the tool
	keyType    string
	bits       string
	encrypted  bool
	sshFP      string // oracle: ssh-keygen -lf; "" when not available
}

func writeTemp(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// sshKeygenFP returns the SHA256 fingerprint `ssh-keygen -lf` prints for a
// key file, or "" if ssh-keygen cannot read it.
func sshKeygenFP(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("ssh-keygen", "-lf", path).Output()
	if err != nil {
		return ""
	}
	f := strings.Fields(string(out))
	if len(f) < 2 {
		return ""
	}
	return f[1]
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func keyFixtures(t *testing.T) []keyFixture {
	t.Helper()
	testutil.RequireTool(t, "ssh-keygen", "openssl")
	dir := t.TempDir()
	var fx []keyFixture
	addFile := func(name, rule string, file []byte, typ, bits string, enc bool) {
		p := writeTemp(t, dir, name, file)
		fx = append(fx, keyFixture{name: name, rule: rule, file: file, keyType: typ, bits: bits, encrypted: enc, sshFP: sshKeygenFP(t, p)})
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	addFile("rsa-pkcs1.pem", "private-key-rsa", pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk)), "rsa", "2048", false)
	p8, _ := x509.MarshalPKCS8PrivateKey(rk)
	addFile("rsa-pkcs8.pem", "private-key-pkcs8", pemBytes("PRIVATE KEY", p8), "rsa", "2048", false)
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	addFile("ec.pem", "private-key-ec", pemBytes("EC PRIVATE KEY", sec1), "ecdsa", "256", false)
	_, edk, _ := ed25519.GenerateKey(rand.Reader)
	edp8, _ := x509.MarshalPKCS8PrivateKey(edk)
	addFile("ed25519-pkcs8.pem", "private-key-pkcs8", pemBytes("PRIVATE KEY", edp8), "ed25519", "", false)
	// Encrypted PKCS#8 and traditional DSA come from openssl.
	enc := filepath.Join(dir, "enc-p8.pem")
	testutil.Run(t, "openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-aes-256-cbc", "-pass", "pass:fixture", "-out", enc)
	encB, _ := os.ReadFile(enc)
	fx = append(fx, keyFixture{name: "enc-p8.pem", rule: "private-key-pkcs8-encrypted", file: encB, encrypted: true})
	dsaP8 := filepath.Join(dir, "dsa-p8.pem")
	params := filepath.Join(dir, "dsa-params.pem")
	testutil.Run(t, "openssl", "genpkey", "-genparam", "-algorithm", "DSA", "-pkeyopt", "dsa_paramgen_bits:1024", "-out", params)
	testutil.Run(t, "openssl", "genpkey", "-paramfile", params, "-out", dsaP8)
	dsaTrad := filepath.Join(dir, "dsa.pem")
	testutil.Run(t, "openssl", "pkey", "-in", dsaP8, "-traditional", "-out", dsaTrad)
	dsaB, _ := os.ReadFile(dsaTrad)
	fx = append(fx, keyFixture{name: "dsa.pem", rule: "private-key-dsa", file: dsaB, keyType: "dsa", bits: "1024", sshFP: sshKeygenFP(t, dsaTrad)})
	// OpenSSH keys from ssh-keygen, plain and with a passphrase.
	for _, k := range []struct{ name, typ, bits, pass, wantType string }{
		{"id_ed25519", "ed25519", "", "", "ed25519"}, {"id_rsa", "rsa", "3072", "", "rsa"}, {"id_ecdsa_enc", "ecdsa", "384", "s3cret-pass", "ecdsa"},
	} {
		p := filepath.Join(dir, k.name)
		args := []string{"-q", "-t", k.typ, "-N", k.pass, "-C", "fixture", "-f", p}
		if k.bits != "" {
			args = append(args, "-b", k.bits)
		}
		testutil.Run(t, "ssh-keygen", args...)
		b, _ := os.ReadFile(p)
		bits := k.bits
		if k.typ == "ed25519" {
			bits = ""
		}
		fx = append(fx, keyFixture{name: k.name, rule: "private-key-openssh", file: b, keyType: k.wantType, bits: bits,
			encrypted: k.pass != "", sshFP: sshKeygenFP(t, p+".pub")})
	}
	return fx
}

func TestPrivateKeys(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	for _, k := range keyFixtures(t) {
		t.Run(k.name, func(t *testing.T) {
			block := strings.TrimRight(string(k.file), "\n")
			want := fp(block)
			escaped, _ := json.Marshal(string(k.file))
			contexts := map[string][]byte{
				"file":    append([]byte("\x00\x00junk\n"), k.file...),
				"json":    []byte(`{"name":"deploy","private_key":` + string(escaped) + `}`),
				"utf16":   toUTF16("key:\r\n" + string(k.file)),
				"literal": []byte(`KEY="` + strings.ReplaceAll(block, "\n", `\n`) + `"`),
			}
			for ctxName, buf := range contexts {
				ms := matchesOf(e.FindAll(buf, ScanOptions{}), k.rule)
				if len(ms) != 1 {
					t.Fatalf("%s: %d matches of %s, want 1:\n%s", ctxName, len(ms), k.rule, describe(e.FindAll(buf, ScanOptions{})))
				}
				m := ms[0]
				if m.Fingerprint != want {
					t.Errorf("%s: fingerprint differs from the .pem file's", ctxName)
				}
				wantSev := SeverityCritical
				if k.encrypted {
					wantSev = SeverityMedium
				}
				if m.Severity != wantSev || m.Meta["encrypted"] != boolStr(k.encrypted) {
					t.Errorf("%s: severity %s meta %v, want %s encrypted=%v", ctxName, m.Severity, m.Meta, wantSev, k.encrypted)
				}
				if k.keyType != "" && m.Meta["key_type"] != k.keyType {
					t.Errorf("%s: key_type %q want %q", ctxName, m.Meta["key_type"], k.keyType)
				}
				if k.bits != "" && m.Meta["bits"] != k.bits {
					t.Errorf("%s: bits %q want %q", ctxName, m.Meta["bits"], k.bits)
				}
				if k.sshFP != "" && m.KeyFingerprint != k.sshFP {
					t.Errorf("%s: key fingerprint %q, ssh-keygen -lf says %q", ctxName, m.KeyFingerprint, k.sshFP)
				}
				if !strings.HasPrefix(m.Preview, "-----BEGIN ") || strings.Contains(m.Preview, "\n") {
					t.Errorf("%s: preview %q is not the BEGIN line", ctxName, m.Preview)
				}
			}
			// Near misses: truncated (no END line), body cut short.
			lines := strings.Split(block, "\n")
			truncated := strings.Join(lines[:len(lines)/2], "\n")
			placeholder := lines[0] + "\n...\n" + lines[len(lines)-1]
			for _, n := range []string{truncated, placeholder} {
				if ms := matchesOf(e.FindAll([]byte(n), ScanOptions{}), k.rule); len(ms) > 0 {
					t.Errorf("near miss matched: %s", describe(ms))
				}
			}
		})
	}
}

func boolStr(b bool) string {
	if b {
		return "true"
	}
	return "false"
}

// TestCorruptPEMLowSeverity: a complete block whose body does not parse is
// kept, at low severity.
func TestCorruptPEMLowSeverity(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	g := newGen("corrupt")
	body := ""
	for range 20 {
		body += g.s(csB64, 64) + "\n"
	}
	text := "-----BEGIN RSA PRIVATE KEY-----\n" + body + "-----END RSA PRIVATE KEY-----\n"
	ms := matchesOf(e.FindAll([]byte(text), ScanOptions{}), "private-key-rsa")
	if len(ms) != 1 || ms[0].Severity != SeverityLow || ms[0].Meta["parsed"] != "false" {
		t.Fatalf("got %s", describe(ms))
	}
}

func TestPuTTYKey(t *testing.T) {
	testutil.RequireTool(t, "puttygen", "ssh-keygen")
	dir := t.TempDir()
	e := testEngine(t, EngineOptions{})
	for _, pass := range []string{"", "ppk-pass"} {
		passFile := writeTemp(t, dir, "pass", []byte(pass+"\n"))
		if pass == "" {
			passFile = writeTemp(t, dir, "pass", nil)
		}
		ppk := filepath.Join(dir, "k.ppk")
		testutil.Run(t, "puttygen", "-q", "-t", "ed25519", "-C", "fixture", "--new-passphrase", passFile, "-o", ppk)
		pub := filepath.Join(dir, "k.pub")
		testutil.Run(t, "puttygen", ppk, "--old-passphrase", passFile, "-O", "public-openssh", "-o", pub)
		b, _ := os.ReadFile(ppk)
		ms := matchesOf(e.FindAll(append([]byte("\x00\x00"), b...), ScanOptions{}), "private-key-putty")
		if len(ms) != 1 {
			t.Fatalf("pass %q: %d matches", pass, len(ms))
		}
		m := ms[0]
		wantSev := SeverityCritical
		if pass != "" {
			wantSev = SeverityMedium
		}
		if m.Severity != wantSev || m.KeyFingerprint != sshKeygenFP(t, pub) || m.Meta["key_type"] != "ed25519" {
			t.Errorf("pass %q: %s fp %s, ssh-keygen %s", pass, describe(ms), m.KeyFingerprint, sshKeygenFP(t, pub))
		}
		if !strings.HasPrefix(m.Preview, "PuTTY-User-Key-File-") {
			t.Errorf("preview %q", m.Preview)
		}
		cut := b[:bytes.Index(b, []byte("Private-MAC:"))]
		if ms := matchesOf(e.FindAll(cut, ScanOptions{}), "private-key-putty"); len(ms) > 0 {
			t.Errorf("truncated PPK matched")
		}
	}
}

func TestPGPPrivateKeyBlock(t *testing.T) {
	testutil.RequireTool(t, "gpg", "gpgconf")
	home := t.TempDir()
	t.Cleanup(func() { _ = exec.Command("gpgconf", "--homedir", home, "--kill", "gpg-agent").Run() })
	gpg := func(args ...string) []byte {
		return testutil.Run(t, "gpg", append([]string{"--homedir", home, "--batch", "--pinentry-mode", "loopback", "--passphrase", ""}, args...)...)
	}
	gpg("--quick-gen-key", "Fixture <fixture@corp.io>", "ed25519", "sign", "never")
	armored := gpg("--armor", "--export-secret-keys", "fixture@corp.io")
	block := armored[bytes.Index(armored, []byte("-----BEGIN PGP PRIVATE KEY BLOCK-----")):]
	e := testEngine(t, EngineOptions{})
	ms := matchesOf(e.FindAll(append([]byte("gpg backup\n"), block...), ScanOptions{}), "private-key-pgp")
	if len(ms) != 1 || ms[0].Severity != SeverityCritical || ms[0].Fingerprint != fp(strings.TrimRight(string(block), "\n")) {
		t.Fatalf("got %s", describe(ms))
	}
}

func TestKeytab(t *testing.T) {
	testutil.RequireTool(t, "ktutil")
	dir := t.TempDir()
	path := filepath.Join(dir, "http.keytab")
	cmd := exec.Command("ktutil")
	cmd.Stdin = strings.NewReader("addent -password -p HTTP/web01.corp.io@CORP.IO -k 1 -e aes256-cts-hmac-sha1-96\nKtPass!1\nwkt " + path + "\nquit\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ktutil: %v\n%s", err, out)
	}
	kt, _ := os.ReadFile(path)
	// A file starts on a block boundary: the keytab must be found at any
	// sector, in any chunk, whether a chunk boundary cuts its sector or
	// not.
	for _, tc := range []struct{ at, chunk int }{
		{4096, 0}, {4096, 4096}, {25 * 512, 4096}, {25 * 512, 1000}, {80 * 512, 3000}, {80 * 512, 512},
	} {
		t.Run(fmt.Sprintf("at=%d,chunk=%d", tc.at, tc.chunk), func(t *testing.T) {
			g := newGen("keytab")
			buf := append(g.bytes(tc.at), kt...)
			buf = append(buf, make([]byte, 4096-len(kt)%4096)...)
			e := testEngine(t, EngineOptions{ChunkSize: tc.chunk, Workers: 2})
			ms := matchesOf(e.FindAll(buf, ScanOptions{}), "kerberos-keytab")
			if len(ms) != 1 || ms[0].Start != int64(tc.at) || ms[0].End != int64(tc.at+len(kt)) || ms[0].Fingerprint != fp(string(kt)) ||
				!strings.Contains(ms[0].Meta["principals"], "HTTP/web01.corp.io@CORP.IO") {
				t.Fatalf("got %s", describe(ms))
			}
		})
	}
}

func TestGCPServiceAccountAndKubeconfig(t *testing.T) {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	p8, _ := x509.MarshalPKCS8PrivateKey(rk)
	keyPEM := pemBytes("PRIVATE KEY", p8)
	want := fp(strings.TrimRight(string(keyPEM), "\n"))
	esc, _ := json.Marshal(string(keyPEM))
	sa := `{
  "type": "service_account",
  "project_id": "prod-analytics-42",
  "private_key_id": "0123456789abcdef0123456789abcdef01234567",
  "private_key": ` + string(esc) + `,
  "client_email": "etl@prod-analytics-42.iam.gserviceaccount.com"
}`
	e := testEngine(t, EngineOptions{})
	all := e.FindAll([]byte(sa), ScanOptions{})
	gcp := matchesOf(all, "gcp-service-account-key")
	pk := matchesOf(all, "private-key-pkcs8")
	if len(gcp) != 1 || gcp[0].Fingerprint != want || gcp[0].Meta["account"] != "prod-analytics-42" || gcp[0].KeyFingerprint == "" {
		t.Errorf("gcp: %s", describe(gcp))
	}
	if len(pk) != 1 || pk[0].Fingerprint != want {
		t.Errorf("embedded PEM: %s", describe(pk))
	}
	kube := "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTg==\n    client-key-data: " +
		base64.StdEncoding.EncodeToString(keyPEM) + "\n"
	km := matchesOf(e.FindAll([]byte(kube), ScanOptions{}), "kubeconfig-client-key-data")
	if len(km) != 1 || km[0].Fingerprint != want || km[0].Meta["key_type"] != "rsa" {
		t.Errorf("kubeconfig: %s", describe(km))
	}
}

func TestMemoryStructures(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	g := newGen("memory")
	mem := g.bytes(256 << 10)
	copy(mem[100<<10:], make([]byte, 64<<10)) // a zero page run
	type planted struct {
		rule, secret string
		off          int
	}
	var want []planted
	for i, n := range []int{16, 24, 32} {
		key := g.bytes(n)
		sched := structural.ExpandAESKey(key)
		off := 10000 + i*20011
		copy(mem[off:], sched)
		if i == 2 {
			mem[off+100] ^= 0x10 // a bit error in a later round key
			mem[off+200] ^= 0x01
		}
		want = append(want, planted{"aes-key-schedule", string(key), off})
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(rk)
	copy(mem[180000:], der)
	want = append(want, planted{"rsa-private-key-der", string(der), 180000})

	if ms := e.FindAll(mem, ScanOptions{}); len(matchesOf(ms, "aes-key-schedule"))+len(matchesOf(ms, "rsa-private-key-der")) > 0 {
		t.Errorf("memory rules ran without ScanOptions.Memory")
	}
	ms := e.FindAll(mem, ScanOptions{Memory: true})
	for _, w := range want {
		found := false
		for _, m := range matchesOf(ms, w.rule) {
			if m.Fingerprint == fp(w.secret) && m.Start == int64(w.off) {
				found = true
			}
		}
		if !found {
			t.Errorf("%s at %d not found; got:\n%s", w.rule, w.off, describe(ms))
		}
	}
	// MemoryOnly: the same memory matches, and nothing else, though a PEM
	// key and an AWS key ID sit in the same bytes.
	withText := slices.Clone(mem)
	copy(withText[200000:], pemBytes("RSA PRIVATE KEY", der))
	copy(withText[240000:], "aws_access_key_id = AKIAQYLPMN5HHHFPZAM2\n")
	all := withText
	if n := len(e.FindAll(all, ScanOptions{Memory: true})) - len(ms); n < 2 {
		t.Fatalf("the text rules found %d more matches, want at least 2", n)
	}
	only := e.FindAll(all, ScanOptions{Memory: true, MemoryOnly: true})
	if describe(only) != describe(ms) {
		t.Errorf("MemoryOnly:\n%s\nwant the memory matches alone:\n%s", describe(only), describe(ms))
	}

	// The DER key fingerprints like the same key in PEM.
	pemMs := matchesOf(e.FindAll(pemBytes("RSA PRIVATE KEY", der), ScanOptions{}), "private-key-rsa")
	derMs := matchesOf(ms, "rsa-private-key-der")
	if len(pemMs) != 1 || len(derMs) != 1 || pemMs[0].KeyFingerprint != derMs[0].KeyFingerprint || derMs[0].KeyFingerprint == "" {
		t.Errorf("key fingerprints differ: pem %s der %s", describe(pemMs), describe(derMs))
	}
}

// TestMemoryKeysAcrossWindows: the memory-key search runs a prefilter
// window at a time (and, without AES, with a filter of its own); keys
// planted across window and chunk boundaries are found as one pass of
// structural.FindMemoryKeys over the whole buffer finds them, with every
// rule enabled, with the memory rules alone, and with each alone.
func TestMemoryKeysAcrossWindows(t *testing.T) {
	g := newGen("windows")
	mem := g.bytes(3 << 20)
	var keys []int
	for i, off := range []int{hitWindow - 100, 2*hitWindow - 30, 5*hitWindow + 7, 1<<20 - 90, 2<<20 + 3} {
		if i%2 == 0 {
			copy(mem[off:], structural.ExpandAESKey(g.bytes(16+8*(i%3))))
		} else {
			rk, err := rsa.GenerateKey(rand.Reader, 1024)
			if err != nil {
				t.Fatal(err)
			}
			copy(mem[off:], x509.MarshalPKCS1PrivateKey(rk))
		}
		keys = append(keys, off)
	}
	var wantAES, wantDER []int64
	structural.FindMemoryKeys(mem, aesMaxBitErrors,
		func(off int, _ []byte) { wantAES = append(wantAES, int64(off)) },
		func(off, _ int, _ structural.KeyInfo) { wantDER = append(wantDER, int64(off)) })
	if len(wantAES) != 3 || len(wantDER) != 2 {
		t.Fatalf("one pass found AES at %v and DER at %v; planted at %v", wantAES, wantDER, keys)
	}
	allBut := func(keep ...string) []string {
		var ids []string
		for _, r := range Builtin() {
			if !slices.Contains(keep, r.ID) {
				ids = append(ids, r.ID)
			}
		}
		return ids
	}
	for _, c := range []struct {
		name     string
		disable  []string
		aes, der bool
	}{
		{"all rules", nil, true, true},
		{"memory rules", allBut("aes-key-schedule", "rsa-private-key-der"), true, true},
		{"aes alone", allBut("aes-key-schedule"), true, false},
		{"der alone", allBut("rsa-private-key-der"), false, true},
	} {
		for _, chunk := range []int{0, 1 << 20} {
			t.Run(fmt.Sprintf("%s/chunk=%d", c.name, chunk), func(t *testing.T) {
				e := testEngine(t, EngineOptions{Disable: c.disable, ChunkSize: chunk, Workers: 2})
				ms := e.FindAll(mem, ScanOptions{Memory: true})
				starts := func(rule string) []int64 {
					var s []int64
					for _, m := range matchesOf(ms, rule) {
						s = append(s, m.Start)
					}
					slices.Sort(s)
					return s
				}
				var want []int64
				if c.aes {
					want = wantAES
				}
				if got := starts("aes-key-schedule"); !slices.Equal(got, want) {
					t.Errorf("AES at %v, want %v", got, want)
				}
				want = nil
				if c.der {
					want = wantDER
				}
				if got := starts("rsa-private-key-der"); !slices.Equal(got, want) {
					t.Errorf("DER at %v, want %v", got, want)
				}
			})
		}
	}
}
