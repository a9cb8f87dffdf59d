package structural

import (
	"bytes"
	"unicode/utf8"
)

// maxUnescapePasses bounds how many layers of escaping UnescapeArmored undoes
// (a key in a JSON string inside another JSON string needs two).
const maxUnescapePasses = 4

// UnescapeArmored undoes JSON and C-like string escaping (\n, \r, \t, \/,
// \", \\, \uXXXX) so that a key stored inside a JSON or YAML string
// fingerprints like the same key in a .pem file. Nested escaping is undone
// too: armoured key text never contains a backslash, so every backslash is
// an escape layer. Input without a backslash is returned as is (same slice);
// otherwise the result is a new slice and b is not modified. Unknown escapes
// are kept verbatim.
func UnescapeArmored(b []byte) []byte {
	for range maxUnescapePasses {
		if bytes.IndexByte(b, '\\') < 0 {
			return b
		}
		next := unescapeOnce(b)
		if bytes.Equal(next, b) {
			return next
		}
		b = next
	}
	return b
}

func unescapeOnce(b []byte) []byte {
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c != '\\' || i+1 >= len(b) {
			out = append(out, c)
			continue
		}
		switch e := b[i+1]; e {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '/', '"', '\\', '\'':
			out = append(out, e)
		case 'u':
			r, ok := hex4(b[i+2:])
			if !ok {
				out = append(out, c)
				continue
			}
			i += 4
			// A surrogate pair encodes one rune outside the BMP.
			if r >= 0xD800 && r < 0xDC00 && i+7 < len(b) && b[i+2] == '\\' && b[i+3] == 'u' {
				if lo, ok := hex4(b[i+4:]); ok && lo >= 0xDC00 && lo < 0xE000 {
					r = 0x10000 + (r-0xD800)<<10 + (lo - 0xDC00)
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			out = append(out, c)
			continue
		}
		i++
	}
	return out
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}
