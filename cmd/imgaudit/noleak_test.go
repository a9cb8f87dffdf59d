package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestCLINoLeak: a real image full of secrets (as files, inside a gzip
// and a tar.gz, as a URL's password and as a URL's user name, an
// OpenSSH key), scanned by the command in every output format, with
// progress on stderr, and described by info: no stdout, stderr or report
// file holds 16 bytes of any secret. report's TestNoSecretLeaks covers
// the writers on a fixture report; this covers what the detectors and
// the decoders put into a real one (metadata, notes, errors, previews).
func TestCLINoLeak(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img", "gzip", "tar", "ssh-keygen")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	secrets := map[string]string{
		"npm":     randomAlnum(t, 36),
		"stripe":  "sk_live_" + randomAlnum(t, 32),
		"urlpw":   randomAlnum(t, 24),
		"urluser": "ghp_" + randomAlnum(t, 36),
		"aws":     randomAlnum(t, 40),
		"gz":      "sk_live_" + randomAlnum(t, 32),
	}
	files := map[string]string{
		"home/dev/.npmrc":           "//registry.example.com/:_authToken=" + secrets["npm"] + "\n",
		"srv/shop/.env":             "STRIPE_SECRET_KEY=" + secrets["stripe"] + "\n",
		"root/.git-credentials":     "https://deploy:" + secrets["urlpw"] + "@git.example.com\n",
		"srv/app/.git/config":       "[remote \"origin\"]\n\turl = https://" + secrets["urluser"] + ":x-oauth-basic@github.com/acme/app.git\n",
		"home/dev/.aws/credentials": "[default]\naws_access_key_id = AKIA" + strings.ToUpper(randomAlnum(t, 16)) + "\naws_secret_access_key = " + secrets["aws"] + "\n",
		"stage/old.env":             "STRIPE_SECRET_KEY=" + secrets["gz"] + "\n",
	}
	for p, body := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Bash(t, root, `set -e
mkdir -p etc/ssh var/backups
ssh-keygen -q -t ed25519 -N '' -C '' -f etc/ssh/ssh_host_ed25519_key
gzip -c stage/old.env > var/backups/old.env.gz
tar -czf var/backups/stage.tar.gz stage
rm -r stage`)
	key := string(readAll(t, filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")))
	lines := strings.Split(strings.TrimSpace(key), "\n")
	secrets["ssh"] = strings.Join(lines[1:len(lines)-1], "")
	raw, img := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", root, raw, "8M")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, img)

	var all strings.Builder
	for _, format := range []string{"json", "table", "sarif", "html"} {
		out := filepath.Join(dir, "report."+format)
		code, stdout, stderr := runCLI(t, "scan", "--progress", "--format", format, "-o", out, img)
		if code != exitFindings {
			t.Fatalf("scan --format %s: exit %d, stderr %s", format, code, stderr)
		}
		all.WriteString(stdout + stderr + string(readAll(t, out)))
	}
	code, stdout, stderr := runCLI(t, "scan", "--no-progress", img)
	all.WriteString(stdout + stderr)
	if code != exitFindings {
		t.Fatalf("scan to stdout: exit %d", code)
	}
	code, stdout, stderr = runCLI(t, "info", img)
	if code != exitOK {
		t.Fatalf("info: exit %d %s", code, stderr)
	}
	all.WriteString(stdout + stderr)

	// Each secret was found (so the check below means something): the
	// JSON report holds a finding for each of the files.
	rep := readReportFile(t, filepath.Join(dir, "report.json"))
	paths := map[string]bool{}
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			paths[l.Path] = true
		}
	}
	for _, p := range []string{"/home/dev/.npmrc", "/srv/shop/.env", "/root/.git-credentials", "/srv/app/.git/config", "/home/dev/.aws/credentials", "/etc/ssh/ssh_host_ed25519_key", "/var/backups/old.env.gz", "/var/backups/stage.tar.gz"} {
		if !paths[p] {
			t.Errorf("no finding at %s: the image does not exercise what this test checks", p)
		}
	}
	text := all.String()
	for name, s := range secrets {
		for i := 0; i+16 <= len(s); i++ {
			if strings.Contains(text, s[i:i+16]) {
				t.Errorf("the output holds 16 bytes of the %s secret", name)
				break
			}
		}
	}
}
