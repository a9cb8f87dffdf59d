package pkgdb

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// rpmTestHeader is a header blob as rpm stores it in its database (index
// length, data length, index entries, data), with a name, version and
// release and a file list: dirs, and per file a base name and the index
// of its directory. No region tag: the reader, like rpm, takes the entries
// as a dribble.
func rpmTestHeader(name string, dirs, bases []string, dirIndexes []uint32) []byte {
	var data []byte
	var index [][4]uint32
	add := func(tag, typ, count uint32, payload []byte) {
		if typ == rpmTypeInt32 {
			for len(data)%4 != 0 {
				data = append(data, 0)
			}
		}
		index = append(index, [4]uint32{tag, typ, uint32(len(data)), count})
		data = append(data, payload...)
	}
	strs := func(s []string) []byte { return []byte(strings.Join(s, "\x00") + "\x00") }
	add(rpmTagName, rpmTypeString, 1, strs([]string{name}))
	add(rpmTagVersion, rpmTypeString, 1, strs([]string{"1"}))
	add(rpmTagRelease, rpmTypeString, 1, strs([]string{"1"}))
	var idx []byte
	for _, i := range dirIndexes {
		idx = binary.BigEndian.AppendUint32(idx, i)
	}
	add(rpmTagDirIndexes, rpmTypeInt32, uint32(len(dirIndexes)), idx)
	add(rpmTagBaseNames, rpmTypeStringArray, uint32(len(bases)), strs(bases))
	add(rpmTagDirNames, rpmTypeStringArray, uint32(len(dirs)), strs(dirs))
	blob := binary.BigEndian.AppendUint32(nil, uint32(len(index)))
	blob = binary.BigEndian.AppendUint32(blob, uint32(len(data)))
	for _, e := range index {
		for _, v := range e {
			blob = binary.BigEndian.AppendUint32(blob, v)
		}
	}
	return append(blob, data...)
}

// longDir is a directory name of n bytes, "/ddd…d/", as rpm stores one.
func longDir(n int) string { return "/" + strings.Repeat("d", n-2) + "/" }

// pathBytes is the bytes of the paths Read kept, and the longest.
func pathBytes(db *DB) (total, longest int) {
	for p := range db.byPath {
		total += len(p)
		longest = max(longest, len(p))
	}
	return total, longest
}

