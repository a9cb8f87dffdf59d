package stores

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Bounds for .vmx/.vmsd files; real ones are a few KiB with a few hundred
// keys.
const (
	maxVMXSize   = 1 << 20
	maxVMXKeys   = 20000
	maxVMXKeyLen = 256
	maxVMXValLen = 64 << 10
)

// VMX is a parsed VMware key = "value" file (.vmx, .vmsd, .vmxf-less
// dictionaries). Keys are matched case-insensitively, as VMware does.
type VMX struct {
	keys []string          // in file order, as written
	vals map[string]string // by lower-cased key; the last assignment wins
}

// Get returns the value of key ("" and false when absent).
func (v *VMX) Get(key string) (string, bool) {
	s, ok := v.vals[strings.ToLower(key)]
	return s, ok
}

// Keys returns the keys in file order (each once, first spelling).
func (v *VMX) Keys() []string { return v.keys }

// ParseVMX parses the VMware dictionary format: one `key = "value"` per
// line, `#` comments, optional `.encoding = "UTF-8"`. Values are quoted;
// VMware escapes a quote or other byte in a value as |22 (hex). Malformed
// lines are errors naming the line.
func ParseVMX(b []byte) (*VMX, error) {
	if len(b) > maxVMXSize {
		return nil, fmt.Errorf("vmx: %d bytes, larger than %d", len(b), maxVMXSize)
	}
	if !utf8.Valid(b) {
		b = bytes.ToValidUTF8(b, []byte("?"))
	}
	v := &VMX{vals: map[string]string{}}
	for n, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(strings.TrimSuffix(line, "\r"))
		if line == "" || strings.HasPrefix(line, "#") || line == "\x00" {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("vmx: line %d: no '='", n+1)
		}
		key = strings.TrimSpace(key)
		val = strings.TrimSpace(val)
		if key == "" || len(key) > maxVMXKeyLen || strings.ContainsAny(key, " \t\"") {
			return nil, fmt.Errorf("vmx: line %d: bad key", n+1)
		}
		if len(val) > maxVMXValLen {
			return nil, fmt.Errorf("vmx: line %d: value longer than %d bytes", n+1, maxVMXValLen)
		}
		if strings.HasPrefix(val, "\"") {
			end := strings.LastIndexByte(val, '"')
			if end == 0 {
				return nil, fmt.Errorf("vmx: line %d: unterminated value", n+1)
			}
			rest := strings.TrimSpace(val[end+1:])
			if rest != "" && !strings.HasPrefix(rest, "#") {
				return nil, fmt.Errorf("vmx: line %d: text after the value", n+1)
			}
			val = unescapeVMX(val[1:end])
		}
		lk := strings.ToLower(key)
		if _, seen := v.vals[lk]; !seen {
			if len(v.keys) >= maxVMXKeys {
				return nil, fmt.Errorf("vmx: more than %d keys", maxVMXKeys)
			}
			v.keys = append(v.keys, key)
		}
		v.vals[lk] = val
	}
	return v, nil
}

// unescapeVMX decodes VMware's |XX escapes (|22 is a quote, |7C a bar).
func unescapeVMX(s string) string {
	if !strings.Contains(s, "|") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '|' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
