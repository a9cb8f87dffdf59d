package detectors

import (
	"bytes"
	"encoding/base64"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// regexMatch turns a regex match (submatch indexes into w) into a validated
// finding, applying the rule's check, entropy and placeholder filters.
func (cs *chunkScanner) regexMatch(r *compiledRule, w []byte, m []int) (found, bool) {
	g := r.SecretGroup
	s, e := m[2*g], m[2*g+1]
	if s < 0 || e <= s {
		return found{}, false
	}
	f := found{s: s, e: e, secret: w[s:e], sev: r.Severity}
	rx := r.regexps()
	for _, mg := range rx.meta {
		if a, b := m[2*mg[0]], m[2*mg[0]+1]; a >= 0 && b > a {
			if f.meta == nil {
				f.meta = map[string]string{}
			}
			f.meta[rx.metaKeys[mg[1]]] = printable(w[a:b])
		}
	}
	switch r.check {
	case checkGitHubCRC:
		if !githubTokenValid(string(f.secret)) {
			return found{}, false
		}
	case checkJWT:
		if !jwtValid(string(f.secret)) {
			return found{}, false
		}
	case checkPassword:
		if !passwordQuality(f.secret, true) {
			return found{}, false
		}
	case checkPasswordLax:
		if !passwordQuality(f.secret, false) {
			return found{}, false
		}
	case checkDockerAuth:
		user, pass, ok := decodeUserPass(f.secret)
		if !ok || !passwordQuality(pass, false) {
			return found{}, false
		}
		if f.meta == nil {
			f.meta = map[string]string{}
		}
		f.meta["user"] = printable(user)
	case checkCrypt:
		if lg := rx.lockedGroup; lg > 0 && m[2*lg+1] > m[2*lg] {
			if f.meta == nil {
				f.meta = map[string]string{}
			}
			f.meta["locked"] = "true"
			f.sev = f.sev.lower(1)
		}
	case checkPEMValue:
		if !pemFinding(&f, unescapeArmored(f.secret), r.Severity) {
			return found{}, false
		}
	case checkKubeKeyData:
		dec, err := base64.StdEncoding.DecodeString(string(f.secret))
		if err != nil {
			return found{}, false
		}
		b := bytes.Index(dec, []byte("-----BEGIN "))
		if b < 0 {
			return found{}, false
		}
		block, ok := armoredBlock(dec[b:])
		if !ok || !pemFinding(&f, block, r.Severity) {
			return found{}, false
		}
	}
	if r.check != checkCrypt && r.check != checkPEMValue && r.check != checkKubeKeyData && isPlaceholder(f.secret) {
		return found{}, false
	}
	if r.Entropy > 0 && shannon(f.secret) < r.Entropy {
		return found{}, false
	}
	if isExample(f.secret, f.meta) {
		f.sev = SeverityLow
		if f.meta == nil {
			f.meta = map[string]string{}
		}
		f.meta["example"] = "true"
	}
	return f, true
}

var (
	dashes    = []byte("-----")
	beginWord = []byte("-----BEGIN ")
)

// armoredBlock returns b's leading "-----BEGIN X-----…-----END X-----" block.
func armoredBlock(b []byte) ([]byte, bool) {
	if !bytes.HasPrefix(b, beginWord) {
		return nil, false
	}
	i := bytes.Index(b[len(beginWord):min(len(b), len(beginWord)+64)], dashes)
	if i < 0 {
		return nil, false
	}
	label := b[len(beginWord) : len(beginWord)+i]
	if !armorLabel(label) {
		return nil, false
	}
	bodyStart := len(beginWord) + i + len(dashes)
	endMarker := "-----END " + string(label) + "-----"
	j := bytes.Index(b[bodyStart:], []byte(endMarker))
	if j < 0 || bytes.Contains(b[bodyStart:bodyStart+j], beginWord) {
		return nil, false
	}
	if base64Chars(b[bodyStart:bodyStart+j]) < 64 {
		return nil, false
	}
	return b[:bodyStart+j+len(endMarker)], true
}

func armorLabel(l []byte) bool {
	if len(l) == 0 {
		return false
	}
	for _, c := range l {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == ' ') {
			return false
		}
	}
	return true
}

func base64Chars(b []byte) int {
	n := 0
	for _, c := range b {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			n++
		}
	}
	return n
}

