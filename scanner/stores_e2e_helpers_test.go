package scanner_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// Helpers for the store end-to-end tests (stores_e2e_test.go): a guest
// filesystem edited with debugfs whose changes reach a disk image chain the
// way a running guest's writes reach its top overlay, files written at test
// time by the real tools, and lookups in the report.

// syncChunk is the granularity of the copies into overlays, as in
// testdata/demo/make-demo.sh: a qcow2 cluster.
const syncChunk = 64 << 10

// guestFS is an ext4 filesystem image being edited, with its contents at
// the last sync into a disk image, so that only changed chunks are written
// to the overlay above.
type guestFS struct {
	t    *testing.T
	dir  string // scratch directory
	img  string // the ext4 image (raw)
	prev []byte // its bytes at the last sync
}

// newGuestFS makes an ext4 filesystem of sizeMiB from the files under root
// (mkfs.ext4 -d), with 4 KiB blocks and initialised inode tables so that
// the bytes do not change under us.
func newGuestFS(t *testing.T, root string, sizeMiB int) *guestFS {
	t.Helper()
	dir := t.TempDir()
	g := &guestFS{t: t, dir: dir, img: filepath.Join(dir, "fs.raw")}
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-E", "lazy_itable_init=0,lazy_journal_init=0",
		"-d", root, g.img, strconv.Itoa(sizeMiB)+"M")
	g.prev = g.bytes()
	return g
}

func (g *guestFS) bytes() []byte {
	g.t.Helper()
	b, err := os.ReadFile(g.img)
	if err != nil {
		g.t.Fatal(err)
	}
	return b
}

// clone is a second guest started from the same disk (a VM cloned from a
// base image): edits to one do not reach the other.
func (g *guestFS) clone() *guestFS {
	g.t.Helper()
	c := &guestFS{t: g.t, dir: g.t.TempDir(), prev: slices.Clone(g.prev)}
	c.img = filepath.Join(c.dir, "fs.raw")
	if err := os.WriteFile(c.img, g.bytes(), 0o644); err != nil {
		g.t.Fatal(err)
	}
	return c
}

// debugfs runs debugfs commands against the filesystem, writing.
func (g *guestFS) debugfs(cmds ...string) {
	g.t.Helper()
	f := filepath.Join(g.dir, "cmds")
	if err := os.WriteFile(f, []byte(strings.Join(cmds, "\n")+"\n"), 0o644); err != nil {
		g.t.Fatal(err)
	}
	out := testutil.Run(g.t, "debugfs", "-w", "-f", f, g.img)
	// debugfs exits 0 when a command fails; it echoes each command as
	// "debugfs: CMD" and reports a failure on a line of its own.
	for _, l := range strings.Split(string(out), "\n") {
		if l == "" || strings.HasPrefix(l, "debugfs ") || strings.HasPrefix(l, "debugfs: ") || strings.HasPrefix(l, "Allocated inode: ") {
			continue
		}
		g.t.Fatalf("debugfs %q: %s", cmds, l)
	}
}

// write creates guestPath (its directory must exist) holding data.
func (g *guestFS) write(guestPath string, data []byte) {
	g.t.Helper()
	host := filepath.Join(g.dir, "put")
	if err := os.WriteFile(host, data, 0o600); err != nil {
		g.t.Fatal(err)
	}
	g.debugfs("write " + host + " " + guestPath)
}

// shred overwrites the blocks of guestPath and removes it, as `shred -u`
// does: afterwards no copy is left in this filesystem.
func (g *guestFS) shred(guestPath string) {
	g.t.Helper()
	out := testutil.Run(g.t, "debugfs", "-R", "blocks "+guestPath, g.img)
	var cmds []string
	for _, f := range strings.Fields(string(out)) {
		if _, err := strconv.ParseUint(f, 10, 64); err == nil {
			cmds = append(cmds, "zap_block -p 0x2e "+f)
		}
	}
	if len(cmds) == 0 {
		g.t.Fatalf("%s: no blocks to shred (%q)", guestPath, out)
	}
	g.debugfs(append(cmds, "rm "+guestPath)...)
}

// syncTo writes every 64 KiB chunk that changed since the last sync into
// the image (qemu-io write -s, through the image's format driver), so the
// image's top layer holds exactly the guest's writes since then.
func (g *guestFS) syncTo(image, format string) {
	g.t.Helper()
	cur := g.bytes()
	args := []string{"-f", format}
	for off := 0; off < len(cur); off += syncChunk {
		end := min(off+syncChunk, len(cur))
		if bytes.Equal(cur[off:end], g.prev[off:end]) {
			continue
		}
		chunk := filepath.Join(g.dir, fmt.Sprintf("chunk.%d", off))
		if err := os.WriteFile(chunk, cur[off:end], 0o644); err != nil {
			g.t.Fatal(err)
		}
		args = append(args, "-c", fmt.Sprintf("write -q -s %s %d %d", chunk, off, end-off))
	}
	if len(args) > 2 {
		testutil.Run(g.t, "qemu-io", append(args, image)...)
	}
	g.prev = cur
}

