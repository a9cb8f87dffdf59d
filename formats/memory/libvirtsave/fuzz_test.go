package libvirtsave

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

func FuzzLibvirtHeader(f *testing.F) {
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParseHeader("fuzz", b); err != nil {
			return
		}
		p := filepath.Join(dir, "f.save")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		im, err := OpenWith(context.Background(), p, model.Options{}, Limits{TempDir: dir, MaxPayload: 16 << 20})
		if err != nil {
			return
		}
		buf := make([]byte, 4096)
		for e, err := range im.Views[0].Disk.Extents(context.Background()) {
			if err != nil {
				break
			}
			im.Views[0].Disk.ReadAt(buf, e.Offset)
		}
		im.Close()
	})
}
