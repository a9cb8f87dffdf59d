package scanner_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// freshKey makes a fresh ed25519 key with ssh-keygen and returns its file's
// bytes; the fingerprint is of the PEM block without the last newline.
func freshKey(t *testing.T, dir, name string) []byte {
	t.Helper()
	f := filepath.Join(dir, "key-"+name)
	testutil.Run(t, "ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", f)
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func findingOf(t *testing.T, r *report.Report, fingerprint string) *report.Finding {
	t.Helper()
	for i := range r.Findings {
		if r.Findings[i].Fingerprint == fingerprint && r.Findings[i].Category != report.CategoryRollbackRisk {
			return &r.Findings[i]
		}
	}
	t.Fatalf("no finding %s:%s", fingerprint, summary(r))
	return nil
}

func chainText(l report.Location) string { return report.DecodedText(l) }

func scanFile(t *testing.T, opts scanner.Options, img string) *report.Report {
	t.Helper()
	before := testutil.FileSnapshot(t, img)
	if opts.Engine == nil {
		opts.Engine = newEngine(t)
	}
	rep, err := scanner.New(opts).Scan(context.Background(), []string{img})
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	if !bytes.Equal(before, testutil.FileSnapshot(t, img)) {
		t.Fatal("the image changed during the scan")
	}
	return rep
}

// TestDecodedContent builds an ext4 image (mkfs.ext4 -d) whose files are
// compressed and archived by the real tools, each holding a fresh key, and
// a deleted .gz in free blocks (debugfs rm). Each key is found with its
// container's path, state and exposure and the chain that reached it;
// --no-decode finds none of them.
func TestDecodedContent(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "debugfs", "ssh-keygen", "gzip", "xz", "zstd", "bzip2", "lz4", "zip", "tar", "cpio", "mksquashfs")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	log := strings.Repeat("Dec  6 10:00:01 web01 sshd[811]: Accepted publickey for deploy\n", 40)
	cases := []struct {
		name   string
		path   string // the container, in the guest
		script string // makes root/PATH from the key in key.pem (cwd dir)
		chain  string
		offset int64 // decoded_offset of the key; -1: not checked
		state  string
		expo   string
	}{
		{"rotated log, gzip", "/var/log/auth.log.2.gz", "(printf '%s' \"$LOG\"; cat key.pem) | gzip -9 > root/var/log/auth.log.2.gz", "gzip", int64(len(log)), "allocated", "live"},
		{"rotated log, xz", "/var/log/syslog.3.xz", "(printf '%s' \"$LOG\"; cat key.pem) | xz > root/var/log/syslog.3.xz", "xz", int64(len(log)), "allocated", "live"},
		{"zstd", "/var/log/journal.txt.zst", "(printf '%s' \"$LOG\"; cat key.pem) | zstd -q > root/var/log/journal.txt.zst", "zstd", int64(len(log)), "allocated", "live"},
		{"bzip2", "/root/key.bz2", "bzip2 -c key.pem > root/root/key.bz2", "bzip2", 0, "allocated", "live"},
		{"lz4", "/root/key.lz4", "lz4 -q -c key.pem > root/root/key.lz4", "lz4", 0, "allocated", "live"},
		{"zip", "/home/alice/keys.zip", "mkdir -p z/.ssh && cp key.pem z/.ssh/id_ed25519 && (cd z && zip -q -r ../keys.zip .ssh) && mv keys.zip root/home/alice/", "zip member .ssh/id_ed25519", 0, "allocated", "live"},
		{"tar.gz backup", "/home/alice/backup.tar.gz", "mkdir -p b/home/alice/.ssh && cp key.pem b/home/alice/.ssh/id_ed25519 && tar -C b -czf root/home/alice/backup.tar.gz home", "gzip > tar member home/alice/.ssh/id_ed25519", 0, "allocated", "live"},
		// As mkinitramfs writes it: an uncompressed early cpio
		// (microcode), then the main cpio compressed.
		{"initramfs", "/boot/initrd.img-6.1.0-13-amd64", "mkdir -p early/kernel/x86/microcode i/etc/dropbear && echo ucode > early/kernel/x86/microcode/AuthenticAMD.bin && cp key.pem i/etc/dropbear/dropbear_ed25519_host_key && " +
			"(cd early && find . | cpio -o -H newc --quiet) > root/boot/initrd.img-6.1.0-13-amd64 && (cd i && find . | cpio -o -H newc --quiet | zstd -q -19) >> root/boot/initrd.img-6.1.0-13-amd64",
			"zstd > cpio member etc/dropbear/dropbear_ed25519_host_key", 0, "allocated", "live"},
		{"snap (squashfs)", "/var/lib/snapd/snaps/app_1.snap", "mkdir -p s/etc/app && cp key.pem s/etc/app/server.key && mksquashfs s root/var/lib/snapd/snaps/app_1.snap -quiet -no-progress -comp xz >/dev/null", "squashfs member etc/app/server.key", 0, "allocated", "live"},
		{"deleted .gz in free blocks", "/var/tmp/old-credentials.gz", "(printf '%s' \"$LOG\"; cat key.pem) | gzip > root/var/tmp/old-credentials.gz", "gzip", int64(len(log)), "free", "deleted"},
	}
	keys := map[string][]byte{}
	for i, c := range cases {
		keys[c.name] = freshKey(t, dir, fmt.Sprint(i))
		if err := os.MkdirAll(filepath.Join(root, filepath.Dir(c.path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "key.pem"), keys[c.name], 0o600); err != nil {
			t.Fatal(err)
		}
		testutil.Bash(t, dir, "export LOG='"+log+"'; "+c.script)
	}
	// One key both raw and inside a .gz: one finding, both places.
	both := freshKey(t, dir, "both")
	if err := os.MkdirAll(filepath.Join(root, "etc/app"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(root, "etc/app/tls.key"), both, 0o600)
	os.WriteFile(filepath.Join(dir, "key.pem"), both, 0o600)
	testutil.Bash(t, dir, "gzip -c key.pem > root/root/tls.key.gz")

	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-d", root, img, "64M")
	testutil.Run(t, "debugfs", "-w", "-R", "rm /var/tmp/old-credentials.gz", img)

	rep := scanFile(t, scanner.Options{}, img)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := findingOf(t, rep, fp(bytes.TrimRight(keys[c.name], "\n")))
			var got []string
			ok := false
			for _, l := range f.Locations {
				got = append(got, fmt.Sprintf("%s %q %s %s @%v", l.Path, chainText(l), l.State, l.Exposure, l.DecodedOffset))
				if chainText(l) != c.chain || l.State != c.state || l.Exposure != c.expo || l.DecodedOffset == nil {
					continue
				}
				if c.state == "allocated" && l.Path != c.path {
					continue
				}
				if c.offset >= 0 && *l.DecodedOffset != c.offset {
					t.Errorf("decoded offset %d, want %d", *l.DecodedOffset, c.offset)
				}
				ok = true
			}
			if !ok {
				t.Errorf("no location %s %q %s %s; got %q", c.path, c.chain, c.state, c.expo, got)
			}
			if c.expo == "deleted" && !f.OutsideGuestControl {
				t.Errorf("a key in free blocks is not outside the guest's control")
			}
		})
	}
	f := findingOf(t, rep, fp(bytes.TrimRight(both, "\n")))
	if len(f.Locations) != 2 || !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path == "/etc/app/tls.key" && l.Decoded == nil }) ||
		!slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path == "/root/tls.key.gz" && chainText(l) == "gzip" }) {
		t.Errorf("raw and decoded copies of one key: %+v", f.Locations)
	}
	cur := rep.Targets[0].Views[0]
	if cur.Decoding == nil || cur.Decoding.Containers < int64(len(cases)) || len(cur.Decoding.Skipped) > 0 {
		t.Errorf("view decoding counts %+v", cur.Decoding)
	}

	// --no-decode: raw bytes only.
	plain := scanFile(t, scanner.Options{NoDecode: true}, img)
	for _, f := range plain.Findings {
		for _, l := range f.Locations {
			if l.Decoded != nil {
				t.Errorf("--no-decode gave a decoded location %+v", l)
			}
		}
	}
	for _, c := range cases {
		for _, f := range plain.Findings {
			if f.Fingerprint == fp(bytes.TrimRight(keys[c.name], "\n")) && c.name != "zip" && c.name != "snap (squashfs)" {
				t.Errorf("--no-decode found %s", c.name)
			}
		}
	}
	if plain.Targets[0].Views[0].Decoding != nil {
		t.Errorf("--no-decode counts decoding: %+v", plain.Targets[0].Views[0].Decoding)
	}
}

