package structural

import (
	"bytes"
	"crypto/aes"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// encryptWithSchedule is a plain FIPS-197 AES encryption driven by a
// schedule from ExpandAESKey, to check that schedule against crypto/aes.
func encryptWithSchedule(sched, in []byte) []byte {
	nr := len(sched)/16 - 1
	s := bytes.Clone(in)
	xorRK := func(r int) {
		for i := range 16 {
			s[i] ^= sched[16*r+i]
		}
	}
	xtime := func(b byte) byte { return b<<1 ^ (b>>7)*0x1b }
	xorRK(0)
	for r := 1; r <= nr; r++ {
		for i := range s {
			s[i] = aesSbox[s[i]]
		}
		var t [16]byte
		for c := range 4 {
			for row := range 4 {
				t[row+4*c] = s[row+4*((c+row)%4)]
			}
		}
		copy(s, t[:])
		if r != nr {
			for c := range 4 {
				a0, a1, a2, a3 := s[4*c], s[4*c+1], s[4*c+2], s[4*c+3]
				s[4*c] = xtime(a0) ^ xtime(a1) ^ a1 ^ a2 ^ a3
				s[4*c+1] = a0 ^ xtime(a1) ^ xtime(a2) ^ a2 ^ a3
				s[4*c+2] = a0 ^ a1 ^ xtime(a2) ^ xtime(a3) ^ a3
				s[4*c+3] = xtime(a0) ^ a0 ^ a1 ^ a2 ^ xtime(a3)
			}
		}
		xorRK(r)
	}
	return s
}

func TestExpandAESKey(t *testing.T) {
	// FIPS-197 appendix A: the last schedule word for each example key.
	fips := []struct{ key, lastWord string }{
		{"2b7e151628aed2a6abf7158809cf4f3c", "b6630ca6"},
		{"8e73b0f7da0e6452c810f32b809079e562f8ead2522c6b7b", "01002202"},
		{"603deb1015ca71be2b73aef0857d77811f352c073b6108d72d9810a30914dff4", "706c631e"},
	}
	for _, v := range fips {
		key, _ := hex.DecodeString(v.key)
		s := ExpandAESKey(key)
		if got := hex.EncodeToString(s[len(s)-4:]); got != v.lastWord {
			t.Errorf("FIPS-197 key %d bits: last word %s, want %s", 8*len(key), got, v.lastWord)
		}
	}
	// Against crypto/aes: encrypting with our schedule must match.
	r := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{16, 24, 32} {
		for range 20 {
			key, in := randBytes(r, size), randBytes(r, 16)
			c, err := aes.NewCipher(key)
			if err != nil {
				t.Fatal(err)
			}
			want := make([]byte, 16)
			c.Encrypt(want, in)
			if got := encryptWithSchedule(ExpandAESKey(key), in); !bytes.Equal(got, want) {
				t.Fatalf("AES-%d: schedule does not match crypto/aes", 8*size)
			}
		}
	}
	if ExpandAESKey(make([]byte, 20)) != nil {
		t.Fatal("accepted a 20-byte key")
	}
}

// randBytes returns n random bytes with no zero byte (non-zero memory).
func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(255) + 1)
	}
	return b
}

type aesHit struct {
	off int
	key string
}

func findAES(buf []byte, m int) []aesHit {
	var hits []aesHit
	FindAESKeySchedules(buf, m, func(off int, key []byte) {
		hits = append(hits, aesHit{off, hex.EncodeToString(key)})
	})
	return hits
}

