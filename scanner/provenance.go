package scanner

import (
	"bytes"
	"cmp"
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
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/guestfs/layerstore"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
)

// downgrade applies the list of published keys, package provenance and
// path context to the findings (package downgrade says how) and sorts them again by their new
// severities. Package records are read once per view and partition, only
// for views where some finding lies in a file. Only files that hold
// findings are hashed, each at most once, smallest first, and no more of a
// finding's files once one has proved it public on that machine: the
// others are public by propagation. Hashing is what costs (a desktop's
// /usr holds findings in a gigabyte of packaged binaries).
func (s *Scanner) downgrade(ctx context.Context, ts []*target, findings []report.Finding, pr *provenanceReader) {
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
	machineOf := func(target string) string { return machine[target] }
	if pr == nil {
		pr = newProvenanceReader(newMemoryGate())
	}
	// A published key (a kernel's self-test vector in RAM, a test key in
	// a program) is public wherever it lies: no file need be hashed.
	known := downgrade.NewKnownPublic()
	published := make([]bool, len(findings))
	// The files each finding holds, smallest first, by finding.
	cands := make([][]candidate, len(findings))
	for i := range findings {
		f := &findings[i]
		if f.Category == report.CategoryRollbackRisk || f.Category == report.CategoryClonedIdentity {
			continue
		}
		if published[i] = known.Apply(f); published[i] {
			continue
		}
		for j, l := range f.Locations {
			if ctx.Err() != nil {
				return
			}
			v := views[l.View]
			if v == nil || l.Path == "" || l.State != report.StateAllocated || !isDiskKind(v.view.Kind) {
				continue
			}
			if c, ok := pr.lookup(ctx, v, l); ok {
				c.loc, c.machine = j, cmpOr(machineOf(l.Target), l.Target)
				cands[i] = append(cands[i], c)
			}
		}
		slices.SortStableFunc(cands[i], func(a, b candidate) int { return cmp.Compare(a.size, b.size) })
	}
	pr.hashAhead(ctx, cands)
	for i := range findings {
		if ctx.Err() != nil {
			return
		}
		f := &findings[i]
		if f.Category == report.CategoryRollbackRisk || f.Category == report.CategoryClonedIdentity || published[i] {
			continue
		}
		facts := make([]downgrade.LocationFacts, len(f.Locations))
		public := map[string]bool{}
		for _, c := range cands[i] {
			if public[c.machine] {
				continue // public by propagation: no need to hash this file
			}
			facts[c.loc].Owners = pr.check(ctx, c)
			for _, o := range facts[c.loc].Owners {
				public[c.machine] = public[c.machine] || !o.Modified
			}
		}
		downgrade.Apply(f, facts, machineOf)
	}
	sortFindings(findings)
}

// hashAhead hashes, on every core, the files that the sequential pass
// will hash first: each finding's smallest file on each machine. The
// pass then finds their digests cached and hashes more only where a
// first file was modified.
func (pr *provenanceReader) hashAhead(ctx context.Context, cands [][]candidate) {
	var jobs []fileKey
	queued := map[fileKey]bool{}
	for _, cs := range cands {
		first := map[string]bool{}
		for _, c := range cs {
			if first[c.machine] {
				continue
			}
			first[c.machine] = true
			for _, o := range c.recs {
				k := fileKey{c.pk, c.file, o.Digest.Algo}
				if len(o.Digest.Sum) > 0 && checkable(k.algo) && !queued[k] {
					queued[k] = true
					jobs = append(jobs, k)
				}
			}
		}
	}
	sums := make([]fileSum, len(jobs))
	onEveryCore(ctx, len(jobs), func(_, i int) {
		k := jobs[i]
		sums[i].sum, sums[i].err = pr.hashFile(ctx, k.v.filesystem(ctx).m.Files(k.part), k.path, k.algo)
	})
	for i, k := range jobs {
		pr.store(k, sums[i])
	}
}

