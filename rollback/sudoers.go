package rollback

import (
	"bytes"
	"strings"
)

const (
	maxSudoLines   = 1 << 14
	maxSudoLineLen = 64 << 10
	maxGroups      = 1 << 16
	maxMembers     = 1 << 16
)

// SudoRule is one logical sudoers line that grants something: a user
// specification ("alice ALL=(ALL) ALL", "%wheel ALL=...") or an alias
// definition (User_Alias ADMINS = alice, ...: membership grants what the
// alias is granted). Defaults lines and include directives are not rules.
type SudoRule struct {
	Line      int    // first physical line, 1-based
	Principal string // first word: user, %group, #uid or alias keyword
	Text      string // normalised: comments dropped, whitespace collapsed
}

// SudoInclude is an @include/#include directive.
type SudoInclude struct {
	Path string
	Dir  bool // @includedir / #includedir
}

// ParseSudoers parses a sudoers file into grant lines and include
// directives. Lines ending in a backslash continue on the next line.
func ParseSudoers(b []byte) (rules []SudoRule, includes []SudoInclude) {
	var logical []byte
	start := 0
	forEachLine(b, func(n int, line []byte) bool {
		if len(logical) == 0 {
			start = n
		}
		if len(logical)+len(line) > maxSudoLineLen {
			logical = logical[:0]
			return true
		}
		if bytes.HasSuffix(line, []byte("\\")) {
			logical = append(logical, line[:len(line)-1]...)
			logical = append(logical, ' ')
			return true
		}
		logical = append(logical, line...)
		r, inc, ok := parseSudoLine(string(logical))
		logical = logical[:0]
		switch {
		case inc != nil:
			includes = append(includes, *inc)
		case ok:
			r.Line = start
			rules = append(rules, r)
		}
		return len(rules)+len(includes) < maxSudoLines
	})
	return rules, includes
}

func parseSudoLine(s string) (SudoRule, *SudoInclude, bool) {
	s = strings.TrimSpace(s)
	for _, d := range []struct {
		kw  string
		dir bool
	}{{"@includedir", true}, {"#includedir", true}, {"@include", false}, {"#include", false}} {
		if strings.HasPrefix(s, d.kw) && len(s) > len(d.kw) && (s[len(d.kw)] == ' ' || s[len(d.kw)] == '\t') {
			arg := strings.Trim(strings.TrimSpace(s[len(d.kw):]), `"`)
			return SudoRule{}, &SudoInclude{Path: arg, Dir: d.dir}, false
		}
	}
	s = stripSudoComment(s)
	if s == "" {
		return SudoRule{}, nil, false
	}
	fields := strings.Fields(s)
	if strings.HasPrefix(fields[0], "Defaults") {
		return SudoRule{}, nil, false
	}
	text := strings.Join(fields, " ")
	// Spacing around '=', ',' and ':' is insignificant.
	for _, sep := range []string{"=", ",", ":"} {
		text = strings.ReplaceAll(text, " "+sep, sep)
		text = strings.ReplaceAll(text, sep+" ", sep)
	}
	return SudoRule{Principal: fields[0], Text: text}, nil, true
}

// stripSudoComment drops a '#' comment. In sudoers '#' followed by digits
// is a uid ("#1000 ALL=..."), not a comment; a backslash escapes it.
func stripSudoComment(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '#':
			if i+1 < len(s) && isDigit(s[i+1]) && (i == 0 || strings.IndexByte(" \t,=(:!", s[i-1]) >= 0) {
				continue
			}
			return strings.TrimSpace(s[:i])
		}
	}
	return s
}

// sudoersDirEntryUsed reports whether sudo reads a file found through
// @includedir: names ending in '~' or containing '.' are ignored.
func sudoersDirEntryUsed(name string) bool {
	return name != "" && !strings.HasSuffix(name, "~") && !strings.Contains(name, ".")
}

// GroupEntry is one /etc/group line.
type GroupEntry struct {
	Name    string
	GID     string
	Members []string
	Line    int
}

// ParseGroup parses /etc/group (name:passwd:gid:members).
func ParseGroup(b []byte) []GroupEntry {
	var out []GroupEntry
	seen := map[string]bool{}
	forEachLine(b, func(n int, line []byte) bool {
		f := bytes.Split(line, []byte(":"))
		if len(f) != 4 || !validAccountName(f[0]) || seen[string(f[0])] {
			return true
		}
		g := GroupEntry{Name: string(f[0]), GID: string(f[2]), Line: n}
		for _, m := range bytes.Split(f[3], []byte(",")) {
			m = bytes.TrimSpace(m)
			if validAccountName(m) && len(g.Members) < maxMembers {
				g.Members = append(g.Members, string(m))
			}
		}
		seen[g.Name] = true
		out = append(out, g)
		return len(out) < maxGroups
	})
	return out
}

// adminGroups are the groups that distributions grant sudo (or su) to.
var adminGroups = []string{"sudo", "wheel", "admin"}
