package structural

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// exhaustiveAES is the definition FindAESKeySchedules must meet: every
// start offset checked in full (the bit errors of every schedule word, then
// the entropy window), the longest key size first.
func exhaustiveAES(buf []byte, m int) []aesHit {
	var hits []aesHit
	for s := range buf {
		for _, nk := range [3]int{8, 6, 4} {
			size := 4 * aesScheduleWords(nk)
			if s+size > len(buf) {
				continue
			}
			if sched := buf[s : s+size]; aesScheduleErrors(sched, nk, m) <= m && !lowEntropy(sched) {
				hits = append(hits, aesHit{s, hex.EncodeToString(sched[:4*nk])})
				break
			}
		}
	}
	return hits
}

// exhaustiveDER is the DER search without a filter: every "30 82" is tried,
// and the search resumes after an emitted key.
func exhaustiveDER(buf []byte) []derHit {
	var hits []derHit
	for i := 0; i+8 <= len(buf); {
		k := bytes.Index(buf[i:], []byte{0x30, 0x82})
		if k < 0 || i+k+8 > len(buf) {
			break
		}
		i += k
		if length, info, ok := rsaDERAt(buf, i); ok {
			hits = append(hits, derHit{i, length, info})
			i += length
			continue
		}
		i++
	}
	return hits
}

// searchWith runs findMemoryKeys with filter and returns both kinds of hits.
func searchWith(filter blockFilter, buf []byte, m int) ([]aesHit, []derHit) {
	var aes []aesHit
	var der []derHit
	findMemoryKeys(filter, buf, m,
		func(off int, key []byte) { aes = append(aes, aesHit{off, hex.EncodeToString(key)}) },
		func(off, length int, info KeyInfo) { der = append(der, derHit{off, length, info}) })
	return aes, der
}

// filterOutput runs a block filter over every block of buf, in batches that
// start at odd block numbers too, and returns all its entries.
func filterOutput(filter blockFilter, buf []byte, m uint64) []uint64 {
	var all []uint64
	nb := memKeyBlocks(len(buf))
	out := make([]uint64, 2*memKeyBatch)
	for first, batch := 0, 1; first < nb; first, batch = first+batch, min(2*batch+1, memKeyBatch) {
		n := min(batch, nb-first)
		c := filter(buf, first, n, m, out)
		all = append(all, out[:2*c]...)
	}
	return all
}

// memKeyInputs are the buffers of the equivalence tests: random and real
// bytes, sparse data that passes the XOR relations, fills, and schedules of
// every size (with bit errors up to and past 10) and DER keys planted in
// them, also across page boundaries and at both ends.
func memKeyInputs(t *testing.T) map[string][]byte {
	t.Helper()
	r := mrand.New(mrand.NewPCG(22, 23))
	k1, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	pkcs1 := x509.MarshalPKCS1PrivateKey(k1)
	pkcs8, err := x509.MarshalPKCS8PrivateKey(k1)
	if err != nil {
		t.Fatal(err)
	}
	plant := func(buf []byte) []byte {
		size := []int{16, 24, 32}
		for i, off := 0, 0; off+600 < len(buf); i, off = i+1, off+(len(buf)-600)/37+1 {
			// The first schedule starts at 0, the last ends at len(buf).
			at := off + r.IntN(64)
			if i == 0 {
				at = 0
			}
			sched := ExpandAESKey(randBytes(r, size[i%3]))
			copy(buf[at:], sched)
			for range r.IntN(13) { // 0..12 flipped bits anywhere
				bit := r.IntN(8 * len(sched))
				buf[at+bit/8] ^= 1 << (bit % 8)
			}
			if i%5 == 4 {
				copy(buf[at+300:], []byte{0x30, 0x82, 0x01, 0x00, 0x02, 0x01, 0x00}) // a prefix, no key
			}
		}
		copy(buf[len(buf)-240:], ExpandAESKey(randBytes(r, 32)))
		if len(buf) >= 1<<14 {
			copy(buf[4096-len(pkcs1)/2:], pkcs1)
			copy(buf[len(buf)/2-7:], pkcs8)
			copy(buf[len(buf)-240-len(pkcs1):], pkcs1)
		}
		return buf
	}
	sparse := make([]byte, 1<<18)
	for i := 0; i < len(sparse); i += 4 {
		binary.LittleEndian.PutUint32(sparse[i:], uint32(r.IntN(300)))
	}
	fills := make([]byte, 1<<18)
	for i := 0; i < len(fills); i += 4096 {
		c := []byte{0x00, 0x20, 0x01, 0xff, 0x90}[i/4096%5]
		copy(fills[i:i+4096], bytes.Repeat([]byte{c}, 4096))
	}
	return map[string][]byte{
		"random":        plant(randBytes(r, 1<<20)),
		"host":          plant(bytes.Clone(testutil.HostBytes(t, 2<<20, "/usr/lib", "/usr/bin"))),
		"sparse":        plant(sparse),
		"fills":         plant(fills),
		"zero":          plant(make([]byte, 1<<16)),
		"short":         plant(randBytes(r, 700)),
		"below-a-block": randBytes(r, memKeyBlockReach-1),
	}
}

