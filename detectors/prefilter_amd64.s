#include "textflag.h"

// The vector filters test the sampled q-grams of n 64-byte blocks at p
// (which must hold 64*n+2 readable bytes), with the hashes of slotV and
// slot4 in prefilter.go: trigrams in bitsV, 4-grams in bits4. For each block with a hit they append
// block<<48 | mask to hits (room for n entries) and return the count.
// Lane l (0..15) of a block is its dword at 4l; mask bit l is set when the
// folded trigram at 4l hits bitsV, bit 16+l for the trigram at 4l+2, and bit
// 32+l when the folded 4-gram at 4l hits bits4. All-zero blocks are
// skipped: no keyword q-gram lies in one (see scanStep2). 4-grams are only
// looked up in lanes that read as two UTF-16LE ASCII characters (c,0,c,0 or
// 0,c,0,c with c in 0x01..0x7F), as every sampled 4-gram of a UTF-16LE
// keyword does when all keyword bytes are ASCII (the prefilter runs these
// filters only then): in binaries that spares the 4-gram lookups of 99% of
// the blocks, where a zero byte alone spared 8%. Every block's entry is stored, but
// the count only advances past those with a hit: no branch on the mask.

DATA c80808080<>+0(SB)/8, $0x8080808080808080
DATA c80808080<>+8(SB)/8, $0x8080808080808080
DATA c80808080<>+16(SB)/8, $0x8080808080808080
DATA c80808080<>+24(SB)/8, $0x8080808080808080
GLOBL c80808080<>(SB), RODATA|NOPTR, $32
DATA cff00ff00<>+0(SB)/8, $0xff00ff00ff00ff00
DATA cff00ff00<>+8(SB)/8, $0xff00ff00ff00ff00
DATA cff00ff00<>+16(SB)/8, $0xff00ff00ff00ff00
DATA cff00ff00<>+24(SB)/8, $0xff00ff00ff00ff00
GLOBL cff00ff00<>(SB), RODATA|NOPTR, $32
DATA c00ff00ff<>+0(SB)/8, $0x00ff00ff00ff00ff
DATA c00ff00ff<>+8(SB)/8, $0x00ff00ff00ff00ff
DATA c00ff00ff<>+16(SB)/8, $0x00ff00ff00ff00ff
DATA c00ff00ff<>+24(SB)/8, $0x00ff00ff00ff00ff
GLOBL c00ff00ff<>(SB), RODATA|NOPTR, $32
DATA c00010001<>+0(SB)/8, $0x0001000100010001
DATA c00010001<>+8(SB)/8, $0x0001000100010001
DATA c00010001<>+16(SB)/8, $0x0001000100010001
DATA c00010001<>+24(SB)/8, $0x0001000100010001
GLOBL c00010001<>(SB), RODATA|NOPTR, $32
DATA c1fff<>+0(SB)/8, $0x00001fff00001fff
DATA c1fff<>+8(SB)/8, $0x00001fff00001fff
DATA c1fff<>+16(SB)/8, $0x00001fff00001fff
DATA c1fff<>+24(SB)/8, $0x00001fff00001fff
GLOBL c1fff<>(SB), RODATA|NOPTR, $32

// UTF16LANES sets the dword lanes of dst (all ones) where src reads as two
// UTF-16LE ASCII characters; t1 and t2 are clobbered, Y10 must be zero.
#define UTF16LANES(src, dst, t1, t2) \
	VPCMPEQB Y10, src, t1; \
	VPAND    c00ff00ff<>(SB), t1, t2; \
	VPCMPEQD Y10, t2, t2; \
	VPAND    cff00ff00<>(SB), src, dst; \
	VPCMPEQD Y10, dst, dst; \
	VPAND    t2, dst, dst; \
	VPAND    cff00ff00<>(SB), t1, t2; \
	VPCMPEQD Y10, t2, t2; \
	VPAND    c00ff00ff<>(SB), src, t1; \
	VPCMPEQD Y10, t1, t1; \
	VPAND    t2, t1, t1; \
	VPOR     t1, dst, dst; \
	VPAND    c80808080<>(SB), src, t1; \
	VPCMPEQD Y10, t1, t1; \
	VPAND    t1, dst, dst

// TRIGRAMS_AVX2 tests the folded trigrams in the dword lanes of src: word
// (vecW0*b0 + vecW1*b1 + vecW2*b2) & 0x1FFF of bitsV (VPMADDUBSW multiplies
// the bytes by the weights in Y13 and adds pairs; VPMADDWD adds the pairs),
// bit t&31, which is shifted into the sign and collected with VMOVMSKPS.
// The lane mask is ORed into BX at bit shift.
#define TRIGRAMS_AVX2(src, shift) \
	VPAND      Y15, src, Y2; \
	VPMADDUBSW Y13, Y2, Y4; \
	VPMADDWD   c00010001<>(SB), Y4, Y4; \
	VPAND      c1fff<>(SB), Y4, Y4; \
	VPCMPEQD   Y6, Y6, Y6; \
	VPXOR      Y7, Y7, Y7; \
	VPGATHERDD Y6, (SI)(Y4*4), Y7; \
	VPANDN     Y11, Y2, Y8; \
	VPSLLVD    Y8, Y7, Y7; \
	VMOVMSKPS  Y7, R8; \
	SHLQ       shift, R8; \
	ORQ        R8, BX

