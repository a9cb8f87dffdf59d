package hostile

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
)

const (
	qcowCluster    = 64 << 10
	qcowL2Entries  = qcowCluster / 8
	qcowL1Cover    = qcowCluster * qcowL2Entries // 512 MiB per L1 entry
	qcowOffsetMask = 0x00fffffffffffe00
)

var be = binary.BigEndian

// qcowFile is a qcow2 file opened for byte edits.
type qcowFile struct {
	f *os.File
}

func openQcow(path string) (*qcowFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, err
	}
	return &qcowFile{f}, nil
}

func (q *qcowFile) u64(off int64) (uint64, error) {
	var b [8]byte
	if _, err := q.f.ReadAt(b[:], off); err != nil {
		return 0, fmt.Errorf("read at %d: %w", off, err)
	}
	return be.Uint64(b[:]), nil
}

func (q *qcowFile) u32(off int64) (uint32, error) {
	var b [4]byte
	if _, err := q.f.ReadAt(b[:], off); err != nil {
		return 0, fmt.Errorf("read at %d: %w", off, err)
	}
	return be.Uint32(b[:]), nil
}

func (q *qcowFile) put64(off int64, v uint64) error {
	var b [8]byte
	be.PutUint64(b[:], v)
	_, err := q.f.WriteAt(b[:], off)
	return err
}

func (q *qcowFile) put32(off int64, v uint32) error {
	var b [4]byte
	be.PutUint32(b[:], v)
	_, err := q.f.WriteAt(b[:], off)
	return err
}

// fill writes entry v over n table entries from off.
func (q *qcowFile) fill(off int64, n int, v uint64) error {
	b := make([]byte, 8*n)
	for i := range n {
		be.PutUint64(b[8*i:], v)
	}
	_, err := q.f.WriteAt(b, off)
	return err
}

// entry reads table entry i at table offset tab.
func (q *qcowFile) entry(tab uint64, i int) (uint64, error) {
	return q.u64(int64(tab&qcowOffsetMask) + int64(8*i))
}

// QCOW2AliasCurrent writes a 1 TiB qcow2 whose every guest cluster reads
// one host cluster: qemu-img creates the image, qemu-io writes the first
// cluster (holding HostileSecret), and then every L1 entry is pointed at the
// one L2 table and every L2 entry at the one data cluster. The file stays
// six clusters (384 KiB) long.
func QCOW2AliasCurrent(ctx context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "alias-current.qcow2")
	src := filepath.Join(dir, "alias-cluster.bin")
	data := randomBytes(11, qcowCluster)
	copy(data[1024:], HostileSecret().Credentials())
	if err := os.WriteFile(src, data, 0o644); err != nil {
		return "", err
	}
	defer os.Remove(src)
	if err := run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", path, "1T"); err != nil {
		return "", err
	}
	if err := run(ctx, "qemu-io", "-f", "qcow2", "-c", "write -q -s "+src+" 0 64k", path); err != nil {
		return "", err
	}
	q, err := openQcow(path)
	if err != nil {
		return "", err
	}
	defer q.f.Close()
	l1Size, err := q.u32(36)
	if err != nil {
		return "", err
	}
	l1Off, err := q.u64(40)
	if err != nil {
		return "", err
	}
	l1e, err := q.entry(l1Off, 0)
	if err != nil {
		return "", err
	}
	l2e, err := q.entry(l1e, 0)
	if err != nil {
		return "", err
	}
	if l1e&qcowOffsetMask == 0 || l2e&qcowOffsetMask == 0 {
		return "", fmt.Errorf("%s: qemu-io left no data cluster at guest offset 0", path)
	}
	if err := q.fill(int64(l1e&qcowOffsetMask), qcowL2Entries, l2e); err != nil {
		return "", err
	}
	if err := q.fill(int64(l1Off), int(l1Size), l1e); err != nil {
		return "", err
	}
	return path, nil
}

