package registry

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestLayerDiskNamesAreSealed puts qcow2 disks whose backing names reach a
// host file holding a planted token (by absolute path, by ../, and by a
// bare name) into a docker save tarball. The disks are spooled to temp
// files and audited, but no name inside them resolves on this host: the
// token is never reported, and each disk's error says why.
func TestLayerDiskNamesAreSealed(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	tmp := t.TempDir()
	host := filepath.Join(tmp, "host", "token.raw")
	planted := npmToken(t)
	body := make([]byte, 1<<20)
	copy(body, "NPM_TOKEN="+planted+"\n")
	if err := os.MkdirAll(filepath.Dir(host), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(host, body, 0o644); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{"abs.qcow2": host, "dotdot.qcow2": "../../host/token.raw", "bare.qcow2": "token.raw"}
	entries := []entry{dir("disk/")}
	for disk, backing := range names {
		p := filepath.Join(tmp, disk)
		testutil.Run(t, "qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", "raw", p, "1M")
		entries = append(entries, entry{name: "disk/" + disk, body: testutil.FileSnapshot(t, p)})
	}
	img := imageOf(t, layer(t, "", entries...))
	tarPath := filepath.Join(tmp, "image.tar")
	tag, _ := name.NewTag("example.com/vm:1")
	if err := tarball.WriteToFile(tarPath, tag, img); err != nil {
		t.Fatal(err)
	}
	before := testutil.FileSnapshot(t, host)
	rep, err := newScanner(t, Options{}).ScanLocal(context.Background(), []string{tarPath})
	if err != nil {
		t.Fatal(err)
	}
	if f := findingsByFP(rep)[fp(planted)]; f != nil {
		t.Errorf("the host file's token was reported for the layer's disk: %+v", f.Locations)
	}
	for disk, backing := range names {
		var errs []string
		for _, tg := range rep.Targets {
			if strings.HasSuffix(tg.Path, "!/disk/"+disk) {
				errs = append(errs, tg.Errors...)
			}
		}
		all := strings.Join(errs, "\n")
		if !strings.Contains(all, model.ErrSealed.Error()) || !strings.Contains(all, `backing file "`+backing+`"`) || !strings.Contains(all, "offset") {
			t.Errorf("%s: errors %q: want the sealed refusal of %q with its offset", disk, all, backing)
		}
	}
	if string(testutil.FileSnapshot(t, host)) != string(before) {
		t.Error("host file changed")
	}
}
