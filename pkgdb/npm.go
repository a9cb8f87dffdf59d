package pkgdb

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"strings"
)

// npm's cache. npm keeps every package tarball it downloads in the user's
// ~/.npm/_cacache (cacache: content addressed by its SHA-512, with an
// index of what each entry was fetched from), and never cleans it by
// itself. Each tarball holds the package as its author published it,
// test fixtures included (ssh2's test keys, aws-sdk's example
// credentials), so a Node.js application's machine held dozens of such
// "secrets" that npm install copied: one in the cache and another in
// node_modules. readNPMCache records each cached registry tarball under
// its index entry (package, version, SHA-512). The scanner hashes the
// file and compares: an equal one is the registry's tarball, its findings
// are public, and so are their copies in node_modules (propagation).
//
// Layout (cacache 10+, npm 7+): index-v5/<2 hex>/<2 hex>/<sha256 of key>
// holds one line per write, "<sha1 of the JSON>\t<JSON>", the last one
// for a key winning (a null integrity removes it); content-v2/sha512/
// <2 hex>/<2 hex>/<rest of the hex digest> is the content.
const (
	npmCacheDir = ".npm/_cacache"
	// npmKeyPrefix is the key make-fetch-happen gives an HTTP response;
	// what follows is the URL.
	npmKeyPrefix = "make-fetch-happen:request-cache:"
	// maxNPMIndexFiles and maxNPMIndexBytes bound the index read per
	// filesystem, its directories counted as files (this machine's cache
	// after installing 20 packages with their dependencies: 1,198 files
	// of about 600 bytes).
	maxNPMIndexFiles = 1 << 20
	maxNPMIndexBytes = 256 << 20
	// maxHomes bounds the home directories a per-user cache is looked
	// for in.
	maxHomes = 4096
)

// userHomes lists root's home and the directories under /home, where
// per-user package caches (npm's, Go's) live.
func userHomes(files FS) []string {
	homes := []string{"/root"}
	if ents, err := files.ReadDir("/home"); err == nil {
		for _, e := range ents {
			if e.IsDir() && len(homes) < maxHomes {
				homes = append(homes, path.Join("/home", e.Name()))
			}
		}
	}
	return homes
}

// readNPMCache reads the npm caches of root and of each home directory
// under /home.
func readNPMCache(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	homes := userHomes(files)
	budget := &npmBudget{files: maxNPMIndexFiles, bytes: maxNPMIndexBytes}
	var out []Record
	var errs []error
	for _, h := range homes {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		recs, err := readNPMCacheDir(ctx, files, path.Join(h, npmCacheDir), budget, paths)
		out = append(out, recs...)
		if err != nil {
			errs = append(errs, err)
		}
		if paths.spent {
			break
		}
		if budget.spent() {
			errs = append(errs, fmt.Errorf("npm caches: index over %d files or %d bytes: the rest is not read", maxNPMIndexFiles, maxNPMIndexBytes))
			break
		}
	}
	return out, errors.Join(errs...)
}

type npmBudget struct{ files, bytes int64 }

func (b *npmBudget) spent() bool { return b.files < 0 || b.bytes < 0 }

// readNPMCacheDir reads one cacache directory's index.
func readNPMCacheDir(ctx context.Context, files FS, dir string, budget *npmBudget, paths *pathBudget) ([]Record, error) {
	index := path.Join(dir, "index-v5")
	l1, err := files.ReadDir(index)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", index, err)
	}
	entries := map[string]npmEntry{} // by key: the bucket's last word
	var errs []error
	records := func() ([]Record, error) {
		recs, err := npmRecords(dir, entries, paths)
		return recs, errors.Join(append(errs, err)...)
	}
	for _, a := range l1 {
		// Directories count toward the files budget too: an index of
		// empty directories costs a listing each.
		if !a.IsDir() {
			continue
		}
		if budget.files--; budget.spent() {
			return records()
		}
		l2, err := files.ReadDir(path.Join(index, a.Name()))
		if err != nil {
			if len(errs) < 8 {
				errs = append(errs, err)
			}
			continue
		}
		for _, b := range l2 {
			if !b.IsDir() {
				continue
			}
			if budget.files--; budget.spent() {
				return records()
			}
			sub := path.Join(index, a.Name(), b.Name())
			buckets, err := files.ReadDir(sub)
			if err != nil {
				if len(errs) < 8 {
					errs = append(errs, err)
				}
				continue
			}
			for _, f := range buckets {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				if !f.Type().IsRegular() {
					continue
				}
				if budget.files--; budget.spent() {
					return records()
				}
				data, err := readEntry(files, sub, f, max(budget.bytes, 0))
				if err != nil {
					if len(errs) < 8 {
						errs = append(errs, err)
					}
					budget.bytes -= 1 << 10 // an unreadable or oversized bucket still costs
					continue
				}
				budget.bytes -= int64(len(data))
				parseNPMBucket(data, entries)
			}
		}
	}
	return records()
}

// npmEntry is what the index says of one key.
type npmEntry struct {
	Key       string  `json:"key"`
	Integrity *string `json:"integrity"`
}

