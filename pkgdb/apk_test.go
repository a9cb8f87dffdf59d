package pkgdb

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// No apk-tools runs here (Debian bookworm has no apk package, and Alpine's
// static apk cannot be fetched), so these tests write the installed
// database in the format apk-tools 2 writes (apk_db_write_fdb): each
// package's fields, then per directory an F: and M:, per file an R:, a:
// and Z:, with the checksums of files laid out in a real root.

// apkTestFile is one file of a package; its digest is taken from the bytes
// written to disk, in the checksum form apk uses for it.
type apkTestFile struct {
	dir, name, content, form string // form: "Q1" (apk 2), "Q2" (sha256), "md5" (hex, old apk)
	symlinkTo                string
}

type apkTestPackage struct {
	name, version string
	files         []apkTestFile
}

var apkTestPackages = []apkTestPackage{
	{"alpine-baselayout-data", "3.4.3-r2", []apkTestFile{
		{dir: "etc", name: "motd", content: "Welcome to Alpine!\n", form: "Q1"},
		{dir: "etc/apk", name: "arch", content: "x86_64\n", form: "Q1"},
		{dir: "etc/init.d", name: "local", content: "#!/sbin/openrc-run\n", form: "Q1"},
	}},
	{"zlib", "1.3.1-r1", []apkTestFile{
		{dir: "lib", name: "libz.so.1.3.1", content: "\x7fELF not really a library\x00\x01", form: "Q1"},
		{dir: "lib", name: "libz.so.1", symlinkTo: "libz.so.1.3.1", form: "Q1"},
	}},
	{"newer-tool", "2.0-r0", []apkTestFile{
		{dir: "usr/bin", name: "newer-tool", content: "#!/bin/sh\necho new\n", form: "Q2"},
		{dir: "usr/share/newer-tool", name: "old.txt", content: "from an old apk\n", form: "md5"},
	}},
}

