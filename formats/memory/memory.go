// Package memory turns saved guest RAM into guest-physical address spaces.
// The readers live in subpackages (qemustream, libvirtsave, elfcore, kdump,
// lime, vmware); this package holds what the integrator needs to give a qcow2
// internal snapshot a memory view.
package memory

import (
	"context"
	"errors"

	"github.com/imgaudit/imgaudit/formats/memory/qemustream"
	"github.com/imgaudit/imgaudit/formats/model"
)

// FromVMState parses the raw vmstate of a qcow2 snapshot (a QEVM migration
// stream read through vmstate's ReaderAt) and returns its guest-physical RAM
// with notes for the view. Pages stored verbatim in host clusters keep
// their host location in the extents; others become SourceDerived.
func FromVMState(ctx context.Context, name string, vmstate model.Disk) (model.Disk, []string, error) {
	s, err := parseVMState(ctx, name, vmstate)
	if err != nil {
		return nil, nil, err
	}
	return s.Physical, append([]string{"offsets are guest-physical addresses"}, s.Notes...), nil
}

// ViewsFromVMState is FromVMState returning every memory view of the stream:
// guest-physical RAM with ID ViewID(base, memory, name), plus
// "<name>/superseded" (older page versions) and "<name>/block:<id>" (BIOS,
// ROM and video RAM blocks) when they hold data.
func ViewsFromVMState(ctx context.Context, base, name string, vmstate model.Disk) ([]model.View, error) {
	s, err := parseVMState(ctx, name, vmstate)
	if err != nil {
		return nil, err
	}
	return s.Views(base, name), nil
}

func parseVMState(ctx context.Context, name string, vmstate model.Disk) (*qemustream.Stream, error) {
	loc, cut, cutErr := qemustream.StateLocator(ctx, vmstate)
	if cut < 0 && cutErr != nil {
		return nil, cutErr
	}
	size := vmstate.Size()
	if cut >= 0 {
		size = cut
	}
	s, err := qemustream.ParseWith(ctx, name, vmstate, size, qemustream.Config{Locate: loc})
	if err != nil {
		return nil, errors.Join(err, cutErr)
	}
	if cutErr != nil {
		// Parsed up to the cut: those pages are scanned, and the view
		// says where the rest was left unread.
		// The parse stops at the cut too: the cut is what to say.
		s.Notes = append(s.Notes, cutErr.Error())
		s.Cut = cutErr
	}
	return s, nil
}