// allocated is the bytes that f allocates on the heap.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestRPMLongPaths: a header in a database that rpm wrote, whose directory
// name is too long for any file: its files are skipped, with a note that
// counts them and names the file and the header's offset, and neither the
// records of rpm's own packages nor the header's other files change.
// Before, every one of them got its own copy of the directory: the 1 MiB
// directory and 1,000 files of the auditor's database made 1 GiB of paths
// (2.8 GB resident) from a database of 1 MiB.
func TestRPMLongPaths(t *testing.T) {
	installed := rpmInstalledRoot(t)
	own := rpmDumpRecords(t, installed)
	ok := Record{Path: "/usr/share/evil/ok", Owner: Owner{Manager: "rpm", Package: "imgaudit-evil", Version: "1-1"}}
	many := func(n int) (bases []string, idx []uint32) {
		for i := range n {
			bases = append(bases, fmt.Sprintf("%x", i))
			idx = append(idx, 0)
		}
		return append(bases, "ok"), append(idx, 1)
	}
	cases := []struct {
		name        string
		dirs, bases []string
		dirIndexes  []uint32
		extra       []Record // the header's records
		skipped     int
	}{
		{"1 MiB directory, 1,000 files", []string{longDir(1 << 20), "/usr/share/evil/"}, nil, nil, []Record{ok}, 1000},
		{"at PATH_MAX and one past it", []string{longDir(4095), "/usr/share/evil/"}, []string{"x", "yz", "ok"}, []uint32{0, 0, 1},
			[]Record{{Path: longDir(4095) + "x", Owner: ok.Owner}, ok}, 1},
		{"no long path", []string{"/usr/share/evil/"}, []string{"ok"}, []uint32{0}, []Record{ok}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bases == nil {
				tc.bases, tc.dirIndexes = many(tc.skipped)
			}
			root := t.TempDir()
			dbDir := filepath.Join(root, "var/lib/rpm")
			if err := os.MkdirAll(dbDir, 0o755); err != nil {
				t.Fatal(err)
			}
			db := filepath.Join(dbDir, "rpmdb.sqlite")
			b, err := os.ReadFile(filepath.Join(installed, "var/lib/rpm/rpmdb.sqlite"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(db, b, 0o644); err != nil {
				t.Fatal(err)
			}
			hdr := filepath.Join(t.TempDir(), "header")
			if err := os.WriteFile(hdr, rpmTestHeader("imgaudit-evil", tc.dirs, tc.bases, tc.dirIndexes), 0o644); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, "sqlite3", db, fmt.Sprintf("INSERT INTO Packages (blob) VALUES (readfile('%s'))", hdr))
			want := append(slices.Clone(own), tc.extra...)

			var got *DB
			alloc := allocated(func() { got = Read(context.Background(), newHostRootFS(t, root)) })
			var notes []string
			for _, err := range got.Errors {
				notes = append(notes, err.Error())
			}
			wantNote := fmt.Sprintf("pkgdb: rpm: %d file paths longer than 4096 bytes skipped, the first at /var/lib/rpm/rpmdb.sqlite: header at offset ", tc.skipped)
			switch {
			case tc.skipped == 0 && len(notes) > 0:
				t.Errorf("notes %q, want none", notes)
			case tc.skipped > 0 && (len(notes) != 1 || !strings.HasPrefix(notes[0], wantNote)):
				t.Errorf("notes %q, want one saying %q", notes, wantNote)
			}
			// Normal paths are unaffected: rpm's own packages, and the
			// header's file in another directory.
			wantBytes := 0
			for _, r := range want {
				wantBytes += len(r.Path)
				if o := got.Lookup(r.Path); len(o) != 1 || o[0].Package != r.Owner.Package || o[0].Version != r.Owner.Version {
					t.Errorf("%s: owners %+v, want %s %s", r.Path, o, r.Owner.Package, r.Owner.Version)
				}
			}
			if got.Len() != len(want) {
				t.Errorf("%d paths, want %d", got.Len(), len(want))
			}
			// What is kept is what rpm installs, not a copy of the
			// directory per file, and no more is allocated.
			total, longest := pathBytes(got)
			if total != wantBytes || longest > maxPathLen {
				t.Errorf("paths of %d bytes, the longest %d; want %d, at most %d", total, longest, wantBytes, maxPathLen)
			}
			if alloc > 32<<20 {
				t.Errorf("reading allocated %d MiB, want under 32 MiB", alloc>>20)
			}
		})
	}
}

// TestRPMPathBudget: past the budget of path bytes, the reader stops with
// an error that names the file and the header's offset, having kept no
// more than the budget.
func TestRPMPathBudget(t *testing.T) {
	installed := rpmInstalledRoot(t)
	for _, budget := range []int64{0, 100, 1 << 20} {
		t.Run(fmt.Sprint(budget), func(t *testing.T) {
			recs, err := readRPM(context.Background(), newHostRootFS(t, installed), newPathBudgetOf(budget))
			total := 0
			for _, r := range recs {
				total += len(r.Path)
			}
			if int64(total) > budget {
				t.Errorf("%d bytes of paths kept, over the budget of %d", total, budget)
			}
			if budget == 1<<20 {
				if err != nil || len(recs) != 3*len(rpmTestPackages) {
					t.Errorf("%d records, %v; want all %d, no error", len(recs), err, 3*len(rpmTestPackages))
				}
				return
			}
			if !errors.Is(err, errPathBudget) || !strings.Contains(err.Error(), "rpm: /var/lib/rpm/rpmdb.sqlite: header at offset ") {
				t.Errorf("error %v, want the budget's, naming the file and the header", err)
			}
		})
	}
}

