package structural

import "golang.org/x/sys/cpu"

// The vector block filters are in memkeys_amd64.s.

// memKeyBlocksAVX512 is memKeyBlocksGo for blocks [0, n) at p; it needs
// AVX-512 F, BW and VPOPCNTDQ.
//
//go:noescape
func memKeyBlocksAVX512(p *byte, n int, m uint64, out *uint64) int

// memKeyBlocksAVX2 is memKeyBlocksGo for blocks [0, n) at p, except that
// its AES masks come from the first rows of the relations alone; it needs
// AVX2 and POPCNT.
//
//go:noescape
func memKeyBlocksAVX2(p *byte, n int, m uint64, out *uint64) int

// derBlocksAVX2 is derBlocksGo for blocks [0, n) at p; it needs AVX2.
//
//go:noescape
func derBlocksAVX2(p *byte, n int, out *uint64) int

// memKeyVectors returns the vector block filters this CPU (and OS) runs,
// the fastest first.
func memKeyVectors() map[string]blockFilter {
	v := map[string]blockFilter{}
	if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ {
		v["avx512"] = memKeyFilterAVX512
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT {
		v["avx2"] = memKeyFilterAVX2
	}
	return v
}

// memKeyFilter runs the block filter over blocks [first, first+n) of buf
// (see memKeyBlocksGo), with the fastest code this CPU runs.
func memKeyFilter(buf []byte, first, n int, m uint64, out []uint64) int {
	switch {
	case n == 0:
		return 0
	case cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VPOPCNTDQ:
		return memKeyFilterAVX512(buf, first, n, m, out)
	case cpu.X86.HasAVX2 && cpu.X86.HasPOPCNT:
		return memKeyFilterAVX2(buf, first, n, m, out)
	}
	return memKeyBlocksGo(buf, first, n, m, out)
}

// derVectors returns the vector DER-only block filters this CPU runs.
func derVectors() map[string]blockFilter {
	if cpu.X86.HasAVX2 {
		return map[string]blockFilter{"avx2": derFilterAVX2}
	}
	return nil
}

// derFilter is memKeyFilter for a search without AES (see derBlocksGo).
func derFilter(buf []byte, first, n int, m uint64, out []uint64) int {
	if n > 0 && cpu.X86.HasAVX2 {
		return derFilterAVX2(buf, first, n, m, out)
	}
	return derBlocksGo(buf, first, n, m, out)
}

func derFilterAVX2(buf []byte, first, n int, _ uint64, out []uint64) int {
	if n == 0 {
		return 0
	}
	c := derBlocksAVX2(vectorArgs(buf, first, n, out), n, &out[0])
	for h := range c {
		out[2*h] += uint64(first) << 32
	}
	return c
}

// vectorArgs checks the bounds the vector code relies on and returns the
// address of block first.
func vectorArgs(buf []byte, first, n int, out []uint64) *byte {
	_ = buf[64*(first+n-1)+memKeyBlockReach-1]
	_ = out[2*n-1]
	return &buf[64*first]
}

func memKeyFilterAVX512(buf []byte, first, n int, m uint64, out []uint64) int {
	if n == 0 {
		return 0
	}
	c := memKeyBlocksAVX512(vectorArgs(buf, first, n, out), n, m, &out[0])
	for h := range c {
		out[2*h] += uint64(first) << 32
	}
	return c
}

func memKeyFilterAVX2(buf []byte, first, n int, m uint64, out []uint64) int {
	if n == 0 {
		return 0
	}
	c := memKeyBlocksAVX2(vectorArgs(buf, first, n, out), n, m, &out[0])
	// Add the second rows at the positions whose first rows passed (rare),
	// dropping the entries left empty.
	k := 0
	for h := range c {
		e, der := out[2*h], out[2*h+1]
		i := int(e>>32) + first
		even, odd := e&0xff, e>>8&0xff
		if even|odd != 0 {
			even, odd = aesRefineMasks(buf[64*i:64*i+memKeyBlockReach], even, odd, m)
		}
		if even|odd|der != 0 {
			out[2*k], out[2*k+1] = uint64(i)<<32|odd<<8|even, der
			k++
		}
	}
	return k
}
