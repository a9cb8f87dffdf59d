package qcow2

import (
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// The seed corpora in testdata/fuzz/ were made from small real images
// (qemu-img create/qemu-io/qemu-img snapshot, 512 B and 4 KiB clusters).

func FuzzHeader(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		h, err := parseHeader("fuzz.qcow2", data, int64(len(data)))
		if err != nil {
			return
		}
		_ = h.describeBits(0, h.incompat)
		if h.l2Entries() <= 0 || h.l1Coverage() <= 0 {
			t.Fatalf("bad geometry from accepted header: %+v", h)
		}
	})
}

func FuzzSnapshotTable(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, n uint16) {
		snaps, length, err := parseSnapshots("fuzz.qcow2", bytes.NewReader(data), 0, int(n))
		if length > int64(len(data)) {
			t.Fatalf("table length %d exceeds input %d", length, len(data))
		}
		if err == nil && len(snaps) != int(n) {
			t.Fatalf("%d snapshots, want %d", len(snaps), n)
		}
	})
}

// FuzzL1L2Walk opens a whole image from bytes and reads every view: the
// current state, snapshots, vm state and unreferenced bytes.
func FuzzL1L2Walk(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		ctx := context.Background()
		im, err := New(ctx, bytes.NewReader(data), int64(len(data)), "fuzz.qcow2", model.Options{NoBacking: true})
		if err != nil {
			return
		}
		defer im.Close()
		budget := int64(8 << 20) // bytes to read per image, whatever sizes it claims
		buf := make([]byte, 64<<10)
		for _, v := range im.Views {
			n := 0
			for e, err := range v.Disk.Extents(ctx) {
				if err != nil || n > 1000 {
					break
				}
				n++
				if e.Length <= 0 || e.Offset < 0 || e.End() > v.Disk.Size() {
					t.Fatalf("%s: bad extent %+v (size %d)", v.ID, e, v.Disk.Size())
				}
				if e.Source == model.SourceZero || budget <= 0 {
					continue
				}
				m := min(e.Length, int64(len(buf)))
				budget -= m
				if _, err := v.Disk.ReadAt(buf[:m], e.Offset); err != nil && err != io.EOF {
					continue
				}
			}
			// Reads at odd places, including past the end.
			for _, off := range []int64{0, 511, v.Disk.Size() / 2, v.Disk.Size() - 100, v.Disk.Size() + 1} {
				if off >= 0 {
					_, _ = v.Disk.ReadAt(buf[:4096], off)
				}
			}
		}
	})
}
