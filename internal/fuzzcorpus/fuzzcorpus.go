// Package fuzzcorpus reads and writes files of Go's fuzz corpus format
// ("go test fuzz v1", then one Go literal a line), for the programs and
// tests that write the committed seed corpora (testdata/fuzz/FuzzX/NAME)
// and the tests that check a seed still reaches what it was made for.
package fuzzcorpus

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

const header = "go test fuzz v1\n"

// Encode returns the corpus file of one fuzz input: values of type
// []byte, string, byte (written as byte(N)), uint16, int, int64 or bool, in the
// order of the fuzz function's arguments.
func Encode(values ...any) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(header)
	for i, v := range values {
		switch v := v.(type) {
		case []byte:
			b.WriteString("[]byte(" + strconv.Quote(string(v)) + ")\n")
		case string:
			b.WriteString("string(" + strconv.Quote(v) + ")\n")
		case byte:
			fmt.Fprintf(&b, "byte(%d)\n", v)
		case uint16:
			fmt.Fprintf(&b, "uint16(%d)\n", v)
		case int:
			fmt.Fprintf(&b, "int(%d)\n", v)
		case int64:
			fmt.Fprintf(&b, "int64(%d)\n", v)
		case bool:
			fmt.Fprintf(&b, "bool(%t)\n", v)
		default:
			return nil, fmt.Errorf("fuzzcorpus: value %d is a %T", i, v)
		}
	}
	return b.Bytes(), nil
}

// Write writes the corpus file dir/name of one fuzz input (see Encode),
// creating dir.
func Write(dir, name string, values ...any) error {
	b, err := Encode(values...)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, name), b, 0o644)
}

// Decode returns the first value of a corpus file, which must be a []byte.
func Decode(file []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(file), header)
	if !ok {
		return nil, fmt.Errorf("fuzzcorpus: no %q line", strings.TrimSpace(header))
	}
	line, _, _ := strings.Cut(rest, "\n")
	lit, ok := strings.CutPrefix(strings.TrimSpace(line), "[]byte(")
	if !ok || !strings.HasSuffix(lit, ")") {
		return nil, fmt.Errorf("fuzzcorpus: the first value is not a []byte")
	}
	s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
	if err != nil {
		return nil, fmt.Errorf("fuzzcorpus: %w", err)
	}
	return []byte(s), nil
}
