package report

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"
)

// Synthetic secrets. The report model never holds them: only their
// fingerprints and redacted previews are put in the fixtures, and the
// no-leak tests check that no writer output contains them.
var fixtureSecrets = []string{
	"ghp_R4nd0mS3cr3tT0k3nF0rT3st1ngOnly00xyzW",
	"wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY9",
	"$6$saltsalt$Q9zT1m7a6e0rKpYb3u8sJ7xWq2Vn5cL4dH1gF0eR9tY6uI3oP8aS5dF2gH7jK4lZ1xC6vB9nM0qW3eR8tY5uI",
	"hunter2-is-not-a-good-password-but-it-is-secret",
	"MIIEpAIBAAKCAQEAselftestkeyofalibraryXYZ0123456789",
	"AKIAZZZZTESTFIXTURE1/sk-in-a-tests-dir-0123456789abcdef",
}

// metaDecoy is a metadata value outside the table's allow-list; WriteTable
// and WriteSARIF must not print it (WriteJSON does: metadata is part of the
// JSON contract and is non-secret by the detectors' contract).
const metaDecoy = "META-NOT-FOR-TABLE-7f3a"

func fp(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:])
}

func i64(v int64) *int64 { return &v }

// goneErr is the sample's error for its missing backing file.
const goneErr = `/srv/images/web01.qcow2: offset 528 (0x210): open backing file "gone.raw": open gone.raw: no such file or directory`

func bptr(v bool) *bool { return &v }

