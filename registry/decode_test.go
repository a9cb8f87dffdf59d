package registry

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLayerArchivesDecoded: a .tar.gz that tar and gzip made, left in a
// layer, is decoded as the layer is read: its secret is found with the
// chain that reached it and the file's path, as a layer file's; with
// NoDecode it is not found.
func TestLayerArchivesDecoded(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip")
	tok := npmToken(t)
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "src/root"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "src/root/.npmrc"), []byte("//registry.npmjs.org/:_authToken="+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "-C", filepath.Join(tmp, "src"), "-czf", filepath.Join(tmp, "backup.tar.gz"), "root")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	tgz, err := os.ReadFile(filepath.Join(tmp, "backup.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t, "app", imageOf(t, layer(t, "", dir("home/"), file("home/backup.tar.gz", string(tgz)))))
	for _, noDecode := range []bool{false, true} {
		rep := report.Merge(newScanner(t, Options{NoDecode: noDecode}).scanImage(context.Background(), img))
		f := findingsByFP(rep)[fp(tok)]
		if noDecode {
			if f != nil {
				t.Errorf("NoDecode found the token: %+v", f.Locations)
			}
			continue
		}
		if f == nil {
			t.Fatalf("token in the layer's .tar.gz not found")
		}
		l := f.Locations[0]
		if l.Path != "/home/backup.tar.gz" || report.DecodedText(l) != "gzip > tar member root/.npmrc" || l.DecodedOffset == nil || l.Exposure != report.ExposureLive {
			t.Errorf("location %+v (%s)", l, report.DecodedText(l))
		}
	}
}
