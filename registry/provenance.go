package registry

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/pkgdb"
	"github.com/imgaudit/imgaudit/report"
	"github.com/klauspost/compress/zstd"
)

// layerProvenance applies package provenance and path context (package
// downgrade, as the disk scanner does for a guest's files) to the
// findings in an image's layer files. The image's package records are
// its layers' record files merged as the image's filesystem merges them
// (a layer's whiteouts and replacements hide what lies below), read by
// pkgdb over memory; a file's digests are those its layer's walk took
// (files of up to the scan window that hold findings). A finding that
// also lies inside a disk image in a layer is left to the disk scanner's
// downgrades, and so is one already info (a published key). It returns
// notes for the image's target: the readers' errors, and where the
// image's records passed maxBytes.
//
// The merged records are held unpacked while the image is judged, at
// most maxBytes of them (maxImageRecordBytes): each layer may keep 64 MiB,
// which zstd packs to almost nothing where they repeat a line, so an
// image of 16 such layers (2.9 MB of gzip) held a GiB here. The first
// layer whose records would pass maxBytes, and every layer above it, add
// none (their whiteouts still hide the records below): the files those
// records list get no provenance, and keep their findings' severity.
// Decoders the records need hold their memory at gate, the layers'.
func layerProvenance(ctx context.Context, target string, results []*blobResult, indexes []*pathIndex, findings []report.Finding, maxBytes int64, gate *decode.MemoryGate) []string {
	files, links := map[string][]byte{}, map[string]string{}
	var notes []string
	var held int64 // the bytes of files
	full := false  // a layer's records passed maxBytes: no more are read
	var dec *zstd.Decoder
	defer func() {
		if dec != nil {
			dec.Close()
		}
	}()
	for i, r := range results {
		if r == nil || indexes[i] == nil {
			continue
		}
		for p, b := range files {
			if indexes[i].hides(p) {
				held -= int64(len(b))
				delete(files, p)
			}
		}
		for p := range links {
			if indexes[i].hides(p) {
				delete(links, p)
			}
		}
		if full {
			continue
		}
		records := r.Records
		if len(r.PackedRecords) > 0 {
			var err error
			if dec == nil {
				dec, err = newRecordDecoder()
			}
			if err == nil {
				records, err = r.unpackedRecords(dec)
			}
			if err != nil {
				notes = append(notes, fmt.Sprintf("package provenance: layer %d: %v", i, err))
			}
		}
		grows := int64(0)
		for p, b := range records {
			grows += int64(len(b)) - int64(len(files[p]))
		}
		if held+grows > maxBytes {
			full = true
			notes = append(notes, fmt.Sprintf("package provenance: the image's package records pass %d MiB at layer %d: that layer's and those above it are not read, so the files they list get no package provenance", maxBytes>>20, i))
			continue
		}
		held += grows
		for p, b := range records {
			files[p] = b
		}
		for p, t := range r.Links {
			links[p] = t
		}
	}
	var db *pkgdb.DB
	if len(files) > 0 {
		db = pkgdb.ReadGated(ctx, pkgdb.NewMemFS(files, links), gate)
		for _, err := range db.Errors {
			notes = append(notes, fmt.Sprintf("package provenance: %v", err))
		}
		if db.Truncated {
			notes = append(notes, "package provenance: the package records list more files than are kept; the rest get no provenance")
		}
	}
	for i := range findings {
		f := &findings[i]
		if f.Severity == report.SeverityInfo || f.Category == report.CategoryRollbackRisk || f.Category == report.CategoryClonedIdentity ||
			slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Target != target }) {
			continue
		}
		facts := make([]downgrade.LocationFacts, len(f.Locations))
		for j, l := range f.Locations {
			if l.Path == "" || l.LayerIndex == nil || *l.LayerIndex < 0 || *l.LayerIndex >= len(results) || results[*l.LayerIndex] == nil {
				continue
			}
			facts[j].Owners = layerOwners(db, target, l.Path, results[*l.LayerIndex].Digests[l.Path])
		}
		downgrade.Apply(f, facts, nil)
	}
	return notes
}

// layerOwners is what the records say of the layer file at p whose
// digests are sums: each owner, unmodified when the digest it records
// equals the file's. A file that was not hashed (larger than the scan
// window) is not judged: no owners, as if no package recorded it.
func layerOwners(db *pkgdb.DB, target, p string, sums map[string][]byte) []report.Provenance {
	owners := db.Lookup(p)
	if len(owners) == 0 || sums == nil {
		return nil
	}
	out := make([]report.Provenance, 0, len(owners))
	for _, o := range owners {
		prov := report.Provenance{Manager: o.Manager, Package: o.Package, Version: o.Version, Arch: o.Arch,
			Target: target, Path: p, Conffile: o.Conffile, Modified: true}
		if len(o.Digest.Sum) > 0 {
			if sum, ok := sums[o.Digest.Algo]; ok {
				prov.Digest = o.Digest.Algo
				prov.Modified = !bytes.Equal(sum, o.Digest.Sum)
			}
		}
		out = append(out, prov)
	}
	return out
}
