package pkgdb

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
)

// apt's lists. `apt-get update` downloads each repository's indexes into
// /var/lib/apt/lists: the Packages index, and the package descriptions of
// every language (Translation-en: 35 MB on Debian 13, with
// documentation's example credentials in it, "connection =
// mysql://keystone:foobar@127.0.0.1/keystone"). Every machine that ran
// apt-get update against the same repository on the same day holds the
// same bytes. What vouches for them is the repository's Release file
// (InRelease, signed, or Release), which apt keeps beside them: it lists
// the SHA-256 of each index, under the path that, with "/" written "_"
// and the Release file's own prefix in front, is the list file's name
// (deb.debian.org_debian_dists_trixie_InRelease lists
// main/i18n/Translation-en, kept as
// deb.debian.org_debian_dists_trixie_main_i18n_Translation-en).
//
// Where apt keeps its lists compressed (Acquire::GzipIndexes, which
// Debian's and Ubuntu's container images set in docker-gzip-indexes), it
// decompresses each download and compresses it again itself: apt 2.6 and
// 3.0 keep Translation-en.lz4, whose bytes no Release file lists. What
// they decode to is the index the Release file lists uncompressed, so
// each uncompressed entry is recorded again under each name apt could
// keep it as (.lz4, .gz, .xz, .zst, .bz2), with a decoded digest
// (DecodedDigest): the SHA-256 of what the file decompresses to.
//
// Every entry is recorded, whether apt downloaded that index or not: a
// record names a path, and only a file there with that digest is vouched
// for; in a container layer the lists are not read back to see which
// exist. The signature is not checked, as no manager's records are: a
// guest that rewrites its Release file could as well rewrite its md5sums.
const (
	// maxAptRelease bounds one Release file (Debian 13's InRelease is
	// 140 KB; Ubuntu's, with its Contents and dep11 indexes, 300 KB).
	maxAptRelease = 16 << 20
	// maxAptReleaseEntries bounds the indexes one Release file records.
	maxAptReleaseEntries = 1 << 16
)

// readApt reads what apt records: the packages in its cache and the
// lists `apt-get update` downloaded.
func readApt(ctx context.Context, files FS, gate *decode.MemoryGate, paths *pathBudget) ([]Record, error) {
	cached, cerr := readAptCache(ctx, files, gate, paths)
	if paths.spent {
		return cached, cerr
	}
	lists, lerr := readAptLists(ctx, files, defaultAptLimits().lists, paths)
	return append(cached, lists...), errors.Join(cerr, lerr)
}

// readAptLists records the indexes that each Release file in apt's lists
// directory lists, at the path apt keeps them, with their SHA-256 (or
// SHA-512, for a Release file without SHA-256). At most maxReleases
// Release files are read, and the paths are built within paths (the
// Release file's name is in each of its indexes', six times over).
func readAptLists(ctx context.Context, files FS, maxReleases int, paths *pathBudget) ([]Record, error) {
	ents, err := files.ReadDir(aptListsDir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", aptListsDir, err)
	}
	var out []Record
	var errs []error
	n := 0
	for _, e := range ents {
		prefix, ok := aptReleasePrefix(e.Name())
		if !ok {
			continue
		}
		if n++; n > maxReleases {
			errs = append(errs, fmt.Errorf("%s: over %d Release files: the rest are not read", aptListsDir, maxReleases))
			break
		}
		if err := ctx.Err(); err != nil {
			return out, err
		}
		b, err := readEntry(files, aptListsDir, e, maxAptRelease)
		if err != nil {
			if len(errs) < 8 {
				errs = append(errs, err)
			}
			continue
		}
		rel, err := parseAptRelease(b)
		if err != nil {
			if len(errs) < 8 {
				errs = append(errs, fmt.Errorf("%s: %w", path.Join(aptListsDir, e.Name()), err))
			}
			continue
		}
		release := path.Join(aptListsDir, e.Name())
		for _, ix := range rel.indexes {
			// aptListsDir/PREFIX+path, each "/" made "_": one component.
			base := len(aptListsDir) + 1 + len(prefix) + len(ix.path)
			name := ""
			add := func(ext string, owner Owner) error {
				m := base + len(ext)
				fit, err := paths.fit(m, func() string { return fmt.Sprintf("%s: the index %s (%d bytes)", release, truncated(ix.path, 256), m) })
				if !fit {
					return err
				}
				if name == "" {
					name = path.Join(aptListsDir, prefix+strings.ReplaceAll(ix.path, "/", "_"))
				}
				out = append(out, Record{Path: name + ext, Owner: owner})
				return nil
			}
			owner := Owner{Manager: "apt", Package: ix.path, Version: rel.suite, Digest: Digest{Algo: rel.algo, Sum: ix.sum}}
			err := add("", owner)
			if aptKeptCompressed(ix.path) == "" {
				owner.Digest.Algo = DecodedDigest(rel.algo)
				for _, ext := range aptKeptExts {
					if err == nil {
						err = add(ext, owner)
					}
				}
			}
			if err != nil {
				return out, errors.Join(append(errs, fmt.Errorf("%s: %w", release, err))...)
			}
			if len(out) >= maxRecords {
				break
			}
		}
	}
	return out, errors.Join(errs...)
}

