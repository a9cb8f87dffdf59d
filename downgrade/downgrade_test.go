package downgrade

import (
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/report"
)

func TestPathContext(t *testing.T) {
	cases := []struct {
		path   string
		code   string
		levels int
	}{
		{"/opt/app/tests/.env", report.ReasonTestPath, 1},
		{"/srv/x/test/config.yml", report.ReasonTestPath, 1},
		{"/usr/lib/python3/dist-packages/foo/tests/data/key.pem", report.ReasonTestPath, 1},
		{"/usr/local/go/src/crypto/tls/testdata/example-key.pem", report.ReasonTestPath, 2},
		{"/src/app/spec/fixtures/id_rsa", report.ReasonTestPath, 2},
		{"/x/Tests/Fixtures/key", report.ReasonTestPath, 2}, // case-insensitive, the stronger directory wins
		{"/usr/share/doc/openssl/examples/key.pem", report.ReasonDocumentationPath, 2},
		{"/usr/local/share/doc/app/README", report.ReasonDocumentationPath, 2},
		{"/usr/lib/node_modules/x/examples/server.key", report.ReasonDocumentationPath, 2},
		{"/usr/lib/python3/foo/tests/__pycache__/test_a.cpython-311.pyc", report.ReasonTestPath, 1},
		{"/usr/local/go/src/net/url/url_test.go", report.ReasonTestPath, 1},
		{"/usr/local/go/src/crypto/tls/testdata/x_test.go", report.ReasonTestPath, 2}, // the directory is stronger
		// not test or documentation places
		{"/etc/ssl/private/tests", "", 0}, // a file named tests, not a directory
		{"/home/alice/.aws/credentials", "", 0},
		{"/opt/app/latest/.env", "", 0},
		{"/usr/share/docs/x", "", 0},
		{"/srv/contest/key", "", 0},
		{"/usr/local/go/src/net/url/url_test.go.orig", "", 0},
	}
	for _, c := range cases {
		code, levels, _ := PathContext(c.path)
		if code != c.code || levels != c.levels {
			t.Errorf("PathContext(%s) = %q %d, want %q %d", c.path, code, levels, c.code, c.levels)
		}
	}
}