// findPEM locates an armoured private key: the keyword ("BEGIN … PRIVATE
// KEY") must follow "-----", the block must be complete (its END line within
// the window, no other BEGIN inside), and the secret value is the block with
// string escaping undone.
func findPEM(r *compiledRule, w []byte, kp, kl int) (found, bool) {
	if kp < len(dashes) || !bytes.Equal(w[kp-len(dashes):kp], dashes) {
		return found{}, false
	}
	start := kp - len(dashes)
	block, ok := armoredBlock(w[start:])
	if !ok {
		return found{}, false
	}
	f := found{s: start, e: start + len(block)}
	if !pemFinding(&f, unescapeArmored(block), r.Severity) {
		return found{}, false
	}
	return f, true
}

// pemFinding fills f from an unescaped armoured block: secret, preview (the
// BEGIN line), key metadata. Blocks that do not parse are kept at low
// severity; encrypted keys drop two steps.
func pemFinding(f *found, block []byte, sev Severity) bool {
	block = bytes.TrimRight(block, "\r\n")
	nl := bytes.IndexAny(block, "\r\n")
	if nl < 0 || !bytes.HasPrefix(block, beginWord) {
		return false
	}
	first := block[:nl]
	end := bytes.Index(first[len(beginWord):], dashes)
	if end < 0 {
		return false
	}
	label := string(first[len(beginWord) : len(beginWord)+end])
	f.secret = block
	f.preview = "-----BEGIN " + label + "-----"
	var info keyInfo
	var err error
	if strings.Contains(label, "PGP") {
		info, err = parsePGPPrivate(block)
	} else {
		info, err = parsePrivateKeyPEM(block)
	}
	f.sev = sev
	if err != nil {
		f.sev = SeverityLow
		if f.meta == nil {
			f.meta = map[string]string{}
		}
		f.meta["parsed"] = "false"
		return true
	}
	for k, v := range keyMeta(info) {
		if f.meta == nil {
			f.meta = map[string]string{}
		}
		f.meta[k] = v
	}
	f.keyFP = info.KeyFingerprint
	if info.Encrypted {
		f.sev = sev.lower(2)
	}
	return true
}

func keyMeta(info keyInfo) map[string]string {
	m := map[string]string{"encrypted": strconv.FormatBool(info.Encrypted)}
	if info.Type != "" {
		m["key_type"] = info.Type
	}
	if info.Bits > 0 {
		m["bits"] = strconv.Itoa(info.Bits)
	}
	return m
}

var ppkMAC = []byte("Private-MAC:")

// findPPK locates a PuTTY key file from its header to its Private-MAC line.
func findPPK(r *compiledRule, w []byte, kp, kl int) (found, bool) {
	rest := w[kp:]
	i := bytes.Index(rest, ppkMAC)
	if i < 0 || bytes.Contains(rest[kl:i], []byte("PuTTY-User-Key-File-")) {
		return found{}, false
	}
	end := i + len(ppkMAC)
	for end < len(rest) && (rest[end] == ' ' || rest[end] == '\t') {
		end++
	}
	macStart := end
	for end < len(rest) && isHex(rest[end]) {
		end++
	}
	if end-macStart < 40 {
		return found{}, false
	}
	text := unescapeArmored(rest[:end])
	header := text
	if nl := bytes.IndexAny(text, "\r\n"); nl >= 0 {
		header = text[:nl]
	}
	f := found{s: kp, e: kp + end, secret: text, preview: printable(header), sev: r.Severity}
	info, err := parsePPK(text)
	if err != nil {
		f.sev = SeverityLow
		f.meta = map[string]string{"parsed": "false"}
		return f, true
	}
	f.meta = keyMeta(info)
	f.keyFP = info.KeyFingerprint
	if info.Encrypted {
		f.sev = f.sev.lower(2)
	}
	return f, true
}