// aptKeptExts are the names apt gives a list it keeps compressed
// (APT::Compressor: lz4 first where apt was built with it, as Debian's
// is), for the compressors the decoders read; lzma's is not one.
var aptKeptExts = [...]string{".lz4", ".gz", ".xz", ".zst", ".bz2"}

// aptKeptCompressed returns the compressor's extension that name ends
// with, or "".
func aptKeptCompressed(name string) string {
	for _, ext := range aptKeptExts {
		if strings.HasSuffix(name, ext) {
			return ext
		}
	}
	return ""
}

// aptReleasePrefix says whether name is a Release file as apt keeps it
// in its lists directory (…_dists_trixie_InRelease, …_Release, or a flat
// repository's), and returns the prefix its indexes' names share.
func aptReleasePrefix(name string) (string, bool) {
	for _, suffix := range []string{"_InRelease", "_Release"} {
		if strings.HasSuffix(name, suffix) {
			return name[:len(name)-len(suffix)+1], true
		}
	}
	return "", false
}

// isAptRelease says whether guest path p is a Release file in apt's lists.
func isAptRelease(p string) bool {
	_, ok := aptReleasePrefix(path.Base(p))
	return ok && path.Dir(p) == aptListsDir
}

// aptRelease is what readAptLists uses of a Release file.
type aptRelease struct {
	suite   string // Codename, or Suite when there is none
	algo    string // "sha256", or "sha512"
	indexes []aptReleaseIndex
}

type aptReleaseIndex struct {
	path string // as listed: main/i18n/Translation-en
	sum  []byte
}

// parseAptRelease parses a Release file, or an InRelease file's signed
// text (its OpenPGP armor is skipped, not checked). The indexes are the
// SHA256 field's, or the SHA512 field's when there is no SHA256 field;
// lines that are not "digest size path", with a path apt could keep as a
// file name, are skipped.
func parseAptRelease(b []byte) (aptRelease, error) {
	const signed, signature = "-----BEGIN PGP SIGNED MESSAGE-----", "-----BEGIN PGP SIGNATURE-----"
	var base int64 // offset of b[0] in the file
	if bytes.HasPrefix(b, []byte(signed)) {
		// The armor's headers end at the first empty line.
		i := bytes.Index(b, []byte("\n\n"))
		if i < 0 {
			return aptRelease{}, errors.New("offset 0: signed message without a body")
		}
		b, base = b[i+2:], int64(i+2)
		if j := bytes.Index(b, []byte("\n"+signature)); j >= 0 {
			b = b[:j+1]
		}
	}
	var rel aptRelease
	var codename, suite string
	fields := map[string][]aptReleaseIndex{}
	field := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), maxAptLine)
	off := base // of the line in the file
	for ; sc.Scan(); off += int64(len(sc.Bytes())) + 1 {
		line := sc.Text()
		if line == "" {
			continue
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, value, ok := strings.Cut(line, ":")
			if !ok {
				return aptRelease{}, fmt.Errorf("offset %d: a line that is neither a field nor a field's continuation", off)
			}
			field = name
			switch name {
			case "Codename":
				codename = strings.TrimSpace(value)
			case "Suite":
				suite = strings.TrimSpace(value)
			}
			continue
		}
		if field != "SHA256" && field != "SHA512" {
			continue
		}
		ix, ok := parseReleaseIndex(line, field)
		if ok && len(fields[field]) < maxAptReleaseEntries {
			fields[field] = append(fields[field], ix)
		}
	}
	if err := sc.Err(); err != nil {
		return aptRelease{}, fmt.Errorf("offset %d: %w", off, err)
	}
	rel.suite = codename
	if rel.suite == "" {
		rel.suite = suite
	}
	rel.algo, rel.indexes = "sha256", fields["SHA256"]
	if _, ok := fields["SHA256"]; !ok {
		rel.algo, rel.indexes = "sha512", fields["SHA512"]
	}
	return rel, nil
}

// parseReleaseIndex parses one " digest size path" line of field algo.
func parseReleaseIndex(line, algo string) (aptReleaseIndex, bool) {
	f := strings.Fields(line)
	want := 64
	if algo == "SHA512" {
		want = 128
	}
	if len(f) != 3 || len(f[0]) != want {
		return aptReleaseIndex{}, false
	}
	sum, err := hex.DecodeString(f[0])
	if err != nil {
		return aptReleaseIndex{}, false
	}
	p := f[2]
	if p != path.Clean(p) || path.IsAbs(p) || p == "." || strings.HasPrefix(p, "../") || p == ".." {
		return aptReleaseIndex{}, false
	}
	return aptReleaseIndex{path: p, sum: sum}, true
}