// sampleReport builds a report with every exposure class, a finding with
// more locations than the table shows, target errors, a failed backing
// file, a view error, unattributed filesystems and hostile strings.
func sampleReport() *Report {
	t0 := time.Date(2026, 11, 26, 16, 0, 0, 0, time.UTC)
	created := time.Date(2025, 3, 1, 10, 30, 0, 0, time.UTC)
	web := "/srv/images/web01.qcow2"
	cur := "/srv/images/web01.qcow2#current"
	snap := "/srv/images/web01.qcow2#snapshot:golden"
	base := "/srv/images/base.qcow2#backing:base.qcow2"

	rsaLocs := []Location{
		{Target: web, View: cur, ViewKind: "current", Offset: 0x120000, Length: 1675, FileOffset: i64(0x50000), File: web, Partition: "p1", Path: "/etc/ssh/ssh_host_rsa_key", State: StateAllocated, Exposure: ExposureLive},
		{Target: web, View: snap, ViewKind: "snapshot", Offset: 0x2340000, Length: 1675, FileOffset: i64(0x90000), File: web, Partition: "p1", Path: "/etc/ssh/ssh_host_rsa_key", State: StateAllocated, Exposure: ExposureSnapshot},
	}
	for i := range 5 {
		rsaLocs = append(rsaLocs, Location{Target: web, View: snap, ViewKind: "snapshot", Offset: int64(0x4000000 + i*0x1000), Length: 1675, Partition: "p1", Path: fmt.Sprintf("/var/backups/key.%d", i), State: StateFree, Exposure: ExposureSnapshot})
	}
	return &Report{
		SchemaVersion: SchemaVersion,
		Tool:          Tool{Name: "imgaudit", Version: "0.1.0-test"},
		Command:       "scan",
		Started:       t0,
		Finished:      t0.Add(42 * time.Second),
		Complete:      true,
		FailOn:        SeverityLow,
		Targets: []Target{
			{
				Path: web, Format: "qcow2", VirtualSize: 10 << 30,
				Backing: []Backing{{Name: "base.qcow2", Path: "/srv/images/base.qcow2", Format: "qcow2"}, {Name: "gone.raw", Error: goneErr}},
				Views: []View{
					{ID: cur, Kind: "current", Name: "current", Size: 10 << 30, AllocatedBytes: 700 << 20, ScannedBytes: 700 << 20,
						Notes:    []string{"1 member or stream not decoded in full: over the 4.0 GiB decoded cap"},
						Decoding: &ViewDecoding{Containers: 12, Leaves: 40, DecodedBytes: 9 << 20, Skipped: map[string]int64{"over the 4.0 GiB decoded cap": 1}}},
					{ID: snap, Kind: "snapshot", Name: "golden", Created: &created, Size: 10 << 30, AllocatedBytes: 690 << 20, ScannedBytes: 40 << 20, Notes: []string{"vm state saved"}},
					{ID: base, Kind: "backing", Name: "base.qcow2", Size: 10 << 30, AllocatedBytes: 500 << 20, ScannedBytes: 500 << 20},
					{ID: web + "#unreferenced", Kind: "unreferenced", Name: "unreferenced", Size: 3 << 20, AllocatedBytes: 3 << 20, ScannedBytes: 3 << 20},
					{ID: web + "#memory:golden", Kind: "memory", Name: "golden", Size: 1 << 30, Error: "vmstate truncated at host offset 0x1234"},
				},
				// As the scanner makes them: the target's errors include
				// its backing links' and views'.
				Errors: []string{goneErr, web + "#memory:golden: vmstate truncated at host offset 0x1234"},
				Partitions: []Partition{
					{View: cur, Name: "p1", Start: 1 << 20, Size: 8 << 30, FS: "ext4", Attributed: true},
					{View: cur, Name: "p2", Start: 8<<30 + 1<<20, Size: 1 << 30, FS: "xfs", Attributed: false, Note: "XFS is not supported"},
				},
				Unattributed: []string{"xfs on p2"},
			},
			{
				Path: "incoming/bad #1\x1b[31m.qcow2", Format: "qcow2",
				Views:  []View{},
				Errors: []string{"qcow2: bad #1.qcow2 at offset 0x30: L1 table offset beyond end of file"},
			},
		},
		Findings: []Finding{
			{
				Rule: "password-hash-sha512crypt", Description: "SHA-512 crypt password hash", Category: "password-hash", Severity: SeverityMedium,
				Fingerprint: fp(fixtureSecrets[2]), Preview: "$6$saltsa…(106 chars)",
				Exposure: []string{ExposureLive}, Metadata: map[string]string{"user": "deploy", "comment": metaDecoy},
				Locations: []Location{{Target: web, View: cur, ViewKind: "current", Offset: 0x7000, Length: 98, Partition: "p1", Path: "/etc/shadow", Links: []string{"/root/shadow.bak\x1b[31m"}, LinksOmitted: 2, State: StateAllocated, Exposure: ExposureLive}},
			},
			{
				Rule: "ssh-rsa-private-key", Description: "RSA private key (OpenSSH host key)", Category: "private-key", Severity: SeverityCritical,
				Fingerprint: fp(fixtureSecrets[0]), KeyFingerprint: "SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
				Preview:  "-----BEGIN OPENSSH PRIVATE KEY-----b3Bl…",
				Exposure: []string{ExposureSnapshot, ExposureLive}, OutsideGuestControl: true,
				Metadata:  map[string]string{"key_type": "rsa", "bits": "3072", "encrypted": "false", "comment": metaDecoy},
				Locations: rsaLocs,
			},
			{
				Rule: "aws-access-key", Description: "AWS access key pair", Category: "cloud", Severity: SeverityHigh,
				Fingerprint: fp(fixtureSecrets[1]), Preview: "AKIA…MPLE / wJal…(40 chars)",
				Exposure: []string{ExposureDeleted}, OutsideGuestControl: true, New: bptr(true),
				Metadata: map[string]string{"key_id": "AKIAIOSFODNN7EXAMPLE"},
				Locations: []Location{{Target: web, View: cur, ViewKind: "current", Offset: 0x5550000, Length: 40, FileOffset: i64(0x70000), File: web, Partition: "p1", State: StateFree, Exposure: ExposureDeleted},
					// A deleted tar.gz in free blocks, whose member name is
					// hostile.
					{Target: web, View: cur, ViewKind: "current", Offset: 0x5560000, Length: 40, FileOffset: i64(0x80000), File: web, Partition: "p1", State: StateFree, Exposure: ExposureDeleted,
						Decoded: []DecodedStep{{Codec: "gzip"}, {Codec: "tar", Member: "root/.aws/\x1b[31mcredentials", Offset: 1536}}, DecodedOffset: i64(27)}},
			},
			{
				Rule: "generic-password", Description: "password= assignment in a config file", Category: "credential", Severity: SeverityLow,
				Fingerprint: fp(fixtureSecrets[3]), Preview: "password=hunt…(47 chars)",
				Exposure: []string{ExposureMemory, ExposureBacking}, OutsideGuestControl: true, New: bptr(false),
				Locations: []Location{
					{Target: web, View: base, ViewKind: "backing", Offset: 0x9000, Length: 56, FileOffset: i64(0x3000), File: "/srv/images/base.qcow2", Partition: "p1", Path: "/etc/app/\tweird\x1b]0;pwn\x07.conf", State: StateAllocated, Exposure: ExposureBacking},
					{Target: web, View: web + "#memory:golden", ViewKind: "memory", Offset: 0x7fff000, Length: 56, State: StateUnknown, Exposure: ExposureMemory, Encoding: "utf-16le"},
				},
			},
			{
				Rule: "private-key-rsa", Description: "RSA private key", Category: "private-key", Severity: SeverityInfo,
				Fingerprint: fp(fixtureSecrets[4]), Preview: "-----BEGIN RSA PRIVATE KEY-----",
				Exposure: []string{ExposureDeleted, ExposureLive}, OutsideGuestControl: true,
				Reasons: []Reason{
					{Code: ReasonPackageFileUnmodified, Text: "shipped by libgnutls30 3.7.9-2+deb12u3 (dpkg) in /usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3, unmodified since installed (md5 matches): the same bytes are on every machine that installed it", From: SeverityCritical, To: SeverityInfo},
					{Code: ReasonPublicByPropagation, Text: "1 other location holds the same public bytes"},
				},
				Provenance: []Provenance{{Manager: "dpkg", Package: "libgnutls30", Version: "3.7.9-2+deb12u3", Arch: "amd64", Target: web,
					Path: "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3\x1b[2J", Digest: "md5"}},
				Locations: []Location{
					{Target: web, View: cur, ViewKind: "current", Offset: 0x8800000, Length: 1190, Partition: "p1", Path: "/usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3\x1b[2J", State: StateAllocated, Exposure: ExposureLive},
					{Target: web, View: cur, ViewKind: "current", Offset: 0x9900000, Length: 1190, Partition: "p1", State: StateFree, Exposure: ExposureDeleted},
				},
			},
			{
				Rule: "aws-access-key-pair", Description: "AWS access key pair", Category: "cloud", Severity: SeverityMedium,
				Fingerprint: fp(fixtureSecrets[5]), Preview: "AKIA…(56 chars)",
				Exposure:  []string{ExposureLive},
				Reasons:   []Reason{{Code: ReasonTestPath, Text: "every file holding it is under a test directory (tests/ in /opt/app/tests/.env) that no package owns", From: SeverityCritical, To: SeverityMedium}},
				Locations: []Location{{Target: web, View: cur, ViewKind: "current", Offset: 0xa000000, Length: 56, Partition: "p1", Path: "/opt/app/tests/.env", State: StateAllocated, Exposure: ExposureLive}},
			},
		},
		Summary: Summary{
			Targets: 2, TargetsFailed: 1, Findings: 6,
			BySeverity:          map[string]int{SeverityCritical: 1, SeverityHigh: 1, SeverityMedium: 2, SeverityLow: 1, SeverityInfo: 1},
			ByExposure:          map[string]int{ExposureLive: 4, ExposureSnapshot: 1, ExposureDeleted: 2, ExposureBacking: 1, ExposureMemory: 1},
			OutsideGuestControl: 4, SuppressedByBaseline: 2,
			AllocatedBytes: 1893 << 20, ScannedBytes: 1243 << 20,
		},
	}
}

// emptyReport has every slice and map nil, as a zero-value producer would.
func emptyReport() *Report {
	return &Report{SchemaVersion: SchemaVersion, Tool: Tool{Name: "imgaudit", Version: "0.1.0-test"}, Command: "scan", Complete: true, FailOn: SeverityLow}
}

// interruptedReport is a partial report after Ctrl-C.
func interruptedReport() *Report {
	r := sampleReport()
	r.Complete = false
	r.IncompleteReason = "interrupted (SIGINT)"
	r.Findings = r.Findings[1:2]
	return r
}
