package rollback

import (
	"errors"
	"strings"
)

// DebVersion is a Debian package version split per deb-version(7):
// [epoch:]upstream_version[-debian_revision].
type DebVersion struct {
	Epoch    string // digits without leading zeros ("" means 0)
	Upstream string
	Revision string
}

// maxDebVersionLen bounds a version string; dpkg has no hard limit but real
// versions are short, and comparison time is linear in the length.
const maxDebVersionLen = 256

var errBadDebVersion = errors.New("invalid Debian version")

// ParseDebVersion splits a version the way dpkg's parseversion does: the
// epoch is everything before the first colon and must be digits, the
// revision is everything after the last hyphen, and the upstream version
// must start with a digit (dpkg warns otherwise; we refuse, since comparing
// such versions would mean little).
func ParseDebVersion(s string) (DebVersion, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxDebVersionLen {
		return DebVersion{}, errBadDebVersion
	}
	var v DebVersion
	if i := strings.IndexByte(s, ':'); i >= 0 {
		ep := s[:i]
		if ep == "" || !allDigits(ep) {
			return DebVersion{}, errBadDebVersion
		}
		v.Epoch = strings.TrimLeft(ep, "0")
		s = s[i+1:]
	}
	if i := strings.LastIndexByte(s, '-'); i >= 0 {
		v.Revision = s[i+1:]
		s = s[:i]
		if v.Revision == "" {
			return DebVersion{}, errBadDebVersion
		}
	}
	v.Upstream = s
	if s == "" || !isDigit(s[0]) {
		return DebVersion{}, errBadDebVersion
	}
	for _, part := range []string{v.Upstream, v.Revision} {
		for i := 0; i < len(part); i++ {
			c := part[i]
			if !(isDigit(c) || isAlpha(c) || strings.IndexByte(".+-~:", c) >= 0) {
				return DebVersion{}, errBadDebVersion
			}
		}
	}
	return v, nil
}

// String rebuilds the canonical form (epoch 0 omitted unless the upstream
// version holds a colon, which only an epoch makes unambiguous).
func (v DebVersion) String() string {
	s := v.Upstream
	switch {
	case v.Epoch != "":
		s = v.Epoch + ":" + s
	case strings.Contains(s, ":"):
		s = "0:" + s
	}
	if v.Revision != "" {
		s += "-" + v.Revision
	}
	return s
}

// CompareDebVersions compares two version strings like
// `dpkg --compare-versions`: -1 when a < b, 0 when equal, +1 when a > b.
// It fails when either string is not a valid version.
func CompareDebVersions(a, b string) (int, error) {
	va, err := ParseDebVersion(a)
	if err != nil {
		return 0, err
	}
	vb, err := ParseDebVersion(b)
	if err != nil {
		return 0, err
	}
	return va.Compare(vb), nil
}

// Compare orders two parsed versions: epoch numerically (as digit strings,
// so that huge epochs cannot overflow), then upstream and revision with
// dpkg's verrevcmp.
func (v DebVersion) Compare(o DebVersion) int {
	if c := compareDigits(v.Epoch, o.Epoch); c != 0 {
		return c
	}
	if c := verrevcmp(v.Upstream, o.Upstream); c != 0 {
		return c
	}
	return verrevcmp(v.Revision, o.Revision)
}

// compareDigits compares non-negative decimal numbers without leading zeros.
func compareDigits(a, b string) int {
	if len(a) != len(b) {
		return sign(len(a) - len(b))
	}
	return strings.Compare(a, b)
}

// order is dpkg's character weight for the non-digit parts: '~' sorts
// before everything, even the end of the string; letters sort before
// other characters.
func order(s string, i int) int {
	if i >= len(s) {
		return 0
	}
	c := s[i]
	switch {
	case isDigit(c):
		return 0
	case isAlpha(c):
		return int(c)
	case c == '~':
		return -1
	}
	return int(c) + 256
}

// verrevcmp is dpkg's lib/dpkg/version.c verrevcmp: alternate non-digit
// runs (compared by order) and digit runs (compared numerically).
func verrevcmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		for (i < len(a) && !isDigit(a[i])) || (j < len(b) && !isDigit(b[j])) {
			ac, bc := order(a, i), order(b, j)
			if ac != bc {
				return sign(ac - bc)
			}
			i++
			j++
		}
		for i < len(a) && a[i] == '0' {
			i++
		}
		for j < len(b) && b[j] == '0' {
			j++
		}
		firstDiff := 0
		for i < len(a) && isDigit(a[i]) && j < len(b) && isDigit(b[j]) {
			if firstDiff == 0 {
				firstDiff = int(a[i]) - int(b[j])
			}
			i++
			j++
		}
		if i < len(a) && isDigit(a[i]) {
			return 1
		}
		if j < len(b) && isDigit(b[j]) {
			return -1
		}
		if firstDiff != 0 {
			return sign(firstDiff)
		}
	}
	return 0
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
