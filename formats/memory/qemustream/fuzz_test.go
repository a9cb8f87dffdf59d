package qemustream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// readAll reads every extent of d (at most limit bytes), so that decoders run too.
func readAll(t testing.TB, d model.Disk, limit int64) {
	buf := make([]byte, 4096)
	var n int64
	for e, err := range d.Extents(context.Background()) {
		if err != nil {
			return
		}
		for off := e.Offset; off < e.End() && n < limit; off += int64(len(buf)) {
			d.ReadAt(buf[:min(int64(len(buf)), e.End()-off)], off)
			n += int64(len(buf))
		}
	}
}

// streamSummary is what a parse found, for comparing two parses of one
// stream: counts, blocks, notes, the cut and every view's extents.
func streamSummary(s *Stream) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v%d %q %d %v low %d; pages %d %d %d %d %d %d; dev %v complete %v; notes %q; cut %v\n",
		s.Version, s.Machine, s.PageSize, s.Blocks, s.LowMem, s.Pages, s.ZeroPages, s.FillPages, s.CompressedPages, s.XBZRLEPages,
		s.SkippedXBZRLE, s.DeviceStateParsed, s.Complete, s.Notes, s.Cut)
	disks := []*memdisk.Disk{s.Physical, s.Superseded}
	for _, r := range s.Regions {
		fmt.Fprintf(&b, "region %s\n", r.Block)
		disks = append(disks, r.Disk)
	}
	for _, d := range disks {
		fmt.Fprintf(&b, "disk %d:", d.Size())
		for e, err := range d.Extents(context.Background()) {
			fmt.Fprintf(&b, " %+v %v", e, err)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "superseded %v\n", s.SupersededRefs)
	return b.String()
}

func FuzzQEVMStream(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(context.Background(), "fuzz", bytes.NewReader(b), int64(len(b)))
		// Read in place, as a mapped file is, the stream parses the same.
		inPlace, errInPlace := newParser(context.Background(), "fuzz", bytes.NewReader(b), int64(len(b))).parseInPlace(b, Config{})
		if fmt.Sprint(err) != fmt.Sprint(errInPlace) {
			t.Fatalf("through a buffer: %v; in place: %v", err, errInPlace)
		}
		if err != nil {
			return
		}
		if a, c := streamSummary(s), streamSummary(inPlace); a != c {
			t.Fatalf("through a buffer:\n%s\nin place:\n%s", a, c)
		}
		readAll(t, s.Physical, 1<<22)
		readAll(t, s.Superseded, 1<<22)
		for _, r := range s.Regions {
			readAll(t, r.Disk, 1<<20)
		}
	})
}