// TestCompressedClusterSlack: qemu-img convert -c writes compressed
// clusters back to back; qemu-io then overwrites the one holding a key,
// whose old deflate stream stays in a host cluster that other compressed
// clusters still use. The key is found there, unreferenced, decoded from
// raw deflate (and from zstd with compression_type=zstd); the current
// state no longer has it.
func TestCompressedClusterSlack(t *testing.T) {
	testutil.RequireTool(t, "qemu-img", "qemu-io", "ssh-keygen", "python3")
	for _, c := range []struct{ name, opts, codec string }{
		{"zlib", "cluster_size=65536", "deflate"},
		{"zstd", "cluster_size=65536,compression_type=zstd", "zstd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			key := freshKey(t, dir, "slack")
			os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
			// 16 clusters of log-like text that compress to a few KB each;
			// the key in cluster 5, amid random lines (so that its stream
			// is not short).
			testutil.Bash(t, dir, `python3 - <<'EOF'
import random
random.seed(7)
words = [b"alpha", b"beta", b"gamma", b"delta", b"error", b"warning", b"session", b"opened"]
out = b""
for i in range(16):
    blk = b" ".join(random.choice(words) + str(random.randrange(10**6)).encode() for _ in range(12000))
    if i == 5:
        blk = open("key.pem", "rb").read() + blk
    out += blk[:65536].ljust(65536, b".")
open("disk.raw", "wb").write(out)
EOF`)
			img := filepath.Join(dir, "disk.qcow2")
			testutil.Run(t, "qemu-img", "convert", "-c", "-O", "qcow2", "-o", c.opts, filepath.Join(dir, "disk.raw"), img)
			testutil.Run(t, "qemu-io", "-c", "write -P 0x41 327680 65536", img)
			rep := scanFile(t, scanner.Options{}, img)
			f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
			for _, l := range f.Locations {
				if l.Exposure != report.ExposureUnreferenced || chainText(l) != c.codec || l.ViewKind != "unreferenced" {
					t.Errorf("location %+v: want unreferenced, decoded %s", l, c.codec)
				}
			}
			if len(f.Locations) == 0 || !slices.Equal(f.Exposure, []string{report.ExposureUnreferenced}) {
				t.Errorf("exposure %v, locations %+v", f.Exposure, f.Locations)
			}
		})
	}
}

// TestDecodingBombs: bombs inside an ext4 image stay inside the caps, each
// counted in the view's decoding and notes, in bounded time.
func TestDecodingBombs(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zip", "tar", "gzip")
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	os.MkdirAll(filepath.Join(root, "home/mallory"), 0o755)
	testutil.Bash(t, dir, `cd root/home/mallory
head -c 20M /dev/zero > z && for i in $(seq 16); do ln z z$i; done && zip -q -9 bomb.zip z* && rm z*
echo leaf > f && tar -czf l0.tgz f && rm f && for i in $(seq 12); do tar -czf l$i.tgz l$((i-1)).tgz; rm l$((i-1)).tgz; done && mv l12.tgz deep.tar.gz
head -c 200M /dev/zero | gzip -9 > zeros.gz`)
	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "32M")
	start := time.Now()
	rep := scanFile(t, scanner.Options{}, img)
	took := time.Since(start)
	v := rep.Targets[0].Views[0]
	if v.Decoding == nil {
		t.Fatalf("no decoding counts: %+v", v)
	}
	notes := strings.Join(v.Notes, "\n")
	for _, want := range []string{"zip stream over the 100:1 expansion ratio cap", "nested deeper than 8 levels", "gzip stream over the 100:1 expansion ratio cap"} {
		if v.Decoding.Skipped[want] == 0 || !strings.Contains(notes, "not decoded in full: "+want) {
			t.Errorf("cap %q not counted: %+v; notes %q", want, v.Decoding.Skipped, notes)
		}
	}
	if v.Decoding.DecodedBytes > 256<<20 {
		t.Errorf("decoded %d bytes", v.Decoding.DecodedBytes)
	}
	t.Logf("bombs: %v, %+v", took, v.Decoding)
	if took > time.Minute {
		t.Errorf("took %v", took)
	}
}

