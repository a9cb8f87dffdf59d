package pkgdb

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"strings"
)

// pnpm's content-addressable store. pnpm keeps each file of each package
// it installs once, in a store in the user's home, named by the file's
// SHA-512, and hard-links it into every project's node_modules/.pnpm. So
// a file of a package's tests (ssh2's test keys) lay in the store under a
// name in no test directory, and kept the node_modules copy, the same
// inode, from being lowered as a test file: 78 false alarms at medium or
// above for make precision's Node.js application installed by pnpm.
// readPnpmStore records each store file under the index that names its
// package and version, with the SHA-512 the index gives; the scanner
// hashes the file and compares, and an equal one is the registry
// package's file, public, with its node_modules copies (propagation).
//
// Layout: the store is ~/.local/share/pnpm/store/<version> (pnpm's
// default on Linux) or ~/.pnpm-store/<version> (older pnpm, or a project
// on another filesystem). Its index files say what each package holds:
// in v10 (pnpm 10) index/<2 hex>/<hex>-<name>@<version>.json, in v3 (pnpm
// 7 to 9) files/<2 hex>/<hex>-index.json, each
// {"name", "version", "files": {PATH: {"integrity": "sha512-…", "mode"}}}.
// A file's content is files/<the first 2 hex digits of its SHA-512>/<the
// other 126>, with "-exec" appended when its mode is executable.

// maxPnpmIndexFiles and maxPnpmIndexBytes bound the index read per
// filesystem, its directories counted as files (pnpm 10's store after
// installing make precision's Node.js application: 582 index files, 6.7
// MB, naming 20,775 store files).
const (
	maxPnpmIndexFiles = 1 << 20
	maxPnpmIndexBytes = 1 << 30
	maxPnpmIndexFile  = 64 << 20
)

// readPnpmStore reads the pnpm stores of root and of each home directory
// under /home.
func readPnpmStore(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	storeDirs := []string{".local/share/pnpm/store", ".pnpm-store"}
	// The store layouts read, and where their index files are.
	versions := []struct{ version, index, suffix string }{
		{"v10", "index", ".json"},
		{"v3", "files", "-index.json"},
	}
	budget := &npmBudget{files: maxPnpmIndexFiles, bytes: maxPnpmIndexBytes}
	var out []Record
	var errs []error
	for _, h := range userHomes(files) {
		for _, d := range storeDirs {
			for _, v := range versions {
				if err := ctx.Err(); err != nil {
					return out, err
				}
				store := path.Join(h, d, v.version)
				recs, err := readPnpmIndex(ctx, files, store, v.index, v.suffix, budget, paths, maxRecords-len(out))
				out = append(out, recs...)
				if err != nil {
					errs = append(errs, err)
				}
				if paths.spent {
					return out, errors.Join(errs...)
				}
				if budget.spent() {
					errs = append(errs, fmt.Errorf("pnpm stores: index over %d files or %d bytes: the rest is not read", maxPnpmIndexFiles, maxPnpmIndexBytes))
					return out, errors.Join(errs...)
				}
				if len(out) >= maxRecords {
					return out, errors.Join(errs...)
				}
			}
		}
	}
	return out, errors.Join(errs...)
}

