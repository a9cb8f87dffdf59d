package qcow2

import (
	"encoding/binary"
	"testing"

	"github.com/imgaudit/imgaudit/formats/internal/blockmap/blockmaptest"
	"github.com/imgaudit/imgaudit/internal/testutil"
)

// TestMappedPastSize: clusters the L2 tables map past the disk's size are
// read by no view but the unreferenced one, which must hold them (a
// header whose size was lowered under its tables; before, those clusters
// counted as referenced and were read by none).
func TestMappedPastSize(t *testing.T) {
	testutil.RequireTool(t, "qemu-img")
	img := blockmaptest.MakeImage(t, t.TempDir(), "past", "qcow2", "qcow2", "cluster_size=65536", 6<<20)
	blockmaptest.CheckMappedPastSize(t, Open, img, "qcow2", func(b []byte) { binary.BigEndian.PutUint64(b[24:], 4<<20) })
}