// TestDecodedProvenance: a .gz that a package ships (its documentation)
// and package records prove unmodified is not decoded: its content is
// the package's, public, and would only yield info findings; it is
// counted in views[].decoding. The same package's other .gz, replaced
// after installation, is decoded and its key keeps the rule's severity,
// with a modified provenance. --no-downgrade (no package provenance)
// decodes both and keeps the rule's severity.
func TestDecodedProvenance(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "ssh-keygen", "gzip", "dpkg")
	dir := t.TempDir()
	key := freshKey(t, dir, "pkg")
	edited := freshKey(t, dir, "edited")
	os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
	os.WriteFile(filepath.Join(dir, "edited.pem"), edited, 0o600)
	testutil.Bash(t, dir, "gzip -9 -n -c key.pem > example.key.gz && echo '# shipped' | gzip -9 -n > other.gz")
	gz, err := os.ReadFile(filepath.Join(dir, "example.key.gz"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.ReadFile(filepath.Join(dir, "other.gz"))
	if err != nil {
		t.Fatal(err)
	}
	const path = "/usr/share/doc/libselftest/examples/example.key.gz"
	const otherPath = "/usr/share/doc/libselftest/examples/other.key.gz"
	deb := testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "libselftest", Version: "1.2-1", Files: []testutil.DebFile{{Path: path, Data: gz}, {Path: otherPath, Data: other}}})
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root, deb)
	testutil.Bash(t, dir, "gzip -9 -n -c edited.pem > root"+otherPath)
	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "16M")
	for _, noDowngrade := range []bool{false, true} {
		rep := scanFile(t, scanner.Options{NoDowngrade: noDowngrade}, img)
		d := rep.Targets[0].Views[0].Decoding
		if d == nil {
			t.Fatalf("no decoding counts")
		}
		if noDowngrade {
			if d.UnmodifiedPackageFiles != 0 {
				t.Errorf("--no-downgrade: %d unmodified package files not decoded", d.UnmodifiedPackageFiles)
			}
			f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
			if len(f.Locations) != 1 || f.Locations[0].Path != path || chainText(f.Locations[0]) != "gzip" || f.Severity == report.SeverityInfo {
				t.Errorf("--no-downgrade: %s, locations %+v", f.Severity, f.Locations)
			}
		} else {
			if d.UnmodifiedPackageFiles != 1 {
				t.Errorf("%d unmodified package files not decoded, want 1", d.UnmodifiedPackageFiles)
			}
			for _, f := range rep.Findings {
				if f.Fingerprint == fp(bytes.TrimRight(key, "\n")) {
					t.Errorf("the unmodified package file was decoded: %+v", f.Locations)
				}
			}
		}
		f := findingOf(t, rep, fp(bytes.TrimRight(edited, "\n")))
		if len(f.Locations) != 1 || f.Locations[0].Path != otherPath || chainText(f.Locations[0]) != "gzip" || f.Severity == report.SeverityInfo {
			t.Errorf("modified package file: %s, locations %+v", f.Severity, f.Locations)
		}
		if !noDowngrade && (len(f.Provenance) != 1 || !f.Provenance[0].Modified) {
			t.Errorf("modified package file: provenance %+v", f.Provenance)
		}
	}
}

