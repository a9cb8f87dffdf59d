// Package report holds imgaudit's report model and its writers (table, JSON,
// SARIF, HTML). The JSON form of Report is a public contract documented in
// docs/report.md: fields may be added, never renamed or dropped.
package report

import (
	"strings"
	"time"
)

// docs/report.md's JSON examples are scans of the demo (testdata/demo).
//go:generate go run ../internal/cmd/reportdoc ../testdata/demo ../docs/report.md

// SchemaVersion is bumped when fields are added; consumers ignore unknown
// fields. 2 added incomplete_reasons, skipped, targets[].notes, severity
// "info" and findings' reasons and provenance; 3 added what the scan cuts
// (summary.truncated, views[].truncated, locations_truncated), decoding
// (views[].decoding, locations' decoded and decoded_offset), provenance's
// source and targets[].inside; 4 added locations' links and
// links_omitted (hard links). docs/report.md lists them.
const SchemaVersion = 4

// Exposure classes. Everything but Live is outside the guest's control.
const (
	ExposureLive         = "live"
	ExposureDeleted      = "deleted"
	ExposureSnapshot     = "snapshot"
	ExposureBacking      = "backing"
	ExposureUnreferenced = "unreferenced"
	ExposureMemory       = "memory"
	ExposureLayer        = "layer"
)

// exposureOrder ranks classes for display: most surprising first.
var exposureOrder = []string{ExposureSnapshot, ExposureBacking, ExposureDeleted, ExposureUnreferenced, ExposureMemory, ExposureLayer, ExposureLive}

// ExposureRank returns the display rank of an exposure class (lower first).
func ExposureRank(e string) int {
	for i, x := range exposureOrder {
		if x == e {
			return i
		}
	}
	return len(exposureOrder)
}

// Location states.
const (
	StateAllocated = "allocated"
	StateFree      = "free"
	StateUnknown   = "unknown"
	// StateDeletedRecord: the bytes of a deleted file whose record is
	// still intact (an NTFS MFT record), so its path is known.
	StateDeletedRecord = "deleted-record"
)

// Report is the result of one imgaudit run.
type Report struct {
	SchemaVersion int       `json:"schema_version"`
	Tool          Tool      `json:"tool"`
	Command       string    `json:"command"` // "scan", "registry", "merge"
	Started       time.Time `json:"started"`
	Finished      time.Time `json:"finished"`
	// Complete is false when the run was interrupted (Ctrl-C, deadline) or
	// any target, view or backing file could not be read completely
	// (CheckComplete); findings are then partial.
	Complete         bool   `json:"complete"`
	IncompleteReason string `json:"incomplete_reason,omitempty"`
	// IncompleteReasons lists every reason the run is incomplete, one per
	// target error, plus the interruption.
	IncompleteReasons []Incomplete `json:"incomplete_reasons"`
	FailOn            string       `json:"fail_on"`
	Targets           []Target     `json:"targets"`
	// Skipped lists the files of scanned directories that were not
	// scanned, each with the reason.
	Skipped  []Skipped `json:"skipped"`
	Findings []Finding `json:"findings"`
	// Timelines order each VM's views in time and say, for each secret,
	// at which points it exists.
	Timelines []Timeline `json:"timelines,omitempty"`
	// SharedIdentity lists secrets and machine identities found in more
	// than one VM: clones that share SSH host keys, TLS keys or machine-id.
	SharedIdentity []SharedIdentity `json:"shared_identity,omitempty"`
	Summary        Summary          `json:"summary"`
	// Inputs are the host files the run read (targets, backing files,
	// extents, data files), and those its images were allowed to open
	// but could not read (since 2026-12-08: a backing file that failed to
	// decrypt, a Parallels DiskDescriptor.xml), by real path: the CLI
	// refuses to write a report over any of them. Not part of the JSON form.
	Inputs []string `json:"-"`
	// Judged, when set, is the --fail-on verdict on the whole run: a
	// report that --severity narrowed (ShowSeverities) keeps the verdict
	// of the report it came from, whose findings the gate judges.
	Judged *Verdict `json:"-"`
}

