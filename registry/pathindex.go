package registry

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"
)

// Entry kinds recorded in a pathIndex, in the low two bits of each hash.
const (
	entryDir      = 0 // a directory entry
	entryFile     = 1 // any non-directory entry (file, link, device...)
	entryWhiteout = 2 // ".wh.NAME": NAME of lower layers is deleted
	entryOpaque   = 3 // ".wh..wh..opq" in DIR: DIR's lower contents are hidden
)

// pathIndex records what one layer does to the merged filesystem: which
// paths it adds (and whether as directories), which it whites out and
// which directories it makes opaque. It stores 8 bytes per entry (a
// truncated SHA-256 of the cleaned path with the kind in the low two bits)
// rather than the paths themselves, so that it is small enough to keep in
// the --state file for every layer: a later run can decide whether a layer
// hides a path found in a lower one without pulling the layer again. A
// false "hidden" needs a 62-bit hash collision between two paths.
type pathIndex struct {
	hashes []uint64 // sorted, deduplicated
}

// pathHash hashes a cleaned absolute path together with an entry kind.
func pathHash(p string, kind uint64) uint64 {
	sum := sha256.Sum256([]byte(p))
	return binary.LittleEndian.Uint64(sum[:8])&^3 | kind
}

// cleanPath turns a tar entry name into a cleaned absolute path ("./etc/x",
// "etc/x/" and "/etc/x" all become "/etc/x").
func cleanPath(name string) string {
	return path.Clean("/" + name)
}

// whiteoutOf classifies a cleaned path: for ".wh..wh..opq" it returns the
// directory made opaque and entryOpaque, for ".wh.NAME" the deleted path
// and entryWhiteout, and ok=false for anything else (including other
// ".wh..wh." AUFS metadata, which deletes nothing).
func whiteoutOf(p string) (target string, kind uint64, ok bool) {
	dir, base := path.Split(p)
	dir = path.Clean(dir)
	switch {
	case base == ".wh..wh..opq":
		return dir, entryOpaque, true
	case strings.HasPrefix(base, ".wh..wh."):
		return "", 0, false
	case strings.HasPrefix(base, ".wh.") && len(base) > 4:
		return path.Join(dir, base[4:]), entryWhiteout, true
	}
	return "", 0, false
}

// indexBuilder collects a layer's entries while its tar is read.
type indexBuilder struct{ hashes []uint64 }

// add records one tar entry (its cleaned path and whether it is a
// directory); whiteout files are recorded as whiteouts, not as entries.
func (b *indexBuilder) add(p string, isDir bool) {
	if t, kind, ok := whiteoutOf(p); ok {
		b.hashes = append(b.hashes, pathHash(t, kind))
		return
	}
	kind := uint64(entryFile)
	if isDir {
		kind = entryDir
	}
	b.hashes = append(b.hashes, pathHash(p, kind))
}

func (b *indexBuilder) build() pathIndex {
	h := slices.Clone(b.hashes)
	slices.Sort(h)
	return pathIndex{hashes: slices.Compact(h)}
}

func (x pathIndex) has(p string, kind uint64) bool {
	_, ok := slices.BinarySearch(x.hashes, pathHash(p, kind))
	return ok
}

// hides reports whether this layer, placed above the layer holding p,
// removes p from the merged filesystem: it has an entry at p itself (a
// file or directory replacing it), a whiteout of p or of an ancestor, a
// non-directory at an ancestor (replacing the directory), or an opaque
// marker on an ancestor (including the root).
func (x pathIndex) hides(p string) bool {
	if len(x.hashes) == 0 {
		return false
	}
	if x.has(p, entryDir) || x.has(p, entryFile) || x.has(p, entryWhiteout) {
		return true
	}
	for a := path.Dir(p); ; a = path.Dir(a) {
		if x.has(a, entryOpaque) {
			return true
		}
		if a == "/" {
			return false
		}
		if x.has(a, entryFile) || x.has(a, entryWhiteout) {
			return true
		}
	}
}

// MarshalJSON stores the hashes as base64 of little-endian uint64s.
func (x pathIndex) MarshalJSON() ([]byte, error) {
	b := make([]byte, 8*len(x.hashes))
	for i, h := range x.hashes {
		binary.LittleEndian.PutUint64(b[8*i:], h)
	}
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

// UnmarshalJSON reads what MarshalJSON wrote; the hashes are re-sorted so
// that a hand-edited state file cannot break the binary search.
func (x *pathIndex) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return fmt.Errorf("path index: %w", err)
	}
	if len(b)%8 != 0 {
		return fmt.Errorf("path index: %d bytes is not a multiple of 8", len(b))
	}
	h := make([]uint64, len(b)/8)
	for i := range h {
		h[i] = binary.LittleEndian.Uint64(b[8*i:])
	}
	slices.Sort(h)
	x.hashes = slices.Compact(h)
	return nil
}

// hiddenAbove reports whether any of the layers above (in order) hides p.
func hiddenAbove(above []*pathIndex, p string) bool {
	for _, x := range above {
		if x != nil && x.hides(p) {
			return true
		}
	}
	return false
}
