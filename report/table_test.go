package report

import (
	"bytes"
	"strings"
	"testing"
)

func writeTable(t *testing.T, r *Report, opts TableOptions) string {
	t.Helper()
	var out bytes.Buffer
	if err := WriteTable(&out, r, opts); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// inOrder reports whether the needles occur in s in the given order.
func inOrder(s string, needles ...string) bool {
	for _, n := range needles {
		i := strings.Index(s, n)
		if i < 0 {
			return false
		}
		s = s[i+len(n):]
	}
	return true
}

func TestWriteTable(t *testing.T) {
	tests := []struct {
		name     string
		r        *Report
		opts     TableOptions
		want     []string // each must appear
		order    []string // must appear in this order
		wantNot  []string
		maxLines int // 0: no check
	}{
		{
			name: "sample",
			r:    sampleReport(),
			want: []string{
				"imgaudit scan: 2 targets, 5 views, 1.2 GiB scanned of 1.8 GiB allocated, complete",
				"2 of 2 targets had errors",
				"/srv/images/web01.qcow2 [qcow2] 10.0 GiB: current, snapshot:golden, backing:base.qcow2, unreferenced, memory:golden",
				"OUTSIDE THE GUEST'S CONTROL (3)",
				"LIVE ONLY (2)",
				// a lowered finding says why, under its fingerprint
				"reason:      critical -> medium: every file holding it is under a test directory (tests/ in /opt/app/tests/.env) that no package owns (test-path)",
				// a public finding is folded to one line, image strings escaped
				"KNOWN PUBLIC (1)",
				"private-key-rsa  critical  " + fp(fixtureSecrets[4]) + "  libgnutls30 3.7.9-2+deb12u3 (dpkg) /usr/lib/x86_64-linux-gnu/libgnutls.so.30.34.3\\x1b[2J  2 locations",
				"exposure: snapshot,live",
				"key:         SHA256:nThbg6kXUpJWGl7E1IGOCspRomTxdCARLviKw6E5SY8",
				"details:     bits=3072 encrypted=false key_type=rsa",
				"details:     user=deploy",
				"fingerprint: " + fp(fixtureSecrets[0]),
				"preview:     -----BEGIN OPENSSH PRIVATE KEY-----b3Bl…",
				"/srv/images/web01.qcow2#snapshot:golden  0x2340000  p1  /etc/ssh/ssh_host_rsa_key  allocated  snapshot",
				"/srv/images/web01.qcow2#current          0x120000   p1  /etc/ssh/ssh_host_rsa_key  allocated  live",
				"... and 2 more locations",
				"exposure: deleted  [NEW]",
				"/srv/images/web01.qcow2#memory:golden      0x7fff000  -   -",
				"TARGET ERRORS (3)",
				"\n  qcow2: bad #1.qcow2 at offset 0x30: L1 table offset beyond end of file\n",
				"\n  " + goneErr + "\n",
				"/srv/images/web01.qcow2#memory:golden: vmstate truncated",
				// The partition line says what the unattributed note says,
				// with offsets: it is printed once.
				"UNATTRIBUTED FILESYSTEMS (1)",
				"/srv/images/web01.qcow2#current p2 (xfs) at 0x200100000, 1.0 GiB: XFS is not supported",
				"SUMMARY: 5 secrets (1 critical, 1 high, 2 medium, 1 low): 3 outside the guest's control, 2 live only; exposure: 1 snapshot, 1 backing, 1 deleted, 1 memory, 3 live; 1 known public finding; 6 findings in all; 2 suppressed by baseline",
			},
			order: []string{
				"OUTSIDE THE GUEST'S CONTROL", "CRITICAL  ssh-rsa-private-key", "HIGH      aws-access-key", "LOW       generic-password",
				"LIVE ONLY", "MEDIUM    aws-access-key-pair", "MEDIUM    password-hash-sha512crypt", "KNOWN PUBLIC", "TARGET ERRORS", "UNATTRIBUTED FILESYSTEMS", "SUMMARY",
			},
			// the public finding is not listed with its locations
			wantNot: []string{"INCOMPLETE", "TRUNCATED", "/var/backups/key.4", "\x1b", "\t", metaDecoy, "AKIAIOSFODNN7EXAMPLE", "INFO ", "0x9900000"},
		},
		{
			name: "truncated",
			r: func() *Report {
				r := sampleReport()
				r.Summary.Truncated = &Truncation{Limits: Limits{FindingsPerRulePerView: 10000, LocationsPerFinding: 1000},
					MatchesDropped: 12, LocationsDropped: 34, HitsNotValidated: 56, Views: []string{"a#current", "b#current"}}
				return r
			}(),
			want: []string{"TRUNCATED: 12 matches beyond 10000 findings per rule and view, 34 locations beyond 1000 per finding, 56 keyword hits not validated (too dense); in 2 views"},
		},
		{
			name: "truncated, with the per-scan limits",
			r: func() *Report {
				r := sampleReport()
				r.Summary.Truncated = &Truncation{Limits: Limits{FindingsPerRulePerView: 10000, LocationsPerFinding: 1000, FindingsPerScan: 100000, LocationsPerScan: 500000},
					MatchesDropped: 12, LocationsDropped: 34, HitsNotValidated: 56, Views: []string{"a#current"}}
				return r
			}(),
			want: []string{"TRUNCATED: 12 matches beyond 10000 findings per rule and view or 100000 per scan, 34 locations beyond 1000 per finding or 500000 per scan, 56 keyword hits not validated (too dense); in 1 view"},
		},
		{
			name:    "all locations",
			r:       sampleReport(),
			opts:    TableOptions{MaxLocations: -1},
			want:    []string{"/var/backups/key.3", "/var/backups/key.4"},
			wantNot: []string{"more location"},
		},
		{
			name:    "one location",
			r:       sampleReport(),
			opts:    TableOptions{MaxLocations: 1},
			want:    []string{"... and 6 more locations", "/srv/images/web01.qcow2#snapshot:golden  0x2340000"},
			wantNot: []string{"0x120000"},
		},
		{
			name: "interrupted",
			r:    interruptedReport(),
			want: []string{
				"INCOMPLETE: interrupted (SIGINT) (findings are partial)",
				"LIVE ONLY (0)\n  none", "SUMMARY: 1 secret (1 critical): 1 outside the guest's control, 0 live only; exposure: 1 snapshot, 1 live; 2 suppressed by baseline; INCOMPLETE",
			},
		},
		{
			name:     "empty",
			r:        emptyReport(),
			want:     []string{"imgaudit scan: 0 targets, 0 views, 0 B scanned of 0 B allocated, complete", "OUTSIDE THE GUEST'S CONTROL (0)\n  none", "SUMMARY: 0 secrets\n"},
			wantNot:  []string{"TARGET ERRORS", "UNATTRIBUTED"},
			maxLines: 9,
		},
		{
			name: "skipped files and target notes",
			r: func() *Report {
				r := emptyReport()
				r.Targets = []Target{{Path: "d/link.qcow2", Format: "qcow2", Notes: []string{"symlink to d/real.qcow2, followed"}}}
				r.Skipped = []Skipped{{Path: "d/notes\x1b.txt", Reason: "not an image: text"}}
				return r
			}(),
			want: []string{"  1 file skipped (listed below)\n", "    note: symlink to d/real.qcow2, followed\n",
				"SKIPPED (1): files of the scanned directories that were not scanned\n  d/notes\\x1b.txt: not an image: text\n"},
		},
		{
			name: "color",
			r:    sampleReport(),
			opts: TableOptions{Color: true},
			want: []string{"\x1b[1;31mCRITICAL\x1b[0m", "\x1b[0;31mHIGH    \x1b[0m", "\x1b[0;33mMEDIUM  \x1b[0m", "\x1b[0;36mLOW     \x1b[0m",
				// image strings stay escaped even with colour on
				`/etc/app/\tweird\x1b]0;pwn\a.conf`},
			wantNot: []string{"\x1b]0;pwn"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := writeTable(t, tc.r, tc.opts)
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("table lacks %q", w)
				}
			}
			if tc.order != nil && !inOrder(out, tc.order...) {
				t.Errorf("table sections/findings not in order %q", tc.order)
			}
			for _, w := range tc.wantNot {
				if strings.Contains(out, w) {
					t.Errorf("table contains %q", w)
				}
			}
			if tc.maxLines > 0 && strings.Count(out, "\n") > tc.maxLines {
				t.Errorf("table has %d lines, want at most %d", strings.Count(out, "\n"), tc.maxLines)
			}
			if t.Failed() {
				t.Logf("table:\n%s", out)
			}
		})
	}
}

