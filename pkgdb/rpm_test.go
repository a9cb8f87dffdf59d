package pkgdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/adler32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// rpmTestPackage is one package built with rpmbuild at test time.
type rpmTestPackage struct {
	name, epoch, version, release string
	digestAlgo                    int // _binary_filedigest_algorithm: 1 md5, 8 sha256, 10 sha512
}

var rpmTestPackages = []rpmTestPackage{
	{"imgaudit-alpha", "4", "1.2", "3.fc40", 8},
	{"imgaudit-beta", "", "0.9", "1", 1},
	{"imgaudit-gamma", "", "2.0", "7", 10},
}

// buildRPM writes a spec with a %config(noreplace) file, a plain file, a
// script, a symlink and a directory, and builds it with rpmbuild.
func buildRPM(t *testing.T, top string, p rpmTestPackage) string {
	t.Helper()
	epoch := ""
	if p.epoch != "" {
		epoch = "Epoch: " + p.epoch
	}
	spec := fmt.Sprintf(`Name: %[1]s
%[2]s
Version: %[3]s
Release: %[4]s
Summary: imgaudit test package
License: MIT
BuildArch: noarch
%%description
A package built by the pkgdb tests.
%%install
mkdir -p %%{buildroot}/etc/%[1]s %%{buildroot}/usr/share/%[1]s %%{buildroot}/usr/bin
printf 'password = not-a-secret-%[1]s\n' > %%{buildroot}/etc/%[1]s/%[1]s.conf
printf 'data of %[1]s %[3]s\n' > %%{buildroot}/usr/share/%[1]s/data.txt
printf '#!/bin/sh\necho %[1]s\n' > %%{buildroot}/usr/bin/%[1]s
ln -s data.txt %%{buildroot}/usr/share/%[1]s/link
%%files
%%config(noreplace) /etc/%[1]s/%[1]s.conf
%%dir /usr/share/%[1]s
/usr/share/%[1]s/data.txt
/usr/share/%[1]s/link
%%attr(0755,root,root) /usr/bin/%[1]s
`, p.name, epoch, p.version, p.release)
	specPath := filepath.Join(top, p.name+".spec")
	if err := os.WriteFile(specPath, []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "rpmbuild", "-bb",
		"--define", "_topdir "+top,
		"--define", "_dbpath "+filepath.Join(top, "builddb"),
		"--define", "_binary_filedigest_algorithm "+strconv.Itoa(p.digestAlgo),
		specPath)
	matches, err := filepath.Glob(filepath.Join(top, "RPMS", "noarch", p.name+"-*.rpm"))
	if err != nil || len(matches) != 1 {
		t.Fatalf("built rpm for %s: %v %v", p.name, matches, err)
	}
	return matches[0]
}

// rpmInstalledRoot builds the test packages and installs them with rpm into
// a fresh root, whose database rpm 4.18 writes as rpmdb.sqlite.
func rpmInstalledRoot(t *testing.T) string {
	t.Helper()
	testutil.RequireTool(t, "rpm", "rpmbuild")
	top := t.TempDir()
	root := t.TempDir()
	args := []string{"--root", root, "--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite",
		"-i", "--nodeps", "--noscripts"}
	for _, p := range rpmTestPackages {
		args = append(args, buildRPM(t, top, p))
	}
	testutil.Run(t, "rpm", "--root", root, "--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite", "--initdb")
	testutil.Run(t, "rpm", args...)
	return root
}

// rpmDumpRecords is what rpm itself says about the installed files: each
// package's name, %{EVR} and %{FILEDIGESTALGO}, and per file the path,
// digest, mode and config flag of `rpm -q --dump`. Directories and
// symlinks are left out, as the reader leaves them out.
func rpmDumpRecords(t *testing.T, root string) []Record {
	t.Helper()
	base := []string{"--root", root, "--dbpath", "/var/lib/rpm"}
	algoNames := map[string]string{"(none)": "md5", "1": "md5", "8": "sha256", "10": "sha512"}
	var recs []Record
	pkgs := testutil.Run(t, "rpm", append(base, "-qa", "--qf", `%{NAME} %{EVR} %{FILEDIGESTALGO}\n`)...)
	for _, line := range strings.Split(strings.TrimSpace(string(pkgs)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("rpm -qa line %q", line)
		}
		dump := testutil.Run(t, "rpm", append(base, "-q", "--dump", f[0])...)
		for _, d := range strings.Split(strings.TrimSpace(string(dump)), "\n") {
			// path size mtime digest mode owner group isconfig isdoc rdev symlink
			g := strings.Fields(d)
			if len(g) < 11 {
				t.Fatalf("rpm --dump line %q", d)
			}
			mode, err := strconv.ParseUint(g[4], 8, 32)
			if err != nil {
				t.Fatal(err)
			}
			if t := mode & modeTypeMask; t == modeDir || t == modeSymlink {
				continue
			}
			o := Owner{Manager: "rpm", Package: f[0], Version: f[1], Conffile: g[7] == "1"}
			if strings.Trim(g[3], "0") != "" {
				sum, err := hex.DecodeString(g[3])
				if err != nil {
					t.Fatal(err)
				}
				o.Digest = Digest{Algo: algoNames[f[2]], Sum: sum}
			}
			recs = append(recs, Record{Path: g[0], Owner: o})
		}
	}
	return recs
}

