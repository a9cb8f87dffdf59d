package detectors

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"testing"
)

const (
	csAlnum   = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	csUpperD  = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	csLowerD  = "0123456789abcdefghijklmnopqrstuvwxyz"
	csHex     = "0123456789abcdef"
	csB64     = csAlnum + "+/"
	csURL     = csAlnum + "_-"
	csLetters = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	csCrypt   = "./" + csAlnum
	csBech32  = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"
)

// gen makes deterministic synthetic secrets, seeded per test case.
type gen struct{ r *rand.Rand }

func newGen(seed string) *gen {
	h := fnv.New64a()
	h.Write([]byte(seed))
	return &gen{rand.New(rand.NewPCG(h.Sum64(), 7))}
}

func (g *gen) s(cs string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = cs[g.r.IntN(len(cs))]
	}
	return string(b)
}

func (g *gen) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(g.r.UintN(256))
	}
	return b
}

// githubToken builds a classic GitHub token with a valid CRC32 checksum:
// 30 random base62 characters, then the CRC32 of those in base62, 6 digits.
func (g *gen) githubToken(prefix string) string {
	body := g.s(csAlnum, 30)
	sum := crc32.ChecksumIEEE([]byte(body))
	var d [6]byte
	for i := 5; i >= 0; i-- {
		d[i] = csAlnum[sum%62]
		sum /= 62
	}
	return prefix + body + string(d[:])
}

func fp(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(s[:])
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func jwtToken(g *gen) string {
	enc := base64.RawURLEncoding
	h := enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`))
	p := enc.EncodeToString([]byte(fmt.Sprintf(`{"sub":"%s","name":"svc","iat":1516239022}`, g.s(csHex, 12))))
	return h + "." + p + "." + g.s(csURL, 43)
}

func toUTF16(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, s[i], 0)
	}
	return out
}

func testEngine(t testing.TB, opts EngineOptions) *Engine {
	t.Helper()
	e, err := NewEngine(Builtin(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func matchesOf(ms []Match, rule string) []Match {
	var out []Match
	for _, m := range ms {
		if m.RuleID == rule {
			out = append(out, m)
		}
	}
	return out
}

func describe(ms []Match) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "  %s [%d,%d) %s %s %v\n", m.RuleID, m.Start, m.End, m.Severity, m.Preview, m.Meta)
	}
	return b.String()
}
