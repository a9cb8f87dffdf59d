package memdisk

import (
	"bytes"
	"compress/zlib"
	"math/rand/v2"
	"sync"
	"testing"
)

func zlibOf(t *testing.T, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := zlib.NewWriter(&out)
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// One Inflater inflates pages one after another and at once, and a bad
// page in between leaves it working.
func TestInflate(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	page := func(i int) []byte {
		p := bytes.Repeat([]byte{byte(i)}, 4096)
		for k := range 300 {
			p[rng.IntN(4096)] = byte(k)
		}
		return p
	}
	good, other := page(1), page(2)
	cases := []struct {
		name string
		src  []byte
		want []byte // nil: an error
	}{
		{"a page", zlibOf(t, good), good},
		{"another page", zlibOf(t, other), other},
		{"a stream cut short", zlibOf(t, good)[:40], nil},
		{"no zlib header", []byte("not zlib at all"), nil},
		{"empty", nil, nil},
		{"a page after the errors", zlibOf(t, good), good},
		{"a stream longer than the page: its first page", zlibOf(t, append(bytes.Clone(good), other...)), good},
	}
	var f Inflater
	for _, c := range cases {
		dst := make([]byte, 4096)
		n, err := f.Inflate(c.src, dst)
		switch {
		case c.want == nil && err == nil:
			t.Errorf("%s: no error (%d bytes)", c.name, n)
		case c.want != nil && (err != nil || n != len(dst) || !bytes.Equal(dst, c.want)):
			t.Errorf("%s: %d bytes, %v", c.name, n, err)
		}
	}
	pages := make([][]byte, 32)
	srcs := make([][]byte, len(pages))
	for i := range pages {
		pages[i] = page(i)
		srcs[i] = zlibOf(t, pages[i])
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dst := make([]byte, 4096)
			for i := range 200 {
				k := (i*7 + w) % len(pages)
				if _, err := f.Inflate(srcs[k], dst); err != nil || !bytes.Equal(dst, pages[k]) {
					t.Errorf("worker %d, page %d: %v", w, k, err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