// TestCarvedStreams: compressed streams and zips that no file holds any
// more are found by their magic numbers at a page or cluster boundary and
// decoded from there: in saved RAM (a VMware .vmem holding a key
// compressed by gzip, zstd, bzip2, xz and zip, written at page boundaries
// among random bytes with dd), and in a qcow2's unreferenced clusters (a
// .gz qemu-io wrote into a cluster that only a snapshot kept, then the
// snapshot deleted without discarding its clusters, as the demo's "tmp").
func TestCarvedStreams(t *testing.T) {
	testutil.RequireTool(t, "ssh-keygen", "gzip", "zstd", "bzip2", "xz", "zip", "dd", "qemu-img", "qemu-io")
	t.Run("RAM", func(t *testing.T) {
		dir := t.TempDir()
		key := freshKey(t, dir, "ram")
		os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
		testutil.Bash(t, dir, `head -c 8M /dev/urandom > ram.vmem
put() { dd of=ram.vmem bs=4096 seek=$1 conv=notrunc status=none; }
gzip -c key.pem | put 300; zstd -q -c key.pem | put 900; bzip2 -c key.pem | put 1200; xz -c key.pem | put 1500; zip -q - key.pem | put 1700`)
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "ram.vmem"))
		f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
		var got []string
		for _, l := range f.Locations {
			if l.Exposure != report.ExposureMemory || l.Offset%4096 != 0 {
				t.Errorf("location %+v", l)
			}
			got = append(got, fmt.Sprintf("%d:%s", l.Offset/4096, chainText(l)))
		}
		slices.Sort(got)
		if want := []string{"1200:bzip2", "1500:xz", "1700:zip member key.pem", "300:gzip", "900:zstd"}; !slices.Equal(got, want) {
			t.Errorf("locations %q, want %q", got, want)
		}
		if d := rep.Targets[0].Views[0].Decoding; d == nil || d.Containers != 5 || len(d.Skipped) != 0 {
			t.Errorf("decoding %+v: trailing random bytes are no corruption", d)
		}
	})
	t.Run("back to back", func(t *testing.T) {
		// Files compressed one by one lie back to back in RAM, each from
		// a page start (a kernel's .ko.xz modules in the page cache), and
		// so do deleted files in free blocks. Each stream is decoded
		// once, from its own start: a key is found at its own page only,
		// and the view decodes each key's bytes once. Decoders follow
		// concatenated streams, so each stream was decoded again from
		// every start before it. A second gzip member that does not start
		// on a sector boundary has no magic number noted: it is read with
		// the first.
		dir := t.TempDir()
		codecs := []struct{ name, cmd string }{{"gzip", "gzip -c"}, {"xz", "xz -c"}, {"zstd", "zstd -q -c"}, {"bzip2", "bzip2 -c"}}
		const perCodec = 6
		var script strings.Builder
		script.WriteString("head -c 8M /dev/urandom > ram.vmem\n: > run\n")
		keys := map[string]string{} // fingerprint: "codec:page"
		var keyBytes int64
		page := 0
		for _, c := range codecs {
			for i := range perCodec {
				name := fmt.Sprintf("%s-%d", c.name, i)
				key := freshKey(t, dir, name)
				keyBytes += int64(len(key))
				os.WriteFile(filepath.Join(dir, name+".pem"), key, 0o600)
				keys[fp(bytes.TrimRight(key, "\n"))] = fmt.Sprintf("%s:%d", c.name, 100+page)
				// Each stream padded with zeros to its pages' end.
				fmt.Fprintf(&script, "%s %s.pem > s && truncate -s %%4096 s && cat s >> run\n", c.cmd, name)
				page++
			}
		}
		two := [2][]byte{freshKey(t, dir, "member-1"), freshKey(t, dir, "member-2")}
		os.WriteFile(filepath.Join(dir, "m1.pem"), two[0], 0o600)
		os.WriteFile(filepath.Join(dir, "m2.pem"), two[1], 0o600)
		keyBytes += int64(len(two[0]) + len(two[1]))
		script.WriteString("dd if=run of=ram.vmem bs=4096 seek=100 conv=notrunc status=none\n")
		script.WriteString("cat <(gzip -c m1.pem) <(gzip -c m2.pem) | dd of=ram.vmem bs=4096 seek=1000 conv=notrunc status=none\n")
		testutil.Bash(t, dir, script.String())
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "ram.vmem"))
		for fpr, want := range keys {
			f := findingOf(t, rep, fpr)
			var got []string
			for _, l := range f.Locations {
				got = append(got, fmt.Sprintf("%s:%d", chainText(l), l.Offset/4096))
			}
			if len(got) != 1 || got[0] != want {
				t.Errorf("key at %s: locations %q", want, got)
			}
		}
		for i, k := range two {
			f := findingOf(t, rep, fp(bytes.TrimRight(k, "\n")))
			if len(f.Locations) != 1 || f.Locations[0].Offset != 1000*4096 || chainText(f.Locations[0]) != "gzip" {
				t.Errorf("gzip member %d: locations %+v", i+1, f.Locations)
			}
		}
		d := rep.Targets[0].Views[0].Decoding
		if d == nil || d.DecodedBytes != keyBytes || d.Containers != int64(len(keys)+1) || len(d.Skipped) != 0 {
			t.Errorf("decoding %+v, want %d containers decoding %d bytes, each key's once", d, len(keys)+1, keyBytes)
		}
	})
	t.Run("a magic number inside a stream", func(t *testing.T) {
		// gzip stores incompressible data as is, so a gzip stream can
		// hold gzip's magic number on a sector boundary, here with flags
		// that no gzip header has. It does not end the carved stream: the
		// key in a later block is found, decoded.
		testutil.RequireTool(t, "python3")
		dir := t.TempDir()
		key := freshKey(t, dir, "stored")
		os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
		testutil.Bash(t, dir, `set -e
python3 -c '
import os
d = bytearray(os.urandom(60000))
d[1009:1013] = b"\x1f\x8b\x08\xe0"  # at 1024 of the gzip stream: 10 bytes of header, 5 of stored block
k = open("key.pem", "rb").read()
d[40000:40000+len(k)] = k  # in a later deflate block
open("data", "wb").write(d)'
gzip -n -c data > data.gz
head -c 8M /dev/urandom > ram.vmem
dd if=data.gz of=ram.vmem bs=4096 seek=600 conv=notrunc status=none`)
		gz, err := os.ReadFile(filepath.Join(dir, "data.gz"))
		if err != nil || len(gz) < 1028 || !bytes.Equal(gz[1024:1028], []byte{0x1f, 0x8b, 0x08, 0xe0}) {
			t.Fatalf("gzip did not store the data as is (%v)", err)
		}
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "ram.vmem"))
		f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
		var chains []string
		for _, l := range f.Locations {
			chains = append(chains, fmt.Sprintf("%d:%s", l.Offset/4096, chainText(l)))
		}
		if !slices.Contains(chains, "600:gzip") {
			t.Errorf("locations %q: the key was not found decoded from the stream at page 600", chains)
		}
	})
	t.Run("kernel modules", func(t *testing.T) {
		// A compressed ELF relocatable object (a kernel module: Debian
		// 13's .ko.xz, a .ko.gz, Ubuntu's .ko.zst) found by its magic
		// number is not decoded: it is counted in decoding.skipped, and
		// a stream beside it is decoded as before. The same object as a
		// file is decoded. The object is made by objcopy from a key, so
		// that decoding it would find the key: in RAM it is not found,
		// in the file it is.
		testutil.RequireTool(t, "objcopy", "mkfs.ext4")
		dir := t.TempDir()
		inModule := freshKey(t, dir, "module")
		beside := freshKey(t, dir, "beside")
		os.WriteFile(filepath.Join(dir, "module.pem"), inModule, 0o600)
		os.WriteFile(filepath.Join(dir, "beside.pem"), beside, 0o600)
		testutil.Bash(t, dir, `set -e
objcopy -I binary -O elf64-x86-64 -B i386:x86-64 module.pem module.o
xz -c --check=crc32 module.o > module.ko.xz
head -c 8M /dev/urandom > ram.vmem
put() { dd of=ram.vmem bs=4096 seek=$1 conv=notrunc status=none; }
put 300 < module.ko.xz; gzip -c module.o | put 320; zstd -q -c module.o | put 340; xz -c beside.pem | put 400
mkdir -p root/opt/driver && cp module.ko.xz root/opt/driver/
mkfs.ext4 -q -F -d root disk.raw 16M`)
		if obj, err := os.ReadFile(filepath.Join(dir, "module.o")); err != nil || len(obj) < 18 || obj[16] != 1 || obj[17] != 0 {
			t.Fatalf("objcopy's object is no ET_REL ELF object (%v)", err)
		}
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "ram.vmem"))
		if f := findingOf(t, rep, fp(bytes.TrimRight(beside, "\n"))); len(f.Locations) != 1 || f.Locations[0].Offset != 400*4096 || chainText(f.Locations[0]) != "xz" {
			t.Errorf("the stream beside the module: locations %+v", f.Locations)
		}
		for _, f := range rep.Findings {
			if f.Fingerprint == fp(bytes.TrimRight(inModule, "\n")) {
				t.Errorf("the module's key found in RAM at %+v: the module was decoded", f.Locations)
			}
		}
		d := rep.Targets[0].Views[0].Decoding
		if d == nil || d.Skipped[decode.SkippedKernelModule] != 3 || d.Containers != 4 {
			t.Errorf("decoding %+v, want the module, xz'd, gzip'd and zstd'd, counted as skipped three times", d)
		}
		rep = scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.raw"))
		f := findingOf(t, rep, fp(bytes.TrimRight(inModule, "\n")))
		if l := f.Locations[0]; l.Path != "/opt/driver/module.ko.xz" || chainText(l) != "xz" {
			t.Errorf("the module as a file: location %+v", l)
		}
	})
	t.Run("initramfs", func(t *testing.T) {
		// Debian 13's initramfs: the modules it boots with, xz'd, in a
		// first uncompressed cpio archive, then a compressed one with the
		// rest (a dropbear host key). A module in the file's own cpio is
		// counted and not decoded, and so is one inside the compressed
		// archive; the key is decoded.
		testutil.RequireTool(t, "objcopy", "mkfs.ext4", "cpio")
		dir := t.TempDir()
		keys := map[string][]byte{}
		for _, k := range []string{"early", "late", "dropbear"} {
			keys[k] = freshKey(t, dir, k)
			os.WriteFile(filepath.Join(dir, k+".pem"), keys[k], 0o600)
		}
		testutil.Bash(t, dir, `set -e
for k in early late; do
  objcopy -I binary -O elf64-x86-64 -B i386:x86-64 $k.pem $k.o
  xz -c --check=crc32 $k.o > $k.ko.xz
done
mkdir -p first/usr/lib/modules/6.12/kernel main/usr/lib/modules/6.12/extra main/etc/dropbear root/boot
cp early.ko.xz first/usr/lib/modules/6.12/kernel/
cp late.ko.xz main/usr/lib/modules/6.12/extra/
cp dropbear.pem main/etc/dropbear/dropbear_ed25519_host_key
(cd first && find . | cpio -o -H newc --quiet) > root/boot/initrd.img
(cd main && find . | cpio -o -H newc --quiet | zstd -q) >> root/boot/initrd.img
mkfs.ext4 -q -F -d root disk.raw 16M`)
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.raw"))
		for _, f := range rep.Findings {
			if f.Fingerprint == fp(bytes.TrimRight(keys["early"], "\n")) || f.Fingerprint == fp(bytes.TrimRight(keys["late"], "\n")) {
				t.Errorf("a module was decoded: %+v", f.Locations)
			}
		}
		f := findingOf(t, rep, fp(bytes.TrimRight(keys["dropbear"], "\n")))
		if l := f.Locations[0]; l.Path != "/boot/initrd.img" || chainText(l) != "zstd > cpio member etc/dropbear/dropbear_ed25519_host_key" {
			t.Errorf("dropbear: location %s %q", l.Path, chainText(l))
		}
		d := rep.Targets[0].Views[0].Decoding
		if d == nil || d.Skipped[decode.SkippedKernelModule] != 2 {
			t.Errorf("decoding %+v, want both kernel modules counted", d)
		}
	})
	t.Run("kernel modules in archives", func(t *testing.T) {
		// Compressed kernel modules that are members of a compressed
		// archive, as a kernel package (a .deb's data.tar.xz) or a
		// .tar.gz of modules holds them, are counted and not decoded: an
		// xz one (probed from its first 64 KiB, also one whose first
		// LZMA2 chunk fills them) and a gzip or zstd one (left after
		// their first decoded bytes). A key beside them is decoded.
		testutil.RequireTool(t, "objcopy", "mkfs.ext4", "dpkg-deb", "python3")
		dir := t.TempDir()
		keys := map[string][]byte{}
		for _, k := range []string{"small", "big", "gz", "zst", "tgz", "beside"} {
			keys[k] = freshKey(t, dir, k)
			os.WriteFile(filepath.Join(dir, k+".pem"), keys[k], 0o600)
		}
		testutil.Bash(t, dir, `set -e
python3 -c 'import os; open("big.bin", "wb").write(os.urandom(300000) + open("big.pem", "rb").read())'
objcopy -I binary -O elf64-x86-64 -B i386:x86-64 big.bin big.o
for k in small gz zst tgz; do objcopy -I binary -O elf64-x86-64 -B i386:x86-64 $k.pem $k.o; done
m=pkg/usr/lib/modules/6.12.0-custom/kernel/drivers
mkdir -p pkg/DEBIAN pkg/usr/share $m tgz/extra root/root
printf 'Package: linux-image-custom
Version: 1
Architecture: all
Maintainer: t <t@example.invalid>
Description: t
' > pkg/DEBIAN/control
xz -c --check=crc32 --lzma2=dict=1MiB small.o > $m/small.ko.xz
xz -c --check=crc32 --lzma2=dict=1MiB big.o > $m/big.ko.xz
gzip -n -c gz.o > $m/gz.ko.gz
zstd -q -c zst.o > $m/zst.ko.zst
xz -c beside.pem > pkg/usr/share/beside.pem.xz
dpkg-deb -Zxz --build pkg root/root/linux-image-custom.deb >/dev/null
zstd -q -c tgz.o > tgz/extra/tgz.ko.zst
tar -C tgz -czf root/root/modules.tar.gz extra
mkfs.ext4 -q -F -d root disk.raw 16M`)
		if fi, err := os.Stat(filepath.Join(dir, "pkg/usr/lib/modules/6.12.0-custom/kernel/drivers/big.ko.xz")); err != nil || fi.Size() < 64<<10 {
			t.Fatalf("the big module is too small to fill the probe (%v)", err)
		}
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.raw"))
		for _, k := range []string{"small", "big", "gz", "zst", "tgz"} {
			for _, f := range rep.Findings {
				if f.Fingerprint == fp(bytes.TrimRight(keys[k], "\n")) {
					t.Errorf("module %s was decoded: %+v", k, f.Locations)
				}
			}
		}
		f := findingOf(t, rep, fp(bytes.TrimRight(keys["beside"], "\n")))
		if l := f.Locations[0]; l.Path != "/root/linux-image-custom.deb" || chainText(l) != "ar member data.tar.xz > xz > tar member usr/share/beside.pem.xz > xz" {
			t.Errorf("the key beside: location %s %q", l.Path, chainText(l))
		}
		if d := rep.Targets[0].Views[0].Decoding; d == nil || d.Skipped[decode.SkippedKernelModule] != 5 {
			t.Errorf("decoding %+v, want five kernel modules counted", d)
		}
		// The same modules as files of their own are decoded: the test's
		// objects do hold keys that decoding finds.
		testutil.Bash(t, dir, "mkdir -p files && cp -r pkg/usr tgz/extra files/ && mkfs.ext4 -q -F -d files files.raw 16M")
		rep = scanFile(t, scanner.Options{}, filepath.Join(dir, "files.raw"))
		for _, k := range []string{"small", "big", "gz", "zst", "tgz"} {
			if f := findingOf(t, rep, fp(bytes.TrimRight(keys[k], "\n"))); len(f.Locations[0].Decoded) != 1 {
				t.Errorf("module %s as a file: location %+v", k, f.Locations[0])
			}
		}
	})
	t.Run("unreferenced clusters", func(t *testing.T) {
		dir := t.TempDir()
		key := freshKey(t, dir, "unref")
		os.WriteFile(filepath.Join(dir, "key.pem"), key, 0o600)
		testutil.Bash(t, dir, `gzip -c key.pem > key.gz
qemu-img create -q -f qcow2 disk.qcow2 4M
qemu-io -c "write -s key.gz 1M $(stat -c %s key.gz)" disk.qcow2 >/dev/null
qemu-img snapshot -c old disk.qcow2
qemu-io -c "write -P 0x41 1M 64k" disk.qcow2 >/dev/null
qemu-img snapshot --image-opts -d old "driver=qcow2,file.filename=disk.qcow2,pass-discard-snapshot=off"`)
		rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.qcow2"))
		f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
		if len(f.Locations) != 1 || f.Locations[0].Exposure != report.ExposureUnreferenced || chainText(f.Locations[0]) != "gzip" {
			t.Errorf("locations %+v", f.Locations)
		}
	})
}

