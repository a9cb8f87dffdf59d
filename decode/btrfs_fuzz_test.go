package decode

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/btrfs"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/internal/fuzzcorpus"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// btrfsCodecs are the btrfs extent codecs, by the fuzz target's number.
func btrfsCodecs() []string { return []string{BtrfsZlib, BtrfsLZO, BtrfsZstd} }

// FuzzBtrfsExtent decodes arbitrary bytes as a btrfs compressed extent of
// each codec. It must never panic, hang, or decode past its caps.
func FuzzBtrfsExtent(f *testing.F) {
	f.Add([]byte{0x1c, 0, 0, 0, 0x14, 0, 0, 0, 0x11, 'k', 'e', 'y', 0x11, 0, 0}, uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, codec uint8) {
		fuzzWalk(t, data, btrfsCodecs()[int(codec)%len(btrfsCodecs())])
	})
}

// writeBtrfsSeeds writes FuzzBtrfsExtent's seeds for TestWriteSeeds (make
// seeds): the first compressed extent of a file that the kernel's btrfs
// wrote with each codec (compress-force), a regular one and an inline one.
func writeBtrfsSeeds(t *testing.T) {
	text := bytes.Repeat([]byte("-----BEGIN OPENSSH PRIVATE KEY-----\nseed line of a key\n"), 300)
	for i, codec := range btrfsCodecs() {
		name := codec[len("btrfs-"):]
		img := testutil.MakeBtrfs(t, 256<<20, testutil.FSContent{Live: map[string][]byte{"/regular": text, "/inline": text[:600]}}, nil, "compress-force="+name)
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		st, err := f.Stat()
		if err != nil {
			t.Fatal(err)
		}
		// guestfs/btrfs directly, not guestfs: guestfs's squashfs driver
		// imports this package.
		fs, err := btrfs.Open(context.Background(), f, st.Size(), img)
		if err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		err = fs.Walk(context.Background(), func(e fsys.Entry) error {
			for _, r := range e.Runs {
				if !e.Mode.IsRegular() || !r.Compressed || r.FileOff != 0 || seen[e.Path] {
					continue
				}
				seen[e.Path] = true
				b := make([]byte, r.Len)
				if _, err := f.ReadAt(b, r.Off); err != nil && err != io.EOF {
					return err
				}
				return fuzzcorpus.Write(filepath.Join("testdata", "fuzz", "FuzzBtrfsExtent"), name+"-"+strings.TrimPrefix(e.Path, "/"), b, uint8(i))
			}
			return nil
		})
		f.Close()
		if err != nil || len(seen) != 2 {
			t.Fatalf("%s: %v; extents of %v", codec, err, seen)
		}
	}
}

// TestBtrfsSeedsDecode: each committed FuzzBtrfsExtent seed decodes to a
// leaf without damage.
func TestBtrfsSeedsDecode(t *testing.T) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "fuzz", "FuzzBtrfsExtent", "*"))
	if len(seeds) < 6 {
		t.Fatalf("%d FuzzBtrfsExtent seeds", len(seeds))
	}
	for _, p := range seeds {
		file := testutil.FileSnapshot(t, p)
		data, err := fuzzcorpus.Decode(file)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		var codec int
		lines := strings.Split(strings.TrimSpace(string(file)), "\n")
		if _, err := fmt.Sscanf(lines[len(lines)-1], "byte(%d)", &codec); err != nil || codec >= len(btrfsCodecs()) {
			t.Fatalf("%s: codec %q", p, lines[len(lines)-1])
		}
		leaves, res := walkAll(t, data, Options{Codec: btrfsCodecs()[codec]})
		if len(leaves) != 1 || len(res.Skipped) > 0 || !bytes.HasPrefix(leaves[0].data, []byte("-----BEGIN OPENSSH PRIVATE KEY-----\nseed")) {
			t.Errorf("%s: %d leaves, skipped %v", p, len(leaves), res.Skipped)
		}
	}
}
