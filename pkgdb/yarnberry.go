package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strings"
)

// yarn 2 and later ("berry"). yarn keeps each package as a zip of its
// files (node_modules/<name>/…) in a cache, global by default
// (~/.yarn/berry/cache of the user who installs) or the project's own
// (<project>/.yarn/cache), and either reads it from there (Plug'n'Play) or
// unpacks it into node_modules. The zips hold the packages' test fixtures
// as their authors published them. The project's lock file, yarn.lock,
// records each package's zip by its SHA-512 ("checksum: 10c0/<hex>",
// the prefix the cache key), and yarn names the zip after the package
// (scope, name, "npm", version), a hash of its locator and the cache key.
// readYarnBerry finds the lock files of the projects in the places
// applications are installed, and records each npm package's zip in the
// project's cache and in each home's global cache under that name, with
// the lock file's SHA-512. The scanner hashes the zip and compares: an
// equal one is the zip yarn made and checked at install, and what it
// holds is public with its unpacked copies (propagation). Packages
// resolved otherwise (patch:, git, workspace:, file:) are not recorded.
const (
	yarnBerryCache  = ".yarn/berry/cache" // in a home
	yarnProjectDir  = ".yarn/cache"       // in a project
	yarnLockName    = "yarn.lock"
	maxYarnLockFile = 64 << 20
	// maxYarnLockDirs bounds the directories searched for lock files
	// and maxYarnLockDepth how deep below each root (/srv/app/yarn.lock
	// is 1 below /srv; /home/dev/src/app/yarn.lock 2 below /home/dev).
	maxYarnLockDirs  = 20000
	maxYarnLockDepth = 3
)

// yarnProjectRoots are where applications are installed: their lock
// files are looked for at most maxYarnLockDepth directories below.
var yarnProjectRoots = []string{"/srv", "/opt", "/app", "/usr/src", "/var/www", "/usr/local/src"}

