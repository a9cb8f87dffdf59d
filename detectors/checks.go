package detectors

import (
	"bytes"
	"encoding/base64"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode"
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
	f := found{s: s, e: e, secret: w[s:e], sev: r.Severity, ms: m[0], me: m[1]}
	rx := r.regexps()
	for _, mg := range rx.meta {
		if a, b := m[2*mg[0]], m[2*mg[0]+1]; a >= 0 && b > a {
			if f.meta == nil {
				f.meta = map[string]string{}
			}
			f.meta[rx.metaKeys[mg[1]]] = metaValue(rx.metaKeys[mg[1]], w[a:b])
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
	case checkPassword, checkPasswordLax:
		if !assignmentSyntax(r, rx, w, m, s) {
			return found{}, false
		}
		// In text kept inside a JSON, C or SQL string (a package's readme
		// in yarn's cache metadata, a config file in a JSON document,
		// MariaDB's help text in fill_help_tables.sql), a line break is
		// the two bytes \n and a quote is \' or \": the value ends there,
		// as at a real line break or quote, and none on the line is no
		// value.
		// The byte after the value counts: the value class stops at a
		// quote, leaving its backslash in the value.
		if i := escapedEnd(w[f.s:min(len(w), f.e+1)]); i >= 0 && i < len(f.secret) {
			if i == 0 {
				return found{}, false
			}
			f.e = f.s + i
			f.secret = w[f.s:f.e]
			e = f.e
		}
		// A lax rule trusts its syntax (a URL's userinfo, a .netrc
		// entry); where the syntax lets the login be absent and it is,
		// what is left ("machine learning-based password strength") is
		// as weak as a key=value pair, and is checked as strictly.
		strict := r.check == checkPassword || rx.userGroup > 0 && m[2*rx.userGroup] < 0
		if !passwordQuality(f.secret, strict, valueContextOf(rx, w, m, s, e)) {
			return found{}, false
		}
	case checkDockerAuth:
		user, pass, ok := decodeUserPass(f.secret)
		if !ok || !passwordQuality(pass, false, valueContext{}) {
			return found{}, false
		}
		if f.meta == nil {
			f.meta = map[string]string{}
		}
		f.meta["user"] = metaValue("user", []byte(user))
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

// escapedEnd returns the offset of the first escaped line break or quote
// in b (a backslash and n, r, ' or "; an escaped backslash is skipped),
// or -1.
func escapedEnd(b []byte) int {
	return escapeOf(b, "nr'\"")
}

// escapedLineBreak returns the offset of the first escaped line break in
// b (a backslash and n or r), or -1.
func escapedLineBreak(b []byte) int {
	return escapeOf(b, "nr")
}

// escapeOf returns the offset of the first backslash escape in b of one
// of the bytes in which, or -1. Other escapes (\\ included) are skipped
// whole.
func escapeOf(b []byte, which string) int {
	for i := 0; i+1 < len(b); i++ {
		if b[i] != '\\' {
			continue
		}
		if strings.IndexByte(which, b[i+1]) >= 0 {
			return i
		}
		i++ // the escaped byte, a backslash included
	}
	return -1
}

// assignmentSyntax rejects matches of the password rules whose syntax
// only looks like an assignment (m is the match in w, s the value's
// start):
//   - a key that is the last name of a path is a file, not a setting
//     ("/etc/passwd: mysql:x:100:101:MariaDB Server" in a maintainer
//     script's comment);
//   - a key followed by :: is a scope, not a setting ("Data::Password::
//     zxcvbn" in a package description), for the key=value rules;
//   - a command line or key that runs across an escaped line break is two
//     lines of text kept in a string (a debconf template's "…/var/lib/mysql
//     …\n\nJos … mariadb-server -paketti"), not one command.
func assignmentSyntax(r *compiledRule, rx *ruleRegexps, w []byte, m []int, s int) bool {
	if kg := rx.keyGroup; kg > 0 && m[2*kg] > 0 && w[m[2*kg]-1] == '/' {
		return false
	}
	if r.check == checkPassword && s >= 2 && w[s-1] == ':' && w[s] == ':' {
		return false
	}
	if s >= 1 && s < len(w) && w[s-1] == '=' && w[s] == '=' {
		return false // a comparison: t.password===this.options.password
	}
	span := w[m[0]:s]
	if len(span) >= 2 && span[0] == '\\' {
		span = span[2:] // the escape a regexp's left boundary may take
	}
	return escapedLineBreak(span) < 0
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

func isPlaceholder(b []byte) bool {
	if len(b) >= 6 && distinct(b) < 4 || len(b) >= 3 && distinct(b) == 1 {
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

// valueContext is what a generic rule's match says around its value: the
// key the value is assigned to (the regexp's "key" group, if it has one),
// whether the value is quoted, and the bytes after it.
type valueContext struct {
	key    []byte
	quoted bool
	after  []byte
}

// valueContextOf builds the context of the value w[s:e] of match m.
func valueContextOf(rx *ruleRegexps, w []byte, m []int, s, e int) valueContext {
	var vc valueContext
	if kg := rx.keyGroup; kg > 0 && m[2*kg] >= 0 {
		vc.key = w[m[2*kg]:m[2*kg+1]]
	}
	vc.quoted = s > 0 && (w[s-1] == '"' || w[s-1] == '\'')
	vc.after = w[e:min(len(w), e+1+utf8.UTFMax)]
	return vc
}

// passwordQuality filters the values of the generic rules (password=,
// secret=, api_key=, URL userinfo, .netrc, PWD=, command lines): a value
// is text (no control byte, valid UTF-8), and not code or a template:
// not a placeholder, format string or variable reference, not a path,
// not a bare name that refers to something (a code literal, the key's own
// name, a variable passed on). strict (for the key=value rules, whose key
// alone says little) also wants two character classes and rejects
// expressions, identifier chains and prose; lax is for contexts that are
// credentials by their syntax (URL userinfo, .netrc, command lines).
func passwordQuality(b []byte, strict bool, vc valueContext) bool {
	if len(b) < 3 || !isTextValue(b) || isPlaceholder(b) || isTemplate(b) || isPath(b) {
		return false
	}
	core := bytes.TrimRight(b, codeClosers)
	if len(core) == 0 {
		return false
	}
	if notPasswords[strings.ToLower(string(core))] || fillerOnly(core) || sameName(core, vc.key) {
		return false
	}
	if codeName(core) && !vc.quoted && (len(core) < len(b) || len(vc.after) > 0 && strings.IndexByte(codeClosers, vc.after[0]) >= 0) {
		return false // a name passed on in code: f(pwd=None), {Password: password16,}
	}
	if codeName(core) && !vc.quoted && len(core) == len(b) && startsOperator(vc.after) {
		return false // a name in an expression: password = proxyUser + ":" + proxyPass;
	}
	if operand := bytes.TrimRight(core, "|&?"); len(operand) < len(core) && !vc.quoted && (codeName(operand) || isIdentifierChain(operand)) {
		return false // the same, minified: e.password=r.password||"",
	}
	if namesKey(core, vc.key) {
		return false // password: newPassword, secret: clientSecret
	}
	if !strict {
		return true
	}
	if bytes.ContainsAny(b, "()[]") || isIdentifierChain(b) {
		return false
	}
	if isProse(b, vc.after) {
		return false // ":param password: Unicode password.", "passwd: contraseña actualizada"
	}
	if isFieldList(b) {
		return false // a layout, not a value: "name:password:UID:GID:GECOS"
	}
	if isRegexp(b) {
		return false // a pattern: sed -e '/^passwd:\s.*#/ ...'
	}
	if encodesProse(b) {
		return false // documentation: password: 'bm90IG15IHJlYWwgcGFzc3dvcmQ=' ("not my real password")
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
	if lower+digit == 0 {
		return false // a NAME, not a value: SECRET_KEY, BASEDN:FLAGS:
	}
	return lower+upper+digit+sym >= 2
}

// startsOperator reports whether the bytes after a value are a space and
// a binary operator of code (" + ", " || ", " && ", " ? ", " . "): the
// value was a name in an expression. A setting's value ends its line or is
// followed by a comment.
func startsOperator(after []byte) bool {
	if len(after) < 3 || after[0] != ' ' {
		return false
	}
	switch string(after[1:3]) {
	case "+ ", "? ", ". ", "||", "&&", "..", "?:", "??":
		return true
	}
	return false
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

// isTemplate reports format strings and references that isPlaceholder's
// markers do not cover: printf directives (%-10s, %q, %1$s), brace
// templates ({}, {0}, {password}, {self.password!r}), autoconf
// substitutions (@DB_PASSWORD@) and shell command substitution (`cmd`).
func isTemplate(b []byte) bool {
	if b[0] == '`' {
		return true
	}
	if len(b) > 2 && b[0] == '@' && b[len(b)-1] == '@' && isBareName(b[1:len(b)-1]) {
		return true
	}
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '%':
			if printfDirective(b[i+1:]) {
				return true
			}
		case '{':
			if j := bytes.IndexByte(b[i+1:], '}'); j >= 0 && braceField(b[i+1:i+1+j]) {
				return true
			}
		}
	}
	return false
}

// printfDirective reports whether b (what follows a '%') is the rest of a
// printf directive: flags, an argument index, width and precision, then
// one of formatVerbs.
func printfDirective(b []byte) bool {
	i := 0
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	if i > 0 && i < len(b) && b[i] == '$' { // %1$s
		i++
	} else {
		i = 0
	}
	for i < len(b) && strings.IndexByte("-+ #0", b[i]) >= 0 {
		i++
	}
	for i < len(b) && (b[i] >= '0' && b[i] <= '9' || b[i] == '.') {
		i++
	}
	return i < len(b) && strings.IndexByte(formatVerbs, b[i]) >= 0
}

// braceField reports whether f, the text between '{' and '}', is a
// replacement field of str.format, an f-string, C# or a URI template:
// empty, an index, or a name (dotted, no digits), each with an optional
// conversion (!r) and format spec (:>10).
func braceField(f []byte) bool {
	if i := bytes.IndexAny(f, "!:"); i >= 0 {
		f = f[:i]
	}
	if len(f) == 0 {
		return true
	}
	digits := true
	for _, c := range f {
		if c < '0' || c > '9' {
			digits = false
		}
	}
	if digits {
		return true
	}
	for _, c := range f {
		if !(isLetter(c) || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// isPath reports values that are file system paths.
func isPath(b []byte) bool {
	return b[0] == '/' || bytes.HasPrefix(b, []byte("~/")) || bytes.HasPrefix(b, []byte("./")) || bytes.HasPrefix(b, []byte("../"))
}

// fillerOnly reports values made of fillerWords and separators, with no
// digit: "your_api_key_here", "secret-password", "secret%3Dpassword".
func fillerOnly(b []byte) bool {
	l := strings.ToLower(string(b))
	if u, err := url.QueryUnescape(l); err == nil {
		l = u
	}
	words := 0
	for w := range strings.FieldsFuncSeq(l, func(r rune) bool { return r < 'a' || r > 'z' }) {
		if !fillerWords[w] {
			return false
		}
		words++
	}
	return words > 0 && !strings.ContainsAny(l, "0123456789")
}

// normName folds a key or value for comparison: lower case, without the
// separators that spell one name several ways (db_password, DB-PASSWORD,
// db.password, dbPassword).
func normName(b []byte) string {
	out := make([]byte, 0, len(b))
	for _, c := range b {
		switch {
		case c == '_' || c == '-' || c == '.':
		case c >= 'A' && c <= 'Z':
			out = append(out, c+'a'-'A')
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// sameName reports a value that is its key's name: password=password,
// db_password: db_password, secret_key=SECRET_KEY.
func sameName(v, key []byte) bool {
	return len(key) > 0 && normName(v) == normName(key)
}

// namesKey reports a value that is a name (letters and '_' only) with a
// credential word in it, assigned to a key: a variable that holds the
// secret elsewhere (password: newPassword, client_secret=clientSecret,
// api_key: apiKeyFromSettings).
func namesKey(v, key []byte) bool {
	if len(key) == 0 || !isBareName(v) {
		return false
	}
	for _, w := range nameWords(v) {
		if credentialWords[w] {
			return true
		}
	}
	return false
}

// nameWords splits a name into its lower-cased words at '_' and at
// lower-to-upper case changes: apiKeyFromSettings is api, key, from,
// settings.
func nameWords(b []byte) []string {
	var words []string
	start := 0
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '_' || i > start && b[i] >= 'A' && b[i] <= 'Z' && b[i-1] >= 'a' && b[i-1] <= 'z' {
			if i > start {
				words = append(words, strings.ToLower(string(b[start:i])))
			}
			start = i
			if i < len(b) && b[i] == '_' {
				start++
			}
		}
	}
	return words
}

// isBareName reports a name without digits: letters and '_'.
func isBareName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isLetter(c) && c != '_' {
			return false
		}
	}
	return true
}

// codeName reports a name as code spells a variable: letters and '_', or
// with digits too if a credential word is in it (password16, pwd2); a
// random password is an identifier too ("Xk8pq2vL9"), but rarely one of
// these.
func codeName(b []byte) bool {
	if isBareName(b) {
		return true
	}
	if len(b) == 0 || b[0] >= '0' && b[0] <= '9' {
		return false
	}
	for _, c := range b {
		if !isLetter(c) && c != '_' && !(c >= '0' && c <= '9') {
			return false
		}
	}
	l := strings.ToLower(string(b))
	for w := range credentialWords {
		if strings.Contains(l, w) {
			return true
		}
	}
	return false
}

// isProse reports a value that is a word followed by another word: a
// sentence or a message ("Results from getpw*()", "contraseña
// actualizada"), not a setting, whose value would end the line or be
// quoted.
func isProse(b, after []byte) bool {
	if len(after) < 2 || after[0] != ' ' {
		return false
	}
	if r, _ := utf8.DecodeRune(after[1:]); !unicode.IsLetter(r) {
		return false
	}
	for _, r := range string(b) {
		if !unicode.IsLetter(r) {
			return false
		}
	}
	return true
}

// isFieldList reports a value made of two or more digit-free names
// joined by ':', the layout of a colon-separated record in documentation
// ("GID:user_list", "BASEDN:FLAGS:").
func isFieldList(b []byte) bool {
	parts := 0
	for p := range bytes.SplitSeq(bytes.TrimSuffix(b, []byte(":")), []byte(":")) {
		if !isBareName(p) {
			return false
		}
		parts++
	}
	return parts >= 2
}

// isRegexp reports a value that is a regular expression: one with a
// character-class escape (\s, \d, \w and their negations, \b) or a
// wildcard run (.* .+). Shell scripts and configuration tools match
// "passwd:" lines with such patterns (a package's maintainer scripts edit
// nsswitch.conf that way); a password with a backslash before one of
// those letters is rare enough to lose.
func isRegexp(b []byte) bool {
	for i := 0; i+1 < len(b); i++ {
		switch {
		case b[i] == '\\' && strings.IndexByte("sSdDwWb", b[i+1]) >= 0:
			return true
		case b[i] == '.' && (b[i+1] == '*' || b[i+1] == '+'):
			return true
		}
	}
	return false
}

// encodesProse reports a value that is base64 of a phrase: printable
// ASCII of three or more words, as documentation writes an example of an
// encoded password ("not my real password"). An encoded secret decodes
// to random bytes or to one token, never to a sentence with spaces.
func encodesProse(b []byte) bool {
	if len(b) < 16 || len(b)%4 != 0 {
		return false
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		d, err := enc.DecodeString(string(b))
		if err != nil {
			continue
		}
		spaces := 0
		for _, c := range d {
			switch {
			case c == ' ':
				spaces++
			case c < 0x20 || c > 0x7e:
				return false
			}
		}
		return spaces >= 2 && !bytes.Contains(d, []byte("  "))
	}
	return false
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

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
// example.com, the values of documentationValues): they are reported, at
// low severity.
func isExample(secret []byte, meta map[string]string) bool {
	if documentationValues[string(secret)] || bytes.Contains(bytes.ToLower(secret), []byte("example")) {
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
// metaValue is the metadata value of a regex group (a URL's user name,
// an account) as a report may show it. A user name can be a secret
// itself: GitHub documents https://TOKEN:x-oauth-basic@github.com/, and
// https://TOKEN@host is common. One that looks like a token (20 bytes or
// more, letters and digits, high entropy) is redacted as previews are,
// keeping a short prefix up to its first "_" or "-" (ghp_, glpat-); the
// token's own rule reports it where it has one.
func metaValue(key string, b []byte) string {
	if (key == "user" || key == "account") && looksLikeToken(b) {
		pfx := ""
		if i := bytes.IndexAny(b, "_-"); i > 0 && i < 8 {
			pfx = string(b[:i+1])
		}
		return printable([]byte(pfx)) + "…(" + strconv.Itoa(len(b)) + " chars)"
	}
	return printable(b)
}

// looksLikeToken reports whether b is long, mixes letters and digits and
// has the entropy of a random string rather than of a name.
func looksLikeToken(b []byte) bool {
	if len(b) < 20 {
		return false
	}
	var letter, digit bool
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			letter = true
		}
	}
	return letter && digit && shannon(b) >= 3.5
}

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
