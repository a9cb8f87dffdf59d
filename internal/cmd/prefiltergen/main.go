// Command prefiltergen measures the tables that steer the keyword
// prefilter's choice of q-grams (detectors/prefilter.go) on this machine's
// files, and writes them as Go:
//
//   - byteFreq: the frequency of each byte value (in 1/65536, at least 1)
//     over an even mix of executables and shared libraries (ELF files under
//     -bin, default /usr/bin and /usr/lib) and text (-text, default
//     /usr/share/doc and /etc);
//   - commonTrigramText: the -trigrams (4096) most frequent trigrams of text
//     files (-trigram-text: /usr/share/doc, /usr/share/man, /etc, Go and
//     Python sources), counted with bit 5 of every byte cleared (so "the",
//     "THE" and "The" are one entry, and so are " " and NUL) and written in
//     their most common form, most frequent first;
//   - trigramAnchors: the measured frequency (parts per million of trigram
//     positions in that text) at ranks 1, 10, 100, 1000 and 4000.
//
// Compressed files (.gz) are read decompressed; text is a file with no NUL
// in its first 8 KiB. Files are read in path order, at most -max-file
// bytes each and -max-bytes per corpus, so that the result depends only on
// the files.
//
//	go generate ./detectors   # runs: go run ../internal/cmd/prefiltergen -tag prefiltermeasured -o prefilter_tables_measured.go
//
// The tables only steer which q-grams of a keyword the prefilter samples
// (the rarest); every choice finds every occurrence
// (TestPrefilterFindsEveryOccurrence). The committed tables
// (detectors/prefilter_tables.go) were measured once on another machine
// and make fewer filter hits on make bench's data than this machine's
// measurement; go generate therefore writes the measurement behind a build
// tag, to compare with `go test -bench PrefilterCandidates ./detectors`
// with and without -tags prefiltermeasured (see prefilter_tables.go).
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"flag"
	"fmt"
	"go/format"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// anchorRanks are the ranks whose measured frequency commonTrigrams
// interpolates between.
var anchorRanks = []int{1, 10, 100, 1000, 4000}

type config struct {
	bin, text, trigramText []string
	trigrams               int
	maxFile, maxBytes      int64
	tag                    string // build constraint of the output, if any
}

