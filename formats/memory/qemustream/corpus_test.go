package qemustream

import (
	"bytes"
	"strconv"
	"testing"
)

// decodeCorpus reads a "go test fuzz v1" file holding one []byte value.
func decodeCorpus(t *testing.T, raw []byte) []byte {
	lines := bytes.SplitN(raw, []byte("\n"), 3)
	if len(lines) < 2 || string(lines[0]) != "go test fuzz v1" {
		t.Fatal("not a corpus file")
	}
	lit := bytes.TrimSuffix(bytes.TrimPrefix(bytes.TrimSpace(lines[1]), []byte("[]byte(")), []byte(")"))
	s, err := strconv.Unquote(string(lit))
	if err != nil {
		t.Fatal(err)
	}
	return []byte(s)
}
