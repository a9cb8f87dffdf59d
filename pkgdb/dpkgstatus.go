package pkgdb

import (
	"bytes"
	"encoding/hex"
	"strings"
)

// maxPackages bounds a dpkg status file (a full desktop has ~5000).
const maxPackages = 1 << 17

// maxConffiles bounds the conffiles of one package (Debian's most have a
// few hundred).
const maxConffiles = 1 << 14

// DpkgPackage is one package stanza of /var/lib/dpkg/status.
type DpkgPackage struct {
	Name    string
	Arch    string
	Version string
	Line    int    // line of the stanza's first field
	State   string // the Status field's third word: installed, unpacked, config-files...
	// Conffiles are the package's configuration files with the md5 of the
	// version it shipped (dh_md5sums leaves them out of info/*.md5sums).
	Conffiles []DpkgConffile
}

// DpkgConffile is one line of a stanza's Conffiles field.
type DpkgConffile struct {
	Path     string
	MD5      []byte // nil when dpkg recorded none ("newconffile")
	Obsolete bool   // no longer shipped by the installed version
}

// Key identifies a package instance (Multi-Arch packages may be installed
// once per architecture), as in the names of dpkg's info files.
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
	return parseDpkgStatus(b, func(state string) bool { return state == "installed" })
}

// parseDpkgStatus returns the complete stanzas (name and version set)
// whose state keep accepts, at most maxPackages of them.
func parseDpkgStatus(b []byte, keep func(state string) bool) []DpkgPackage {
	var out []DpkgPackage
	var cur DpkgPackage
	var status string
	inStanza, inConffiles := false, false
	flush := func() {
		if inStanza && cur.Name != "" && cur.Version != "" {
			if f := strings.Fields(status); len(f) == 3 && keep(f[2]) {
				cur.State = f[2]
				out = append(out, cur)
			}
		}
		cur, status, inStanza, inConffiles = DpkgPackage{}, "", false, false
	}
	n := 0
	for line := range bytes.Lines(b) {
		n++
		line = bytes.TrimRight(line, "\r\n")
		if len(bytes.TrimSpace(line)) == 0 {
			flush()
			if len(out) >= maxPackages {
				return out
			}
			continue
		}
		if !inStanza {
			inStanza = true
			cur.Line = n
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Continuation of a multi-line field: only Conffiles matters.
			if inConffiles && len(cur.Conffiles) < maxConffiles {
				if c, ok := parseConffileLine(line); ok {
					cur.Conffiles = append(cur.Conffiles, c)
				}
			}
			continue
		}
		inConffiles = false
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(v) > 1024 {
			continue
		}
		// Only five fields matter; compare keys without allocating.
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
		case bytes.EqualFold(k, []byte("conffiles")):
			inConffiles = true
			continue
		default:
			continue
		}
		*dst = string(bytes.TrimSpace(v))
	}
	if len(out) < maxPackages {
		flush()
	}
	return out
}

// parseConffileLine parses " /etc/path md5hex[ obsolete][ remove-on-upgrade]".
// The path may hold spaces: the digest is the last word before the flags.
func parseConffileLine(line []byte) (DpkgConffile, bool) {
	f := strings.Fields(string(line))
	var c DpkgConffile
	for len(f) > 2 && (f[len(f)-1] == "obsolete" || f[len(f)-1] == "remove-on-upgrade") {
		c.Obsolete = c.Obsolete || f[len(f)-1] == "obsolete"
		f = f[:len(f)-1]
	}
	if len(f) < 2 || !strings.HasPrefix(f[0], "/") {
		return c, false
	}
	sum := f[len(f)-1]
	c.Path = strings.Join(f[:len(f)-1], " ")
	if d, err := hex.DecodeString(sum); err == nil && len(d) == 16 {
		c.MD5 = d
	}
	return c, true
}
