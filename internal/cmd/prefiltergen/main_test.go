package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func writeCorpus(t *testing.T) (bin, text string) {
	t.Helper()
	dir := t.TempDir()
	bin, text = filepath.Join(dir, "bin"), filepath.Join(dir, "text")
	for _, d := range []string{bin, text, filepath.Join(text, "sub")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("THE end"))
	zw.Close()
	files := map[string][]byte{
		filepath.Join(bin, "prog"):             append([]byte("\x7fELF"), make([]byte, 12)...), // 16 bytes: 12 NULs
		filepath.Join(bin, "script.sh"):        []byte("#!/bin/sh\n"),                          // not ELF: skipped
		filepath.Join(text, "a.txt"):           []byte("the cat the hat"),
		filepath.Join(text, "sub", "b.txt.gz"): gz.Bytes(),
		filepath.Join(text, "blob"):            {'x', 0, 'y'}, // a NUL: not text
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return bin, text
}

func TestMeasure(t *testing.T) {
	bin, text := writeCorpus(t)
	for _, tc := range []struct {
		name     string
		maxBytes int64
		trigrams []string // ties in the order of their folded keys
		anchors  [][2]float64
		binBytes int64
		nulFreq  uint16
	}{
		// ELF: 16 bytes, 12 NULs, so NUL is 0.5*12/16 of 65536; text:
		// "the cat the hat" and "THE end": THE and HE_ 3 times each of
		// 18 positions (166667 ppm), most often as "the" and "he ".
		{"all", 1 << 20, []string{"he ", "the", "at ", " ca", " ha", "e c", "end", "E e", "e h"}, [][2]float64{{1, 166667}}, 16, 24576},
		// The first 10 bytes of each corpus: "\x7fELF" and 6 NULs
		// (0.5*6/10), "the cat th" (8 trigrams, once each).
		{"capped", 10, []string{"he ", "at ", " ca", "e c", "the", " th", "t t", "cat"}, [][2]float64{{1, 125000}}, 10, 19661},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := config{bin: []string{bin}, text: []string{text}, trigramText: []string{text, filepath.Join(text, "missing")},
				trigrams: 9, maxFile: 1 << 20, maxBytes: tc.maxBytes}
			tb, err := c.measure()
			if err != nil {
				t.Fatal(err)
			}
			if tb.binFiles != 1 || tb.binBytes != tc.binBytes {
				t.Errorf("ELF: %d files, %d bytes; want 1, %d", tb.binFiles, tb.binBytes, tc.binBytes)
			}
			if tb.byteFreq[0] != tc.nulFreq || tb.byteFreq[0xFF] != 1 {
				t.Errorf("byteFreq[0] = %d, [0xff] = %d; want %d, 1", tb.byteFreq[0], tb.byteFreq[0xFF], tc.nulFreq)
			}
			if !slices.Equal(tb.trigrams, tc.trigrams) {
				t.Errorf("trigrams %q, want %q", tb.trigrams, tc.trigrams)
			}
			if !slices.Equal(tb.anchors, tc.anchors) {
				t.Errorf("anchors %v, want %v", tb.anchors, tc.anchors)
			}
		})
	}
}

func TestSource(t *testing.T) {
	bin, text := writeCorpus(t)
	c := config{bin: []string{bin}, text: []string{text}, trigramText: []string{text}, trigrams: 4096, maxFile: 1 << 20, maxBytes: 1 << 20, tag: "prefiltermeasured"}
	a, err := c.generate()
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.generate()
	if err != nil || !bytes.Equal(a, b) {
		t.Fatalf("two runs differ (%v)", err)
	}
	for _, want := range []string{"//go:build prefiltermeasured\n", "var byteFreq = [256]uint16{\n\t24576, 1, ", "var trigramAnchors = [...][2]float64{{1, 166667}, {10, 55556}}", "const commonTrigramText = \"\" +\n\t\"he the"} {
		if !strings.Contains(string(a), want) {
			t.Errorf("no %q in\n%s", want, a)
		}
	}
	c.bin = []string{filepath.Join(text, "sub")}
	if _, err := c.generate(); err == nil {
		t.Error("no ELF file, no error")
	}
}
