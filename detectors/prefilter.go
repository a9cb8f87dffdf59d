package detectors

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/bits"
	"slices"
)

// The keyword prefilter is a sampled, hashed q-gram filter (in the spirit of
// Wu-Manber) with two tables:
//
//   - ASCII keywords: with every keyword at least m bytes long, an
//     occurrence starting at p fully contains the trigrams at any
//     step = m-2 consecutive positions p+o .. p+o+step-1, and exactly one of
//     them is a multiple of step; so the scan looks at the trigram at every
//     step'th position (step 2 for the built-in set, whose shortest keywords
//     have 4 bytes).
//   - UTF-16LE keywords ("p\x00a\x00s\x00s\x00…", at least 7 bytes) work
//     the same way with 4-grams at every 4th position. Their trigrams would
//     all be "x\x00y" or "\x00x\x00", which zero-padded binaries and space-
//     separated text are full of; their 4-grams hold two characters.
//
// Each keyword registers the step consecutive q-grams that are rarest in disk
// content (by a static byte-frequency table), which keeps prose, code and
// binaries from hitting the filter on common trigrams such as "pas". Each
// sampled q-gram is case-folded with one AND (clearing bit 5 of every byte:
// coarser than fold, so a superset), hashed and tested against a 16 KiB
// bitset. Only on a set bit are the few (keyword, offset) candidates for that
// slot compared, exactly, with fold. Aligned 8-byte words of zeros are skipped
// with one compare: no keyword holds two NULs in a row (UTF-16LE ASCII
// keywords hold single NULs), so no sampled q-gram of a keyword lies inside
// such a word.
//
// The hot loop does, per 8 input bytes, four unaligned loads, six
// multiplicative hashes and six bit tests, with no branch but the final one;
// all hit handling lives out of line (verifyWord), so that the loop keeps its
// state in registers.
//
// On amd64 the same q-grams are tested 64 bytes at a time by vector filters
// (AVX-512 or AVX2 gathers, prefilter_amd64.s), which skip 4-grams where the
// bytes do not read as UTF-16LE ASCII text. Their trigram table is twice
// the size (32 KiB) under a hash that costs two vector instructions
// (slotV); a trigram hit then needs the keyword 4-gram around it (from the
// byte before it, or from it at a keyword's start) in a second bitset, and
// a 4-gram hit its own 4-gram, before any candidate is compared.
// TestPrefilterFindsEveryOccurrence holds every loop to a brute-force
// search.

const (
	minKeyword = 3
	maxStep    = 2
	hashMulti  = 0x9E3779B1
	// gram3Multi hashes trigrams. Of 2000 random odd multipliers it is one
	// for which no trigram of commonTrigramText shares a bit with a trigram
	// of a built-in keyword.
	gram3Multi = 0x7a8900f5
	foldMask64 = 0x4040404040404040
	// The vector filters' trigram hash (slotV) is the weighted sum
	// vecW0*b0 + vecW1*b1 + vecW2*b2 of the folded bytes: VPMADDUBSW and
	// VPMADDWD compute it exactly (|vecW0|+|vecW1| <= 146 keeps the byte
	// pairs' int16 sums from saturating). Of 8000 random weight triples
	// these made the fewest filter hits for the built-in keywords on a
	// training mix of executables (qemu, gdb, git, perl, vim, libc,
	// docker-registry) and text (Go and Python sources, licences, /etc);
	// on make bench's image they cut the filter's false hits from 44% of
	// its hits to 15%.
	vecW0, vecW1, vecW2 = 104, -35, 81
	vecBits             = 18 // 2^18-bit (32 KiB) bitset
	vecWords            = 1 << (vecBits - 5)
	// secondMulti hashes q-grams for prefilter.second; keys of 4-grams
	// that start a keyword are XORed with secondAtStart first, so that
	// they only answer for lanes at a keyword's start.
	secondMulti   = 0x85EBCA6B
	secondAtStart = 0x5A3C96E1

	gram3Bits  = 17 // 2^17-bit (16 KiB) bitset for ASCII trigrams
	gram4Bits  = 17 // and for UTF-16LE 4-grams
	gram3Words = 1 << (gram3Bits - 5)
	gram4Words = 1 << (gram4Bits - 5)
	// gram3Shift turns a trigram key times gram3Multi into a bitset word
	// index (the bit is the key's low 5 bits); gram4Shift turns a 4-gram key
	// times hashMulti into its slot.
	gram3Shift = 32 - (gram3Bits - 5)
	gram4Shift = 32 - gram4Bits
	// gram3Fold and gram4Fold keep 3 or 4 bytes of a little-endian load
	// and clear bit 5 of each: ASCII case folding in one AND.
	gram3Fold = 0x00DFDFDF
	gram4Fold = 0xDFDFDFDF

	// Vector filters (prefilter.vector).
	vectorAVX2   = "avx2"
	vectorAVX512 = "avx512"

	utf16Step       = 4
	blockSize       = 64
	blockSlack      = blockSize + 8 // the last word's loads reach 8 bytes on
	minUTF16Keyword = utf16Step + 3
	candBucketBits  = 12
)

// fold maps ASCII upper case to lower case (and a few punctuation bytes to
// their neighbours, harmlessly: the same fold is applied to keywords).
func fold(c byte) byte { return c | (c&0x40)>>1 }

// slot3 and slot4 map a folded trigram or 4-gram key (bytes little-endian,
// bit 5 cleared) to its bit in the table.
func slot3(k uint32) uint32 { return (k*gram3Multi>>gram3Shift)<<5 | k&31 }
func slot4(k uint32) uint32 { return k * hashMulti >> gram4Shift }

// slotV maps a folded trigram key to its bit in prefilter.bitsV.
func slotV(k uint32) uint32 {
	h := vecW0*int32(k&0xFF) + vecW1*int32(k>>8&0xFF) + vecW2*int32(k>>16&0xFF)
	return (uint32(h)&(vecWords-1))<<5 | k&31
}

// slot2 maps a folded trigram or 4-gram key to its bit in prefilter.second.
func slot2(k uint32) uint32 { return k * secondMulti >> (32 - gram3Bits) }

func (p *prefilter) setSecond(k uint32) {
	s := slot2(k)
	p.second[s>>5] |= 1 << (s & 31)
}

func (p *prefilter) inSecond(k uint32) bool {
	s := slot2(k)
	return p.second[s>>5]&(1<<(s&31)) != 0
}

func gramKey(b []byte) uint32 {
	var k uint32
	for i, c := range b {
		k |= uint32(c) << (8 * i)
	}
	return k & gram4Fold
}

type kwCand struct {
	slot uint32
	kw   uint32 // keyword index
	off  uint32 // offset of the sampled q-gram inside the keyword
	n    uint32 // keyword length
	// head holds the first (up to) 8 folded bytes of the keyword, mask
	// which bytes of head are keyword bytes.
	head, mask uint64
}