func isHex(c byte) bool { return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// decodeUserPass decodes base64 "user:password" (Docker auth, npm _auth).
func decodeUserPass(b []byte) (user, pass []byte, ok bool) {
	s := strings.TrimRight(string(b), "=")
	dec, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil || !utf8.Valid(dec) {
		return nil, nil, false
	}
	i := bytes.IndexByte(dec, ':')
	if i <= 0 || i == len(dec)-1 {
		return nil, nil, false
	}
	for _, c := range dec {
		if c < 0x20 || c == 0x7f {
			return nil, nil, false
		}
	}
	return dec[:i], dec[i+1:], true
}

// shannon is the Shannon entropy of b in bits per byte.
func shannon(b []byte) float64 {
	if len(b) == 0 {
		return 0
	}
	var counts [256]int
	for _, c := range b {
		counts[c]++
	}
	n := float64(len(b))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// placeholderMarkers are substrings of values that are templates, format
// strings or documentation placeholders rather than secrets.
var placeholderMarkers = []string{
	"${", "{{", "}}", "$(", "%s", "%v", "%d", "%(", "<", ">", "xxxx", "****", "....", "####",
	"your_", "your-", "yourpass", "yoursecret", "placeholder", "changeme", "change_me", "redacted",
	"replace_me", "replaceme", "dummy", "insert_", "todo", "fixme", "enter_", "here>",
}

func isPlaceholder(b []byte) bool {
	if len(b) >= 6 && distinct(b) < 4 {
		return true
	}
	l := strings.ToLower(string(b))
	for _, m := range placeholderMarkers {
		if strings.Contains(l, m) {
			return true
		}
	}
	// $VAR, ${VAR}, %VAR%: references to the environment.
	if l[0] == '$' && len(l) > 1 && (l[1] == '_' || l[1] == '{' || l[1] >= 'a' && l[1] <= 'z') {
		return true
	}
	if len(l) > 2 && l[0] == '%' && l[len(l)-1] == '%' {
		return true
	}
	return false
}

func distinct(b []byte) int {
	var seen [256]bool
	n := 0
	for _, c := range b {
		if !seen[c] {
			seen[c] = true
			n++
		}
	}
	return n
}

// notPasswords are values of password fields that are words, not secrets.
var notPasswords = map[string]bool{
	"password": true, "passwd": true, "secret": true, "null": true, "none": true, "true": true,
	"false": true, "empty": true, "required": true, "optional": true, "string": true, "undefined": true,
	"nil": true, "hidden": true, "notset": true, "unknown": true, "default": true, "pass": true,
	"example": true, "test": true, "prompt": true, "ask": true, "yes": true, "no": true,
}

// passwordQuality filters password-like values: a value is text (see
// isTextValue) and not a placeholder. strict (for generic key=value rules)
// also wants two character classes and rejects code references and paths;
// lax is for command lines with strong context.
func passwordQuality(b []byte, strict bool) bool {
	if len(b) < 3 || !isTextValue(b) || isPlaceholder(b) || notPasswords[strings.ToLower(string(b))] {
		return false
	}
	if !strict {
		return true
	}
	if bytes.ContainsAny(b, "()[]") || b[0] == '/' || bytes.HasPrefix(b, []byte("~/")) || bytes.HasPrefix(b, []byte("./")) {
		return false
	}
	if isIdentifierChain(b) {
		return false
	}
	var lower, upper, digit, sym int
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			lower = 1
		case c >= 'A' && c <= 'Z':
			upper = 1
		case c >= '0' && c <= '9':
			digit = 1
		case c == '_' || c == '-' || c == '.':
		default:
			sym = 1
		}
	}
	return lower+upper+digit+sym >= 2
}

// isTextValue reports whether a value is text: valid UTF-8 without
// control bytes other than tab. A value that runs into a NUL, a length
// byte or other binary data is a string table or code, not a setting (the
// built-in rules' regexps already end a value at a control byte; this
// holds for user rules with a password check too).
func isTextValue(b []byte) bool {
	for _, c := range b {
		if c < 0x20 && c != '\t' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

// isIdentifierChain reports values like self.password or config.db.pass.
func isIdentifierChain(b []byte) bool {
	parts := bytes.Split(b, []byte("."))
	if len(parts) < 2 {
		return false
	}
	for _, p := range parts {
		if len(p) == 0 {
			return false
		}
		for i, c := range p {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || i > 0 && c >= '0' && c <= '9') {
				return false
			}
		}
	}
	return true
}

// isExample reports documentation examples (AKIAIOSFODNN7EXAMPLE, hosts like
// example.com): they are reported, at low severity.
func isExample(secret []byte, meta map[string]string) bool {
	if bytes.Contains(bytes.ToLower(secret), []byte("example")) {
		return true
	}
	for _, v := range meta {
		if strings.Contains(strings.ToLower(v), "example") {
			return true
		}
	}
	return false
}

// printable returns s with control and non-ASCII bytes replaced, bounded.
func printable(b []byte) string {
	if len(b) > 128 {
		b = b[:128]
	}
	out := make([]byte, len(b))
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			c = '?'
		}
		out[i] = c
	}
	return string(out)
}