// TestStoredMembersScannedOnce: the plain members of an uncompressed
// archive are its own bytes, which the raw scan reads; they are scanned
// again only when the raw scan found something in the archive (so that
// the finding gets its member's name), and a stream inside a member is
// decoded either way. ext4 made by mkfs.ext4 -d holding backup.tar (a
// plain member with a key, and key.gz) and tools.a (an ar of 2 MiB of
// text and another key's .gz).
func TestStoredMembersScannedOnce(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "ssh-keygen", "gzip", "tar", "ar")
	dir := t.TempDir()
	plain, inTar, inAr := freshKey(t, dir, "plain"), freshKey(t, dir, "tar-gz"), freshKey(t, dir, "ar-gz")
	root := filepath.Join(dir, "root")
	for _, d := range []string{"src", "root/srv"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "src", "id_ed25519"), plain, 0o600)
	os.WriteFile(filepath.Join(dir, "src", "a"), inTar, 0o600)
	os.WriteFile(filepath.Join(dir, "src", "b"), inAr, 0o600)
	os.WriteFile(filepath.Join(dir, "src", "notes.txt"), bytes.Repeat([]byte("release notes, nothing secret\n"), 70000), 0o644)
	testutil.Bash(t, dir, `cd src && gzip -n -c a > a.gz && gzip -n -c b > b.gz &&
tar -cf ../root/srv/backup.tar id_ed25519 a.gz notes.txt && ar rc ../root/srv/tools.a notes.txt b.gz`)
	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "32M")
	rep := scanFile(t, scanner.Options{}, img)
	for _, c := range []struct {
		key  []byte
		path string
		want []string // the chains of its locations ("" raw)
	}{
		{plain, "/srv/backup.tar", []string{"", "tar member id_ed25519"}},
		{inTar, "/srv/backup.tar", []string{"tar member a.gz > gzip"}},
		{inAr, "/srv/tools.a", []string{"ar member b.gz > gzip"}},
	} {
		f := findingOf(t, rep, fp(bytes.TrimRight(c.key, "\n")))
		var got []string
		for _, l := range f.Locations {
			if l.Path != c.path {
				t.Errorf("location in %q, want %q", l.Path, c.path)
			}
			got = append(got, chainText(l))
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: chains %q, want %q", c.path, got, c.want)
		}
	}
	// backup.tar holds a raw finding: walked in full (3 members); in
	// tools.a the raw scan found nothing: its notes.txt is not scanned
	// again, and what is decoded is little more than the key.
	d := rep.Targets[0].Views[0].Decoding
	if d == nil || d.StoredMembersNotRescanned != 1 || d.Leaves != 4 || d.DecodedBytes > 3<<20 {
		t.Errorf("decoding %+v: want tools.a's notes.txt not scanned again, 4 leaves", d)
	}
}

