package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
)

// pip, and every installer that follows the wheel spec, writes a RECORD
// file into each installed distribution's NAME-VERSION.dist-info
// directory: one CSV row per installed file, "path,algo=digest,size",
// where path is relative to the site-packages directory holding the
// dist-info directory (console scripts are reached with ../../../bin/...)
// and digest is the unpadded URL-safe base64 of a SHA-256 (or better).
// Rows without a digest (RECORD itself, compiled .pyc files) are kept,
// without digest, as files the distribution owns.
//
// The search is bounded: only the site-packages and dist-packages
// directories of the system interpreters, /usr/local, pip --user installs
// and virtual environments up to two levels under /opt and /srv and under
// home directories, as listed in pythonSitePatterns. A virtual environment
// anywhere else is not found.

// pythonSitePatterns are the site directories searched; '*' matches within
// one path component.
var pythonSitePatterns = []string{
	"/usr/lib/python3*/site-packages",
	"/usr/lib/python3*/dist-packages", // Debian: /usr/lib/python3/dist-packages
	"/usr/lib64/python3*/site-packages",
	"/usr/local/lib/python3*/site-packages",
	"/usr/local/lib/python3*/dist-packages",
	"/usr/local/lib64/python3*/site-packages",
	"/opt/*/lib/python3*/site-packages",   // a venv at /opt/app
	"/opt/*/*/lib/python3*/site-packages", // a venv at /opt/app/venv
	"/srv/*/lib/python3*/site-packages",
	"/srv/*/*/lib/python3*/site-packages",
	"/root/.local/lib/python3*/site-packages", // pip install --user
	"/home/*/.local/lib/python3*/site-packages",
	"/home/*/*/lib/python3*/site-packages",   // ~/venv
	"/home/*/*/*/lib/python3*/site-packages", // ~/project/.venv
}

const (
	// maxPythonListings caps the directory listings of the whole search.
	maxPythonListings = 4096
	// maxPythonRecordBytes caps one RECORD (the largest real ones, of
	// packages like botocore, are under 2 MiB) and maxPythonMetadataBytes
	// one METADATA, which carries the long description.
	maxPythonRecordBytes   = 16 << 20
	maxPythonMetadataBytes = 8 << 20
	maxPythonRecords       = 4 << 20
)

// readPythonRecords reads the RECORD files of the installed distributions.
// Unusable rows and files are counted: the records of the rest are
// returned with an error naming the first of them.
func readPythonRecords(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error) {
	return searchPythonRecords(ctx, fsys, maxPythonListings, paths)
}

// searchPythonRecords is readPythonRecords with a budget of directory
// listings.
func searchPythonRecords(ctx context.Context, fsys FS, listings int, paths *pathBudget) ([]Record, error) {
	s := &pythonSearch{fsys: fsys, listings: listings, budget: listings, paths: paths}
	seen := map[string]bool{}
	for _, pat := range pythonSitePatterns {
		dirs := s.glob(pat)
		for _, dir := range dirs {
			if seen[dir] {
				continue
			}
			seen[dir] = true
			if err := s.readSite(ctx, dir); err != nil {
				return s.recs, err
			}
		}
	}
	if s.nbad > 0 {
		return s.recs, fmt.Errorf("python: %d problems: %w", s.nbad, errors.Join(s.bad...))
	}
	return s.recs, nil
}

type pythonSearch struct {
	fsys     FS
	listings int // directory listings left
	budget   int // and at the start
	paths    *pathBudget
	recs     []Record
	bad      []error
	nbad     int
}

func (s *pythonSearch) problem(err error) {
	s.nbad++
	if len(s.bad) < 3 {
		s.bad = append(s.bad, err)
	}
}

// list lists a directory, within the search's budget; a directory that is
// absent is an empty one.
func (s *pythonSearch) list(dir string) []fs.DirEntry {
	if s.listings <= 0 {
		if s.listings == 0 {
			s.problem(fmt.Errorf("search cut after %d directory listings, at %s", s.budget, dir))
			s.listings--
		}
		return nil
	}
	s.listings--
	entries, err := s.fsys.ReadDir(dir)
	if err != nil {
		return nil // absent, or not a directory
	}
	return entries
}

// glob expands a pattern of absolute, slash-separated components into the
// directories it names; components without a wildcard are joined without a
// listing, and a listing's entries match only if they are directories or
// symlinks (to directories, perhaps: a later listing tells).
func (s *pythonSearch) glob(pattern string) []string {
	cur := []string{"/"}
	for _, c := range strings.Split(strings.Trim(pattern, "/"), "/") {
		var next []string
		for _, d := range cur {
			if !strings.ContainsAny(c, "*?[") {
				next = append(next, path.Join(d, c))
				continue
			}
			for _, e := range s.list(d) {
				if !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
					continue
				}
				if ok, _ := path.Match(c, e.Name()); !ok {
					continue
				}
				// Each candidate costs a listing later: more candidates
				// than listings left would never be read.
				if len(next) > s.listings {
					s.listings = 0
					s.list(d) // says where the search was cut
					return nil
				}
				next = append(next, path.Join(d, e.Name()))
			}
		}
		cur = next
	}
	return cur
}