// readYarnBerry reads the lock files of yarn 2+ projects.
func readYarnBerry(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	homes := userHomes(files)
	roots := append(append([]string(nil), yarnProjectRoots...), homes...)
	budget := &npmBudget{files: maxYarnLockDirs, bytes: maxYarnBytes}
	var globals []string
	for _, h := range homes {
		globals = append(globals, path.Join(h, yarnBerryCache))
	}
	var out []Record
	var errs []error
	note := func(err error) {
		if len(errs) < 8 {
			errs = append(errs, err)
		}
	}
	seen := map[string]bool{}
	for _, r := range roots {
		locks, err := findYarnLocks(ctx, files, r, budget)
		if err != nil {
			note(err)
		}
		for _, lf := range locks {
			l := path.Join(lf.dir, lf.e.Name())
			if seen[l] {
				continue
			}
			seen[l] = true
			data, err := readEntry(files, lf.dir, lf.e, min(max(budget.bytes, 0), maxYarnLockFile))
			budget.bytes -= int64(len(data)) + 1<<10 // an unreadable or oversized file still costs
			if err != nil {
				note(err)
				continue
			}
			dirs := append([]string{path.Join(path.Dir(l), yarnProjectDir)}, globals...)
			recs, err := yarnBerryRecords(l, data, dirs, maxRecords-len(out), paths)
			out = append(out, recs...)
			if err != nil {
				err = fmt.Errorf("%s: %w", l, err)
				if paths.spent {
					return out, errors.Join(append(errs, err)...)
				}
				note(err)
			}
			if len(out) >= maxRecords {
				return out, errors.Join(errs...)
			}
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if budget.spent() {
			errs = append(errs, fmt.Errorf("yarn lock files: over %d directories searched or %d bytes read: the rest is not read", maxYarnLockDirs, maxYarnBytes))
			break
		}
	}
	return out, errors.Join(errs...)
}

// findYarnLocks lists the yarn.lock files at most maxYarnLockDepth
// directories below root, not inside node_modules or hidden directories.
func findYarnLocks(ctx context.Context, files FS, root string, budget *npmBudget) ([]lockFile, error) {
	type dir struct {
		p     string
		depth int
	}
	var out []lockFile
	stack := []dir{{root, 0}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if budget.files--; budget.spent() {
			return out, nil
		}
		ents, err := files.ReadDir(d.p)
		if err != nil {
			if d.p == root || isNotExist(err) {
				continue
			}
			return out, fmt.Errorf("%s: %w", d.p, err)
		}
		for _, e := range ents {
			name := e.Name()
			switch {
			case name == yarnLockName && e.Type().IsRegular():
				out = append(out, lockFile{d.p, e})
			case e.IsDir() && d.depth < maxYarnLockDepth && name != "node_modules" && !strings.HasPrefix(name, ".") && len(stack) < maxYarnLockDirs:
				stack = append(stack, dir{path.Join(d.p, name), d.depth + 1})
			}
		}
	}
	return out, nil
}

// lockFile is a lock file found, as its directory listed it (readEntry
// then reads it without listing the directory again).
type lockFile struct {
	dir string
	e   fs.DirEntry
}

// yarnNPMResolution is a lock entry's resolution of a registry package:
// NAME@npm:VERSION, NAME optionally @scope/name, VERSION exact semver.
// (A version with build metadata is left out: yarn names its zip after
// the version without it.)
var yarnNPMResolution = regexp.MustCompile(`^(?:@([A-Za-z0-9][A-Za-z0-9._~-]*)/)?([A-Za-z0-9._~-][A-Za-z0-9._~-]*)@npm:([0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?)$`)

// yarnBerryRecords returns, for each registry package of a yarn 2+ lock
// file, the record of its zip in each cache directory of dirs, at most
// room of them (a lock file's entries times the homes could be
// billions), within paths: each directory is joined to each zip's name,
// which carries the cache key (one for the whole file, in __metadata). A
// lock file of yarn 1 (no __metadata) gives none. name is the lock file's.
func yarnBerryRecords(name string, data []byte, dirs []string, room int, paths *pathBudget) ([]Record, error) {
	type entry struct {
		off                  int
		resolution, checksum string
	}
	var entries []entry
	var cur *entry
	cacheKey, berry := "", false
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	inMeta := false
	next := 0 // the offset of the line after this one
	for sc.Scan() {
		line := sc.Text()
		off := next
		next += len(sc.Bytes()) + 1 // exact where lines end in "\n" alone, as yarn writes them
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if line[0] != ' ' {
			inMeta = line == "__metadata:"
			berry = berry || inMeta
			entries = append(entries, entry{off: off})
			cur = &entries[len(entries)-1]
			continue
		}
		key, val, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok || !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
			continue // a nested map's line
		}
		val = strings.Trim(val, `"`)
		switch {
		case inMeta && key == "cacheKey":
			cacheKey = val
		case cur != nil && key == "resolution":
			cur.resolution = val
		case cur != nil && key == "checksum":
			cur.checksum = val
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !berry {
		return nil, nil
	}
	var out []Record
	for _, e := range entries {
		m := yarnNPMResolution.FindStringSubmatch(e.resolution)
		if m == nil || e.checksum == "" {
			continue
		}
		key, sum := cacheKey, e.checksum
		if k, s, ok := strings.Cut(e.checksum, "/"); ok {
			key, sum = k, s
		}
		scope, pkgName, version := m[1], m[2], m[3]
		// The zip's name, before it is built (the cache key may be long,
		// and it is in every name): SLUG-npm-VERSION-HASH-KEY.zip.
		fileLen := yarnZipNameLen(scope, pkgName, version, key)
		if fileLen > maxPathLen {
			// The records of every directory: skipped, and counted.
			for _, d := range dirs[:min(len(dirs), room-len(out))] {
				n := len(d) + 1 + fileLen
				if _, err := paths.fit(n, func() string { return fmt.Sprintf("%s: offset %d (%d bytes)", name, e.off, n) }); err != nil {
					return out, fmt.Errorf("offset %d: %w", e.off, err)
				}
			}
			continue
		}
		digest, err := hex.DecodeString(sum)
		if err != nil || len(digest) != sha512.Size || key == "" || strings.ContainsAny(key, "/.") {
			continue
		}
		file := ""
		pkg := pkgName
		if scope != "" {
			pkg = "@" + scope + "/" + pkgName
		}
		for _, d := range dirs {
			if len(out) >= room {
				return out, nil
			}
			n := len(d) + 1 + fileLen
			fit, err := paths.fit(n, func() string { return fmt.Sprintf("%s: offset %d (%d bytes)", name, e.off, n) })
			if err != nil {
				return out, fmt.Errorf("offset %d: %w", e.off, err)
			}
			if !fit {
				continue
			}
			if file == "" {
				file = yarnZipName(scope, pkgName, version, key)
			}
			out = append(out, Record{
				Path:  path.Join(d, file),
				Owner: Owner{Manager: "yarn", Package: pkg, Version: version, Digest: Digest{Algo: "sha512", Sum: digest}},
			})
		}
	}
	return out, nil
}

// yarnZipName is the name yarn 2+ gives a registry package's zip in its
// cache: its ident, "npm", its version, the first 10 hex digits of its
// locator's hash and the cache key. The hashes are yarn's makeHash:
// SHA-512 of the strings joined, the ident's of scope and name, the
// locator's of the ident's hex and the reference ("npm:1.2.3").
func yarnZipName(scope, name, version, cacheKey string) string {
	ident := sha512.Sum512([]byte(scope + name))
	loc := sha512.Sum512([]byte(hex.EncodeToString(ident[:]) + "npm:" + version))
	slug := name
	if scope != "" {
		slug = "@" + scope + "-" + name
	}
	return slug + "-npm-" + version + "-" + hex.EncodeToString(loc[:])[:10] + "-" + cacheKey + ".zip"
}

// yarnZipNameLen is the length of yarnZipName's name, from its parts.
func yarnZipNameLen(scope, name, version, cacheKey string) int {
	n := len(name) + len("-npm-") + len(version) + 1 + 10 + 1 + len(cacheKey) + len(".zip")
	if scope != "" {
		n += 1 + len(scope) + 1
	}
	return n
}

// isYarnZip reports whether guest path p is a zip in a yarn 2+ cache, a
// home's global one or a project's.
func isYarnZip(p string) bool {
	dir := path.Dir(p)
	return strings.HasSuffix(p, ".zip") && (strings.HasSuffix(dir, "/"+yarnBerryCache) || strings.HasSuffix(dir, "/"+yarnProjectDir))
}