// TestDecodedSameContent: files holding the same bytes in different
// places are decoded once, and a match in them is placed at each path;
// files of one size whose first blocks agree but whose bytes differ are
// decoded each on its own (grouping compares heads before hashing, and
// must not take a shared head for shared content).
func TestDecodedSameContent(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "ssh-keygen", "gzip", "tar")
	dir := t.TempDir()
	shared, first, second := freshKey(t, dir, "shared"), freshKey(t, dir, "first"), freshKey(t, dir, "second")
	root := filepath.Join(dir, "root")
	for _, d := range []string{"root/srv/a", "root/srv/b", "t1", "t2"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	os.WriteFile(filepath.Join(dir, "shared.pem"), shared, 0o600)
	filler := bytes.Repeat([]byte("build log line, nothing secret\n"), 400) // 12 KiB: past the compared head
	for i, k := range [][]byte{first, second} {
		d := filepath.Join(dir, fmt.Sprintf("t%d", i+1))
		os.WriteFile(filepath.Join(d, "build.log"), filler, 0o644)
		os.WriteFile(filepath.Join(d, "deploy.key"), k, 0o600)
	}
	testutil.Bash(t, dir, `gzip -c shared.pem > root/srv/a/creds.gz && cp root/srv/a/creds.gz root/srv/b/creds.gz &&
for i in 1 2; do tar -C t$i --mtime=@0 --owner=0 --group=0 --numeric-owner -cf root/srv/release-$i.tar build.log deploy.key; done &&
cmp -s root/srv/release-1.tar root/srv/release-2.tar && exit 1
[ $(stat -c %s root/srv/release-1.tar) = $(stat -c %s root/srv/release-2.tar) ] && cmp -s -n 8192 root/srv/release-1.tar root/srv/release-2.tar`)
	img := filepath.Join(dir, "fs.img")
	testutil.Run(t, "mkfs.ext4", "-q", "-F", "-d", root, img, "32M")
	rep := scanFile(t, scanner.Options{}, img)
	decodedAt := func(key []byte) []string {
		var out []string
		for _, l := range findingOf(t, rep, fp(bytes.TrimRight(key, "\n"))).Locations {
			if l.Decoded != nil {
				out = append(out, l.Path+" "+chainText(l))
			}
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		key  []byte
		want []string
	}{
		{shared, []string{"/srv/a/creds.gz gzip", "/srv/b/creds.gz gzip"}},
		{first, []string{"/srv/release-1.tar tar member deploy.key"}},
		{second, []string{"/srv/release-2.tar tar member deploy.key"}},
	} {
		if got := decodedAt(c.key); !slices.Equal(got, c.want) {
			t.Errorf("decoded locations %q, want %q", got, c.want)
		}
	}
	// creds.gz once, each release tar once.
	if d := rep.Targets[0].Views[0].Decoding; d == nil || d.Containers != 3 {
		t.Errorf("decoding %+v: want 3 containers decoded", d)
	}
}

// TestBtrfsCompressedFiles: on a btrfs mounted with compress-force, a
// file's bytes are only in compressed extents, so the raw scan cannot see
// a key in it. With each of btrfs's codecs, the host key (an inline
// extent) and the key in a log (past its first 128 KiB extent) are found
// at their paths, live, through the extent's codec; --no-decode finds
// neither. A deleted file's zstd extent, left in free space, is found by
// its frame's magic number: deleted.
func TestBtrfsCompressedFiles(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "mount", "ssh-keygen")
	dir := t.TempDir()
	var log strings.Builder
	for i := 0; log.Len() < 250000; i++ {
		fmt.Fprintf(&log, "Dec  6 10:%02d:%02d web01 sshd[%d]: Accepted publickey for deploy\n", i/60%60, i%60, 800+i)
	}
	for _, codec := range []string{"zstd", "zlib", "lzo"} {
		t.Run(codec, func(t *testing.T) {
			host, logged, gone := freshKey(t, dir, codec+"-host"), freshKey(t, dir, codec+"-log"), freshKey(t, dir, codec+"-gone")
			img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{
				Live: map[string][]byte{
					"/etc/ssh/ssh_host_ed25519_key": host,
					"/var/log/auth.log":             append([]byte(log.String()), logged...),
				},
				Deleted: map[string][]byte{"/tmp/old-token": append([]byte(log.String()[:20000]), gone...)},
			}, nil, "compress-force="+codec)
			rep := scanFile(t, scanner.Options{}, img)
			chain := "btrfs-" + codec
			for _, c := range []struct {
				key    []byte
				path   string
				offset int64 // in the extent's decoded bytes
			}{
				{host, "/etc/ssh/ssh_host_ed25519_key", 0},
				{logged, "/var/log/auth.log", int64(log.Len()) % (128 << 10)},
			} {
				f := findingOf(t, rep, fp(bytes.TrimRight(c.key, "\n")))
				ok := false
				var got []string
				for _, l := range f.Locations {
					got = append(got, fmt.Sprintf("%s %q %s %s @%v", l.Path, chainText(l), l.State, l.Exposure, l.DecodedOffset))
					if l.Path == c.path && chainText(l) == chain && l.State == "allocated" && l.Exposure == report.ExposureLive && l.DecodedOffset != nil && *l.DecodedOffset == c.offset {
						ok = true
					}
				}
				if !ok {
					t.Errorf("%s: no location %s %q allocated live @%d; got %q", c.path, c.path, chain, c.offset, got)
				}
			}
			if codec == "zstd" {
				f := findingOf(t, rep, fp(bytes.TrimRight(gone, "\n")))
				if !slices.ContainsFunc(f.Locations, func(l report.Location) bool {
					return chainText(l) == "zstd" && l.Exposure == report.ExposureDeleted && l.Path == ""
				}) {
					t.Errorf("the deleted file's extent: %+v", f.Locations)
				}
			}
			plain := scanFile(t, scanner.Options{NoDecode: true}, img)
			for _, f := range plain.Findings {
				for _, k := range [][]byte{host, logged} {
					if f.Fingerprint == fp(bytes.TrimRight(k, "\n")) {
						t.Errorf("--no-decode found a key that btrfs stored compressed: %+v", f.Locations)
					}
				}
			}
		})
	}
}

