package registry

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/downgrade"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLayerPublishedKeys: a layer holding this machine's libgnutls (as
// every Debian image with apt does) holds GnuTLS's self-test keys; they
// are info, with the reason known-public-key, and a token beside them is
// not. With NoDowngrade they keep their rules' severities.
func TestLayerPublishedKeys(t *testing.T) {
	libs, _ := filepath.Glob("/usr/lib/x86_64-linux-gnu/libgnutls.so.30.*")
	if len(libs) == 0 {
		testutil.Missing(t, "libgnutls30")
	}
	lib, err := os.ReadFile(libs[0])
	if err != nil {
		t.Fatal(err)
	}
	tok := npmToken(t)
	img := testImage(t, "app", imageOf(t, layer(t, "",
		dir("usr/lib/x86_64-linux-gnu/"), file("usr/lib/x86_64-linux-gnu/libgnutls.so.30", string(lib)),
		dir("root/"), file("root/.npmrc", "//registry.npmjs.org/:_authToken="+tok+"\n"))))
	known := downgrade.NewKnownPublic()
	var gnutls downgrade.KnownSource
	for _, s := range known.Sources() {
		if s.ID == "gnutls-self-tests" {
			gnutls = s
		}
	}
	for _, noDowngrade := range []bool{false, true} {
		rep := report.Merge(newScanner(t, Options{NoDowngrade: noDowngrade}).scanImage(context.Background(), img))
		n := 0
		for _, f := range rep.Findings {
			s, ok := known.Lookup(&f)
			if !ok {
				if f.Fingerprint == fp(tok) && f.Severity == report.SeverityInfo {
					t.Errorf("NoDowngrade %v: the token is info", noDowngrade)
				}
				if f.Fingerprint != fp(tok) {
					t.Errorf("NoDowngrade %v: %s at %s is not in the list of published keys", noDowngrade, f.Rule, f.Locations[0].Path)
				}
				continue
			}
			n++
			if s.ID != gnutls.ID || f.Locations[0].Path != "/usr/lib/x86_64-linux-gnu/libgnutls.so.30" {
				t.Errorf("NoDowngrade %v: %s of %s at %s", noDowngrade, f.Rule, s.ID, f.Locations[0].Path)
			}
			published := f.Severity == report.SeverityInfo && len(f.Reasons) == 1 && f.Reasons[0].Code == report.ReasonKnownPublicKey
			if published == noDowngrade {
				t.Errorf("NoDowngrade %v: %s is %s, reasons %+v", noDowngrade, f.Rule, f.Severity, f.Reasons)
			}
		}
		// The list holds the keys of several Debian releases (GnuTLS 3.8
		// has two more than 3.7); this machine's library, its own.
		if n == 0 || n > len(gnutls.Keys) {
			t.Errorf("NoDowngrade %v: %d of GnuTLS's %d keys found", noDowngrade, n, len(gnutls.Keys))
		}
		if _, ok := findingsByFP(rep)[fp(tok)]; !ok {
			t.Errorf("NoDowngrade %v: the token is not found", noDowngrade)
		}
	}
}