// Tool names the producer.
type Tool struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Target is one scanned file or directory member.
type Target struct {
	Path        string    `json:"path"`
	Format      string    `json:"format,omitempty"`
	VirtualSize int64     `json:"virtual_size,omitempty"`
	Backing     []Backing `json:"backing,omitempty"`
	Views       []View    `json:"views"`
	Errors      []string  `json:"errors"`
	// Notes are remarks on how the target was found: a symlink followed,
	// a name whose extension contradicts the content.
	Notes      []string    `json:"notes,omitempty"`
	Partitions []Partition `json:"partitions,omitempty"`
	// Unattributed names filesystems whose findings carry no path or state
	// (XFS, btrfs, NTFS, LVM, ...), so that nothing is silently skipped.
	Unattributed []string `json:"unattributed,omitempty"`
	// Digest is the manifest digest of a container image target (registry,
	// OCI layout, docker save tarball).
	Digest string `json:"digest,omitempty"`
	// Platform is a container image's os/arch[/variant], for images taken
	// from a multi-platform index.
	Platform string `json:"platform,omitempty"`
	// Store says which VM of a libvirt, Proxmox or VMware store the target
	// belongs to (store discovery); remediation names the store's own
	// commands with it.
	Store *StoreInfo `json:"store,omitempty"`
	// Inside places a disk image that was found as a file in another
	// target's guest filesystem (a hypervisor host's
	// /var/lib/libvirt/images) and scanned as a target of its own.
	Inside *Containment `json:"inside,omitempty"`
}

// Containment is where a target lies in another target: the view and
// the partition whose filesystem holds it, and its path there.
type Containment struct {
	Target    string `json:"target"`
	View      string `json:"view"`
	Partition string `json:"partition,omitempty"`
	Path      string `json:"path"`
}

// StoreInfo places a target in a discovered store.
type StoreInfo struct {
	Kind   string `json:"kind"`             // "libvirt", "proxmox", "vmware"
	VM     string `json:"vm"`               // the VM's name
	ID     string `json:"id,omitempty"`     // libvirt UUID, Proxmox VMID, VMware uuid.bios
	Config string `json:"config,omitempty"` // domain XML, qemu-server conf, .vmx
}

// Backing is one link of a target's backing chain.
type Backing struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	Format string `json:"format,omitempty"`
	Error  string `json:"error,omitempty"`
}

// View is one view of a target and what scanning it cost.
type View struct {
	ID             string            `json:"id"`
	Kind           string            `json:"kind"`
	Name           string            `json:"name"`
	Created        *time.Time        `json:"created,omitempty"`
	Size           int64             `json:"size"`
	AllocatedBytes int64             `json:"allocated_bytes"`
	ScannedBytes   int64             `json:"scanned_bytes"`
	Notes          []string          `json:"notes,omitempty"`
	Attrs          map[string]string `json:"attrs,omitempty"`
	Error          string            `json:"error,omitempty"`
	// Truncated says what the scan of this view found but did not keep,
	// by rule; absent when nothing was cut.
	Truncated *ViewTruncation `json:"truncated,omitempty"`
	// Decoding says what decoding the compressed and archived content of
	// this view read, and what it left out; absent when it decoded
	// nothing (or with --no-decode).
	Decoding *ViewDecoding `json:"decoding,omitempty"`
}

// ViewDecoding counts what decoding read in one view: the containers
// (files, partitions, streams found by their signature in free space,
// unreferenced clusters or RAM, freed compressed clusters) and what they
// held, and, by reason, the members and streams it did not decode in full
// (a cap, an encrypted member, corrupt data). A container whose bytes
// another view shares is decoded once, and counted in the view that
// decoded it.
type ViewDecoding struct {
	Containers   int64            `json:"containers"`
	Leaves       int64            `json:"leaves"`
	DecodedBytes int64            `json:"decoded_bytes"`
	Skipped      map[string]int64 `json:"skipped,omitempty"`
	// UnmodifiedPackageFiles counts the compressed or archived files
	// not decoded because package records prove them unmodified (their
	// content is the package's, public; --no-downgrade decodes them).
	UnmodifiedPackageFiles int64 `json:"unmodified_package_files,omitempty"`
	// StoredMembersNotRescanned counts the plain members of uncompressed
	// archives (tar, ar, cpio) that were not scanned a second time: their
	// bytes are the archive file's own, which the raw scan read and found
	// nothing in.
	StoredMembersNotRescanned int64 `json:"stored_members_not_rescanned,omitempty"`
}

