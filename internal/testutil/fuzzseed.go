package testutil

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzSeed returns the []byte value of a committed one-argument fuzz corpus
// file ("go test fuzz v1" then a []byte(...) line), so that a test can
// check that a seed still reaches what it was made for.
func FuzzSeed(t testing.TB, path string) []byte {
	t.Helper()
	_, lit, ok := strings.Cut(strings.TrimSpace(string(FileSnapshot(t, path))), "[]byte(")
	if !ok {
		t.Fatalf("%s: not a []byte fuzz corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
