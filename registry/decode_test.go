package registry

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// TestLayerArchivesDecoded: a .tar.gz that tar and gzip made, left in a
// layer, is decoded as the layer is read: its secret is found with the
// chain that reached it and the file's path, as a layer file's; with
// NoDecode it is not found.
func TestLayerArchivesDecoded(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip")
	tok := npmToken(t)
	tmp := t.TempDir()
	if err := os.MkdirAll(filepath.Join(tmp, "src/root"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tmp, "src/root/.npmrc"), []byte("//registry.npmjs.org/:_authToken="+tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("tar", "-C", filepath.Join(tmp, "src"), "-czf", filepath.Join(tmp, "backup.tar.gz"), "root")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	tgz, err := os.ReadFile(filepath.Join(tmp, "backup.tar.gz"))
	if err != nil {
		t.Fatal(err)
	}
	img := testImage(t, "app", imageOf(t, layer(t, "", dir("home/"), file("home/backup.tar.gz", string(tgz)))))
	for _, noDecode := range []bool{false, true} {
		rep := report.Merge(newScanner(t, Options{NoDecode: noDecode}).scanImage(context.Background(), img))
		checkArchivedToken(t, rep, tok, noDecode, "/home/backup.tar.gz", "")
		// The layer's view says what decoding read, as a disk's does:
		// one container, whose one leaf is .npmrc.
		d := rep.Targets[0].Views[0].Decoding
		npmrc := int64(len("//registry.npmjs.org/:_authToken=" + tok + "\n"))
		if noDecode != (d == nil) || !noDecode && (d.Containers != 1 || d.Leaves != 1 || d.DecodedBytes != npmrc || len(d.Skipped) != 0) {
			t.Errorf("NoDecode %v: the layer view's decoding: %+v", noDecode, d)
		}
	}
}

// checkArchivedToken asserts that tok, which lies in .npmrc in a .tar.gz
// at path, was found there through gzip and tar, live, in a view whose
// ID holds view; and that with noDecode it was not found at all.
func checkArchivedToken(t *testing.T, rep *report.Report, tok string, noDecode bool, path, view string) {
	t.Helper()
	f := findingsByFP(rep)[fp(tok)]
	if noDecode {
		if f != nil {
			t.Errorf("NoDecode found the token: %+v", f.Locations)
		}
		return
	}
	if f == nil {
		t.Fatalf("token in %s not found", path)
	}
	l := f.Locations[0]
	if l.Path != path || report.DecodedText(l) != "gzip > tar member root/.npmrc" || l.DecodedOffset == nil || l.Exposure != report.ExposureLive || !strings.Contains(l.View, view) {
		t.Errorf("location %+v (%s)", l, report.DecodedText(l))
	}
	assertNoLeak(t, rep, tok)
}

// TestContainerDiskArchiveDecoded is the nesting the issue names: a
// .tar.gz (made by tar and gzip) in the ext4 (mkfs.ext4 -d) of a qcow2
// (qemu-img) that is a KubeVirt containerDisk in a gzip layer. The disk is
// spooled and opened as a disk, its filesystem walked, and the archive in
// it decoded: the token is found at the archive's path in the guest, with
// the chain through gzip and tar, live, in the disk's view; with NoDecode
// it is not found.
func TestContainerDiskArchiveDecoded(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "mkfs.ext4", "qemu-img")
	tok := npmToken(t)
	tmp := t.TempDir()
	for p, body := range map[string]string{
		"src/root/.npmrc":    "//registry.npmjs.org/:_authToken=" + tok + "\n",
		"fs/etc/hostname":    "vm01\n",
		"fs/root/readme.txt": "backups\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testutil.Run(t, "tar", "-C", filepath.Join(tmp, "src"), "-czf", filepath.Join(tmp, "fs/root/backup.tar.gz"), "root")
	fsImg := filepath.Join(tmp, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0", "-d", filepath.Join(tmp, "fs"), fsImg, "8M")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", fsImg, filepath.Join(tmp, "disk.qcow2"))
	disk, err := os.ReadFile(filepath.Join(tmp, "disk.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	img := imageOf(t, layer(t, "", dir("disk/"), entry{name: "disk/disk.qcow2", body: disk}))
	src := writeSource(t, "oci-layout", img)
	for _, noDecode := range []bool{false, true} {
		rep, err := newScanner(t, Options{NoDecode: noDecode}).ScanLocal(context.Background(), []string{src})
		if err != nil {
			t.Fatal(err)
		}
		for _, tg := range rep.Targets {
			if len(tg.Errors) > 0 {
				t.Fatalf("target %s: errors %q", tg.Path, tg.Errors)
			}
		}
		checkArchivedToken(t, rep, tok, noDecode, "/root/backup.tar.gz", "!/disk/disk.qcow2#current")
	}
}

// TestContainerDiskNestedImage: a containerDisk (qcow2, in a gzip layer)
// whose ext4 holds a compressed qcow2 (qemu-img convert -c) of another
// guest: the inner image is opened too, and the token in its ext4 is found
// at its path there, live; with NoNestedImages it is not found (its
// clusters are deflate).
func TestContainerDiskNestedImage(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "qemu-img")
	tok := npmToken(t)
	tmp := t.TempDir()
	for p, body := range map[string]string{"inner/root/.npmrc": "//registry.npmjs.org/:_authToken=" + tok + "\n", "outer/etc/hostname": "host01\n"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tmp, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, p), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(filepath.Join(tmp, "outer/images"), 0o755)
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(tmp, "inner"), filepath.Join(tmp, "inner.img"), "8M")
	testutil.Run(t, "qemu-img", "convert", "-c", "-f", "raw", "-O", "qcow2", filepath.Join(tmp, "inner.img"), filepath.Join(tmp, "outer/images/inner.qcow2"))
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", filepath.Join(tmp, "outer"), filepath.Join(tmp, "outer.img"), "16M")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", filepath.Join(tmp, "outer.img"), filepath.Join(tmp, "disk.qcow2"))
	disk, err := os.ReadFile(filepath.Join(tmp, "disk.qcow2"))
	if err != nil {
		t.Fatal(err)
	}
	src := writeSource(t, "oci-layout", imageOf(t, layer(t, "", dir("disk/"), entry{name: "disk/disk.qcow2", body: disk})))
	for _, noNested := range []bool{false, true} {
		rep, err := newScanner(t, Options{NoNestedImages: noNested}).ScanLocal(context.Background(), []string{src})
		if err != nil {
			t.Fatal(err)
		}
		f := findingsByFP(rep)[fp(tok)]
		if noNested {
			if f != nil {
				t.Errorf("NoNestedImages found the token: %+v", f.Locations)
			}
			continue
		}
		if f == nil || len(f.Locations) != 1 {
			t.Fatalf("token: %+v", f)
		}
		if l := f.Locations[0]; l.Path != "/root/.npmrc" || l.Exposure != report.ExposureLive || !strings.HasSuffix(l.View, "/disk/disk.qcow2#current:disk:/images/inner.qcow2#current") {
			t.Errorf("location %s %s %s", l.View, l.Path, l.Exposure)
		}
		if !rep.Complete {
			t.Errorf("incomplete: %s", rep.IncompleteReason)
		}
		assertNoLeak(t, rep, tok)
	}
}

// TestLayerDecodedMatchesCounted: two gzip files (the gzip tool's) of
// 120,000 distinct AWS key IDs each, in a layer. The first file's matches
// past the 100,000 a file keeps are counted as dropped, with a note
// (before, they were neither kept nor counted); the second file, decoded
// once the rule is full, is not validated, and its hits are counted as
// such. Every match is accounted for: kept, dropped or not validated.
func TestLayerDecodedMatchesCounted(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	const ids = 120000
	const rule = "aws-access-key-id"
	tmp := t.TempDir()
	var files []entry
	first := 0 // the rule's matches in the first file (a few IDs fail its checks)
	for k := range 2 {
		var b strings.Builder
		for i := range ids {
			v := k*ids + i
			id := []byte("AKIA0000000000000000")
			for j := 19; j >= 4; j-- {
				id[j] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"[v&31]
				v >>= 5
			}
			b.Write(id)
			b.WriteByte('\n')
		}
		if k == 0 {
			for _, m := range testEngine(t).FindAll([]byte(b.String()), detectors.ScanOptions{}) {
				if m.RuleID == rule {
					first++
				}
			}
		}
		path := filepath.Join(tmp, "keys.log")
		if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		gz, err := exec.Command("gzip", "-c", path).Output()
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file("var/log/keys.log."+strconv.Itoa(k+1)+".gz", string(gz)))
	}
	img := testImage(t, "app", imageOf(t, layer(t, "", append([]entry{dir("var/log/")}, files...)...)))
	rep := report.Merge(newScanner(t, Options{}).scanImage(context.Background(), img))
	kept := 0
	for _, f := range rep.Findings {
		if f.Rule == rule {
			kept++
		}
	}
	var dropped, notValidated, cut int64
	var notes []string
	for _, tg := range rep.Targets {
		for _, v := range tg.Views {
			notes = append(notes, v.Notes...)
			if v.Decoding != nil {
				cut += v.Decoding.Skipped["matches past the first 100000 of one container not placed"]
			}
			if v.Truncated != nil {
				dropped += v.Truncated.MatchesDropped[rule]
				notValidated += v.Truncated.HitsNotValidated[rule]
			}
		}
	}
	if kept != 10000 || int64(kept)+dropped != int64(first) || notValidated != ids {
		t.Errorf("%d kept, %d dropped, %d not validated: want 10,000 kept, the first file's %d matches kept or dropped, the second's %d hits not validated", kept, dropped, notValidated, first, ids)
	}
	want := fmt.Sprintf("keys.log.1.gz: %d decoded matches past the first 100000 of the file not kept", first-100000)
	if !slices.ContainsFunc(notes, func(n string) bool { return strings.Contains(n, want) }) {
		t.Errorf("no note of the matches past the cap: %q", notes)
	}
	if cut != 1 {
		t.Errorf("decoding.skipped counts %d containers whose matches were cut, want the first file", cut)
	}
}
