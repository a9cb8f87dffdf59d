package testutil

import (
	"testing"

	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
)

// FuzzSeed returns the []byte value of a committed one-argument fuzz corpus
// file ("go test fuzz v1" then a []byte(...) line), so that a test can
// check that a seed still reaches what it was made for.
func FuzzSeed(t testing.TB, path string) []byte {
	t.Helper()
	b, err := fuzzcorpus.Decode(FileSnapshot(t, path))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}
