package tarindex

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// FuzzIndex indexes arbitrary bytes as a tar and resolves a name written
// by a member: it must never panic, never resolve a name outside the
// archive, and a member it opens must lie inside the archive.
func FuzzIndex(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, from, name string) {
		x, err := Build(context.Background(), bytes.NewReader(data), int64(len(data)), "fuzz.tar", 1000)
		if err != nil {
			return
		}
		m, p, err := x.Open(from, name)
		if err != nil {
			var re *model.RefusedError
			if errors.As(err, &re) && re.Path != "" && re.Path[0] != '/' {
				t.Fatalf("refused path %q is not rooted", re.Path)
			}
			return
		}
		defer m.Close()
		if p == "" || p[0] != '/' {
			t.Fatalf("opened %q as %q, not a rooted member name", name, p)
		}
		st, _ := m.Stat()
		buf := make([]byte, min(st.Size(), 4096))
		if _, err := m.ReadAt(buf, 0); err != nil && err != io.EOF {
			t.Fatalf("member %q of %d bytes: %v", p, st.Size(), err)
		}
		x.List(from, ".")
	})
}
