package qemustream

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// streamBuilder writes a synthetic migration stream, for the records a
// paused guest never makes QEMU write (see the seed
// synthetic-all-records): a QEVM header, a CONFIGURATION section for
// machine "pc", a RAM section START with one block "pc.ram" of ram
// bytes, the records, then EOS and the EOF section.
type streamBuilder struct{ b []byte }

func newStreamBuilder(ram int64) *streamBuilder {
	w := &streamBuilder{}
	w.raw([]byte(Magic)).u32(3)
	w.u8(secConfiguration).u32(2).raw([]byte("pc"))
	w.u8(secStart).u32(2).str("ram").u32(0).u32(4)
	w.u64(uint64(ram) | flagMemSize).str("pc.ram").u64(uint64(ram))
	return w
}

func (w *streamBuilder) raw(b []byte) *streamBuilder { w.b = append(w.b, b...); return w }
func (w *streamBuilder) u8(v byte) *streamBuilder    { w.b = append(w.b, v); return w }
func (w *streamBuilder) u16(v uint16) *streamBuilder {
	w.b = binary.BigEndian.AppendUint16(w.b, v)
	return w
}
func (w *streamBuilder) u32(v uint32) *streamBuilder {
	w.b = binary.BigEndian.AppendUint32(w.b, v)
	return w
}
func (w *streamBuilder) u64(v uint64) *streamBuilder {
	w.b = binary.BigEndian.AppendUint64(w.b, v)
	return w
}
func (w *streamBuilder) str(s string) *streamBuilder { return w.u8(byte(len(s))).raw([]byte(s)) }

// page writes a data page record for addr, naming its block.
func (w *streamBuilder) page(addr int64, data []byte) *streamBuilder {
	return w.u64(uint64(addr) | flagPage).str("pc.ram").raw(data)
}

// zero writes a zero page record for addr (fill byte 0) or a same-byte
// page (fill byte b), CONTINUE.
func (w *streamBuilder) zero(addr int64, b byte) *streamBuilder {
	return w.u64(uint64(addr) | flagZero | flagContinue).u8(b)
}

// xbzrle writes an XBZRLE record for addr, CONTINUE.
func (w *streamBuilder) xbzrle(addr int64, delta []byte) *streamBuilder {
	return w.u64(uint64(addr) | flagXBZRLE | flagContinue).u8(1).u16(uint16(len(delta))).raw(delta)
}

func (w *streamBuilder) end() []byte {
	return w.u64(flagEOS).u8(secEOF).b
}

// parseIndex parses b through a buffer, as a qcow2's vmstate is read,
// and returns the parser with its index.
func parseIndex(t testing.TB, b []byte) (*parser, *Stream) {
	t.Helper()
	r := bytes.NewReader(b)
	p := newParser(context.Background(), "synthetic", r, int64(len(b)))
	p.c = newCursor("synthetic", r, int64(len(b)))
	s, err := p.parse(Config{}, func(parse func() error) error { return parse() })
	if err != nil {
		t.Fatal(err)
	}
	return p, s
}

