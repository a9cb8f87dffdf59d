package report

import "time"

// Categories the scanner adds on top of the detectors' own.
const (
	CategoryClonedIdentity = "cloned-identity"
	CategoryRollbackRisk   = "rollback-risk"
)

// Timeline is one VM's views in time order: backing files (oldest), internal
// snapshots, backups and memory saves by date, and the current state last.
type Timeline struct {
	VM      string          `json:"vm"`
	Targets []string        `json:"targets"`
	Points  []TimelinePoint `json:"points"`
	Secrets []TimelineRow   `json:"secrets"`
}

// TimelinePoint is one view of a VM at one point in time.
type TimelinePoint struct {
	View   string     `json:"view"` // view ID
	Target string     `json:"target"`
	Kind   string     `json:"kind"` // backing, snapshot, backup, memory, current
	Name   string     `json:"name"`
	Time   *time.Time `json:"time,omitempty"`
	// Label is a short column name for matrix displays ("base", "golden", "now").
	Label string `json:"label"`
}

// TimelineRow says at which points of a timeline a secret exists.
type TimelineRow struct {
	Fingerprint string `json:"fingerprint"`
	Rule        string `json:"rule"`
	Preview     string `json:"preview"`
	// Present lists the views (point IDs) holding the secret, in time order.
	Present []string `json:"present"`
	// First and Last are the first and last points holding it: the span of
	// the timeline in which the secret exists.
	First string `json:"first"`
	Last  string `json:"last"`
	// Current is true when the current state holds it (as a file or in
	// free blocks).
	Current bool `json:"current"`
	// Residue lists the points of Present at which the secret is only
	// residue: free blocks of that view's filesystem, or clusters of the
	// view's image file that no table references. Everywhere else in
	// Present a file (or a view without a readable filesystem, or RAM)
	// holds it.
	Residue []string `json:"residue,omitempty"`
}

// SharedIdentity is one secret or identity seen in more than one VM.
type SharedIdentity struct {
	Fingerprint    string   `json:"fingerprint"`
	Kind           string   `json:"kind"` // "ssh-host-key", "tls-key", "wireguard-key", "tsig-key", "machine-id", "private-key", "secret"
	Rule           string   `json:"rule"`
	Preview        string   `json:"preview"`
	KeyFingerprint string   `json:"key_fingerprint,omitempty"`
	VMs            []string `json:"vms"`
	Paths          []string `json:"paths,omitempty"`
}
