package ntfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// fixture is the content of the test image: live files (resident and not),
// a resident file long enough to cross the record's first 512-byte stride
// (whose last two bytes the update sequence number replaces on disk),
// deleted files (resident and not), files overwritten in place (resident
// and not), and, made while mounted, an alternate data stream, a hard
// link, a sparse file and a compressed file.
func fixture() testutil.FSContent {
	return testutil.FSContent{
		Live: map[string][]byte{
			"/etc/app/credentials": testutil.Marker("/etc/app/credentials", 9000),
			"/etc/small.conf":      testutil.Marker("/etc/small.conf", 40),
			"/etc/straddle.conf":   testutil.Marker("/etc/straddle.conf", 420),
			"/d/e/f/deep.txt":      testutil.Marker("/d/e/f/deep.txt", 5000),
		},
		Deleted: map[string][]byte{
			"/tmp/token-deleted": testutil.Marker("/tmp/token-deleted", 20000),
			"/tmp/small-deleted": testutil.Marker("/tmp/small-deleted", 60),
		},
		Overwritten: map[string][2][]byte{
			"/srv/overwritten": {testutil.Marker("/srv/overwritten-old", 12000), testutil.Marker("/srv/overwritten-new", 12000)},
			"/srv/small-over":  {testutil.Marker("/srv/small-over-old", 50), testutil.Marker("/srv/small-over-new", 50)},
		},
	}
}

