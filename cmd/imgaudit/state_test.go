package main

import (
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// pushFile pushes an image of one layer holding file to ref.
func pushFile(t *testing.T, ref, file string, data []byte) {
	t.Helper()
	img := oneFileImage(t, file, data)
	tag, err := name.NewTag(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(tag, img); err != nil {
		t.Fatal(err)
	}
}

// TestRegistryStateAfterReport: --state is saved only once the report is
// written. A run whose report cannot be written (-o /dev/full) exits 2
// and leaves no state, so that the next --only-new run still reports the
// secret as new (before, the state was saved first: the second run
// exited 0 with the finding suppressed, and it was never reported). A
// state that cannot be saved (its directory is gone) fails the run with
// exit 2, after the report is written (before, it was only printed).
func TestRegistryStateAfterReport(t *testing.T) {
	host := testutil.DockerRegistry(t)
	ref := host + "/team/app:1"
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	tok := []byte("npm_" + strings.Repeat("x", 36))
	for i := 4; i < len(tok); i++ {
		tok[i] = alnum[mrand.IntN(len(alnum))]
	}
	pushFile(t, ref, "app/.env", []byte("NPM_TOKEN="+string(tok)+"\n"))
	dir := t.TempDir()
	state, out := filepath.Join(dir, "st.json"), filepath.Join(dir, "report.json")

	code, _, errs := runCLI(t, "registry", "--plain-http", "--state", state, "--only-new", "--format", "json", "-o", "/dev/full", ref)
	if code != exitUsage || !strings.Contains(errs, "writing report") {
		t.Fatalf("report to /dev/full: exit %d, stderr %q; want 2 and the write error", code, errs)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("the state was saved although the report was not written")
	}

	code, _, errs = runCLI(t, "registry", "--plain-http", "--state", state, "--only-new", "--format", "json", "-o", out, ref)
	rep := readReportFile(t, out)
	if code != exitFindings || len(rep.Findings) != 1 || rep.Findings[0].New == nil || !*rep.Findings[0].New {
		t.Fatalf("second run: exit %d, %d findings (stderr %q); want 1 and the secret, new", code, len(rep.Findings), errs)
	}
	if _, err := os.Stat(state); err != nil {
		t.Errorf("the state was not saved after the report: %v", err)
	}

	gone := filepath.Join(dir, "gone", "st.json")
	os.Remove(out)
	code, _, errs = runCLI(t, "registry", "--plain-http", "--state", gone, "--format", "json", "-o", out, ref)
	if code != exitUsage || !strings.Contains(errs, "state:") {
		t.Errorf("state that cannot be saved: exit %d, stderr %q; want 2 and the state's error", code, errs)
	}
	if _, err := os.Stat(out); err != nil {
		t.Errorf("the report was not written before the state: %v", err)
	}
}