// TestSyntheticRecords covers records a paused TCG guest never makes QEMU
// write: XBZRLE deltas, fill pages, a page zeroed after being sent, zlib
// pages; the stream is the FuzzQEVMStream seed "synthetic-all-records".
func TestSyntheticRecords(t *testing.T) {
	b := testutil.FuzzSeed(t, "testdata/fuzz/FuzzQEVMStream/synthetic-all-records")
	s, err := Parse(context.Background(), "tiny", bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	page := func(d model.Disk, off int64) []byte {
		p := make([]byte, 4096)
		if _, err := d.ReadAt(p, off); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if s.Machine != "pc" || !s.Complete || !s.DeviceStateParsed || s.Tail != nil {
		t.Errorf("machine %q complete %v device %v tail %v: want the stream read to its end", s.Machine, s.Complete, s.DeviceStateParsed, s.Tail)
	}
	if !bytes.Equal(page(s.Physical, 0x1000), make([]byte, 4096)) {
		t.Error("page zeroed last is not zero")
	}
	if !bytes.Equal(page(s.Physical, 0x2000), bytes.Repeat([]byte{0x42}, 4096)) {
		t.Error("zlib page")
	}
	if !bytes.Equal(page(s.Physical, 0x3000), bytes.Repeat([]byte{7}, 4096)) {
		t.Error("fill page")
	}
	if len(s.SupersededRefs) != 2 || s.SupersededRefs[0].Phys != 0x1000 || s.SupersededRefs[1].Phys != 0x1000 {
		t.Fatalf("superseded %+v", s.SupersededRefs)
	}
	if !bytes.Equal(page(s.Superseded, 0), bytes.Repeat([]byte{0x41}, 4096)) {
		t.Error("first superseded version")
	}
	want := bytes.Repeat([]byte{0x41}, 4096)
	copy(want[4:], "xyz")
	if !bytes.Equal(page(s.Superseded, 4096), want) {
		t.Error("XBZRLE version not decoded against the previous copy")
	}
	if s.XBZRLEPages != 1 || s.SkippedXBZRLE != 0 {
		t.Errorf("xbzrle %d skipped %d", s.XBZRLEPages, s.SkippedXBZRLE)
	}
}

// TestInvalidXBZRLEIsIncomplete: a page whose XBZRLE delta does not
// decode (QEMU refuses such a stream, so only a hostile or damaged file
// has one) leaves its literal bytes unread, so the RAM view is incomplete,
// naming the file and the record's offset, and the rest is still indexed.
func TestInvalidXBZRLEIsIncomplete(t *testing.T) {
	b := testutil.FuzzSeed(t, "testdata/fuzz/FuzzQEVMStream/synthetic-all-records")
	// The seed's one delta: a 4-byte zero run, then 3 literal bytes.
	at := bytes.Index(b, []byte{0, 5, 4, 3, 'x', 'y', 'z'})
	if at < 0 || bytes.Count(b, []byte{4, 3, 'x', 'y', 'z'}) != 1 {
		t.Fatal("the seed's XBZRLE delta is not where this test expects it")
	}
	bad := bytes.Clone(b)
	bad[at+3] = 0 // a literal run of zero bytes: QEMU's decoder fails
	for _, tc := range []struct {
		name     string
		stream   []byte
		wantSkip int
	}{
		{"valid delta", b, 0},
		{"invalid delta", bad, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Parse(context.Background(), "tiny", bytes.NewReader(tc.stream), int64(len(tc.stream)))
			if err != nil {
				t.Fatal(err)
			}
			if s.SkippedXBZRLE != tc.wantSkip {
				t.Errorf("SkippedXBZRLE = %d, want %d", s.SkippedXBZRLE, tc.wantSkip)
			}
			if !s.Complete || s.Pages == 0 {
				t.Errorf("complete %v, %d pages: the records after the delta are not indexed", s.Complete, s.Pages)
			}
			v := s.Views("tiny", "")[0]
			if tc.wantSkip == 0 {
				if v.Incomplete != nil {
					t.Errorf("Incomplete = %v on a valid stream", v.Incomplete)
				}
				return
			}
			var fe *model.FormatError
			if !errors.As(v.Incomplete, &fe) || fe.File != "tiny" || fe.Offset < 0 || fe.Offset > int64(at) {
				t.Errorf("Incomplete = %v, want a FormatError naming tiny at the record, before offset %d", v.Incomplete, at)
			}
		})
	}
}

func TestXBZRLEDecode(t *testing.T) {
	for _, tc := range []struct {
		name  string
		delta []byte
		want  int
	}{
		{"zrun+nzrun", []byte{4, 3, 'x', 'y', 'z'}, 7},
		{"two-byte uleb", []byte{0x80, 0x01, 1, 'a'}, 129},
		{"nzrun past page", []byte{0x80, 0x20, 1, 'a'}, -1},
		{"zero nzrun", []byte{0, 0}, -1},
		{"truncated", []byte{4}, -1},
		{"nzrun bytes missing", []byte{0, 5, 'a'}, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := xbzrleDecode(tc.delta, make([]byte, 4096), 4096); got != tc.want {
				t.Errorf("got %d want %d", got, tc.want)
			}
		})
	}
}

func TestX86LowMem(t *testing.T) {
	const gib = int64(1) << 30
	for _, tc := range []struct {
		machine string
		ram     int64
		low     int64
		ok      bool
	}{
		{"pc-i440fx-7.2", 64 << 20, 64 << 20, true},
		{"pc-i440fx-7.2", 0xdff00000, 0xdff00000, true},
		{"pc-i440fx-7.2", 0xe0000000, 0xc0000000, true},
		{"pc-i440fx-7.2", 8 * gib, 3 * gib, true},
		{"pc-i440fx-1.7", 4 * gib, 0xe0000000, true},
		{"pc-1.0", 4 * gib, 0xe0000000, true},
		{"pc-q35-7.2", 2 * gib, 2 * gib, true},
		{"pc-q35-7.2", 0xb0000000, 2 * gib, true},
		{"q35", 0xafff0000, 0xafff0000, true},
		{"pc-q35-1.7", 4 * gib, 0xb0000000, true},
		{"microvm", gib, 0, false},
		{"", gib, 0, false},
	} {
		t.Run(tc.machine, func(t *testing.T) {
			low, ok := X86LowMem(tc.machine, tc.ram)
			if low != tc.low || ok != tc.ok {
				t.Errorf("X86LowMem(%q, %#x) = %#x, %v; want %#x, %v", tc.machine, tc.ram, low, ok, tc.low, tc.ok)
			}
			if ok && tc.ram > low && X86Phys(low, low) != 4*gib {
				t.Error("first high byte not at 4 GiB")
			}
		})
	}
}