// TestFindMemoryKeysExhaustive checks that the filtered search, with the
// portable filter and with this CPU's vector filter, reports exactly what
// checking every offset in full reports.
func TestFindMemoryKeysExhaustive(t *testing.T) {
	filters := map[string]blockFilter{"go": memKeyBlocksGo}
	for name, f := range memKeyVectors() {
		filters[name] = f
	}
	for name, buf := range memKeyInputs(t) {
		wantDER := exhaustiveDER(buf)
		if len(buf) >= 1<<14 && len(wantDER) < 3 {
			t.Errorf("%s: %d DER keys, planted 3", name, len(wantDER))
		}
		for _, m := range []int{0, 3, 10, 23} {
			wantAES := exhaustiveAES(buf, m)
			if name != "below-a-block" && len(wantAES) == 0 {
				t.Errorf("%s: no AES schedule with at most %d bit errors: the input tests nothing", name, m)
			}
			for fname, f := range filters {
				t.Run(fmt.Sprintf("%s/m%d/%s", name, m, fname), func(t *testing.T) {
					aes, der := searchWith(f, buf, m)
					if !slices.Equal(aes, wantAES) {
						t.Errorf("AES: got %d hits at %v, want %d at %v", len(aes), offsets(aes), len(wantAES), offsets(wantAES))
					}
					if !slices.EqualFunc(der, wantDER, func(a, b derHit) bool { return a.off == b.off && a.length == b.length }) {
						t.Errorf("DER: got %v, want %v", der, wantDER)
					}
				})
			}
		}
	}
}

// TestMemKeyFilterVectorMatchesGo checks that each vector block filter
// this CPU runs gives the portable filter's entries, entry for entry.
func TestMemKeyFilterVectorMatchesGo(t *testing.T) {
	vectors := memKeyVectors()
	if len(vectors) == 0 {
		t.Skip("this CPU runs no vector memory-key filter (AVX2, or AVX-512 F, BW and VPOPCNTDQ)")
	}
	for name, buf := range memKeyInputs(t) {
		for _, m := range []uint64{0, 1, 10, 23, 64, maxFilterErrors} {
			want := filterOutput(memKeyBlocksGo, buf, m)
			if name != "below-a-block" && name != "short" && len(want) == 0 {
				t.Fatalf("%s: no filter entries: the input tests nothing", name)
			}
			for vname, f := range vectors {
				t.Run(fmt.Sprintf("%s/m%d/%s", name, m, vname), func(t *testing.T) {
					if got := filterOutput(f, buf, m); !slices.Equal(got, want) {
						t.Fatalf("%d entries, portable %d; first difference at word %d", len(got)/2, len(want)/2, firstDiff(got, want))
					}
				})
			}
		}
	}
}

func firstDiff(a, b []uint64) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func FuzzMemKeyFilter(f *testing.F) {
	r := mrand.New(mrand.NewPCG(24, 25))
	for _, size := range []int{16, 24, 32} {
		buf := randBytes(r, 400)
		copy(buf[13:], ExpandAESKey(randBytes(r, size)))
		f.Add(buf, uint8(10))
	}
	sparse := make([]byte, 512)
	copy(sparse[200:], ExpandAESKey(randBytes(r, 16)))
	f.Add(sparse, uint8(3))
	der := randBytes(r, 400)
	copy(der[70:], []byte{0x30, 0x82, 0x01, 0x20, 0x02, 0x01, 0x00, 0x02})
	f.Add(der, uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, maxErr uint8) {
		m := int(maxErr % 24)
		want := filterOutput(memKeyBlocksGo, data, uint64(m))
		for name, f := range memKeyVectors() {
			if got := filterOutput(f, data, uint64(m)); !slices.Equal(got, want) {
				t.Fatalf("%s filter %x, portable %x", name, got, want)
			}
		}
		wantDER := derEntries(want)
		if got := filterOutput(derBlocksGo, data, uint64(m)); !slices.Equal(got, wantDER) {
			t.Fatalf("DER-only filter %x, the full filter's DER entries %x", got, wantDER)
		}
		for name, f := range derVectors() {
			if got := filterOutput(f, data, uint64(m)); !slices.Equal(got, wantDER) {
				t.Fatalf("%s DER-only filter %x, portable %x", name, got, wantDER)
			}
		}
		aes, der := searchWith(memKeyBlocksGo, data, m)
		if want := exhaustiveAES(data, m); !slices.Equal(aes, want) {
			t.Fatalf("AES: got %v, want %v", aes, want)
		}
		if want := exhaustiveDER(data); len(der) != len(want) {
			t.Fatalf("DER: got %v, want %v", der, want)
		}
	})
}

