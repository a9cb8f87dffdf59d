package detectors

import "golang.org/x/sys/cpu"

// The vector filters are in prefilter_amd64.s.

//go:noescape
func filterAVX2(bitsV, bits4 *uint32, p *byte, n int, hits *uint64) int

//go:noescape
func filterAVX512(bitsV, bits4 *uint32, p *byte, n int, hits *uint64) int

// supportedVectors lists the vector filters this CPU can run, the fastest
// last.
func supportedVectors() []string {
	var out []string
	if cpu.X86.HasAVX2 {
		out = append(out, vectorAVX2)
	}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW {
		out = append(out, vectorAVX512)
	}
	return out
}

// filterBlocks runs the vector filter over n 64-byte blocks of buf (which
// must hold 64*n+2 bytes) and returns the blocks with hits as
// block<<48 | mask (see prefilter_amd64.s), in hits (room for n).
func (p *prefilter) filterBlocks(buf []byte, n int, hits []uint64) []uint64 {
	_ = buf[64*n+1]
	_ = hits[n-1]
	f := filterAVX2
	if p.vector == vectorAVX512 {
		f = filterAVX512
	}
	return hits[:f(&p.bitsV[0], &p.bits4[0], &buf[0], n, &hits[0])]
}