// ViewTruncation counts, per rule ID, what a view's scan cut to stay
// within its limits (see Limits).
type ViewTruncation struct {
	// MatchesDropped: matches not kept because the rule already had
	// Limits.FindingsPerRulePerView findings of that severity in the view,
	// or the run Limits.FindingsPerScan findings (each match counts, so
	// one secret seen twice counts twice).
	MatchesDropped map[string]int64 `json:"matches_dropped,omitempty"`
	// HitsNotValidated: keyword hits whose context was not examined
	// because the rule's keyword repeated so densely that the rule spent
	// its budget of fruitless regexp runs (see docs/rules.md).
	HitsNotValidated map[string]int64 `json:"hits_not_validated,omitempty"`
}

// Limits are the caps a scan applies to what it keeps.
type Limits struct {
	FindingsPerRulePerView int `json:"findings_per_rule_per_view"`
	LocationsPerFinding    int `json:"locations_per_finding"`
	// FindingsPerScan and LocationsPerScan cap what the whole run keeps,
	// all rules, views and targets together, so that its memory stays
	// bounded however many rules an input fills. Absent in reports made
	// before they existed.
	FindingsPerScan  int `json:"findings_per_scan,omitempty"`
	LocationsPerScan int `json:"locations_per_scan,omitempty"`
}

// Truncation sums the cuts of a run; see ViewTruncation and
// Finding.LocationsTruncated.
type Truncation struct {
	Limits           Limits `json:"limits"`
	MatchesDropped   int64  `json:"matches_dropped"`
	LocationsDropped int64  `json:"locations_dropped"`
	HitsNotValidated int64  `json:"hits_not_validated"`
	// Views lists the ids of the views that cut something.
	Views []string `json:"views"`
}

// Partition describes one partition or filesystem of a disk view.
type Partition struct {
	View       string `json:"view"`
	Name       string `json:"name"`
	Start      int64  `json:"start"`
	Size       int64  `json:"size"`
	FS         string `json:"fs,omitempty"`
	Attributed bool   `json:"attributed"`
	Note       string `json:"note,omitempty"`
	// SwapFiles are the Linux swap files of the partition's filesystem
	// (a swap or hibernation signature ends the file's first page), as
	// the decode pass found them: their remediation overwrites them in
	// place.
	SwapFiles []string `json:"swap_files,omitempty"`
}

// Finding is one secret, identified by its fingerprint, with every place it
// persists.
type Finding struct {
	Rule           string `json:"rule"`
	Description    string `json:"description"`
	Category       string `json:"category"`
	Severity       string `json:"severity"`
	Fingerprint    string `json:"fingerprint"`
	KeyFingerprint string `json:"key_fingerprint,omitempty"`
	Preview        string `json:"preview"`
	// Exposure is the set of classes over all locations, most surprising first.
	Exposure []string `json:"exposure"`
	// OutsideGuestControl is true when any exposure is not "live".
	OutsideGuestControl bool              `json:"outside_guest_control"`
	Metadata            map[string]string `json:"metadata,omitempty"`
	// New is set by baseline/state comparison: true when the fingerprint was
	// not known before. Absent when no baseline was given.
	New *bool `json:"new,omitempty"`
	// Reasons explain every change of the severity the rule gave (and
	// why a severity was kept where a downgrade was considered), in the
	// order they were applied.
	Reasons []Reason `json:"reasons,omitempty"`
	// Provenance lists the package files that hold the secret: which
	// package installed each, and whether it is unmodified since.
	Provenance []Provenance `json:"provenance,omitempty"`
	Locations  []Location   `json:"locations"`
	// LocationsTruncated counts further places the secret was found but
	// not listed, beyond Limits.LocationsPerFinding or, once the run has
	// Limits.LocationsPerScan, beyond what it had (a place matched by two
	// rules counts twice). Absent when every place is listed.
	LocationsTruncated int64 `json:"locations_truncated,omitempty"`
	// Remediation says what removes each copy (Remediate); the writers
	// fill it in from the locations.
	Remediation []Remediation `json:"remediation"`
}

// Reason is one explanation of a finding's severity. From and To are set
// when this reason changed the severity; a reason without them says why a
// severity was kept.
type Reason struct {
	Code string `json:"code"`
	Text string `json:"text"`
	From string `json:"from,omitempty"`
	To   string `json:"to,omitempty"`
}