func main() {
	var c config
	bin := flag.String("bin", "/usr/bin,/usr/lib", "comma-separated directories of executables and shared libraries (ELF files are read)")
	text := flag.String("text", "/usr/share/doc,/etc", "comma-separated directories of text for the byte frequencies")
	tri := flag.String("trigram-text", "/usr/share/doc,/usr/share/man,/etc,/usr/local/go/src,/usr/lib/go/src,/usr/lib/python3", "comma-separated directories of text for the trigram counts (missing ones are skipped)")
	flag.IntVar(&c.trigrams, "trigrams", 4096, "how many trigrams to keep")
	flag.Int64Var(&c.maxFile, "max-file", 16<<20, "bytes read of one file at most")
	flag.Int64Var(&c.maxBytes, "max-bytes", 1<<30, "bytes read of one corpus at most")
	flag.StringVar(&c.tag, "tag", "", "build constraint of the output file (e.g. prefiltermeasured)")
	out := flag.String("o", "", "output Go file (default: standard output)")
	flag.Parse()
	c.bin, c.text, c.trigramText = split(*bin), split(*text), split(*tri)
	src, err := c.generate()
	if err == nil {
		if *out == "" {
			_, err = os.Stdout.Write(src)
		} else {
			err = os.WriteFile(*out, src, 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "prefiltergen:", err)
		os.Exit(1)
	}
}

func split(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tables is what prefiltergen measures.
type tables struct {
	byteFreq                 [256]uint16
	trigrams                 []string // most common form of each, most frequent first
	anchors                  [][2]float64
	binBytes, textBytes      int64
	trigramBytes, positions  int64
	binFiles, textFiles, trf int
}

func (c config) generate() ([]byte, error) {
	t, err := c.measure()
	if err != nil {
		return nil, err
	}
	return t.source(c)
}

func (c config) measure() (*tables, error) {
	var t tables
	var binCount, textCount [256]int64
	var err error
	t.binFiles, t.binBytes, err = c.walk(c.bin, isELF, func(b []byte) { countBytes(&binCount, b) })
	if err != nil {
		return nil, err
	}
	t.textFiles, t.textBytes, err = c.walk(c.text, isText, func(b []byte) { countBytes(&textCount, b) })
	if err != nil {
		return nil, err
	}
	if t.binBytes == 0 || t.textBytes == 0 {
		return nil, errors.New("no executables or no text found")
	}
	for i := range 256 {
		f := 0.5*float64(binCount[i])/float64(t.binBytes) + 0.5*float64(textCount[i])/float64(t.textBytes)
		t.byteFreq[i] = uint16(max(1, min(65535, math.Round(f*65536))))
	}
	// Raw trigram counts, keyed by the bytes little-endian (24 bits).
	raw := make([]uint32, 1<<24)
	t.trf, t.trigramBytes, err = c.walk(c.trigramText, isText, func(b []byte) {
		for i := 0; i+3 <= len(b); i++ {
			k := uint32(b[i]) | uint32(b[i+1])<<8 | uint32(b[i+2])<<16
			if raw[k] < math.MaxUint32 {
				raw[k]++
			}
		}
		t.positions += int64(max(0, len(b)-2))
	})
	if err != nil {
		return nil, err
	}
	t.trigrams, t.anchors = topTrigrams(raw, c.trigrams, t.positions)
	return &t, nil
}

// topTrigrams folds raw counts (bit 5 of each byte cleared) and returns
// the n most frequent folded trigrams, each in its most common raw form,
// with the frequency (ppm of positions) at anchorRanks.
func topTrigrams(raw []uint32, n int, positions int64) ([]string, [][2]float64) {
	const fold = 0xDFDFDF
	folded := map[uint32]uint64{}
	form := map[uint32]uint32{} // folded key → its most common raw key
	for k, v := range raw {
		if v == 0 {
			continue
		}
		f := uint32(k) & fold
		folded[f] += uint64(v)
		if best, ok := form[f]; !ok || v > raw[best] || v == raw[best] && uint32(k) < best {
			form[f] = uint32(k)
		}
	}
	keys := make([]uint32, 0, len(folded))
	for k := range folded {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b uint32) int {
		if folded[a] != folded[b] {
			if folded[a] > folded[b] {
				return -1
			}
			return 1
		}
		return int(a) - int(b)
	})
	keys = keys[:min(n, len(keys))]
	out := make([]string, len(keys))
	for i, k := range keys {
		r := form[k]
		out[i] = string([]byte{byte(r), byte(r >> 8), byte(r >> 16)})
	}
	var anchors [][2]float64
	for _, r := range anchorRanks {
		if r <= len(keys) && positions > 0 {
			ppm := float64(folded[keys[r-1]]) / float64(positions) * 1e6
			anchors = append(anchors, [2]float64{float64(r), math.Round(ppm)})
		}
	}
	return out, anchors
}

func countBytes(c *[256]int64, b []byte) {
	for _, x := range b {
		c[x]++
	}
}

// walk reads, in path order, the regular files under dirs that keep
// accepts, decompressing .gz files, and hands each file's bytes to f. A
// directory that does not exist is skipped; unreadable files are skipped.
func (c config) walk(dirs []string, keep func([]byte) bool, f func([]byte)) (files int, total int64, err error) {
	var paths []string
	for _, d := range dirs {
		if _, err := os.Stat(d); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		err := filepath.WalkDir(d, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return nil // unreadable directory: skipped
			}
			if e.Type().IsRegular() {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			return 0, 0, err
		}
	}
	slices.Sort(paths)
	paths = slices.Compact(paths)
	for _, p := range paths {
		if total >= c.maxBytes {
			break
		}
		b, err := readFile(p, min(c.maxFile, c.maxBytes-total))
		if err != nil || len(b) == 0 || !keep(b) {
			continue
		}
		f(b)
		files++
		total += int64(len(b))
	}
	return files, total, nil
}

func readFile(p string, limit int64) ([]byte, error) {
	fh, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var r io.Reader = bufio.NewReader(fh)
	if strings.HasSuffix(p, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, err
		}
		r = zr
	}
	b, err := io.ReadAll(io.LimitReader(r, limit))
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return nil, err
	}
	return b, nil
}

func isELF(b []byte) bool { return bytes.HasPrefix(b, []byte("\x7fELF")) }

func isText(b []byte) bool { return bytes.IndexByte(b[:min(len(b), 8192)], 0) < 0 }

// source writes the tables as the Go file detectors/prefilter.go reads.
func (t *tables) source(c config) ([]byte, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "// Code generated by internal/cmd/prefiltergen; DO NOT EDIT.\n\n")
	if c.tag != "" {
		fmt.Fprintf(&b, "//go:build %s\n\n", c.tag)
	}
	fmt.Fprintf(&b, "package detectors\n\n")
	fmt.Fprintf(&b, "// byteFreq, half and half: %d ELF files (%d bytes) under\n// %s; %d text files (%d bytes) under %s.\n",
		t.binFiles, t.binBytes, strings.Join(c.bin, ", "), t.textFiles, t.textBytes, strings.Join(c.text, ", "))
	b.WriteString("var byteFreq = [256]uint16{\n")
	for i := 0; i < 256; i += 16 {
		var row []string
		for _, v := range t.byteFreq[i : i+16] {
			row = append(row, strconv.Itoa(int(v)))
		}
		b.WriteString("\t" + strings.Join(row, ", ") + ",\n")
	}
	b.WriteString("}\n\n")
	fmt.Fprintf(&b, "// trigramAnchors and commonTrigramText: %d text files (%d bytes, %d\n// trigram positions) under\n// %s.\n",
		t.trf, t.trigramBytes, t.positions, strings.Join(c.trigramText, ", "))
	b.WriteString("var trigramAnchors = [...][2]float64{")
	for i, a := range t.anchors {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "{%g, %g}", a[0], a[1])
	}
	b.WriteString("}\n\n")
	b.WriteString("const commonTrigramText = \"\" +\n")
	all := strings.Join(t.trigrams, "")
	const perLine = 32 * 3
	for i := 0; i < len(all); i += perLine {
		b.WriteString("\t" + strconv.Quote(all[i:min(len(all), i+perLine)]))
		if i+perLine < len(all) {
			b.WriteString(" +")
		}
		b.WriteString("\n")
	}
	return format.Source(b.Bytes())
}
