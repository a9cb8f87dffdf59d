package pkgdb

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
)

// Yarn 1's cache ("yarn classic", still what most Node.js applications
// that use yarn install with). yarn unpacks each package it downloads
// into a cache directory and copies it from there into the project's
// node_modules; next to the unpacked files it keeps the registry's
// tarball as it downloaded it, .yarn-tarball.tgz, and what it knows of
// it in .yarn-metadata.json: the package's manifest and the tarball's
// integrity (the registry's SHA-512, the one yarn.lock records). The
// cache is never cleaned by itself, and the tarball holds the package as
// its author published it, test fixtures included, as npm's does. So
// readYarnCache records each cached tarball under its manifest's name and
// version, with that SHA-512; the scanner hashes the tarball and
// compares, and an equal one is the registry's: what it holds is public,
// and so are its unpacked copies in the cache and in node_modules
// (propagation).
//
// Layout: the cache is <root>/v<N>/npm-<name>-<version>-<hash>-integrity/
// node_modules/<name>/ (a scoped package's name is @scope/name), where
// <root> is /usr/local/share/.cache/yarn for root (yarn's choice when it
// runs as uid 0) and ~/.cache/yarn for a user. v6 is yarn 1.22's.
const (
	yarnRootCache = "/usr/local/share/.cache/yarn"
	yarnUserCache = ".cache/yarn"
	// yarnTarball and yarnMetadata are the names yarn gives the kept
	// tarball and its metadata.
	yarnTarball  = ".yarn-tarball.tgz"
	yarnMetadata = ".yarn-metadata.json"
	// maxYarnFiles and maxYarnBytes bound what is read per filesystem,
	// directories counted as files (make precision's Node.js application
	// installed by yarn: about 450 packages, a metadata file of 1 to 40
	// KB each); maxYarnMetadata bounds one metadata file.
	maxYarnFiles    = 1 << 20
	maxYarnBytes    = 512 << 20
	maxYarnMetadata = 16 << 20
)

// readYarn reads yarn 1's caches and the lock files of yarn 2+ projects.
func readYarn(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	classic, err1 := readYarnCache(ctx, files, paths)
	if paths.spent {
		return classic, err1
	}
	berry, err2 := readYarnBerry(ctx, files, paths)
	return append(classic, berry...), errors.Join(err1, err2)
}

// readYarnCache reads root's yarn cache and each home's.
func readYarnCache(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	roots := []string{yarnRootCache}
	for _, h := range userHomes(files) {
		roots = append(roots, path.Join(h, yarnUserCache))
	}
	budget := &npmBudget{files: maxYarnFiles, bytes: maxYarnBytes}
	var out []Record
	var errs []error
	note := func(err error) {
		if len(errs) < 8 {
			errs = append(errs, err)
		}
	}
	for _, r := range roots {
		ents, err := files.ReadDir(r)
		if err != nil {
			if !isNotExist(err) {
				note(fmt.Errorf("%s: %w", r, err))
			}
			continue
		}
		for _, v := range ents {
			if !v.IsDir() || !isYarnCacheVersion(v.Name()) {
				continue
			}
			budget.files--
			recs, err := readYarnCacheDir(ctx, files, path.Join(r, v.Name()), budget, paths, maxRecords-len(out))
			out = append(out, recs...)
			if paths.spent {
				return out, errors.Join(append(errs, err)...)
			}
			if err != nil {
				note(err)
			}
			if err := ctx.Err(); err != nil {
				return out, err
			}
			if budget.spent() {
				errs = append(errs, fmt.Errorf("yarn caches: over %d files or %d bytes: the rest is not read", maxYarnFiles, maxYarnBytes))
				return out, errors.Join(errs...)
			}
			if len(out) >= maxRecords {
				return out, errors.Join(errs...)
			}
		}
	}
	return out, errors.Join(errs...)
}

// isYarnCacheVersion reports whether name is a cache layout's directory:
// "v" and digits.
func isYarnCacheVersion(name string) bool {
	digits := strings.TrimPrefix(name, "v")
	if digits == name || digits == "" || len(digits) > 3 {
		return false
	}
	return strings.Trim(digits, "0123456789") == ""
}

