package testutil

import (
	"fmt"
	"time"
)

// VMSDTime splits a time into a .vmsd's createTimeHigh/createTimeLow:
// microseconds since the epoch, in two signed 32-bit halves.
func VMSDTime(t time.Time) (int64, int32) {
	us := t.UnixMicro()
	return us >> 32, int32(uint32(us))
}

// TwoSnapshotVMSD is the snapshot database (.vmsd) of a VMware VM web01
// with two snapshots: "clean install" (web01-Snapshot1.vmsn, of disk
// web01.vmdk, taken at t1, described desc1) and its child "with app"
// (web01-Snapshot2.vmsn, of web01-000001.vmdk, taken at t2), the current
// one. VMware writes it in this form.
func TwoSnapshotVMSD(t1, t2 time.Time, desc1 string) []byte {
	h1, l1 := VMSDTime(t1)
	h2, l2 := VMSDTime(t2)
	return fmt.Appendf(nil, `.encoding = "UTF-8"
snapshot.lastUID = "2"
snapshot.current = "2"
snapshot0.uid = "1"
snapshot0.filename = "web01-Snapshot1.vmsn"
snapshot0.displayName = "clean install"
snapshot0.description = %q
snapshot0.createTimeHigh = "%d"
snapshot0.createTimeLow = "%d"
snapshot0.numDisks = "1"
snapshot0.disk0.fileName = "web01.vmdk"
snapshot0.disk0.node = "scsi0:0"
snapshot1.uid = "2"
snapshot1.filename = "web01-Snapshot2.vmsn"
snapshot1.parent = "1"
snapshot1.displayName = "with app"
snapshot1.createTimeHigh = "%d"
snapshot1.createTimeLow = "%d"
snapshot1.numDisks = "1"
snapshot1.disk0.fileName = "web01-000001.vmdk"
snapshot1.disk0.node = "scsi0:0"
snapshot.numSnapshots = "2"
`, desc1, h1, l1, h2, l2)
}
