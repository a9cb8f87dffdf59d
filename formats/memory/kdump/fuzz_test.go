package kdump

import (
	"bytes"
	"context"
	"testing"
)

func FuzzKdump(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		d, _, _, err := NewDisk(context.Background(), "fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		buf := make([]byte, 8192)
		n := 0
		for e, err := range d.Extents(context.Background()) {
			if err != nil || n > 1024 {
				break
			}
			d.ReadAt(buf[:min(int64(len(buf)), e.Length)], e.Offset)
			n++
		}
	})
}
