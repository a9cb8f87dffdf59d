package detectors

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestNoLeak renders every finding over a fixture full of planted secrets
// (all rule-table cases plus a private key) in every way a caller might
// (fmt %v/%+v/%#v, JSON) and asserts that no secret value, nor any 10-byte
// piece of one, appears.
func TestNoLeak(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	var fixture []byte
	var secrets []string
	for i, mk := range ruleCases() {
		c := mk(newGen(fmt.Sprint("leak", i)))
		fixture = append(fixture, "\n"+c.text+"\n"...)
		if c.rule == "aws-access-key-id" || c.rule == "alibaba-access-key-id" {
			continue // key IDs are the public half of a pair: Meta["key_id"] by contract
		}
		secrets = append(secrets, c.secret)
	}
	ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	sec1, _ := x509.MarshalECPrivateKey(ek)
	keyPEM := string(pemBytes("EC PRIVATE KEY", sec1))
	fixture = append(fixture, keyPEM...)
	fixture = append(fixture, toUTF16(keyPEM)...)
	body := strings.Join(strings.Split(keyPEM, "\n")[1:3], "")
	secrets = append(secrets, body)

	ms := e.FindAll(fixture, ScanOptions{Memory: true})
	if len(ms) < len(secrets)/2 {
		t.Fatalf("only %d findings for %d planted secrets", len(ms), len(secrets))
	}
	var render strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&render, "%v\n%+v\n%#v\n", m, m, m)
		j, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		render.Write(j)
	}
	out := render.String()
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Fatalf("a secret of %d bytes appears in the rendered findings", len(s))
		}
		// Pieces: skip the public token prefixes a preview may show.
		core := s
		for _, m := range ms {
			if p, _, ok := strings.Cut(m.Preview, "…"); ok && p != "" && strings.HasPrefix(s, p) && len(p) > len(s)-len(core) {
				core = s[len(p):]
			}
		}
		const piece = 10
		for i := 0; i+piece <= len(core); i++ {
			if strings.Contains(out, core[i:i+piece]) {
				t.Fatalf("a 10-byte piece of a %d-byte secret appears in the rendered findings", len(s))
			}
		}
	}
}

// TestMetaValue: a user name that looks like a token is redacted in the
// metadata, keeping a short prefix; names stay as they are.
func TestMetaValue(t *testing.T) {
	for _, tc := range []struct{ key, in, want string }{
		{"user", "oauth2", "oauth2"},
		{"user", "x-access-token", "x-access-token"},
		{"user", "gitlab-ci-token", "gitlab-ci-token"},
		{"user", "continuous-integration-deployer", "continuous-integration-deployer"},
		{"user", "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", "ghp_…(40 chars)"},
		{"user", "3f9a1c0e8b7d4e2fa6c5b1d0e9f8a7b6", "…(32 chars)"},
		{"account", "glpat-Xk29sLq0PzR7mNv4TbYw", "glpat-…(26 chars)"},
		{"host", "a1b2c3d4e5f6a7b8c9d0e1f2.example.com", "a1b2c3d4e5f6a7b8c9d0e1f2.example.com"},
	} {
		if got := metaValue(tc.key, []byte(tc.in)); got != tc.want {
			t.Errorf("metaValue(%s, %q) = %q, want %q", tc.key, tc.in, got, tc.want)
		}
	}
}
