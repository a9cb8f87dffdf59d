package rollback

import (
	"bytes"
	"strings"
)

// maxPackages bounds a dpkg status file (a full desktop has ~5000).
const maxPackages = 1 << 17

// DpkgPackage is one installed package of /var/lib/dpkg/status.
type DpkgPackage struct {
	Name    string
	Arch    string
	Version string
	Line    int // line of the stanza's first field
}

// Key identifies a package instance (Multi-Arch packages may be installed
// once per architecture).
func (p DpkgPackage) Key() string {
	if p.Arch == "" || p.Arch == "all" {
		return p.Name
	}
	return p.Name + ":" + p.Arch
}

// ParseDpkgStatus returns the packages whose Status is "... installed":
// RFC 822-like stanzas separated by blank lines, continuation lines start
// with a space or tab. Packages that are only configured-files, half
// installed or unpacked do not count.
func ParseDpkgStatus(b []byte) []DpkgPackage {
	var out []DpkgPackage
	var cur DpkgPackage
	var status string
	inStanza := false
	flush := func() {
		if inStanza && cur.Name != "" && cur.Version != "" && statusInstalled(status) {
			out = append(out, cur)
		}
		cur, status, inStanza = DpkgPackage{}, "", false
	}
	forEachLine(b, func(n int, line []byte) bool {
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			return len(out) < maxPackages
		}
		if !inStanza {
			inStanza = true
			cur.Line = n
		}
		if line[0] == ' ' || line[0] == '\t' {
			return true // continuation of a multi-line field
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(v) > 1024 {
			return true
		}
		// Only four fields matter; compare keys without allocating.
		var dst *string
		switch {
		case bytes.EqualFold(k, []byte("package")):
			dst = &cur.Name
		case bytes.EqualFold(k, []byte("version")):
			dst = &cur.Version
		case bytes.EqualFold(k, []byte("architecture")):
			dst = &cur.Arch
		case bytes.EqualFold(k, []byte("status")):
			dst = &status
		default:
			return true
		}
		*dst = string(bytes.TrimSpace(v))
		return true
	})
	if len(out) < maxPackages {
		flush()
	}
	return out
}

// statusInstalled: Status is "want flag state"; only the state
// "installed" means the package's files are all in place.
func statusInstalled(s string) bool {
	f := strings.Fields(s)
	return len(f) == 3 && f[2] == "installed"
}