// rpmHeaderBlobs exports the header blobs of an rpmdb.sqlite with the real
// sqlite3 tool, with their header numbers.
func rpmHeaderBlobs(t *testing.T, db string) (nums []uint32, blobs [][]byte) {
	t.Helper()
	testutil.RequireTool(t, "sqlite3")
	out := testutil.Run(t, "sqlite3", db, "SELECT hnum, hex(blob) FROM Packages ORDER BY hnum")
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		num, hx, ok := strings.Cut(line, "|")
		n, err := strconv.ParseUint(num, 10, 32)
		if !ok || err != nil {
			t.Fatalf("sqlite3 line %q", line)
		}
		b, err := hex.DecodeString(hx)
		if err != nil {
			t.Fatal(err)
		}
		nums = append(nums, uint32(n))
		blobs = append(blobs, b)
	}
	return nums, blobs
}

// writeBDBPackages writes the headers as rpm's BerkeleyDB Packages with the
// real db_load (key: the header number in host order, as rpm wrote it;
// key 0: rpm's next header number), and checks that rpm's own bdb_ro
// backend reads it.
func writeBDBPackages(t *testing.T, dir string, nums []uint32, blobs [][]byte) {
	t.Helper()
	testutil.RequireTool(t, "db5.3_load")
	var in strings.Builder
	in.WriteString("VERSION=3\nformat=bytevalue\ntype=hash\ndb_pagesize=4096\nHEADER=END\n")
	key := func(n uint32) string { return hex.EncodeToString(binary.LittleEndian.AppendUint32(nil, n)) }
	fmt.Fprintf(&in, " %s\n %s\n", key(0), key(nums[len(nums)-1]+1))
	for i, n := range nums {
		fmt.Fprintf(&in, " %s\n %s\n", key(n), hex.EncodeToString(blobs[i]))
	}
	in.WriteString("DATA=END\n")
	dump := filepath.Join(t.TempDir(), "dump.txt")
	if err := os.WriteFile(dump, []byte(in.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, "db5.3_load", "-f", dump, filepath.Join(dir, "Packages"))
	out := testutil.Run(t, "rpm", "--dbpath", dir, "--define", "_db_backend bdb_ro", "-qa", "--qf", `%{NAME}\n`)
	if got := strings.Count(string(out), "imgaudit-"); got != len(rpmTestPackages) {
		t.Fatalf("rpm's bdb_ro reads %d of our packages from the db_load database:\n%s", got, out)
	}
}

// writeNDBPackages writes the headers as rpm's ndb Packages.db, laid out as
// rpm's rpmpkg.c writes it. Debian's rpm is built without ndb, so no real
// tool here writes or reads this container; the headers inside are real.
func writeNDBPackages(t *testing.T, dir string, nums []uint32, blobs [][]byte) {
	t.Helper()
	le := binary.LittleEndian
	db := make([]byte, ndbPageSize)
	le.PutUint32(db[0:], ndbMagic)
	le.PutUint32(db[8:], 1)                    // generation
	le.PutUint32(db[12:], 1)                   // slot pages
	le.PutUint32(db[16:], nums[len(nums)-1]+1) // next package index
	for so := ndbHeaderSize; so < ndbPageSize; so += ndbSlotSize {
		le.PutUint32(db[so:], ndbSlotMagic)
	}
	for i, n := range nums {
		blkOff := len(db) / ndbBlockSize
		blkCnt := (ndbBlobHead + len(blobs[i]) + ndbBlobTail + ndbBlockSize - 1) / ndbBlockSize
		slot := db[ndbHeaderSize+ndbSlotSize*i:]
		le.PutUint32(slot[4:], n)
		le.PutUint32(slot[8:], uint32(blkOff))
		le.PutUint32(slot[12:], uint32(blkCnt))
		blob := make([]byte, blkCnt*ndbBlockSize)
		le.PutUint32(blob[0:], ndbHeadMagic)
		le.PutUint32(blob[4:], n)
		le.PutUint32(blob[8:], 1700000000)
		le.PutUint32(blob[12:], uint32(len(blobs[i])))
		copy(blob[ndbBlobHead:], blobs[i])
		tail := blob[len(blob)-ndbBlobTail:]
		le.PutUint32(tail[0:], adler32.Checksum(blob[:len(blob)-ndbBlobTail]))
		le.PutUint32(tail[4:], uint32(len(blobs[i])))
		le.PutUint32(tail[8:], ndbTailMagic)
		db = append(db, blob...)
	}
	if err := os.WriteFile(filepath.Join(dir, "Packages.db"), db, 0o644); err != nil {
		t.Fatal(err)
	}
}

func sortRecords(recs []Record) {
	slices.SortFunc(recs, func(a, b Record) int {
		return strings.Compare(a.Owner.Package+"\x00"+a.Path, b.Owner.Package+"\x00"+b.Path)
	})
}

func TestReadRPM(t *testing.T) {
	installed := rpmInstalledRoot(t)
	want := rpmDumpRecords(t, installed)
	sortRecords(want)
	if len(want) != 3*len(rpmTestPackages) {
		t.Fatalf("rpm --dump lists %d files, want 3 per package", len(want))
	}
	sqliteDB := filepath.Join(installed, "var/lib/rpm/rpmdb.sqlite")
	nums, blobs := rpmHeaderBlobs(t, sqliteDB)

	cases := []struct {
		name  string
		dbDir string // in the guest
		write func(t *testing.T, dir string)
	}{
		{"sqlite as rpm wrote it", "/var/lib/rpm", func(t *testing.T, dir string) {
			b, err := os.ReadFile(sqliteDB)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "rpmdb.sqlite"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{"sqlite in /usr/lib/sysimage/rpm, rebuilt by rpmdb", "/usr/lib/sysimage/rpm", func(t *testing.T, dir string) {
			root := filepath.Dir(filepath.Dir(filepath.Dir(filepath.Dir(dir))))
			b, err := os.ReadFile(sqliteDB)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "rpmdb.sqlite"), b, 0o644); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "rpmdb", "--root", root, "--dbpath", "/usr/lib/sysimage/rpm", "--rebuilddb")
		}},
		{"BerkeleyDB hash by db_load", "/var/lib/rpm", func(t *testing.T, dir string) {
			writeBDBPackages(t, dir, nums, blobs)
		}},
		{"ndb", "/usr/lib/sysimage/rpm", func(t *testing.T, dir string) {
			writeNDBPackages(t, dir, nums, blobs)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, filepath.FromSlash(tc.dbDir))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			tc.write(t, dir)
			entries, _ := os.ReadDir(dir)
			before := map[string][]byte{}
			for _, e := range entries {
				before[e.Name()] = testutil.FileSnapshot(t, filepath.Join(dir, e.Name()))
			}
			got, err := readRPM(context.Background(), newHostRootFS(t, root), newPathBudget())
			if err != nil {
				t.Fatal(err)
			}
			sortRecords(got)
			if !slices.EqualFunc(got, want, recordEqual) {
				t.Errorf("records differ from rpm --dump:\ngot  %v\nwant %v", got, want)
			}
			for name, b := range before {
				if !bytes.Equal(b, testutil.FileSnapshot(t, filepath.Join(dir, name))) {
					t.Errorf("%s changed while it was read", name)
				}
			}
		})
	}

	// rpm's digests are those of the bytes it installed, in each of the
	// three algorithms.
	for _, r := range want {
		b, err := os.ReadFile(filepath.Join(installed, r.Path))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(digestOf(t, r.Owner.Digest.Algo, b), r.Owner.Digest.Sum) {
			t.Errorf("%s: recorded %s digest is not the installed file's", r.Path, r.Owner.Digest.Algo)
		}
	}
}

