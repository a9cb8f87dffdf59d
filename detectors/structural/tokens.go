package structural

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"hash/crc32"
	"strings"
)

const base62Alphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// GitHubClassicTokenValid reports whether tok is a GitHub classic token
// (ghp_, gho_, ghu_, ghs_, ghr_) whose checksum verifies: 30 random base62
// characters followed by the CRC32 (IEEE) of those 30 characters, the prefix
// excluded, written as 6 base62 digits (0-9A-Za-z), most significant first,
// zero-padded. This is the scheme of GitHub's 2021 token format.
func GitHubClassicTokenValid(tok string) bool {
	if len(tok) != 40 || tok[0] != 'g' || tok[1] != 'h' || tok[3] != '_' {
		return false
	}
	switch tok[2] {
	case 'p', 'o', 'u', 's', 'r':
	default:
		return false
	}
	body := tok[4:]
	for i := 0; i < len(body); i++ {
		if base62Value(body[i]) < 0 {
			return false
		}
	}
	var sum uint64
	for i := 30; i < 36; i++ {
		sum = sum*62 + uint64(base62Value(body[i]))
	}
	return sum == uint64(crc32.ChecksumIEEE([]byte(body[:30])))
}

func base62Value(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'Z':
		return int(c-'A') + 10
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

// maxJWTLen bounds the token JWTValid decodes.
const maxJWTLen = 16 << 10

// JWTValid reports whether tok is a JSON Web Token in compact serialisation:
// three dot-separated base64url parts, the header and payload decode to JSON
// objects and the header names an "alg". The signature part must be valid
// base64url (it is empty for alg "none").
func JWTValid(tok string) bool {
	if len(tok) > maxJWTLen {
		return false
	}
	h, rest, ok := strings.Cut(tok, ".")
	if !ok {
		return false
	}
	p, sig, ok := strings.Cut(rest, ".")
	if !ok || strings.IndexByte(sig, '.') >= 0 || len(h) < 4 || len(p) < 2 {
		return false
	}
	hj, ok := b64url(h)
	if !ok {
		return false
	}
	var hdr map[string]json.RawMessage
	if json.Unmarshal(hj, &hdr) != nil {
		return false
	}
	alg, ok := hdr["alg"]
	if !ok || len(alg) < 3 || alg[0] != '"' {
		return false
	}
	pj, ok := b64url(p)
	if !ok {
		return false
	}
	if pj = bytes.TrimSpace(pj); len(pj) < 2 || pj[0] != '{' || !json.Valid(pj) {
		return false
	}
	if sig != "" {
		if _, ok := b64url(sig); !ok {
			return false
		}
	} else if string(alg) != `"none"` {
		return false
	}
	return true
}

// b64url decodes unpadded (or padded) base64url.
func b64url(s string) ([]byte, bool) {
	s = strings.TrimRight(s, "=")
	b, err := base64.RawURLEncoding.DecodeString(s)
	return b, err == nil
}
