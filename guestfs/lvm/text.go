package lvm

import (
	"fmt"
	"strconv"
	"strings"
)

// LVM2 keeps its metadata as text in its own configuration syntax:
//
//	vg0 {
//		id = "..."
//		seqno = 3
//		physical_volumes { pv0 { ... } }
//		logical_volumes { root { segment1 { stripes = ["pv0", 0] } } }
//	}
//
// Values are integers, quoted strings or [lists] of them; '#' starts a
// comment. This parser builds a small tree, with bounds on depth and items.

const (
	maxTextDepth = 32
	maxTextItems = 1 << 20
)

// section is one { ... } block: its values and its subsections, in order.
type section struct {
	name   string
	values map[string]value
	subs   []*section
}

// value is an integer, a string or a list of them.
type value struct {
	isStr bool
	str   string
	num   int64
	list  []value
	isArr bool
}

func (s *section) sub(name string) *section {
	for _, c := range s.subs {
		if c.name == name {
			return c
		}
	}
	return nil
}

func (s *section) str(key string) (string, bool) {
	v, ok := s.values[key]
	if !ok || !v.isStr {
		return "", false
	}
	return v.str, true
}

func (s *section) num(key string) (int64, bool) {
	v, ok := s.values[key]
	if !ok || v.isStr || v.isArr {
		return 0, false
	}
	return v.num, true
}

func (s *section) list(key string) ([]value, bool) {
	v, ok := s.values[key]
	if !ok || !v.isArr {
		return nil, false
	}
	return v.list, true
}

// strings returns a list of strings (status flags).
func (s *section) strings(key string) []string {
	l, _ := s.list(key)
	var out []string
	for _, v := range l {
		if v.isStr {
			out = append(out, v.str)
		}
	}
	return out
}

type parser struct {
	s     string
	pos   int
	items int
}

// parseText parses metadata text into its top-level section (name "").
func parseText(s string) (*section, error) {
	p := &parser{s: s}
	top, err := p.body(0, "")
	if err != nil {
		return nil, err
	}
	p.space()
	if p.pos < len(p.s) {
		return nil, p.errorf("unexpected %q", p.s[p.pos])
	}
	return top, nil
}

func (p *parser) errorf(format string, args ...any) error {
	return fmt.Errorf("metadata text at byte %d: %s", p.pos, fmt.Sprintf(format, args...))
}

// space skips blanks and comments.
func (p *parser) space() {
	for p.pos < len(p.s) {
		switch c := p.s[p.pos]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.pos++
		case c == '#':
			for p.pos < len(p.s) && p.s[p.pos] != '\n' {
				p.pos++
			}
		default:
			return
		}
	}
}

func isIdent(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.+-", c) >= 0
}

func (p *parser) ident() string {
	start := p.pos
	for p.pos < len(p.s) && isIdent(p.s[p.pos]) {
		p.pos++
	}
	return p.s[start:p.pos]
}

// body parses "name = value" and "name { ... }" items until '}' (or the
// end of the text at depth 0).
func (p *parser) body(depth int, name string) (*section, error) {
	if depth > maxTextDepth {
		return nil, p.errorf("sections nested deeper than %d", maxTextDepth)
	}
	sec := &section{name: name, values: map[string]value{}}
	for {
		p.space()
		if p.pos >= len(p.s) {
			if depth > 0 {
				return nil, p.errorf("section %q not closed", name)
			}
			return sec, nil
		}
		if p.s[p.pos] == '}' {
			if depth == 0 {
				return nil, p.errorf("unexpected '}'")
			}
			p.pos++
			return sec, nil
		}
		if p.items++; p.items > maxTextItems {
			return nil, p.errorf("more than %d items", maxTextItems)
		}
		key := p.ident()
		if key == "" {
			return nil, p.errorf("unexpected %q", p.s[p.pos])
		}
		p.space()
		if p.pos >= len(p.s) {
			return nil, p.errorf("%q without a value", key)
		}
		switch p.s[p.pos] {
		case '{':
			p.pos++
			sub, err := p.body(depth+1, key)
			if err != nil {
				return nil, err
			}
			sec.subs = append(sec.subs, sub)
		case '=':
			p.pos++
			v, err := p.value(true)
			if err != nil {
				return nil, err
			}
			sec.values[key] = v
		default:
			return nil, p.errorf("unexpected %q after %q", p.s[p.pos], key)
		}
	}
}

func (p *parser) value(allowList bool) (value, error) {
	p.space()
	if p.pos >= len(p.s) {
		return value{}, p.errorf("missing value")
	}
	switch c := p.s[p.pos]; {
	case c == '"':
		p.pos++
		var b strings.Builder
		for p.pos < len(p.s) && p.s[p.pos] != '"' {
			if p.s[p.pos] == '\\' && p.pos+1 < len(p.s) {
				p.pos++
			}
			b.WriteByte(p.s[p.pos])
			p.pos++
		}
		if p.pos >= len(p.s) {
			return value{}, p.errorf("string not closed")
		}
		p.pos++
		return value{isStr: true, str: b.String()}, nil
	case c == '[' && allowList:
		p.pos++
		v := value{isArr: true}
		for {
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ']' {
				p.pos++
				return v, nil
			}
			if p.items++; p.items > maxTextItems {
				return value{}, p.errorf("more than %d items", maxTextItems)
			}
			e, err := p.value(false)
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, e)
			p.space()
			if p.pos < len(p.s) && p.s[p.pos] == ',' {
				p.pos++
			}
		}
	default:
		tok := p.ident()
		if tok == "" {
			return value{}, p.errorf("unexpected %q", c)
		}
		n, err := strconv.ParseInt(tok, 10, 64)
		if err != nil {
			// Floats and bare words are kept as strings.
			return value{isStr: true, str: tok}, nil
		}
		return value{num: n}, nil
	}
}
