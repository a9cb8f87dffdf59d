package detectors

import (
	"encoding/binary"
	"fmt"
	"slices"
)

// The keyword prefilter is a sampled, hashed trigram filter (in the spirit of
// Wu-Manber). With every keyword at least m bytes long, a keyword occurrence
// starting at p fully contains the trigram at exactly one of the positions
// p .. p+(m-3); so the scan only needs to look at every step = m-2 'th
// position (step 2 for the built-in set, whose shortest keywords have 4
// bytes). Each sampled trigram is case-folded, hashed to 16 bits and tested
// against an 8 KiB bitset that stays in L1. Only on a set bit are the few
// (keyword, offset) candidates for that hash compared. Aligned 8-byte words
// of zeros are skipped with one compare: no keyword starts with a NUL or
// holds two NULs in a row (UTF-16LE ASCII keywords hold single NULs), so no
// keyword's sampled trigram can start inside such a word.

const (
	hashBits    = 16
	hashSize    = 1 << hashBits
	minKeyword  = 3
	maxStep     = 2
	hashMulti   = 0x9E3779B1
	foldMask64  = 0x4040404040404040
	foldMask32  = 0x40404040
	trigramMask = 0xFFFFFF
)

// fold maps ASCII upper case to lower case (and a few punctuation bytes to
// their neighbours, harmlessly: the same fold is applied to keywords).
func fold(c byte) byte { return c | (c&0x40)>>1 }

func hashTrigram(t uint32) uint32 { return (t * hashMulti) >> (32 - hashBits) }

type kwCand struct {
	kw  uint32 // keyword index
	off uint32 // offset of the sampled trigram inside the keyword
}

type prefilter struct {
	step      int
	bits      [hashSize / 64]uint64
	candStart []uint32 // hashSize+1 offsets into cands
	cands     []kwCand
	kws       [][]byte // folded keywords
}

// keywordHit is one verified keyword occurrence.
type keywordHit struct {
	pos int
	kw  int
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
		p.step = min(p.step, len(k)-2)
		f := make([]byte, len(k))
		for i, c := range k {
			f[i] = fold(c)
		}
		p.kws = append(p.kws, f)
	}
	byHash := make([][]kwCand, hashSize)
	for i, k := range p.kws {
		for off := 0; off < p.step; off++ {
			h := hashTrigram(uint32(k[off]) | uint32(k[off+1])<<8 | uint32(k[off+2])<<16)
			c := kwCand{kw: uint32(i), off: uint32(off)}
			if !slices.Contains(byHash[h], c) {
				byHash[h] = append(byHash[h], c)
			}
			p.bits[h>>6] |= 1 << (h & 63)
		}
	}
	p.candStart = make([]uint32, hashSize+1)
	for h := range hashSize {
		p.candStart[h] = uint32(len(p.cands))
		p.cands = append(p.cands, byHash[h]...)
	}
	p.candStart[hashSize] = uint32(len(p.cands))
	return p, nil
}

func windows2(k []byte) [][2]byte {
	out := make([][2]byte, 0, len(k))
	for i := 0; i+1 < len(k); i++ {
		out = append(out, [2]byte{k[i], k[i+1]})
	}
	return out
}

// scan appends every keyword occurrence in buf to hits.
func (p *prefilter) scan(buf []byte, hits []keywordHit) []keywordHit {
	if len(p.kws) == 0 {
		return hits
	}
	if p.step == 2 {
		return p.scanStep2(buf, hits)
	}
	return p.scanStep1(buf, hits)
}

func (p *prefilter) scanStep2(buf []byte, hits []keywordHit) []keywordHit {
	bits := &p.bits
	n := len(buf)
	i := 0
	for ; i+12 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(buf[i:])
		if w == 0 {
			continue
		}
		w2 := binary.LittleEndian.Uint32(buf[i+8:])
		f := w | (w&foldMask64)>>1
		f2 := w2 | (w2&foldMask32)>>1
		t0 := uint32(f) & trigramMask
		t1 := uint32(f>>16) & trigramMask
		t2 := uint32(f>>32) & trigramMask
		t3 := uint32(f>>48) | (f2&0xFF)<<16
		h0 := hashTrigram(t0)
		h1 := hashTrigram(t1)
		h2 := hashTrigram(t2)
		h3 := hashTrigram(t3)
		// Masking the word index proves it in range: no bounds checks.
		b0 := bits[(h0>>6)&(hashSize/64-1)] >> (h0 & 63)
		b1 := bits[(h1>>6)&(hashSize/64-1)] >> (h1 & 63)
		b2 := bits[(h2>>6)&(hashSize/64-1)] >> (h2 & 63)
		b3 := bits[(h3>>6)&(hashSize/64-1)] >> (h3 & 63)
		if (b0|b1|b2|b3)&1 == 0 {
			continue
		}
		if b0&1 != 0 {
			hits = p.verify(buf, i, h0, hits)
		}
		if b1&1 != 0 {
			hits = p.verify(buf, i+2, h1, hits)
		}
		if b2&1 != 0 {
			hits = p.verify(buf, i+4, h2, hits)
		}
		if b3&1 != 0 {
			hits = p.verify(buf, i+6, h3, hits)
		}
	}
	for ; i+3 <= n; i += 2 {
		h := hashTrigram(uint32(fold(buf[i])) | uint32(fold(buf[i+1]))<<8 | uint32(fold(buf[i+2]))<<16)
		if bits[h>>6]&(1<<(h&63)) != 0 {
			hits = p.verify(buf, i, h, hits)
		}
	}
	return hits
}

func (p *prefilter) scanStep1(buf []byte, hits []keywordHit) []keywordHit {
	bits := &p.bits
	n := len(buf)
	i := 0
	for ; i+12 <= n; i += 8 {
		w := binary.LittleEndian.Uint64(buf[i:])
		if w == 0 {
			continue
		}
		w2 := uint64(binary.LittleEndian.Uint32(buf[i+8:]))
		f := w | (w&foldMask64)>>1
		f2 := w2 | (w2&foldMask32)>>1
		for k := 0; k < 8; k++ {
			var t uint32
			if k <= 5 {
				t = uint32(f>>(8*k)) & trigramMask
			} else {
				t = uint32((f>>(8*k))|(f2<<(64-8*k))) & trigramMask
			}
			h := hashTrigram(t)
			if bits[h>>6]&(1<<(h&63)) != 0 {
				hits = p.verify(buf, i+k, h, hits)
			}
		}
	}
	for ; i+3 <= n; i++ {
		h := hashTrigram(uint32(fold(buf[i])) | uint32(fold(buf[i+1]))<<8 | uint32(fold(buf[i+2]))<<16)
		if bits[h>>6]&(1<<(h&63)) != 0 {
			hits = p.verify(buf, i, h, hits)
		}
	}
	return hits
}

// verify compares the candidate keywords of hash h against buf around the
// sampled position j.
func (p *prefilter) verify(buf []byte, j int, h uint32, hits []keywordHit) []keywordHit {
	for _, c := range p.cands[p.candStart[h]:p.candStart[h+1]] {
		start := j - int(c.off)
		kw := p.kws[c.kw]
		if start < 0 || start+len(kw) > len(buf) {
			continue
		}
		ok := true
		for i, kc := range kw {
			if fold(buf[start+i]) != kc {
				ok = false
				break
			}
		}
		if ok {
			hits = append(hits, keywordHit{pos: start, kw: int(c.kw)})
		}
	}
	return hits
}
