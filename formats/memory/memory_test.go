package memory_test

import (
	"context"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/memory"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/qemufixture"
)

// TestSavevmSnapshot takes `savevm` into a qcow2 and reads the planted bytes
// back through the memory view formats.Open makes of a snapshot's vmstate
// (or, were it raw, FromVMState).
func TestSavevmSnapshot(t *testing.T) {
	vm := qemufixture.Capture(t, qemufixture.Config{Disk: true}, "savevm golden")
	path := vm.Path("disk.qcow2")
	before := qemufixture.FileSum(t, path)
	im, err := formats.Open(context.Background(), path, model.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer im.Close()
	var vmstate model.Disk
	for _, v := range im.Views {
		// The first memory view is guest-physical RAM; ROM blocks and
		// superseded pages follow it.
		if v.Kind == model.KindMemory {
			vmstate = v.Disk
			break
		}
	}
	if vmstate == nil {
		t.Fatalf("the %s reader exposes no memory view of the snapshot's vmstate", im.Format)
	}
	head := make([]byte, 4)
	vmstate.ReadAt(head, 0)
	phys := vmstate
	if string(head) == "QEVM" { // raw vmstate: convert it here
		var notes []string
		phys, notes, err = memory.FromVMState(context.Background(), path, vmstate)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("notes %q", notes)
	}
	qemufixture.CheckPlants(t, "savevm", phys, vm.Plants)
	if qemufixture.FileSum(t, path) != before {
		t.Fatal("qcow2 changed")
	}
}
