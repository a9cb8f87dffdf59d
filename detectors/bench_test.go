package detectors

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// benchData builds the benchmark corpus deterministically: 1 MiB blocks that
// rotate through executable bytes (the test binary), English-ish prose and
// configuration text, and random bytes. Size: IMGAUDIT_BENCH_MB (default 256).
func benchData(tb testing.TB) []byte {
	tb.Helper()
	mb := 256
	if s := os.Getenv("IMGAUDIT_BENCH_MB"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v <= 0 {
			tb.Fatalf("IMGAUDIT_BENCH_MB=%q: want a positive integer", s)
		}
		mb = v
	}
	exe, err := os.Executable()
	if err != nil {
		tb.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		tb.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	text := textBlock(rng, 1<<20)
	const block = 1 << 20
	out := make([]byte, 0, mb*block)
	binOff := 0
	for i := 0; i < mb; i++ {
		switch i % 3 {
		case 0:
			if binOff+block > len(bin) {
				binOff = 0
			}
			out = append(out, bin[binOff:min(len(bin), binOff+block)]...)
			binOff += block
			for len(out) < (i+1)*block {
				out = append(out, 0)
			}
		case 1:
			out = append(out, text[(i*7919)%len(text):]...)
			out = append(out, text...)
			out = out[:(i+1)*block]
		case 2:
			b := make([]byte, block)
			for j := 0; j+8 <= block; j += 8 {
				v := rng.Uint64()
				for k := range 8 {
					b[j+k] = byte(v >> (8 * k))
				}
			}
			out = append(out, b...)
		}
	}
	return out
}

var benchWords = strings.Fields(`the of and to in is that for it as with was on be by this are from at or
have an they which one you were all we her she there would their will when who him been has more if no out
so said what up its about into than them can only other new some could time these two may then do first any
my now such like our over man me even most made after also did many before must through back years where much
your way well down should because each just those people how too little state good very make world still own
see men work long get here between both life being under never day same another know while last might us great
old year off come since against go came right used take three server client config user host port timeout
retry cache disk image volume snapshot kernel network address service request response buffer file path value`)

var benchConfigLines = []string{
	"listen_address = 0.0.0.0:8080\n", "log_level: info\n", "max_connections = 512\n",
	"[database]\nhost = db.internal\nport = 5432\n", "enable_tls: true\n", "# see https://docs.example.org/config\n",
	"export PATH=$PATH:/usr/local/bin\n", "token_ttl = 3600\n", "password_min_length = 12\n",
	"cache_dir: /var/cache/app\n", "user www-data;\nworker_processes auto;\n",
}

func textBlock(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	for b.Len() < n {
		if rng.IntN(8) == 0 {
			b.WriteString(benchConfigLines[rng.IntN(len(benchConfigLines))])
			continue
		}
		words := 6 + rng.IntN(12)
		for w := range words {
			word := benchWords[rng.IntN(len(benchWords))]
			if w == 0 {
				word = strings.ToUpper(word[:1]) + word[1:]
			}
			b.WriteString(word)
			if w < words-1 {
				b.WriteByte(' ')
			}
		}
		b.WriteString(". ")
		if rng.IntN(5) == 0 {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()[:n]
}

func benchEngine(b *testing.B, workers int) {
	data := benchData(b)
	e, err := NewEngine(Builtin(), EngineOptions{Workers: workers})
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		n := 0
		if _, err := e.Scan(context.Background(), r, int64(len(data)), []Range{{0, int64(len(data))}}, ScanOptions{}, func(Match) { n++ }); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFullRuleSet/workers=1 is the per-core figure.
func BenchmarkFullRuleSet(b *testing.B) {
	b.Run("workers=1", func(b *testing.B) { benchEngine(b, 1) })
	b.Run("workers=all", func(b *testing.B) { benchEngine(b, 0) })
}

// BenchmarkPrefilterOnly measures the keyword prefilter alone, one core:
// the loop NewEngine picks, then the scalar loop and each vector filter the
// CPU has, on the same data.
func BenchmarkPrefilterOnly(b *testing.B) {
	data := benchData(b)
	e, err := NewEngine(Builtin(), EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	run := func(pf *prefilter) func(*testing.B) {
		return func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			var hits []keywordHit
			for b.Loop() {
				hits = pf.scan(data, hits[:0], nil)
			}
			b.ReportMetric(float64(len(hits)), "hits")
		}
	}
	b.Run("default="+cmp.Or(e.pf.vector, "scalar"), run(e.pf))
	variants := filterVariants(e.pf)
	for _, name := range slices.Sorted(maps.Keys(variants)) {
		b.Run(name, run(variants[name]))
	}
}

// BenchmarkPrefilterCandidates counts, on the benchmark data, what the
// prefilter's tables (prefilter_tables.go; with -tags prefiltermeasured,
// this machine's measurement) make it examine: the 8-byte words whose
// sampled trigrams hit the scalar loop's bitset, and the trigram lanes
// that pass both of the vector filters' bitsets, each followed by an exact
// comparison; and the keyword hits, which every table must find alike. It
// models the loops' tests in plain Go; fewer is better. Deterministic for
// a given test binary, so two tables compare within one run.
func BenchmarkPrefilterCandidates(b *testing.B) {
	data := benchData(b)
	e, err := NewEngine(Builtin(), EngineOptions{})
	if err != nil {
		b.Fatal(err)
	}
	p := e.pf
	var words, lanes, hits int
	for b.Loop() {
		words, lanes = 0, 0
		for i := 0; i+16 <= len(data); i += 8 {
			w := data[i : i+16]
			if binary.LittleEndian.Uint64(w) == 0 {
				continue // zero words are skipped
			}
			for _, o := range []int{0, 2, 4, 6} {
				t := binary.LittleEndian.Uint32(w[o:]) & gram3Fold
				if p.bits3[t*gram3Multi>>gram3Shift]&(1<<(t&31)) != 0 {
					words++
					break
				}
			}
		}
		for pos := 0; pos+4 <= len(data); pos += 2 {
			k := binary.LittleEndian.Uint32(data[pos:])
			if v := slotV(k & gram3Fold); p.bitsV[v>>5]&(1<<(v&31)) == 0 {
				continue
			}
			before := binary.LittleEndian.Uint32(data[max(pos, 1)-1:])
			if p.inSecond(before&gram4Fold) || p.inSecond(k&gram4Fold^secondAtStart) {
				lanes++
			}
		}
		hits = len(p.scan(data, nil, nil))
	}
	b.ReportMetric(float64(words), "words")
	b.ReportMetric(float64(lanes), "lanes")
	b.ReportMetric(float64(hits), "hits")
}

// BenchmarkBytesCountBaseline is the baseline: bytes.Count of one literal
// over the same data, one core.
func BenchmarkBytesCountBaseline(b *testing.B) {
	data := benchData(b)
	b.SetBytes(int64(len(data)))
	lit := []byte("password")
	for b.Loop() {
		bytes.Count(data, lit)
	}
}
