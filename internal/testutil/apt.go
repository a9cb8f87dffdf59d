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
	if err := os.MkdirAll(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	aptRoot(t, root)
	for _, d := range debs {
		b, err := os.ReadFile(d)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, filepath.Base(d)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "apt.conf")
	var extra []string
	if gzipIndexes {
		extra = append(extra, `Acquire::GzipIndexes "true";`)
	}
	writeAptConf(t, conf, root, filepath.Join(dir, "sources.list"), extra...)
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

// AptUpdate has the real apt update a guest root's lists from a
// repository laid out as Debian's mirrors are (dists/SUITE/...): indexes
// maps each index's path under dists/SUITE (main/binary-amd64/Packages,
// main/i18n/Translation-en) to its contents; each is served plain and
// xz-compressed, as the mirrors serve them, and apt-ftparchive writes the
// Release file that lists their digests. `apt-get update` (with English
// descriptions, and its own configuration as in AptDownload) then keeps
// the Release file and the indexes it fetched in root's
// /var/lib/apt/lists, under the names apt gives them. signed has gpg sign
// the Release file (InRelease, which apt then keeps instead). conf adds
// lines to apt's configuration (`Acquire::GzipIndexes "true";`, as
// Debian's container images set it). It returns the repository's
// directory.
func AptUpdate(t testing.TB, dir, root, suite string, indexes map[string][]byte, signed bool, conf ...string) string {
	t.Helper()
	RequireTool(t, "apt-get", "apt-ftparchive", "xz")
	repo := filepath.Join(dir, "apt-dists")
	aptRoot(t, root)
	dists := filepath.Join(repo, "dists", suite)
	for p, b := range indexes {
		f := filepath.Join(dists, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// The fastest level: apt reads any, and the tests' indexes reach 9 MiB.
		if out, err := exec.Command("xz", "-0", "-k", f).CombinedOutput(); err != nil {
			t.Fatalf("xz -k %s: %v\n%s", f, err, out)
		}
	}
	release, err := exec.Command("apt-ftparchive", "-o", "APT::FTPArchive::Release::Codename="+suite,
		"-o", "APT::FTPArchive::Release::Suite="+suite, "release", dists).Output()
	if err != nil {
		t.Fatalf("apt-ftparchive release: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dists, "Release"), release, 0o644); err != nil {
		t.Fatal(err)
	}
	source := "[trusted=yes]"
	if signed {
		// A key of the test's own signs the Release file as InRelease,
		// as Debian's archive does; apt trusts it by signed-by.
		RequireTool(t, "gpg")
		home := filepath.Join(dir, "gnupg")
		if err := os.MkdirAll(home, 0o700); err != nil {
			t.Fatal(err)
		}
		gpg := func(args ...string) []byte {
			cmd := exec.Command("gpg", append([]string{"--homedir", home, "--batch"}, args...)...)
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("gpg %s: %v", strings.Join(args, " "), err)
			}
			return out
		}
		gpg("--passphrase", "", "--quick-gen-key", "imgaudit test <test@invalid>", "ed25519", "sign", "never")
		gpg("--clearsign", "-o", filepath.Join(dists, "InRelease"), filepath.Join(dists, "Release"))
		key := filepath.Join(dir, "apt-update.gpg")
		if err := os.WriteFile(key, gpg("--export"), 0o644); err != nil {
			t.Fatal(err)
		}
		source = "[signed-by=" + key + "]"
	}
	aptConf := filepath.Join(dir, "apt-update.conf")
	sources := filepath.Join(dir, "apt-update.sources.list")
	writeAptConf(t, aptConf, root, sources, append([]string{`Acquire::Languages { "en"; };`}, conf...)...)
	if err := os.WriteFile(sources, []byte("deb "+source+" copy:"+repo+" "+suite+" main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("apt-get", "-q", "update")
	cmd.Env = append(os.Environ(), "APT_CONFIG="+aptConf)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("apt-get update: %v\n%s", err, out)
	}
	return repo
}

// aptRoot makes the directories apt needs in a guest root, and an empty
// dpkg status where there is none.
func aptRoot(t testing.TB, root string) {
	t.Helper()
	for _, d := range []string{"var/lib/dpkg", "var/cache/apt/archives/partial", "var/lib/apt/lists/partial", "etc/apt/apt.conf.d", "etc/apt/preferences.d"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	status := filepath.Join(root, "var/lib/dpkg/status")
	if _, err := os.Stat(status); err != nil {
		if err := os.WriteFile(status, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// writeAptConf writes an apt configuration (APT_CONFIG) at conf that
// works on root alone, with sources as its only source list and no
// keyring of the host's, then the extra lines.
func writeAptConf(t testing.TB, conf, root, sources string, extra ...string) {
	t.Helper()
	lines := append([]string{
		`Dir "` + root + `/";`,
		`Dir::Etc::sourcelist "` + sources + `";`,
		`Dir::Etc::sourceparts "-";`,
		`Dir::Etc::trusted "/dev/null";`,
		`Dir::Etc::trustedparts "/dev/null";`,
		`APT::Sandbox::User "root";`,
		`Debug::NoLocking "true";`,
	}, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
