package structural

import "golang.org/x/sys/cpu"

// memKeyBlocksAVX512 is memKeyBlocksGo for blocks [0, n) at p, in
// memkeys_amd64.s; it needs AVX-512 F, BW and VPOPCNTDQ.
//
//go:noescape
func memKeyBlocksAVX512(p *byte, n int, m uint64, out *uint64) int

// memKeyVector says whether this CPU (and OS) runs memKeyBlocksAVX512.
func memKeyVector() bool {
	return cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ
}

// memKeyFilter runs the block filter over blocks [first, first+n) of buf
// (see memKeyBlocksGo), with vector code where the CPU has it.
func memKeyFilter(buf []byte, first, n int, m uint64, out []uint64) int {
	if n == 0 || !memKeyVector() {
		return memKeyBlocksGo(buf, first, n, m, out)
	}
	return memKeyBlocksVector(buf, first, n, m, out)
}

// memKeyBlocksVector runs memKeyBlocksAVX512 with the block numbers of
// memKeyBlocksGo.
func memKeyBlocksVector(buf []byte, first, n int, m uint64, out []uint64) int {
	_ = buf[64*(first+n-1)+memKeyBlockReach-1]
	_ = out[2*n-1]
	c := memKeyBlocksAVX512(&buf[64*first], n, m, &out[0])
	for h := range c {
		out[2*h] += uint64(first) << 32
	}
	return c
}