// store caches a digest and notes on the view why a file could not be
// hashed.
func (pr *provenanceReader) store(k fileKey, fs fileSum) {
	pr.sums[k] = fs
	if fs.err != nil && !errors.Is(fs.err, context.Canceled) {
		k.v.notes = append(k.v.notes, fmt.Sprintf("package provenance: %s: %v", k.path, fs.err))
	}
}

// provenanceReader caches package records per view and partition, and
// file sizes and digests per view, partition, path (and algorithm).
type provenanceReader struct {
	// gate bounds the memory of the decoders that hash decoded digests
	// on every core, with the decode pass's (newMemoryGate).
	gate  *decode.MemoryGate
	dbs   map[partKey]*pkgdb.DB
	sums  map[fileKey]fileSum
	sizes map[fileKey]int64
	// layerDBs counts the container layers whose records were read, per
	// view (maxLayerDBs), and layerLookups bounds their lookups in layer
	// directories, per view (maxLayerLookups).
	layerDBs     map[*viewState]int
	layerLookups map[*viewState]*layerstore.Budget
	// decoded bounds the bytes that decoded digests decode, in all.
	decoded *pkgdb.DecodedBudget
}

func newProvenanceReader(gate *decode.MemoryGate) *provenanceReader {
	return &provenanceReader{gate: gate, dbs: map[partKey]*pkgdb.DB{}, sums: map[fileKey]fileSum{}, sizes: map[fileKey]int64{}, layerDBs: map[*viewState]int{}, layerLookups: map[*viewState]*layerstore.Budget{},
		decoded: pkgdb.NewDecodedBudget(pkgdb.DefaultDecodedBudget)}
}

// partKey names a set of package records: a view's partition, or a
// container image layer in it (layer, when its Dir is set: its records
// are the merged layers' own, see layerstore).
type partKey struct {
	v     *viewState
	part  string
	layer layerstore.Layer
}

// maxLayerDBs bounds the container layers per view whose package records
// are read (a Docker host keeps hundreds; each read parses a dpkg
// database). Findings in further layers get no provenance, with a note.
// maxLayerLookups bounds the lookups their merged filesystems make in
// layer directories, per view: a file that upper layers lack is looked
// up in each, and a guest's lower lists may chain 500 layers. A Debian
// image's records cost a few hundred (139 to 412 a layer on make
// precision's trixie-docker); past the bound, the readers' errors say so
// in the view's notes.
const (
	maxLayerDBs     = 256
	maxLayerLookups = 4 << 20
)

// recordsKey returns the records that may own the file at guest path p
// of a view's partition, and p's path in them: a file inside a container
// image layer (/var/lib/docker/overlay2/ID/diff/usr/...) is owned by the
// layer's own package records, as /usr/..., not by the VM's.
func recordsKey(v *viewState, part, p string) (partKey, string) {
	if l, inner, ok := layerstore.Split(p); ok {
		return partKey{v, part, l}, inner
	}
	return partKey{v: v, part: part}, p
}

type fileKey struct {
	partKey
	path, algo string
}

type fileSum struct {
	sum []byte
	err error
}

// candidate is a location whose file some package records: the file to
// hash (the location's, or the source of a compiled .pyc) and its records.
type candidate struct {
	pk      partKey
	path    string // the location's file
	file    string // the file whose digest the records hold
	recs    []pkgdb.Owner
	size    int64
	loc     int
	machine string
}

// lookup finds the package records of the file holding location l of
// view v: the file's own, or, for a CPython __pycache__/*.pyc that no
// package records, its source's when the cache was compiled from that
// very source (py3compile makes them at install).
//
// A file with several names (hard links) is looked up under each in turn:
// a package file hard-linked elsewhere is still that package's bytes.
func (pr *provenanceReader) lookup(ctx context.Context, v *viewState, l report.Location) (candidate, bool) {
	for _, p := range l.Names() {
		if c, ok := pr.lookupPath(ctx, v, l.Partition, p); ok {
			return c, true
		}
	}
	return candidate{}, false
}

