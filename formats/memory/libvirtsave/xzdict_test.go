package libvirtsave

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// xzOf compresses data with the real xz CLI reading a pipe (so it keeps
// the dictionary size it is given).
func xzOf(t *testing.T, data []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz %v: %v", args, err)
	}
	return out
}

// TestCheckXZDict walks real xz files: multi-block streams with stored
// (incompressible) and LZMA chunks, indexes, stream padding, and a
// second stream whose dictionary is too big, which only a walk through
// everything before it can reach.
func TestCheckXZDict(t *testing.T) {
	testutil.RequireTool(t, "xz")
	rng := rand.New(rand.NewChaCha8([32]byte{2}))
	data := make([]byte, 600<<10)
	for i := range data[:200<<10] {
		data[i] = byte(rng.Uint32())
	}
	copy(data[300<<10:], bytes.Repeat([]byte("libvirt save payload "), 4000))
	multi := xzOf(t, data, "-T2", "--block-size=64KiB")
	single := xzOf(t, data, "-6")
	big := xzOf(t, data[:1000], "--lzma2=dict=128MiB")
	for _, tc := range []struct {
		name    string
		payload []byte
		max     int64
		wantAt  int // payload offset the error must name; -1: no error
	}{
		{"multi-block", multi, maxXZDict, -1},
		{"single-block", single, maxXZDict, -1},
		{"two streams", append(bytes.Clone(multi), single...), maxXZDict, -1},
		{"big dict", big, maxXZDict, 12},
		{"big dict allowed", big, 128 << 20, -1},
		{"big dict second", append(bytes.Clone(multi), big...), maxXZDict, len(multi) + 12},
		{"big dict after padding", append(append(bytes.Clone(single), 0, 0, 0, 0), big...), maxXZDict, len(single) + 4 + 12},
		{"small cap", single, 1 << 20, 12},
		{"truncated", multi[:len(multi)/2], maxXZDict, -1},
		{"not xz", []byte("plain bytes, not an xz stream"), maxXZDict, -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkXZDict(bytes.NewReader(tc.payload), int64(len(tc.payload)), tc.max)
			if tc.wantAt < 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, errXZDictSize) {
				t.Fatalf("err = %v, want %v", err, errXZDictSize)
			}
			if want := "offset " + strconv.Itoa(tc.wantAt) + ":"; !strings.Contains(err.Error(), want) {
				t.Errorf("err %q does not name %q", err, want)
			}
		})
	}
}
