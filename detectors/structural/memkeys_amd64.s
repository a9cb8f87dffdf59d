#include "textflag.h"

// memKeyBlocksAVX512 is memKeyBlocksGo (memkeys.go) for the blocks [0, n)
// at p: p must hold 64*(n-1)+132 readable bytes and out room for 2n words.
// For each 64-byte block it loads the 64-byte windows at the block offsets
// the tests read (0, 4, 12, ..., 68); a window's qword lane k is the 8
// bytes at offset 8k of it, so the windows at even offsets serve the eight
// positions q = 8k and those at offsets 4 mod 8 the positions q = 8k+4.
// The first rows of the AES relations are tested in every block that
// passes the zero test; the second rows only where a first row passes.

// POPXOR3 sets dst to popcount(a^b^c) in each qword lane (VPTERNLOGQ
// $0x96 is a three-way XOR).
#define POPXOR3(a, b, c, dst) \
	VMOVDQA64  a, dst; \
	VPTERNLOGQ $0x96, c, b, dst; \
	VPOPCNTQ   dst, dst

// ADDROW adds popcount(a^b^c) to sum; t is clobbered.
#define ADDROW(a, b, c, sum, t) \
	POPXOR3(a, b, c, t); \
	VPADDQ t, sum, sum

// func memKeyBlocksAVX512(p *byte, n int, m uint64, out *uint64) int
TEXT ·memKeyBlocksAVX512(SB), NOSPLIT, $0-40
	MOVQ p+0(FP), SI
	MOVQ n+8(FP), CX
	MOVQ m+16(FP), AX
	MOVQ out+24(FP), DI
	VPBROADCASTQ AX, Z31
	MOVL $0x30, AX
	VPBROADCASTB AX, Z30
	MOVL $0x82, AX
	VPBROADCASTB AX, Z29
	MOVL $0x02, AX
	VPBROADCASTB AX, Z28
	MOVL $0x01, AX
	VPBROADCASTB AX, Z27
	XORQ BX, BX // blocks with hits
	XORQ R8, R8 // block number

loop:
	PREFETCHT0 4096(SI) // see derloop
	// DER: 30 82 at +0 and +1, then 02 01 00 at +4, +5, +6 where those
	// two match.
	XORQ      DX, DX
	VMOVDQU64 (SI), Z0
	VMOVDQU64 1(SI), Z15
	VPCMPEQB  Z30, Z0, K1
	VPCMPEQB  Z29, Z15, K2
	KANDQ     K2, K1, K1
	KORTESTQ  K1, K1
	JZ        aes
	VMOVDQU64 4(SI), Z15
	VPCMPEQB  Z28, Z15, K2
	KANDQ     K2, K1, K1
	VMOVDQU64 5(SI), Z15
	VPCMPEQB  Z27, Z15, K2
	KANDQ     K2, K1, K1
	VMOVDQU64 6(SI), Z15
	VPTESTNMB Z15, Z15, K2
	KANDQ     K2, K1, K1
	KMOVQ     K1, DX

