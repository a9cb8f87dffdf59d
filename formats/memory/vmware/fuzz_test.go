package vmware

import (
	"bytes"
	"context"
	"testing"
)

func FuzzVMSS(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		st, err := ParseState(context.Background(), "fuzz", r, int64(len(b)))
		if err != nil || st.Embedded < 0 {
			return
		}
		d, _, _, err := regionDisk("fuzz", r, st.Embedded, st.EmbeddedLen, st.Regions)
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
