package memory_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/detectors/structural"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
)

// benchKey is a key planted in the benchmark image.
type benchKey struct {
	rule string
	off  int64
	fp   string // fingerprint of the secret value (AES: the key bytes)
}

// writeBenchImage writes a raw memory image (.vmem: VMware's raw guest RAM,
// which formats.Open reads as a memory view) of mb MiB of non-zero
// pseudo-random pages, with AES-128 and AES-256 key schedules that cross
// page boundaries and one RSA private key in PKCS#1 DER.
func writeBenchImage(b *testing.B, path string, mb int) []benchKey {
	b.Helper()
	size := int64(mb) << 20
	rng := mrand.New(mrand.NewPCG(0xbe7c4, uint64(mb)))
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	type plant struct {
		off  int64
		data []byte
	}
	var plants []plant
	var keys []benchKey
	for i, n := range []int{16, 32, 16, 32} {
		key := random(n)
		// Spread over the image, 64 bytes before a page boundary.
		off := size/5*int64(i+1)&^0xfff - 64
		plants = append(plants, plant{off, structural.ExpandAESKey(key)})
		keys = append(keys, benchKey{"aes-key-schedule", off, fingerprint(key)})
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		b.Fatal(err)
	}
	der := x509.MarshalPKCS1PrivateKey(rk)
	derOff := size/2&^0xfff - 300
	plants = append(plants, plant{derOff, der})
	keys = append(keys, benchKey{"rsa-private-key-der", derOff, fingerprint(der)})

	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	chunk := make([]byte, 1<<20)
	for base := int64(0); base < size; base += int64(len(chunk)) {
		for i := 0; i < len(chunk); i += 8 {
			binary.LittleEndian.PutUint64(chunk[i:], rng.Uint64())
		}
		for _, p := range plants {
			if p.off < base+int64(len(chunk)) && p.off+int64(len(p.data)) > base {
				lo := max(p.off, base)
				hi := min(p.off+int64(len(p.data)), base+int64(len(chunk)))
				copy(chunk[lo-base:hi-base], p.data[lo-p.off:hi-p.off])
			}
		}
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	return keys
}

// memoryRulesOnly returns an engine with just the memory-structure rules
// (AES key schedules and DER RSA keys): the search aeskeyfind does, plus RSA.
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

// scanMemoryView scans the memory view of the image with e and returns the
// keys it reports.
func scanMemoryView(b *testing.B, e *detectors.Engine, path string) []benchKey {
	b.Helper()
	ctx := context.Background()
	im, err := formats.Open(ctx, path, formats.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer im.Close()
	if len(im.Views) != 1 || im.Views[0].Kind != model.KindMemory {
		b.Fatalf("%s: want one memory view, got %d views", path, len(im.Views))
	}
	d := im.Views[0].Disk
	var ranges []detectors.Range
	for x, err := range d.Extents(ctx) {
		if err != nil {
			b.Fatal(err)
		}
		if x.Source != model.SourceZero {
			ranges = append(ranges, detectors.Range{Start: x.Offset, End: x.End()})
		}
	}
	var mu sync.Mutex
	var found []benchKey
	if _, err := e.Scan(ctx, d, d.Size(), ranges, detectors.ScanOptions{Memory: true}, func(m detectors.Match) {
		mu.Lock()
		found = append(found, benchKey{m.RuleID, m.Start, m.Fingerprint})
		mu.Unlock()
	}); err != nil {
		b.Fatal(err)
	}
	sortKeys(found)
	return found
}

func sortKeys(k []benchKey) {
	slices.SortFunc(k, func(a, b benchKey) int {
		if a.off != b.off {
			return int(a.off - b.off)
		}
		return strings.Compare(a.fp, b.fp)
	})
}

// aesFingerprints returns the sorted fingerprints of the AES keys in k.
func aesFingerprints(k []benchKey) []string {
	var fps []string
	for _, x := range k {
		if x.rule == "aes-key-schedule" {
			fps = append(fps, x.fp)
		}
	}
	slices.Sort(fps)
	return fps
}

// runAESKeyFind runs `aeskeyfind -q` and returns the fingerprints of the
// keys it prints (one hex key per line).
func runAESKeyFind(b *testing.B, path string) []string {
	b.Helper()
	out, err := exec.Command("aeskeyfind", "-q", path).Output()
	if err != nil {
		b.Fatalf("aeskeyfind: %v", err)
	}
	var fps []string
	for _, line := range strings.Fields(string(out)) {
		key, err := hex.DecodeString(line)
		if err != nil || (len(key) != 16 && len(key) != 32) {
			continue
		}
		fps = append(fps, fingerprint(key))
	}
	slices.Sort(fps)
	return fps
}

// BenchmarkMemoryKeySearch measures the AES key-schedule and RSA DER search
// over a memory image of non-zero pages (IMGAUDIT_BENCH_MB MiB, default
// 1024) on one core and on all cores, and Debian's aeskeyfind on the same
// file in the same run, and checks that both find the same AES keys. Run it
// with -benchtime 1x: aeskeyfind on 1 GiB takes about a minute.
func BenchmarkMemoryKeySearch(b *testing.B) {
	mb := 1024
	if s := os.Getenv("IMGAUDIT_BENCH_MB"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 8 {
			b.Fatalf("IMGAUDIT_BENCH_MB=%q: want a number of MiB >= 8", s)
		}
		mb = n
	}
	path := filepath.Join(b.TempDir(), "bench.vmem")
	planted := writeBenchImage(b, path, mb)
	sortKeys(planted)
	size := int64(mb) << 20
	mbps := func(b *testing.B) float64 { return float64(size) * float64(b.N) / 1e6 / b.Elapsed().Seconds() }

	var oneCore, allCores, allRules, aesKF float64
	_, noBaseline := exec.LookPath("aeskeyfind")
	keys := "aeskeyfind not installed"
	// summary prints the result line; the last sub-benchmark calls it, as a
	// parent benchmark's log is not printed.
	summary := func(b *testing.B) {
		ratio := "n/a"
		if aesKF > 0 {
			ratio = fmt.Sprintf("%.1fx per core, %.1fx all cores", oneCore/aesKF, allCores/aesKF)
		}
		b.Logf("memory key search over %d MiB of non-zero pages: imgaudit %.0f MB/s/core (%.0f MB/s on %d cores; all rules %.0f MB/s), aeskeyfind %.1f MB/s, ratio %s, keys: %s (%d AES + 1 RSA DER planted)",
			mb, oneCore, allCores, runtime.GOMAXPROCS(0), allRules, aesKF, ratio, keys, len(aesFingerprints(planted)))
	}
	check := func(b *testing.B, what string, got []benchKey) {
		if !slices.Equal(got, planted) {
			b.Errorf("%s found %d keys %v, planted %d %v", what, len(got), got, len(planted), planted)
		}
	}
	b.Run("imgaudit-1core", func(b *testing.B) {
		e := memoryRulesOnly(b, 1)
		b.SetBytes(size)
		var got []benchKey
		for b.Loop() {
			got = scanMemoryView(b, e, path)
		}
		check(b, "imgaudit", got)
		oneCore = mbps(b)
	})
	b.Run("imgaudit-allcores", func(b *testing.B) {
		e := memoryRulesOnly(b, 0)
		b.SetBytes(size)
		var got []benchKey
		for b.Loop() {
			got = scanMemoryView(b, e, path)
		}
		check(b, "imgaudit", got)
		allCores = mbps(b)
	})
	// For reference: every built-in rule, as the scanner runs on memory views.
	b.Run("imgaudit-allrules-allcores", func(b *testing.B) {
		e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{})
		if err != nil {
			b.Fatal(err)
		}
		b.SetBytes(size)
		var got []benchKey
		for b.Loop() {
			got = scanMemoryView(b, e, path)
		}
		for _, k := range planted {
			if !slices.Contains(got, k) {
				b.Errorf("all rules: %s at 0x%x not found", k.rule, k.off)
			}
		}
		allRules = mbps(b)
		if noBaseline != nil {
			summary(b)
		}
	})
	if noBaseline != nil {
		b.Logf("aeskeyfind not installed (Debian package aeskeyfind): no baseline")
		return
	}
	b.Run("aeskeyfind", func(b *testing.B) {
		b.SetBytes(size)
		var fps []string
		for b.Loop() {
			fps = runAESKeyFind(b, path)
		}
		aesKF = mbps(b)
		// imgaudit's runs above checked that it found exactly the planted keys.
		ours := aesFingerprints(planted)
		keys = "same"
		if !slices.Equal(fps, ours) {
			keys = fmt.Sprintf("differ: aeskeyfind found %d AES keys, %d planted", len(fps), len(ours))
			b.Error(keys)
		}
		b.ReportMetric(oneCore/aesKF, "x-imgaudit/core")
		b.ReportMetric(allCores/aesKF, "x-imgaudit-allcores")
		summary(b)
	})
}
