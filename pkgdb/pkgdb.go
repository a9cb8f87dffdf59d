// Package pkgdb reads the package managers' own records from a guest
// filesystem (dpkg, rpm, apk, Python dist-info RECORD files) and answers one
// question for the scanner: which package installed this file, and what
// digest did it have then. A finding inside a file whose digest still
// equals the recorded one is public material that the package ships: the
// same bytes are on every machine that installed it.
//
// Each manager has its own file and its own reader; Read runs every reader
// whose records are present and merges what they say. Readers never follow
// names outside the guest filesystem they are given, and bound what they
// read (see the caps in each reader).
package pkgdb

import (
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
)

// FS is the read-only access to a guest filesystem that the readers need.
// The scanner passes its guestfs view; tests may pass os.DirFS-like
// adapters over a real root made by the real tools.
type FS interface {
	// ReadFile reads a regular file, following symlinks inside the guest.
	ReadFile(path string) ([]byte, error)
	// ReadDir lists a directory (without "." and "..").
	ReadDir(path string) ([]fs.DirEntry, error)
}

// Digest is a file digest as a package manager records it.
type Digest struct {
	Algo string // "md5", "sha1", "sha256", "sha512" ...
	Sum  []byte // raw bytes, not hex
}

// Owner is what one package manager records about one installed file.
type Owner struct {
	Manager  string // "dpkg", "rpm", "apk", "python", "apt" (a package in apt's cache, an index in its lists), "npm" (a tarball in npm's cache), "pnpm" (a file in pnpm's store), "yarn" (a tarball in yarn's cache), "go" (a module zip)
	Package  string
	Version  string
	Arch     string // the package's architecture where the manager records one
	Digest   Digest // zero when the manager recorded none for this file
	Conffile bool   // a configuration file the admin is expected to edit
}

// Record is one file of one package, with its absolute guest path.
type Record struct {
	Path  string
	Owner Owner
}

// managerReader reads one manager's records. It returns (nil, nil) when
// the manager's database is absent from the filesystem.
type managerReader struct {
	name string
	read func(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error)
}

// readers lists every manager's reader. Each lives in its own file. The
// decoders of apt's compressed indexes hold their memory at gate.
func readers(gate *decode.MemoryGate) []managerReader {
	return []managerReader{
		{"dpkg", readDpkg},
		{"rpm", readRPM},
		{"apk", readAPK},
		{"python", readPythonRecords},
		{"apt", func(ctx context.Context, fsys FS, paths *pathBudget) ([]Record, error) {
			return readApt(ctx, fsys, gate, paths)
		}},
		{"npm", readNPMCache},
		{"pnpm", readPnpmStore},
		{"yarn", readYarn},
		{"go", readGoModCache},
	}
}

// maxRecords bounds the records one filesystem may contribute, and so
// the memory a hostile image can make Read hold (about 250 bytes a
// record): a full desktop's dpkg records ~300k files, a build server's
// /usr here 93k.
const maxRecords = 1 << 20

// DB is what every package manager of one filesystem records, by path.
type DB struct {
	byPath map[string][]Owner
	// Managers lists the managers whose records were found, in reader order.
	Managers []string
	// Errors are the readers' errors: a reader that fails contributes what
	// it read before failing, and the others still run.
	Errors []error
	// Truncated is set when the records passed maxRecords, all readers
	// together or one reader alone (since 2026-12-08: before, a reader
	// that stopped at the cap, dpkg's, went unsaid): paths past the cap
	// are not owned as far as Lookup knows.
	Truncated bool
}

// Read runs every manager's reader once over fsys and merges their
// records. A path that the guest reaches through a symlinked top-level
// directory (/lib -> usr/lib on merged-/usr systems) is filed under the
// path the filesystem index reports, when fsys can read symlinks.
// Decoders it starts (apt's compressed package indexes) are bounded by
// their default memory cap only; ReadGated counts them at a gate.
func Read(ctx context.Context, fsys FS) *DB { return ReadGated(ctx, fsys, nil) }

