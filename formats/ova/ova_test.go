package ova

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zlib"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

const secret = "OVA-PLANTED-SECRET-4e1d"

func ovfText(href, extra string, capacity int64) string {
	return fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<Envelope vmw:buildId="build-1" xmlns="http://schemas.dmtf.org/ovf/envelope/1" xmlns:ovf="http://schemas.dmtf.org/ovf/envelope/1" xmlns:vmw="http://www.vmware.com/schema/ovf">
  <References>
    <File ovf:href="%s" ovf:id="file1" %s/>
  </References>
  <DiskSection>
    <Info>Virtual disk information</Info>
    <Disk ovf:capacity="%d" ovf:capacityAllocationUnits="byte" ovf:diskId="vmdisk1" ovf:fileRef="file1" ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>
  </DiskSection>
  <VirtualSystem ovf:id="vm"><Info>A VM</Info><Name>vm</Name></VirtualSystem>
</Envelope>
`, href, extra, capacity)
}

// makeDisk writes a raw image with a planted secret, converts it to a
// streamOptimized VMDK and returns the VMDK path and qemu-img's raw reading.
func makeDisk(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	b := make([]byte, 3<<20)
	r := rand.New(rand.NewPCG(5, 5))
	for off := 0; off < len(b); off += 256 << 10 {
		for i := off; i < off+32<<10; i++ {
			b[i] = byte(r.Uint32())
		}
		copy(b[off+100<<10:], strings.Repeat(secret, 10))
	}
	rawPath := filepath.Join(dir, "src.raw")
	os.WriteFile(rawPath, b, 0o644)
	disk := filepath.Join(dir, "disk1.vmdk")
	testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", "-o", "subformat=streamOptimized", rawPath, disk)
	out := filepath.Join(dir, "check.raw")
	testutil.Run(t, "qemu-img", "convert", "-O", "raw", disk, out)
	want, _ := os.ReadFile(out)
	os.Remove(out)
	os.Remove(rawPath)
	return disk, want
}

func TestOVA(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "tar", "gzip", "split")
	cases := []struct {
		name     string
		prepare  func(t *testing.T, dir, disk string) []string // returns members after the .ovf
		attrs    string
		wantNote string
	}{
		{name: "plain", prepare: func(t *testing.T, dir, disk string) []string { return []string{"disk1.vmdk"} },
			wantNote: "in place"},
		{name: "chunked", attrs: `ovf:chunkSize="50000"`, prepare: func(t *testing.T, dir, disk string) []string {
			testutil.Run(t, "split", "-b", "50000", "-d", "-a", "9", disk, filepath.Join(dir, "disk1.vmdk."))
			return chunks(t, dir)
		}, wantNote: "chunks"},
		{name: "gzip chunked", attrs: `ovf:compression="gzip" ovf:chunkSize="40000"`, prepare: func(t *testing.T, dir, disk string) []string {
			testutil.Run(t, "gzip", "-k", disk)
			testutil.Run(t, "split", "-b", "40000", "-d", "-a", "9", disk+".gz", filepath.Join(dir, "disk1.vmdk."))
			os.Remove(disk + ".gz")
			return chunks(t, dir)
		}, wantNote: "temporary file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			disk, want := makeDisk(t, dir)
			mem := c.prepare(t, dir, disk)
			os.WriteFile(filepath.Join(dir, "export.ovf"), []byte(ovfText("disk1.vmdk", c.attrs, int64(len(want)))), 0o644)
			ova := filepath.Join(t.TempDir(), "export.ova")
			testutil.Run(t, "tar", append([]string{"--format=ustar", "-cf", ova, "-C", dir, "export.ovf"}, mem...)...)
			before := sha256.Sum256(testutil.FileSnapshot(t, ova))

			head := make([]byte, 4096)
			f, _ := os.Open(ova)
			st, _ := f.Stat()
			f.ReadAt(head, 0)
			if !Probe(head, f, st.Size()) {
				t.Fatal("Probe rejects the OVA")
			}
			f.Close()

			tmp := t.TempDir()
			im, err := OpenWith(context.Background(), ova, model.Options{}, Config{TempDir: tmp})
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Errors) != 0 {
				t.Fatalf("errors: %v", im.Errors)
			}
			v, ok := im.View("export.ova#current:disk1.vmdk")
			if !ok || v.Kind != model.KindCurrent {
				t.Fatalf("no current view export.ova#current:disk1.vmdk")
			}
			if !strings.Contains(strings.Join(v.Notes, "\n"), c.wantNote) {
				t.Fatalf("notes %q lack %q", v.Notes, c.wantNote)
			}
			got := make([]byte, v.Disk.Size())
			if _, err := v.Disk.ReadAt(got, 0); err != nil && err != io.EOF {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("current view differs from qemu-img convert of the disk")
			}
			// The planted secret is found reading extents only, and each
			// compressed extent's host bytes inflate to the guest bytes.
			ext, err := model.CollectExtents(context.Background(), v.Disk)
			if err != nil {
				t.Fatal(err)
			}
			found := 0
			of, _ := os.Open(ova)
			defer of.Close()
			for _, e := range ext {
				buf := make([]byte, e.Length)
				v.Disk.ReadAt(buf, e.Offset)
				found += bytes.Count(buf, []byte(secret))
				if e.File == ova && e.Source == model.SourceCompressed {
					cb := make([]byte, e.FileLength)
					of.ReadAt(cb, e.FileOffset)
					zr, err := zlib.NewReader(bytes.NewReader(cb))
					if err != nil {
						t.Fatalf("extent %+v: host bytes are not the grain: %v", e, err)
					}
					g, _ := io.ReadAll(zr)
					if len(g) < len(buf) || !bytes.Equal(g[:e.Length], buf) {
						t.Fatalf("extent %+v: host bytes inflate to other data", e)
					}
				}
			}
			if found != bytes.Count(want, []byte(secret)) || found == 0 {
				t.Fatalf("found %d planted secrets via extents, want %d", found, bytes.Count(want, []byte(secret)))
			}
			if _, ok := im.View("export.ova#unreferenced:disk1.vmdk"); !ok {
				t.Fatal("no unreferenced view")
			}
			im.Close()
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Fatalf("temporary files left behind: %d", len(left))
			}
			if sha256.Sum256(testutil.FileSnapshot(t, ova)) != before {
				t.Fatal("the OVA changed while reading")
			}
		})
	}
}

func chunks(t *testing.T, dir string) []string {
	m, _ := filepath.Glob(filepath.Join(dir, "disk1.vmdk.0*"))
	if len(m) < 2 {
		t.Fatalf("split made %d chunks", len(m))
	}
	var out []string
	for _, p := range m {
		out = append(out, filepath.Base(p))
	}
	return out
}

// TestOVAHostile: member names are never host paths, and broken archives
// give errors naming the file.
func TestOVAHostile(t *testing.T) {
	testutil.RequireTool(t, "tar")
	cases := []struct {
		name    string
		href    string
		attrs   string
		members map[string][]byte
		wantErr string
	}{
		{name: "href escapes", href: "../outside.vmdk", wantErr: "not in the archive"},
		{name: "absolute href", href: "/etc/passwd", wantErr: "not in the archive"},
		{name: "bad compression", href: "d.vmdk", attrs: `ovf:compression="bzip2"`, members: map[string][]byte{"d.vmdk": []byte("x")}, wantErr: "unsupported compression"},
		// A descriptor's extent names resolve to other members of the
		// archive (its tar index), never to host files.
		{name: "extent names a host file", href: "d.vmdk", members: map[string][]byte{"d.vmdk": flatDescriptor(t, "/etc/passwd")}, wantErr: "extent \"/etc/passwd\": open /etc/passwd: no such member in the layer or archive"},
		{name: "extent escapes the archive", href: "d.vmdk", members: map[string][]byte{"d.vmdk": flatDescriptor(t, "../outside.vmdk")}, wantErr: model.ErrOutsideArchive.Error()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(filepath.Dir(dir), "outside.vmdk"), []byte("KDMV"), 0o644)
			os.WriteFile(filepath.Join(dir, "e.ovf"), []byte(ovfText(c.href, c.attrs, 1<<20)), 0o644)
			names := []string{"e.ovf"}
			for n, b := range c.members {
				os.WriteFile(filepath.Join(dir, n), b, 0o644)
				names = append(names, n)
			}
			ova := filepath.Join(t.TempDir(), "e.ova")
			testutil.Run(t, "tar", append([]string{"--format=ustar", "-cf", ova, "-C", dir}, names...)...)
			im, err := OpenWith(context.Background(), ova, model.Options{}, Config{TempDir: t.TempDir(), SpoolLimit: 1 << 20})
			if err == nil {
				im.Close()
				t.Fatalf("opened; want error %q", c.wantErr)
			}
			if !strings.Contains(err.Error(), c.wantErr) || !strings.Contains(err.Error(), "e.ova") {
				t.Fatalf("error %q should name e.ova and say %q", err, c.wantErr)
			}
		})
	}
}

// TestOVAExtentMember: a descriptor VMDK in an OVA whose extent is another
// member reads that member, in place.
func TestOVAExtentMember(t *testing.T) {
	testutil.RequireTool(t, "tar")
	dir := t.TempDir()
	flat := make([]byte, 1<<20)
	copy(flat[4096:], secret)
	os.WriteFile(filepath.Join(dir, "e.ovf"), []byte(ovfText("d.vmdk", "", 1<<20)), 0o644)
	os.WriteFile(filepath.Join(dir, "d.vmdk"), flatDescriptor(t, "d-flat.vmdk"), 0o644)
	os.WriteFile(filepath.Join(dir, "d-flat.vmdk"), flat, 0o644)
	ova := filepath.Join(t.TempDir(), "e.ova")
	testutil.Run(t, "tar", "--format=ustar", "-cf", ova, "-C", dir, "e.ovf", "d.vmdk", "d-flat.vmdk")
	im, err := OpenWith(context.Background(), ova, model.Options{}, Config{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Errors) != 0 || len(im.Views) == 0 || im.Views[0].ID != "e.ova#current:d.vmdk" {
		t.Fatalf("views %d, errors %v", len(im.Views), im.Errors)
	}
	got := make([]byte, im.Views[0].Disk.Size())
	if _, err := im.Views[0].Disk.ReadAt(got, 0); err != nil && err != io.EOF {
		t.Fatal(err)
	}
	if !bytes.Equal(got, flat) {
		t.Errorf("the view does not read the extent member")
	}
	// The extent is the disk's: no file view of its own reads it again.
	for _, v := range im.Views {
		if v.Attrs[model.AttrArchiveFile] == "true" && v.Name != "e.ovf" {
			t.Errorf("view %s: a member a disk reads, scanned again as a file", v.ID)
		}
	}
}

// flatDescriptor is the descriptor qemu-img writes for a 1 MiB
// monolithicFlat VMDK, its extent renamed to extent.
func flatDescriptor(t *testing.T, extent string) []byte {
	testutil.RequireTool(t, "qemu-img")
	p := filepath.Join(t.TempDir(), "d.vmdk")
	testutil.Run(t, "qemu-img", "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", p, "1M")
	return bytes.Replace(testutil.FileSnapshot(t, p), []byte(`"d-flat.vmdk"`), []byte(strconv.Quote(extent)), 1)
}

func gzipZeros(t *testing.T, n int) []byte {
	p := filepath.Join(t.TempDir(), "z")
	os.WriteFile(p, make([]byte, n), 0o644)
	testutil.Run(t, "gzip", p)
	b, _ := os.ReadFile(p + ".gz")
	return b
}

// TestOVAGzipInflateBound: a gzip disk is inflated only up to the lowest
// of its bounds (the OVF's capacity, exactly for a raw disk; a sparse
// VMDK's own capacity plus room for its tables; the OVA's inflate budget;
// the spool limit). Past it the disk is cut, not refused: what came out is
// still read, and its first view carries the cut as Incomplete, naming the
// OVA and an offset inside the disk's member, and the bound.
func TestOVAGzipInflateBound(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "qemu-img")
	const mib = 1 << 20
	// raw is a disk of n bytes with the secret in its first MiB.
	raw := func(n int) []byte {
		b := make([]byte, n)
		copy(b[4096:], secret)
		return b
	}
	// sparseVMDK is a 3 MiB monolithicSparse VMDK (qemu-img's default)
	// with the secret, followed by n bytes of zeros inside the gzip stream.
	sparseVMDK := func(t *testing.T, n int) []byte {
		dir := t.TempDir()
		src, disk := filepath.Join(dir, "src.raw"), filepath.Join(dir, "d.vmdk")
		os.WriteFile(src, raw(3*mib), 0o644)
		testutil.Run(t, "qemu-img", "convert", "-f", "raw", "-O", "vmdk", src, disk)
		return append(testutil.FileSnapshot(t, disk), make([]byte, n)...)
	}
	tests := []struct {
		name      string
		disk      func(t *testing.T) []byte
		capacity  int64
		cfg       Config
		wantSize  int64  // decompressed bytes kept
		wantBound string // "" for no cut
	}{
		{name: "raw disk of its capacity", disk: func(*testing.T) []byte { return raw(2 * mib) }, capacity: 2 * mib, wantSize: 2 * mib},
		{name: "raw disk past its capacity", disk: func(*testing.T) []byte { return raw(32 * mib) }, capacity: mib,
			wantSize: mib, wantBound: "the OVF's capacity of 1048576 bytes"},
		{name: "inflate budget", disk: func(*testing.T) []byte { return raw(32 * mib) }, capacity: 1 << 30, cfg: Config{MaxInflate: 3 * mib},
			wantSize: 3 * mib, wantBound: "the OVA's inflate bound (--max-inflate, 3145728 bytes"},
		{name: "spool limit", disk: func(*testing.T) []byte { return raw(32 * mib) }, capacity: 1 << 30, cfg: Config{SpoolLimit: 2 * mib},
			wantSize: 2 * mib, wantBound: "the spool limit of 2097152 bytes"},
		{name: "VMDK past its header's capacity", disk: func(t *testing.T) []byte { return sparseVMDK(t, 40*mib) }, capacity: 1 << 30,
			wantSize: 3*mib + 3*mib/8 + 16*mib, wantBound: "the VMDK header's capacity of 3145728 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "d.img")
			os.WriteFile(p, tc.disk(t), 0o644)
			testutil.Run(t, "gzip", "-n", p)
			os.Rename(p+".gz", p)
			os.WriteFile(filepath.Join(dir, "e.ovf"), []byte(ovfText("d.img", `ovf:compression="gzip"`, tc.capacity)), 0o644)
			ova := filepath.Join(t.TempDir(), "e.ova")
			testutil.Run(t, "tar", "--format=ustar", "-cf", ova, "-C", dir, "e.ovf", "d.img")
			tc.cfg.TempDir = t.TempDir()
			im, err := OpenWith(context.Background(), ova, model.Options{}, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer im.Close()
			if len(im.Views) == 0 {
				t.Fatal("no view")
			}
			v := im.Views[0]
			if got, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimPrefix(noteWith(v.Notes, "decompressed ("), "decompressed ("), " bytes)"), 10, 64); got != tc.wantSize {
				t.Errorf("decompressed %d bytes (notes %q), want %d", got, v.Notes, tc.wantSize)
			}
			buf := make([]byte, mib)
			v.Disk.ReadAt(buf, 0)
			if !bytes.Contains(buf, []byte(secret)) {
				t.Errorf("the secret before the cut is not read")
			}
			for _, w := range im.Views[1:] {
				if w.Incomplete != nil {
					t.Errorf("view %s repeats the cut", w.ID)
				}
			}
			if tc.wantBound == "" {
				if v.Incomplete != nil {
					t.Fatalf("Incomplete = %v, want none", v.Incomplete)
				}
				return
			}
			var fe *model.FormatError
			if !errors.As(v.Incomplete, &fe) || fe.File != ova || fe.Offset < 512 || fe.Offset > int64(len(testutil.FileSnapshot(t, ova))) {
				t.Fatalf("Incomplete = %v, want a FormatError naming %s and an offset in it", v.Incomplete, ova)
			}
			if !strings.Contains(fe.Msg, tc.wantBound) || !strings.Contains(fe.Msg, "d.img") {
				t.Errorf("Incomplete = %v, want it to name d.img and %q", v.Incomplete, tc.wantBound)
			}
		})
	}
}

func noteWith(notes []string, sub string) string {
	for _, n := range notes {
		if i := strings.Index(n, sub); i >= 0 {
			n = n[i:]
			if j := strings.Index(n, ")"); j >= 0 {
				return n[:j+1]
			}
		}
	}
	return ""
}

// TestOVAAppendedMembers: members appended to an OVA with tar -r are
// read. A name the tar holds twice opens as its later copy (what tar x
// leaves), and the earlier copy is scanned as a file of its own; a GNU
// sparse member (tar -S), which an OVA cannot hold in place, is an error
// of the image, so that a scan of it fails closed. Both were skipped
// without a word before.
func TestOVAAppendedMembers(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "tar", "truncate")
	dir := t.TempDir()
	makeDisk(t, dir)
	os.WriteFile(filepath.Join(dir, "export.ovf"), []byte(ovfText("disk1.vmdk", "", 3<<20)), 0o644)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("first notes\n"), 0o644)
	ova := filepath.Join(t.TempDir(), "export.ova")
	testutil.Run(t, "tar", "--format=ustar", "-cf", ova, "-C", dir, "export.ovf", "disk1.vmdk", "notes.txt")
	// The later notes.txt holds what the first does not.
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("second notes "+secret+"\n"), 0o644)
	testutil.Run(t, "tar", "--format=ustar", "-rf", ova, "-C", dir, "notes.txt", "disk1.vmdk")

	im, err := OpenWith(context.Background(), ova, model.Options{}, Config{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var notes []string
	for _, v := range im.Views {
		if strings.Contains(v.ID, "notes.txt") || strings.HasPrefix(v.ID, "export.ova#current:disk1.vmdk~") {
			notes = append(notes, v.ID)
		}
	}
	im.Close()
	if len(im.Errors) != 0 || !slices.Contains(notes, "export.ova#current:notes.txt") || !slices.Contains(notes, "export.ova#current:notes.txt~2") || !slices.ContainsFunc(notes, func(id string) bool { return strings.HasPrefix(id, "export.ova#current:disk1.vmdk~") }) {
		t.Fatalf("views %q, errors %v: want both notes.txt and the earlier disk1.vmdk as files", notes, im.Errors)
	}

	// A GNU sparse member appended (an NVRAM file with a hole).
	nvram := filepath.Join(dir, "nvram.bin")
	testutil.Run(t, "truncate", "-s", "1M", nvram)
	f, _ := os.OpenFile(nvram, os.O_WRONLY, 0)
	f.WriteAt([]byte(secret), 512<<10)
	f.Close()
	// Appending to the ustar archive would store it whole: a GNU tar of
	// the OVA's members, then the member appended with tar -S.
	sparse := filepath.Join(t.TempDir(), "sparse.ova")
	testutil.Run(t, "tar", "--format=gnu", "-cf", sparse, "-C", dir, "export.ovf", "disk1.vmdk")
	testutil.Run(t, "tar", "--format=gnu", "-S", "-rf", sparse, "-C", dir, "nvram.bin")
	im, err = OpenWith(context.Background(), sparse, model.Options{}, Config{TempDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	if len(im.Errors) != 1 || !strings.Contains(im.Errors[0].Error(), `member "nvram.bin" is a GNU sparse file`) {
		t.Errorf("errors %v, want the sparse member's", im.Errors)
	}
}

// TestOVAChunkMissing: a chunked disk whose middle chunk is missing is an
// error (the disk ends there; the chunks after it are no part of it), so
// that a scan of the OVA fails closed; it read a short disk before.
func TestOVAChunkMissing(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "tar", "split")
	dir := t.TempDir()
	disk, _ := makeDisk(t, dir)
	testutil.Run(t, "split", "-b", "50000", "-d", "-a", "9", disk, filepath.Join(dir, "disk1.vmdk."))
	// The chunk before the last: the disk's metadata and first grains are
	// in the chunks before it.
	all := chunks(t, dir)
	if len(all) < 3 {
		t.Fatalf("%d chunks", len(all))
	}
	gone := all[len(all)-2]
	os.Remove(filepath.Join(dir, gone))
	os.WriteFile(filepath.Join(dir, "export.ovf"), []byte(ovfText("disk1.vmdk", `ovf:chunkSize="50000"`, 3<<20)), 0o644)
	ova := filepath.Join(t.TempDir(), "export.ova")
	testutil.Run(t, "tar", append([]string{"--format=ustar", "-cf", ova, "-C", dir, "export.ovf"}, chunks(t, dir)...)...)
	im, err := OpenWith(context.Background(), ova, model.Options{}, Config{TempDir: t.TempDir()})
	if err == nil {
		defer im.Close()
	}
	msg := fmt.Sprint(err)
	if im != nil {
		msg += fmt.Sprint(im.Errors)
	}
	if !strings.Contains(msg, "chunk "+gone+" is missing") {
		t.Errorf("open: %s; want the missing chunk named", msg)
	}
}
