package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// AptDownload has the real apt download packages into a guest root, as
// `apt-get update && apt-get install --download-only` leaves a machine:
// the debs are made a flat repository (dpkg-scanpackages), which apt reads
// through its copy: method into root's /var/lib/apt/lists, and the
// packages named in install land in root's /var/cache/apt/archives under
// the names apt gives them. gzipIndexes stores the lists compressed
// (Acquire::GzipIndexes, as Debian's container images set it). apt runs
// with a configuration of its own (APT_CONFIG), so neither the host's
// apt state nor its configuration takes part.
func AptDownload(t testing.TB, dir, root string, debs, install []string, gzipIndexes bool) {
	t.Helper()
	RequireTool(t, "apt-get", "dpkg-scanpackages")
	repo := filepath.Join(dir, "apt-repo")
	for _, d := range []string{repo, "var/lib/dpkg", "var/cache/apt/archives/partial", "var/lib/apt/lists/partial", "etc/apt/apt.conf.d", "etc/apt/preferences.d"} {
		if !filepath.IsAbs(d) {
			d = filepath.Join(root, d)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range debs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, filepath.Base(d)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "apt.conf")
	lines := []string{
		`Dir "` + root + `/";`,
		`Dir::Etc::sourcelist "` + filepath.Join(dir, "sources.list") + `";`,
		`Dir::Etc::sourceparts "-";`,
		`Dir::Etc::trusted "/dev/null";`,
		`Dir::Etc::trustedparts "/dev/null";`,
		`APT::Sandbox::User "root";`,
		`Debug::NoLocking "true";`,
	}
	if gzipIndexes {
		lines = append(lines, `Acquire::GzipIndexes "true";`)
	}
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sources.list"), []byte("deb [trusted=yes] copy:"+repo+" ./\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		cmd := exec.Command(name, args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "APT_CONFIG="+conf)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	cmd := exec.Command("dpkg-scanpackages", "-m", ".")
	cmd.Dir = repo
	idx, err := cmd.Output()
	if err != nil {
		t.Fatalf("dpkg-scanpackages: %v", err)
	}
	if err := os.WriteFile(filepath.Join(repo, "Packages"), idx, 0o644); err != nil {
		t.Fatal(err)
	}
	run("apt-get", "-q", "update")
	run("apt-get", append([]string{"-q", "-y", "install", "--download-only"}, install...)...)
}