// lookupPath is lookup for one name of the file.
func (pr *provenanceReader) lookupPath(ctx context.Context, v *viewState, partition, name string) (candidate, bool) {
	pk, owned := recordsKey(v, partition, name)
	c := candidate{pk: pk, path: name, file: name, recs: pr.packages(ctx, pk).Lookup(owned)}
	if len(c.recs) == 0 {
		c.file = pycSource(name)
		if c.file == "" {
			return c, false
		}
		if c.recs = pr.packages(ctx, pk).Lookup(pycSource(owned)); len(c.recs) == 0 || !pycCompiledFrom(v.filesystem(ctx).m.Files(partition), name, c.file) {
			return c, false
		}
	}
	c.size = pr.size(ctx, c)
	return c, true
}

// packages returns the package records of a view's partition, or of a
// container layer in it, read once.
func (pr *provenanceReader) packages(ctx context.Context, pk partKey) *pkgdb.DB {
	db, ok := pr.dbs[pk]
	if !ok {
		if pk.layer.Dir == "" {
			db = readPackages(ctx, pk.v, pk.part, pk.layer, nil, pr.gate)
		} else if pr.layerDBs[pk.v]++; pr.layerDBs[pk.v] <= maxLayerDBs {
			if pr.layerLookups[pk.v] == nil {
				pr.layerLookups[pk.v] = layerstore.NewBudget(maxLayerLookups)
			}
			db = readPackages(ctx, pk.v, pk.part, pk.layer, pr.layerLookups[pk.v], pr.gate)
		} else if pr.layerDBs[pk.v] == maxLayerDBs+1 {
			pk.v.notes = append(pk.v.notes, fmt.Sprintf("package records of container layers: only the first %d layers holding findings were read; files in others get no provenance", maxLayerDBs))
		}
		pr.dbs[pk] = db
	}
	return db
}

// size is the size of the file to hash, for hashing small files first.
func (pr *provenanceReader) size(ctx context.Context, c candidate) int64 {
	k := fileKey{c.pk, c.file, ""}
	if n, ok := pr.sizes[k]; ok {
		return n
	}
	n := int64(-1)
	if f, err := c.pk.v.filesystem(ctx).m.Files(c.pk.part).Open(c.file); err == nil {
		n = f.Size()
	}
	pr.sizes[k] = n
	return n
}

