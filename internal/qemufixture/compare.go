package qemufixture

import (
	"bytes"
	"debug/elf"
	"io"
	"testing"
)

// CompareWithELF checks that every PT_LOAD segment of a dump-guest-memory
// ELF file reads back identically from r at its physical address.
func CompareWithELF(t testing.TB, what string, r io.ReaderAt, elfPath string) {
	t.Helper()
	CompareWithELFFrom(t, what, elfPath, func(paddr, _ int64) (io.ReaderAt, int64) { return r, paddr })
}

// CompareWithELFFrom is CompareWithELF where source says, for each PT_LOAD
// segment (its physical address and size), what to read it from and at
// which offset: a migration stream keeps the option ROM and BIOS copies in
// RAM blocks of their own.
func CompareWithELFFrom(t testing.TB, what, elfPath string, source func(paddr, size int64) (io.ReaderAt, int64)) {
	t.Helper()
	f, err := elf.Open(elfPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for _, p := range f.Progs {
		if p.Type != elf.PT_LOAD || p.Filesz == 0 {
			continue
		}
		want := make([]byte, p.Filesz)
		if _, err := p.ReadAt(want, 0); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, p.Filesz)
		r, at := source(int64(p.Paddr), int64(p.Filesz))
		if _, err := r.ReadAt(got, at); err != nil && err != io.EOF {
			t.Fatalf("%s: read 0x%x: %v", what, p.Paddr, err)
		}
		if !bytes.Equal(got, want) {
			i := 0
			for got[i] == want[i] {
				i++
			}
			t.Fatalf("%s: physical 0x%x+0x%x differs from dump-guest-memory", what, p.Paddr, i)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s: no PT_LOAD in %s", what, elfPath)
	}
}
