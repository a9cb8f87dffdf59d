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
