package scanner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestGoModCache scans a disk where the real go command downloaded two
// modules into root's GOPATH (a file:// proxy), leaving each zip, its
// ziphash and the extracted tree. The keys a module ships (a test
// fixture, a source file) are the module's as published: info, with the
// zip's go provenance, and so are their copies in the extracted tree
// (propagation). A zip changed after the download no longer has its
// ziphash: what it holds keeps its severity. With --no-downgrade every key
// has its rule's severity.
func TestGoModCache(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zip")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	keys := map[string][]byte{}
	for _, k := range []string{"fixture", "shipped", "original", "injected"} {
		keys[k] = freshKey(t, dir, k)
	}
	testutil.GoModDownload(t, dir, filepath.Join(root, "root/go"), []testutil.GoModule{
		{Path: "example.com/acme", Version: "v1.2.0", Files: map[string][]byte{"testdata/id_rsa": keys["fixture"], "certs/key.pem": keys["shipped"]}},
		{Path: "example.com/tampered", Version: "v0.1.0", Files: map[string][]byte{"key.pem": keys["original"]}},
	})
	const tampered = "root/go/pkg/mod/cache/download/example.com/tampered/@v/v0.1.0.zip"
	if err := os.WriteFile(filepath.Join(dir, "injected.pem"), keys["injected"], 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.Bash(t, dir, `mkdir -p edit/example.com/tampered@v0.1.0 && cp injected.pem edit/example.com/tampered@v0.1.0/key.pem
cd edit && zip -q ../root/`+tampered+` example.com/tampered@v0.1.0/key.pem && cd .. && mkfs.ext4 -q -F -d root disk.raw 32M`)
	img := filepath.Join(dir, "disk.raw")

	rep := scanFile(t, scanner.Options{}, img)
	plain := scanFile(t, scanner.Options{NoDowngrade: true}, img)
	for _, k := range []string{"fixture", "shipped"} {
		f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n")))
		if f.Severity != report.SeverityInfo || len(f.Provenance) != 1 || f.Provenance[0] != (report.Provenance{Manager: "go", Package: "example.com/acme", Version: "v1.2.0",
			Target: img, Path: "/root/go/pkg/mod/cache/download/example.com/acme/@v/v1.2.0.zip", Digest: "h1"}) {
			t.Errorf("%s: severity %s, provenance %+v", k, f.Severity, f.Provenance)
		}
		if !slices.ContainsFunc(f.Locations, func(l report.Location) bool {
			return strings.HasPrefix(l.Path, "/root/go/pkg/mod/example.com/acme@v1.2.0/")
		}) {
			t.Errorf("%s: no location in the extracted tree: %+v", k, f.Locations)
		}
		if pf := findingOf(t, plain, f.Fingerprint); pf.Severity == report.SeverityInfo {
			t.Errorf("%s with --no-downgrade: %s", k, pf.Severity)
		}
	}
	f := findingOf(t, rep, fp(bytes.TrimRight(keys["injected"], "\n")))
	pf := findingOf(t, plain, f.Fingerprint)
	if f.Severity != pf.Severity || len(f.Provenance) != 1 || !f.Provenance[0].Modified || f.Provenance[0].Path != "/"+tampered {
		t.Errorf("the changed zip's key: severity %s (%s without downgrades), provenance %+v", f.Severity, pf.Severity, f.Provenance)
	}
}
