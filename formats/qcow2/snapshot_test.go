package qcow2

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// The last snapshot table entry need not be padded: qemu-img writes the
// table at the end of the file and the file may end right after the name.
func TestSnapshotTableLastEntryUnpadded(t *testing.T) {
	entry := func(id, name string) []byte {
		b := make([]byte, snapshotFixed)
		binary.BigEndian.PutUint16(b[12:], uint16(len(id)))
		binary.BigEndian.PutUint16(b[14:], uint16(len(name)))
		return append(append(b, id...), name...)
	}
	first := entry("1", "golden")
	for len(first)%8 != 0 {
		first = append(first, 0)
	}
	table := append(first, entry("2", "tmp")...)
	if len(table)%8 == 0 {
		t.Fatal("test table must end unaligned")
	}
	snaps, _, err := parseSnapshots("x.qcow2", bytes.NewReader(table), 4096, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(snaps) != 2 || snaps[0].name != "golden" || snaps[1].name != "tmp" {
		t.Fatalf("snapshots = %+v", snaps)
	}
	if _, _, err := parseSnapshots("x.qcow2", bytes.NewReader(table[:len(table)-1]), 4096, 2); err == nil {
		t.Fatal("a table truncated inside the name was accepted")
	}
}
