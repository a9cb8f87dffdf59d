package detectors

// The word lists that tell a template, a format string, a reference or a
// documentation placeholder from a secret: the data behind isPlaceholder
// and passwordQuality (see checks.go for how they are used, docs/rules.md
// for what the generic rules ignore and why). Every entry is lower case;
// values are compared after lower-casing.

// placeholderMarkers are substrings of values that are templates, format
// strings or documentation placeholders, for every rule: a token with one
// of these in it is not a secret.
var placeholderMarkers = []string{
	// templates and variable references: ${X}, {{ .X }}, $(cmd), #{x} (Ruby), <%= x %> (ERB)
	"${", "{{", "}}", "$(", "#{", "<", ">",
	// printf directives that no secret holds by chance (more in formatVerbs)
	"%s", "%v", "%d", "%(",
	// runs that stand in for a value
	"xxxx", "****", "...", "…", "####",
	// documentation placeholders
	"your_", "your-", "yourpass", "yoursecret", "placeholder", "changeme", "change_me", "redacted",
	"replace_me", "replaceme", "dummy", "insert_", "todo", "fixme", "enter_", "here>",
}

// notPasswords are whole values of password-like fields that are words,
// code literals or prompts, not secrets.
var notPasswords = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "secret": true, "null": true, "none": true, "true": true,
	"false": true, "empty": true, "required": true, "optional": true, "string": true, "undefined": true,
	"nil": true, "hidden": true, "notset": true, "unknown": true, "default": true, "pass": true,
	"example": true, "sample": true, "test": true, "prompt": true, "ask": true, "yes": true, "no": true,
	"filtered": true, "masked": true, "omitted": true, "removed": true, "censored": true, "snip": true,
	"opensesame": true, // RFC 7617's Aladdin:open sesame
}

// fillerWords are the words documentation placeholders are made of
// ("your_api_key_here", "secret-password", "foo:bar"): a value with no
// digit whose every word is one of these is a placeholder.
var fillerWords = map[string]bool{
	"password": true, "passwd": true, "pass": true, "pwd": true, "passphrase": true, "secret": true,
	"secrets": true, "key": true, "token": true, "api": true, "apikey": true, "access": true, "auth": true,
	"client": true, "private": true, "your": true, "my": true, "our": true, "the": true, "a": true, "an": true,
	"here": true, "goes": true, "example": true, "sample": true, "dummy": true, "fake": true, "mock": true,
	"placeholder": true, "changeme": true, "change": true, "this": true, "me": true, "default": true,
	"value": true, "put": true, "insert": true, "enter": true, "replace": true, "with": true, "some": true,
	"foo": true, "bar": true, "baz": true, "qux": true, "quux": true, "test": true, "testing": true,
	"new": true, "old": true, "current": true, "confirm": true, "db": true, "database": true,
}

// credentialWords are the words of names that hold a secret: a value
// that is such a name (newPassword, client_secret, apiKeyFromSettings) is
// a reference to a secret kept elsewhere.
var credentialWords = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "pass": true, "passphrase": true, "secret": true,
	"key": true, "apikey": true, "token": true, "credential": true, "credentials": true,
}

// formatVerbs are the printf conversions that make "%…X" (flags, width and
// precision between) a format directive: %s, %-10s, %5d, %q, %+v, %1$s.
// Only the common ones: a random password holds "%c" or "%x" often enough
// (one in twenty with a "%") that taking every verb would lose secrets.
const formatVerbs = "sdvq"

// codeClosers end an argument or an element in code: an unquoted bare
// name followed by one of these is a reference, not a value
// ("password: kEnumerableProperty,", "open(name, pwd=None)", "Password: password16,").
// (Not ';': a shell line may end a real value with one.)
const codeClosers = ",)]}"

// documentationValues are secrets printed in specifications and
// reference documentation, copied into every library that implements or
// tests them: they are reported as examples (low severity), like values
// that say "example".
var documentationValues = map[string]bool{
	"2YotnFZFEjr1zCsicMWpAA":       true, // RFC 6749 access token
	"tGzv3JOkF0XG5Qx2TlKWIA":       true, // RFC 6749 refresh token
	"SplxlOBeZQQYbYS6WxSbIA":       true, // RFC 6749 authorization code
	"gX1fBat3bV":                   true, // RFC 6749 client secret (s6BhdRkqt3:gX1fBat3bV)
	"czZCaGRSa3F0MzpnWDFmQmF0M2JW": true, // the same, base64 in its Basic header
	"mF_9.B5f-4.1JqM":              true, // RFC 6750 bearer token
	"geheim$parole":                true, // Python's urllib documentation
}
