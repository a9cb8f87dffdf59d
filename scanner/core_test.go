package scanner_test

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

// opensslCore runs `openssl enc -aes-128-cbc` with a fresh key on 256 KiB
// of its stdin, which it then waits on, and writes the running process's
// core with gdb's gcore: a real process core holding that key's AES key
// schedule. It returns the core's path and the key.
func opensslCore(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	testutil.RequireTool(t, "openssl", "gcore")
	key := make([]byte, 16)
	rand.Read(key)
	cmd := exec.Command("openssl", "enc", "-aes-128-cbc", "-K", hex.EncodeToString(key), "-iv", strings.Repeat("00", 16), "-out", os.DevNull)
	core := gcoreWhenReady(t, filepath.Join(dir, "core"), cmd, func(in io.Writer, _ io.Reader) error {
		_, err := in.Write(make([]byte, 256<<10))
		time.Sleep(200 * time.Millisecond) // encrypted, and waiting for more
		return err
	})
	return core, key
}

// gcoreWhenReady starts cmd with its stdin and stdout piped, waits until
// ready (given both) says the process holds what the test wants in
// memory, writes its core with gdb's gcore to prefix.PID and returns that
// path. The process ends when the test does (its stdin is closed).
func gcoreWhenReady(t *testing.T, prefix string, cmd *exec.Cmd, ready func(stdin io.Writer, stdout io.Reader) error) string {
	t.Helper()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		cmd.Wait()
	})
	if err := ready(in, out); err != nil {
		t.Fatalf("%s: %v", cmd.Path, err)
	}
	testutil.Run(t, "gcore", "-o", prefix, fmt.Sprint(cmd.Process.Pid))
	return fmt.Sprintf("%s.%d", prefix, cmd.Process.Pid)
}