// TestBtrfsCompressedProvenance: on a btrfs mounted with compress-force,
// dpkg's records and a packaged file are both stored compressed. The key
// the package ships is found through its extent's codec, and the records,
// read by path through the decompressing reader, prove the file
// unmodified: info, with its package. A copy edited after installation
// keeps its severity.
func TestBtrfsCompressedProvenance(t *testing.T) {
	testutil.RequireTool(t, "mkfs.btrfs", "mount", "ssh-keygen", "dpkg", "cp")
	dir := t.TempDir()
	shipped, edited := freshKey(t, dir, "shipped"), freshKey(t, dir, "edited")
	const path, editedPath = "/usr/share/libselftest/test.key", "/usr/share/libselftest/other.key"
	deb := testutil.BuildDeb(t, dir, testutil.DebPackage{Name: "libselftest", Version: "1.2-1", Files: []testutil.DebFile{
		{Path: path, Data: shipped}, {Path: editedPath, Data: []byte("# a placeholder the admin replaced\n")},
	}})
	root := filepath.Join(dir, "root")
	testutil.DpkgInstall(t, root, deb)
	if err := os.WriteFile(filepath.Join(root, editedPath), edited, 0o600); err != nil {
		t.Fatal(err)
	}
	img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{Extra: func(mnt string) {
		testutil.Run(t, "cp", "-a", root+"/.", mnt)
		testutil.Run(t, "sync")
	}}, nil, "compress-force=zstd")
	rep := scanFile(t, scanner.Options{}, img)
	for _, c := range []struct {
		key  []byte
		path string
		info bool
	}{{shipped, path, true}, {edited, editedPath, false}} {
		f := findingOf(t, rep, fp(bytes.TrimRight(c.key, "\n")))
		if !slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path == c.path && chainText(l) == "btrfs-zstd" }) {
			t.Errorf("%s: locations %+v", c.path, f.Locations)
		}
		if got := f.Severity == report.SeverityInfo; got != c.info || len(f.Provenance) != 1 || f.Provenance[0].Package != "libselftest" || f.Provenance[0].Modified == c.info {
			t.Errorf("%s: severity %s, provenance %+v", c.path, f.Severity, f.Provenance)
		}
	}
}

