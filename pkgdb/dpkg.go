package pkgdb

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

const (
	dpkgStatusPath     = "/var/lib/dpkg/status"
	dpkgInfoDir        = "/var/lib/dpkg/info"
	dpkgDiversionsPath = "/var/lib/dpkg/diversions"
	// maxDpkgInfoBytes bounds the md5sums bytes read from one filesystem
	// (a build server's 809 packages have 9 MB of them).
	maxDpkgInfoBytes = 128 << 20
	// maxDpkgStatusBytes caps the status file, read whole: this machine's
	// 829 packages have 0.76 MB of it, a desktop's 4,000 have 5 to 10 MB
	// (each package's description is in it). Until 2026-12-07 it was
	// read through guestfs's ReadFile, which stops at 16 MiB, so that a
	// larger status gave no dpkg records at all.
	maxDpkgStatusBytes = 128 << 20
)

// dpkgFileStates are the package states in which the files of the
// package's md5sums are in place. A package in state config-files has
// only its conffiles left (and no md5sums file).
var dpkgFileStates = map[string]bool{
	"installed": true, "unpacked": true, "half-configured": true,
	"triggers-awaited": true, "triggers-pending": true,
}

// readDpkg reads dpkg: /var/lib/dpkg/status (installed packages, their
// versions and the md5 of each conffile as shipped), info/<pkg>[:arch].md5sums
// (the md5 of every other file, paths relative to /) and diversions (a
// diverted file of a package lives at the diversion's target). Its paths
// are each a line of its own, but a diversion's target serves every line
// that names the diverted path: they are kept within paths.
func readDpkg(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error) {
	status, err := readBoundedLarge(fsys, dpkgStatusPath, maxDpkgStatusBytes)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	pkgs := parseDpkgStatus(status, func(state string) bool { return dpkgFileStates[state] || state == "config-files" })
	byKey := make(map[string]*DpkgPackage, len(pkgs))
	for i := range pkgs {
		p := &pkgs[i]
		if _, dup := byKey[p.Key()]; !dup {
			byKey[p.Key()] = p
		}
		// "libc6" also finds "libc6:amd64" (info files of packages that
		// are not Multi-Arch: same carry no architecture).
		if _, dup := byKey[p.Name]; !dup {
			byKey[p.Name] = p
		}
	}
	div := readDiversions(fsys)

	var out []Record
	owner := func(p *DpkgPackage, sum []byte, conffile bool) Owner {
		o := Owner{Manager: "dpkg", Package: p.Name, Version: p.Version, Arch: p.Arch, Conffile: conffile}
		if sum != nil {
			o.Digest = Digest{Algo: "md5", Sum: sum}
		}
		return o
	}
	var stop error // paths spent
	add := func(p *DpkgPackage, file string, sum []byte, conffile bool, where func() string) bool {
		if len(out) >= maxRecords {
			return false
		}
		target := div.target(file, p.Name)
		fit, err := paths.fit(len(target), func() string { return fmt.Sprintf("%s (%d bytes)", where(), len(target)) })
		if err != nil {
			stop = fmt.Errorf("%s: %w", where(), err)
			return false
		}
		if fit {
			out = append(out, Record{Path: target, Owner: owner(p, sum, conffile)})
		}
		return true
	}
	for i := range pkgs {
		p := &pkgs[i]
		for _, c := range p.Conffiles {
			if !add(p, c.Path, c.MD5, true, func() string { return fmt.Sprintf("%s: the package at line %d", dpkgStatusPath, p.Line) }) {
				return out, stop
			}
		}
	}

	ents, err := fsys.ReadDir(dpkgInfoDir)
	if err != nil {
		return out, fmt.Errorf("%s: %w", dpkgInfoDir, err)
	}
	var errs []error
	budget := int64(maxDpkgInfoBytes)
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".md5sums")
		if !ok || e.IsDir() {
			continue
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		p := byKey[name]
		if p == nil || !dpkgFileStates[p.State] {
			continue // a package dpkg no longer lists as unpacked
		}
		file := path.Join(dpkgInfoDir, e.Name())
		b, err := fsys.ReadFile(file)
		if err != nil {
			if len(errs) < 8 {
				errs = append(errs, fmt.Errorf("%s: %w", file, err))
			}
			continue
		}
		if budget -= int64(len(b)); budget < 0 {
			errs = append(errs, fmt.Errorf("%s: md5sums files over %d bytes in all: the rest are not read", dpkgInfoDir, maxDpkgInfoBytes))
			break
		}
		full := false
		parseMD5Sums(b, func(f string, sum []byte, off int) bool {
			full = !add(p, f, sum, false, func() string { return fmt.Sprintf("%s: offset %d", file, off) })
			return !full
		})
		if full {
			break
		}
	}
	return out, errors.Join(append(errs, stop)...)
}

// parseMD5Sums calls fn with each "md5hex  path" line of an md5sums file
// (paths relative to /, as md5sum writes them; "*" marks binary mode),
// with the path made absolute and the line's offset. Malformed lines are
// skipped; fn's false stops the parse.
func parseMD5Sums(b []byte, fn func(path string, sum []byte, off int) bool) {
	off := 0
	for line := range bytes.Lines(b) {
		lineOff := off
		off += len(line)
		line = bytes.TrimRight(line, "\r\n")
		if len(line) < 35 || line[32] != ' ' || (line[33] != ' ' && line[33] != '*') {
			continue
		}
		sum := make([]byte, 16)
		if _, err := hex.Decode(sum, line[:32]); err != nil {
			continue
		}
		p := string(line[34:])
		if p == "" || strings.ContainsRune(p, 0) {
			continue
		}
		if !fn(path.Clean("/"+p), sum, lineOff) {
			return
		}
	}
}

// maxDiversions bounds /var/lib/dpkg/diversions (a system has a handful).
const maxDiversions = 1 << 16

// diversions maps a diverted path to where the diverted package's file
// now lives, and which package (or ":" for a local diversion) diverted it.
type diversions map[string]struct{ to, by string }

// readDiversions reads dpkg's diversions file: triples of lines
// (diverted path, divert-to path, diverting package). A missing or
// unreadable file means no diversions.
func readDiversions(fsys FS) diversions {
	b, err := fsys.ReadFile(dpkgDiversionsPath)
	if err != nil {
		return nil
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	d := diversions{}
	for i := 0; i+2 < len(lines) && len(d) < maxDiversions; i += 3 {
		from, to, by := lines[i], lines[i+1], lines[i+2]
		if strings.HasPrefix(from, "/") && strings.HasPrefix(to, "/") {
			d[path.Clean(from)] = struct{ to, by string }{path.Clean(to), by}
		}
	}
	return d
}

// target is where package pkg's file p lives: the diversion's target when
// another package (or the admin) diverted p, p otherwise.
func (d diversions) target(p, pkg string) string {
	if v, ok := d[p]; ok && v.by != pkg {
		return v.to
	}
	return p
}
