package luks

import (
	"bytes"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ./testdata/mkseeds testdata/fuzz/FuzzRead

// FuzzRead reads arbitrary bytes as a LUKS header. It must never panic,
// allocate without bound or report key material outside the volume.
func FuzzRead(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		size := max(int64(len(data)), 1<<20)
		padded := make([]byte, size)
		copy(padded, data)
		h, err := Read(bytes.NewReader(padded), size, "fuzz")
		if err != nil {
			return
		}
		for _, r := range h.KeyMaterial {
			if r[0] < 0 || r[1] < r[0] || r[1] > size {
				t.Fatalf("key material %v outside the %d-byte volume", r, size)
			}
		}
		h.Note()
	})
}

// TestFuzzSeeds checks the committed seeds: LUKS1 and LUKS2 headers made
// by cryptsetup luksFormat, each with one key slot.
func TestFuzzSeeds(t *testing.T) {
	for name, version := range map[string]int{"luks1": 1, "luks2": 2} {
		data := testutil.FuzzSeed(t, filepath.Join("testdata/fuzz/FuzzRead", name))
		padded := make([]byte, 32<<20)
		copy(padded, data)
		h, err := Read(bytes.NewReader(padded), int64(len(padded)), name)
		if err != nil || h.Version != version || h.KeySlots != 1 || h.Cipher != "aes-xts-plain64" || len(h.KeyMaterial) == 0 {
			t.Errorf("%s: %+v, %v", name, h, err)
		}
	}
}
