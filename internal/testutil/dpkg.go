package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// DebFile is one file of a test package.
type DebFile struct {
	Path     string // absolute path in the installed system
	Data     []byte
	Conffile bool // listed in DEBIAN/conffiles (and so not in md5sums)
}

// DebPackage describes a test package for BuildDeb.
type DebPackage struct {
	Name, Version string
	Arch          string // "all" when empty
	MultiArchSame bool   // Multi-Arch: same (info files named NAME:ARCH)
	Files         []DebFile
	// LongDescription, when set, is the extended description, one
	// control continuation line per line (dpkg keeps it in its status
	// file).
	LongDescription []string
}

// BuildDeb builds p with dpkg-deb into dir and returns the .deb's path.
// Its DEBIAN/md5sums is written by md5sum for every file but the
// conffiles, as dh_md5sums writes it.
func BuildDeb(t testing.TB, dir string, p DebPackage) string {
	t.Helper()
	RequireTool(t, "dpkg-deb", "md5sum")
	arch := p.Arch
	if arch == "" {
		arch = "all"
	}
	src := filepath.Join(dir, p.Name+"_"+arch+".src")
	if err := os.MkdirAll(filepath.Join(src, "DEBIAN"), 0o755); err != nil {
		t.Fatal(err)
	}
	var rel, conf []string
	for _, f := range p.Files {
		full := filepath.Join(src, f.Path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
		if f.Conffile {
			conf = append(conf, f.Path+"\n")
		} else {
			rel = append(rel, strings.TrimPrefix(f.Path, "/"))
		}
	}
	control := "Package: " + p.Name + "\nVersion: " + p.Version + "\nArchitecture: " + arch +
		"\nMaintainer: imgaudit tests <tests@example.invalid>\nDescription: imgaudit test package\n"
	if len(p.LongDescription) > 0 {
		control += " " + strings.Join(p.LongDescription, "\n ") + "\n"
	}
	if p.MultiArchSame {
		control += "Multi-Arch: same\n"
	}
	write := func(name, s string) {
		if err := os.WriteFile(filepath.Join(src, "DEBIAN", name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("control", control)
	if len(conf) > 0 {
		write("conffiles", strings.Join(conf, ""))
	}
	slices.Sort(rel)
	sums := ""
	if len(rel) > 0 {
		cmd := append([]string{"-C", src, "md5sum", "--"}, rel...)
		sums = string(Run(t, "env", cmd...))
	}
	write("md5sums", sums)
	deb := filepath.Join(dir, p.Name+"_"+p.Version+"_"+arch+".deb")
	Run(t, "dpkg-deb", "--root-owner-group", "--build", src, deb)
	return deb
}

// DpkgInstall installs debs into the root filesystem tree root with the
// real dpkg (--root, no maintainer scripts run in a chroot), creating
// root's dpkg database first when it has none.
func DpkgInstall(t testing.TB, root string, debs ...string) {
	t.Helper()
	RequireTool(t, "dpkg")
	admin := filepath.Join(root, "var/lib/dpkg")
	for _, d := range []string{"info", "updates", "triggers"} {
		if err := os.MkdirAll(filepath.Join(admin, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"status", "available"} {
		p := filepath.Join(admin, f)
		if _, err := os.Stat(p); os.IsNotExist(err) {
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := append([]string{"--root=" + root, "--force-not-root", "--force-script-chrootless",
		"--log=/dev/null", "--no-triggers", "--force-architecture", "-i"}, debs...)
	Run(t, "dpkg", args...)
}
