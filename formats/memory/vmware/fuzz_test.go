package vmware

import (
	"bytes"
	"context"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

func FuzzVMSS(f *testing.F) {
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		st, err := ParseState(context.Background(), "fuzz", r, int64(len(b)))
		if err != nil {
			return
		}
		// The state view never reaches outside the file.
		v := stateView("fuzz", "fuzz", r, int64(len(b)), st.Embedded, st.EmbeddedLen)
		for _, e := range v.Disk.(*model.FileDisk).Allocd {
			if e.Offset < 0 || e.Length <= 0 || e.Offset+e.Length > int64(len(b)) {
				t.Fatalf("state view extent %+v outside a %d-byte file", e, len(b))
			}
		}
		if st.Embedded < 0 {
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