// candTable lists the candidates of each set slot, bucketed by the slot's
// low candBucketBits bits.
type candTable struct {
	start []uint32 // 1<<candBucketBits + 1 offsets into cands
	cands []kwCand
}

func newCandTable(cs []kwCand) candTable {
	const n = 1 << candBucketBits
	slices.SortFunc(cs, func(a, b kwCand) int { return int(a.slot&(n-1)) - int(b.slot&(n-1)) })
	t := candTable{start: make([]uint32, n+1), cands: cs}
	k := 0
	for b := range n {
		t.start[b] = uint32(k)
		for k < len(cs) && cs[k].slot&(n-1) == uint32(b) {
			k++
		}
	}
	t.start[n] = uint32(len(cs))
	return t
}

func (t *candTable) bucket(slot uint32) []kwCand {
	b := slot & (1<<candBucketBits - 1)
	return t.cands[t.start[b]:t.start[b+1]]
}

type prefilter struct {
	step int // sampling step of the ASCII table: 1 or 2
	// vector names the vector filter scanStep2 uses (vectorAVX2…), or is
	// "" for a scalar loop: without such a CPU; with 3-byte keywords
	// (step 1); when a keyword q-gram
	// hashes to the slot of an all-zero (or all-space) q-gram, as the vector
	// filters do not skip zero words and would hit all over binaries; and
	// when a keyword has a byte outside 0x01..0x7F (asciiKeywords).
	vector string
	bits3  [gram3Words]uint32
	bits4  [gram4Words]uint32
	// bitsV holds the sampled trigrams again for the vector filters,
	// under slotV.
	bitsV [vecWords]uint32
	// second is a second test of what the vector filters passed, under
	// another hash (slot2): for each sampled trigram of a keyword, the
	// keyword 4-gram that starts a byte before it (or at it, at offset 0,
	// under a different key: secondAtStart); for each sampled UTF-16LE
	// 4-gram, itself. On make bench's image a fifth of the trigram lanes
	// the filter passes get through it; most of the others were true
	// hits of the trigram in words that are no keyword.
	second [gram3Words]uint32
	cands3 candTable
	cands4 candTable
	kws    [][]byte // folded keywords
}

// keywordHit is one verified keyword occurrence.
type keywordHit struct {
	pos int
	kw  int
}

// isUTF16Keyword reports keywords that go to the 4-gram table: UTF-16LE
// text (NULs at odd offsets) long enough for the 4-gram step.
func isUTF16Keyword(k []byte) bool {
	if len(k) < minUTF16Keyword {
		return false
	}
	for i := 1; i < len(k); i += 2 {
		if k[i] != 0 {
			return false
		}
	}
	return true
}

func newPrefilter(keywords [][]byte) (*prefilter, error) {
	p := &prefilter{step: maxStep}
	for _, k := range keywords {
		if len(k) < minKeyword {
			return nil, fmt.Errorf("keyword of %d bytes: need at least %d", len(k), minKeyword)
		}
		if k[0] == 0 || slices.Contains(windows2(k), [2]byte{}) {
			return nil, fmt.Errorf("keyword starts with NUL or holds two NULs in a row")
		}
		if !isUTF16Keyword(k) {
			p.step = min(p.step, len(k)-2)
		}
		p.kws = append(p.kws, foldBytes(k))
	}
	var c3, c4 []kwCand
	common := commonTrigrams()
	class := byteClassFreq()
	for i, k := range p.kws {
		var head, mask uint64
		for j := 0; j < len(k) && j < 8; j++ {
			head |= uint64(k[j]) << (8 * j)
			mask |= 0xFF << (8 * j)
		}
		cand := func(s uint32, off int) kwCand {
			return kwCand{slot: s, kw: uint32(i), off: uint32(off), n: uint32(len(k)), head: head, mask: mask}
		}
		if isUTF16Keyword(k) {
			o := rarestGrams(k, 4, utf16Step, &class, nil)
			for off := o; off < o+utf16Step; off++ {
				s := slot4(gramKey(k[off : off+4]))
				c4 = append(c4, cand(s, off))
				p.bits4[s>>5] |= 1 << (s & 31)
				p.setSecond(gramKey(k[off : off+4]))
			}
			continue
		}
		o := rarestGrams(k, 3, p.step, &class, common)
		for off := o; off < o+p.step; off++ {
			s := slot3(gramKey(k[off : off+3]))
			c3 = append(c3, cand(s, off))
			p.bits3[s>>5] |= 1 << (s & 31)
			v := slotV(gramKey(k[off:off+3]) & gram3Fold)
			p.bitsV[v>>5] |= 1 << (v & 31)
			switch {
			case off > 0:
				p.setSecond(gramKey(k[off-1 : off+3]))
			case len(k) >= 4:
				p.setSecond(gramKey(k[:4]) ^ secondAtStart)
			}
		}
	}
	p.cands3 = newCandTable(c3)
	p.cands4 = newCandTable(c4)
	sv, s4 := slotV(0), slot4(0)
	if p.step == 2 && p.bitsV[sv>>5]&(1<<(sv&31)) == 0 && p.bits4[s4>>5]&(1<<(s4&31)) == 0 && asciiKeywords(keywords) {
		p.vector = vectorFilter()
	}
	return p, nil
}

// rarestGrams returns the offset o that minimises the expected frequency of
// the q-grams at o .. o+step-1 of the folded keyword k; class is
// byteClassFreq's table.
func rarestGrams(k []byte, q, step int, class *[256]float64, common map[uint32]float64) int {
	best, bestScore := 0, -1.0
	for o := 0; o+step-1+q <= len(k); o++ {
		score := 0.0
		for j := o; j < o+step; j++ {
			f := 1.0
			for _, c := range k[j : j+q] {
				f *= class[c&0xDF]
			}
			score += max(f, common[gramKey(k[j:j+q])])
		}
		if bestScore < 0 || score < bestScore {
			best, bestScore = o, score
		}
	}
	return best
}

// byteClassFreq weighs each byte by the frequency of its class: a data
// q-gram hits the filter whenever it equals a keyword q-gram with bit 5 of
// every byte cleared.
func byteClassFreq() [256]float64 {
	var class [256]float64
	for c := range 256 {
		class[c&0xDF] += float64(byteFreq[c]) / 65536
	}
	return class
}

func windows2(k []byte) [][2]byte {
	out := make([][2]byte, 0, len(k))
	for i := 0; i+1 < len(k); i++ {
		out = append(out, [2]byte{k[i], k[i+1]})
	}
	return out
}

// A sectorProbe asks scan to note, while each piece of buf is in the L1
// cache, the offsets p = phase (mod align) where magic starts: the keytab
// detector's first test, which on its own pass over a 4 MiB chunk misses
// the cache at every sector.
type sectorProbe struct {
	phase, align int
	magic        [2]byte
	found        []int
	// done is set when scan probed all of buf; else the caller must.
	done bool
}