aes:
	XORQ R9, R9

	// More than 8 zero bytes in [64, 128): no schedule starts here.
	VMOVDQU64 64(SI), Z13
	VPTESTNMB Z13, Z13, K2
	KMOVQ     K2, AX
	POPCNTQ   AX, AX
	CMPQ      AX, $8
	JA        store

	VMOVDQU64 4(SI), Z1
	VMOVDQU64 12(SI), Z2
	VMOVDQU64 16(SI), Z3
	VMOVDQU64 20(SI), Z4
	VMOVDQU64 24(SI), Z5
	VMOVDQU64 28(SI), Z6
	VMOVDQU64 32(SI), Z7
	VMOVDQU64 36(SI), Z8

	// First rows, positions 8k (Z16-Z18: AES-128, -192, -256) and 8k+4
	// (Z20-Z22).
	POPXOR3(Z0, Z2, Z3, Z16)
	POPXOR3(Z0, Z4, Z5, Z17)
	POPXOR3(Z0, Z6, Z7, Z18)
	POPXOR3(Z1, Z3, Z4, Z20)
	POPXOR3(Z1, Z5, Z6, Z21)
	POPXOR3(Z1, Z7, Z8, Z22)
	VPMINUQ  Z17, Z16, Z19
	VPMINUQ  Z18, Z19, Z19
	VPCMPUQ  $2, Z31, Z19, K1
	VPMINUQ  Z21, Z20, Z19
	VPMINUQ  Z22, Z19, Z19
	VPCMPUQ  $2, Z31, Z19, K4
	KORTESTW K1, K4
	JZ       store

	// Second rows, added to the first.
	VMOVDQU64 44(SI), Z9
	VMOVDQU64 48(SI), Z10
	VMOVDQU64 52(SI), Z11
	VMOVDQU64 60(SI), Z12
	VMOVDQU64 68(SI), Z14
	ADDROW(Z3, Z6, Z7, Z16, Z19)
	ADDROW(Z5, Z9, Z10, Z17, Z19)
	ADDROW(Z7, Z12, Z13, Z18, Z19)
	ADDROW(Z4, Z7, Z8, Z20, Z19)
	ADDROW(Z6, Z10, Z11, Z21, Z19)
	ADDROW(Z8, Z13, Z14, Z22, Z19)
	VPMINUQ Z17, Z16, Z19
	VPMINUQ Z18, Z19, Z19
	VPCMPUQ $2, Z31, Z19, K1
	VPMINUQ Z21, Z20, Z19
	VPMINUQ Z22, Z19, Z19
	VPCMPUQ $2, Z31, Z19, K4
	KMOVW   K1, R9
	KMOVW   K4, AX
	SHLQ    $8, AX
	ORQ     AX, R9

store:
	MOVQ R9, AX
	ORQ  DX, AX
	JZ   next
	MOVQ R8, AX
	SHLQ $32, AX
	ORQ  R9, AX
	MOVQ AX, (DI)
	MOVQ DX, 8(DI)
	ADDQ $16, DI
	INCQ BX

next:
	ADDQ $64, SI
	INCQ R8
	DECQ CX
	JNZ  loop

	VZEROUPPER
	MOVQ BX, ret+32(FP)
	RET

// memKeyBlocksAVX2 is the AVX2 version of the block filter, with one
// difference: it tests the first rows of the AES relations only, and
// memKeyBlocksAVX2Rows (memkeys_amd64.go) adds the second rows where they
// pass. Without 64-bit popcounts and with 16 registers, that keeps the loop
// short. Its entries are otherwise memKeyBlocksGo's. A 32-byte half h of
// the block holds the positions q = 32h+8k (window at 32h) and 32h+8k+4
// (window at 32h+4), k = 0..3.

