package pkgdb

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// apk (Alpine, Wolfi) keeps its installed database as text in
// /lib/apk/db/installed: one paragraph per package, one "X:value" field a
// line. P: and V: are the package's name and version; F: opens a directory
// (relative to the root), each R: after it names a file in it, and the Z:
// after an R: is that file's checksum: "Q1" and the base64 of its SHA-1
// (apk-tools 2), "Q2" and a base64 SHA-256, or older hex MD5. M: and a:
// give owners and permissions and are not needed here.
//
// apk records no per-file config flag; it protects /etc by default
// (etc/apk/protected_paths.d), so files under /etc are reported as
// configuration files, except /etc/apk and /etc/init.d, which apk does not
// protect. For a symlink, apk's Z: is the checksum of the link's target
// name, not of file contents.

const (
	apkInstalledPath = "/lib/apk/db/installed"
	// maxAPKDBBytes caps the installed database: a large Alpine system
	// (1,500 packages) has about 10 MiB. The file is read whole, so a
	// hostile one (sparse, behind the right name) costs up to this much
	// memory; 256 MiB until 2026-12-07, when the cap in force was in fact
	// guestfs's 16 MiB ReadFile cap (readBoundedLarge).
	maxAPKDBBytes = 128 << 20
	// maxAPKRecords caps the records of the database.
	maxAPKRecords = 4 << 20
)

// readAPK reads apk's installed database. Lines it cannot use are
// counted: the records of the rest are returned with an error naming the
// first such lines.
func readAPK(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error) {
	b, err := readBoundedLarge(fsys, apkInstalledPath, maxAPKDBBytes)
	if isNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("apk: %w", err)
	}
	return parseAPKInstalled(ctx, apkInstalledPath, b, paths)
}

// parseAPKInstalled reads the database db, the file name. A path is built
// only if paths lets it: one F: directory serves every R: after it.
func parseAPKInstalled(ctx context.Context, name string, db []byte, paths *pathBudget) ([]Record, error) {
	var (
		recs         []Record
		pending      []Record // the current package's files, stamped when it ends
		pkg, version string
		dir          string
		dirBad       bool // the current F: was unusable: its files are skipped
		fileOK       bool // the last R: was usable: a Z: belongs to it
		bad          []error
		nbad, lines  int
	)
	badLine := func(off int, format string, args ...any) {
		nbad++
		if len(bad) < 3 {
			bad = append(bad, fmt.Errorf("offset %d: "+format, append([]any{off}, args...)...))
		}
	}
	flush := func() {
		if pkg != "" {
			for _, r := range pending {
				r.Owner.Package, r.Owner.Version = pkg, version
				recs = append(recs, r)
			}
		}
		pending, pkg, version, dir, dirBad, fileOK = pending[:0], "", "", "", false, false
	}
	for off := 0; off < len(db); {
		end := bytes.IndexByte(db[off:], '\n')
		if end < 0 {
			end = len(db) - off
		}
		line := db[off : off+end]
		lineOff := off
		off += end + 1
		if lines++; lines%65536 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		if len(line) == 0 {
			flush()
			continue
		}
		if len(line) < 2 || line[1] != ':' {
			badLine(lineOff, "not a field line")
			continue
		}
		val := string(line[2:])
		switch line[0] {
		case 'P':
			pkg = val
		case 'V':
			version = val
		case 'F':
			dir, dirBad = val, !apkNameOK(val, true)
			fileOK = false
			if dirBad {
				badLine(lineOff, "directory %q", val)
			}
		case 'R':
			fileOK = false
			if dirBad || !apkNameOK(val, false) {
				if dirBad {
					continue // counted with its F: line
				}
				badLine(lineOff, "file %q", val)
				continue
			}
			if len(recs)+len(pending) >= maxAPKRecords {
				return recs, fmt.Errorf("apk: %s: more than %d files", name, maxAPKRecords)
			}
			n := 1 + len(val)
			if dir != "" {
				n += len(dir) + 1
			}
			fit, err := paths.fit(n, func() string { return fmt.Sprintf("%s: offset %d (%d bytes)", name, lineOff, n) })
			if err != nil {
				return recs, fmt.Errorf("apk: %s: offset %d: %w", name, lineOff, err)
			}
			if !fit {
				continue
			}
			p := "/" + val
			if dir != "" {
				p = "/" + dir + "/" + val
			}
			pending = append(pending, Record{Path: p, Owner: Owner{Manager: "apk", Conffile: apkProtected(p)}})
			fileOK = true
		case 'Z':
			if !fileOK {
				continue // a checksum of a skipped file
			}
			d, err := parseAPKChecksum(val)
			if err != nil {
				badLine(lineOff, "%v", err)
				continue
			}
			pending[len(pending)-1].Owner.Digest = d
			fileOK = false
		}
	}
	flush()
	if nbad > 0 {
		return recs, fmt.Errorf("apk: %s: %d lines unusable: %w", name, nbad, errors.Join(bad...))
	}
	return recs, nil
}

// apkNameOK says whether an F: directory (a relative path) or an R: file
// name (one component) stays inside the root: no empty, "." or ".."
// component, no leading slash.
func apkNameOK(s string, isDir bool) bool {
	if s == "" {
		return isDir // F: with no value is the root itself
	}
	if !isDir && strings.Contains(s, "/") {
		return false
	}
	for _, c := range strings.Split(s, "/") {
		if c == "" || c == "." || c == ".." {
			return false
		}
	}
	return true
}

// apkProtected says whether apk's default protected paths cover p.
func apkProtected(p string) bool {
	return strings.HasPrefix(p, "/etc/") && !strings.HasPrefix(p, "/etc/apk/") && !strings.HasPrefix(p, "/etc/init.d/")
}

// parseAPKChecksum decodes a Z: value (apk-tools' apk_blob_pull_csum).
func parseAPKChecksum(s string) (Digest, error) {
	if len(s) >= 2 && s[0] == 'Q' {
		algo, size := "", 0
		switch s[1] {
		case '1':
			algo, size = "sha1", 20
		case '2':
			algo, size = "sha256", 32
		default:
			return Digest{}, fmt.Errorf("checksum kind %q", s[:2])
		}
		sum, err := base64.StdEncoding.DecodeString(s[2:])
		if err != nil || len(sum) != size {
			return Digest{}, fmt.Errorf("bad %s checksum %q", algo, s)
		}
		return Digest{Algo: algo, Sum: sum}, nil
	}
	sum, err := hex.DecodeString(s)
	switch {
	case err == nil && len(sum) == 16:
		return Digest{Algo: "md5", Sum: sum}, nil
	case err == nil && len(sum) == 20:
		return Digest{Algo: "sha1", Sum: sum}, nil
	}
	return Digest{}, fmt.Errorf("bad checksum %q", s)
}
