package scanner

import (
	"bytes"
	"errors"
	"io/fs"
	"testing"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
)

// TestGuestOpenerNames: the names a disk image stored in a guest writes
// resolve in that guest's filesystem as QEMU on that guest would resolve
// them: relative to the naming file's directory, absolute from the
// guest's root, ".." stopping at that root; every path keeps the view and
// partition prefix, so nothing names a host file. Unusable names are
// refused, and a partition with no readable filesystem opens nothing.
func TestGuestOpenerNames(t *testing.T) {
	const prefix = "host.qcow2#current:p1:"
	o := &guestOpener{prefix: prefix, owner: prefix + "/var/lib/libvirt/images/web01.qcow2", reads: &nestedReads{by: map[string]map[string]int{}}}
	from := prefix + "/var/lib/libvirt/images/web01.qcow2"
	for _, c := range []struct {
		from, name, want string
		refused          bool
	}{
		{from, "base.qcow2", prefix + "/var/lib/libvirt/images/base.qcow2", false},
		{from, "../templates/base.qcow2", prefix + "/var/lib/libvirt/templates/base.qcow2", false},
		{from, "/var/lib/libvirt/templates/base.qcow2", prefix + "/var/lib/libvirt/templates/base.qcow2", false},
		{from, "../../../../../../etc/shadow", prefix + "/etc/shadow", false},
		{from, "/etc/../../etc/shadow", prefix + "/etc/shadow", false},
		// A chain: the base names its own base, from its directory.
		{prefix + "/var/lib/libvirt/templates/base.qcow2", "golden.qcow2", prefix + "/var/lib/libvirt/templates/golden.qcow2", false},
		{from, "", "", true},
		{from, "base\x00.qcow2", "", true},
	} {
		u, _, err := o.resolve(c.from, c.name)
		if c.refused {
			if !errors.Is(err, model.ErrBadName) {
				t.Errorf("%q: %v, want refused", c.name, err)
			}
			continue
		}
		if err != nil || u.Path != c.want {
			t.Errorf("%q from %q: %q, %v; want %q", c.name, c.from, u.Path, err, c.want)
		}
		// No filesystem to read: nothing opens, and nothing is recorded
		// as read.
		if f, p, err := o.Open(c.from, c.name); f != nil || p != "" || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%q opened without a filesystem: %q, %v", c.name, p, err)
		}
	}
	if len(o.reads.by) != 0 {
		t.Errorf("reads recorded: %v", o.reads.by)
	}
}

// TestMemorySignaturesProbe: every magic number the raw scan notes for
// saved RAM starts a file that formats.Probe recognises as memory by its
// magic number, so that nestedImages opens it (a magic written wrong,
// a byte order swapped, would silently open nothing).
func TestMemorySignaturesProbe(t *testing.T) {
	for _, sig := range memorySignatures() {
		head := make([]byte, formats.HeadLen)
		copy(head[sig.At:], sig.Magic)
		m := formats.Probe(head, bytes.NewReader(head), int64(len(head)), "file")
		if m.Kind != formats.FormatMemory || !nestedFormat(m) {
			t.Errorf("%q: probed as %q (%s, confidence %v)", sig.Magic, m.Name, m.Kind, m.Confidence)
		}
	}
}