// Reason codes.
const (
	// ReasonPackageFileUnmodified: the secret is in a file that a package
	// installed and that still has the recorded digest: public material,
	// severity info.
	ReasonPackageFileUnmodified = "package-file-unmodified"
	// ReasonPublicByPropagation: locations other than the package files
	// (free blocks, other copies) hold the same public bytes.
	ReasonPublicByPropagation = "public-by-propagation"
	// ReasonPackageFileModified: a package installed the file, but its
	// digest differs from the recorded one: severity kept.
	ReasonPackageFileModified = "package-file-modified"
	// ReasonPublicInSomeTargets: public in some targets only: severity kept.
	ReasonPublicInSomeTargets = "public-in-some-targets"
	// ReasonTestPath and ReasonDocumentationPath: every file holding the
	// secret is a test file or documentation that no package owns.
	ReasonTestPath          = "test-path"
	ReasonDocumentationPath = "documentation-path"
	// ReasonKnownPublicKey: the key is one that software or a standard
	// publishes (a self-test vector, a test key compiled into a
	// program): severity info, wherever it lies.
	ReasonKnownPublicKey = "known-public-key"
)

// MetadataPublishedBy is the metadata key that names the source of a
// published key (a finding with a ReasonKnownPublicKey reason):
// "gnutls-self-tests".
const MetadataPublishedBy = "published_by"

// MetadataLikely is the metadata key that says what a finding most likely
// is where its layout tells more than its rule: "openssl-ctr-drbg" for an
// AES-256 key schedule kept twice 464 bytes apart, as OpenSSL 3's
// CTR-DRBG keeps its key in its ECB and CTR cipher contexts (a random
// generator's state, not a data key).
const (
	MetadataLikely = "likely"
	LikelyDRBG     = "openssl-ctr-drbg"
)

// Provenance is what a package manager records about one file holding a
// finding's secret, and whether the file is unmodified since.
type Provenance struct {
	Manager string `json:"manager"` // "dpkg", "rpm", "apk", "python", "apt", "npm", "go"
	Package string `json:"package"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"`
	Target  string `json:"target"`
	Path    string `json:"path"`
	// Conffile: a configuration file, which the admin is expected to edit.
	Conffile bool `json:"conffile,omitempty"`
	// Modified: the file's digest differs from the one the manager recorded
	// at install (or the manager recorded none); false: unmodified.
	Modified bool `json:"modified"`
	// Digest is the algorithm that was compared ("md5", "sha256"...).
	Digest string `json:"digest,omitempty"`
	// Source is set for a compiled file that no package records (a CPython
	// __pycache__/*.pyc made at install): the package file it was compiled
	// from, whose digest was compared, and which the compiled file's
	// header names by size and modification time.
	Source string `json:"source,omitempty"`
}

// Location is one place a finding's secret was seen.
type Location struct {
	Target   string `json:"target"`
	View     string `json:"view"`
	ViewKind string `json:"view_kind"`
	// Offset is the guest offset (guest-physical address for memory views,
	// host offset for unreferenced views).
	Offset     int64  `json:"offset"`
	Length     int64  `json:"length"`
	FileOffset *int64 `json:"file_offset,omitempty"`
	File       string `json:"file,omitempty"` // host file holding the bytes
	Partition  string `json:"partition,omitempty"`
	Path       string `json:"path,omitempty"`
	// Links are the file's other paths (hard links: a pnpm store file
	// and its node_modules name, a backup tree made with cp -al), sorted,
	// at most 64; LinksOmitted counts the rest. Path is the name the
	// filesystem walk met first. Every name reaches the same bytes.
	Links        []string `json:"links,omitempty"`
	LinksOmitted int      `json:"links_omitted,omitempty"`
	State        string   `json:"state"`
	Exposure     string   `json:"exposure"`
	Encoding     string   `json:"encoding,omitempty"`
	// LayerDigest and LayerIndex name the container image layer holding the
	// bytes (index 0 is the base layer). For a disk image inside a layer,
	// Target is "IMAGE!/path/in/layer" and these name its layer.
	LayerDigest string `json:"layer_digest,omitempty"`
	LayerIndex  *int   `json:"layer_index,omitempty"`
	// Decoded, when set, says that the secret is inside compressed or
	// archived bytes (a rotated log, an initramfs, a backup, a squashfs
	// image, a deleted .gz in free blocks, a freed compressed cluster):
	// how they were decoded, from the container's first byte to the
	// bytes holding the secret. The container is what the rest of the
	// location names: its view, its first byte's Offset (and
	// FileOffset), Partition, Path and State; Exposure is the
	// container's. Length is the secret's, in decoded bytes.
	Decoded []DecodedStep `json:"decoded,omitempty"`
	// DecodedOffset is the secret's offset in the bytes that the last
	// step of Decoded yields (an archive member's contents, or a
	// decoded stream); set with Decoded.
	DecodedOffset *int64 `json:"decoded_offset,omitempty"`
}

