package rollback

import (
	"encoding/base64"
	"encoding/binary"
	"strings"

	"github.com/imgaudit/imgaudit/detectors/structural"
)

// Bounds for authorized_keys: OpenSSH reads lines of up to 16 KiB
// (SSH_MAX_PUBKEY_BYTES); a file with more keys than this is not a real one.
const (
	maxAuthKeyLine = 16 << 10
	maxAuthKeys    = 4096
)

// AuthorizedKey is one key line of an authorized_keys file. The blob is a
// public key (not secret), yet only its fingerprint is ever printed.
type AuthorizedKey struct {
	Type        string // "ssh-ed25519", "ssh-rsa", ...
	Blob        []byte // SSH wire-format public key
	Fingerprint string // "SHA256:…" as ssh-keygen -lf prints it
	HasOptions  bool   // an options prefix (from=, command=, restrict, ...)
	Line        int
}

// sshKeyTypes are the key types sshd accepts in authorized_keys.
var sshKeyTypes = []string{
	"ssh-ed25519", "ssh-rsa", "ssh-dss",
	"ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521",
	"sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
	"ssh-ed25519-cert-v01@openssh.com", "ssh-rsa-cert-v01@openssh.com", "ssh-dss-cert-v01@openssh.com",
	"ecdsa-sha2-nistp256-cert-v01@openssh.com", "ecdsa-sha2-nistp384-cert-v01@openssh.com",
	"ecdsa-sha2-nistp521-cert-v01@openssh.com",
	"sk-ssh-ed25519-cert-v01@openssh.com", "sk-ecdsa-sha2-nistp256-cert-v01@openssh.com",
}

func isSSHKeyType(s string) bool {
	for _, t := range sshKeyTypes {
		if s == t {
			return true
		}
	}
	return false
}

// ParseAuthorizedKeys parses an authorized_keys file the way sshd's
// auth_parse_options/sshkey_read do: blank lines and '#' comments are
// skipped; a line is "[options] keytype base64 [comment]", where options
// may hold double-quoted strings with spaces and \" escapes. A key whose
// base64 does not decode, or whose blob does not name its own key type, is
// skipped, as sshd would skip it.
func ParseAuthorizedKeys(b []byte) []AuthorizedKey {
	var out []AuthorizedKey
	forEachLine(b, func(n int, line []byte) bool {
		if len(line) > maxAuthKeyLine {
			return true
		}
		if k, ok := parseAuthorizedKeyLine(string(line)); ok {
			k.Line = n
			out = append(out, k)
		}
		return len(out) < maxAuthKeys
	})
	return out
}

func parseAuthorizedKeyLine(s string) (AuthorizedKey, bool) {
	s = strings.TrimLeft(s, " \t")
	if s == "" || s[0] == '#' {
		return AuthorizedKey{}, false
	}
	var k AuthorizedKey
	typ, rest := nextField(s)
	if !isSSHKeyType(typ) {
		// An options prefix: skip it, honouring quotes.
		end, ok := skipOptions(s)
		if !ok {
			return AuthorizedKey{}, false
		}
		k.HasOptions = true
		typ, rest = nextField(strings.TrimLeft(s[end:], " \t"))
		if !isSSHKeyType(typ) {
			return AuthorizedKey{}, false
		}
	}
	b64, _ := nextField(rest)
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(blob) < 4 {
		return AuthorizedKey{}, false
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != typ {
		return AuthorizedKey{}, false
	}
	k.Type, k.Blob = typ, blob
	k.Fingerprint = structural.SSHFingerprint(blob)
	return k, true
}

// nextField splits off the first space- or tab-separated field.
func nextField(s string) (field, rest string) {
	s = strings.TrimLeft(s, " \t")
	i := strings.IndexAny(s, " \t")
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// skipOptions returns the index just past the options prefix: it ends at
// the first space or tab outside double quotes.
func skipOptions(s string) (int, bool) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted && i+1 < len(s) && s[i+1] == '"':
			i++
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return i, true
		}
	}
	return 0, false // options without a key, or an unterminated quote
}

// sshdKeyFiles is what sshd_config says about authorized keys files: the
// patterns in effect (global, plus those of Match blocks, which may apply
// to some users: counted, to stay on the safe side).
type sshdKeyFiles struct {
	global   []string // nil: unset, the default applies
	matched  []string
	globalOK bool
}

// defaultAuthorizedKeysFiles is sshd's built-in AuthorizedKeysFile.
var defaultAuthorizedKeysFiles = []string{".ssh/authorized_keys", ".ssh/authorized_keys2"}

// parse reads AuthorizedKeysFile and Match from one sshd_config file
// (inMatch: the file is included from inside a Match block), calling
// include for each Include argument (already split). The first global
// value wins, as in sshd.
func (c *sshdKeyFiles) parse(b []byte, inMatch bool, include func(pattern string, inMatch bool)) {
	forEachLine(b, func(_ int, line []byte) bool {
		s := strings.TrimSpace(string(line))
		if s == "" || s[0] == '#' || len(s) > 4096 {
			return true
		}
		kw, rest := nextField(s)
		if i := strings.IndexByte(kw, '='); i >= 0 {
			kw, rest = kw[:i], kw[i+1:]+" "+rest
		}
		rest = strings.TrimLeft(strings.TrimSpace(rest), "= \t")
		switch strings.ToLower(kw) {
		case "match":
			inMatch = !strings.EqualFold(strings.TrimSpace(rest), "all")
		case "include":
			for _, p := range splitArgs(rest) {
				include(p, inMatch)
			}
		case "authorizedkeysfile":
			args := splitArgs(rest)
			if len(args) == 1 && strings.EqualFold(args[0], "none") {
				args = []string{}
			}
			if inMatch {
				c.matched = append(c.matched, args...)
			} else if !c.globalOK {
				c.global, c.globalOK = args, true
			}
		}
		return true
	})
}

// patterns lists every pattern that may apply to some user.
func (c *sshdKeyFiles) patterns() []string {
	var out []string
	if c.globalOK {
		out = append(out, c.global...)
	} else {
		out = append(out, defaultAuthorizedKeysFiles...)
	}
	for _, p := range c.matched {
		if !contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// splitArgs splits sshd_config arguments, honouring double quotes.
func splitArgs(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted, have = !quoted, true
		case (c == ' ' || c == '\t') && !quoted:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteByte(c)
			have = true
		}
		if len(out) > 64 {
			break
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}

// expandKeyFile expands sshd's %% %h %u %U tokens; relative results are
// relative to the home directory. ok is false for unknown tokens.
func expandKeyFile(pattern, user, uid, home string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 >= len(pattern) {
			return "", false
		}
		i++
		switch pattern[i] {
		case '%':
			b.WriteByte('%')
		case 'h':
			b.WriteString(home)
		case 'u':
			b.WriteString(user)
		case 'U':
			b.WriteString(uid)
		default:
			return "", false
		}
	}
	p := b.String()
	if !strings.HasPrefix(p, "/") {
		if home == "" {
			return "", false
		}
		p = strings.TrimSuffix(home, "/") + "/" + p
	}
	return p, true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// keyTypePreview is the redacted preview of a public key: its type and the
// start of its fingerprint.
func keyTypePreview(typ, fp string) string {
	if len(fp) > 15 {
		fp = fp[:15] + "…"
	}
	return typ + " " + fp
}