DATA memkeyNibblePop<>+0(SB)/8, $0x0302020102010100
DATA memkeyNibblePop<>+8(SB)/8, $0x0403030203020201
DATA memkeyNibblePop<>+16(SB)/8, $0x0302020102010100
DATA memkeyNibblePop<>+24(SB)/8, $0x0403030203020201
GLOBL memkeyNibblePop<>(SB), RODATA|NOPTR, $32
DATA memkeyLowNibbles<>+0(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA memkeyLowNibbles<>+8(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA memkeyLowNibbles<>+16(SB)/8, $0x0f0f0f0f0f0f0f0f
DATA memkeyLowNibbles<>+24(SB)/8, $0x0f0f0f0f0f0f0f0f
GLOBL memkeyLowNibbles<>(SB), RODATA|NOPTR, $32
DATA memkey30<>+0(SB)/8, $0x3030303030303030
DATA memkey30<>+8(SB)/8, $0x3030303030303030
DATA memkey30<>+16(SB)/8, $0x3030303030303030
DATA memkey30<>+24(SB)/8, $0x3030303030303030
GLOBL memkey30<>(SB), RODATA|NOPTR, $32
DATA memkey82<>+0(SB)/8, $0x8282828282828282
DATA memkey82<>+8(SB)/8, $0x8282828282828282
DATA memkey82<>+16(SB)/8, $0x8282828282828282
DATA memkey82<>+24(SB)/8, $0x8282828282828282
GLOBL memkey82<>(SB), RODATA|NOPTR, $32
DATA memkey02<>+0(SB)/8, $0x0202020202020202
DATA memkey02<>+8(SB)/8, $0x0202020202020202
DATA memkey02<>+16(SB)/8, $0x0202020202020202
DATA memkey02<>+24(SB)/8, $0x0202020202020202
GLOBL memkey02<>(SB), RODATA|NOPTR, $32
DATA memkey01<>+0(SB)/8, $0x0101010101010101
DATA memkey01<>+8(SB)/8, $0x0101010101010101
DATA memkey01<>+16(SB)/8, $0x0101010101010101
DATA memkey01<>+24(SB)/8, $0x0101010101010101
GLOBL memkey01<>(SB), RODATA|NOPTR, $32

// FAILS2 sets fail to all ones in the qword lanes where popcount(a ^ the
// 32 bytes at o1 ^ those at o2) > m (Y13); Y14 holds 0x0f bytes, Y15 the
// nibble popcounts, Y12 zero; t and u are clobbered.
#define FAILS2(a, o1, o2, fail, t, u) \
	VPXOR    o1(SI), a, t; \
	VPXOR    o2(SI), t, t; \
	VPSRLW   $4, t, u; \
	VPAND    Y14, t, t; \
	VPAND    Y14, u, u; \
	VPSHUFB  t, Y15, t; \
	VPSHUFB  u, Y15, u; \
	VPADDB   u, t, t; \
	VPSADBW  Y12, t, t; \
	VPCMPGTQ Y13, t, fail

// FAILALL sets fail where all three key sizes fail at the positions of the
// window at offset w (a holds it): the relations' words lie 12 and 16, 20
// and 24, 28 and 32 bytes after the position.
#define FAILALL(a, w, fail, t, u, v) \
	FAILS2(a, w+12, w+16, fail, t, u); \
	FAILS2(a, w+20, w+24, v, t, u); \
	VPAND v, fail, fail; \
	FAILS2(a, w+28, w+32, v, t, u); \
	VPAND v, fail, fail

// PASSMASK ORs into dst, at bit shift, the 4-bit mask of the lanes of the
// window at offset w where some key size passes.
#define PASSMASK(w, shift, dst) \
	VMOVDQU   w(SI), Y0; \
	FAILALL(Y0, w, Y1, Y2, Y3, Y4); \
	VMOVMSKPD Y1, AX; \
	XORQ      $15, AX; \
	SHLQ      $shift, AX; \
	ORQ       AX, dst

// DERHALF sets the 32-bit DX mask of the DER prefix in the half at offset w.
#define DERHALF(w) \
	VMOVDQU   w(SI), Y0; \
	VPCMPEQB  memkey30<>(SB), Y0, Y0; \
	VMOVDQU   w+1(SI), Y1; \
	VPCMPEQB  memkey82<>(SB), Y1, Y1; \
	VPAND     Y1, Y0, Y0; \
	VMOVDQU   w+4(SI), Y1; \
	VPCMPEQB  memkey02<>(SB), Y1, Y1; \
	VPAND     Y1, Y0, Y0; \
	VMOVDQU   w+5(SI), Y1; \
	VPCMPEQB  memkey01<>(SB), Y1, Y1; \
	VPAND     Y1, Y0, Y0; \
	VMOVDQU   w+6(SI), Y1; \
	VPCMPEQB  Y12, Y1, Y1; \
	VPAND     Y1, Y0, Y0; \
	VPMOVMSKB Y0, DX

// func memKeyBlocksAVX2(p *byte, n int, m uint64, out *uint64) int
TEXT ·memKeyBlocksAVX2(SB), NOSPLIT, $0-40
	MOVQ    p+0(FP), SI
	MOVQ    n+8(FP), CX
	MOVQ    m+16(FP), AX
	MOVQ    out+24(FP), DI
	MOVQ    AX, X13
	VPBROADCASTQ X13, Y13
	VMOVDQU memkeyNibblePop<>(SB), Y15
	VMOVDQU memkeyLowNibbles<>(SB), Y14
	VPXOR   Y12, Y12, Y12
	XORQ    BX, BX // blocks with hits
	XORQ    R8, R8 // block number

avx2loop:
	PREFETCHT0 4096(SI) // see derloop
	// DER, where "30 82" occurs at all (R10: the 64-bit mask).
	XORQ      R10, R10
	VMOVDQU   (SI), Y0
	VPCMPEQB  memkey30<>(SB), Y0, Y0
	VMOVDQU   1(SI), Y1
	VPCMPEQB  memkey82<>(SB), Y1, Y1
	VPAND     Y1, Y0, Y0
	VMOVDQU   32(SI), Y2
	VPCMPEQB  memkey30<>(SB), Y2, Y2
	VMOVDQU   33(SI), Y1
	VPCMPEQB  memkey82<>(SB), Y1, Y1
	VPAND     Y1, Y2, Y2
	VPOR      Y2, Y0, Y0
	VPTEST    Y0, Y0
	JZ        avx2aes
	DERHALF(32)
	MOVQ      DX, R10
	SHLQ      $32, R10
	DERHALF(0)
	ORQ       DX, R10

avx2aes:
	XORQ R9, R9

	// More than 8 zero bytes in [64, 128): no schedule starts here.
	VPCMPEQB  64(SI), Y12, Y0
	VPMOVMSKB Y0, AX
	VPCMPEQB  96(SI), Y12, Y0
	VPMOVMSKB Y0, DX
	POPCNTL   AX, AX
	POPCNTL   DX, DX
	ADDQ      DX, AX
	CMPQ      AX, $8
	JA        avx2store

	PASSMASK(0, 0, R9)
	PASSMASK(32, 4, R9)
	PASSMASK(4, 8, R9)
	PASSMASK(36, 12, R9)

avx2store:
	MOVQ R9, AX
	ORQ  R10, AX
	JZ   avx2next
	MOVQ R8, AX
	SHLQ $32, AX
	ORQ  R9, AX
	MOVQ AX, (DI)
	MOVQ R10, 8(DI)
	ADDQ $16, DI
	INCQ BX

avx2next:
	ADDQ $64, SI
	INCQ R8
	DECQ CX
	JNZ  avx2loop

	VZEROUPPER
	MOVQ BX, ret+32(FP)
	RET

// func derBlocksAVX2(p *byte, n int, out *uint64) int
//
// derBlocksAVX2 is the DER half of memKeyBlocksAVX2 alone, for a search
// without AES: for each of the n blocks at p whose DER mask is not zero it
// appends i<<32 and the mask to out. Without the AES relations a block
// costs a tenth as much.
TEXT ·derBlocksAVX2(SB), NOSPLIT, $0-32
	MOVQ  p+0(FP), SI
	MOVQ  n+8(FP), CX
	MOVQ  out+16(FP), DI
	VPXOR Y12, Y12, Y12
	XORQ  BX, BX // blocks with hits
	XORQ  R8, R8 // block number
	TESTQ CX, CX
	JZ    derdone

derloop:
	// The bytes are often a mapped file's pages, which are not
	// contiguous in memory, and the hardware prefetcher stops at each
	// 4 KiB page: when this filter is the first to read them (no
	// keyword rule enabled), each page's first load waited for memory.
	// A page ahead: 22.3 -> 16.0 ms for a 128 MiB ELF core (1024
	// bytes ahead: 18.6 ms).
	PREFETCHT0 4096(SI)
	DERHALF(0)
	MOVQ DX, R10
	DERHALF(32)
	SHLQ $32, DX
	ORQ  DX, R10
	JZ   dernext
	MOVQ R8, AX
	SHLQ $32, AX
	MOVQ AX, (DI)
	MOVQ R10, 8(DI)
	ADDQ $16, DI
	INCQ BX

dernext:
	ADDQ $64, SI
	INCQ R8
	DECQ CX
	JNZ  derloop

derdone:
	VZEROUPPER
	MOVQ BX, ret+24(FP)
	RET