// check compares the candidate's file with each of its records. For a
// compiled file only the unmodified records count: a cache compiled from
// an edited source is no package's file.
func (pr *provenanceReader) check(ctx context.Context, c candidate) []report.Provenance {
	v := c.pk.v
	files := v.filesystem(ctx).m.Files(c.pk.part)
	out := make([]report.Provenance, 0, len(c.recs))
	for _, o := range c.recs {
		prov := report.Provenance{Manager: o.Manager, Package: o.Package, Version: o.Version, Arch: o.Arch,
			Target: v.t.path, Path: c.path, Conffile: o.Conffile, Modified: true}
		if c.file != c.path {
			prov.Source = c.file
		}
		if len(o.Digest.Sum) > 0 && checkable(o.Digest.Algo) {
			prov.Digest = o.Digest.Algo
			fk := fileKey{c.pk, c.file, o.Digest.Algo}
			fs, ok := pr.sums[fk]
			if !ok {
				fs.sum, fs.err = pr.hashFile(ctx, files, c.file, o.Digest.Algo)
				pr.store(fk, fs)
			}
			prov.Modified = fs.err != nil || !bytes.Equal(fs.sum, o.Digest.Sum)
		}
		if prov.Source == "" || !prov.Modified {
			out = append(out, prov)
		}
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
	if n, _ := c.ReadAt(h[:], 0); n != len(h) {
		return false
	}
	s, err := files.Open(src)
	if err != nil {
		return false
	}
	mtime, err := files.Mtime(src)
	if err != nil {
		return false
	}
	le := binary.LittleEndian
	return h[2] == '\r' && h[3] == '\n' && le.Uint32(h[4:]) == 0 &&
		le.Uint32(h[8:]) == mtime && le.Uint32(h[12:]) == uint32(s.Size())
}

// readPackages reads the package records of one partition of a view, or,
// with layer set, those of that container image layer of the partition: the records of the layer's merged filesystem (its
// directory over the layers below it), as the container sees them,
// within the view's budget of lookups in layer directories. A
// partition whose filesystem cannot be read has none: its files count as
// owned by no package. The decoders the records need (apt's compressed
// indexes) hold their memory at gate, with the decode pass's.
func readPackages(ctx context.Context, v *viewState, partition string, layer layerstore.Layer, lookups *layerstore.Budget, gate *decode.MemoryGate) *pkgdb.DB {
	fi := v.filesystem(ctx)
	if fi == nil || fi.m == nil {
		return nil
	}
	files := fi.m.Files(partition)
	if files == nil {
		return nil
	}
	where := "package records on " + partition
	var fsys pkgdb.FS = files
	if layer.Dir != "" {
		where = fmt.Sprintf("package records of container layer %s on %s", layer.Dir, partition)
		dirs, err := layerstore.Chain(files, layer)
		if err != nil {
			// The layers read so far still give what they record.
			v.notes = append(v.notes, fmt.Sprintf("%s: %v", where, err))
		}
		fsys = layerstore.NewMerged(files, dirs, lookups)
	}
	db := pkgdb.ReadGated(ctx, fsys, gate)
	for _, err := range db.Errors {
		if !errors.Is(err, context.Canceled) {
			v.notes = append(v.notes, fmt.Sprintf("%s: %v", where, err))
		}
	}
	if db.Truncated {
		v.notes = append(v.notes, where+": too many, the rest were not read")
	}
	return db
}

// hashFile streams the file through the named digest. A Go module zip's
// "h1" hash reads the zip's members (pkgdb.ZipHash1).
func (pr *provenanceReader) hashFile(ctx context.Context, files *guestfs.Files, path, algo string) ([]byte, error) {
	fl, err := files.Open(path)
	if err != nil {
		return nil, err
	}
	if algo == pkgdb.GoModHashAlgo {
		return pkgdb.ZipHash1(fl, fl.Size(), pkgdb.MaxGoModZipBytes)
	}
	return pr.hashReader(ctx, io.NewSectionReader(fl, 0, fl.Size()), algo, make([]byte, min(fl.Size()+1, 1<<20)))
}

// hashReader streams f through the named digest, reading into buf. A
// decoded digest (apt's lists kept compressed) hashes what f decodes to,
// within the expansion cap of f's size and the scan's budget.
func (pr *provenanceReader) hashReader(ctx context.Context, f *io.SectionReader, algo string, buf []byte) ([]byte, error) {
	if _, ok := pkgdb.IsDecodedDigest(algo); ok {
		return pkgdb.DecodedHash(ctx, f, algo, pkgdb.DecodedDigestCap(f.Size()), pr.decoded, pr.gate)
	}
	h := newHash(algo)
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

// checkable reports whether hashFile computes the digest algorithm.
func checkable(algo string) bool { return streamable(algo) || algo == pkgdb.GoModHashAlgo }

// streamable reports whether hashReader computes the digest algorithm.
func streamable(algo string) bool {
	plain, _ := pkgdb.IsDecodedDigest(algo)
	return newHash(plain) != nil
}

// newHash returns a hash for a package manager's digest algorithm, or nil
// for one that cannot be checked.
func newHash(algo string) hash.Hash {
	switch algo {
	case "md5":
		return md5.New()
	case "sha1":
		return sha1.New()
	case "sha224":
		return sha256.New224()
	case "sha256":
		return sha256.New()
	case "sha384":
		return sha512.New384()
	case "sha512":
		return sha512.New()
	}
	return nil
}