// TestNTFSCompressedFiles: a key in a log that ntfs-3g wrote compressed
// (LZNT1, in a folder with the compressed attribute) is found at its path,
// live, through the filesystem's decompression, at its offset in the
// file; --no-decode does not find it in the file. A key in such a log
// that was then deleted (its MFT record intact, its clusters free) is
// found decoded from them, deleted.
func TestNTFSCompressedFiles(t *testing.T) {
	testutil.RequireTool(t, "mkntfs", "ntfs-3g", "ssh-keygen")
	dir := t.TempDir()
	key, gone := freshKey(t, dir, "ntfs"), freshKey(t, dir, "ntfs-gone")
	var log strings.Builder
	for i := 0; log.Len() < 150000; i++ {
		fmt.Fprintf(&log, "Dec  6 10:%02d:%02d web01 sshd[%d]: Accepted publickey for deploy\n", i/60%60, i%60, 800+i)
	}
	img := testutil.MakeNTFS(t, 64<<20, testutil.FSContent{Extra: func(mnt string) {
		d := filepath.Join(mnt, "Logs")
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setxattr(d, "system.ntfs_attrib_be", []byte{0, 0, 0x08, 0}, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "deploy.log"), append([]byte(log.String()), key...), 0o644); err != nil {
			t.Fatal(err)
		}
		old := filepath.Join(d, "deploy.log.1")
		if err := os.WriteFile(old, append([]byte(log.String()), gone...), 0o644); err != nil {
			t.Fatal(err)
		}
		syscall.Sync()
		if err := os.Remove(old); err != nil {
			t.Fatal(err)
		}
	}})
	rep := scanFile(t, scanner.Options{}, img)
	f := findingOf(t, rep, fp(bytes.TrimRight(key, "\n")))
	if !slices.ContainsFunc(f.Locations, func(l report.Location) bool {
		return l.Path == "/Logs/deploy.log" && chainText(l) == "ntfs-lznt1" && l.State == "allocated" && l.Exposure == report.ExposureLive &&
			l.DecodedOffset != nil && *l.DecodedOffset == int64(log.Len())
	}) {
		var got []string
		for _, l := range f.Locations {
			got = append(got, fmt.Sprintf("%s %q %s %s @%v", l.Path, chainText(l), l.State, l.Exposure, l.DecodedOffset))
		}
		t.Errorf("locations %q", got)
	}
	g := findingOf(t, rep, fp(bytes.TrimRight(gone, "\n")))
	if !slices.ContainsFunc(g.Locations, func(l report.Location) bool {
		return l.Path == "/Logs/deploy.log.1" && chainText(l) == "ntfs-lznt1" && l.State == report.StateDeletedRecord && l.Exposure == report.ExposureDeleted &&
			l.DecodedOffset != nil && *l.DecodedOffset == int64(log.Len())
	}) {
		t.Errorf("the deleted log's key: %+v", g.Locations)
	}
	// Raw, the keys are not in the files (ntfs-3g may leave a plain copy
	// in free clusters, which is found as such).
	plain := scanFile(t, scanner.Options{NoDecode: true}, img)
	for _, f := range plain.Findings {
		for _, k := range [][]byte{key, gone} {
			if f.Fingerprint == fp(bytes.TrimRight(k, "\n")) && slices.ContainsFunc(f.Locations, func(l report.Location) bool { return l.Path != "" }) {
				t.Errorf("--no-decode found a key NTFS stored compressed: %+v", f.Locations)
			}
		}
	}
}

// TestDecodedHitsNotValidated: a rule's keyword hits that the detectors
// leave unvalidated in decoded content (its budget of fruitless windows
// spent: a file of weak-password URLs, as a URL parser's tests hold them)
// are counted in the view's truncation, as the raw scan's are; they went
// uncounted before. The file is gzip'd in ext4.
func TestDecodedHitsNotValidated(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "gzip", "python3")
	dir := t.TempDir()
	testutil.Bash(t, dir, `mkdir -p root/opt && python3 -c '
import sys
for i in range(400):
    sys.stdout.write("  %d: http://user%d:pw@host%d.internal.test/path is parsed\n" % (i, i, i))
' | gzip -n > root/opt/urls.txt.gz && mkfs.ext4 -q -F -d root disk.raw 16M`)
	rep := scanFile(t, scanner.Options{}, filepath.Join(dir, "disk.raw"))
	v := rep.Targets[0].Views[0]
	if v.Decoding == nil || v.Decoding.Leaves != 1 {
		t.Fatalf("decoding %+v, want the gzip'd file decoded", v.Decoding)
	}
	if v.Truncated == nil || v.Truncated.HitsNotValidated["url-credentials"] == 0 {
		t.Errorf("truncated %+v, want url-credentials hits not validated", v.Truncated)
	}
	if s := rep.Summary.Truncated; s == nil || s.HitsNotValidated == 0 {
		t.Errorf("summary.truncated %+v", s)
	}
}
