package detectors

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// filterVariants returns copies of pf, one per filter loop this CPU can
// run: the scalar loop and each vector filter.
func filterVariants(pf *prefilter) map[string]*prefilter {
	out := map[string]*prefilter{}
	for _, v := range append([]string{""}, supportedVectors()...) {
		c := *pf
		c.vector = v
		name := v
		if v == "" {
			name = "scalar"
		}
		out[name] = &c
	}
	return out
}

// naiveHits is the reference: every position where a keyword matches under
// fold.
func naiveHits(kws [][]byte, buf []byte) []keywordHit {
	var out []keywordHit
	for pos := range buf {
		for k, kw := range kws {
			if pos+len(kw) <= len(buf) && equalFold(buf[pos:pos+len(kw)], kw) {
				out = append(out, keywordHit{pos: pos, kw: k})
			}
		}
	}
	return out
}

// naiveProbe is the reference for sectorProbe.check over all of buf.
func naiveProbe(buf []byte, phase, align int, magic [2]byte) []int {
	var out []int
	for o := range len(buf) - 1 {
		if o%align == phase && buf[o] == magic[0] && buf[o+1] == magic[1] {
			out = append(out, o)
		}
	}
	return out
}

// checkScan runs pf.scan with a sector probe and compares hits and probe
// results with brute force; vector filters must fill the probe, the scalar
// loops leave it to the caller.
func checkScan(t *testing.T, name string, pf *prefilter, buf []byte, kws [][]byte, phase int) {
	t.Helper()
	const align = 32
	magic := [2]byte{'k', 't'}
	probe := &sectorProbe{phase: phase % align, align: align, keytab: true, magic: magic}
	if got, want := pf.scan(buf, nil, probe), naiveHits(kws, buf); !slices.Equal(got, want) {
		t.Fatalf("%s: %d hits, brute force %d", name, len(got), len(want))
	}
	if probe.done != (pf.vector != "") {
		t.Fatalf("%s: probe done %v with vector filter %q", name, probe.done, pf.vector)
	}
	if want := naiveProbe(buf, phase%align, align, magic); probe.done && !slices.Equal(probe.found, want) {
		t.Fatalf("%s: probe found %v, brute force %v", name, probe.found, want)
	}
}