// TestZeroRecordsAfterSeenPage: zero and same-byte records that follow a
// page already sent take the place of the one before them rather than
// each adding a version (33 M zero records for one page, 297 MB, took
// 6.5 GB), and the page reads as before: its last state, with the
// versions it had that hold bytes of their own (never a zero or
// same-byte one) as superseded pages, in stream order, and an XBZRLE
// delta applied to its last state.
func TestZeroRecordsAfterSeenPage(t *testing.T) {
	const pg = 0x1000
	const n = 100000
	a := bytes.Repeat([]byte{'A'}, 4096)
	b := bytes.Repeat([]byte{'B'}, 4096)
	fill := func(c byte) []byte { return bytes.Repeat([]byte{c}, 4096) }
	// The delta writes "xyz" at byte 4 (a 4-byte zero run, 3 literals).
	delta := []byte{4, 3, 'x', 'y', 'z'}
	withXYZ := func(p []byte) []byte { p = bytes.Clone(p); copy(p[4:], "xyz"); return p }
	repeat := func(w *streamBuilder, k int, f func(i int)) {
		for i := range k {
			f(i)
		}
	}
	for _, tc := range []struct {
		name       string
		records    func(w *streamBuilder)
		versions   int
		final      []byte
		superseded [][]byte
	}{
		{"zeros after a page", func(w *streamBuilder) {
			w.page(pg, a)
			repeat(w, n, func(int) { w.zero(pg, 0) })
		}, 2, fill(0), [][]byte{a}},
		{"zero and same-byte records after a page, the last a fill", func(w *streamBuilder) {
			w.page(pg, a)
			repeat(w, n, func(i int) { w.zero(pg, byte(i%3)) })
			w.zero(pg, 0x33)
		}, 2, fill(0x33), [][]byte{a}},
		{"same-byte records after a page, the last a zero", func(w *streamBuilder) {
			w.page(pg, a)
			repeat(w, n, func(i int) { w.zero(pg, 7) })
			w.zero(pg, 0)
		}, 2, fill(0), [][]byte{a}},
		{"an XBZRLE delta after zero and same-byte records", func(w *streamBuilder) {
			w.page(pg, a)
			repeat(w, n/2, func(int) { w.zero(pg, 0) })
			repeat(w, n/2, func(int) { w.zero(pg, 0x10) })
			w.xbzrle(pg, delta)
		}, 3, withXYZ(fill(0x10)), [][]byte{a}},
		{"pages between runs of zeros", func(w *streamBuilder) {
			w.page(pg, a)
			repeat(w, n/2, func(int) { w.zero(pg, 0) })
			w.page(pg, b)
			repeat(w, n/2, func(int) { w.zero(pg, 9) })
		}, 4, fill(9), [][]byte{a, b}},
		{"zeros after an XBZRLE version", func(w *streamBuilder) {
			w.page(pg, a)
			w.xbzrle(pg, delta)
			repeat(w, n, func(int) { w.zero(pg, 0) })
		}, 3, fill(0), [][]byte{a, withXYZ(a)}},
		{"zeros for a page never sent", func(w *streamBuilder) {
			w.page(0, a) // names the block for the CONTINUE records
			repeat(w, n, func(int) { w.zero(pg, 0) })
		}, 1, fill(0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := newStreamBuilder(64 << 20)
			tc.records(w)
			p, s := parseIndex(t, w.end())
			if len(p.vers) != tc.versions {
				t.Errorf("%d page versions indexed, want %d", len(p.vers), tc.versions)
			}
			if !s.Complete || s.Cut != nil {
				t.Errorf("complete %v, cut %v: want the stream read whole", s.Complete, s.Cut)
			}
			got := make([]byte, 4096)
			if _, err := s.Physical.ReadAt(got, pg); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.final) {
				t.Errorf("the page reads %q..., want %q...", got[:8], tc.final[:8])
			}
			if len(s.SupersededRefs) != len(tc.superseded) {
				t.Fatalf("%d superseded versions %+v, want %d", len(s.SupersededRefs), s.SupersededRefs, len(tc.superseded))
			}
			for i, want := range tc.superseded {
				if _, err := s.Superseded.ReadAt(got, int64(i)*4096); err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want) || s.SupersededRefs[i].Phys != pg {
					t.Errorf("superseded %d: %q... at 0x%x, want %q... at 0x%x", i, got[:8], s.SupersededRefs[i].Phys, want[:8], pg)
				}
			}
		})
	}
}

// TestPageIndexBound: a stream with more page records than the index's
// memory bound holds (each an empty XBZRLE delta for a page of its own,
// 11 bytes) is indexed up to the bound and cut there, with an error
// naming the file and the offset of the first record left out, on the
// RAM view; before, the bound was 32 Mi records, 4 GiB and more once
// built.
func TestPageIndexBound(t *testing.T) {
	if testing.Short() {
		t.Skip("writes a stream of 2 Mi records")
	}
	const recLen = 11
	records := maxVersions + 1000
	w := newStreamBuilder(int64(records) * 4096)
	w.page(0, make([]byte, 4096)) // names the block for the CONTINUE records
	first := int64(len(w.b))
	w.b = slices.Grow(w.b, records*recLen+16)
	for i := 1; i < records; i++ {
		w.xbzrle(int64(i)*4096, nil)
	}
	_, s := parseIndex(t, w.end())
	if got := len(s.Physical.Pieces); got != maxVersions {
		t.Errorf("%d pages indexed, want the bound's %d", got, maxVersions)
	}
	want := first + int64(maxVersions-1)*recLen
	var fe *model.FormatError
	if !errors.As(s.Cut, &fe) || fe.File != "synthetic" || fe.Offset != want {
		t.Errorf("cut %v, want a FormatError naming synthetic at offset %d", s.Cut, want)
	}
	if v := s.Views("synthetic", "")[0]; v.Incomplete == nil {
		t.Error("the RAM view is not incomplete")
	}
}

// TestVersionCap: a stream gets the fixed bound whatever its size, and a
// bigger one a version per page of its bytes, up to 32 Mi: a guest of
// 64 GiB saved page by page is not cut, a small stream of tiny records is.
func TestVersionCap(t *testing.T) {
	for _, tc := range []struct {
		size int64
		want int
	}{
		{0, maxVersions},
		{33 << 20, maxVersions},
		{int64(maxVersions) * pageBytes, maxVersions},
		{64 << 30, 16 << 20},
		{1 << 40, maxVersionsCap},
	} {
		if got := versionCap(tc.size); got != tc.want {
			t.Errorf("versionCap(%d) = %d, want %d", tc.size, got, tc.want)
		}
	}
}