// check probes the offsets in [from, to) of buf.
func (sp *sectorProbe) check(buf []byte, from, to int) {
	to = min(to, len(buf)-1)
	for o := from + ((sp.phase-from)%sp.align+sp.align)%sp.align; o < to; o += sp.align {
		if buf[o] == sp.magic[0] && buf[o+1] == sp.magic[1] {
			sp.found = append(sp.found, o)
		}
	}
}

// scan appends every keyword occurrence in buf to hits, ordered by position.
// A non-nil probe is filled when the vector filter runs.
func (p *prefilter) scan(buf []byte, hits []keywordHit, probe *sectorProbe) []keywordHit {
	if len(p.kws) == 0 {
		return hits
	}
	n0 := len(hits)
	switch {
	case p.vector != "":
		hits = p.scanStep2Vector(buf, hits, probe)
	case p.step == 2:
		hits = p.scanStep2(buf, hits)
	default:
		hits = p.scanStep1(buf, hits)
	}
	// Keywords sampled at different offsets report out of order.
	if added := hits[n0:]; !slices.IsSortedFunc(added, cmpHit) {
		slices.SortFunc(added, cmpHit)
	}
	return hits
}

func cmpHit(a, b keywordHit) int {
	if a.pos != b.pos {
		return a.pos - b.pos
	}
	return a.kw - b.kw
}

// scanStep2 works in blocks of 64 bytes. Blocks without a zero byte (text,
// most random data) hold no UTF-16LE keyword 4-gram and no zero word: they
// take the trigram-only loop.
func (p *prefilter) scanStep2(buf []byte, hits []keywordHit) []keywordHit {
	b3, b4 := &p.bits3, &p.bits4
	i := 0
	for ; i+blockSlack <= len(buf); i += blockSize {
		blk := (*[blockSlack]byte)(buf[i : i+blockSlack])
		utf16 := hasZeroByte64(blk)
		// The loops only note which words hit (no call inside keeps
		// their state in registers); verifyWord runs after them.
		var m uint
		if !utf16 {
			for k := 0; k < blockSize; k += 8 {
				b := (*[16]byte)(blk[k : k+16])
				t0 := binary.LittleEndian.Uint32(b[0:4]) & gram3Fold
				t2 := binary.LittleEndian.Uint32(b[2:6]) & gram3Fold
				t4 := binary.LittleEndian.Uint32(b[4:8]) & gram3Fold
				t6 := binary.LittleEndian.Uint32(b[6:10]) & gram3Fold
				if b3[t0*gram3Multi>>gram3Shift]&(1<<(t0&31)) != 0 ||
					b3[t2*gram3Multi>>gram3Shift]&(1<<(t2&31)) != 0 ||
					b3[t4*gram3Multi>>gram3Shift]&(1<<(t4&31)) != 0 ||
					b3[t6*gram3Multi>>gram3Shift]&(1<<(t6&31)) != 0 {
					m |= 1 << (k / 8)
				}
			}
		} else {
			// Zero words are skipped, and UTF-16LE 4-grams (at offsets 0
			// and 4 of each word) are tested too.
			for k := 0; k < blockSize; k += 8 {
				b := (*[16]byte)(blk[k : k+16])
				w := binary.LittleEndian.Uint64(b[0:8])
				if w == 0 {
					continue
				}
				l2 := binary.LittleEndian.Uint32(b[2:6])
				l4 := binary.LittleEndian.Uint32(b[4:8])
				l6 := binary.LittleEndian.Uint32(b[6:10])
				t0 := uint32(w) & gram3Fold
				t2 := l2 & gram3Fold
				t4 := l4 & gram3Fold
				t6 := l6 & gram3Fold
				q0 := (uint32(w) & gram4Fold) * hashMulti >> gram4Shift
				q4 := (l4 & gram4Fold) * hashMulti >> gram4Shift
				if b3[t0*gram3Multi>>gram3Shift]&(1<<(t0&31)) != 0 ||
					b3[t2*gram3Multi>>gram3Shift]&(1<<(t2&31)) != 0 ||
					b3[t4*gram3Multi>>gram3Shift]&(1<<(t4&31)) != 0 ||
					b3[t6*gram3Multi>>gram3Shift]&(1<<(t6&31)) != 0 ||
					b4[q0>>5]&(1<<(q0&31)) != 0 ||
					b4[q4>>5]&(1<<(q4&31)) != 0 {
					m |= 1 << (k / 8)
				}
			}
		}
		for ; m != 0; m &= m - 1 {
			hits = p.verifyWord(buf, i+8*bits.TrailingZeros(m), utf16, hits)
		}
	}
	return p.verifyTail(buf, i, hits)
}

// scanStep2Vector is scanStep2 with the sampled q-grams of 64 bytes tested
// at once by filterBlocks, which marks each q-gram that hits its bitset;
// those that pass the second bitset too are compared (3-byte keywords,
// whose trigram has no 4-gram around it, make step 1 and no vector
// filter). It tests the same
// trigrams as scanStep2 plus those in zero words (which only add misses),
// and the 4-grams of the lanes that read as UTF-16LE ASCII text, which
// every sampled 4-gram of a keyword does.
func (p *prefilter) scanStep2Vector(buf []byte, hits []keywordHit, probe *sectorProbe) []keywordHit {
	const seg = 512 // blocks per filterBlocks call (a 4 KiB array)
	var blocks [seg]uint64
	// filterBlocks reads 66 bytes per block; the q-gram loads below read
	// 4 bytes from offset 62, and verifyTail takes a multiple of 8.
	nb := 0
	if len(buf) >= 66 {
		nb = (len(buf) - 2) / 64
	}
	for b0 := 0; b0 < nb; b0 += seg {
		n := min(seg, nb-b0)
		filtered := p.filterBlocks(buf[64*b0:], n, blocks[:n])
		if probe != nil {
			probe.check(buf, 64*b0, 64*(b0+n))
		}
		for _, blk := range filtered {
			base := 64 * (b0 + int(blk>>48))
			for m := blk & (1<<48 - 1); m != 0; m &= m - 1 {
				l := bits.TrailingZeros64(m)
				pos := base + 4*(l&15) + 2*(l>>4&1)
				k := binary.LittleEndian.Uint32(buf[pos:])
				if l < 32 {
					// A keyword with this trigram at offset o >= 1 holds
					// the 4-gram at pos-1; at o = 0, the one at pos.
					before := binary.LittleEndian.Uint32(buf[max(pos, 1)-1:])
					if p.inSecond(before&gram4Fold) || p.inSecond(k&gram4Fold^secondAtStart) {
						s := slot3(k & gram3Fold)
						hits = p.compare(buf, pos, s, p.cands3.bucket(s), hits)
					}
				} else if k &= gram4Fold; p.inSecond(k) {
					s := slot4(k)
					hits = p.compare(buf, pos, s, p.cands4.bucket(s), hits)
				}
			}
		}
	}
	if probe != nil {
		probe.check(buf, 64*nb, len(buf))
		probe.done = true
	}
	return p.verifyTail(buf, 64*nb, hits)
}