// TestPrefilterFindsEveryOccurrence: the sampled, hashed prefilter must
// report exactly the keyword occurrences a brute-force search finds, in
// every alignment, case, encoding and block position, with zero padding and
// random bytes around them; with the scalar loop and every vector filter
// the CPU has. The vector filters' sector probe must find every aligned
// magic too.
func TestPrefilterFindsEveryOccurrence(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	short, err := newPrefilter([][]byte{[]byte("abc"), []byte("x_y"), utf16le("q=z")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		variants map[string]*prefilter
	}{{"builtin", filterVariants(e.pf)}, {"3-byte keywords", map[string]*prefilter{"scalar": short}}} {
		t.Run(tc.name, func(t *testing.T) {
			kws := tc.variants["scalar"].kws
			rng := rand.New(rand.NewPCG(5, 6))
			for round := range 20 {
				n := 1000 + rng.IntN(3000)
				if round == 1 {
					n = 40000 // past the vector filters' 32 KiB segments
				}
				buf := make([]byte, n)
				for i := range buf {
					switch rng.IntN(4) {
					case 0: // zeros: exercises the zero-word skip and 4-gram blocks
					case 1:
						buf[i] = byte(rng.IntN(256))
					default:
						buf[i] = byte('a' + rng.IntN(26))
					}
				}
				if round%4 == 0 {
					clear(buf[rng.IntN(len(buf)):]) // a zero tail
				}
				for range 40 + n/100 {
					kw := kws[rng.IntN(len(kws))]
					p := rng.IntN(len(buf) - len(kw) + 1)
					for j, c := range kw {
						if rng.IntN(2) == 0 && c >= 'a' && c <= 'z' {
							c -= 'a' - 'A'
						}
						if c == 0x7f { // fold maps '_' to DEL
							c = '_'
						}
						buf[p+j] = c
					}
				}
				for range 20 {
					copy(buf[rng.IntN(len(buf)-1):], "kt")
				}
				for _, cut := range []int{0, 1, 7, 63} {
					b := buf[cut : len(buf)-cut/2]
					for name, pf := range tc.variants {
						checkScan(t, fmt.Sprintf("%s: round %d cut %d", name, round, cut), pf, b, kws, round+cut)
					}
				}
			}
		})
	}
}

// TestPrefilterKeywordsAtEdges puts every keyword at each of the first
// eight offsets of a buffer and at each of the last four end positions, in
// buffers whose last vector block ends 0 to 3 bytes before their end: the
// second test reads 4-grams around a lane, which must stay inside the
// buffer without losing a keyword that touches its edge. (The random test
// above holds the rest of what scan reports to a brute-force search.)
func TestPrefilterKeywordsAtEdges(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	variants := filterVariants(e.pf)
	for k, kw := range e.pf.kws {
		for _, n := range []int{130, 131, 132, 133, 194, 195, 196, 197} {
			var places []int
			for i := range 8 {
				places = append(places, i)
			}
			for gap := range 4 {
				places = append(places, n-len(kw)-gap)
			}
			for _, p := range places {
				buf := bytes.Repeat([]byte{'#'}, n)
				for j, c := range kw {
					if c == 0x7f {
						c = '_'
					}
					buf[p+j] = c
				}
				for name, pf := range variants {
					if !slices.Contains(pf.scan(buf, nil, nil), keywordHit{pos: p, kw: k}) {
						t.Fatalf("%s: %q at %d of %d bytes not found", name, kw, p, n)
					}
				}
			}
		}
	}
}

// TestVectorFilterUsed: on a CPU with AVX2 the built-in set runs a vector
// filter (the tests above only compare what it finds); keyword sets the
// vector filters cannot serve run the portable loop.
func TestVectorFilterUsed(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	for _, tc := range []struct {
		name string
		kws  [][]byte
		want string
	}{
		{"built-in", nil, vectorFilter()},
		{"ascii", [][]byte{[]byte("acme_"), utf16le("token")}, vectorFilter()},
		{"non-ascii keyword", [][]byte{[]byte("acme_"), []byte("p\xe4ssword")}, ""},
		{"3-byte keyword", [][]byte{[]byte("acme_"), []byte("xy=")}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pf := e.pf
			if tc.kws != nil {
				var err error
				if pf, err = newPrefilter(tc.kws); err != nil {
					t.Fatal(err)
				}
			}
			if pf.vector != tc.want {
				t.Errorf("prefilter runs %q, want %q", pf.vector, tc.want)
			}
		})
	}
	t.Logf("vector filter: %q", e.pf.vector)
}

// FuzzPrefilter: on arbitrary bytes, with a keyword planted where the input
// says, every filter loop finds exactly what a brute-force search finds.
func FuzzPrefilter(f *testing.F) {
	f.Add([]byte("password=hunter2 AKIA\x00\x00\x00\x00p\x00a\x00s\x00s\x00"), uint16(3), uint16(5))
	f.Add(make([]byte, 200), uint16(0), uint16(64))
	f.Add([]byte("\xff\xfe\x00\x01ghp_ghp_ghp_xoxb-xoxb-"), uint16(7), uint16(129))
	e := testEngine(f, EngineOptions{})
	variants := filterVariants(e.pf)
	kws := e.pf.kws
	f.Fuzz(func(t *testing.T, data []byte, kw, at uint16) {
		if len(data) > 1<<14 {
			return
		}
		buf := slices.Clone(data)
		if k := kws[int(kw)%len(kws)]; len(buf) >= len(k) {
			p := int(at) % (len(buf) - len(k) + 1)
			copy(buf[p:], k)
		}
		for name, pf := range variants {
			checkScan(t, name, pf, buf, kws, int(at))
		}
	})
}
