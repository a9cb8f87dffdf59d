package scanner_test

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestKnownPublicKeys: keys that software publishes are info wherever
// they lie, with the reason known-public-key, and the secrets beside them
// are not. A real openssl process's core (gcore) holds the RSA keys of
// `openssl speed`, compiled into the program (rsa-private-key-der, by the
// memory rules a core meets); a copy of this machine's libgnutls that no
// package records (under /opt) holds GnuTLS's self-test keys (PEM). The
// process's own AES key stays high. With NoDowngrade every one of them
// keeps its rule's severity.
func TestKnownPublicKeys(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	gnutls, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libgnutls.so.30.*")
	if len(gnutls) == 0 {
		testutil.Missing(t, "libgnutls30")
	}
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	testutil.Bash(t, dir, fmt.Sprintf(`set -e
mkdir -p root/var/crash root/opt/app/lib
cp %s root/var/crash/core.openssl
cp %s root/opt/app/lib/libgnutls.so.30
mkfs.ext4 -q -F -d root host.raw 64M`, core, gnutls[0]))
	img := filepath.Join(dir, "host.raw")
	known := downgrade.NewKnownPublic()
	// bySource: the published keys' findings by source, each as
	// "rule severity reason-codes path published_by".
	bySource := func(rep *report.Report) map[string][]string {
		out := map[string][]string{}
		for _, f := range rep.Findings {
			s, ok := known.Lookup(&f)
			if !ok {
				continue
			}
			var codes []string
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
			}
			out[s.ID] = append(out[s.ID], fmt.Sprintf("%s %s %v %s %s", f.Rule, f.Severity, codes, f.Locations[0].Path, f.Metadata[report.MetadataPublishedBy]))
		}
		return out
	}
	count := func(id string) int {
		for _, s := range known.Sources() {
			if s.ID == id {
				return len(s.Keys)
			}
		}
		return 0
	}

	rep := scanFile(t, scanner.Options{}, img)
	got := bySource(rep)
	for id, path := range map[string]string{"openssl-speed": "/var/crash/core.openssl", "gnutls-self-tests": "/opt/app/lib/libgnutls.so.30"} {
		// The list holds the keys of several Debian releases (GnuTLS 3.8
		// has two more than 3.7): this machine's copy holds its own
		// release's, each of which must be in the list (no critical
		// finding, below).
		if n := len(got[id]); n == 0 || n > count(id) || id == "openssl-speed" && n != count(id) {
			t.Errorf("%s: %d findings, want this release's of its %d keys: %q", id, n, count(id), got[id])
		}
		for _, g := range got[id] {
			var rule string
			fmt.Sscan(g, &rule)
			if want := fmt.Sprintf("%s info [%s] %s %s", rule, report.ReasonKnownPublicKey, path, id); g != want {
				t.Errorf("%s: %q, want %q", id, g, want)
			}
		}
	}
	if len(got) != 2 {
		t.Errorf("published keys of %d sources: %q", len(got), got)
	}
	if sev := severityOf(rep, "aes-key-schedule", fmt.Sprintf("sha256:%x", sha256.Sum256(key))); sev != "high" {
		t.Errorf("the process's own AES key: severity %q, want high", sev)
	}
	for _, f := range rep.Findings {
		if f.Severity == report.SeverityCritical {
			t.Errorf("critical %s at %s: no published key", f.Rule, f.Locations[0].Path)
		}
	}

	// NoDowngrade: the same keys at their rules' severities.
	before := got
	got = bySource(scanFile(t, scanner.Options{NoDowngrade: true}, img))
	for _, id := range []string{"openssl-speed", "gnutls-self-tests"} {
		if len(got[id]) != len(before[id]) {
			t.Errorf("NoDowngrade: %s: %d findings, want %d", id, len(got[id]), len(before[id]))
		}
		for _, g := range got[id] {
			if rule, sev, codes := fields(g); sev == report.SeverityInfo || codes != "[]" {
				t.Errorf("NoDowngrade: %s: %s is %s, reasons %s", id, rule, sev, codes)
			}
		}
	}
}

func severityOf(rep *report.Report, rule, fingerprint string) string {
	for _, f := range rep.Findings {
		if f.Rule == rule && f.Fingerprint == fingerprint {
			return f.Severity
		}
	}
	return ""
}

// fields splits one of bySource's entries.
func fields(s string) (rule, severity, codes string) {
	fmt.Sscan(s, &rule, &severity, &codes)
	return rule, severity, codes
}

// TestKnownPublicGoSourceTree: the Go distribution's source tree, which
// go.dev's tarball installs in /usr/local/go outside any package, holds
// two EC keys (crypto/x509's platform_root_key.pem, crypto/tls's
// example_test.go). The files of the Go that runs this test, copied to
// that place in an ext4, are info with the reason known-public-key from
// source go-source-tree (the list holds Debian's golang-1.19-src and
// golang-1.24-src: the keys have not changed since), and critical with
// NoDowngrade.
func TestKnownPublicGoSourceTree(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4")
	goroot := runtime.GOROOT()
	files := []string{"src/crypto/x509/platform_root_key.pem", "src/crypto/tls/example_test.go"}
	dir := t.TempDir()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(goroot, f))
		if err != nil {
			testutil.Missing(t, "the Go source tree ("+err.Error()+")")
		}
		dst := filepath.Join(dir, "root/usr/local/go", f)
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Bash(t, dir, `mkfs.ext4 -q -F -d root host.raw 16M`)
	img := filepath.Join(dir, "host.raw")
	for _, noDowngrade := range []bool{false, true} {
		rep := scanFile(t, scanner.Options{NoDowngrade: noDowngrade}, img)
		got := map[string]string{}
		for _, f := range rep.Findings {
			var codes []string
			for _, r := range f.Reasons {
				codes = append(codes, r.Code)
			}
			got[f.Locations[0].Path] = fmt.Sprintf("%s %s %v %s", f.Rule, f.Severity, codes, f.Metadata[report.MetadataPublishedBy])
		}
		for _, f := range files {
			p := "/usr/local/go/" + f
			want := fmt.Sprintf("private-key-ec info [%s] go-source-tree", report.ReasonKnownPublicKey)
			if noDowngrade {
				want = "private-key-ec critical [] "
			}
			if got[p] != want {
				t.Errorf("NoDowngrade %v: %s: %q, want %q", noDowngrade, p, got[p], want)
			}
		}
		if len(got) != len(files) {
			t.Errorf("NoDowngrade %v: findings %q", noDowngrade, got)
		}
	}
}