func recordEqual(a, b Record) bool {
	return a.Path == b.Path && a.Owner.Manager == b.Owner.Manager && a.Owner.Package == b.Owner.Package &&
		a.Owner.Version == b.Owner.Version && a.Owner.Conffile == b.Owner.Conffile &&
		a.Owner.Digest.Algo == b.Owner.Digest.Algo && bytes.Equal(a.Owner.Digest.Sum, b.Owner.Digest.Sum)
}

func TestReadRPMAbsent(t *testing.T) {
	recs, err := readRPM(context.Background(), newHostRootFS(t, t.TempDir()), newPathBudget())
	if recs != nil || err != nil {
		t.Fatalf("no database: got %v, %v; want nil, nil", recs, err)
	}
}

// TestRPMDBDamaged reads real databases with one field made hostile: each
// read ends with an error that names the place, never a hang or a panic.
func TestRPMDBDamaged(t *testing.T) {
	installed := rpmInstalledRoot(t)
	sqliteDB, err := os.ReadFile(filepath.Join(installed, "var/lib/rpm/rpmdb.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	nums, blobs := rpmHeaderBlobs(t, filepath.Join(installed, "var/lib/rpm/rpmdb.sqlite"))
	dir := t.TempDir()
	writeBDBPackages(t, dir, nums, blobs)
	writeNDBPackages(t, dir, nums, blobs)
	bdb, err := os.ReadFile(filepath.Join(dir, "Packages"))
	if err != nil {
		t.Fatal(err)
	}
	ndb, err := os.ReadFile(filepath.Join(dir, "Packages.db"))
	if err != nil {
		t.Fatal(err)
	}
	// An ndb database whose first header claims 65535 index entries.
	hdr := bytes.Clone(blobs[0])
	binary.BigEndian.PutUint32(hdr, 0xffff)
	d2 := t.TempDir()
	writeNDBPackages(t, d2, nums, append([][]byte{hdr}, blobs[1:]...))
	badHeader, err := os.ReadFile(filepath.Join(d2, "Packages.db"))
	if err != nil {
		t.Fatal(err)
	}
	const bdbPage = 4096
	firstPage := func(b []byte, typ byte) int {
		for p := 1; p*bdbPage < len(b); p++ {
			if b[p*bdbPage+25] == typ {
				return p * bdbPage
			}
		}
		t.Fatalf("no page of type %d", typ)
		return 0
	}
	edit := func(b []byte, f func(b []byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	cases := []struct {
		name, db, want string
		data           []byte
	}{
		{"bdb overflow page that leads to itself", "Packages", "reached twice", edit(bdb, func(b []byte) {
			p := firstPage(b, bdbPageOverflow)
			binary.LittleEndian.PutUint32(b[p+16:], uint32(p/bdbPage))
			binary.LittleEndian.PutUint16(b[p+22:], 1) // one byte per page: the chain never fills the value
		})},
		{"bdb item offset past the page", "Packages", "out of order", edit(bdb, func(b []byte) {
			p := firstPage(b, bdbPageHash)
			binary.LittleEndian.PutUint16(b[p+26:], 0xfff0)
		})},
		{"bdb last page past the file", "Packages", "last page", edit(bdb, func(b []byte) {
			binary.LittleEndian.PutUint32(b[32:], 1<<30)
		})},
		{"ndb blob checksum", "Packages.db", "checksum mismatch", edit(ndb, func(b []byte) {
			b[ndbPageSize+ndbBlobHead+100] ^= 1
		})},
		{"ndb slot past the file", "Packages.db", "bad slot", edit(ndb, func(b []byte) {
			binary.LittleEndian.PutUint32(b[ndbHeaderSize+12:], 1<<30)
		})},
		{"sqlite root page past the file", "rpmdb.sqlite", "outside the file", edit(sqliteDB, func(b []byte) {
			binary.BigEndian.PutUint32(b[100+8:], 1<<30) // page 1 is interior or leaf; as leaf this is a cell
			b[100] = 5
		})},
		{"sqlite truncated", "rpmdb.sqlite", "outside the file", sqliteDB[:len(sqliteDB)/3]},
		{"one header's index length past its blob", "Packages.db", "1 package headers unreadable", badHeader},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir := filepath.Join(root, "var/lib/rpm")
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, tc.db), tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := readRPM(context.Background(), newHostRootFS(t, root), newPathBudget())
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), tc.db) {
				t.Fatalf("error %v; want one naming %s and saying %q", err, tc.db, tc.want)
			}
		})
	}
}

