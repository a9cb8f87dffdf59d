package pkgdb

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"golang.org/x/mod/module"
	"golang.org/x/mod/sumdb/dirhash"
)

// Go's module cache. The go command keeps every module it downloads twice
// in $GOPATH/pkg/mod (~/go/pkg/mod by default): the zip, in
// cache/download/MODULE/@v/VERSION.zip, and the tree extracted from it,
// in MODULE@VERSION/. Modules ship their tests and test data (docker/cli's
// test keys and registry credentials), so a Go developer's or CI
// machine's module cache held such "secrets" twice, and the zip's copy, a
// file in no test directory, kept the tree's from being lowered as test
// files. Beside each zip the go command writes VERSION.ziphash, the
// module's "h1:" hash (golang.org/x/mod/sumdb/dirhash.Hash1, the hash
// go.sum and the checksum database record), once the download is
// verified. readGoModCache records each zip under its ziphash; the
// scanner hashes the zip the same way (ZipHash1) and compares: an equal
// one is the module as published, its findings are public, and so are
// their copies in the extracted tree (propagation).
const (
	goModDownload = "go/pkg/mod/cache/download"
	// GoModHashAlgo is the digest algorithm of Go modules' records: a
	// module zip's dirhash.Hash1.
	GoModHashAlgo = "h1"
	// maxGoModDirs bounds the directories walked per filesystem (this
	// machine's module cache: 1.5 GB, 2,400 directories under download).
	maxGoModDirs = 1 << 18
	// maxGoModDepth bounds a module path's depth (a/b/c/d/...).
	maxGoModDepth = 32
	// MaxGoModZipBytes bounds what ZipHash1 decompresses for the scanner:
	// the go command refuses a module whose files pass 500 MiB
	// (golang.org/x/mod/zip.MaxZipFile).
	MaxGoModZipBytes = 500 << 20
)

// readGoModCache reads the module caches under /root/go and each home
// under /home.
func readGoModCache(ctx context.Context, files FS, paths *pathBudget) ([]Record, error) {
	homes := userHomes(files)
	w := &goModWalk{ctx: ctx, files: files, dirs: maxGoModDirs, paths: paths}
	for _, h := range homes {
		root := path.Join(h, goModDownload)
		if _, err := files.ReadDir(root); err != nil {
			continue
		}
		if err := w.walk(root, "", 0); err != nil {
			return w.out, err
		}
	}
	return w.out, errors.Join(w.errs...)
}

type goModWalk struct {
	ctx   context.Context
	files FS
	dirs  int
	paths *pathBudget
	out   []Record
	errs  []error
}

// walk reads dir, the cache directory of the escaped module path prefix
// (its "@v" directory holds the module's versions).
func (w *goModWalk) walk(dir, prefix string, depth int) error {
	if err := w.ctx.Err(); err != nil {
		return err
	}
	if w.dirs--; w.dirs < 0 {
		return fmt.Errorf("%s: over %d directories: the rest is not read", goModDownload, maxGoModDirs)
	}
	ents, err := w.files.ReadDir(dir)
	if err != nil {
		if len(w.errs) < 8 {
			w.errs = append(w.errs, fmt.Errorf("%s: %w", dir, err))
		}
		return nil
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		sub := path.Join(dir, e.Name())
		if e.Name() == "@v" {
			if prefix != "" {
				if err := w.versions(sub, prefix); err != nil {
					return err
				}
			}
			continue
		}
		if depth >= maxGoModDepth || prefix == "" && e.Name() == "sumdb" {
			continue
		}
		p := e.Name()
		if prefix != "" {
			p = prefix + "/" + p
		}
		if err := w.walk(sub, p, depth+1); err != nil {
			return err
		}
	}
	return nil
}

// versions records VERSION.zip for each VERSION.ziphash of an @v
// directory, within the walk's paths; past them, the error stops the
// walk.
func (w *goModWalk) versions(dir, escaped string) error {
	mod, err := module.UnescapePath(escaped)
	if err != nil {
		return nil
	}
	ents, err := w.files.ReadDir(dir)
	if err != nil {
		return nil
	}
	for _, e := range ents {
		if len(w.out) >= maxRecords {
			return nil
		}
		// The zip itself need not be listed: a container layer's
		// records hold the ziphash files alone.
		ev, ok := strings.CutSuffix(e.Name(), ".ziphash")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		version, err := module.UnescapeVersion(ev)
		if err != nil {
			continue
		}
		b, err := readEntry(w.files, dir, e, 256)
		if err != nil {
			continue
		}
		sum := parseH1(string(bytes.TrimSpace(b)))
		if sum == nil {
			continue
		}
		n := len(dir) + 1 + len(ev) + len(".zip")
		fit, err := w.paths.fit(n, func() string { return fmt.Sprintf("%s (%d bytes)", truncated(path.Join(dir, e.Name()), 256), n) })
		if err != nil {
			return fmt.Errorf("%s: %w", truncated(path.Join(dir, e.Name()), 256), err)
		}
		if !fit {
			continue
		}
		w.out = append(w.out, Record{Path: path.Join(dir, ev+".zip"), Owner: Owner{
			Manager: "go", Package: mod, Version: version, Digest: Digest{Algo: GoModHashAlgo, Sum: sum},
		}})
	}
	return nil
}

// parseH1 returns the SHA-256 of an "h1:BASE64" hash, or nil.
func parseH1(s string) []byte {
	b64, ok := strings.CutPrefix(s, "h1:")
	if !ok {
		return nil
	}
	sum, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(sum) != sha256.Size {
		return nil
	}
	return sum
}

// ZipHash1 is a module zip's h1 hash, as the go command computes it
// (dirhash.HashZip): the SHA-256 of a listing of each file's SHA-256 and
// name. r holds the zip (size bytes); at most maxBytes are decompressed
// (a zip bomb fails instead).
func ZipHash1(r io.ReaderAt, size, maxBytes int64) ([]byte, error) {
	z, err := zip.NewReader(r, size)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(z.File))
	byName := make(map[string]*zip.File, len(z.File))
	for _, f := range z.File {
		names = append(names, f.Name)
		byName[f.Name] = f
	}
	left := maxBytes
	h, err := dirhash.Hash1(names, func(name string) (io.ReadCloser, error) {
		f := byName[name]
		if f == nil {
			return nil, fmt.Errorf("%q: not in the zip", name)
		}
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		return &cappedReader{rc: rc, left: &left}, nil
	})
	if err != nil {
		return nil, err
	}
	return parseH1(h), nil
}

// cappedReader fails once the bytes read through all of its kind pass
// their shared cap.
type cappedReader struct {
	rc   io.ReadCloser
	left *int64
}

func (c *cappedReader) Read(p []byte) (int, error) {
	n, err := c.rc.Read(p)
	if *c.left -= int64(n); *c.left < 0 {
		return n, errors.New("module zip: over the decompressed bytes cap")
	}
	return n, err
}

func (c *cappedReader) Close() error { return c.rc.Close() }

// IsGoModZip reports whether p is a module zip in a Go module cache, whose
// record's digest is ZipHash1's.
func IsGoModZip(p string) bool {
	return strings.HasSuffix(p, ".zip") && strings.Contains(p, "/"+goModDownload+"/")
}
