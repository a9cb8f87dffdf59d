package detectors

import (
	"math/rand/v2"
	"slices"
	"testing"
)

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

// TestPrefilterFindsEveryOccurrence: the sampled, hashed prefilter must
// report exactly the keyword occurrences a brute-force search finds, in
// every alignment, case, encoding and block position, with zero padding and
// random bytes around them.
func TestPrefilterFindsEveryOccurrence(t *testing.T) {
	e := testEngine(t, EngineOptions{})
	short, err := newPrefilter([][]byte{[]byte("abc"), []byte("x_y"), utf16le("q=z")})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pf   *prefilter
	}{{"builtin", e.pf}, {"3-byte keywords", short}} {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 6))
			for round := range 20 {
				buf := make([]byte, 1000+rng.IntN(3000))
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
				for range 40 {
					kw := tc.pf.kws[rng.IntN(len(tc.pf.kws))]
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
				for _, cut := range []int{0, 1, 7, 63} {
					b := buf[cut : len(buf)-cut/2]
					got := tc.pf.scan(b, nil)
					want := naiveHits(tc.pf.kws, b)
					if !slices.Equal(got, want) {
						t.Fatalf("round %d cut %d: %d hits, brute force %d", round, cut, len(got), len(want))
					}
				}
			}
		})
	}
}
