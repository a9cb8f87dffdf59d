package scanner

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strings"

	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
)

// downgrade applies package provenance and path context to the findings
// (package downgrade says how) and sorts them again by their new
// severities. Package records are read once per view and partition, only
// for views where some finding has a file, and only the files that hold
// findings are hashed, each once.
func (s *Scanner) downgrade(ctx context.Context, ts []*target, findings []report.Finding) {
	views := map[string]*viewState{}
	machine := map[string]string{}
	for _, t := range ts {
		for _, v := range t.views {
			views[v.view.ID] = v
		}
		if t.vm != "" {
			machine[t.path] = "VM " + t.vm
		}
	}
	pr := &provenanceReader{dbs: map[partKey]*pkgdb.DB{}, sums: map[fileKey]fileSum{}}
	for i := range findings {
		if ctx.Err() != nil {
			return
		}
		f := &findings[i]
		if f.Category == report.CategoryRollbackRisk || f.Category == report.CategoryClonedIdentity {
			continue
		}
		facts := make([]downgrade.LocationFacts, len(f.Locations))
		for j, l := range f.Locations {
			if v := views[l.View]; v != nil && l.Path != "" && l.State == report.StateAllocated && isDiskKind(v.view.Kind) {
				facts[j].Owners = pr.owners(ctx, v, l)
			}
		}
		downgrade.Apply(f, facts, func(target string) string { return machine[target] })
	}
	sortFindings(findings)
}

// provenanceReader caches package records per view and partition, and
// file digests per view, partition, path and algorithm.
type provenanceReader struct {
	dbs  map[partKey]*pkgdb.DB
	sums map[fileKey]fileSum
}

type partKey struct {
	v    *viewState
	part string
}

type fileKey struct {
	partKey
	path, algo string
}

type fileSum struct {
	sum []byte
	err error
}

// owners returns the packages that record the file holding location l of
// view v, each with Modified set by comparing the file's digest now with
// the recorded one.
func (pr *provenanceReader) owners(ctx context.Context, v *viewState, l report.Location) []report.Provenance {
	pk := partKey{v, l.Partition}
	db, ok := pr.dbs[pk]
	if !ok {
		db = readPackages(ctx, v, l.Partition)
		pr.dbs[pk] = db
	}
	if recs := db.Lookup(l.Path); len(recs) > 0 {
		return pr.check(ctx, v, pk, l.Path, recs)
	}
	// A CPython bytecode cache no package records, compiled from a
	// package's source at install: public when the source is unmodified
	// and the cache was compiled from that very file.
	src := pycSource(l.Path)
	recs := db.Lookup(src)
	if src == "" || len(recs) == 0 || !pycCompiledFrom(v.filesystem(ctx).m.Files(l.Partition), l.Path, src) {
		return nil
	}
	var out []report.Provenance
	for _, p := range pr.check(ctx, v, pk, src, recs) {
		if !p.Modified {
			p.Path, p.Source = l.Path, src
			out = append(out, p)
		}
	}
	return out
}

// check compares the file at path p with each package record of it.
func (pr *provenanceReader) check(ctx context.Context, v *viewState, pk partKey, p string, recs []pkgdb.Owner) []report.Provenance {
	files := v.filesystem(ctx).m.Files(pk.part)
	out := make([]report.Provenance, 0, len(recs))
	for _, o := range recs {
		prov := report.Provenance{Manager: o.Manager, Package: o.Package, Version: o.Version, Arch: o.Arch,
			Target: v.t.path, Path: p, Conffile: o.Conffile, Modified: true}
		if len(o.Digest.Sum) > 0 && newHash(o.Digest.Algo) != nil {
			prov.Digest = o.Digest.Algo
			fk := fileKey{pk, p, o.Digest.Algo}
			fs, ok := pr.sums[fk]
			if !ok {
				fs.sum, fs.err = hashFile(ctx, files, p, o.Digest.Algo)
				pr.sums[fk] = fs
				if fs.err != nil && ctx.Err() == nil {
					v.notes = append(v.notes, fmt.Sprintf("package provenance: %s: %v", p, fs.err))
				}
			}
			prov.Modified = fs.err != nil || !bytes.Equal(fs.sum, o.Digest.Sum)
		}
		out = append(out, prov)
	}
	return out
}

// pycSource returns the source file of a CPython bytecode cache file,
// DIR/__pycache__/NAME.TAG[.opt-N].pyc -> DIR/NAME.py, or "".
func pycSource(p string) string {
	dir, file := path.Split(p)
	name, ok := strings.CutSuffix(file, ".pyc")
	if !ok || path.Base(dir) != "__pycache__" {
		return ""
	}
	if i := strings.LastIndex(name, ".opt-"); i > 0 {
		name = name[:i]
	}
	i := strings.LastIndexByte(name, '.') // the interpreter tag, cpython-311
	if i <= 0 {
		return ""
	}
	return path.Join(path.Dir(path.Clean(dir)), name[:i]+".py")
}

// pycCompiledFrom reports whether the .pyc at pyc records, in its header,
// the size and modification time of the source file src (PEP 552's
// timestamp-based caches, Python 3.7 and later: magic, flags 0, mtime,
// size). Hash-based caches are not checked and count as not compiled
// from it.
func pycCompiledFrom(files *guestfs.Files, pyc, src string) bool {
	if files == nil {
		return false
	}
	c, err := files.Open(pyc)
	if err != nil {
		return false
	}
	var h [16]byte
	if _, err := io.ReadFull(c, h[:]); err != nil {
		return false
	}
	s, err := files.Open(src)
	if err != nil {
		return false
	}
	le := binary.LittleEndian
	return h[2] == '\r' && h[3] == '\n' && le.Uint32(h[4:]) == 0 &&
		le.Uint32(h[8:]) == s.Mtime() && le.Uint32(h[12:]) == uint32(s.Size())
}

// readPackages reads the package records of one partition of a view. A
// partition whose filesystem cannot be read has none: its files count as
// owned by no package.
func readPackages(ctx context.Context, v *viewState, partition string) *pkgdb.DB {
	fi := v.filesystem(ctx)
	if fi == nil || fi.m == nil {
		return nil
	}
	files := fi.m.Files(partition)
	if files == nil {
		return nil
	}
	db := pkgdb.Read(ctx, files)
	for _, err := range db.Errors {
		if !errors.Is(err, context.Canceled) {
			v.notes = append(v.notes, fmt.Sprintf("package records on %s: %v", partition, err))
		}
	}
	if db.Truncated {
		v.notes = append(v.notes, fmt.Sprintf("package records on %s: too many, the rest were not read", partition))
	}
	return db
}

// hashFile streams the file through the named digest.
func hashFile(ctx context.Context, files *guestfs.Files, path, algo string) ([]byte, error) {
	f, err := files.Open(path)
	if err != nil {
		return nil, err
	}
	h := newHash(algo)
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		n, err := f.Read(buf)
		h.Write(buf[:n])
		if err == io.EOF {
			return h.Sum(nil), nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// newHash returns a hash for a package manager's digest algorithm, or nil
// for one that cannot be checked.
func newHash(algo string) hash.Hash {
	switch algo {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha256":
		return sha256.New()
	case "sha512":
		return sha512.New()
	}
	return nil
}