// TestAPKLongPaths: an F: directory too long for any file: the files in
// it are skipped, with a note that counts them and names the file and the
// first one's offset; the other packages' files are unaffected. Before,
// 1 MiB of directory and 2,000 R: lines (a database of 1 MB) made 2 GiB
// of paths, 5.8 GB resident.
func TestAPKLongPaths(t *testing.T) {
	files := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "R:%x\n", i)
		}
		return b.String()
	}
	normal := "P:zlib\nV:1.3.1-r1\nF:lib\nR:libz.so.1\nZ:Q1" + strings.Repeat("A", 27) + "=\n\n"
	cases := []struct {
		name, db  string
		wantPaths []string // besides /lib/libz.so.1
		skipped   int
		firstAt   int // offset of the first skipped R: line
	}{
		{"1 MiB directory, 2,000 files", normal + "P:evil\nV:1\nF:" + strings.Repeat("d", 1<<20) + "\n" + files(2000),
			nil, 2000, len(normal) + len("P:evil\nV:1\nF:") + 1<<20 + 1},
		{"at PATH_MAX and one past it", normal + "P:edge\nV:1\nF:" + strings.Repeat("d", 4093) + "\nR:x\nR:yz\nF:usr\nR:ok\n",
			[]string{"/" + strings.Repeat("d", 4093) + "/x", "/usr/ok"}, 1, len(normal) + len("P:edge\nV:1\nF:") + 4093 + 1 + len("R:x\n")},
		{"a long file name in the root", normal + "P:root\nV:1\nR:" + strings.Repeat("f", 4096) + "\nR:.dockerenv\n",
			[]string{"/.dockerenv"}, 1, len(normal) + len("P:root\nV:1\n")},
		{"no long path", normal, nil, 0, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if err := os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), []byte(tc.db), 0o644); err != nil {
				t.Fatal(err)
			}
			var got *DB
			alloc := allocated(func() { got = Read(context.Background(), newHostRootFS(t, root)) })
			var notes []string
			for _, err := range got.Errors {
				notes = append(notes, err.Error())
			}
			if tc.skipped == 0 && len(notes) > 0 {
				t.Errorf("notes %q, want none", notes)
			}
			if tc.skipped > 0 {
				wantNote := fmt.Sprintf("pkgdb: apk: %d file paths longer than 4096 bytes skipped, the first at /lib/apk/db/installed: offset %d ", tc.skipped, tc.firstAt)
				if len(notes) != 1 || !strings.HasPrefix(notes[0], wantNote) {
					t.Errorf("notes %q, want one saying %q", notes, wantNote)
				}
			}
			want := append([]string{"/lib/libz.so.1"}, tc.wantPaths...)
			wantBytes := 0
			for _, p := range want {
				wantBytes += len(p)
				if len(got.Lookup(p)) != 1 {
					t.Errorf("%s: owners %+v, want one", p, got.Lookup(p))
				}
			}
			if o := got.Lookup("/lib/libz.so.1"); len(o) != 1 || o[0].Package != "zlib" || o[0].Version != "1.3.1-r1" || o[0].Digest.Algo != "sha1" {
				t.Errorf("zlib's file: %+v", o)
			}
			total, longest := pathBytes(got)
			if got.Len() != len(want) || total != wantBytes || longest > maxPathLen {
				t.Errorf("%d paths of %d bytes, the longest %d; want %d of %d bytes", got.Len(), total, longest, len(want), wantBytes)
			}
			if alloc > 32<<20 {
				t.Errorf("reading allocated %d MiB, want under 32 MiB", alloc>>20)
			}
		})
	}
}