// readPnpmIndex reads the index files NAME+suffix in the two-level
// directory store/index, and returns the records of the store files they
// name, at most room of them, within paths.
func readPnpmIndex(ctx context.Context, files FS, store, index, suffix string, budget *npmBudget, paths *pathBudget, room int) ([]Record, error) {
	dir := path.Join(store, index)
	l1, err := files.ReadDir(dir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	var out []Record
	var errs []error
	for _, a := range l1 {
		if !a.IsDir() || len(a.Name()) != 2 {
			continue
		}
		if budget.files--; budget.spent() {
			break
		}
		sub := path.Join(dir, a.Name())
		ents, err := files.ReadDir(sub)
		if err != nil {
			if len(errs) < 8 {
				errs = append(errs, fmt.Errorf("%s: %w", sub, err))
			}
			continue
		}
		for _, e := range ents {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), suffix) {
				continue
			}
			if budget.files--; budget.spent() {
				return out, errors.Join(errs...)
			}
			data, err := readEntry(files, sub, e, min(max(budget.bytes, 0), maxPnpmIndexFile))
			if err != nil {
				if len(errs) < 8 {
					errs = append(errs, err)
				}
				budget.bytes -= 1 << 10 // an unreadable or oversized index still costs
				continue
			}
			budget.bytes -= int64(len(data))
			recs, err := pnpmRecords(store, path.Join(sub, e.Name()), data, paths)
			if errors.Is(err, errPathBudget) {
				out = append(out, recs[:min(len(recs), room-len(out))]...)
				return out, errors.Join(append(errs, err)...)
			}
			if err != nil {
				if len(errs) < 8 {
					errs = append(errs, fmt.Errorf("%s: %w", path.Join(sub, e.Name()), err))
				}
				continue
			}
			if len(out)+len(recs) > room {
				return append(out, recs[:room-len(out)]...), errors.Join(errs...)
			}
			out = append(out, recs...)
		}
	}
	return out, errors.Join(errs...)
}

// pnpmIndex is what a store index file says of one package.
type pnpmIndex struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Files   map[string]struct {
		Integrity string      `json:"integrity"`
		Mode      fs.FileMode `json:"mode"`
	} `json:"files"`
}

// pnpmRecords returns the records of the store files that one index file
// (name) names, within paths (store is joined to each). A file whose
// integrity is not a SHA-512 has none: its store name comes from that
// digest.
func pnpmRecords(store, name string, data []byte, paths *pathBudget) ([]Record, error) {
	var ix pnpmIndex
	if err := json.Unmarshal(data, &ix); err != nil {
		return nil, err
	}
	if ix.Name == "" {
		return nil, errors.New("no package name")
	}
	out := make([]Record, 0, len(ix.Files))
	for _, p := range slices.Sorted(maps.Keys(ix.Files)) {
		f := ix.Files[p]
		sum := sha512Integrity(f.Integrity)
		if sum == nil {
			continue
		}
		// store/files/XX/<the other 126 hex digits>[-exec]
		n := len(store) + len("/files/") + 2*len(sum) + 1
		exec := f.Mode&0o111 != 0
		if exec {
			n += len("-exec")
		}
		fit, err := paths.fit(n, func() string { return fmt.Sprintf("%s: the file %s (%d bytes)", name, truncated(p, 256), n) })
		if err != nil {
			return out, fmt.Errorf("%s: %w", name, err)
		}
		if !fit {
			continue
		}
		h := hex.EncodeToString(sum)
		file := h[2:]
		if exec {
			file += "-exec"
		}
		out = append(out, Record{
			Path:  path.Join(store, "files", h[:2], file),
			Owner: Owner{Manager: "pnpm", Package: ix.Name, Version: ix.Version, Digest: Digest{Algo: "sha512", Sum: sum}},
		})
	}
	return out, nil
}

// isPnpmIndex reports whether guest path p is an index file of a pnpm
// store in a home (IsRecordFile): STORE/v10/index/XX/*.json or
// STORE/v3/files/XX/*-index.json.
func isPnpmIndex(p string) bool {
	for _, store := range []string{"/.local/share/pnpm/store/", "/.pnpm-store/"} {
		_, rest, ok := strings.Cut(p, store)
		if !ok {
			continue
		}
		parts := strings.Split(rest, "/")
		if len(parts) == 4 && len(parts[2]) == 2 &&
			(parts[0] == "v10" && parts[1] == "index" && strings.HasSuffix(parts[3], ".json") ||
				parts[0] == "v3" && parts[1] == "files" && strings.HasSuffix(parts[3], "-index.json")) {
			return true
		}
	}
	return false
}