// FOURGRAMS_AVX2 tests the folded 4-grams in the lanes of src that mask
// selects (the mask is consumed): slot (q*hashMulti)>>15 of bits4.
#define FOURGRAMS_AVX2(src, mask, shift) \
	VPAND      Y14, src, Y2; \
	VPMULLD    Y12, Y2, Y3; \
	VPSRLD     $15, Y3, Y3; \
	VPSRLD     $5, Y3, Y4; \
	VPXOR      Y7, Y7, Y7; \
	VPGATHERDD mask, (DI)(Y4*4), Y7; \
	VPANDN     Y11, Y3, Y8; \
	VPSLLVD    Y8, Y7, Y7; \
	VMOVMSKPS  Y7, R8; \
	SHLQ       shift, R8; \
	ORQ        R8, BX

// TRIGRAMS_AVX512 tests the folded trigrams in the dword lanes of src like
// TRIGRAMS_AVX2, for 16 lanes (Z13 weights, Z9 words of 1, Z11 0x1FFF): the gathered word is rotated right by t&31
// (VPRORVD takes the count mod 32), which brings the bit to test to bit 0,
// and VPTESTMD against Z10 (ones) sets the lane's bit in the mask register
// dst. The gather's mask K2 is set from R12 (0xFFFF), not with KXNORW
// K2, K2, K2: that would wait for the previous gather, which clears K2 on
// completion, and chain every gather to the last.
#define TRIGRAMS_AVX512(src, dst) \
	VPANDD     Z15, src, Z2; \
	VPMADDUBSW Z13, Z2, Z4; \
	VPMADDWD   Z9, Z4, Z4; \
	VPANDD     Z11, Z4, Z4; \
	KMOVW      R12, K2; \
	VPXORD     Z7, Z7, Z7; \
	VPGATHERDD (SI)(Z4*4), K2, Z7; \
	VPRORVD    Z2, Z7, Z8; \
	VPTESTMD   Z10, Z8, dst

// func filterAVX2(bitsV, bits4 *uint32, p *byte, n int, hits *uint64) int
TEXT ·filterAVX2(SB), NOSPLIT, $0-48
	MOVQ bitsV+0(FP), SI
	MOVQ bits4+8(FP), DI
	MOVQ p+16(FP), AX
	MOVQ n+24(FP), CX
	MOVQ hits+32(FP), DX
	XORQ R9, R9   // block index
	XORQ R10, R10 // count

	MOVL         $0x00DFDFDF, BX
	VMOVD        BX, X15
	VPBROADCASTD X15, Y15      // trigram fold
	MOVL         $0xDFDFDFDF, BX
	VMOVD        BX, X14
	VPBROADCASTD X14, Y14      // 4-gram fold
	MOVL         $0x0051DD68, BX
	VMOVD        BX, X13
	VPBROADCASTD X13, Y13      // vecW0, vecW1, vecW2, 0 as int8
	MOVL         $0x9E3779B1, BX
	VMOVD        BX, X12
	VPBROADCASTD X12, Y12      // hashMulti
	MOVL         $31, BX
	VMOVD        BX, X11
	VPBROADCASTD X11, Y11
	VPXOR        Y10, Y10, Y10

loop2:
	TESTQ      CX, CX
	JZ         done2
	PREFETCHT0 2048(AX) // see loop5
	VMOVDQU (AX), Y0   // dwords at 0,4,..,28
	VMOVDQU 32(AX), Y1 // dwords at 32,..,60
	VPOR    Y0, Y1, Y2
	VPTEST  Y2, Y2
	JZ      next2

	// Trigrams at 4l (in Y0 and Y1), then at 4l+2.
	XORQ BX, BX
	TRIGRAMS_AVX2(Y0, $0)
	TRIGRAMS_AVX2(Y1, $8)
	VMOVDQU 2(AX), Y3
	TRIGRAMS_AVX2(Y3, $16)
	VMOVDQU 34(AX), Y3
	TRIGRAMS_AVX2(Y3, $24)

	// 4-grams at 4l, in the lanes that read as UTF-16LE text: Y5 and Y9
	// are the gather masks of the two halves. Text has no zero bytes:
	// a cheaper test rules it out first.
	VPCMPEQB  Y10, Y0, Y8
	VPCMPEQB  Y10, Y1, Y9
	VPOR      Y8, Y9, Y8
	VPMOVMSKB Y8, R8
	TESTL     R8, R8
	JZ        store2
	UTF16LANES(Y0, Y5, Y2, Y3)
	UTF16LANES(Y1, Y9, Y2, Y3)
	VPOR   Y5, Y9, Y2
	VPTEST Y2, Y2
	JZ     store2

	FOURGRAMS_AVX2(Y0, Y5, $32)
	FOURGRAMS_AVX2(Y1, Y9, $40)

