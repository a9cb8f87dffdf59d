package structural

import (
	"encoding/binary"
	"math/bits"
)

// aesSbox is the AES S-box (FIPS-197 figure 7).
var aesSbox = [256]byte{
	0x63, 0x7c, 0x77, 0x7b, 0xf2, 0x6b, 0x6f, 0xc5, 0x30, 0x01, 0x67, 0x2b, 0xfe, 0xd7, 0xab, 0x76,
	0xca, 0x82, 0xc9, 0x7d, 0xfa, 0x59, 0x47, 0xf0, 0xad, 0xd4, 0xa2, 0xaf, 0x9c, 0xa4, 0x72, 0xc0,
	0xb7, 0xfd, 0x93, 0x26, 0x36, 0x3f, 0xf7, 0xcc, 0x34, 0xa5, 0xe5, 0xf1, 0x71, 0xd8, 0x31, 0x15,
	0x04, 0xc7, 0x23, 0xc3, 0x18, 0x96, 0x05, 0x9a, 0x07, 0x12, 0x80, 0xe2, 0xeb, 0x27, 0xb2, 0x75,
	0x09, 0x83, 0x2c, 0x1a, 0x1b, 0x6e, 0x5a, 0xa0, 0x52, 0x3b, 0xd6, 0xb3, 0x29, 0xe3, 0x2f, 0x84,
	0x53, 0xd1, 0x00, 0xed, 0x20, 0xfc, 0xb1, 0x5b, 0x6a, 0xcb, 0xbe, 0x39, 0x4a, 0x4c, 0x58, 0xcf,
	0xd0, 0xef, 0xaa, 0xfb, 0x43, 0x4d, 0x33, 0x85, 0x45, 0xf9, 0x02, 0x7f, 0x50, 0x3c, 0x9f, 0xa8,
	0x51, 0xa3, 0x40, 0x8f, 0x92, 0x9d, 0x38, 0xf5, 0xbc, 0xb6, 0xda, 0x21, 0x10, 0xff, 0xf3, 0xd2,
	0xcd, 0x0c, 0x13, 0xec, 0x5f, 0x97, 0x44, 0x17, 0xc4, 0xa7, 0x7e, 0x3d, 0x64, 0x5d, 0x19, 0x73,
	0x60, 0x81, 0x4f, 0xdc, 0x22, 0x2a, 0x90, 0x88, 0x46, 0xee, 0xb8, 0x14, 0xde, 0x5e, 0x0b, 0xdb,
	0xe0, 0x32, 0x3a, 0x0a, 0x49, 0x06, 0x24, 0x5c, 0xc2, 0xd3, 0xac, 0x62, 0x91, 0x95, 0xe4, 0x79,
	0xe7, 0xc8, 0x37, 0x6d, 0x8d, 0xd5, 0x4e, 0xa9, 0x6c, 0x56, 0xf4, 0xea, 0x65, 0x7a, 0xae, 0x08,
	0xba, 0x78, 0x25, 0x2e, 0x1c, 0xa6, 0xb4, 0xc6, 0xe8, 0xdd, 0x74, 0x1f, 0x4b, 0xbd, 0x8b, 0x8a,
	0x70, 0x3e, 0xb5, 0x66, 0x48, 0x03, 0xf6, 0x0e, 0x61, 0x35, 0x57, 0xb9, 0x86, 0xc1, 0x1d, 0x9e,
	0xe1, 0xf8, 0x98, 0x11, 0x69, 0xd9, 0x8e, 0x94, 0x9b, 0x1e, 0x87, 0xe9, 0xce, 0x55, 0x28, 0xdf,
	0x8c, 0xa1, 0x89, 0x0d, 0xbf, 0xe6, 0x42, 0x68, 0x41, 0x99, 0x2d, 0x0f, 0xb0, 0x54, 0xbb, 0x16,
}

var aesRcon = [10]uint32{0x01, 0x02, 0x04, 0x08, 0x10, 0x20, 0x40, 0x80, 0x1b, 0x36}

// Words are loaded little-endian, so byte 0 of a word is its low byte and
// RotWord ([a0 a1 a2 a3] -> [a1 a2 a3 a0]) is a right rotation by 8.
func subWord(w uint32) uint32 {
	return uint32(aesSbox[w&0xff]) | uint32(aesSbox[w>>8&0xff])<<8 |
		uint32(aesSbox[w>>16&0xff])<<16 | uint32(aesSbox[w>>24])<<24
}

// aesScheduleWords is the number of 32-bit words in the expanded schedule for
// a key of nk words (Nb*(Nr+1) = 4*(nk+7)).
func aesScheduleWords(nk int) int { return 4 * (nk + 7) }

// ExpandAESKey returns the FIPS-197 expanded key schedule of a 16, 24 or
// 32-byte key, as it lies in memory (round keys in order), or nil.
func ExpandAESKey(key []byte) []byte {
	nk := len(key) / 4
	if len(key) != 16 && len(key) != 24 && len(key) != 32 {
		return nil
	}
	total := aesScheduleWords(nk)
	w := make([]uint32, total)
	for i := range nk {
		w[i] = binary.LittleEndian.Uint32(key[4*i:])
	}
	for j := nk; j < total; j++ {
		t := w[j-1]
		switch {
		case j%nk == 0:
			t = subWord(bits.RotateLeft32(t, -8)) ^ aesRcon[j/nk-1]
		case nk == 8 && j%nk == 4:
			t = subWord(t)
		}
		w[j] = w[j-nk] ^ t
	}
	out := make([]byte, 4*total)
	for i, v := range w {
		binary.LittleEndian.PutUint32(out[4*i:], v)
	}
	return out
}