func TestApply(t *testing.T) {
	const (
		tA, tB = "/img/a.qcow2", "/img/b.qcow2"
		lib    = "/usr/lib/x86_64-linux-gnu/libgnutls.so.30"
	)
	owner := func(target, p string, modified bool) report.Provenance {
		return report.Provenance{Manager: "dpkg", Package: "libgnutls30", Version: "3.7.9-2", Target: target, Path: p, Modified: modified, Digest: "md5"}
	}
	file := func(target, p string) report.Location {
		return report.Location{Target: target, View: target + "#current", Path: p, State: report.StateAllocated, Exposure: report.ExposureLive}
	}
	free := func(target string) report.Location {
		return report.Location{Target: target, View: target + "#current", State: report.StateFree, Exposure: report.ExposureDeleted}
	}
	slack := func(target, p string) report.Location {
		return report.Location{Target: target, View: target + "#current", Path: p, State: report.StateFree, Exposure: report.ExposureDeleted}
	}
	linked := func(l report.Location, omitted int, links ...string) report.Location {
		l.Links, l.LinksOmitted = links, omitted
		return l
	}
	member := func(l report.Location, members ...string) report.Location {
		l.Decoded = []report.DecodedStep{{Codec: "gzip"}}
		for _, m := range members {
			l.Decoded = append(l.Decoded, report.DecodedStep{Codec: "tar", Member: m})
		}
		return l
	}
	own := func(ps ...report.Provenance) LocationFacts { return LocationFacts{Owners: ps} }
	none := LocationFacts{}

	cases := []struct {
		name     string
		sev      string
		locs     []report.Location
		facts    []LocationFacts
		machine  map[string]string
		want     string
		codes    []string
		provLen  int
		textHave string
	}{
		{"unmodified package file", report.SeverityCritical,
			[]report.Location{file(tA, lib)}, []LocationFacts{own(owner(tA, lib, false))}, nil,
			report.SeverityInfo, []string{report.ReasonPackageFileUnmodified}, 1, "libgnutls30 3.7.9-2 (dpkg) in " + lib},
		{"propagates to free blocks and another file of the target", report.SeverityCritical,
			[]report.Location{free(tA), file(tA, lib), file(tA, "/root/copy.pem")}, []LocationFacts{none, own(owner(tA, lib, false)), none}, nil,
			report.SeverityInfo, []string{report.ReasonPackageFileUnmodified, report.ReasonPublicByPropagation}, 1, "2 other locations (deleted, live) hold"},
		{"modified package file keeps severity", report.SeverityHigh,
			[]report.Location{file(tA, lib)}, []LocationFacts{own(owner(tA, lib, true))}, nil,
			report.SeverityHigh, []string{report.ReasonPackageFileModified}, 1, "modified since installed (md5 differs from the package's record)"},
		{"no digest to compare keeps severity", report.SeverityHigh,
			[]report.Location{file(tA, lib)}, []LocationFacts{own(report.Provenance{Manager: "dpkg", Package: "x", Target: tA, Path: lib, Modified: true})}, nil,
			report.SeverityHigh, []string{report.ReasonPackageFileModified}, 1, "with no digest recorded to prove it unmodified"},
		{"modified and unmodified copies: public", report.SeverityHigh,
			[]report.Location{file(tA, lib), file(tA, "/usr/lib/other.so")}, []LocationFacts{own(owner(tA, lib, false)), own(owner(tA, "/usr/lib/other.so", true))}, nil,
			report.SeverityInfo, []string{report.ReasonPackageFileUnmodified, report.ReasonPublicByPropagation}, 2, "1 other location (live) holds"},
		{"public in one target, not the other", report.SeverityCritical,
			[]report.Location{file(tA, lib), free(tB)}, []LocationFacts{own(owner(tA, lib, false)), none}, nil,
			report.SeverityCritical, []string{report.ReasonPublicInSomeTargets}, 1, "public in " + tA},
		{"both targets public", report.SeverityCritical,
			[]report.Location{file(tA, lib), file(tB, lib)}, []LocationFacts{own(owner(tA, lib, false)), own(owner(tB, lib, false))}, nil,
			report.SeverityInfo, []string{report.ReasonPackageFileUnmodified}, 2, ""},
		{"one VM of a store: its memory save shares the disk's proof", report.SeverityCritical,
			[]report.Location{file(tA, lib), {Target: "/img/a.save", Exposure: report.ExposureMemory, State: report.StateUnknown}},
			[]LocationFacts{own(owner(tA, lib, false)), none}, map[string]string{tA: "vm a", "/img/a.save": "vm a"},
			report.SeverityInfo, []string{report.ReasonPackageFileUnmodified, report.ReasonPublicByPropagation}, 1, "(memory)"},
		{"test directory, one level", report.SeverityCritical,
			[]report.Location{file(tA, "/opt/app/tests/.env"), free(tA)}, []LocationFacts{none, none}, nil,
			report.SeverityHigh, []string{report.ReasonTestPath}, 0, "tests/ in /opt/app/tests/.env"},
		{"testdata and docs, the smaller lowering wins", report.SeverityCritical,
			[]report.Location{file(tA, "/go/src/x/testdata/k.pem"), file(tA, "/srv/tests/k.pem")}, nil, nil,
			report.SeverityHigh, []string{report.ReasonTestPath}, 0, "and 1 more file"},
		{"documentation, two levels", report.SeverityHigh,
			[]report.Location{file(tA, "/usr/share/doc/x/examples/k.pem")}, nil, nil,
			report.SeverityLow, []string{report.ReasonDocumentationPath}, 0, "documentation"},
		{"already low stays low, and says so", report.SeverityLow,
			[]report.Location{file(tA, "/usr/share/doc/x/k")}, nil, nil,
			report.SeverityLow, []string{report.ReasonDocumentationPath}, 0, "already at low"},
		{"a live file outside test paths prevents lowering", report.SeverityCritical,
			[]report.Location{file(tA, "/opt/app/tests/.env"), file(tA, "/etc/app.env")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"a hard link outside test paths prevents lowering", report.SeverityCritical,
			[]report.Location{linked(file(tA, "/srv/testdata/tls.key"), 0, "/etc/ssl/private/tls.key")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"every name in test paths: lowered by the smallest", report.SeverityCritical,
			[]report.Location{linked(file(tA, "/srv/testdata/k.pem"), 0, "/srv/tests/k.pem")}, nil, nil,
			report.SeverityHigh, []string{report.ReasonTestPath}, 0, "tests/ in /srv/tests/k.pem) that"},
		{"an archive member under a test directory", report.SeverityCritical,
			[]report.Location{member(file(tA, "/root/.yarn/berry/cache/ssh2-npm-1.16.0-bee6b5f04c-10c0.zip"), "node_modules/ssh2/test/fixtures/id_rsa")}, nil, nil,
			report.SeverityMedium, []string{report.ReasonTestPath}, 0, "fixtures/ in /root/.yarn/berry/cache/ssh2-npm-1.16.0-bee6b5f04c-10c0.zip, member node_modules/ssh2/test/fixtures/id_rsa"},
		{"an archive in testdata: its members are test data", report.SeverityCritical,
			[]report.Location{member(file(tA, "/src/pkg/testdata/keys.tar.gz"), "keys/server.pem")}, nil, nil,
			report.SeverityMedium, []string{report.ReasonTestPath}, 0, "testdata/ in /src/pkg/testdata/keys.tar.gz"},
		{"a zip's stored member, also seen raw in the zip's bytes", report.SeverityCritical,
			[]report.Location{member(file(tA, "/c/ssh2.zip"), "node_modules/ssh2/test/fixtures/id_rsa"), file(tA, "/c/ssh2.zip")}, nil, nil,
			report.SeverityMedium, []string{report.ReasonTestPath}, 0, "member node_modules/ssh2/test/fixtures/id_rsa"},
		{"raw bytes of another file are no member's", report.SeverityCritical,
			[]report.Location{member(file(tA, "/c/ssh2.zip"), "node_modules/ssh2/test/fixtures/id_rsa"), file(tA, "/c/other.zip")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"a backup archive's member outside test paths is not", report.SeverityCritical,
			[]report.Location{member(file(tA, "/var/backups/etc.tar.gz"), "etc/ssl/private/tls.key")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"a member in a test directory, and the same key in /etc", report.SeverityCritical,
			[]report.Location{member(file(tA, "/srv/app.zip"), "app/tests/k.pem"), file(tA, "/etc/k.pem")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"names not listed prevent lowering", report.SeverityCritical,
			[]report.Location{linked(file(tA, "/srv/testdata/k.pem"), 2, "/srv/testdata/k2.pem")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"slack of a test file is not a test file", report.SeverityCritical,
			[]report.Location{slack(tA, "/opt/app/tests/.env")}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
		{"a package-owned file in tests/ is decided by provenance", report.SeverityCritical,
			[]report.Location{file(tA, "/usr/lib/python3/x/tests/k.pem")}, []LocationFacts{own(owner(tA, "/usr/lib/python3/x/tests/k.pem", true))}, nil,
			report.SeverityCritical, []string{report.ReasonPackageFileModified}, 1, ""},
		{"free blocks only: nothing to decide", report.SeverityCritical,
			[]report.Location{free(tA)}, nil, nil,
			report.SeverityCritical, nil, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := report.Finding{Rule: "r", Severity: c.sev, Locations: c.locs}
			Apply(&f, c.facts, func(tg string) string { return c.machine[tg] })
			var codes []string
			text := ""
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
				text += r.Text + "\n"
				if (r.From == "") != (r.To == "") || r.From != "" && r.From == r.To {
					t.Errorf("reason %+v: from/to must both be set, and differ, or both be empty", r)
				}
			}
			if f.Severity != c.want || !slices.Equal(codes, c.codes) || len(f.Provenance) != c.provLen || !strings.Contains(text, c.textHave) {
				t.Errorf("severity %s (want %s), reasons %q (want %q), %d provenance (want %d)\n%s",
					f.Severity, c.want, codes, c.codes, len(f.Provenance), c.provLen, text)
			}
			if f.Severity != c.sev && (len(f.Reasons) == 0 || f.Reasons[0].From != c.sev || f.Reasons[0].To != f.Severity) {
				t.Errorf("a change of severity without a reason saying %s -> %s: %+v", c.sev, f.Severity, f.Reasons)
			}
		})
	}
}
