package sparseimg

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// ReadCorpus returns the []byte values of the Go fuzz corpus files in dir
// (testdata/fuzz/<target>) whose names start with prefix, as go test reads
// them: files of one []byte literal after the "go test fuzz v1" line.
func ReadCorpus(dir, prefix string) ([][]byte, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), prefix) {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		lines := strings.SplitN(string(b), "\n", 3)
		if len(lines) < 2 || lines[0] != "go test fuzz v1" {
			continue
		}
		lit, ok := strings.CutPrefix(strings.TrimSpace(lines[1]), "[]byte(")
		if !ok {
			continue
		}
		s, err := strconv.Unquote(strings.TrimSuffix(lit, ")"))
		if err != nil {
			return nil, err
		}
		out = append(out, []byte(s))
	}
	return out, nil
}