// QCOW2AliasVMState writes a qcow2 with one internal snapshot whose saved VM
// state claims 1 TiB: its first cluster starts a valid QEMU migration stream
// and every later cluster is one host cluster of 15 page records (plus zero
// records to fill it exactly), so the stream parses as the same pages sent
// again and again. qemu-io writes the state (write -b) and qemu-img takes
// the snapshot; the snapshot's tables and its VM state size are then edited.
func QCOW2AliasVMState(ctx context.Context, dir string) (string, error) {
	path := filepath.Join(dir, "alias-vmstate.qcow2")
	head, period := filepath.Join(dir, "vmstate-head.bin"), filepath.Join(dir, "vmstate-period.bin")
	h, p := vmstateHead(), vmstatePeriod()
	if err := os.WriteFile(head, h, 0o644); err != nil {
		return "", err
	}
	defer os.Remove(head)
	if err := os.WriteFile(period, p, 0o644); err != nil {
		return "", err
	}
	defer os.Remove(period)
	const disk = 64 << 20
	if err := run(ctx, "qemu-img", "create", "-q", "-f", "qcow2", "-o", "cluster_size=65536", path, fmt.Sprint(disk)); err != nil {
		return "", err
	}
	// Clusters 0 and 1 of the state, and one cluster in the state's second
	// L2 table so that qemu-io allocates that table.
	cmds := []string{"write -q -b -s " + head + " 0 64k", "write -q -b -s " + period + " 64k 64k", "write -q -b -s " + period + " 512M 64k"}
	args := []string{"-f", "qcow2"}
	for _, c := range cmds {
		args = append(args, "-c", c)
	}
	if err := run(ctx, "qemu-io", append(args, path)...); err != nil {
		return "", err
	}
	if err := run(ctx, "qemu-img", "snapshot", "-c", "saved", path); err != nil {
		return "", err
	}
	q, err := openQcow(path)
	if err != nil {
		return "", err
	}
	defer q.f.Close()
	snapOff, err := q.u64(64)
	if err != nil {
		return "", err
	}
	sl1Off, err := q.u64(int64(snapOff))
	if err != nil {
		return "", err
	}
	extra, err := q.u32(int64(snapOff) + 36)
	if err != nil {
		return "", err
	}
	if extra < 8 {
		return "", fmt.Errorf("%s: snapshot entry has %d bytes of extra data, want the 64-bit VM state size", path, extra)
	}
	const stateSize = int64(1) << 40
	vmIndex := (disk + qcowL1Cover - 1) / qcowL1Cover // first L1 entry of the VM state
	first, err := q.entry(sl1Off, vmIndex)
	if err != nil {
		return "", err
	}
	second, err := q.entry(sl1Off, vmIndex+1)
	if err != nil {
		return "", err
	}
	periodEntry, err := q.entry(first, 1)
	if err != nil {
		return "", err
	}
	if first&qcowOffsetMask == 0 || second&qcowOffsetMask == 0 || periodEntry&qcowOffsetMask == 0 {
		return "", fmt.Errorf("%s: qemu-io did not allocate the VM state's tables", path)
	}
	// The first L2 table: cluster 0 is the head, all the others the period;
	// the second L2 table holds only the period, and serves every later L1
	// entry of the state.
	if err := q.fill(int64(first&qcowOffsetMask)+16, qcowL2Entries-2, periodEntry); err != nil {
		return "", err
	}
	if err := q.fill(int64(second&qcowOffsetMask), qcowL2Entries, periodEntry); err != nil {
		return "", err
	}
	n := int(stateSize / qcowL1Cover)
	sl1Size, err := q.u32(int64(snapOff) + 8)
	if err != nil {
		return "", err
	}
	if int(sl1Size) < vmIndex+n {
		// The snapshot's L1 table must reach the end of the state: it
		// lives in one cluster, which holds 8192 entries.
		if vmIndex+n > qcowL2Entries {
			return "", fmt.Errorf("state of %d bytes does not fit one L1 cluster", stateSize)
		}
		if err := q.put32(int64(snapOff)+8, uint32(vmIndex+n)); err != nil {
			return "", err
		}
	}
	if err := q.fill(int64(sl1Off&qcowOffsetMask)+int64(8*(vmIndex+2)), n-2, second); err != nil {
		return "", err
	}
	if err := q.put32(int64(snapOff)+32, 0xffffffff); err != nil {
		return "", err
	}
	if err := q.put64(int64(snapOff)+40, uint64(stateSize)); err != nil {
		return "", err
	}
	return path, nil
}