// writeAPKRoot lays the packages' files out under root and writes the
// installed database for them.
func writeAPKRoot(t *testing.T, root string, pkgs []apkTestPackage) []byte {
	t.Helper()
	var db strings.Builder
	for _, p := range pkgs {
		fmt.Fprintf(&db, "C:Q1%s\nP:%s\nV:%s\nA:x86_64\nS:1234\nI:5678\nT:test package %s\n"+
			"U:https://example.org/\nL:MIT\no:%s\nm:Maintainer <m@example.org>\nt:1700000000\n"+
			"c:0123456789abcdef0123456789abcdef01234567\nD:so:libc.musl-x86_64.so.1\np:cmd:%s=%s\n",
			base64.StdEncoding.EncodeToString(make([]byte, 20)), p.name, p.version, p.name, p.name, p.name, p.version)
		dir := "\x00"
		for _, f := range p.files {
			if f.dir != dir {
				fmt.Fprintf(&db, "F:%s\nM:0:0:755\n", f.dir)
				dir = f.dir
			}
			full := filepath.Join(root, f.dir, f.name)
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			// apk sums a symlink's target name, a file's contents.
			var sumOf []byte
			if f.symlinkTo != "" {
				if err := os.Symlink(f.symlinkTo, full); err != nil {
					t.Fatal(err)
				}
				sumOf = []byte(f.symlinkTo)
			} else {
				if err := os.WriteFile(full, []byte(f.content), 0o644); err != nil {
					t.Fatal(err)
				}
				var err error
				if sumOf, err = os.ReadFile(full); err != nil {
					t.Fatal(err)
				}
			}
			fmt.Fprintf(&db, "R:%s\na:0:0:644\nZ:%s\n", f.name, apkChecksum(f.form, sumOf))
		}
		db.WriteString("\n")
	}
	dbPath := filepath.Join(root, "lib/apk/db/installed")
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dbPath, []byte(db.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return []byte(db.String())
}

func apkChecksum(form string, b []byte) string {
	switch form {
	case "Q1":
		s := sha1.Sum(b)
		return "Q1" + base64.StdEncoding.EncodeToString(s[:])
	case "Q2":
		s := sha256.Sum256(b)
		return "Q2" + base64.StdEncoding.EncodeToString(s[:])
	default:
		s := md5.Sum(b)
		return hex.EncodeToString(s[:])
	}
}

func TestReadAPK(t *testing.T) {
	root := t.TempDir()
	db := writeAPKRoot(t, root, apkTestPackages)
	got, err := readAPK(context.Background(), newHostRootFS(t, root), newPathBudget())
	if err != nil {
		t.Fatal(err)
	}
	var want []Record
	for _, p := range apkTestPackages {
		for _, f := range p.files {
			path := "/" + f.dir + "/" + f.name
			want = append(want, Record{Path: path, Owner: Owner{Manager: "apk", Package: p.name, Version: p.version,
				Conffile: path == "/etc/motd"}})
		}
	}
	if len(got) != len(want) {
		t.Fatalf("%d records, want %d: %v", len(got), len(want), got)
	}
	for i, r := range got {
		w := want[i]
		if r.Path != w.Path || r.Owner.Package != w.Owner.Package || r.Owner.Version != w.Owner.Version ||
			r.Owner.Manager != "apk" || r.Owner.Conffile != w.Owner.Conffile {
			t.Errorf("record %d: %+v, want %+v", i, r, w)
		}
		// The digest is that of the bytes on disk (for a symlink, of its
		// target's name), in the algorithm the checksum's form names.
		var b []byte
		if target, err := os.Readlink(filepath.Join(root, r.Path)); err == nil {
			b = []byte(target)
		} else if b, err = os.ReadFile(filepath.Join(root, r.Path)); err != nil {
			t.Fatal(err)
		}
		sum := digestOf(t, r.Owner.Digest.Algo, b)
		if !bytes.Equal(sum, r.Owner.Digest.Sum) {
			t.Errorf("%s: digest %x is not the file's %x", r.Path, r.Owner.Digest.Sum, sum)
		}
	}
	if after, _ := os.ReadFile(filepath.Join(root, "lib/apk/db/installed")); !bytes.Equal(after, db) {
		t.Error("the installed database changed while it was read")
	}

	if recs, err := readAPK(context.Background(), newHostRootFS(t, t.TempDir()), newPathBudget()); recs != nil || err != nil {
		t.Fatalf("no database: got %v, %v; want nil, nil", recs, err)
	}
}

// TestAPKInstalledDamaged: unusable lines are skipped and counted, never
// turned into a path outside the root.
func TestAPKInstalledDamaged(t *testing.T) {
	sum := "Q1" + base64.StdEncoding.EncodeToString(make([]byte, 20))
	cases := []struct {
		name, db  string
		wantPaths []string
		wantErr   string
	}{
		{"dot-dot directory", "P:a\nV:1\nF:usr/../../etc\nR:shadow\nZ:" + sum + "\nF:usr/bin\nR:ok\n", []string{"/usr/bin/ok"}, `directory "usr/../../etc"`},
		{"slash in a file name", "P:a\nV:1\nF:usr\nR:../etc/shadow\nR:sub/x\nR:ok\n", []string{"/usr/ok"}, "2 lines unusable"},
		{"absolute directory", "P:a\nV:1\nF:/etc\nR:passwd\n", nil, `directory "/etc"`},
		{"bad checksum keeps the file, without digest", "P:a\nV:1\nF:etc\nR:x\nZ:Q1notbase64!\n", []string{"/etc/x"}, "bad sha1 checksum"},
		{"unknown checksum kind", "P:a\nV:1\nF:etc\nR:x\nZ:Q9AAAA\n", []string{"/etc/x"}, `checksum kind "Q9"`},
		{"not a field line", "P:a\nV:1\ngarbage\nF:etc\nR:x\n", []string{"/etc/x"}, "offset 8: not a field line"},
		{"files of a paragraph without a name are dropped", "V:1\nF:etc\nR:x\n\nP:b\nV:2\nF:etc\nR:y\n", []string{"/etc/y"}, ""},
		{"no final newline", "P:a\nV:1\nF:etc\nR:x", []string{"/etc/x"}, ""},
		{"root files before any F:", "P:a\nV:1\nR:.dockerenv\n", []string{"/.dockerenv"}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			recs, err := parseAPKInstalled(context.Background(), apkInstalledPath, []byte(tc.db), newPathBudget())
			var paths []string
			for _, r := range recs {
				paths = append(paths, r.Path)
			}
			if !slices.Equal(paths, tc.wantPaths) {
				t.Errorf("paths %q, want %q", paths, tc.wantPaths)
			}
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("error %v, want one saying %q", err, tc.wantErr)
			}
			if err != nil && !strings.Contains(err.Error(), apkInstalledPath) {
				t.Errorf("error %v does not name the file", err)
			}
		})
	}
}

// The seed in testdata/fuzz/FuzzAPKInstalled is the database that
// writeAPKRoot writes for apkTestPackages.
func FuzzAPKInstalled(f *testing.F) {
	f.Fuzz(func(t *testing.T, db []byte) {
		recs, _ := parseAPKInstalled(context.Background(), apkInstalledPath, db, newPathBudget())
		for _, r := range recs {
			if !strings.HasPrefix(r.Path, "/") || strings.Contains(r.Path, "/../") || strings.HasSuffix(r.Path, "/..") {
				t.Fatalf("path %q leaves the root", r.Path)
			}
			if r.Owner.Package == "" {
				t.Fatalf("record without a package: %+v", r)
			}
		}
		if len(recs) > len(db) {
			t.Fatalf("%d records from %d bytes", len(recs), len(db))
		}
	})
}
