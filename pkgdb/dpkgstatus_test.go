package pkgdb

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestParseDpkgStatus(t *testing.T) {
	in := "Package: a\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0-1\nDescription: x\n long text\n .\n\n" +
		"Package: b\nStatus: deinstall ok config-files\nVersion: 2.0\n\n\n\n" +
		"Package: c\nStatus: install ok half-configured\nVersion: 3\n\n" +
		"Package: d\nStatus: install ok installed\n\n" +
		"Package: e\nstatus: install ok installed\nArchitecture: all\nVersion: 5"
	want := []DpkgPackage{{Name: "a", Arch: "amd64", Version: "1.0-1", Line: 1, State: "installed"}, {Name: "e", Arch: "all", Version: "5", Line: 22, State: "installed"}}
	got := ParseDpkgStatus([]byte(in))
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
	if got[0].Key() != "a:amd64" || got[1].Key() != "e" {
		t.Errorf("keys %q %q", got[0].Key(), got[1].Key())
	}
}

func TestParseDpkgStatusConffiles(t *testing.T) {
	sum := "0123456789abcdef0123456789abcdef"
	md5 := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	in := "Package: openssh-server\nStatus: install ok installed\nVersion: 1:9.2p1-2\nConffiles:\n" +
		" /etc/ssh/moduli " + sum + "\n" +
		" /etc/old.conf " + sum + " obsolete\n" +
		" /etc/new.conf newconffile\n" +
		" /etc/with space.conf " + sum + " remove-on-upgrade\n" +
		" not-a-path " + sum + "\n" +
		"Description: a\n /etc/ssh/not-a-conffile " + sum + "\n\n" +
		"Package: gone\nStatus: deinstall ok config-files\nVersion: 1\nConffiles:\n /etc/gone.conf " + sum + "\n"
	got := parseDpkgStatus([]byte(in), func(string) bool { return true })
	want := []DpkgPackage{
		{Name: "openssh-server", Version: "1:9.2p1-2", Line: 1, State: "installed", Conffiles: []DpkgConffile{
			{Path: "/etc/ssh/moduli", MD5: md5(sum)},
			{Path: "/etc/old.conf", MD5: md5(sum), Obsolete: true},
			{Path: "/etc/new.conf"},
			{Path: "/etc/with space.conf", MD5: md5(sum)},
		}},
		{Name: "gone", Version: "1", Line: 13, State: "config-files", Conffiles: []DpkgConffile{{Path: "/etc/gone.conf", MD5: md5(sum)}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	if inst := ParseDpkgStatus([]byte(in)); len(inst) != 1 || inst[0].Name != "openssh-server" {
		t.Errorf("installed only: %+v", inst)
	}
}

// dpkgStatusSample is a status file of n packages, the size of a desktop's.
func dpkgStatusSample(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "Package: pkg%d\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: %d\n"+
			"Maintainer: Someone <someone@example.org>\nArchitecture: amd64\nVersion: %d.%d-%d~deb12u%d\nDepends: libc6 (>= 2.34)\n"+
			"Conffiles:\n /etc/pkg%d.conf 0123456789abcdef0123456789abcdef\n"+
			"Description: package number %d\n A longer description of the package,\n spanning two lines.\n\n", i, i*7, i%9, i%13, i%5, i%3, i, i)
	}
	return []byte(b.String())
}

// BenchmarkParseDpkgStatus against a baseline that only splits the same
// bytes into lines (the least any parser must do).
func BenchmarkParseDpkgStatus(b *testing.B) {
	data := dpkgStatusSample(5000)
	b.Run("baseline-split-lines", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			n := 0
			for line := range bytes.Lines(data) {
				n += len(line)
			}
			_ = n
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if len(ParseDpkgStatus(data)) != 5000 {
				b.Fatal("wrong count")
			}
		}
	})
}

func FuzzDpkgStatus(f *testing.F) {
	f.Add([]byte("Package: a\nStatus: install ok installed\nVersion: 1.0\nConffiles:\n /etc/a 0123456789abcdef0123456789abcdef\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		pkgs := parseDpkgStatus(b, func(string) bool { return true })
		if len(pkgs) > maxPackages {
			t.Fatalf("%d packages", len(pkgs))
		}
		for _, p := range pkgs {
			if p.Name == "" || p.Version == "" || len(p.Conffiles) > maxConffiles {
				t.Fatalf("incomplete package %+v", p)
			}
			for _, c := range p.Conffiles {
				if !strings.HasPrefix(c.Path, "/") || c.MD5 != nil && len(c.MD5) != 16 {
					t.Fatalf("bad conffile %+v", c)
				}
			}
		}
		ParseDpkgStatus(b)
		parseMD5Sums(b, func(string, []byte, int) bool { return true })
	})
}
