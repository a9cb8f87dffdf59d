package elfcore

import (
	"bytes"
	"context"
	"testing"
)

func FuzzELFCore(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		ProbeGuest(b) // must not panic, whatever the program headers say
		d, _, _, err := NewDisk("fuzz", bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		buf := make([]byte, 64)
		for e, err := range d.Extents(context.Background()) {
			if err != nil {
				break
			}
			d.ReadAt(buf, e.Offset)
		}
	})
}
