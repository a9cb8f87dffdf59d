package qcow2

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"

	"github.com/imgaudit/imgaudit/formats/model"
)

// snapshot is one entry of the internal snapshot table.
type snapshot struct {
	l1Off       uint64
	l1Size      uint32
	id          string
	name        string
	dateSec     uint32
	dateNsec    uint32
	vmClockNsec uint64
	vmStateSize uint64
	diskSize    uint64
	hasDiskSize bool
	entryOff    int64 // host offset of the table entry, for errors
}

// snapshotFixed is the size of the fixed part of a snapshot table entry.
const snapshotFixed = 40

// parseSnapshots reads n snapshot table entries from r, which starts at host
// offset base. It reads at most maxSnapshotTable bytes and returns the table
// length in bytes. Entries with bad L1 tables are still returned; their L1 is
// checked when it is used.
func parseSnapshots(name string, r io.Reader, base int64, n int) ([]snapshot, int64, error) {
	be := binary.BigEndian
	br := bufio.NewReaderSize(io.LimitReader(r, maxSnapshotTable), 64<<10)
	out := make([]snapshot, 0, min(n, 1024))
	off := int64(0)
	var fixed [snapshotFixed]byte
	var extra [maxSnapshotExtra]byte
	read := func(b []byte, what string) error {
		if _, err := io.ReadFull(br, b); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if off+int64(len(b)) > maxSnapshotTable {
					return model.Errorf(name, base+off, "snapshot table exceeds QEMU's limit of %d bytes", maxSnapshotTable)
				}
				return model.Errorf(name, base+off, "snapshot table truncated in %s", what)
			}
			return model.Wrapf(err, name, base+off, "read snapshot table")
		}
		off += int64(len(b))
		return nil
	}
	for i := range n {
		start := off
		if err := read(fixed[:], "an entry header"); err != nil {
			return out, off, err
		}
		s := snapshot{
			l1Off:       be.Uint64(fixed[0:]),
			l1Size:      be.Uint32(fixed[8:]),
			dateSec:     be.Uint32(fixed[16:]),
			dateNsec:    be.Uint32(fixed[20:]),
			vmClockNsec: be.Uint64(fixed[24:]),
			vmStateSize: uint64(be.Uint32(fixed[32:])),
			entryOff:    base + start,
		}
		idLen := int(be.Uint16(fixed[12:]))
		nameLen := int(be.Uint16(fixed[14:]))
		extraLen := int(be.Uint32(fixed[36:]))
		if extraLen > maxSnapshotExtra {
			return out, off, model.Errorf(name, base+start+36, "snapshot %d: extra data of %d bytes exceeds %d", i, extraLen, maxSnapshotExtra)
		}
		if err := read(extra[:extraLen], "extra data"); err != nil {
			return out, off, err
		}
		if extraLen >= 8 {
			s.vmStateSize = be.Uint64(extra[0:])
		}
		if extraLen >= 16 {
			s.diskSize = be.Uint64(extra[8:])
			s.hasDiskSize = true
		}
		str := make([]byte, idLen+nameLen)
		if err := read(str, "the id and name"); err != nil {
			return out, off, err
		}
		s.id, s.name = string(str[:idLen]), string(str[idLen:])
		// Entries are padded to 8 bytes, but QEMU only skips the padding
		// before reading the next entry: the last one may end at EOF.
		if pad := (8 - off%8) % 8; pad > 0 && i+1 < n {
			var p [8]byte
			if err := read(p[:pad], "padding"); err != nil {
				return out, off, err
			}
		}
		out = append(out, s)
	}
	return out, off, nil
}
