package inflate

import (
	"math/bits"
	"math/rand/v2"
)

// A small DEFLATE encoder for the tests: it writes blocks of any kind
// with any code lengths (valid or not) and any symbols, so that the tests
// can make streams that no compressor writes (distance 32768, codewords
// of 15 bits in both tables, incomplete codes) and know what they decode
// to without trusting a decoder.

// bitWriter packs bits least significant first, as DEFLATE does.
type bitWriter struct {
	out []byte
	acc uint64
	n   uint
}

func (w *bitWriter) bits(v uint64, n uint) {
	w.acc |= (v & (1<<n - 1)) << w.n
	w.n += n
	for w.n >= 8 {
		w.out = append(w.out, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

// code writes a Huffman codeword, most significant bit first.
func (w *bitWriter) code(c uint32, n uint) {
	w.bits(uint64(bits.Reverse32(c)>>(32-n)), n)
}

func (w *bitWriter) align() {
	if w.n > 0 {
		w.bits(0, 8-w.n)
	}
}

func (w *bitWriter) bytes() []byte {
	w.align()
	return w.out
}

// canonical returns each symbol's canonical codeword for lens.
func canonical(lens []uint8) []uint32 {
	var count [16]uint32
	for _, l := range lens {
		count[l]++
	}
	count[0] = 0
	var next [16]uint32
	code := uint32(0)
	for l := 1; l < 16; l++ {
		code = (code + count[l-1]) << 1
		next[l] = code
	}
	codes := make([]uint32, len(lens))
	for s, l := range lens {
		if l != 0 {
			codes[s] = next[l]
			next[l]++
		}
	}
	return codes
}

// token is a literal (length 0) or a match.
type token struct {
	lit          byte
	length, dist int
}

// lengthSym returns the litlen symbol of a match length, its extra bits'
// value and count.
func lengthSym(l int) (sym int, extra uint64, n uint) {
	for s := 285; s >= 257; s-- {
		base := int(litSym[s] >> 16)
		ne := uint(litSym[s] & 0xff)
		if l >= base && l < base+1<<ne || (s == 285 && l == 258) {
			return s, uint64(l - base), ne
		}
	}
	panic("length out of range")
}

// distSymOf returns the distance symbol of d, its extra bits' value and
// count.
func distSymOf(d int) (sym int, extra uint64, n uint) {
	for s := 29; s >= 0; s-- {
		base := int(distSym[s] >> 16)
		if d >= base {
			return s, uint64(d - base), uint(distSym[s] & 0xff)
		}
	}
	panic("distance out of range")
}

// fixedLens are the fixed code's lengths.
func fixedLens() (lit, dist []uint8) {
	lit = make([]uint8, 288)
	for s := range lit {
		switch {
		case s < 144:
			lit[s] = 8
		case s < 256:
			lit[s] = 9
		case s < 280:
			lit[s] = 7
		default:
			lit[s] = 8
		}
	}
	dist = make([]uint8, 32)
	for s := range dist {
		dist[s] = 5
	}
	return lit, dist
}

// preSymbol is one code length code symbol with its extra bits, for
// writing a dynamic header's lengths by hand.
type preSymbol struct {
	sym   int
	extra uint64
}

// block is one block to encode.
type block struct {
	final  bool
	kind   int    // 0 stored, 1 fixed, 2 dynamic, 3 reserved
	stored []byte // stored: the data
	// storedLen overrides the stored block's LEN (and NLEN) when >= 0
	// with badNLEN making NLEN wrong.
	storedLen *int
	badNLEN   bool

	litLens, distLens []uint8     // dynamic: the codes
	preLens           []uint8     // dynamic: the code length code (default: a complete one)
	preSyms           []preSymbol // dynamic: the lengths as written (default: one symbol a length)
	hlit, hdist       int         // dynamic: override the counts written when > 0

	tokens  []token
	tokDist []uint8 // the distance code the tokens are written with, if not the block's
	noEOB   bool    // leave out the end-of-block symbol (the stream then ends)
}

// defaultPreLens is a complete code length code: symbols 0-12 of 4 bits,
// 13-18 of 5.
func defaultPreLens() []uint8 {
	l := make([]uint8, 19)
	for s := range l {
		l[s] = 4
		if s > 12 {
			l[s] = 5
		}
	}
	return l
}

// encode writes blocks as one stream.
func encode(blocks ...block) []byte {
	var w bitWriter
	for _, b := range blocks {
		final := uint64(0)
		if b.final {
			final = 1
		}
		w.bits(final, 1)
		w.bits(uint64(b.kind), 2)
		switch b.kind {
		case 0:
			w.align()
			n := len(b.stored)
			if b.storedLen != nil {
				n = *b.storedLen
			}
			nn := ^n & 0xffff
			if b.badNLEN {
				nn ^= 0x10
			}
			w.bits(uint64(n), 16)
			w.bits(uint64(nn), 16)
			for _, c := range b.stored {
				w.bits(uint64(c), 8)
			}
			continue
		case 3:
			continue
		}
		litLens, distLens := b.litLens, b.distLens
		if b.kind == 1 {
			litLens, distLens = fixedLens()
		} else {
			hlit, hdist := len(litLens), len(distLens)
			if b.hlit > 0 {
				hlit = b.hlit
			}
			if b.hdist > 0 {
				hdist = b.hdist
			}
			w.bits(uint64(hlit-257), 5)
			w.bits(uint64(hdist-1), 5)
			pre := b.preLens
			if pre == nil {
				pre = defaultPreLens()
			}
			w.bits(15, 4) // all 19 code length code lengths
			for _, s := range codeOrder {
				w.bits(uint64(pre[s]), 3)
			}
			pc := canonical(pre)
			syms := b.preSyms
			if syms == nil {
				for _, l := range append(append([]uint8(nil), litLens...), distLens...) {
					syms = append(syms, preSymbol{sym: int(l)})
				}
			}
			for _, p := range syms {
				w.code(pc[p.sym], uint(pre[p.sym]))
				switch p.sym {
				case 16:
					w.bits(p.extra, 2)
				case 17:
					w.bits(p.extra, 3)
				case 18:
					w.bits(p.extra, 7)
				}
			}
		}
		if b.tokDist != nil {
			distLens = b.tokDist
		}
		lc, dc := canonical(litLens), canonical(distLens)
		for _, t := range b.tokens {
			if t.length == 0 {
				w.code(lc[t.lit], uint(litLens[t.lit]))
				continue
			}
			s, e, n := lengthSym(t.length)
			w.code(lc[s], uint(litLens[s]))
			w.bits(e, n)
			s, e, n = distSymOf(t.dist)
			w.code(dc[s], uint(distLens[s]))
			w.bits(e, n)
		}
		if !b.noEOB {
			w.code(lc[endOfBlock], uint(litLens[endOfBlock]))
		}
	}
	return w.bytes()
}

// expand is what tokens decode to after the history hist.
func expand(hist []byte, tokens []token) []byte {
	out := hist
	for _, t := range tokens {
		if t.length == 0 {
			out = append(out, t.lit)
			continue
		}
		for range t.length {
			out = append(out, out[len(out)-t.dist])
		}
	}
	return out
}

// randomLens returns a random complete code of used codewords (at most
// maxLen bits) over n symbols, with the symbols in must among them: it
// splits random leaves of a code tree until it has enough. One codeword
// gets a single 1-bit code (the incomplete code that DEFLATE allows).
func randomLens(rng *rand.Rand, n, used int, maxLen uint8, must ...int) []uint8 {
	leaves := []uint8{1, 1}
	if used == 1 {
		leaves = []uint8{1}
	}
	for len(leaves) < used {
		i := rng.IntN(len(leaves))
		if leaves[i] >= maxLen {
			continue
		}
		// Deep codes come from splitting the deepest leaves often.
		if rng.IntN(3) == 0 {
			for j, l := range leaves {
				if l > leaves[i] && l < maxLen {
					i = j
				}
			}
		}
		leaves[i]++
		leaves = append(leaves, leaves[i])
	}
	lens := make([]uint8, n)
	perm := rng.Perm(n)
	syms := append([]int(nil), must...)
	for _, s := range perm {
		if len(syms) == len(leaves) {
			break
		}
		dup := false
		for _, m := range must {
			dup = dup || m == s
		}
		if !dup {
			syms = append(syms, s)
		}
	}
	for i, s := range syms {
		lens[s] = leaves[i]
	}
	return lens
}

// randomTokens returns count random symbols that the codes can encode,
// after hist bytes of history (matches reach no further back).
func randomTokens(rng *rand.Rand, litLens, distLens []uint8, hist, count int) []token {
	var lits, lengths, dists []int
	for s, l := range litLens {
		switch {
		case l == 0 || s == endOfBlock || s > 285:
		case s < 256:
			lits = append(lits, s)
		default:
			lengths = append(lengths, s)
		}
	}
	for s, l := range distLens {
		if l != 0 && s < 30 {
			dists = append(dists, s)
		}
	}
	var out []token
	have := hist
	for len(out) < count {
		if len(lengths) > 0 && len(dists) > 0 && rng.IntN(2) == 0 {
			ls := lengths[rng.IntN(len(lengths))]
			ds := dists[rng.IntN(len(dists))]
			lb, le := int(litSym[ls]>>16), uint(litSym[ls]&0xff)
			db, de := int(distSym[ds]>>16), uint(distSym[ds]&0xff)
			length := lb + rng.IntN(1<<le)
			if ls == 284 && length == 258 {
				length = 257 // 258 is symbol 285's
			}
			d := db + rng.IntN(1<<de)
			if d <= have {
				out = append(out, token{length: length, dist: d})
				have += length
				continue
			}
		}
		if len(lits) > 0 {
			out = append(out, token{lit: byte(lits[rng.IntN(len(lits))])})
			have++
		} else if len(lengths) == 0 || len(dists) == 0 {
			break
		}
	}
	return out
}