// derEntries is the DER-only filter's output expected from the full
// filter's entries: those with a DER mask, without their AES masks.
func derEntries(all []uint64) []uint64 {
	var want []uint64
	for h := 0; h+1 < len(all); h += 2 {
		if all[h+1] != 0 {
			want = append(want, all[h]&^0xffffffff, all[h+1])
		}
	}
	return want
}

// TestDERFilter checks the filter of a search without AES: portable and
// vector alike, it gives the DER entries of the full filter, and the
// search with it finds exactly the DER keys that trying every "30 82"
// finds.
func TestDERFilter(t *testing.T) {
	filters := map[string]blockFilter{"go": derBlocksGo}
	for name, f := range derVectors() {
		filters[name] = f
	}
	for name, buf := range memKeyInputs(t) {
		want := derEntries(filterOutput(memKeyBlocksGo, buf, 10))
		wantDER := exhaustiveDER(buf)
		if len(buf) >= 1<<14 && (len(want) == 0 || len(wantDER) < 3) {
			t.Fatalf("%s: %d DER filter entries and %d keys: the input tests nothing", name, len(want)/2, len(wantDER))
		}
		for fname, f := range filters {
			t.Run(name+"/"+fname, func(t *testing.T) {
				if got := filterOutput(f, buf, 10); !slices.Equal(got, want) {
					t.Fatalf("%d entries, want %d; first difference at word %d", len(got)/2, len(want)/2, firstDiff(got, want))
				}
				var der []derHit
				findMemoryKeys(f, buf, 10, nil, func(off, length int, info KeyInfo) { der = append(der, derHit{off, length, info}) })
				if !slices.EqualFunc(der, wantDER, func(a, b derHit) bool { return a.off == b.off && a.length == b.length }) {
					t.Errorf("DER: got %v, want %v", der, wantDER)
				}
			})
		}
	}
}

// TestMemoryKeySearchInParts checks that a search run in parts (Until at
// arbitrary positions, some repeated or going back, then Finish), as the
// engine runs it a window at a time, reports what one pass reports, with
// and without AES, and that a search value can be started again.
func TestMemoryKeySearchInParts(t *testing.T) {
	r := mrand.New(mrand.NewPCG(5, 6))
	var s MemoryKeySearch
	for name, buf := range memKeyInputs(t) {
		for _, withAES := range []bool{true, false} {
			var wantAES []aesHit
			var wantDER []derHit
			onAES := func(off int, key []byte) { wantAES = append(wantAES, aesHit{off, hex.EncodeToString(key)}) }
			onDER := func(off, length int, info KeyInfo) { wantDER = append(wantDER, derHit{off, length, info}) }
			if !withAES {
				onAES = nil
			}
			FindMemoryKeys(buf, 10, onAES, onDER)
			if len(buf) >= 1<<14 && (withAES && len(wantAES) == 0 || len(wantDER) == 0) {
				t.Fatalf("%s: %d AES and %d DER keys: the input tests nothing", name, len(wantAES), len(wantDER))
			}
			for trial := range 4 {
				var aes []aesHit
				var der []derHit
				var onAES func(int, []byte)
				if withAES {
					onAES = func(off int, key []byte) { aes = append(aes, aesHit{off, hex.EncodeToString(key)}) }
				}
				s.Start(buf, 10, onAES, func(off, length int, info KeyInfo) { der = append(der, derHit{off, length, info}) })
				if trial == 0 {
					// Cut next to every key: a block searched twice or
					// not at all shows there.
					var cuts []int
					for _, h := range wantAES {
						cuts = append(cuts, h.off-64, h.off, h.off+1, h.off+64)
					}
					for _, h := range wantDER {
						cuts = append(cuts, h.off-64, h.off, h.off+1, h.off+64)
					}
					slices.Sort(cuts)
					for _, c := range cuts {
						s.Until(c)
					}
				}
				for pos := 0; pos < len(buf); {
					pos += r.IntN(1<<16) - 1000
					s.Until(pos)
				}
				s.Finish()
				if !slices.Equal(aes, wantAES) {
					t.Errorf("%s/aes=%v/trial %d: AES %v, one pass %v", name, withAES, trial, offsets(aes), offsets(wantAES))
				}
				if !slices.EqualFunc(der, wantDER, func(a, b derHit) bool { return a.off == b.off && a.length == b.length }) {
					t.Errorf("%s/aes=%v/trial %d: DER %v, one pass %v", name, withAES, trial, der, wantDER)
				}
			}
		}
	}
}
