package rollback

import (
	"bytes"
	"path"
	"strings"
)

// Bounds on account files: real systems have a few hundred accounts; an
// LDAP-sized local file has tens of thousands.
const (
	maxAccounts   = 1 << 16
	maxFieldBytes = 4096
)

// ShadowEntry is one /etc/shadow line. Hash is the password field as
// written (lock prefix included); it is secret and never printed.
type ShadowEntry struct {
	Name string
	Hash string
	Line int // 1-based
}

// PasswdEntry is one /etc/passwd line (the fields rollback needs).
type PasswdEntry struct {
	Name   string
	Passwd string // "x" when the hash is in /etc/shadow
	UID    string
	Home   string
	Shell  string
	Line   int
}

// ParseShadow parses /etc/shadow. Malformed lines (no colon, bad names,
// NIS "+"/"-" entries) are skipped; the first entry of a name wins, as in
// glibc's lookups.
func ParseShadow(b []byte) []ShadowEntry {
	var out []ShadowEntry
	seen := map[string]bool{}
	forEachLine(b, func(n int, line []byte) bool {
		f := bytes.SplitN(line, []byte(":"), 3)
		if len(f) < 2 || !validAccountName(f[0]) || len(f[1]) > maxFieldBytes {
			return true
		}
		name := string(f[0])
		if seen[name] {
			return true
		}
		seen[name] = true
		out = append(out, ShadowEntry{Name: name, Hash: string(f[1]), Line: n})
		return len(out) < maxAccounts
	})
	return out
}

// ParsePasswd parses /etc/passwd (name:passwd:uid:gid:gecos:home:shell).
func ParsePasswd(b []byte) []PasswdEntry {
	var out []PasswdEntry
	seen := map[string]bool{}
	forEachLine(b, func(n int, line []byte) bool {
		f := bytes.Split(line, []byte(":"))
		if len(f) < 7 || !validAccountName(f[0]) || seen[string(f[0])] {
			return true
		}
		for _, x := range f {
			if len(x) > maxFieldBytes {
				return true
			}
		}
		seen[string(f[0])] = true
		out = append(out, PasswdEntry{Name: string(f[0]), Passwd: string(f[1]), UID: string(f[2]),
			Home: string(f[5]), Shell: string(f[6]), Line: n})
		return len(out) < maxAccounts
	})
	return out
}

// validAccountName accepts what useradd and NSS accept in practice:
// printable ASCII without ':' and spaces, not starting with '+', '-' (NIS
// compat entries) or '#'.
func validAccountName(b []byte) bool {
	if len(b) == 0 || len(b) > 256 || b[0] == '+' || b[0] == '-' || b[0] == '#' {
		return false
	}
	for _, c := range b {
		if c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// forEachLine calls fn with each line (without "\n" or "\r"), 1-based.
func forEachLine(b []byte, fn func(n int, line []byte) bool) {
	for n := 1; len(b) > 0; n++ {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		if !fn(n, bytes.TrimSuffix(line, []byte("\r"))) {
			return
		}
	}
}

// HashState classifies a password field.
type HashState int

const (
	HashUsable   HashState = iota // a crypt string some password matches
	HashLocked                    // "!" prefix (passwd -l / usermod -L)
	HashDisabled                  // "*" or another string no password can match
	HashEmpty                     // empty field: login without a password where PAM allows it
)

// ClassifyHash says whether a password field lets someone log in.
func ClassifyHash(h string) HashState {
	switch {
	case h == "":
		return HashEmpty
	case strings.HasPrefix(h, "!"):
		return HashLocked
	case strings.HasPrefix(h, "*"):
		return HashDisabled
	case hashScheme(h) != "":
		return HashUsable
	}
	return HashDisabled
}

// hashScheme names the crypt(3) scheme of a usable hash, or "" when the
// string is not a crypt hash (then crypt(3) fails and no password matches).
func hashScheme(h string) string {
	if strings.ContainsAny(h, ": \t") {
		return ""
	}
	if len(h) == 13 && cryptChars(h) {
		return "descrypt"
	}
	if len(h) == 20 && h[0] == '_' && cryptChars(h[1:]) {
		return "bsdicrypt"
	}
	if !strings.HasPrefix(h, "$") {
		return ""
	}
	id, rest, ok := strings.Cut(h[1:], "$")
	if !ok || rest == "" {
		return ""
	}
	switch id {
	case "1":
		return "md5crypt"
	case "2a", "2b", "2y", "2x":
		return "bcrypt"
	case "5":
		return "sha256crypt"
	case "6":
		return "sha512crypt"
	case "y":
		return "yescrypt"
	case "gy":
		return "gost-yescrypt"
	case "7":
		return "scrypt"
	case "sha1":
		return "sha1crypt"
	case "md5":
		return "sunmd5"
	}
	return ""
}

func cryptChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '.' || c == '/' || isDigit(c) || isAlpha(c)) {
			return false
		}
	}
	return true
}

// hashPreview is a redacted form of a hash: the scheme prefix and length.
func hashPreview(h string) string {
	prefix := ""
	if strings.HasPrefix(h, "$") {
		if i := strings.IndexByte(h[1:], '$'); i >= 0 && i < 4 {
			prefix = h[:i+2]
		}
	}
	return prefix + "…(" + itoa(len(h)) + " chars)"
}

// nonLoginShell reports shells that refuse interactive logins.
func nonLoginShell(sh string) bool {
	switch path.Base(strings.TrimSpace(sh)) {
	case "nologin", "false":
		return true
	}
	return false
}