// TestAPKPathBudget: past the budget, the reader stops with an error that
// names the file and the line's offset, having kept no more than the
// budget.
func TestAPKPathBudget(t *testing.T) {
	db := "P:a\nV:1\nF:usr/share/a\nR:one\nR:two\nR:three\n"
	for _, tc := range []struct {
		budget int64
		kept   []string
		errAt  int // offset named in the error; -1: none
	}{
		{0, nil, len("P:a\nV:1\nF:usr/share/a\n")},
		{35, nil, len("P:a\nV:1\nF:usr/share/a\nR:one\nR:two\n")}, // stops before its package ends
		{1 << 10, []string{"/usr/share/a/one", "/usr/share/a/two", "/usr/share/a/three"}, -1},
	} {
		t.Run(fmt.Sprint(tc.budget), func(t *testing.T) {
			recs, err := parseAPKInstalled(context.Background(), apkInstalledPath, []byte(db), newPathBudgetOf(tc.budget))
			var paths []string
			for _, r := range recs {
				paths = append(paths, r.Path)
			}
			if !slices.Equal(paths, tc.kept) {
				t.Errorf("paths %q, want %q", paths, tc.kept)
			}
			switch want := fmt.Sprintf("apk: /lib/apk/db/installed: offset %d: file paths over the budget", tc.errAt); {
			case tc.errAt < 0 && err != nil:
				t.Errorf("error %v", err)
			case tc.errAt >= 0 && (!errors.Is(err, errPathBudget) || !strings.HasPrefix(err.Error(), want)):
				t.Errorf("error %v, want one saying %q", err, want)
			}
		})
	}
}

// TestOtherReadersLongPaths: the other readers that join a directory to
// each name skip a path longer than PATH_MAX, and count it, and stop at
// the budget: yarn 2+ (the lock file's cache key is in every zip's name,
// in every cache directory), Python (the site directory and each RECORD
// row) and dpkg (a diversion's target serves every line of the diverted
// path).
func TestOtherReadersLongPaths(t *testing.T) {
	sum := strings.Repeat("ab", 64)
	// lock is a yarn 2+ lock file of n packages and "ok", with the
	// offsets of the packages' entries.
	lock := func(cacheKey string, n int) ([]byte, []int) {
		var b strings.Builder
		var offs []int
		fmt.Fprintf(&b, "__metadata:\n  version: 8\n  cacheKey: %s\n\n", cacheKey)
		for i := range n {
			offs = append(offs, b.Len())
			fmt.Fprintf(&b, "\"p%d@npm:1.0.0\":\n  resolution: \"p%d@npm:1.0.0\"\n  checksum: %s\n\n", i, i, sum)
		}
		b.WriteString("\"ok@npm:1.0.0\":\n  resolution: \"ok@npm:1.0.0\"\n  checksum: 10c0/" + sum + "\n")
		return []byte(b.String()), offs
	}
	longLock, longOffs := lock(strings.Repeat("k", 8<<10), 3)
	shortLock, shortOffs := lock("10c0", 3)
	okZip := "/c/" + yarnZipName("", "ok", "1.0.0", "10c0")
	status := "Package: a\nStatus: install ok installed\nVersion: 1\nArchitecture: amd64\n\n"
	md5 := strings.Repeat("0", 32)
	dpkgRoot := func(target string, n int) memRoot {
		sums := ""
		for range n {
			sums += md5 + "  usr/bin/a\n"
		}
		return memRoot{
			"var/lib/dpkg/status":         {Data: []byte(status)},
			"var/lib/dpkg/info/a.md5sums": {Data: []byte(sums + md5 + "  usr/bin/b\n")},
			"var/lib/dpkg/diversions":     {Data: []byte("/usr/bin/a\n" + target + "\nother\n")},
		}
	}
	const site = "/usr/lib/python3/dist-packages"
	cases := []struct {
		name      string
		budget    int64
		read      func(*pathBudget) ([]Record, error)
		wantPaths []string
		skipped   int
		note      string // where the first skipped one is, or the budget error's place
	}{
		{"yarn: a cache key of 8 KiB", maxPathBytes, func(p *pathBudget) ([]Record, error) {
			return yarnBerryRecords("/srv/app/yarn.lock", longLock, []string{"/c"}, 100, p)
		}, []string{okZip}, 3, fmt.Sprintf("/srv/app/yarn.lock: offset %d ", longOffs[0])},
		{"yarn: the budget", 100, func(p *pathBudget) ([]Record, error) { // 35 bytes a path
			return yarnBerryRecords("/srv/app/yarn.lock", shortLock, []string{"/c", "/d"}, 100, p)
		}, []string{"/c/" + yarnZipName("", "p0", "1.0.0", "10c0"), "/d/" + yarnZipName("", "p0", "1.0.0", "10c0")},
			0, fmt.Sprintf("offset %d: file paths over the budget", shortOffs[1])},
		{"python: a RECORD row of 5,000 bytes", maxPathBytes, func(p *pathBudget) ([]Record, error) {
			recs, errs := parsePythonRecord("RECORD", site, []byte("ok.py,,\n"+strings.Repeat("x", 5000)+",,\nok2.py,,\n"), p)
			return recs, errors.Join(errs...)
		}, []string{site + "/ok.py", site + "/ok2.py"}, 1, "RECORD: offset 8 "},
		{"python: the budget", 80, func(p *pathBudget) ([]Record, error) {
			recs, errs := parsePythonRecord("RECORD", site, []byte("ok.py,,\nok2.py,,\nok3.py,,\n"), p)
			return recs, errors.Join(errs...)
		}, []string{site + "/ok.py", site + "/ok2.py"}, 0, "RECORD: offset 17: file paths over the budget"},
		{"dpkg: a diversion's target of 5,000 bytes", maxPathBytes, func(p *pathBudget) ([]Record, error) {
			return readDpkg(context.Background(), dpkgRoot("/"+strings.Repeat("t", 4999), 100), p)
		}, []string{"/usr/bin/b"}, 100, "/var/lib/dpkg/info/a.md5sums: offset 0 "},
		{"dpkg: the budget", 20, func(p *pathBudget) ([]Record, error) {
			return readDpkg(context.Background(), dpkgRoot("/usr/bin/a.real", 2), p)
		}, []string{"/usr/bin/a.real"}, 0, "/var/lib/dpkg/info/a.md5sums: offset 44: file paths over the budget"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			paths := newPathBudgetOf(tc.budget)
			recs, err := tc.read(paths)
			var got []string
			total := 0
			for _, r := range recs {
				got = append(got, r.Path)
				total += len(r.Path)
			}
			if !slices.Equal(got, tc.wantPaths) {
				t.Errorf("paths %q, want %q", got, tc.wantPaths)
			}
			if int64(total) > tc.budget {
				t.Errorf("%d bytes of paths, over the budget of %d", total, tc.budget)
			}
			note := paths.skipped()
			if tc.skipped > 0 {
				want := fmt.Sprintf("%d file paths longer than 4096 bytes skipped, the first at %s", tc.skipped, tc.note)
				if err != nil || note == nil || !strings.HasPrefix(note.Error(), want) {
					t.Errorf("error %v, note %v; want no error and a note saying %q", err, note, want)
				}
				return
			}
			if note != nil || !errors.Is(err, errPathBudget) || !strings.Contains(err.Error(), tc.note) {
				t.Errorf("error %v, note %v; want the budget's error saying %q", err, note, tc.note)
			}
		})
	}
}

