package qemufixture

import (
	"bytes"
	"crypto/sha256"
	"io"
	"os"
	"testing"
)

// CheckPlants asserts that every planted run reads back exactly from a
// guest-physical ReaderAt.
func CheckPlants(t testing.TB, what string, r io.ReaderAt, plants []Plant) {
	t.Helper()
	for _, p := range plants {
		got := make([]byte, len(p.Data))
		if _, err := r.ReadAt(got, p.Addr); err != nil {
			t.Errorf("%s: %s at 0x%x: %v", what, p.Name, p.Addr, err)
			continue
		}
		if !bytes.Equal(got, p.Data) {
			i := 0
			for i < len(got) && got[i] == p.Data[i] {
				i++
			}
			t.Errorf("%s: %s at 0x%x: differs from byte %d of %d", what, p.Name, p.Addr, i, len(p.Data))
		}
	}
}

// FileSum returns a file's sha256, to prove a reader did not change it.
func FileSum(t testing.TB, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