func populateExtra(t *testing.T, mnt string) {
	t.Helper()
	j := func(p string) string { return filepath.Join(mnt, p) }
	if err := os.WriteFile(j("etc/small.conf:hidden"), testutil.Marker("/etc/small.conf:hidden", 30), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(j("etc/app/credentials"), j("etc/app/cred-link")); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(j("sparse.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(testutil.Marker("/sparse.bin", 5000), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// ntfs-3g compresses new files in a directory that has the
	// FILE_ATTRIBUTE_COMPRESSED flag (0x800), set through its xattr.
	if err := os.Mkdir(j("cdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(j("cdir"), "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(j("cdir/comp.txt"), bytes.Repeat([]byte("compressible line of text\n"), 20000), 0o644); err != nil {
		t.Fatal(err)
	}
}

func makeImage(t *testing.T) (string, testutil.FSContent) {
	t.Helper()
	c := fixture()
	c.Extra = func(mnt string) { populateExtra(t, mnt) }
	return testutil.MakeNTFS(t, 64<<20, c), c
}

func openImage(t *testing.T, img string) (*FS, []byte) {
	t.Helper()
	data := testutil.FileSnapshot(t, img)
	f, err := Open(context.Background(), bytes.NewReader(data), int64(len(data)), "disk")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return f, data
}

// --- what ntfs-3g's tools say ---

var lsRe = regexp.MustCompile(`^\s*(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+\d\d:\d\d\s+\d{4}\s(.*)$`)

// toolPaths lists every path of the volume with its inode, from
// `ntfsls -a -s -R -i -l` (live records only; hard links appear under each
// name).
func toolPaths(t *testing.T, img string) map[string]int {
	out := string(testutil.Run(t, "ntfsls", "-a", "-s", "-R", "-i", "-l", img))
	paths := map[string]int{"/": recRoot}
	dir := ""
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "/") && strings.HasSuffix(line, ":") {
			dir = strings.TrimSuffix(line, ":")
			continue
		}
		m := lsRe.FindStringSubmatch(line)
		if m == nil || m[3] == "." || m[3] == ".." {
			continue
		}
		ino, _ := strconv.Atoi(m[1])
		paths[fsys.Join(dir, m[3])] = ino
	}
	return paths
}

// toolAttr is one attribute as `ntfsinfo -v -i N` dumps it.
type toolAttr struct {
	typ              string
	record           int64
	offset           int64 // in its record
	name             string
	resident         bool
	flags            int64
	size, init       int64
	dataOff          int64
	runs             []fsys.Run // VCN/LCN/length, in bytes; holes left out
	runlistMentioned bool
}

var (
	attrHeadRe = regexp.MustCompile(`^Dumping attribute (\$\w+) \(0x[0-9a-f]+\) from mft record (\d+)`)
	kvRe       = regexp.MustCompile(`^\t([A-Za-z. ]+):\s+(.*)$`)
	runRe      = regexp.MustCompile(`^\t\t\t0x([0-9a-f]+)\s+(0x[0-9a-f]+|<HOLE>)\s+0x([0-9a-f]+)`)
	numRe      = regexp.MustCompile(`^(-?\d+)`)
)

func toolInfo(t *testing.T, img string, ino int, cs int64) (flags string, attrs []toolAttr) {
	out := string(testutil.Run(t, "ntfsinfo", "-v", "-i", strconv.Itoa(ino), img))
	next := map[int64]int64{} // record -> offset of its next attribute
	var first int64
	for _, line := range strings.Split(out, "\n") {
		if m := attrHeadRe.FindStringSubmatch(line); m != nil {
			rec, _ := strconv.ParseInt(m[2], 10, 64)
			if _, ok := next[rec]; !ok {
				next[rec] = first
			}
			attrs = append(attrs, toolAttr{typ: m[1], record: rec, offset: next[rec]})
			continue
		}
		if m := runRe.FindStringSubmatch(line); m != nil && len(attrs) > 0 {
			vcn, _ := strconv.ParseInt(m[1], 16, 64)
			n, _ := strconv.ParseInt(m[3], 16, 64)
			if m[2] != "<HOLE>" {
				lcn, _ := strconv.ParseInt(m[2][2:], 16, 64)
				a := &attrs[len(attrs)-1]
				a.runs = append(a.runs, fsys.Run{Off: lcn * cs, Len: n * cs, FileOff: vcn * cs})
			}
			continue
		}
		m := kvRe.FindStringSubmatch(line)
		if m == nil {
			if strings.HasPrefix(line, "MFT Record Flags:") {
				flags = strings.TrimSpace(strings.TrimPrefix(line, "MFT Record Flags:"))
			}
			if strings.HasPrefix(line, "Attribute Offset:") {
				first, _ = strconv.ParseInt(numRe.FindString(strings.TrimSpace(strings.TrimPrefix(line, "Attribute Offset:"))), 10, 64)
			}
			continue
		}
		if len(attrs) == 0 {
			continue
		}
		a := &attrs[len(attrs)-1]
		v := m[2]
		n, _ := strconv.ParseInt(numRe.FindString(v), 10, 64)
		switch m[1] {
		case "Attribute length":
			next[a.record] = a.offset + n
		case "Resident":
			a.resident = v == "Yes"
		case "Attribute name":
			a.name = strings.Trim(v, "'")
		case "Attribute flags":
			a.flags, _ = strconv.ParseInt(strings.TrimPrefix(v, "0x"), 16, 64)
		case "Data size":
			a.size = n
		case "Initialized size":
			a.init = n
		case "Data offset":
			a.dataOff = n
		case "Runlist":
			a.runlistMentioned = true
		}
	}
	return flags, attrs
}

// toolEntry is what the tools say one path should be.
type toolEntry struct {
	paths []string // every name of the record (hard links)
	dir   bool
	size  int64
	runs  []fsys.Run
}

// toolWalk builds, from ntfsls and ntfsinfo, every entry the package's
// walk documents: directories with their $INDEX_ALLOCATION:$I30 runs,
// each $DATA attribute as "path" or "path:stream", resident data at its
// place in the MFT record, runs past the initialized size Unwritten,
// compressed attributes' runs Compressed, and $MFT's own data left out.
func toolWalk(t *testing.T, img string) map[string]*toolEntry {
	info := string(testutil.Run(t, "ntfsinfo", "-m", img))
	cs := int64(num(t, info, `Cluster Size: (\d+)`))
	recSize := int64(num(t, info, `MFT Record Size: (\d+)`))
	var mftRuns []fsys.Run
	for _, a := range second(toolInfo(t, img, 0, cs)) {
		if a.typ == "$DATA" && a.name == "" {
			mftRuns = a.runs
		}
	}
	phys := func(rec, off, n int64) []fsys.Run {
		s := rec*recSize + off
		var out []fsys.Run
		for _, r := range mftRuns {
			a, z := max(s, r.FileOff), min(s+n, r.FileOff+r.Len)
			if a < z {
				out = append(out, fsys.Run{Off: r.Off + a - r.FileOff, Len: z - a, FileOff: a - s, Inline: true})
			}
		}
		return out
	}
	byIno := map[int][]string{}
	for p, ino := range toolPaths(t, img) {
		byIno[ino] = append(byIno[ino], p)
	}
	out := map[string]*toolEntry{}
	for ino, paths := range byIno {
		slices.Sort(paths)
		flags, attrs := toolInfo(t, img, ino, cs)
		dir := strings.Contains(flags, "DIRECTORY")
		base := &toolEntry{paths: paths, dir: dir}
		out[paths[0]] = base
		for _, a := range attrs {
			switch {
			case a.typ == "$INDEX_ALLOCATION" && a.name == "$I30":
				base.runs = append(base.runs, a.runs...)
			case a.typ == "$DATA":
				e := base
				if a.name != "" {
					e = &toolEntry{}
					for _, p := range paths {
						e.paths = append(e.paths, p+":"+a.name)
					}
					out[e.paths[0]] = e
				}
				e.size = a.size
				switch {
				case a.resident:
					e.runs = phys(a.record, a.offset+a.dataOff, a.size)
				case ino == recMFT && a.name == "":
				default:
					for _, r := range a.runs {
						r.Compressed = a.flags&attrFlagCompressed != 0
						if r.Compressed {
							r.Codec = "lznt1"
						}
						if !r.Compressed && a.init < a.size && r.FileOff+r.Len > a.init {
							if cut := a.init - r.FileOff; cut > 0 {
								e.runs = append(e.runs, fsys.Run{Off: r.Off, Len: cut, FileOff: r.FileOff})
								r.Off, r.FileOff, r.Len = r.Off+cut, r.FileOff+cut, r.Len-cut
							}
							r.Unwritten = true
						}
						e.runs = append(e.runs, r)
					}
				}
			}
		}
	}
	return out
}

func second[A, B any](_ A, b B) B { return b }

func num(t *testing.T, s, re string) int {
	m := regexp.MustCompile(re).FindStringSubmatch(s)
	if m == nil {
		t.Fatalf("no %q in\n%s", re, s)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// toolDeleted lists the deleted records ntfsundelete finds, by file name:
// each stream's size, whether it is resident, and its runs.
type toolDel struct {
	name     string
	resident bool
	size     int64
	runs     []fsys.Run
}

func toolDeleted(t *testing.T, img string, cs int64) map[string][]toolDel {
	out := string(testutil.Run(t, "ntfsundelete", "-s", "-v", "-f", img))
	res := map[string][]toolDel{}
	var name string
	var cur *toolDel
	var vcn int64
	runLine := regexp.MustCompile(`^\s+(\d+) @ (\d+)$`)
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "MFT Record "):
			name, cur = "", nil
		case strings.HasPrefix(line, "Filename: "):
			if f := strings.SplitN(line, ") ", 2); len(f) == 2 && name == "" {
				name = f[1]
			}
		case strings.HasPrefix(line, "Name: ") && name != "":
			sn := strings.TrimPrefix(line, "Name: ")
			if sn == "<unnamed>" {
				sn = ""
			}
			res[name] = append(res[name], toolDel{name: sn})
			cur = &res[name][len(res[name])-1]
			vcn = 0
		case cur != nil && strings.HasPrefix(line, "Flags: "):
			cur.resident = strings.Contains(line, "Resident")
		case cur != nil && strings.HasPrefix(line, "Size data: "):
			cur.size, _ = strconv.ParseInt(strings.TrimPrefix(line, "Size data: "), 10, 64)
		case cur != nil && runLine.MatchString(line):
			m := runLine.FindStringSubmatch(line)
			n, _ := strconv.ParseInt(m[1], 10, 64)
			lcn, _ := strconv.ParseInt(m[2], 10, 64)
			cur.runs = append(cur.runs, fsys.Run{Off: lcn * cs, Len: n * cs, FileOff: vcn * cs})
			vcn += n
		}
	}
	return res
}

// TestWalkMatchesNtfsTools compares every live path, type, size and run of
// our walk with ntfsls and ntfsinfo, and every deleted entry with
// ntfsundelete, on an image made by mkntfs and populated through ntfs-3g.
func TestWalkMatchesNtfsTools(t *testing.T) {
	testutil.RequireTool(t, "mkntfs", "ntfs-3g", "ntfsls", "ntfsinfo", "ntfsundelete")
	img, c := makeImage(t)
	f, data := openImage(t, img)
	want := toolWalk(t, img)
	byPath := map[string]*toolEntry{}
	for _, e := range want {
		for _, p := range e.paths {
			byPath[p] = e
		}
	}
	deleted := toolDeleted(t, img, f.clusterSize)
	got := map[*toolEntry]string{}
	names := fstest.NewHardLinks[*toolEntry]()
	var gotDeleted []fsys.Entry
	err := f.Walk(context.Background(), func(e fsys.Entry) error {
		if e.Deleted {
			e.Runs = slices.Clone(e.Runs)
			gotDeleted = append(gotDeleted, e)
			return nil
		}
		w := byPath[e.Path]
		if w == nil {
			t.Errorf("walk gives %s, which ntfsls does not list", e.Path)
			return nil
		}
		if !names.Add(t, w, e) {
			return nil // another name of a file: its runs are the file's entry's
		}
		got[w] = e.Path
		if e.Mode.IsDir() != w.dir {
			t.Errorf("%s: dir %v, ntfsinfo says %v", e.Path, e.Mode.IsDir(), w.dir)
		}
		if !w.dir && e.Size != w.size {
			t.Errorf("%s: size %d, ntfsinfo says %d", e.Path, e.Size, w.size)
		}
		if g, x := fstest.SortRuns(e.Runs), fstest.SortRuns(w.runs); !slices.Equal(g, x) {
			t.Errorf("%s: runs\n  %+v\nntfsinfo:\n  %+v", e.Path, g, x)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	paths := map[*toolEntry][]string{}
	for _, e := range want {
		if !e.dir && !strings.Contains(e.paths[0], ":") {
			paths[e] = e.paths
		}
	}
	names.Check(t, paths) // /etc/app/credentials, also /etc/app/cred-link
	for _, e := range want {
		if _, ok := got[e]; !ok {
			t.Errorf("%v: not walked", e.paths)
		}
	}
	// Every kind of data the fixture holds is there.
	kind := func(p string, ok func(fsys.Run) bool) {
		if e := byPath[p]; e == nil || !slices.ContainsFunc(e.runs, ok) {
			t.Errorf("%s: fixture lacks the kind of run expected", p)
		}
	}
	kind("/etc/small.conf", func(r fsys.Run) bool { return r.Inline })
	kind("/etc/small.conf:hidden", func(r fsys.Run) bool { return r.Inline })
	kind("/cdir/comp.txt", func(r fsys.Run) bool { return r.Compressed })
	kind("/sparse.bin", func(r fsys.Run) bool { return r.FileOff >= 1<<20 })
	if e := byPath["/etc/app/credentials"]; e == nil || len(e.paths) != 2 {
		t.Errorf("hard link: %+v", e)
	}

	// Deleted: each named, resolvable deleted record is given under its
	// old path, with ntfsundelete's size and runs; resident data's run
	// holds the file's bytes.
	if len(gotDeleted) != len(c.Deleted) {
		t.Errorf("deleted entries: %d, want %d: %+v", len(gotDeleted), len(c.Deleted), gotDeleted)
	}
	for _, e := range gotDeleted {
		content, ok := c.Deleted[e.Path]
		if !ok {
			t.Errorf("deleted entry %s: not a deleted file of the fixture", e.Path)
			continue
		}
		tool := deleted[filepath.Base(e.Path)]
		if len(tool) != 1 || tool[0].size != e.Size || tool[0].size != int64(len(content)) {
			t.Errorf("%s: size %d, ntfsundelete says %+v", e.Path, e.Size, tool)
			continue
		}
		if tool[0].resident {
			if len(e.Runs) != 1 || !e.Runs[0].Inline || !bytes.Equal(data[e.Runs[0].Off:e.Runs[0].Off+e.Runs[0].Len], content) {
				t.Errorf("%s: resident runs %+v do not hold its bytes", e.Path, e.Runs)
			}
		} else if g, x := fstest.SortRuns(e.Runs), fstest.SortRuns(tool[0].runs); !slices.Equal(g, x) {
			t.Errorf("%s: runs\n  %+v\nntfsundelete:\n  %+v", e.Path, g, x)
		}
	}
}

// TestStatesAndRead: the live, resident, stream and new bytes are in runs
// of their paths; the deleted files' bytes are in runs of their deleted
// entries; the overwritten file's old bytes are gone (NTFS overwrites in
// place). Files read back by path, resident ones with the fixups undone.
func TestStatesAndRead(t *testing.T) {
	testutil.RequireTool(t, "mkntfs", "ntfs-3g")
	img, c := makeImage(t)
	f, data := openImage(t, img)
	type hit struct {
		path    string
		deleted bool
		run     fsys.Run
	}
	runsAt := func(off int64) []hit {
		var out []hit
		f.Walk(context.Background(), func(e fsys.Entry) error {
			for _, r := range e.Runs {
				if off >= r.Off && off < r.Off+r.Len {
					out = append(out, hit{e.Path, e.Deleted, r})
				}
			}
			return nil
		})
		return out
	}
	straddle := c.Live["/etc/straddle.conf"]
	for _, w := range []struct {
		name    string
		content []byte
		path    string
		deleted bool
		inline  bool
	}{
		{"live", c.Live["/etc/app/credentials"], "/etc/app/credentials", false, false},
		{"resident", c.Live["/etc/small.conf"], "/etc/small.conf", false, true},
		{"stream", testutil.Marker("/etc/small.conf:hidden", 30), "/etc/small.conf:hidden", false, true},
		{"resident across a stride end", straddle[:64], "/etc/straddle.conf", false, true},
		{"overwritten", c.Overwritten["/srv/overwritten"][1], "/srv/overwritten", false, false},
		{"resident overwritten", c.Overwritten["/srv/small-over"][1], "/srv/small-over", false, true},
		{"deleted", c.Deleted["/tmp/token-deleted"], "/tmp/token-deleted", true, false},
		{"resident deleted", c.Deleted["/tmp/small-deleted"], "/tmp/small-deleted", true, true},
	} {
		t.Run(w.name, func(t *testing.T) {
			off := bytes.Index(data, w.content[:min(64, len(w.content))])
			if off < 0 {
				t.Fatal("not in the image")
			}
			hs := runsAt(int64(off))
			if len(hs) != 1 || hs[0].path != w.path || hs[0].deleted != w.deleted || hs[0].run.Inline != w.inline {
				t.Fatalf("byte %d: runs %+v", off, hs)
			}
			if !w.deleted && f.clusterUsed(int64(off)/f.clusterSize) == false {
				t.Errorf("byte %d: cluster free in $Bitmap", off)
			}
			if w.deleted && !w.inline && f.State(int64(off)) != fsys.StateFree {
				t.Errorf("byte %d: State %s", off, f.State(int64(off)))
			}
		})
	}
	for _, old := range [][]byte{c.Overwritten["/srv/overwritten"][0], c.Overwritten["/srv/small-over"][0]} {
		if bytes.Contains(data, old[:min(64, len(old))]) {
			t.Errorf("%.24q...: still in the image, not overwritten in place", old)
		}
	}
	// The straddling value covers the end of the record's first stride:
	// on disk the two bytes there are the update sequence number, which
	// the run attributes to the file; Open reads the real bytes.
	for _, h := range runsAt(int64(bytes.Index(data, straddle[:64]))) {
		end := (h.run.Off/fixupStride + 1) * fixupStride
		if end >= h.run.Off+h.run.Len || bytes.Equal(data[end-2:end], straddle[end-2-h.run.Off:end-h.run.Off]) {
			t.Errorf("fixture: %s does not cross a stride end with differing bytes: %+v", h.path, h.run)
		}
	}
	if got := f.State(int64(len(data)) - 100); got != fsys.StateAllocated {
		t.Errorf("backup boot sector: %s", got)
	}

	fstest.ReadsBack(t, f, map[string][]byte{
		"/etc/app/credentials":   c.Live["/etc/app/credentials"],
		"/ETC/APP/CRED-LINK":     c.Live["/etc/app/credentials"],
		"/etc/small.conf":        c.Live["/etc/small.conf"],
		"/etc/small.conf:hidden": testutil.Marker("/etc/small.conf:hidden", 30),
		"/etc/straddle.conf":     straddle,
		"/srv/overwritten":       c.Overwritten["/srv/overwritten"][1],
		"/srv/small-over":        c.Overwritten["/srv/small-over"][1],
		"/sparse.bin":            append(make([]byte, 1<<20), testutil.Marker("/sparse.bin", 5000)...),
		"/cdir/comp.txt":         bytes.Repeat([]byte("compressible line of text\n"), 20000),
	})
	fstest.Gone(t, f, "/tmp/token-deleted")
	if got := fstest.Names(t, f, "/etc"); got != "app/ small.conf straddle.conf" {
		t.Errorf("ReadDir(/etc) = %s", got)
	}
}

// TestDeletedRunsReallocated: a deleted record keeps only the clusters
// $Bitmap has free; those allocated again are left to their new owner.
func TestDeletedRunsReallocated(t *testing.T) {
	f := &FS{clusterSize: 4096, bitmap: []byte{0b0011_0100}} // clusters 2, 4, 5 used
	runs := []fsys.Run{{Off: 0, Len: 8 * 4096, FileOff: 0}, {Off: 100, Len: 50, Inline: true}}
	got := f.entryRuns(nil, runs, -1, true, nil)
	want := []fsys.Run{
		{Off: 0, Len: 2 * 4096, FileOff: 0},
		{Off: 3 * 4096, Len: 4096, FileOff: 3 * 4096},
		{Off: 6 * 4096, Len: 2 * 4096, FileOff: 6 * 4096},
		{Off: 100, Len: 50, Inline: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("deleted runs %+v, want %+v", got, want)
	}
	if live := f.entryRuns(nil, runs, 4096+10, false, nil); len(live) != 3 || !live[1].Unwritten || live[1].Off != 4096+10 {
		t.Errorf("live runs split at the initialized size: %+v", live)
	}
}