// ReadGated is Read whose decoders hold their memory at gate, beside the
// decoders of the scan it serves, so that the scan's memory bound holds
// whenever it reads package records.
func ReadGated(ctx context.Context, fsys FS, gate *decode.MemoryGate) *DB {
	db := &DB{byPath: map[string][]Owner{}}
	canon := newCanonicalizer(fsys)
	paths := newPathBudget()
	n := 0
	for _, r := range readers(gate) {
		if err := ctx.Err(); err != nil {
			db.Errors = append(db.Errors, err)
			break
		}
		if paths.spent {
			db.Errors = append(db.Errors, fmt.Errorf("pkgdb: %s: not read: %w of %d bytes", r.name, errPathBudget, paths.total))
			continue
		}
		recs, err := r.read(ctx, fsys, paths)
		if err != nil {
			db.Errors = append(db.Errors, fmt.Errorf("pkgdb: %s: %w", r.name, err))
		}
		if err := paths.skipped(); err != nil {
			db.Errors = append(db.Errors, fmt.Errorf("pkgdb: %s: %w", r.name, err))
		}
		if len(recs) > 0 {
			db.Managers = append(db.Managers, r.name)
		}
		if len(recs) >= maxRecords {
			// The reader stopped at the cap (each stops there without an
			// error): the files past it are vouched for by nothing, which
			// the caller's note says.
			db.Truncated = true
		}
		for _, rec := range recs {
			if n >= maxRecords {
				db.Truncated = true
				break
			}
			p := canon.path(rec.Path)
			db.byPath[p] = append(db.byPath[p], rec.Owner)
			n++
		}
	}
	return db
}

// Lookup returns every package that records the file at absolute path p,
// or nil when none does.
func (db *DB) Lookup(p string) []Owner {
	if db == nil {
		return nil
	}
	return db.byPath[path.Clean("/"+p)]
}

// Len is the number of distinct paths recorded.
func (db *DB) Len() int {
	if db == nil {
		return 0
	}
	return len(db.byPath)
}

// LinkReader is implemented by filesystems that can read symlinks; Read
// then files records under the paths their top-level symlinks lead to.
type LinkReader interface {
	Readlink(path string) (string, error)
}

// canonicalizer maps a recorded path to the path the filesystem index
// reports for the same file, resolving symlinks among the top-level
// directories (merged /usr: /bin, /sbin, /lib*). Deeper symlinked
// directories are rare in package records and are not resolved.
type canonicalizer struct {
	lr   LinkReader
	tops map[string]string // first component -> its replacement ("" = none)
}

func newCanonicalizer(fsys FS) *canonicalizer {
	lr, _ := fsys.(LinkReader)
	return &canonicalizer{lr: lr, tops: map[string]string{}}
}

func (c *canonicalizer) path(p string) string {
	// A clean absolute path is kept as it is, not copied: the map then
	// shares the reader's string, and the paths held stay within the
	// readers' budget (pathBudget).
	if strings.HasPrefix(p, "/") {
		p = path.Clean(p)
	} else {
		p = path.Clean("/" + p)
	}
	if c.lr == nil {
		return p
	}
	for range 4 { // a chain of top-level links; stop on loops
		first, rest, _ := strings.Cut(p[1:], "/")
		to, ok := c.tops[first]
		if !ok {
			to = c.resolve(first)
			c.tops[first] = to
		}
		if to == "" || rest == "" {
			return p
		}
		p = path.Join(to, rest)
	}
	return p
}

// resolve returns where the top-level entry name leads when it is a
// symlink inside the filesystem, "" otherwise.
func (c *canonicalizer) resolve(name string) string {
	if name == "" || len(c.tops) > 1024 {
		return ""
	}
	t, err := c.lr.Readlink("/" + name)
	if err != nil || t == "" {
		return ""
	}
	if !strings.HasPrefix(t, "/") {
		t = "/" + t
	}
	t = path.Clean(t)
	if t == "/" || t == "/"+name {
		return ""
	}
	return t
}