// readSite reads every dist-info directory of one site directory.
func (s *pythonSearch) readSite(ctx context.Context, site string) error {
	for _, e := range s.list(site) {
		if !strings.HasSuffix(e.Name(), ".dist-info") || !e.IsDir() && e.Type()&fs.ModeSymlink == 0 {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		distInfo := path.Join(site, e.Name())
		recordPath := path.Join(distInfo, "RECORD")
		record, err := readBounded(s.fsys, recordPath, maxPythonRecordBytes)
		if isNotExist(err) {
			continue // installed by a tool that writes no RECORD
		}
		if err != nil {
			s.problem(err)
			continue
		}
		name, version := pythonDistribution(s.fsys, distInfo)
		recs, errs := parsePythonRecord(recordPath, site, record, s.paths)
		var stop error
		for _, err := range errs {
			if errors.Is(err, errPathBudget) {
				stop = fmt.Errorf("python: %w", err)
				continue
			}
			s.problem(err)
		}
		for _, r := range recs {
			if len(s.recs) >= maxPythonRecords {
				return fmt.Errorf("python: more than %d files", maxPythonRecords)
			}
			r.Owner.Package, r.Owner.Version = name, version
			s.recs = append(s.recs, r)
		}
		if stop != nil {
			return stop
		}
	}
	return nil
}

// pythonDistribution names the distribution of a dist-info directory: the
// Name: and Version: of its METADATA, else the directory's own name,
// NAME-VERSION.dist-info (in which NAME has no '-').
func pythonDistribution(fsys FS, distInfo string) (name, version string) {
	name, version, _ = strings.Cut(strings.TrimSuffix(path.Base(distInfo), ".dist-info"), "-")
	meta, err := readBounded(fsys, path.Join(distInfo, "METADATA"), maxPythonMetadataBytes)
	if err != nil {
		return name, version
	}
	mName, mVersion := parsePythonMetadata(meta)
	if mName != "" {
		name = mName
	}
	if mVersion != "" {
		version = mVersion
	}
	return name, version
}

// parsePythonMetadata takes Name: and Version: from the header fields of a
// METADATA file (RFC 822 style), which end at the first empty line.
func parsePythonMetadata(meta []byte) (name, version string) {
	sc := bufio.NewScanner(bytes.NewReader(meta))
	sc.Buffer(nil, 64<<10)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			break
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.ToLower(k) {
		case "name":
			if name == "" {
				name = strings.TrimSpace(v)
			}
		case "version":
			if version == "" {
				version = strings.TrimSpace(v)
			}
		}
	}
	return name, version
}

// pythonDigests are the digests a RECORD may name, with their sizes.
var pythonDigests = map[string]int{"sha256": 32, "sha384": 48, "sha512": 64, "sha224": 28, "sha1": 20, "md5": 16}

// parsePythonRecord reads one RECORD whose paths are relative to site.
// A row whose path leaves the filesystem root, or whose digest cannot be
// read, is returned as an error with its offset, and left out (a bad
// digest only loses the digest). A path is built only if paths lets it
// (site is joined to every row); past the budget, the last error is
// errPathBudget's and the rows after it are not read.
func parsePythonRecord(name, site string, data []byte, paths *pathBudget) ([]Record, []error) {
	var recs []Record
	var errs []error
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	for {
		off := r.InputOffset()
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: offset %d: %w", name, off, err))
			if r.InputOffset() == off {
				break // no progress: stop rather than loop
			}
			continue
		}
		if len(row) == 0 || row[0] == "" {
			continue
		}
		parts, ok := resolveInside(site, row[0])
		if !ok {
			errs = append(errs, fmt.Errorf("%s: offset %d: path %q leaves the root", name, off, truncated(row[0], 256)))
			continue
		}
		n := 0
		for _, c := range parts {
			n += 1 + len(c)
		}
		fit, err := paths.fit(n, func() string { return fmt.Sprintf("%s: offset %d (%d bytes)", name, off, n) })
		if err != nil {
			return recs, append(errs, fmt.Errorf("%s: offset %d: %w", name, off, err))
		}
		if !fit {
			continue
		}
		rec := Record{Path: "/" + strings.Join(parts, "/"), Owner: Owner{Manager: "python"}}
		if len(row) > 1 && row[1] != "" {
			d, err := parsePythonDigest(row[1])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: offset %d: %w", name, off, err))
			}
			rec.Owner.Digest = d
		}
		recs = append(recs, rec)
	}
	return recs, errs
}

func parsePythonDigest(s string) (Digest, error) {
	algo, b64, ok := strings.Cut(s, "=")
	size, known := pythonDigests[algo]
	if !ok || !known {
		return Digest{}, fmt.Errorf("digest %q: unknown algorithm", s)
	}
	sum, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(b64, "="))
	if err != nil || len(sum) != size {
		return Digest{}, fmt.Errorf("digest %q: not a %s in URL-safe base64", s, algo)
	}
	return Digest{Algo: algo, Sum: sum}, nil
}

// resolveInside resolves rel against the absolute directory base
// lexically, as the installer did, into the path's components; an absolute
// rel stands alone. It refuses a path whose ".." would climb above the
// root.
func resolveInside(base, rel string) ([]string, bool) {
	var parts []string
	if !strings.HasPrefix(rel, "/") {
		for _, c := range strings.Split(base, "/") {
			if c != "" {
				parts = append(parts, c)
			}
		}
	}
	for _, c := range strings.Split(rel, "/") {
		switch c {
		case "", ".":
		case "..":
			if len(parts) == 0 {
				return nil, false
			}
			parts = parts[:len(parts)-1]
		default:
			parts = append(parts, c)
		}
	}
	if len(parts) == 0 {
		return nil, false // the root itself is no file
	}
	return parts, true
}