func TestFindAESKeySchedules(t *testing.T) {
	const bufSize = 16 << 10
	type tc struct {
		name     string
		keySize  int
		off      int // -1: as late as fits
		lastFlip int // bits flipped in the last schedule word (counted once each)
		keyFlip  bool
		found    bool
	}
	var cases []tc
	for _, size := range []int{16, 24, 32} {
		for _, off := range []int{0, 1, 777, 4096 - 101, 4093, 8191, -1} {
			cases = append(cases, tc{fmt.Sprintf("aes%d-off%d", 8*size, off), size, off, 0, false, true})
		}
		cases = append(cases,
			tc{fmt.Sprintf("aes%d-5-flips", 8*size), size, 4093, 5, false, true},
			tc{fmt.Sprintf("aes%d-10-flips", 8*size), size, 333, 10, false, true},
			tc{fmt.Sprintf("aes%d-11-flips", 8*size), size, 333, 11, false, false},
			tc{fmt.Sprintf("aes%d-flip-in-key", 8*size), size, 1001, 0, true, true},
		)
	}
	r := rand.New(rand.NewPCG(9, 10))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			buf := randBytes(r, bufSize)
			key := randBytes(r, c.keySize)
			sched := ExpandAESKey(key)
			off := c.off
			if off < 0 {
				off = bufSize - len(sched)
			}
			copy(buf[off:], sched)
			last := off + len(sched) - 4
			for _, bit := range r.Perm(32)[:c.lastFlip] {
				buf[last+bit/8] ^= 1 << (bit % 8)
			}
			if c.keyFlip {
				// A key bit feeds three relations at most; the total stays
				// under 10 for one flipped bit of the first word.
				buf[off] ^= 0x04
			}
			hits := findAES(buf, 10)
			if !c.found {
				if len(hits) != 0 {
					t.Fatalf("found %d schedules, want none", len(hits))
				}
				return
			}
			want := []aesHit{{off, hex.EncodeToString(buf[off : off+c.keySize])}}
			if !slices.Equal(hits, want) {
				t.Fatalf("got %d hits %v, want one at %d", len(hits), offsets(hits), off)
			}
			if !c.keyFlip && want[0].key != hex.EncodeToString(key) {
				t.Fatal("emitted key differs from the planted key")
			}
		})
	}

	// No false positives on random, zero, byte-fill and counting data.
	neg := map[string][]byte{
		"random":  randBytes(r, 1<<20),
		"zero":    make([]byte, 64<<10),
		"fill-ff": bytes.Repeat([]byte{0xff}, 64<<10),
		"words":   bytes.Repeat([]byte{1, 0, 0, 0}, 16<<10),
		"counter": func() []byte {
			b := make([]byte, 64<<10)
			for i := range b {
				b[i] = byte(i)
			}
			return b
		}(),
		"short": randBytes(r, 100),
	}
	for name, buf := range neg {
		t.Run("neg-"+name, func(t *testing.T) {
			if hits := findAES(buf, 10); len(hits) != 0 {
				t.Fatalf("false positives at %v", offsets(hits))
			}
		})
	}
	// A zero page with one schedule in it (low-entropy surroundings).
	t.Run("schedule-in-zero-page", func(t *testing.T) {
		buf := make([]byte, 8192)
		key := randBytes(r, 16)
		copy(buf[1234:], ExpandAESKey(key))
		if hits := findAES(buf, 10); !slices.Equal(hits, []aesHit{{1234, hex.EncodeToString(key)}}) {
			t.Fatalf("got %v", hits)
		}
	})
}

func offsets(h []aesHit) []int {
	var o []int
	for _, x := range h {
		o = append(o, x.off)
	}
	return o
}

// TestFindAESRecallVsAeskeyfind plants AES-128/256 schedules with random bit
// errors anywhere in them and checks that every key Debian's aeskeyfind
// reports is reported by FindAESKeySchedules too.
func TestFindAESRecallVsAeskeyfind(t *testing.T) {
	testutil.RequireTool(t, "aeskeyfind")
	r := rand.New(rand.NewPCG(11, 12))
	buf := randBytes(r, 1<<20)
	var planted int
	for off := 1000; off+300 < len(buf); off += 9973 {
		size := []int{16, 32}[planted%2]
		copy(buf[off:], ExpandAESKey(randBytes(r, size)))
		sched := buf[off : off+16*(size/4+7)]
		for range r.IntN(7) { // 0..6 flipped bits anywhere in the schedule
			bit := r.IntN(8 * len(sched))
			sched[bit/8] ^= 1 << (bit % 8)
		}
		planted++
	}
	path := filepath.Join(t.TempDir(), "mem.bin")
	if err := os.WriteFile(path, buf, 0o600); err != nil {
		t.Fatal(err)
	}
	out := testutil.Run(t, "aeskeyfind", "-q", "-t", "10", path)
	theirs := map[string]bool{}
	for _, l := range strings.Fields(string(out)) {
		if _, err := hex.DecodeString(l); err == nil && (len(l) == 32 || len(l) == 64) {
			theirs[l] = true
		}
	}
	ours := map[string]bool{}
	for _, h := range findAES(buf, 10) {
		ours[h.key] = true
	}
	missed := 0
	for k := range theirs {
		if !ours[k] {
			missed++
		}
	}
	t.Logf("planted %d, aeskeyfind found %d, we found %d", planted, len(theirs), len(ours))
	if len(theirs) == 0 || missed != 0 {
		t.Fatalf("aeskeyfind found %d keys, %d of them missed by FindAESKeySchedules", len(theirs), missed)
	}
	unchanged(t, path, buf)
}
