package registry

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// StateVersion is the version of the --state file format: 2 since
// 2026-12-08, when the package records it stores were first scrubbed of
// secrets (scrubRecord). A version 1 file still loads: its blobs that
// hold records, which may hold secrets in clear, are dropped (their
// layers are read again), the rest kept, with a note (LoadNotes).
const StateVersion = 2

// maxStateBytes bounds what LoadState reads.
const maxStateBytes = 4 << 30

// State is what a scheduled scan remembers between runs (--state FILE).
//
// It is a single JSON file, replaced atomically (written to a temporary
// file in the same directory, synced, renamed over the old one, directory
// synced), rather than an embedded database: it needs no dependency, the
// data is small (per blob a few findings and an 8-byte hash per file path,
// per fingerprint a date), it is read and written whole once per run, and
// a crash or a full disk leaves either the old or the new file, never a
// torn one. A run reads it at start and saves it at the end (also when
// interrupted: results of blobs that were read completely stay valid).
// Concurrent runs (shards) must use separate files; merge their reports
// with 'imgaudit merge'.
//
// Format (JSON object):
//
//	version       2 (1 before 2026-12-08: records not scrubbed)
//	tool          the imgaudit version that wrote it
//	rules_key     hash of the tool version, the enabled rule IDs, their
//	              allowlists and the user rules' definitions (RulesKey); blob
//	              results made under another key are dropped on load, since
//	              a new rule could find more in them (fingerprints are kept)
//	updated       time of the last save (RFC 3339)
//	manifests     manifest digest → {refs, platform, config, layers, scanned}
//	blobs         blob digest → the blob's scan result: kind, media_type,
//	              compression, sizes, files, findings (locations relative to
//	              the blob: path in the layer and offset in the file),
//	              disks (targets of disk images inside), index (base64 of
//	              the sorted 8-byte hashes of the blob's paths, whiteouts
//	              and opaque directories, to decide exposures in images that
//	              stack it under new layers), notes, records_zstd (the
//	              layer's package-record files, scrubbed of what the
//	              detectors find and of URLs' userinfo, zstd-packed each;
//	              "records", unpacked, in states written before), links,
//	              digests, used (when a run last took it from the state
//	              or put it there; since 2026-12-07)
//	fingerprints  secret fingerprint → time first seen
//
// Blobs that failed (network, truncated stream) are not stored, so that the
// next run reads them again.
type State struct {
	Version      int                       `json:"version"`
	Tool         string                    `json:"tool,omitempty"`
	RulesKey     string                    `json:"rules_key"`
	Updated      time.Time                 `json:"updated"`
	Manifests    map[string]*StateManifest `json:"manifests"`
	Blobs        map[string]*blobResult    `json:"blobs"`
	Fingerprints map[string]time.Time      `json:"fingerprints"`

	path string
	// known is the set of fingerprints as loaded: "new" means not in it.
	known map[string]bool
	// used holds the blobs this run took from the state or put in it.
	used map[string]bool
	// notes say what loading the file changed (an older version's).
	notes []string
}

// DefaultStateRetention is how long a state keeps a manifest no run
// scanned and a blob no run used (Prune): a nightly scan's images that
// were deleted or retagged a month ago.
const DefaultStateRetention = 30 * 24 * time.Hour

// StateManifest records one scanned image manifest.
type StateManifest struct {
	Refs     []string  `json:"refs"`
	Platform string    `json:"platform,omitempty"`
	Config   string    `json:"config,omitempty"`
	Layers   []string  `json:"layers"`
	Scanned  time.Time `json:"scanned"`
}

// LoadState reads the state file at path; a missing file gives an empty
// state that Save will create.
func LoadState(path string) (*State, error) {
	st := &State{Version: StateVersion, path: path}
	f, err := os.Open(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		st.init()
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("state: %w", err)
	}
	defer f.Close()
	dec := json.NewDecoder(io.LimitReader(f, maxStateBytes))
	if err := dec.Decode(st); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	if st.Version != StateVersion && st.Version != 1 {
		return nil, fmt.Errorf("state %s: version %d, want %d", path, st.Version, StateVersion)
	}
	// A version 1 file stored its records as the layers held them: a
	// password in a yarn.lock's URL, a token in a record, in clear; and
	// records stored unpacked ("records") were never scrubbed, whatever
	// the version says. Those blobs go (the next run reads their layers
	// again, and the save leaves no copy); fingerprints, manifests and
	// the other blobs stay.
	dropped := 0
	for d, b := range st.Blobs {
		if len(b.Records) > 0 || st.Version == 1 && len(b.PackedRecords) > 0 {
			delete(st.Blobs, d)
			dropped++
		}
	}
	if dropped > 0 {
		st.notes = append(st.notes, fmt.Sprintf("state %s (version %d): %d cached layers whose package records were stored unscrubbed are dropped, and will be read again", path, st.Version, dropped))
	}
	st.path = path
	st.init()
	for _, b := range st.Blobs {
		if b.Used.IsZero() { // written before blobs had it: as old as that save
			b.Used = st.Updated
		}
	}
	return st, nil
}