// TestWriteTableSortsBySeverityThenExposure: within a section, severity
// decides first, then the most surprising exposure (ExposureRank).
func TestWriteTableSortsBySeverityThenExposure(t *testing.T) {
	r := emptyReport()
	mk := func(rule, sev string, exp ...string) Finding {
		return Finding{Rule: rule, Severity: sev, Fingerprint: fp(rule), Exposure: exp}
	}
	r.Findings = []Finding{
		mk("low-snapshot", SeverityLow, ExposureSnapshot),
		mk("crit-deleted", SeverityCritical, ExposureDeleted),
		mk("crit-live", SeverityCritical, ExposureLive),
		mk("crit-snapshot", SeverityCritical, ExposureSnapshot),
		mk("high-live", SeverityHigh, ExposureLive),
		mk("crit-memory", SeverityCritical, ExposureMemory),
	}
	out := writeTable(t, r, TableOptions{})
	if !inOrder(out, "crit-snapshot", "crit-deleted", "crit-memory", "low-snapshot", "LIVE ONLY", "crit-live", "high-live") {
		t.Errorf("wrong order:\n%s", out)
	}
}

func TestCapLocationsKeepsEveryExposure(t *testing.T) {
	f := sampleReport().Findings[1]
	locs := sortedLocations(&f)
	for _, max := range []int{2, 3, 5} {
		got := capLocations(locs, max)
		if len(got) != max {
			t.Fatalf("cap %d: %d locations", max, len(got))
		}
		if got[0].Exposure != ExposureSnapshot || got[len(got)-1].Exposure != ExposureLive {
			t.Errorf("cap %d: exposures %v, want snapshot first and the live one kept", max, got)
		}
	}
	if got := capLocations(locs, -1); len(got) != len(locs) {
		t.Errorf("cap -1 dropped locations")
	}
}