// The seeds in testdata/fuzz/FuzzRPMDB hold one real header (rpmbuild of a
// small noarch package, installed by rpm 4.18) in each container: an
// rpmdb.sqlite rewritten by sqlite3 with 512-byte pages, a BerkeleyDB hash
// by db5.3_load with 512-byte pages (rpm's bdb_ro reads it), and ndb as
// writeNDBPackages lays it out. FuzzRPMHeader's seed is that header.

func FuzzRPMDB(f *testing.F) {
	f.Fuzz(func(t *testing.T, db []byte) {
		recs, _ := rpmRecordsFromDB(context.Background(), "fuzz", db, newPathBudget())
		if len(recs) > len(db) {
			t.Fatalf("%d records from %d bytes", len(recs), len(db))
		}
	})
}

func FuzzRPMHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, blob []byte) {
		p, err := parseRPMHeader(blob)
		if err != nil {
			return
		}
		recs, _ := p.appendRecords(nil, newPathBudget(), "fuzz")
		for _, r := range recs {
			if r.Path == "" || r.Path[0] != '/' || r.Owner.Package == "" {
				t.Fatalf("bad record %+v", r)
			}
			if r.Owner.Digest.Algo != "" && len(r.Owner.Digest.Sum) == 0 {
				t.Fatalf("digest algorithm without a sum: %+v", r)
			}
		}
	})
}