// vectorFilter names the fastest vector filter this CPU runs ("" for none).
func vectorFilter() string {
	if v := supportedVectors(); len(v) > 0 {
		return v[len(v)-1]
	}
	return ""
}

// asciiKeywords reports whether every keyword byte is in 0x01..0x7F, but
// for the NULs of UTF-16LE keywords: the vector filters skip the 4-grams
// that do not read as UTF-16LE ASCII text.
func asciiKeywords(keywords [][]byte) bool {
	for _, k := range keywords {
		utf16 := isUTF16Keyword(k)
		for i, c := range k {
			if c >= 0x80 || c == 0 && !(utf16 && i%2 == 1) {
				return false
			}
		}
	}
	return true
}

// hasZeroByte64 reports whether the first 64 bytes of blk hold a zero byte.
func hasZeroByte64(blk *[blockSlack]byte) bool {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	v0 := binary.LittleEndian.Uint64(blk[0:8])
	v1 := binary.LittleEndian.Uint64(blk[8:16])
	v2 := binary.LittleEndian.Uint64(blk[16:24])
	v3 := binary.LittleEndian.Uint64(blk[24:32])
	v4 := binary.LittleEndian.Uint64(blk[32:40])
	v5 := binary.LittleEndian.Uint64(blk[40:48])
	v6 := binary.LittleEndian.Uint64(blk[48:56])
	v7 := binary.LittleEndian.Uint64(blk[56:64])
	return ((v0-lo)&^v0|(v1-lo)&^v1|(v2-lo)&^v2|(v3-lo)&^v3|
		(v4-lo)&^v4|(v5-lo)&^v5|(v6-lo)&^v6|(v7-lo)&^v7)&hi != 0
}

func (p *prefilter) scanStep1(buf []byte, hits []keywordHit) []keywordHit {
	b3, b4 := &p.bits3, &p.bits4
	i := 0
	for ; i+16 <= len(buf); i += 8 {
		b := buf[i : i+16]
		w := binary.LittleEndian.Uint64(b)
		if w == 0 {
			continue
		}
		hit := false
		for k := 0; k < 8; k++ {
			t := binary.LittleEndian.Uint32(b[k:]) & gram3Fold
			hit = hit || b3[t*gram3Multi>>gram3Shift]&(1<<(t&31)) != 0
		}
		for k := 0; k < 8; k += utf16Step {
			q := (binary.LittleEndian.Uint32(b[k:]) & gram4Fold) * hashMulti >> gram4Shift
			hit = hit || b4[q>>5]&(1<<(q&31)) != 0
		}
		if hit {
			hits = p.verifyWord(buf, i, true, hits)
		}
	}
	return p.verifyTail(buf, i, hits)
}

// verifyWord handles a filter hit in the 8 sampled bytes at i (a multiple of
// 8, with i+16 <= len(buf)): it rechecks each sampled position (4-grams only
// if utf16) and compares the candidates.
//
//go:noinline
func (p *prefilter) verifyWord(buf []byte, i int, utf16 bool, hits []keywordHit) []keywordHit {
	b := buf[i : i+16]
	for k := 0; k < 8; k += p.step {
		s := slot3(binary.LittleEndian.Uint32(b[k:]) & gram3Fold)
		if p.bits3[s>>5]&(1<<(s&31)) != 0 {
			hits = p.compare(buf, i+k, s, p.cands3.bucket(s), hits)
		}
	}
	for k := 0; utf16 && k < 8; k += utf16Step {
		s := slot4(binary.LittleEndian.Uint32(b[k:]) & gram4Fold)
		if p.bits4[s>>5]&(1<<(s&31)) != 0 {
			hits = p.compare(buf, i+k, s, p.cands4.bucket(s), hits)
		}
	}
	return hits
}

// verifyTail checks every sampled position from i (a multiple of 8) on.
func (p *prefilter) verifyTail(buf []byte, i int, hits []keywordHit) []keywordHit {
	for j := i; j+3 <= len(buf); j += p.step {
		hits = p.verify3(buf, j, hits)
	}
	for j := i; j+4 <= len(buf); j += utf16Step {
		hits = p.verify4(buf, j, hits)
	}
	return hits
}

func (p *prefilter) verify3(buf []byte, j int, hits []keywordHit) []keywordHit {
	if j+3 > len(buf) {
		return hits
	}
	s := slot3(gramKey(buf[j : j+3]))
	if p.bits3[s>>5]&(1<<(s&31)) == 0 {
		return hits
	}
	return p.compare(buf, j, s, p.cands3.bucket(s), hits)
}

func (p *prefilter) verify4(buf []byte, j int, hits []keywordHit) []keywordHit {
	if j+4 > len(buf) {
		return hits
	}
	s := slot4(gramKey(buf[j : j+4]))
	if p.bits4[s>>5]&(1<<(s&31)) == 0 {
		return hits
	}
	return p.compare(buf, j, s, p.cands4.bucket(s), hits)
}

// compare checks the candidates of slot s sampled at j against buf.
func (p *prefilter) compare(buf []byte, j int, s uint32, cands []kwCand, hits []keywordHit) []keywordHit {
	for _, c := range cands {
		if c.slot != s {
			continue
		}
		start := j - int(c.off)
		if start < 0 || start+int(c.n) > len(buf) {
			continue
		}
		if start+8 <= len(buf) {
			w := binary.LittleEndian.Uint64(buf[start:])
			if (w|(w&foldMask64)>>1^c.head)&c.mask != 0 {
				continue
			}
			if c.n <= 8 {
				hits = append(hits, keywordHit{pos: start, kw: int(c.kw)})
				continue
			}
		}
		if equalFold(buf[start:start+int(c.n)], p.kws[c.kw]) {
			hits = append(hits, keywordHit{pos: start, kw: int(c.kw)})
		}
	}
	return hits
}

// equalFold compares b, folded, with the folded keyword kw (same length).
func equalFold(b, kw []byte) bool {
	for i, kc := range kw {
		if fold(b[i]) != kc {
			return false
		}
	}
	return true
}