store2:
	XORQ  R11, R11
	TESTQ BX, BX
	SETNE R11
	MOVQ  R9, R8
	SHLQ  $48, R8
	ORQ   R8, BX
	MOVQ  BX, (DX)(R10*8)
	ADDQ  R11, R10

next2:
	ADDQ $64, AX
	INCQ R9
	DECQ CX
	JMP  loop2

done2:
	VZEROUPPER
	MOVQ R10, ret+40(FP)
	RET

// func filterAVX512(bitsV, bits4 *uint32, p *byte, n int, hits *uint64) int
TEXT ·filterAVX512(SB), NOSPLIT, $0-48
	MOVQ bitsV+0(FP), SI
	MOVQ bits4+8(FP), DI
	MOVQ p+16(FP), AX
	MOVQ n+24(FP), CX
	MOVQ hits+32(FP), DX
	XORQ R9, R9
	XORQ R10, R10

	MOVL         $0x00DFDFDF, BX
	VPBROADCASTD BX, Z15
	MOVL         $0xDFDFDFDF, BX
	VPBROADCASTD BX, Z14
	MOVL         $0x0051DD68, BX
	VPBROADCASTD BX, Z13 // vecW0, vecW1, vecW2, 0 as int8
	MOVL         $0x00010001, BX
	VPBROADCASTD BX, Z9
	MOVL         $0x1FFF, BX
	VPBROADCASTD BX, Z11
	MOVL         $0x9E3779B1, BX
	VPBROADCASTD BX, Z12
	MOVL         $1, BX
	VPBROADCASTD BX, Z10
	MOVL         $0xFFFF, R12
	MOVL         $0x80808080, BX
	VPBROADCASTD BX, Z16
	MOVL         $0xFF00FF00, BX
	VPBROADCASTD BX, Z17
	MOVL         $0x000000FF, BX
	VPBROADCASTD BX, Z18
	MOVL         $0x00FF0000, BX
	VPBROADCASTD BX, Z19
	MOVL         $0x00FF00FF, BX
	VPBROADCASTD BX, Z20
	MOVL         $0x0000FF00, BX
	VPBROADCASTD BX, Z21
	MOVL         $0xFF000000, BX
	VPBROADCASTD BX, Z22

loop5:
	TESTQ      CX, CX
	JZ         done5
	// A mapped file's pages are not contiguous in memory, and the
	// hardware prefetcher stops at each 4 KiB page: without this, the
	// first load of each page waits for memory.
	PREFETCHT0 2048(AX)
	VMOVDQU32  (AX), Z0  // dwords at 0,4,..,60
	VMOVDQU32  2(AX), Z1 // dwords at 2,6,..,62
	VPTESTMD   Z0, Z0, K1
	KORTESTW   K1, K1
	JZ         next5

	// Trigrams at 4l (in Z0), then at 4l+2 (in Z1): BX bits 0-31.
	TRIGRAMS_AVX512(Z0, K3)
	TRIGRAMS_AVX512(Z1, K1)
	KUNPCKWD K3, K1, K3 // K3 low, K1 high
	KMOVD    K3, BX

	// 4-grams at 4l, in the lanes that read as UTF-16LE text (K4). Text
	// and most random blocks hold no zero byte: a cheaper test first.
	VPTESTNMB Z0, Z0, K4
	KORTESTQ  K4, K4
	JZ        store5
	VPTESTNMD Z16, Z0, K4     // no byte >= 0x80
	VPTESTNMD Z17, Z0, K5     // bytes 1 and 3 zero,
	VPTESTMD  Z18, Z0, K5, K5 // byte 0
	VPTESTMD  Z19, Z0, K5, K5 // and byte 2 not
	VPTESTNMD Z20, Z0, K6     // or bytes 0 and 2 zero,
	VPTESTMD  Z21, Z0, K6, K6 // byte 1
	VPTESTMD  Z22, Z0, K6, K6 // and byte 3 not
	KORW      K5, K6, K5
	KANDW     K4, K5, K4
	KORTESTW  K4, K4
	JZ        store5

	VPANDD     Z14, Z0, Z2
	VPMULLD    Z12, Z2, Z3
	VPSRLD     $15, Z3, Z3 // slot
	VPSRLD     $5, Z3, Z4  // word
	KMOVW      K4, K2
	VPXORD     Z7, Z7, Z7
	VPGATHERDD (DI)(Z4*4), K2, Z7
	VPRORVD    Z3, Z7, Z8
	VPTESTMD   Z10, Z8, K4, K3
	KMOVW      K3, R8
	SHLQ       $32, R8
	ORQ        R8, BX

store5:
	XORQ  R11, R11
	TESTQ BX, BX
	SETNE R11
	MOVQ  R9, R8
	SHLQ  $48, R8
	ORQ   R8, BX
	MOVQ  BX, (DX)(R10*8)
	ADDQ  R11, R10

next5:
	ADDQ $64, AX
	INCQ R9
	DECQ CX
	JMP  loop5

done5:
	VZEROUPPER
	MOVQ R10, ret+40(FP)
	RET

