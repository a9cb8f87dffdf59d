package qemustream

import (
	"strconv"
	"strings"
)

const (
	gib   = int64(1) << 30
	fourG = 4 * gib
)

// X86LowMem returns how many bytes of the main RAM block ("pc.ram") QEMU maps
// below 4 GiB for an x86 machine type and RAM size, following
// hw/i386/pc_piix.c and pc_q35.c (QEMU 2.0 to 9.x) with the default
// max-ram-below-4g. ok is false for machines whose layout is not known.
//
//   - i440fx ("pc", "pc-i440fx-*", "pc-1.x", "pc-0.x"): everything is low
//     below 0xe0000000 (3.5 GiB); from there the split moves to 3 GiB
//     (gigabyte_align), except for machine types up to 1.7, which keep 3.5 GiB.
//   - q35 ("q35", "pc-q35-*"): everything is low below 0xb0000000 (2.75 GiB);
//     from there the split is 2 GiB (gigabyte_align), 2.75 GiB for pc-q35-1.x.
func X86LowMem(machine string, ram int64) (low int64, ok bool) {
	var limit, aligned int64
	switch {
	case machine == "q35" || strings.HasPrefix(machine, "pc-q35-"):
		limit, aligned = 0xb0000000, 0x80000000
		if oldMachine(strings.TrimPrefix(machine, "pc-q35-")) {
			aligned = 0xb0000000
		}
	case machine == "pc" || strings.HasPrefix(machine, "pc-i440fx-") || strings.HasPrefix(machine, "pc-0.") || strings.HasPrefix(machine, "pc-1."):
		limit, aligned = 0xe0000000, 0xc0000000
		v := strings.TrimPrefix(strings.TrimPrefix(machine, "pc-i440fx-"), "pc-")
		if oldMachine(v) {
			aligned = 0xe0000000
		}
	default:
		return 0, false
	}
	if ram < limit {
		return ram, true
	}
	return aligned, true
}

// oldMachine reports whether a machine version "X.Y" is 1.7 or older
// (pc_compat_1_7 turns gigabyte_align off).
func oldMachine(v string) bool {
	maj, _, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	n, err := strconv.Atoi(maj)
	return err == nil && n < 2
}

// X86Phys maps an offset in the main RAM block to a guest-physical address
// given the low-memory size: low offsets map 1:1, the rest above 4 GiB.
func X86Phys(off, low int64) int64 {
	if off < low {
		return off
	}
	return fourG + (off - low)
}

// x86PhysSize is the guest-physical space needed for ram bytes of main RAM.
func x86PhysSize(ram, low int64) int64 {
	if ram <= low {
		return ram
	}
	return fourG + (ram - low)
}
