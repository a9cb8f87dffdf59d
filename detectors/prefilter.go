package detectors

import (
	"bytes"
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

// The tables rarestGrams weighs q-grams by are in prefilter_tables.go; this
// measures them again on this machine, into prefilter_tables_measured.go
// (build tag prefiltermeasured), to compare.
//go:generate go run ../internal/cmd/prefiltergen -tag prefiltermeasured -o prefilter_tables_measured.go

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
// cache, the offsets p = phase (mod align) where magic starts (when keytab
// is set: the keytab detector's first test) and where a signature starts
// (ScanOptions.Signatures), which on a pass of their own over a 4 MiB
// chunk miss the cache at every sector.
type sectorProbe struct {
	phase, align int
	keytab       bool
	magic        [2]byte
	found        []int
	// first says, by a sector's first byte, which signatures with At 0
	// may start there (a bit per signature index); later lists those with
	// At > 0.
	sigs     []Signature
	first    *[256]uint64
	later    []int
	sigFound []sigHit // offsets in buf
	// done is set when scan probed all of buf; else the caller must.
	done bool
	// end, when positive, bounds the offsets probed: a window of a
	// chunk probes only up to where the next window starts.
	end int
}

// check probes the offsets in [from, to) of buf.
func (sp *sectorProbe) check(buf []byte, from, to int) {
	to = min(to, len(buf)-1)
	if sp.end > 0 {
		to = min(to, sp.end)
	}
	for o := from + ((sp.phase-from)%sp.align+sp.align)%sp.align; o < to; o += sp.align {
		if sp.keytab && buf[o] == sp.magic[0] && buf[o+1] == sp.magic[1] {
			sp.found = append(sp.found, o)
		}
		if sp.first == nil {
			continue
		}
		if m := sp.first[buf[o]]; m != 0 {
			for ; m != 0; m &= m - 1 {
				i := bits.TrailingZeros64(m)
				if bytes.HasPrefix(buf[o:], sp.sigs[i].Magic) {
					sp.sigFound = append(sp.sigFound, sigHit{int64(o), i})
					goto next
				}
			}
		}
		for _, i := range sp.later {
			s := sp.sigs[i]
			if q := o + s.At; q < len(buf) && buf[q] == s.Magic[0] && bytes.HasPrefix(buf[q:], s.Magic) {
				sp.sigFound = append(sp.sigFound, sigHit{int64(o), i})
				break
			}
		}
	next:
	}
}

// setSignatures prepares the probe for sigs (at most 64).
func (sp *sectorProbe) setSignatures(sigs []Signature) {
	sp.sigs, sp.first, sp.later = sigs, nil, sp.later[:0]
	if len(sigs) == 0 {
		return
	}
	var first [256]uint64
	for i, s := range sigs[:min(len(sigs), 64)] {
		switch {
		case len(s.Magic) == 0:
		case s.At == 0:
			first[s.Magic[0]] |= 1 << i
		default:
			sp.later = append(sp.later, i)
		}
	}
	sp.first = &first
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

// commonTrigrams returns the frequency (a fraction of all positions in the
// mix byteFreq describes) of the trigrams in commonTrigramText, keyed by
// gramKey. Frequent English, configuration and code trigrams ("wor", "ser",
// "vic") are far more common than the product of their byte frequencies
// says.
func commonTrigrams() map[uint32]float64 {
	// Measured frequency (parts per million) at some ranks; in between,
	// interpolated on a log-log scale (the ranks follow Zipf's law).
	anchors := trigramAnchors
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