// byteFreq is the frequency of each byte value in disk content (in 1/65536,
// at least 1), measured once over an even mix of executables and shared
// libraries (/usr/bin, /usr/lib) and text (/usr/share/doc, /etc). It only
// steers which trigrams of a keyword the prefilter samples.
var byteFreq = [256]uint16{
	11065, 714, 340, 267, 294, 261, 129, 165, 491, 230, 620, 90, 128, 128, 269, 987,
	307, 91, 113, 73, 98, 90, 63, 84, 193, 49, 51, 41, 90, 47, 44, 278,
	2825, 53, 72, 93, 679, 128, 40, 90, 280, 186, 134, 103, 150, 371, 500, 254,
	377, 490, 246, 179, 201, 215, 151, 144, 251, 283, 307, 123, 161, 170, 92, 46,
	225, 638, 183, 178, 513, 302, 120, 117, 1747, 388, 77, 84, 549, 215, 128, 99,
	195, 55, 133, 199, 233, 162, 89, 86, 106, 67, 57, 109, 114, 130, 65, 375,
	129, 1047, 337, 706, 680, 1630, 597, 415, 468, 1072, 77, 200, 689, 503, 1051, 1081,
	559, 54, 909, 953, 1454, 564, 195, 198, 177, 273, 84, 49, 108, 57, 63, 51,
	181, 75, 44, 430, 341, 420, 60, 50, 91, 1033, 33, 699, 62, 459, 54, 47,
	115, 33, 34, 37, 57, 42, 31, 33, 58, 33, 31, 30, 43, 36, 30, 31,
	63, 30, 31, 31, 37, 31, 30, 28, 56, 31, 33, 34, 42, 31, 30, 49,
	64, 31, 31, 32, 47, 36, 98, 72, 130, 100, 147, 99, 98, 58, 97, 71,
	362, 133, 93, 162, 121, 84, 110, 181, 75, 77, 48, 36, 44, 39, 41, 38,
	96, 51, 90, 43, 42, 47, 44, 42, 71, 42, 44, 67, 38, 38, 51, 94,
	97, 49, 58, 41, 54, 41, 56, 66, 501, 249, 60, 108, 81, 70, 65, 112,
	85, 45, 75, 117, 52, 56, 125, 87, 132, 82, 96, 101, 112, 155, 214, 1740,
}

// commonTrigrams returns the frequency (a fraction of all positions in the
// mix byteFreq describes) of the trigrams in commonTrigramText, keyed by
// gramKey. Frequent English, configuration and code trigrams ("wor", "ser",
// "vic") are far more common than the product of their byte frequencies
// says.
func commonTrigrams() map[uint32]float64 {
	// Measured frequency (parts per million) at some ranks; in between,
	// interpolated on a log-log scale (the ranks follow Zipf's law).
	anchors := [...][2]float64{{1, 6535}, {10, 2588}, {100, 850}, {1000, 188}, {4000, 35}}
	var logs [len(anchors)][2]float64
	for i, a := range anchors {
		logs[i] = [2]float64{math.Log(a[0]), math.Log(a[1])}
	}
	m := make(map[uint32]float64, len(commonTrigramText)/3)
	for r := 0; 3*r+3 <= len(commonTrigramText); r++ {
		ppm := anchors[0][1]
		// The last anchor at or below r starts r's segment; past the
		// last anchor the frequency stays at its value.
		for i := len(anchors) - 1; i >= 1; i-- {
			if float64(r) >= anchors[i-1][0] {
				lr0, lf0, lr1, lf1 := logs[i-1][0], logs[i-1][1], logs[i][0], logs[i][1]
				x := min(1, (math.Log(float64(r))-lr0)/(lr1-lr0))
				ppm = math.Exp(lf0 + x*(lf1-lf0))
				break
			}
		}
		// Text is half of the mix.
		m[gramKey([]byte(commonTrigramText[3*r:3*r+3]))] = ppm / 1e6 / 2
	}
	return m
}

