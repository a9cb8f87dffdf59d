package scanner_test

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// TestDebconfPasswords: where Debian keeps the database passwords it was
// given or made at install. debconf files the answer to a password
// question in /var/cache/debconf/passwords.dat (here written by the real
// debconf-set-selections, as a preseed or an admin leaves it), and
// dbconfig-common keeps a package's database password in
// /etc/dbconfig-common/PACKAGE.conf (written by dbconfig-common's own
// dbc_write_package_config) and in the include its
// dbconfig-generate-include writes for the application
// (/etc/acme/config-db.php). Each is found at high, live, and the
// boolean answers debconf keeps in config.dat beside it are none.
func TestDebconfPasswords(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debconf-set-selections", "dbconfig-generate-include")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	db := filepath.Join(root, "var/cache/debconf")
	for _, d := range []string{db, filepath.Join(root, "etc/dbconfig-common"), filepath.Join(root, "etc/acme")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// debconf's own layout (/etc/debconf.conf): password questions in
	// passwords.dat, the rest in config.dat; DEBCONF_SYSTEMRC points
	// debconf at the guest root's files instead of this machine's.
	conf := filepath.Join(dir, "debconf.conf")
	if err := os.WriteFile(conf, []byte("Config: configdb\nTemplates: templatedb\n\n"+
		"Name: config\nDriver: File\nMode: 644\nReject-Type: password\nFilename: "+db+"/config.dat\n\n"+
		"Name: passwords\nDriver: File\nMode: 600\nBackup: false\nRequired: false\nAccept-Type: password\nFilename: "+db+"/passwords.dat\n\n"+
		"Name: configdb\nDriver: Stack\nStack: config, passwords\n\n"+
		"Name: templatedb\nDriver: File\nMode: 644\nFilename: "+db+"/templates.dat\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	const preseeded, generated = "Vw4nTq8zRk2", "Hq4tRw9zLp2x"
	testutil.Bash(t, dir, "printf 'acme acme/mysql/app-pass password "+preseeded+"\\nacme acme/dbconfig-install boolean true\\n"+
		"openssh-server openssh-server/password-authentication boolean true\\n' | DEBCONF_SYSTEMRC="+conf+" debconf-set-selections")
	// dbconfig-common's writer, with ucf (which would register the file
	// in this machine's /var/lib/ucf) standing aside.
	testutil.Bash(t, dir, "bash -c '. /usr/share/dbconfig-common/dpkg/common; ucf() { cp \"$2\" \"$3\"; }; ucfr() { :; }; "+
		"dbc_package=acme dbc_packageconfig="+root+"/etc/dbconfig-common/acme.conf dbc_dbtype=mysql dbc_dbuser=acme dbc_dbpass="+generated+" dbc_dbname=acme dbc_install=true; "+
		"dbc_write_package_config' 2>/dev/null && dbconfig-generate-include -f php root/etc/dbconfig-common/acme.conf > root/etc/acme/config-db.php && "+
		"grep -q \"dbc_dbpass='"+generated+"'\" root/etc/dbconfig-common/acme.conf && grep -q Accept-Type "+conf+" && mkfs.ext4 -q -F -d root disk.raw 32M")
	img := filepath.Join(dir, "disk.raw")
	before := testutil.FileSnapshot(t, img)
	rep := scanFile(t, scanner.Options{}, img)
	if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
		t.Fatal("the image changed during the scan")
	}
	for _, c := range []struct {
		secret, rule string
		paths        []string
	}{
		{preseeded, "debconf-password", []string{"/var/cache/debconf/passwords.dat"}},
		{generated, "dbconfig-password", []string{"/etc/acme/config-db.php", "/etc/dbconfig-common/acme.conf"}},
	} {
		f := findingOf(t, rep, fp([]byte(c.secret)))
		var paths []string
		for _, l := range f.Locations {
			if l.Exposure != report.ExposureLive {
				t.Errorf("%s: a location %s %s", c.rule, l.Path, l.Exposure)
			}
			paths = append(paths, l.Path)
		}
		slices.Sort(paths)
		if f.Rule != c.rule || f.Severity != report.SeverityHigh || !slices.Equal(paths, c.paths) {
			t.Errorf("%s: rule %s, severity %s, at %q; want %s at %q", c.secret[:3], f.Rule, f.Severity, paths, c.rule, c.paths)
		}
	}
	for _, f := range rep.Findings {
		for _, l := range f.Locations {
			if l.Path == "/var/cache/debconf/config.dat" || l.Path == "/var/cache/debconf/templates.dat" {
				t.Errorf("a finding in %s: %s %s", l.Path, f.Rule, f.Preview)
			}
		}
	}
}
