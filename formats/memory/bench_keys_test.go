package memory_test

import (
	"bytes"
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// benchKey is a key planted in the benchmark dump.
type benchKey struct {
	kind string // "AES-128", "AES-192", "AES-256", "RSA PKCS#1", "RSA PKCS#8"
	addr int64  // guest-physical address of the schedule or DER
	data []byte // planted bytes: the schedule or the DER
	key  []byte // AES: the key; RSA: the DER (what imgaudit fingerprints)
	n    string // RSA: the modulus in hex, as rsakeyfind prints it
}

func (k benchKey) rule() string {
	if strings.HasPrefix(k.kind, "AES") {
		return "aes-key-schedule"
	}
	return "rsa-private-key-der"
}

// benchRAMStart is where the benchmark's RAM contents are loaded: above the
// BIOS area, so that the loader overlaps no ROM.
const benchRAMStart = 1 << 20

// benchKeys makes the keys of the benchmark: two of each AES size, one of
// each pair straddling a 4 KiB page boundary, and RSA private keys made by
// openssl (PKCS#1 and PKCS#8 DER), spread over [benchRAMStart, size).
func benchKeys(b *testing.B, size int64) []benchKey {
	b.Helper()
	rng := mrand.New(mrand.NewPCG(0x22, uint64(size)))
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	var keys []benchKey
	slot := (size - benchRAMStart) / 10
	// place puts the i-th key in its slot: across the page boundary in its
	// middle (cut bytes before it), or inside a page.
	place := func(i int, n int, cut int) int64 {
		page := (benchRAMStart + slot*int64(i) + slot/2) &^ 0xfff
		if cut > 0 {
			return page - int64(cut)
		}
		return page + 0x208
	}
	for i, n := range []int{16, 16, 24, 24, 32, 32} {
		key := random(n)
		sched := structural.ExpandAESKey(key)
		cut := 0
		if i%2 == 0 {
			cut = 1 + rng.IntN(len(sched)-1)
		}
		keys = append(keys, benchKey{kind: fmt.Sprintf("AES-%d", 8*n), addr: place(i, len(sched), cut), data: sched, key: key})
	}
	dir := b.TempDir()
	for i, tc := range []struct {
		bits   int
		pkcs8  bool
		cutMid bool
	}{{2048, false, true}, {3072, false, false}, {2048, true, true}} {
		pem := filepath.Join(dir, fmt.Sprintf("rsa%d.pem", i))
		testutil.Run(b, "openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:"+strconv.Itoa(tc.bits), "-out", pem)
		der := filepath.Join(dir, fmt.Sprintf("rsa%d.der", i))
		kind := "RSA PKCS#8"
		if tc.pkcs8 {
			testutil.Run(b, "openssl", "pkcs8", "-topk8", "-nocrypt", "-in", pem, "-outform", "DER", "-out", der)
		} else {
			kind = "RSA PKCS#1"
			testutil.Run(b, "openssl", "rsa", "-in", pem, "-traditional", "-outform", "DER", "-out", der)
		}
		data, err := os.ReadFile(der)
		if err != nil {
			b.Fatal(err)
		}
		var k any
		if tc.pkcs8 {
			k, err = x509.ParsePKCS8PrivateKey(data)
		} else {
			k, err = x509.ParsePKCS1PrivateKey(data)
		}
		if err != nil {
			b.Fatalf("openssl's %s: %v", kind, err)
		}
		cut := 0
		if tc.cutMid {
			cut = len(data) / 2
		}
		keys = append(keys, benchKey{kind: kind, addr: place(6+i, len(data), cut), data: data, key: data,
			n: hex.EncodeToString(k.(*rsa.PrivateKey).N.Bytes())})
	}
	return keys
}

// writeBenchDump makes the benchmark's memory dump with QEMU: a guest of mb
// MiB whose RAM above 1 MiB holds this machine's /usr/lib and /usr/bin files
// (testutil.HostBytes) with the keys written over them, loaded by
// `-device loader` and written by dump-guest-memory as an ELF core.
func writeBenchDump(b *testing.B, mb int) (string, []benchKey) {
	b.Helper()
	size := int64(mb) << 20
	keys := benchKeys(b, size)
	ram := testutil.HostBytes(b, int(size-benchRAMStart), "/usr/lib", "/usr/bin")
	for _, k := range keys {
		copy(ram[k.addr-benchRAMStart:], k.data)
	}
	vm := qemufixture.Start(b, qemufixture.Config{MemMiB: mb, Bare: true,
		Extra: []qemufixture.Plant{{Name: "usr", Addr: benchRAMStart, Data: ram}}})
	vm.HMP(b, "dump-guest-memory {dir}/dump.elf")
	vm.Quit()
	return vm.Path("dump.elf"), keys
}

// imgauditBinary returns the imgaudit binary to time: $IMGAUDIT_BIN (make
// bench passes the one it built), or one built here as make build does.
func imgauditBinary(b *testing.B) string {
	b.Helper()
	if p := os.Getenv("IMGAUDIT_BIN"); p != "" {
		return p
	}
	bin := filepath.Join(b.TempDir(), "imgaudit")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "github.com/imgaudit/imgaudit/cmd/imgaudit")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// timing is one run of a command: wall-clock and CPU (user+system) time.
type timing struct{ wall, cpu time.Duration }

// timeCommand runs name with args and returns its stdout and times.
func timeCommand(b *testing.B, name string, args ...string) ([]byte, timing) {
	b.Helper()
	var out, errb bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	wall := time.Since(t0)
	if err != nil {
		b.Fatalf("%s %v: %v\n%s", name, args, err, errb.String())
	}
	return out.Bytes(), timing{wall, cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()}
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// runs collects the timings of one tool.
type runs struct{ wall, cpu []time.Duration }

func (r *runs) add(t timing) { r.wall = append(r.wall, t.wall); r.cpu = append(r.cpu, t.cpu) }

func (r *runs) String() string {
	return fmt.Sprintf("wall %6.3f s, cpu %6.3f s", median(r.wall).Seconds(), median(r.cpu).Seconds())
}

// ratio says how many times faster than r ours is, by median wall and CPU time.
func (r *runs) ratio(ours *runs) string {
	return fmt.Sprintf("%.1fx (wall), %.1fx (cpu)", median(r.wall).Seconds()/median(ours.wall).Seconds(),
		median(r.cpu).Seconds()/median(ours.cpu).Seconds())
}

// imgauditFound returns the planted keys that an `imgaudit scan --format
// json` report holds: the right rule and fingerprint at the planted
// guest-physical address of the memory view.
func imgauditFound(b *testing.B, out []byte, keys []benchKey) []bool {
	b.Helper()
	var rep report.Report
	if err := json.Unmarshal(out, &rep); err != nil {
		b.Fatalf("imgaudit JSON: %v", err)
	}
	found := make([]bool, len(keys))
	for _, f := range rep.Findings {
		for i, k := range keys {
			if f.Fingerprint != fingerprint(k.key) {
				continue
			}
			for _, l := range f.Locations {
				if l.ViewKind == string(model.KindMemory) && l.Offset == k.addr && l.Length == int64(len(k.data)) {
					found[i] = true
				}
			}
		}
	}
	return found
}

// aesKeyFindFound returns the planted AES keys that `aeskeyfind -q` printed
// (one hex key per line; it searches for AES-128 and AES-256 only).
func aesKeyFindFound(out []byte, keys []benchKey) []bool {
	printed := strings.Fields(string(out))
	found := make([]bool, len(keys))
	for i, k := range keys {
		found[i] = strings.HasPrefix(k.kind, "AES") && slices.Contains(printed, hex.EncodeToString(k.key))
	}
	return found
}

// rsaKeyFindFound returns the planted RSA keys whose modulus rsakeyfind
// printed ("modulus = " then hex bytes, 16 a line, with a leading 00).
func rsaKeyFindFound(out []byte, keys []benchKey) []bool {
	var moduli []string
	lines := strings.Split(string(out), "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "modulus =" {
			continue
		}
		var h strings.Builder
		for i++; i < len(lines) && !strings.Contains(lines[i], "="); i++ {
			h.WriteString(strings.ReplaceAll(lines[i], " ", ""))
		}
		i--
		moduli = append(moduli, strings.TrimLeft(h.String(), "0"))
	}
	found := make([]bool, len(keys))
	for i, k := range keys {
		found[i] = k.n != "" && slices.Contains(moduli, strings.TrimLeft(k.n, "0"))
	}
	return found
}

// recall says which planted keys of the given kinds a tool found.
func recall(keys []benchKey, found []bool, prefix string) string {
	var parts []string
	total, hit := 0, 0
	byKind := map[string][2]int{}
	var kinds []string
	for i, k := range keys {
		if !strings.HasPrefix(k.kind, prefix) {
			continue
		}
		c, ok := byKind[k.kind]
		if !ok {
			kinds = append(kinds, k.kind)
		}
		c[1]++
		total++
		if found[i] {
			c[0]++
			hit++
		}
		byKind[k.kind] = c
	}
	for _, kind := range kinds {
		parts = append(parts, fmt.Sprintf("%s %d/%d", kind, byKind[kind][0], byKind[kind][1]))
	}
	return fmt.Sprintf("%d/%d (%s)", hit, total, strings.Join(parts, ", "))
}

// memoryRulesOnly returns an engine with just the memory-structure rules
// (AES key schedules and DER RSA keys): the search aeskeyfind and
// rsakeyfind do.
func memoryRulesOnly(b *testing.B, workers int) *detectors.Engine {
	b.Helper()
	var off []string
	for _, r := range detectors.Builtin() {
		if r.ID != "aes-key-schedule" && r.ID != "rsa-private-key-der" {
			off = append(off, r.ID)
		}
	}
	e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{Disable: off, Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// scanMemoryView scans the memory view of the image at path with e and
// returns the bytes it scanned and the wall-clock and CPU time it took.
func scanMemoryView(b *testing.B, e *detectors.Engine, path string) (int64, timing) {
	b.Helper()
	ctx := context.Background()
	im, err := formats.Open(ctx, path, model.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	var d model.Disk
	for _, v := range im.Views {
		if v.Kind == model.KindMemory {
			d = v.Disk
		}
	}
	if d == nil {
		b.Fatalf("%s: no memory view", path)
	}
	var ranges []detectors.Range
	var total int64
	for x, err := range d.Extents(ctx) {
		if err != nil {
			b.Fatal(err)
		}
		if x.Source != model.SourceZero {
			ranges = append(ranges, detectors.Range{Start: x.Offset, End: x.End()})
			total += x.End() - x.Offset
		}
	}
	t0, c0 := time.Now(), processCPU()
	if _, err := e.Scan(ctx, d, d.Size(), ranges, detectors.ScanOptions{Memory: true}, func(detectors.Match) {}); err != nil {
		b.Fatal(err)
	}
	return total, timing{time.Since(t0), processCPU() - c0}
}

// processCPU returns the user and system time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

// BenchmarkMemoryKeySearch reproduces issue 22's setup: an ELF memory dump
// written by QEMU's dump-guest-memory (IMGAUDIT_BENCH_MB MiB of guest RAM,
// default 128) whose RAM holds this machine's /usr/lib and /usr/bin files,
// with AES-128/192/256 key schedules and openssl's RSA private keys (PKCS#1
// and PKCS#8 DER) planted, some across 4 KiB pages. It times the built
// imgaudit binary's whole `scan` (every rule), its scan with only the rule
// of each tool's search (--enable-rule aes-key-schedule, and
// rsa-private-key-der), aeskeyfind and rsakeyfind on the same file in
// interleaved runs (IMGAUDIT_BENCH_RUNS, default 5),
// prints the medians, the ratios and which planted keys each tool found,
// and the key search alone in-process on one core. Run it with -benchtime
// 1x; make bench does.
func BenchmarkMemoryKeySearch(b *testing.B) {
	mb, nruns := 128, 5
	for _, v := range []struct {
		env string
		dst *int
		min int
	}{{"IMGAUDIT_BENCH_MB", &mb, 16}, {"IMGAUDIT_BENCH_RUNS", &nruns, 1}} {
		if s := os.Getenv(v.env); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < v.min {
				b.Fatalf("%s=%q: want a number >= %d", v.env, s, v.min)
			}
			*v.dst = n
		}
	}
	testutil.RequireTool(b, "qemu-system-x86_64", "openssl", "aeskeyfind", "rsakeyfind")
	bin := imgauditBinary(b)
	path, keys := writeBenchDump(b, mb)
	st, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	load0 := loadAvg()
	var ours, oursAES, oursRSA, aes, rsa, search runs
	var oursOut, oursAESOut, oursRSAOut, aesOut, rsaOut []byte
	var searched int64
	engine := memoryRulesOnly(b, 1)
	for b.Loop() {
		for r := range nruns {
			// Rotate the order so that no tool always runs first after a
			// pause or right after another's cache effects.
			steps := []func(){
				func() {
					out, t := timeCommand(b, bin, "scan", "--no-progress", "--format", "json", "--fail-on", "none", path)
					oursOut = out
					ours.add(t)
				},
				// The search each tool does, and nothing else.
				func() {
					out, t := timeCommand(b, bin, "scan", "--no-progress", "--format", "json", "--fail-on", "none", "--enable-rule", "aes-key-schedule", path)
					oursAESOut = out
					oursAES.add(t)
				},
				func() {
					out, t := timeCommand(b, bin, "scan", "--no-progress", "--format", "json", "--fail-on", "none", "--enable-rule", "rsa-private-key-der", path)
					oursRSAOut = out
					oursRSA.add(t)
				},
				func() { out, t := timeCommand(b, "aeskeyfind", "-q", path); aesOut = out; aes.add(t) },
				func() { out, t := timeCommand(b, "rsakeyfind", path); rsaOut = out; rsa.add(t) },
				func() {
					n, t := scanMemoryView(b, engine, path)
					searched = n
					search.add(t)
				},
			}
			for i := range steps {
				steps[(i+r)%len(steps)]()
			}
		}
	}
	oursFound := imgauditFound(b, oursOut, keys)
	oursAESFound, oursRSAFound := imgauditFound(b, oursAESOut, keys), imgauditFound(b, oursRSAOut, keys)
	for i, k := range keys {
		if !oursFound[i] {
			b.Errorf("imgaudit missed the %s at guest-physical 0x%x", k.kind, k.addr)
		}
		if aesKey := strings.HasPrefix(k.kind, "AES"); aesKey && !oursAESFound[i] || !aesKey && !oursRSAFound[i] {
			b.Errorf("imgaudit with only the rule for it missed the %s at guest-physical 0x%x", k.kind, k.addr)
		}
	}
	mbps := float64(searched) / 1e6 / median(search.wall).Seconds()
	cpuMBps := float64(searched) / 1e6 / median(search.cpu).Seconds()
	b.ReportMetric(median(aes.wall).Seconds()/median(ours.wall).Seconds(), "x-aeskeyfind")
	b.ReportMetric(median(rsa.wall).Seconds()/median(ours.wall).Seconds(), "x-rsakeyfind")
	b.ReportMetric(median(aes.wall).Seconds()/median(oursAES.wall).Seconds(), "x-aeskeyfind-same-search")
	b.ReportMetric(median(rsa.wall).Seconds()/median(oursRSA.wall).Seconds(), "x-rsakeyfind-same-search")
	b.ReportMetric(mbps, "MB/s-search-1core")
	b.Logf("memory key search: %d MiB ELF dump from QEMU dump-guest-memory (%d bytes) of /usr/lib and /usr/bin files, %d keys planted; %d interleaved runs, medians; load average %s before, %s after; %d cores",
		mb, st.Size(), len(keys), nruns, load0, loadAvg(), runtime.NumCPU())
	b.Logf("memory key search: imgaudit scan (all rules): %s; AES recall %s; RSA recall %s", &ours, recall(keys, oursFound, "AES"), recall(keys, oursFound, "RSA"))
	b.Logf("memory key search: aeskeyfind -q:            %s; AES recall %s; imgaudit is %s faster", &aes, recall(keys, aesKeyFindFound(aesOut, keys), "AES"), aes.ratio(&ours))
	b.Logf("memory key search: rsakeyfind (no modulus):  %s; RSA recall %s; imgaudit is %s faster", &rsa, recall(keys, rsaKeyFindFound(rsaOut, keys), "RSA"), rsa.ratio(&ours))
	b.Logf("memory key search: imgaudit scan --enable-rule aes-key-schedule:    %s; AES recall %s; %s faster than aeskeyfind", &oursAES, recall(keys, oursAESFound, "AES"), aes.ratio(&oursAES))
	b.Logf("memory key search: imgaudit scan --enable-rule rsa-private-key-der: %s; RSA recall %s; %s faster than rsakeyfind", &oursRSA, recall(keys, oursRSAFound, "RSA"), rsa.ratio(&oursRSA))
	b.Logf("memory key search: key search alone (AES + RSA DER rules, memory view of the dump), in-process, 1 core: %.0f MB/s (%.0f MB per CPU-second) over %d MiB of guest memory", mbps, cpuMBps, searched>>20)
}
