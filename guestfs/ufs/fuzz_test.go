package ufs

import (
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ./testdata/mkseeds testdata/fuzz/FuzzUFSOpen

// seedNames are the committed seeds testdata/mkseeds writes.
var seedNames = []string{"tiny-8k", "tiny-4k"}

// FuzzUFSOpen opens arbitrary bytes (a sparseimg-packed image: the seeds
// are real makefs images) as UFS2, walks it, tests fragment states and
// reads files by path. It must never panic, hang or allocate without
// bound, and every run it gives must lie inside the device.
func FuzzUFSOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := min(r.Size(), fstest.FuzzSize)
		if u, err := Open(r, size, "fuzz"); err == nil {
			fstest.Exercise(t, u, size, "/etc", "/l", "/ll", "/etc/big")
		}
	})
}

// TestFuzzSeeds: the committed seeds are UFS2 filesystems the reader
// opens and walks, down to the files mkseeds put there, which read back
// as written, through both symlinks too.
func TestFuzzSeeds(t *testing.T) {
	for _, name := range seedNames {
		t.Run(name, func(t *testing.T) {
			r := sparseimg.Decode(testutil.FuzzSeed(t, "testdata/fuzz/FuzzUFSOpen/"+name))
			u, err := Open(r, r.Size(), name)
			if err != nil {
				t.Fatal(err)
			}
			fstest.WalksTo(t, u, "/", "/etc", "/etc/secret", "/etc/big", "/l", "/ll")
			secret := []byte("password=hunter2\n")
			fstest.ReadsBack(t, u, map[string][]byte{
				"/etc/secret": secret,
				"/l":          secret,
				"/ll":         secret,
				"/etc/big":    seedBig(),
			})
		})
	}
}

// seedBig is /etc/big's content in the seeds, as mkseeds writes it: more
// than 12 blocks of 4 KiB (a single indirect block in the 4 KiB seed),
// one non-zero byte at the start of each 4 KiB and one at the end, so
// that the packed seed stays small but every block is checked.
func seedBig() []byte {
	const n = 14*4096 + 100
	b := make([]byte, n)
	for i := 0; i < n; i += 4096 {
		b[i] = byte(i/4096 + 1)
	}
	b[n-1] = 0xff
	return b
}
