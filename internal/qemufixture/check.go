package qemufixture

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"os"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
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

// CheckHostBytes asserts that every stored extent of d names the host
// bytes it holds: the Length bytes of File at FileOffset are the guest
// bytes d reads at Offset. The scanner lends such extents straight from a
// mapping of the file (scanner.lendsFromHost), so this is what makes that
// safe for a format.
func CheckHostBytes(t testing.TB, what string, d model.Disk) {
	t.Helper()
	files := map[string]*os.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	n := 0
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if e.Source != model.SourceData {
			continue
		}
		f := files[e.File]
		if f == nil {
			if f, err = os.Open(e.File); err != nil {
				t.Fatalf("%s: extent at guest 0x%x: %v", what, e.Offset, err)
			}
			files[e.File] = f
		}
		host := make([]byte, e.Length)
		if k, _ := f.ReadAt(host, e.FileOffset); int64(k) != e.Length {
			t.Fatalf("%s: extent at guest 0x%x: %d of its %d bytes in %s at %d", what, e.Offset, k, e.Length, e.File, e.FileOffset)
		}
		guest := make([]byte, e.Length)
		if _, err := d.ReadAt(guest, e.Offset); err != nil {
			t.Fatalf("%s: read guest 0x%x: %v", what, e.Offset, err)
		}
		if !bytes.Equal(host, guest) {
			t.Fatalf("%s: extent at guest 0x%x: the bytes of %s at %d differ from the guest's", what, e.Offset, e.File, e.FileOffset)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s: no stored extent to check", what)
	}
}