// parseNPMBucket applies a bucket's lines in order. A line whose hash
// does not match its JSON is a torn write and is skipped, as cacache
// skips it.
func parseNPMBucket(data []byte, entries map[string]npmEntry) {
	for line := range bytes.Lines(data) {
		line = bytes.TrimRight(line, "\r\n")
		sum, js, ok := bytes.Cut(line, []byte("\t"))
		if !ok || len(sum) != 40 || !validSHA1(sum, js) {
			continue
		}
		var e npmEntry
		if json.Unmarshal(js, &e) != nil || !strings.HasPrefix(e.Key, npmKeyPrefix) {
			continue
		}
		if e.Integrity == nil {
			delete(entries, e.Key) // cacache's rm: a null integrity
			continue
		}
		entries[e.Key] = e
	}
}

// npmRecords turns the index's registry tarballs into records of their
// content files, within paths (dir is joined to each).
func npmRecords(dir string, entries map[string]npmEntry, paths *pathBudget) ([]Record, error) {
	var out []Record
	// dir/content-v2/sha512/XX/XX/<the other 124 hex digits>
	n := len(dir) + len("/content-v2/sha512/") + 2*sha512.Size + 2
	for key, e := range entries {
		pkg, version, ok := npmTarballURL(strings.TrimPrefix(key, npmKeyPrefix))
		if !ok {
			continue
		}
		sum := sha512Integrity(*e.Integrity)
		if sum == nil {
			continue
		}
		if len(out) >= maxRecords {
			break
		}
		fit, err := paths.fit(n, func() string {
			return fmt.Sprintf("%s: the entry of %s (%d bytes)", path.Join(dir, "index-v5"), truncated(key, 256), n)
		})
		if err != nil {
			return out, fmt.Errorf("%s: %w", path.Join(dir, "index-v5"), err)
		}
		if !fit {
			continue
		}
		h := hex.EncodeToString(sum)
		out = append(out, Record{
			Path:  path.Join(dir, "content-v2", "sha512", h[:2], h[2:4], h[4:]),
			Owner: Owner{Manager: "npm", Package: pkg, Version: version, Digest: Digest{Algo: "sha512", Sum: sum}},
		})
	}
	return out, nil
}

// npmTarballURL parses a registry tarball's URL, as every npm registry
// serves them: .../NAME/-/BASENAME-VERSION.tgz, NAME being "@scope/name"
// for a scoped package (whose BASENAME is "name"). Any other URL (a
// package document, a git host's archive) gives false.
func npmTarballURL(raw string) (pkg, version string, ok bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" {
		return "", "", false
	}
	p, err := url.PathUnescape(u.EscapedPath())
	if err != nil {
		return "", "", false
	}
	before, file, ok := strings.Cut(p, "/-/")
	if !ok || strings.Contains(file, "/") || !strings.HasSuffix(file, ".tgz") {
		return "", "", false
	}
	parts := strings.Split(strings.Trim(before, "/"), "/")
	name := parts[len(parts)-1]
	pkg = name
	if len(parts) >= 2 && strings.HasPrefix(parts[len(parts)-2], "@") {
		pkg = parts[len(parts)-2] + "/" + name
	}
	version, ok = strings.CutPrefix(strings.TrimSuffix(file, ".tgz"), name+"-")
	if !ok || version == "" || name == "" {
		return "", "", false
	}
	return pkg, version, true
}

// sha512Integrity returns the SHA-512 of a Subresource Integrity string
// ("sha512-BASE64", possibly among other hashes), or nil.
func sha512Integrity(s string) []byte {
	for _, f := range strings.Fields(s) {
		b64, ok := strings.CutPrefix(f, "sha512-")
		if !ok {
			continue
		}
		b64, _, _ = strings.Cut(b64, "?") // SRI options
		if sum, err := base64.StdEncoding.DecodeString(b64); err == nil && len(sum) == 64 {
			return sum
		}
	}
	return nil
}

// validSHA1 reports whether sum is the hex SHA-1 of js, as cacache writes
// each index line.
func validSHA1(sum, js []byte) bool {
	h := sha1.Sum(js)
	var want [40]byte
	hex.Encode(want[:], h[:])
	return bytes.Equal(sum, want[:])
}

// StreamDigest names the digest that the records of the file at p hold
// when its path alone says so (npm's cache is addressed by each file's
// SHA-512; yarn's metadata gives its kept tarball's; apt's Release files
// give the SHA-256 of its lists, and of what the lists apt keeps
// compressed decode to), for a reader that
// must hash a file as it streams, before the records are known: "" for
// any other path.
func StreamDigest(p string) string {
	if strings.Contains(p, "/"+npmCacheDir+"/content-v2/sha512/") ||
		path.Base(p) == yarnTarball && isYarnMetadata(path.Join(path.Dir(p), yarnMetadata)) ||
		isYarnZip(p) {
		return "sha512"
	}
	if q := path.Clean("/" + p); path.Dir(q) == aptListsDir && !isAptRelease(q) {
		if aptKeptCompressed(q) != "" {
			// kept compressed by apt itself (Translation-en.lz4)
			return DecodedDigest("sha256")
		}
		return "sha256" // an index of apt's lists (Translation-en: 35 MB)
	}
	return ""
}