// LoadNotes says what LoadState changed in the file it read (an older
// version's blobs it dropped), for the run's log.
func (st *State) LoadNotes() []string { return st.notes }

func (st *State) init() {
	if st.Manifests == nil {
		st.Manifests = map[string]*StateManifest{}
	}
	if st.Blobs == nil {
		st.Blobs = map[string]*blobResult{}
	}
	if st.Fingerprints == nil {
		st.Fingerprints = map[string]time.Time{}
	}
	st.known, st.used = map[string]bool{}, map[string]bool{}
	for fp := range st.Fingerprints {
		st.known[fp] = true
	}
}

// useRules drops cached blob results made with another rule set.
func (st *State) useRules(key string) {
	if st.RulesKey != key {
		st.Blobs = map[string]*blobResult{}
		st.Manifests = map[string]*StateManifest{}
		st.RulesKey = key
	}
}

func (st *State) blob(digest string) *blobResult {
	r := st.Blobs[digest]
	if r != nil {
		st.used[digest] = true
	}
	return r
}

func (st *State) putBlob(r *blobResult) {
	st.Blobs[r.Digest] = r
	st.used[r.Digest] = true
}

// Prune forgets what no run has needed for retention before now: the
// manifests last scanned before, and the blobs last used before that no
// manifest left lists (a state otherwise grows with every image a
// registry ever held, and a run holds all of it in memory). The
// fingerprints are kept, so a secret seen before is not new when an image
// comes back. It returns how many manifests and blobs it dropped.
func (st *State) Prune(now time.Time, retention time.Duration) (manifests, blobs int) {
	cutoff := now.Add(-retention)
	for d, m := range st.Manifests {
		if m.Scanned.Before(cutoff) {
			delete(st.Manifests, d)
			manifests++
		}
	}
	listed := map[string]bool{}
	for _, m := range st.Manifests {
		for _, l := range m.Layers {
			listed[l] = true
		}
		listed[m.Config] = true
	}
	for d, b := range st.Blobs {
		if !st.used[d] && !listed[d] && b.Used.Before(cutoff) {
			delete(st.Blobs, d)
			blobs++
		}
	}
	return manifests, blobs
}

func (st *State) putManifest(digest, ref, platform, config string, layers []string, at time.Time) {
	m := st.Manifests[digest]
	if m == nil {
		m = &StateManifest{}
		st.Manifests[digest] = m
	}
	if !slices.Contains(m.Refs, ref) {
		m.Refs = append(m.Refs, ref)
		slices.Sort(m.Refs)
	}
	m.Platform, m.Config, m.Layers, m.Scanned = platform, config, layers, at
}

// knows reports whether fp was known before this run.
func (st *State) knows(fp string) bool { return st.known[fp] }

func (st *State) remember(fp string, at time.Time) {
	if _, ok := st.Fingerprints[fp]; !ok {
		st.Fingerprints[fp] = at
	}
}

// Save writes the state atomically to the file it was loaded from.
func (st *State) Save(tool string) error {
	st.Version, st.Tool, st.Updated = StateVersion, tool, time.Now().UTC()
	for d := range st.used {
		if b := st.Blobs[d]; b != nil {
			b.Used = st.Updated
		}
	}
	dir := filepath.Dir(st.path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(st.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("state: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	enc := json.NewEncoder(tmp)
	if err := enc.Encode(st); err != nil {
		tmp.Close()
		return fmt.Errorf("state: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if err := os.Rename(tmp.Name(), st.path); err != nil {
		return fmt.Errorf("state: %w", err)
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// hashStrings is a hex SHA-256 over strings, each terminated by a NUL.
func hashStrings(ss []string) string {
	h := sha256.New()
	for _, s := range ss {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}
