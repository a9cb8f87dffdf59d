package structural

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"
)

// Published checksum test vectors (from the GithubTokenChecksum validator of
// a public secret scanner's test suite), split so that the literal tokens do
// not appear in this file.
var githubVectors = []string{
	"ghp_" + "M7H4jxUDDWHP4kZ6A4dxlQYsQIWJuq11T4V4",
	"ghp_" + "HEEjXavM6wKtyhAUwDblMznMEhWyTt4XwY6f",
	"ghp_" + "yk8LTIKF7M9SgRPBFzu7nkPQBBLcAa2aAbrx",
	"ghp_" + "vKdQ4XtRZOBFd16YZEgyLKyQ8Cee4g2NJ0mT",
}

// githubToken makes a token the way GitHub does: 30 random base62 characters
// and the base62 CRC32 of them.
func githubToken(prefix string, r *rand.Rand) string {
	var b strings.Builder
	b.WriteString(prefix)
	random := make([]byte, 30)
	for i := range random {
		random[i] = base62Alphabet[r.IntN(62)]
	}
	b.Write(random)
	c := crc32.ChecksumIEEE(random)
	var sum [6]byte
	for i := 5; i >= 0; i-- {
		sum[i] = base62Alphabet[c%62]
		c /= 62
	}
	b.Write(sum[:])
	return b.String()
}

func TestGitHubClassicTokenValid(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	type tc struct {
		name string
		tok  string
		want bool
	}
	var cases []tc
	for i, v := range githubVectors {
		cases = append(cases, tc{"vector" + string(rune('0'+i)), v, true})
	}
	for _, p := range []string{"ghp_", "gho_", "ghu_", "ghs_", "ghr_"} {
		cases = append(cases, tc{"generated-" + p, githubToken(p, r), true})
	}
	good := githubVectors[0]
	cases = append(cases,
		tc{"last-char-changed", good[:39] + "3", false},
		tc{"random-char-changed", good[:10] + "Z" + good[11:], false},
		tc{"non-base62", good[:39] + "/", false},
		tc{"wrong-prefix", "ghx_" + good[4:], false},
		tc{"fine-grained-prefix", "github_pat_" + good[4:], false},
		tc{"no-separator", "ghp" + good[4:], false},
		tc{"too-short", good[:39], false},
		tc{"too-long", good + "a", false},
		tc{"placeholder", "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", false},
		tc{"docs-example", "ghp_" + "abcdefghijklmnopqrstuvwxyzABCD012345", false},
		tc{"empty", "", false},
	)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := GitHubClassicTokenValid(c.tok); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

func TestJWTValid(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	sign := func(h, p string) string {
		m := hmac.New(sha256.New, []byte("test-key"))
		m.Write([]byte(enc([]byte(h)) + "." + enc([]byte(p))))
		return enc([]byte(h)) + "." + enc([]byte(p)) + "." + enc(m.Sum(nil))
	}
	hdr := `{"alg":"HS256","typ":"JWT"}`
	payload := `{"sub":"1234567890","name":"Test","iat":1516239022}`
	good := sign(hdr, payload)
	cases := []struct {
		name string
		tok  string
		want bool
	}{
		{"hs256", good, true},
		{"rs256-spaces", sign(`{ "alg": "RS256" }`, `{ "iss": "x" }`), true},
		{"padded-parts", enc([]byte(hdr)) + "==." + enc([]byte(payload)) + "." + enc([]byte("sig")), true},
		{"alg-none-empty-sig", enc([]byte(`{"alg":"none"}`)) + "." + enc([]byte(payload)) + ".", true},
		{"empty-sig-not-none", enc([]byte(hdr)) + "." + enc([]byte(payload)) + ".", false},
		{"two-parts", enc([]byte(hdr)) + "." + enc([]byte(payload)), false},
		{"four-parts", good + ".abc", false},
		{"header-without-alg", sign(`{"typ":"JWT"}`, payload), false},
		{"alg-not-string", sign(`{"alg":5}`, payload), false},
		{"header-array", sign(`["alg"]`, payload), false},
		{"payload-not-json", sign(hdr, "hello world"), false},
		{"payload-array", sign(hdr, `[1,2]`), false},
		{"payload-truncated-json", sign(hdr, `{"sub":"1`), false},
		{"bad-base64", "eyJ!bGciOiJIUzI1NiJ9." + enc([]byte(payload)) + ".sig", false},
		{"bad-sig-base64", enc([]byte(hdr)) + "." + enc([]byte(payload)) + ".a+b/c", false},
		{"placeholder", "eyJhbGciOi...", false},
		{"docs-placeholder", "<header>.<payload>.<signature>", false},
		{"empty", "", false},
		{"too-long", sign(hdr, `{"a":"`+strings.Repeat("x", maxJWTLen)+`"}`), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := JWTValid(c.tok); got != c.want {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}