func TestClean(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_rsa_key"},
		{"ünïcødé …", "ünïcødé …"},
		{"a\tb\nc", `a\tb\nc`},
		{"\x1b[2J\x1b]0;title\x07", `\x1b[2J\x1b]0;title\a`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"rtl\u202eevil", `rtl\u202eevil`},
		{"del\x7f", `del\x7f`},
	}
	for _, tc := range tests {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536 << 20, "1.5 GiB"}, {10 << 40, "10.0 TiB"}, {1 << 62, "4.0 EiB"}}
	for _, tc := range tests {
		if got := humanBytes(tc.in); got != tc.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestDecodedLocations: a location inside compressed or archived bytes says
// how it was reached, in every writer, with hostile member names cleaned.
func TestDecodedLocations(t *testing.T) {
	for _, w := range writers() {
		var out bytes.Buffer
		if err := w.write(&out, sampleReport()); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if strings.Contains(s, "\x1b[31mcredentials") {
			t.Errorf("%s prints a member name's escape sequence", w.name)
		}
		var want string
		switch w.name {
		case "table", "table-color":
			want = `in: gzip > tar member root/.aws/\x1b[31mcredentials`
		case "sarif":
			want = `"decoded_text": "gzip > tar member root/.aws/\u001b[31mcredentials"`
		case "json":
			want = `"decoded": [`
		case "html":
			// Without script, and in the embedded JSON for the script.
			want = `in: gzip &gt; tar member root/.aws/\x1b[31mcredentials`
			if !strings.Contains(s, `"member": "root/.aws/\u001b[31mcredentials"`) {
				t.Errorf("html's embedded report lacks the chain")
			}
		}
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", w.name, want)
		}
	}
}

// TestLinkedLocations: a file's other names (hard links) are in every
// writer, with hostile names cleaned.
func TestLinkedLocations(t *testing.T) {
	for _, w := range writers() {
		var out bytes.Buffer
		if err := w.write(&out, sampleReport()); err != nil {
			t.Fatal(err)
		}
		s := out.String()
		if strings.Contains(s, "shadow.bak\x1b") {
			t.Errorf("%s prints a link name's escape sequence", w.name)
		}
		var want string
		switch w.name {
		case "table", "table-color":
			want = `also: /root/shadow.bak\x1b[31m and 2 more names`
		case "sarif":
			want = `"links_omitted": 2`
		case "json":
			want = `"links": [`
		case "html":
			want = `also: /root/shadow.bak\x1b[31m and 2 more names`
		}
		if !strings.Contains(s, want) {
			t.Errorf("%s lacks %q", w.name, want)
		}
	}
}

// TestTimelineRowsTellAlikePreviewsApart: rows whose previews are alike
// (every AES key schedule in RAM reads "AES-256 key (32 bytes)", every
// PEM key its BEGIN line) are labelled by their fingerprints; a row
// whose preview is its own keeps it.
func TestTimelineRowsTellAlikePreviewsApart(t *testing.T) {
	fpA, fpB, fpC := "sha256:"+strings.Repeat("a", 64), "sha256:"+strings.Repeat("b", 64), "sha256:"+strings.Repeat("c", 64)
	r := &Report{Timelines: []Timeline{{VM: "vm", Points: []TimelinePoint{
		{View: "d#snapshot:s", Kind: "snapshot", Name: "s", Label: "s"},
		{View: "d#memory:s", Kind: "memory", Name: "s", Label: "mem:s"},
	}, Secrets: []TimelineRow{
		{Fingerprint: fpA, Rule: "aes-key-schedule", Preview: "AES-256 key (32 bytes)", Present: []string{"d#memory:s"}},
		{Fingerprint: fpB, Rule: "aes-key-schedule", Preview: "AES-256 key (32 bytes)", Present: []string{"d#memory:s"}},
		{Fingerprint: fpC, Rule: "github-pat", Preview: "ghp_…(40 chars)", Present: []string{"d#snapshot:s"}},
	}}}}
	out := writeTable(t, r, TableOptions{})
	for _, want := range []string{"aes-key-schedule " + fpA[:19] + "…", "aes-key-schedule " + fpB[:19] + "…", "github-pat ghp_…(40 chars)"} {
		if !strings.Contains(out, want) {
			t.Errorf("no row %q in\n%s", want, out)
		}
	}
	if strings.Contains(out, "aes-key-schedule AES-256") {
		t.Errorf("a row labelled by a preview two rows share:\n%s", out)
	}
}