// readYarnCacheDir reads one cache layout's packages: each entry's
// node_modules/<name> or node_modules/@scope/<name>, with its metadata,
// within paths.
func readYarnCacheDir(ctx context.Context, files FS, dir string, budget *npmBudget, paths *pathBudget, room int) ([]Record, error) {
	ents, err := files.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var out []Record
	var errs []error
	note := func(err error) {
		if len(errs) < 8 {
			errs = append(errs, err)
		}
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "npm-") {
			continue // .tmp, and git or file dependencies
		}
		for _, pkg := range yarnPackageDirs(files, path.Join(dir, e.Name(), "node_modules"), budget) {
			if budget.files--; budget.spent() || len(out) >= room {
				return out, errors.Join(errs...)
			}
			meta, err := files.ReadDir(pkg)
			if err != nil {
				note(fmt.Errorf("%s: %w", pkg, err))
				continue
			}
			for _, m := range meta {
				if m.Name() != yarnMetadata {
					continue
				}
				data, err := readEntry(files, pkg, m, min(max(budget.bytes, 0), maxYarnMetadata))
				if err != nil {
					note(err)
					budget.bytes -= 1 << 10 // an unreadable or oversized file still costs
					continue
				}
				budget.bytes -= int64(len(data))
				rec, ok, err := yarnRecord(pkg, data)
				if err != nil {
					note(fmt.Errorf("%s: %w", path.Join(pkg, yarnMetadata), err))
					continue
				}
				if !ok {
					continue
				}
				// The path is that of a directory the filesystem lists,
				// one per record, but it still counts.
				fit, err := paths.fit(len(rec.Path), func() string { return fmt.Sprintf("%s (%d bytes)", truncated(pkg, 256), len(rec.Path)) })
				if err != nil {
					return out, fmt.Errorf("%s: %w", truncated(pkg, 256), err)
				}
				if fit {
					out = append(out, rec)
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// yarnPackageDirs lists a cache entry's package directories (one, or one
// under a scope directory).
func yarnPackageDirs(files FS, nm string, budget *npmBudget) []string {
	ents, err := files.ReadDir(nm)
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		p := path.Join(nm, e.Name())
		if !strings.HasPrefix(e.Name(), "@") {
			out = append(out, p)
			continue
		}
		if budget.files--; budget.spent() {
			return out
		}
		scoped, err := files.ReadDir(p)
		if err != nil {
			continue
		}
		for _, s := range scoped {
			if s.IsDir() {
				out = append(out, path.Join(p, s.Name()))
			}
		}
	}
	return out
}

// yarnMeta is what .yarn-metadata.json says of the cached package.
type yarnMeta struct {
	Manifest struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"manifest"`
	Remote struct {
		Integrity string `json:"integrity"`
	} `json:"remote"`
}

// yarnRecord returns the record of the tarball kept in package directory
// dir, from its metadata. ok is false when the metadata gives no SHA-512
// (a git dependency, or a yarn too old to record integrity): nothing then
// says what the tarball should be.
func yarnRecord(dir string, data []byte) (rec Record, ok bool, err error) {
	var m yarnMeta
	if err := json.Unmarshal(data, &m); err != nil {
		return Record{}, false, err
	}
	if m.Manifest.Name == "" {
		return Record{}, false, errors.New("no package name in the manifest")
	}
	sum := sha512Integrity(m.Remote.Integrity)
	if sum == nil {
		return Record{}, false, nil
	}
	return Record{
		Path:  path.Join(dir, yarnTarball),
		Owner: Owner{Manager: "yarn", Package: m.Manifest.Name, Version: m.Manifest.Version, Digest: Digest{Algo: "sha512", Sum: sum}},
	}, true, nil
}

// isYarnMetadata reports whether guest path p is the metadata of a
// package in a yarn cache (IsRecordFile).
func isYarnMetadata(p string) bool {
	if path.Base(p) != yarnMetadata {
		return false
	}
	for _, root := range []string{yarnRootCache + "/", "/" + yarnUserCache + "/"} {
		if _, rest, ok := strings.Cut(p, root); ok {
			parts := strings.Split(rest, "/")
			// vN/npm-…/node_modules/[@scope/]name/.yarn-metadata.json
			scoped := len(parts) == 6 && strings.HasPrefix(parts[3], "@")
			if (len(parts) == 5 && !strings.HasPrefix(parts[3], "@") || scoped) && isYarnCacheVersion(parts[0]) && strings.HasPrefix(parts[1], "npm-") && parts[2] == "node_modules" {
				return true
			}
		}
	}
	return false
}