// aesScheduleErrors counts, like aeskeyfind, the bit errors of the schedule
// candidate sched (4*aesScheduleWords(nk) bytes) word by word, each word
// predicted from the observed words it derives from, so that one flipped bit
// is not propagated through the rest of the schedule. It stops counting as
// soon as the count passes limit.
func aesScheduleErrors(sched []byte, nk, limit int) int {
	total := aesScheduleWords(nk)
	sched = sched[:4*total]
	errs := 0
	for j := nk; j < total; j++ {
		t := binary.LittleEndian.Uint32(sched[4*(j-1):])
		switch {
		case j%nk == 0:
			t = subWord(bits.RotateLeft32(t, -8)) ^ aesRcon[j/nk-1]
		case nk == 8 && j%nk == 4:
			t = subWord(t)
		}
		t ^= binary.LittleEndian.Uint32(sched[4*(j-nk):]) ^ binary.LittleEndian.Uint32(sched[4*j:])
		errs += bits.OnesCount32(t)
		if errs > limit {
			return errs
		}
	}
	return errs
}

// aesEntropyWindow and aesMaxRepeats are aeskeyfind's low-entropy test: a
// candidate whose first 176 bytes repeat any byte value more than 8 times is
// not a key schedule.
const (
	aesEntropyWindow = 176
	aesMaxRepeats    = 8
)

func lowEntropy(w []byte) bool {
	var count [256]uint8
	for _, c := range w[:aesEntropyWindow] {
		count[c]++
		if count[c] > aesMaxRepeats {
			return true
		}
	}
	return false
}

// FindAESKeySchedules finds AES-128/192/256 expanded key schedules in buf
// (aeskeyfind's method, with 192-bit keys added), tolerating up to
// maxBitErrors bit errors per schedule (aeskeyfind's default is 10). Every
// byte offset is a candidate; emit gets the offset of the schedule start and
// a copy of the key bytes as observed. An offset is reported once, with the
// longest key size that matches. A schedule must lie wholly inside buf.
//
// Speed comes from a prefilter that needs no S-box: in every schedule the
// words that are not the first of a key-length group satisfy
// w[j] = w[j-Nk] ^ w[j-1], so bytes r, r+4Nk-4 and r+4Nk XOR to zero over the
// 12 bytes (20 for AES-192) that start 4 bytes into the schedule. Those 12
// bytes always contain two 4-byte-aligned words, so one 64-bit check per
// aligned position (three loads and two XORs per key size, a popcount
// against maxBitErrors) covers the four offsets whose relation region holds
// it. Its bit errors are a subset of those aeskeyfind counts, so recall is
// not lost; random data passes with probability about 1e-8 per size.
func FindAESKeySchedules(buf []byte, maxBitErrors int, emit func(off int, key []byte)) {
	m := max(maxBitErrors, 0)
	n := len(buf)
	// The smallest schedule is 176 bytes; q <= n-40 covers every start
	// offset s with s+176 <= n because q <= s+7.
	for q := 4; q+40 <= n; q += 4 {
		w := buf[q : q+40 : q+40]
		a := binary.LittleEndian.Uint64(w)
		x128 := a ^ binary.LittleEndian.Uint64(w[12:]) ^ binary.LittleEndian.Uint64(w[16:])
		x192 := a ^ binary.LittleEndian.Uint64(w[20:]) ^ binary.LittleEndian.Uint64(w[24:])
		x256 := a ^ binary.LittleEndian.Uint64(w[28:]) ^ binary.LittleEndian.Uint64(w[32:])
		if bits.OnesCount64(x128) > m && bits.OnesCount64(x192) > m && bits.OnesCount64(x256) > m {
			continue
		}
		aesCandidates(buf, q, m, emit)
	}
}

// aesCandidates checks in full the start offsets s in [q-7, q-4], whose
// relation region begins in [q-3, q].
func aesCandidates(buf []byte, q, m int, emit func(off int, key []byte)) {
	// Fast reject of zero pages and byte fills: 16 equal bytes at q lie in
	// every candidate's entropy window.
	if a, b := binary.LittleEndian.Uint64(buf[q:]), binary.LittleEndian.Uint64(buf[q+8:]); a == b && a == uint64(byte(a))*0x0101010101010101 {
		return
	}
	for s := max(q-7, 0); s <= q-4; s++ {
		for _, nk := range [3]int{8, 6, 4} {
			size := 4 * aesScheduleWords(nk)
			if s+size > len(buf) {
				continue
			}
			sched := buf[s : s+size]
			if aesScheduleErrors(sched, nk, m) > m || lowEntropy(sched) {
				continue
			}
			key := make([]byte, 4*nk)
			copy(key, sched)
			emit(s, key)
			break
		}
	}
}