// scheduleAt lists, sorted, where rep found the AES key schedule of key,
// each location as at writes it.
func scheduleAt(rep *report.Report, key []byte, at func(report.Location) string) []string {
	want := fmt.Sprintf("sha256:%x", sha256.Sum256(key))
	var out []string
	for _, f := range rep.Findings {
		if f.Rule == "aes-key-schedule" && f.Fingerprint == want {
			for _, l := range f.Locations {
				out = append(out, at(l))
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestProcessCores: a guest's crashed processes' cores, as they are kept
// on disk: one plain (/var/crash, a core file), one zstd'd as
// systemd-coredump stores them (/var/lib/systemd/coredump/core.*.zst).
// A real process core (gcore of openssl enc) holds the AES key schedule
// of the key the process used. Disk views are not searched for key
// schedules, and a process's core is no guest's RAM (no memory target);
// the decode pass scans such cores again with the memory rules: the key
// is found at both paths, live, the plain core's at the file's own bytes
// (no decoded chain), the compressed one's in its zstd stream; and in a
// third copy deleted (debugfs rm), in free space, deleted. With decoding
// off it is not found.
func TestProcessCores(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "zstd", "debugfs")
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	host := filepath.Join(dir, "host")
	for _, d := range []string{"var/crash", "var/lib/systemd/coredump"} {
		os.MkdirAll(filepath.Join(host, d), 0o755)
	}
	zst := "/var/lib/systemd/coredump/core.openssl.0.6d0b0c8e.4242.1700000000000000.zst"
	testutil.Bash(t, dir, fmt.Sprintf(`set -e
cp %[1]s host/var/crash/core.openssl
cp %[1]s host/var/crash/old.core
zstd -q %[1]s -o host%[2]s
mkfs.ext4 -q -F -d host host.raw 64M
debugfs -w -R "rm /var/crash/old.core" host.raw 2>/dev/null`, core, zst))
	img := filepath.Join(dir, "host.raw")
	where := func(rep *report.Report) []string {
		return scheduleAt(rep, key, func(l report.Location) string {
			var chain []string
			for _, s := range l.Decoded {
				chain = append(chain, s.Codec)
			}
			return fmt.Sprintf("%s %s %s [%s]", l.Path, l.State, l.Exposure, strings.Join(chain, " "))
		})
	}

	rep := scanFile(t, scanner.Options{}, img)
	got := where(rep)
	exp := []string{
		" free deleted []",
		"/var/crash/core.openssl allocated live []",
		zst + " allocated live [zstd]",
	}
	if !slices.Equal(got, exp) {
		t.Errorf("the key schedule at\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(exp, "\n"))
	}
	if len(rep.Targets) != 1 || !rep.Complete {
		t.Errorf("%d targets, complete %v: %q", len(rep.Targets), rep.Complete, rep.IncompleteReasons)
	}

	if got := where(scanFile(t, scanner.Options{NoDecode: true}, img)); len(got) > 0 {
		t.Errorf("NoDecode: the key schedule at %q", got)
	}
	// Nested images off: cores are still scanned (the decode pass looks
	// for their magic number on its own).
	if got := where(scanFile(t, scanner.Options{NoNestedImages: true}, img)); !slices.Equal(got, exp) {
		t.Errorf("NoNestedImages: the key schedule at %q", got)
	}
}

// TestSwapMemoryKeys: swap holds processes' paged-out memory. A disk
// (sgdisk) with an ext4 partition holding a swap file (mkswap'd, as
// Ubuntu's /swap.img) and a swap partition (mkswap), each holding, past
// its header page, a real process's memory (gcore of openssl enc with a
// fresh key, written where the kernel would page it out), and a copy of
// the swap file as Linux leaves it while hibernated to it (swsusp's
// S1SUSPEND where mkswap's magic was): the key's AES schedule is found in
// all three, the swap files' at their paths, the partition's in it, live
// (the guest can turn swap off and wipe it). Disk views do
// not run the memory rules elsewhere; with decoding off they do not run
// here either.
func TestSwapMemoryKeys(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "mkswap", "sgdisk")
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	os.MkdirAll(filepath.Join(dir, "root"), 0o755)
	testutil.Bash(t, dir, fmt.Sprintf(`set -e
truncate -s 8M root/swap.img
mkswap -q root/swap.img
dd if=%[1]s of=root/swap.img bs=4096 seek=1 conv=notrunc status=none
cp root/swap.img root/hibernated.img
printf 'S1SUSPEND\0' | dd of=root/hibernated.img bs=1 seek=4086 conv=notrunc status=none
truncate -s 16M swap.part
mkswap -q swap.part
dd if=%[1]s of=swap.part bs=4096 seek=1 conv=notrunc status=none
truncate -s 64M disk.raw
sgdisk -n 1:2048:83967 -n 2:83968:0 -t 2:8200 disk.raw >/dev/null
mkfs.ext4 -q -F -d root -E offset=1048576 disk.raw 40M
dd if=swap.part of=disk.raw bs=512 seek=83968 conv=notrunc status=none`, core))
	img := filepath.Join(dir, "disk.raw")
	where := func(rep *report.Report) []string {
		return scheduleAt(rep, key, func(l report.Location) string {
			return fmt.Sprintf("%s %s %s", l.Partition, l.Path, l.Exposure)
		})
	}
	rep := scanFile(t, scanner.Options{}, img)
	if got, exp := where(rep), []string{"p1 /hibernated.img live", "p1 /swap.img live", "p2  live"}; !slices.Equal(got, exp) {
		t.Errorf("the key schedule at %q, want %q", got, exp)
	}
	if !rep.Complete {
		t.Errorf("incomplete: %q", rep.IncompleteReasons)
	}
	// The swap files are named in their partition, and their copies'
	// remediation overwrites them in place.
	var swapFiles []string
	for _, p := range rep.Targets[0].Partitions {
		for _, f := range p.SwapFiles {
			swapFiles = append(swapFiles, p.Name+":"+f)
		}
	}
	slices.Sort(swapFiles)
	if exp := []string{"p1:/hibernated.img", "p1:/swap.img"}; !slices.Equal(swapFiles, exp) {
		t.Errorf("swap files %q, want %q", swapFiles, exp)
	}
	var commands []string
	for _, f := range rep.Findings {
		if f.Rule != "aes-key-schedule" || f.Fingerprint != fmt.Sprintf("sha256:%x", sha256.Sum256(key)) {
			continue
		}
		for _, r := range report.Remediate(rep, &f) {
			commands = append(commands, r.Command)
		}
	}
	if !slices.Contains(commands, "swapoff /swap.img && shred -n 0 -z /swap.img && mkswap /swap.img && swapon /swap.img   # in the guest") {
		t.Errorf("no swap file remediation among %q", commands)
	}
	if got := where(scanFile(t, scanner.Options{NoDecode: true}, img)); len(got) > 0 {
		t.Errorf("NoDecode: the key schedule at %q", got)
	}
}

// TestWindowsPagefile: Windows pages memory out to pagefile.sys at the
// root of its volume, raw 4 KiB pages with no header. An NTFS volume
// (mkntfs, populated through ntfs-3g) whose /pagefile.sys holds a real
// process's memory (gcore of openssl enc, a fresh key) gives that key's
// AES schedule at /pagefile.sys, live; the same bytes in a file of
// another name are a file's, not searched with the memory rules.
func TestWindowsPagefile(t *testing.T) {
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	mem, err := os.ReadFile(core)
	if err != nil {
		t.Fatal(err)
	}
	page := append(make([]byte, 4096), mem...)
	page = append(page, make([]byte, (1<<20)-len(page)%(1<<20))...)
	img := testutil.MakeNTFS(t, 64<<20, testutil.FSContent{Live: map[string][]byte{
		"pagefile.sys":       page,
		"Users/dev/dump.bin": page,
	}})
	rep := scanFile(t, scanner.Options{}, img)
	got := scheduleAt(rep, key, func(l report.Location) string { return fmt.Sprintf("%s %s %s", l.Path, l.State, l.Exposure) })
	if exp := []string{"/pagefile.sys allocated live"}; !slices.Equal(got, exp) {
		t.Errorf("the key schedule at %q, want %q", got, exp)
	}
}

// TestApportCrashReport: Ubuntu keeps a crashed process's core in its
// crash report (/var/crash/*.crash), base64 lines of a gzip stream in the
// CoreDump field, where no raw byte of it shows. A report written as
// apport writes it (decode's TestApport says how; apport is not in this
// machine's mirror) around a real process's core (gcore of openssl enc,
// a fresh key), in ext4: the key's AES schedule is found in the report,
// live, its chain the CoreDump field, then gzip.
func TestApportCrashReport(t *testing.T) {
	testutil.RequireTool(t, "mkfs.ext4", "python3")
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	os.MkdirAll(filepath.Join(dir, "root/var/crash"), 0o755)
	// The same layout as decode's apportReport, from Python's zlib: the
	// gzip header naming the key, each 1 MiB block's deflate output on a
	// line of its own, the rest with gzip's trailer.
	testutil.Bash(t, dir, `set -e
python3 - `+core+` root/var/crash/_usr_bin_openssl.0.crash <<'PY'
import base64, sys, zlib, struct
core, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as f:
    f.write(b"ProblemType: Crash\nExecutablePath: /usr/bin/openssl\nProcStatus:\n Name:\topenssl\n State:\tS (sleeping)\n")
    f.write(b"CoreDump: base64\n ")
    f.write(base64.b64encode(b"\037\213\010\010\000\000\000\000\002\377CoreDump\000") + b"\n ")
    bc = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL, 0)
    crc, size = zlib.crc32(b""), 0
    with open(core, "rb") as c:
        while True:
            block = c.read(1048576)
            if not block:
                break
            size += len(block)
            crc = zlib.crc32(block, crc)
            o = bc.compress(block)
            if o:
                f.write(base64.b64encode(o) + b"\n ")
    last = bc.flush() + struct.pack("<L", crc & 0xffffffff) + struct.pack("<L", size & 0xffffffff)
    f.write(base64.b64encode(last) + b"\n")
PY
mkfs.ext4 -q -F -d root host.raw 32M`)
	img := filepath.Join(dir, "host.raw")
	rep := scanFile(t, scanner.Options{}, img)
	got := scheduleAt(rep, key, func(l report.Location) string {
		return fmt.Sprintf("%s %s %s [%s]", l.Path, l.State, l.Exposure, chainText(l))
	})
	if len(got) != 1 || !strings.HasPrefix(got[0], "/var/crash/_usr_bin_openssl.0.crash allocated live [apport member CoreDump") || !strings.Contains(got[0], "gzip") {
		t.Errorf("the key schedule at %q", got)
	}
	if !rep.Complete {
		t.Errorf("incomplete: %q", rep.IncompleteReasons)
	}
}

// TestProcessCoreTarget: a process's core named as a target (gcore of
// openssl enc) is read whole, as a core found in a guest is, and its key
// schedule found: it is no guest's RAM, and read as one (every segment at
// guest-physical 0), all but its first segment were dropped and the run
// passed as complete.
func TestProcessCoreTarget(t *testing.T) {
	dir := t.TempDir()
	core, key := opensslCore(t, dir)
	rep := scanFile(t, scanner.Options{}, core)
	st, err := os.Stat(core)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Targets) != 1 || !rep.Complete || rep.Targets[0].Views[0].ScannedBytes < st.Size() {
		t.Fatalf("targets %+v, complete %v: want the whole %d-byte core scanned", rep.Targets, rep.Complete, st.Size())
	}
	if got := scheduleAt(rep, key, func(l report.Location) string { return l.View }); len(got) == 0 {
		t.Errorf("the key schedule was not found in the core")
	}
}