// commonTrigramText holds the 4096 most frequent trigrams, most frequent
// first, in text files (/usr/share/doc, man pages, /etc, Go and Python
// sources), counted with bit 5 of every byte cleared (so "the", "THE" and
// "The" are one entry, and so are " " and NUL) and written in their most
// common form.
const commonTrigramText = "" +
	"   \n   ththe =  inhe intion  =ing---ed tio= 0 co 0x toon  reanderrcomentis to forateconng or  fi" +
	"er sys anes nd terin ile foallfil\t\n ati,\n sta \n str ma no de\n\n  is.\n\n  \nle e t seadd li" +
	"libproame=== erers ofble\\&. pruselinreant \n\t\nver stectted a setre of onsan  pa\t\n\t\n\tiit " +
	"se notabl\n\tsresmane i widatnamithat  ad.\n estuinnste ss ae cess usthiommnte',  uiif .\n\t been " +
	"s torttestrimene aineth  bysioget000te ratstet tpatgenhanfixrin on {\nthouncas cal\n\n\thisagener" +
	" dochaturot , 'mitst wit~~~perist sin tove{\n\tain ch wh\t: poread unonf00\n nehereraptr ca>\n\n" +
	"ode.coly  alll d actiys_ sytine f0\n\ts iserfun  'tra\t, s fure buencrecorgts insendby s.\n sutim" +
	"sigrr \n\t\taseles',\nianignd betutordefimerro\tif  < 20 exd i  s moch romretprerordebe.\n arme " +
	"are\n\tracktypal ce  dithaurn\",\nrge: a// tem frtatntpcheang, uve opet, newe onfi haultfroockcat" +
	"tpt201hatvald tfig.orlocypeert uppariteptingeemodirunsix tr(  text temat ge0x1r t  \"ontene\\frt i" +
	"e dnta asoreomptch}\n\tcesnalt sdd  - sesediderakee, icaom>pachenassathace, ert cod\n20outoptf t" +
	"ns be \n\n2 itelemodmaiizeails: sine plentopargtrurs m>\nwheaut me202ge nce sorsiranom y tevebia" +
	"t an ainc\tsyereleauilid \n\te loet ebit  redapp200 if --harmesdes  -sedystire  i entabe   nact " +
	":  ...oseritimpkeyt fbuindetars oildrg>\n//trernolowtaldede: indld , spen oprem0\n\nlatlicatcssi" +
	"nitorms, speoinnetmovsel\n\n\n  rigurrn, asca  (disry de  at0x8s sn ir emakut flat calidingure m" +
	"}\n\n\t\n\nmpl waillive\trentrhon clle.efie lpecdit vamon= eattifipleddre nmmiart tr: rs waulrel" +
	"itinc  oran.ren\n\\fe\n , 0poisup\t}\neriss d s:\n nedt eiced,  e1ow e1 e rmmaini\n\t}ew 0x2gnuram" +
	"s\n d o lecloataeteonebus\n\nfpliree,\n\tyth_seefaettntieas spe u poideupp\n}\nr aar elfiss2\n\t" +
	"s noff vet otenlosck   cena.\n.pyternsizvar talasour\n- racrmapdattitai0, updoun_, faun cllostsmpo" +
	", pyteequlagrepntsbytpr s cworroulis { &. \n cwhint,secgescane bes.ppostone g td f\nfupriact020fie" +
	"eedn o  ao tveno naridecdoc, t\t,\nc ( weafeuctue safet__re\t  n s100f eethecocla\t (hor0x4.po da" +
	" +0do nsas  e wn  ordumeminichon.ad  ra\n\t exputhfinckeysces:r  or\tiesed- apeamdencorinfruc  p" +
	"r =uni!= 4\n\t !=_gereg\n m\t\t\tiocsocnctg>\n\\fieckroc sh\n\n/arae emet.c ropic ity  uecickatex" +
	"onl ke imssereftror c\ncobininkede\\fbibc: dberorylue fu  fe.p\n\t(lanervmord.\nmedn fnfoe\n\tel " +
	"reqocacto= sr sr: nly mirn\n@dertiard\t {undhecrce: fno achn.o:= fe.fre :=ninagspe \n\tper(marncy" +
	"eat0\t\n fa\nthtic 0 er.\n\ttspad mmerfer8\n\tnowbugr, s galuds stir ion/led\tsibutimir\t tmpd c" +
	"curt.\npla(fdostast (r\n# eme\tipruniel1\n\titsens.  unts (n, als }\nesedevam arcger-- uledepd  " +
	"n mighrotcolque ured.mbeposo a\\u0: uacc\n.rls n b aussudbuson acbas_indon avlog sas mt32\n.i, i" +
	"willlecreampscrixen p\n\ncsenke us (0x\n sndisou  dfr\nwriutigs cascluriswinups (e\n -criddeami, _" +
	"s by: 0 {uesp  nt3oulgroty numpol ed. twar1\t\nit\nrrehicte:rn e',hasexeoli010ial // lavict\n\nor:" +
	"y aurcurgt bfictann wshoolllares\n_p0nonem iftginrip/liomearyoduputote\n dgnat way /tm  mancevians" +
	"lerespooltiarevttetivtoon.\nlud-bysrc tirianclsue/ {dreon-otoloar fhin; uc: ust_co\naulitude  w cr" +
	" bos rt drov\n.\\cy=inu>  \t.\n/ t\n\n-x80itt\ters d(\t s piligneuteeptantcifavencolabootn d###erm" +
	"abi scr ot p\n.pd work&.\nother\n\n\t_inaby:n\n lt  @@he\negeccedle _,n\n}; d, cmemppl bandot m\n\ta" +
	"o sadeany\n aorilf.bufnabrchhesl  oerre\non\nrtye gso -ofed\nnoeleta song\trtoadnnendlmsglti fl.pp" +
	"simkaggrapp\ntilric\t\teliechiescr(e nunsi>\n \ndare.y sh t\t\t,_mad psh bc_: #p; tlsvedmac\n\tb" +
	"e\n.g an e nift_op;ketownmulnatght{ ilem.inshagitsch, nhavbacarsk  pkgquiiens_siseno(\n\tman/del" +
	"6\n\tnor(errollly0x3oup  #rnad\n 32\n he-\n\n1 :etaseeg irr(o(0d dlimhttiltutoe; (un binsettp, w" +
	"s u\n.satuppr1 !rteuidhouualolde1\tipt(e1rc/ttr\", >\ndepe: c: natosagribst_t lgidse.lon-in_sth a" +
	"x10il ib/uldt\n  pekerup umbdowooplac.re(r'ssadulll(t rsub (crseocet', rut\t fferiebooiff oungs+++" +
	" # o bcryrneashng.milc  t ne hd-oiumdifd l\n\tfdium\n\n  nnt\t jaon'ann <ar(u\t ur davan'to c ty" +
	"r mcleexifd ee mapf asyng> rveron\t; ets pys\t:cerey erfjec 'cm t 0\tle; srols (f: srig\n\td\n\nt" +
	"f-bs. 021t64hosoidcoptifng\n&.\\bite.c #1e.ausi't ctey i022ff-001ibuchr  bearmmecen-deppewergccfai" +
	"onaeno.\\\"nuxeenbrae vftealand\nn.cum\n juiedeldthr\tet0  pas 0, ho3\n\tvidvoin nlse, b=\\f won r" +
	" munt6micpstt.c_de\\\" ed,gedmprtly 's=meorsy=m; }n lhelomag frawbloond(inaniily_t tie  ert_ltekin" +
	"nut_pr(sy_tr gikenocuip s\\&n uwedks pag/mal telit_s, osymkefarn-co aby ofacmaxts., fokeodin <://" +
	"lexmisflon: --\nisacounece\t\nalet uta (\t\ng, d\n\tdpkcumtea\n\tvr ppidiasle-aft viy cu00atsula" +
	"on,cep.\\&utlorrme.r.\n.0.mpir ler_ike_liipvmalmpaowsx40watilssomocs 1.o iimactltecifyemp/pyl b \\\n" +
	"eprrd }\n d.ousr aftagufffamgre brstdtso.deec solwas -0800: \"or\nuirop uen 4\nouscap400-\\ud nc l" +
	" #9\n\tnnilg ssamh sral  oloony xteg oonnx20te\npv6may7\n\tefeiabrapktont.esoellull, mrk howvin\n t" +
	"masriosabrar@@ t: sktl.cs er',velt_df s  {ze -\n-o l5\n\tug eskd ulikepotry <ccooy b+ cpe_h  erg" +
	" 2.te_nchopyto_;\n ir te.rypg  /usdany d+02\t_, \\f gre (11-xedecu\n.b//g, retcp\n.d res,l silalt_" +
	".frrmig: xcbexaeloe <s:\nengl ale_dr eofc++else\t,e_tos egif\n\trog64\nrivlay= 1pt un smiems\t+ " +
	"yptnes\n\t+.sp3.1al(arkndaa cx1\nexcbolemadetetrd\t,.rslla <j/10mp  <sr\n in\ny fxec roadahri_fi" +
	"osseanndsng,fd.o m fe_pack_ibsil.tom0x5-li <m (ss lrvins.ipp-20croobj, d9\n\t(pa elabo/sytake\"," +
	"\t:\nms y, ctu.o o dpinle\n (1o #ierslasr/ wriblhrer wn\n\t\tprto\nowe 101  emu-enlia's irot>\nrs." +
	"orardeneeheaarryncnikmpzxesps:er,eak2  . ichouli \\ rnilsos 4: msepl con@r rt 2d eiscavifffnt(\tti" +
	"urihit: ink armmp/satnel\n\tce(\turaimopz2rooenve \"o r ovl(srsmtps.ac\nty.11 ot1\t = nbje\t\t\n" +
	"pile. emdy.\n tu (a db /t\n fen(p/th ir \n\n lnod011gumer/@or \"s dp\n ns =bel pirriecac\n\tckszer" +
	" htt_tiouol l ingt, \\p0 gstts/thuikrnt_\n # duxer_no\t\trr b <d.ner4yl p, 12, z2n2nio u4y/ cudar" +
	" em1, kr410 +01t (rguause #biler\t_exiva  lf n22 = 2gnoictr\t\nook11 firrdsmagump\tva12 eplr n_di" +
	"etp-sts hana20 h, sidn', my 12epaa\n\t>\n\ttok.tp\t_pn/l, 2utpnto0x6\n u1-0 idvirbpfbst/in jo- d" +
	"\n.t'\n tpumcvemi: lrstin_y peroniertao f-ret_f puly>x2\n_sitac 'isuninv_clceda ps:/apie_sask(se" +
	"gleirs gnc s ev- mnicse\nr uls.t_ce\\&ovi21 2-0youlec10-ebu- at hre:rtsein019cliefot v mcy  ogrole" +
	"ibr4  t_mid_/co0x7adol {bgntwoway\n g.c:gmaetiy\n sp\n: posio ps.c fdelpsit- il frg/st.nulwis00 " +
	" 3.llie\t: dr ce0xcyseip_lev\n rmptt_igpg  @r <ibgtst\n-\nwe a fdro-04follid(cl\\\n(liz6  narit_" +
	"vitonv5  elaraiy w plery1.1- ba  oest\t: (d-07 gcsurjul_chton: ton3hilmpf.pr4, caueceef r(fzeo3  " +
	"mbot {nd.ndron_se_awsurrbou-\n p\n\\v6_domat._lo (2 (w\"\t\nicis',ldsed\" bl  /le,0xfr\n\tls_s_f" +
	"\n--faltoset/inpavops ul tlealtg cducer-xpeptot_p-sedoemouymbvienmebee-10al\tfrar _\nap2: dltngl" +
	"\tso \nbcvi0x0d_t\n \nadidiainowebnksht 0.1r\n.x4\nspld\",th\ts_grfaer'n 2-11= 4lf edsphedlivio:\n\t" +
	" 13sib004s\n\tita _pcarl, 10\n obo  th_ (nmmoanu 'm, \"dditupizafuludituaid\tipe@gmce_ mpocgrosetw" +
	", lb\n\t\nbycc-rueeccf i_so\n\to gooctoloffig w009sco (pep d: zatfd\tpfr\tdl_nee=\"ibe'\t,_kesty" +
	"\npaaclynayle qu-1\tw u\"\n a bgthg.\n_un\n(ain/hem\"\n.g\n iore =.serlidriap 8  _envai ea 'a++/" +
	"_im16 d-b09-@re<aleacte-r(_y uerl= rjanh baf_tp\ng\\&a d\"co13 y lemb@gnrid\nfi 11ickntl-01n (r !" +
	".pa 14ano014sumiewwn \tma(aqggeh cpeea t(_pdynnt8tylpf_ws eyw\tinys rass_iurles\tarp= ixam 16ely" +
	" {}\"\n\ndemebasheitlligicoa n\"\"\"ywoedu(co1-1-05ou n@dtusbsd yobet\\\n\tff 9  0.0ts\nf cme=9-0" +
	"rob19 ed_= 3ve-_opnups\n\nxt nisnviw f 6414 12-f: /gouchupl15 m  rtmtep hidic  :cvetegdexgo_or_on:" +
	"t gf fs_pcgohod  h.shkedo_iy en gmysabeptsrim-08_ad (iublshiupgh\n 17  0.s_mgo:x aegad',op\\tmll o" +
	"ewinu. \"\"gs.e\n\n 19t{\nh fl: ev s <  vux hede>\n + dha\nt}ocotcpair_mong(t8\nr.cpesruljus-12}by" +
	"xit (tsang de klorcipuitfriaity\\&riffo pip <pfy d h25 .so bpn-ien\nor.sucsor//sbef:\n\nvatnt\nhtm" +
	"= {o ery.bre22-(li \"l xc-03ne\ty r/bicts.h w.\n  \\ves \"cd v2\t abax8\ns_cd\\&0-0ng\ts\",d gdap" +
	"ow\nry_\tbp.2.tel\tafiph(r0gs\tag 16\n 15l le:\noniet>nve 17hdredhfs o.\nibia lx0\n&.domsr0,(butit" +
	"9.0r0\tesu\tr0rodg p '\\e\\ftoc1: semkadxcec, c.s/gspadnpuxmlt\", 'pfr,\nliank_ve 9.{\n py ew.4: " +
	"op.nd_s_rid,lts18   gsui- g008 c+ r'mizs k\"\"\nit.n/ikew  j_naf lcy xtrc fm sp\\&popechlusac:unn" +
	"t_reva-pr_sy(steweis\nk tes/ad_  97  ct_tscie\t ==(reo\n \\{\\ed\\so_/den hr'\\erpy mrusme,n j\ten" +
	"\ninp tttht_l #2pan\n bitc 'drofr hin:ova#10ppiphik imst.sth <a rlefre-pon- tzipp0\tr(&u.oap_tue" +
	"23 cac= u\tpatligatx  \n\tlt\n\tfeadaepedus-aysde.ams2-120- oln3.1.0\t ap\ntf  /gifr(f, fbs 'et16" +
	"olaf.\n.brhomth@\n ieni\nan{\\\nisponmyin== ex .py},\nnslc_sncint1- syrie-2spomus_caisobpoiba6: " +
	"po-l.\nunlcitof\no gwai_pop.cfon 18 \"n0-1etlm cth\nsisotim i.\nt.ip-06ofi09 n ven\ts valg21-= b" +
	" \\{t \nt(r-02asich\n&.ftib802agi-bubliray013owisulxisealer@sk jou \"iciay nleg 'nl n-isf prg\\et." +
	"01-r_scieben. c 'fcb_ce._flquattl-paipsrtrp, l dd. \n\t{2fsotaisinagcpyt_autfns\nsea 22_foiatnt\\" +
	"otsrfrtaxnsuog 3: usa_al d/on\t uth.\n oc\ndeucee_c4 /ac 5: cc m a012nvaig d (aptr g 'reep069a m" +
	"nixfouhey agge.&.et_etrfl\t:hroid(re_kesldep s (m44 g mld-ipl\t//rm _tao <r\t:h: (madsie\n\\ ghdup" +
	"0: tadgmem r <ble\tncr  }egrmeonua(lebro\tmsy/pus\\,\n\\unkr/bseq\\}\natfeys. sl mce,\n\t1ty\\tto" +
	" \\& 't9: wsy101e -.dbff_uma cme\t an-rd_a1u 232 1kg:ecv- fge_8: ffs\n\ngfseagaplye_f n -09l\n l r" +
	"muxll\n \"m0\t\t08 klonoseb  'lov m, &.pchmat_knoh\t\n\n\ndr vn\t:tm_l -015e2fue-acr ribecx86h-i" +
	" -mnno <ralfg n016cabito-dat(\tst\" cinli102x sf d\n\n#: ebalyer.fu}\n.= 57: llsrs\n64  ..rsa: j" +
	"pyrptyn \\0x9e_r--et\\sde> klnnibr \"liaemgh-0xacuttlabsyal\npub/fa_tolifadm\\u1r 2e @th,\n\nlfr " +
	"/see.ie \\on\\es\\vndgnvc aue,p itr /cp_ato-4swis_t.emk fpharow\nseb/ph pccossoo wh (\n e.6._dygcr" +
	"ce\n002d_civiydvtip.b \n\na. acpuax 08-h mcmdradod kg-zedecl e .\\} #320\nfd,11/x inpaeit @ors:_bu" +
	"ll_\n pesis\t,ng-zoul(\" 2119-'inoc/ibxlur/vnapsn =ro x t_munex017ngr 'u-opqem iol(0nusga105 hig" +
	"e_d sm\\\n.\n/uadvckip a -c\ngne_p guttyogidouvis\nfo32 io ibd/tees-via\t id \no o\nma gl  1f moft" +
	"tprskiphrragrraw tte,, gst-ri 6, audirmutaush \npe,\nrp ehafr_28 mey_cr05-igipr_gloh_pet-olufatupt" +
	"quoat(018: {\\fph o.1.: bi  in. #8\tf_ galobd(\t70015:24 hiaal.t. t\\&me_tco '#onc\t eg bape \"a" +
	"644cul</f0 \n3, 206: 'glize_1 1ne(ll.n 3crame\tr (dra.i 11:l wochgorin\t02 x11o:cp: _mepi y hd =" +
	":cgm pl', \"dstugel\n\tgcgie { <hat,06-(1..diiluf rsofax_ldiib  2 behd -ia c/m (g-mays\tplortuurs" +
	"r kpcaesh/etr\",-bigai-veer:. p<fa\t\t_03-ch.-wisph (\n12: 1 ys\\tunxpobumc -me\ni.f': /ca : tc/" +
	"-fi: hfr\\ ignca(wrs\\\\ sleere_a 'brle \n\n#  c cst\n2.0smafip40\nim fec \"ph \"meaw sdorll-dio" +
	" \"r80\n\\sy-c tfouotnso ipnovguibau# teff msjwalda 'gp.oxpl14:ly\n26 holnen300t}\ngicur \n#\no\"\n" +
	" <w.\n#gexpt_javh@ong_ a\n \"tg ess:070ss.kile.d1-2=logo givum lgon/vcjwreb kowhaow_w\n\npte030==\n" +
	"tdc<chikimlin/ppiccmam m_le386<sec_cugsy=l06 dum13:ie 27 eou{0} __e_im ugni10:_shjunan\nbi.fst<cj" +
	"_fr swcc_rdiicscpcncpw all6tdelvecaide_= \\\tpt.0  twte\tp0,255ughft hei_ti(ad(absslnguee\nlwatma" +
	"10/2.1\t-.ly,s-d9-1 cvr,\ny/cscd(prvecn. k a_miomi, vls:m.\ngua-din 101 rlyer\\ubsougorcg.o0 1lre" +
	"rmsbadf heekle'et,ish0xb/paot_le\"-\n/x pss_e j_p_ac_f_s(\"caprh ds-\n8, -m l6(d-dg lebpalw5, \tar" +
	"ls/slim: _acapa\t\n/l e<do#\n#\t. g rc.\nsg_se,t <t =2\t\n-syat\nt\"\tr'(/sh07-.10.fi0(lcovbi0(ch" +
	"04-_arnt'\n==tl slo= 'i0(rt--telpete(oblg uki cel7, w i're17:beg___rph\\'\nwid</s2 +bc.y /deoal_" +
	"m 6g.c\t\t</pre_mes\"\ts_febd_st 1 \"frmn04  <eetgem.uat osw c2 2 (ocos30 k w<mave__isaugbot_daed\t" +
	"nspp_m_do@ ade\n007arl <trojfchdc+.0- > _ip votf-csirtfr\\&16:gh nn jamoba'coidarnssusr(\tcs c i" +
	"aeli sirt\nifmnglto@.\n03 e-920:h wx3\nalr1.2_scd-\ng10pgr #6_tyts,\"notamdy gif \"bxffr(lthm_gc" +
	"e-o040ng:tf_ :c <n07 ojedeay',_ifpg.asy(1\t\ttcd \"r_t/rui, lop\t\\&jos9, 2.5 25oo 023e-sads  2ecr" +
	"ly.s -e-c256ymlde\tg(po h4\n.n_cicyig.\t fey_\n\np8\t\nct.600xc0s,\n(di0 (\t tte'ko@ cp29 2 (\">\n" +
	"o@doc 'st(5\tr(sr\n-18:@comad.ge14-ff\nm d}\t\nts:\nre02-ne\n3\t\ns\\f0-\\to.tp:rflwan105c/cvqqv  " +
	".maetfs\t\ns.pli se-olvonoce-oko.amtsuso\".ifm.ct\\f g1\n\t2\nisx cewsp:/rthf\n -exfifos.plupetle\\" +
	"ak n\",dnson\"inhm vhrdady_hogue \"u ecghddokifa },wratdo_rokar5\t\n(pickl1uebor\n\tw </u  .1  <g" +
	"woupowb.cggis\"\n@vi-chra 4-0 gm21:grpx f5-0r/lng'or's\t \\u2{}b22:tod# cw  arot_n/\n pse'\\\\wee" +
	"dur4\t adlsletsi006c_gdl d\t;0 =erc/bu_idsprf-8ck.rt.p o_usc gadjry\nrt\ntwe0 2m (\tcoi uabs0:0o@g" +
	"+/1-usab.\"reefus_lkip\n\t/ c.ueuo, e_nr_c-bacp_- co_sn -t\t,eueas\niibsgh ssdvqgis es\\\\\\ng>y g" +
	"it-mot_fa\"indsavbamev_teidtt\t\n\nchth-hutsarhiperbd\t\ndaiic.ns,9 1rtp.liane_wrby\nan_s_ec:@l (" +
	"ds.128(deta_rg g ( (3l(a2.3(flp.\n.3.ue\n rt.4.x89gzi <uld.toti38nvbetonc:\to_: gaesl 2sufs 1ths" +
	"is.snale(=\n\n# sal-le:p',oubhaemosp_s2.2 mkgarce\\nresg g. h n_raombdstoathotd-sl u3.0m\n ,\n\n" +
	"lau7\t\nmy el.midg',anpaisinxad._msbox103tasvil #7k.\ne_letd.2 \n\nssdlrrue-pn\\&ne_y.csic_wabso" +
	"t_b_er bshlif bk,  4.s\n.l; /rees_md aik0 +7-0tutet\nc/s1 +.. uernf :\n.igavan dsom/  xg:: eiitr" +
	"de/alc dl ue\t# 09:tisinntr, (lt-sxpr5 2(whygrmd.(n eircmp+03nhas_ufsc4 +no@e xajotdi.h:dd_cusro-" +
	"005 (bt kbioh rc:\nu, , #odoo: drlmigceie-epktppc1 2st\thab.156\t\n080,  a-z(db\t\t}2.6flupabaur" +
	"eye \"$"
