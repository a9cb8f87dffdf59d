package guestfs

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestZFSPoolNamed: a ZFS pool's vdev (zpool create by the real zfs-fuse
// on a file) is named with its pool, not read: its findings are
// unattributed, and the note says why.
func TestZFSPoolNamed(t *testing.T) {
	img := filepath.Join(t.TempDir(), "vdev.img")
	testutil.ZpoolCreate(t, img, "tank", 96<<20, map[string][]byte{"etc/app.env": []byte("TOKEN=x\n")})
	m, _ := analyzeFile(t, img)
	ps := m.Partitions()
	if len(ps) != 1 || ps[0].FS != "zfs" || ps[0].Attributed {
		t.Fatalf("partitions: %+v", ps)
	}
	if u := m.Unattributed(); len(u) != 1 || !strings.HasPrefix(u[0], `disk: zfs: ZFS pool "tank" (version 23), whose filesystems are not read`) {
		t.Errorf("unattributed: %q", u)
	}
}

// TestZFSLabelBounds: label nvlists that end early, claim pairs past the
// area or start with another pair are no pool, and never read out of
// bounds.
func TestZFSLabelBounds(t *testing.T) {
	head := make([]byte, zfsNVListAt+256)
	copy(head[zfsNVListAt:], "\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01")
	pair := func(at int, size, nameLen uint32, name string, typ uint32) {
		b := head[zfsNVListAt+at:]
		put := func(o int, v uint32) { b[o], b[o+1], b[o+2], b[o+3] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v) }
		put(0, size)
		put(8, nameLen)
		copy(b[12:], name)
		if at := 12 + int((nameLen+3)&^3); at+8 <= len(b) {
			put(at, typ)
			put(at+4, 1)
		}
	}
	for _, tc := range []struct {
		name string
		set  func()
		ok   bool
	}{
		{"version pair", func() { pair(12, 36, 7, "version", zfsTypeUint64) }, true},
		{"another first pair", func() { pair(12, 36, 4, "name", zfsTypeString) }, false},
		{"pair past the head", func() { pair(12, 1<<30, 7, "version", zfsTypeUint64) }, false},
		{"name longer than the pair", func() { pair(12, 36, 1<<20, "version", zfsTypeUint64) }, false},
		{"empty list", func() {}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(head[zfsNVListAt+12:])
			tc.set()
			if _, _, ok := zfsLabel(head); ok != tc.ok {
				t.Errorf("ok %v, want %v", ok, tc.ok)
			}
		})
	}
}