// TestReadStopsAtPathBudget: once a reader spends the budget of one
// filesystem, Read names each reader after it as not read.
func TestReadStopsAtPathBudget(t *testing.T) {
	var db bytes.Buffer
	db.WriteString("P:a\nV:1\nF:" + strings.Repeat("d", 4000) + "\n")
	for i := range maxPathBytes/4000 + 1 {
		fmt.Fprintf(&db, "R:%x\n", i)
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/apk/db"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib/apk/db/installed"), db.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got := Read(context.Background(), newHostRootFS(t, root))
	var notes []string
	for _, err := range got.Errors {
		notes = append(notes, err.Error())
	}
	want := []string{"pkgdb: apk: apk: /lib/apk/db/installed: offset "}
	for _, r := range readers(nil)[3:] {
		want = append(want, "pkgdb: "+r.name+": not read: file paths over the budget")
	}
	if len(notes) != len(want) {
		t.Fatalf("notes %q, want %d", notes, len(want))
	}
	for i, n := range notes {
		if !strings.HasPrefix(n, want[i]) {
			t.Errorf("note %q, want one saying %q", n, want[i])
		}
	}
	if total, _ := pathBytes(got); total > maxPathBytes {
		t.Errorf("%d bytes of paths kept, over the budget of %d", total, maxPathBytes)
	}
}