// Names returns every path of the location's file: Path, then Links.
func (l Location) Names() []string {
	if l.Path == "" {
		return nil
	}
	return append([]string{l.Path}, l.Links...)
}

// DecodedStep is one level of a decoded location's chain. Offset is where
// the level starts in the bytes of the level above (the first step's, in
// the container): a compressed stream's first byte, or an archive
// member's first data byte.
type DecodedStep struct {
	// Codec is gzip, xz, zstd, bzip2, lz4, deflate (raw, as in qcow2
	// compressed clusters), zip, tar, cpio, ar, squashfs, btrfs-zlib,
	// btrfs-lzo or btrfs-zstd (a btrfs compressed extent), or ntfs-lznt1
	// (a file NTFS stores compressed).
	Codec string `json:"codec"`
	// Member names the archive member ("" for a compressed stream).
	Member string `json:"member,omitempty"`
	Offset int64  `json:"offset"`
}

// DecodedText writes a location's chain as the table shows it: "gzip >
// cpio member etc/dropbear/dropbear_rsa_host_key", or "" when the
// location is not decoded.
func DecodedText(l Location) string {
	parts := make([]string, len(l.Decoded))
	for i, s := range l.Decoded {
		parts[i] = s.Codec
		if s.Member != "" {
			parts[i] += " member " + s.Member
		}
	}
	return strings.Join(parts, " > ")
}

// Summary counts what the run found and read.
type Summary struct {
	Targets              int            `json:"targets"`
	TargetsFailed        int            `json:"targets_failed"`
	Findings             int            `json:"findings"`
	BySeverity           map[string]int `json:"by_severity"`
	ByExposure           map[string]int `json:"by_exposure"`
	OutsideGuestControl  int            `json:"outside_guest_control"`
	SuppressedByBaseline int            `json:"suppressed_by_baseline"`
	AllocatedBytes       int64          `json:"allocated_bytes"`
	ScannedBytes         int64          `json:"scanned_bytes"`
	// ScannedBytesByFile counts the bytes planned for scanning per host
	// file (overlay, backing file, memory file), context margins excluded:
	// a backing file shared by many overlays appears once.
	ScannedBytesByFile map[string]int64 `json:"scanned_bytes_by_file,omitempty"`

	// Findings by kind, as the table's sections count them: Secrets are
	// the findings that are secrets (neither rollback risks nor cloned
	// identities, nor public material of severity info, which KnownPublic
	// counts), SecretsOutsideGuestControl those of them outside the
	// guest's control; Secrets minus SecretsOutsideGuestControl is LIVE ONLY.
	Secrets                    int `json:"secrets"`
	SecretsOutsideGuestControl int `json:"secrets_outside_guest_control"`
	RollbackRisks              int `json:"rollback_risks"`
	ClonedIdentities           int `json:"cloned_identities"`
	KnownPublic                int `json:"known_public"`
	// Findings left out of the report, like SuppressedByBaseline: Ignored
	// by the ignore file (--ignore, .imgauditignore), HiddenBySeverity by
	// --severity.
	Ignored          int `json:"ignored"`
	HiddenBySeverity int `json:"hidden_by_severity"`
	// Truncated is present when a limit cut what the run kept: findings
	// beyond the per-rule, per-view cap, locations beyond the per-finding
	// cap, or keyword hits left unvalidated.
	Truncated *Truncation `json:"truncated,omitempty"`
}

// IsSecret reports whether a finding is a secret, rather than a finding
// the scanner derives from secrets and files (a rollback risk, a cloned
// identity).
func IsSecret(f *Finding) bool {
	return f.Category != CategoryRollbackRisk && f.Category != CategoryClonedIdentity
}
