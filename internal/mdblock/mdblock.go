// Package mdblock replaces generated blocks of Markdown files: the text
// between a BEGIN and an END marker line, for the programs behind
// go:generate that write parts of the docs (internal/cmd/rulesdoc,
// internal/cmd/reportdoc).
package mdblock

import (
	"bytes"
	"fmt"
	"os"
	"strings"
)

// A Block is the text to put between two marker lines (each with its
// newline).
type Block struct{ Begin, End, Text string }

// Replace returns doc with the text between each block's markers replaced
// by the block's text; a block whose markers are missing is an error.
func Replace(doc []byte, blocks ...Block) ([]byte, error) {
	s := string(doc)
	for _, b := range blocks {
		i, j, ok := find(s, b)
		if !ok {
			return nil, fmt.Errorf("markers %q not found", strings.TrimSpace(b.Begin))
		}
		s = s[:i] + b.Text + s[j:]
	}
	return []byte(s), nil
}

// Rewrite replaces the blocks in the file at path, writing it only when
// its text changes.
func Rewrite(path string, blocks ...Block) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := Replace(doc, blocks...)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if bytes.Equal(out, doc) {
		return nil
	}
	return os.WriteFile(path, out, 0o644)
}

// Text returns the text of doc between b's markers, and whether they are
// there.
func Text(doc []byte, b Block) (string, bool) {
	s := string(doc)
	i, j, ok := find(s, b)
	return s[i:j], ok
}

// find returns where the text between b's markers starts and ends in s.
func find(s string, b Block) (start, end int, ok bool) {
	i := strings.Index(s, b.Begin)
	j := strings.Index(s, b.End)
	if i < 0 || j < i+len(b.Begin) {
		return 0, 0, false
	}
	return i + len(b.Begin), j, true
}
