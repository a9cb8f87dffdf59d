package btrfs

import (
	"bytes"
	"context"
	"encoding/binary"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/guestfs/internal/fstest"
	"github.com/imgaudit/imgaudit/guestfs/internal/sparseimg"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

//go:generate go run ../internal/mkseed -fs btrfs -dir testdata/fuzz/FuzzBtrfsOpen

// FuzzBtrfsOpen opens arbitrary bytes (a sparseimg-packed image: the seeds
// are real mkfs.btrfs images) as btrfs, walks it, tests states and reads
// files by path. It must never panic, hang or allocate without bound, and
// every run it gives must lie inside the device.
func FuzzBtrfsOpen(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r := sparseimg.Decode(data)
		size := min(r.Size(), fstest.FuzzSize)
		if b, err := Open(context.Background(), r, size, "fuzz"); err == nil {
			fstest.Exercise(t, b, size, "/etc/app", "/etc/app/link")
		}
	})
}

// TestFuzzSeedsOpen: the committed seeds are btrfs filesystems the reader
// opens and walks, down to the files mkseed put there.
func TestFuzzSeedsOpen(t *testing.T) {
	for i, data := range fuzzSeeds(t) {
		r := sparseimg.Decode(data)
		b, err := Open(context.Background(), r, r.Size(), "seed")
		if err != nil {
			t.Fatal(err)
		}
		// /etc/app/credentials is walked under its first link, /etc/hardlink.
		fstest.WalksTo(t, b, "/etc/hardlink", "/etc/small.conf", "/etc/app/link")
		if i >= 2 { // the compressed ones: they read back as mkseed wrote them
			fstest.ReadsBack(t, b, map[string][]byte{
				"/etc/small.conf":      []byte("password=hunter2\n"),
				"/etc/app/credentials": bytes.Repeat([]byte("aws_secret_access_key = x\n"), 120),
				"/etc/app/log":         bytes.Repeat([]byte("Dec  6 10:00:01 web01 sshd[811]: Accepted publickey\n"), 4000),
			})
		}
	}
}

// fuzzSeeds reads the seeds mkseed made, not the inputs that fuzzing found
// and that stay as regression seeds.
func fuzzSeeds(t *testing.T) [][]byte {
	var out [][]byte
	for _, name := range []string{"mkfs-4k-nodes-dup", "mkfs-4k-nodes-single", "mount-compress-zstd", "mount-compress-lzo", "mount-compress-zlib"} {
		out = append(out, testutil.FuzzSeed(t, "testdata/fuzz/FuzzBtrfsOpen/"+name))
	}
	return out
}

// TestOpenErrors: a damaged superblock or chunk tree fails Open with an
// error that names the partition and the device offset.
func TestOpenErrors(t *testing.T) {
	seed := fuzzSeeds(t)[0]
	for _, c := range []struct {
		name  string
		patch func(r *sparseimg.Reader, b []byte) []byte
		want  string
	}{
		{"node size", func(r *sparseimg.Reader, b []byte) []byte { return patch(r, superOffset+0x94, []byte{0, 3, 0, 0}) },
			"p9: offset 65536 (0x10000): btrfs: superblock: node size 768"},
		{"chunk root", func(r *sparseimg.Reader, b []byte) []byte { return patch(r, superOffset+0x58, []byte{1, 2, 3, 4}) },
			"p9: offset 65624 (0x10058): btrfs: chunk tree at logical 67305985"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := sparseimg.Decode(c.patch(sparseimg.Decode(seed), seed))
			_, err := Open(context.Background(), r, r.Size(), "p9")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want %q in it", err, c.want)
			}
		})
	}
}

// patch returns the image r with b written at off, packed again.
func patch(r *sparseimg.Reader, off int64, b []byte) []byte {
	img := make([]byte, r.Size())
	r.ReadAt(img, 0)
	copy(img[off:], b)
	if off >= superOffset && off < superOffset+superSize {
		binary.LittleEndian.PutUint32(img[superOffset:], crc32.Checksum(img[superOffset+32:superOffset+superSize], crcTab))
	}
	return sparseimg.Encode(img, 64)
}