// sshKey generates a key with ssh-keygen into dir/name and returns the
// path of the private key. pem selects the PEM (SEC1/PKCS#1) encoding.
func sshKey(t *testing.T, dir, name, typ, comment string, pem bool) string {
	t.Helper()
	p := filepath.Join(dir, name)
	args := []string{"-q", "-t", typ, "-N", "", "-C", comment, "-f", p}
	if pem {
		args = append(args, "-m", "PEM")
	}
	testutil.Run(t, "ssh-keygen", args...)
	return p
}

// randomFrom returns n random characters of alphabet.
func randomFrom(t *testing.T, alphabet string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// awsCredentials returns a synthetic AWS credentials file and its secret
// access key (the fingerprinted value of aws-access-key-pair).
func awsCredentials(t *testing.T) (file []byte, secret string) {
	id := "AKIA" + randomFrom(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
	secret = randomFrom(t, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+", 40)
	return fmt.Appendf(nil, "[default]\naws_access_key_id = %s\naws_secret_access_key = %s\nregion = eu-west-1\n", id, secret), secret
}

// writeTree writes files (root-relative path → content) under root.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, c, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// mkdirs creates directories under root.
func mkdirs(t *testing.T, root string, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

// libvirtSave wraps a QEMU migration stream as libvirt writes a save file
// (qemu_saveimage.h virQEMUSaveHeader: magic[16], version, data_len,
// was_running, compressed, cookieOffset, unused[14], all uint32 in host
// order, then data_len bytes of domain XML padded with NULs, then the raw
// stream).
func libvirtSave(t *testing.T, path, domainXML, stream string) {
	t.Helper()
	mig, err := os.ReadFile(stream)
	if err != nil {
		t.Fatal(err)
	}
	libvirtSavePayload(t, path, domainXML, 0, mig)
}

// libvirtSavePayload writes a libvirt save file whose payload is mig,
// compressed as format says (virQEMUSaveFormat: 0 raw, 1 gzip, 2 bzip2,
// 3 xz, 4 lzop, 5 zstd; the caller compresses).
func libvirtSavePayload(t *testing.T, path, domainXML string, format uint32, mig []byte) {
	t.Helper()
	// libvirt leaves NUL padding after the XML so that it can be edited in
	// place later (virsh save-image-edit); the reader stops at the NUL.
	xml := make([]byte, len(domainXML)+1024)
	copy(xml, domainXML)
	h := make([]byte, 92)
	copy(h, "LibvirtQemudSave")
	le := binary.LittleEndian
	le.PutUint32(h[16:], 2)                // version
	le.PutUint32(h[20:], uint32(len(xml))) // data_len
	le.PutUint32(h[24:], 1)                // was_running
	le.PutUint32(h[28:], format)           // the payload's compression
	var b bytes.Buffer
	b.Write(h)
	b.Write(xml)
	b.Write(mig)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// treeSums hashes every regular file under dir, to prove the scan wrote
// nothing.
func treeSums(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[p] = sha256.Sum256(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// findingByFP returns the detector finding with the fingerprint (not the
// derived rollback-risk or cloned-identity ones).
func findingByFP(rep *report.Report, fp string) *report.Finding {
	for i := range rep.Findings {
		f := &rep.Findings[i]
		if f.Fingerprint == fp && f.Category != report.CategoryRollbackRisk && f.Category != report.CategoryClonedIdentity {
			return f
		}
	}
	return nil
}

func timelineOf(rep *report.Report, vm string) *report.Timeline {
	for i := range rep.Timelines {
		if rep.Timelines[i].VM == vm {
			return &rep.Timelines[i]
		}
	}
	return nil
}

func rowOf(tl *report.Timeline, fp string) *report.TimelineRow {
	for i := range tl.Secrets {
		if tl.Secrets[i].Fingerprint == fp {
			return &tl.Secrets[i]
		}
	}
	return nil
}

func pointOf(tl *report.Timeline, view string) *report.TimelinePoint {
	for i := range tl.Points {
		if tl.Points[i].View == view {
			return &tl.Points[i]
		}
	}
	return nil
}

// describeTimelines renders the timelines for failure messages (labels,
// kinds, views and which secrets are where; fingerprints only).
func describeTimelines(rep *report.Report) string {
	var b strings.Builder
	for _, tl := range rep.Timelines {
		fmt.Fprintf(&b, "\n  VM %s targets %v", tl.VM, tl.Targets)
		for _, p := range tl.Points {
			ts := "-"
			if p.Time != nil {
				ts = p.Time.Format("2006-01-02T15:04:05Z")
			}
			fmt.Fprintf(&b, "\n    point %-10s %-12q %s %s", p.Kind, p.Label, ts, p.View)
		}
		for _, r := range tl.Secrets {
			fmt.Fprintf(&b, "\n    secret %s %s present %v current %v", r.Rule, r.Fingerprint[:15], r.Present, r.Current)
		}
	}
	return b.String()
}
