package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/registry"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/scanner"
)

func cmdScan(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("scan", "scan [flags] TARGET...",
		`Scan VM images for secrets and report where each one persists: live in the
current state, deleted but not wiped, kept by an internal snapshot, only in a
backing file, in unreferenced host clusters, or in saved RAM.

A TARGET is an image file (qcow2, VMDK, OVA, VHD(X), VDI, Parallels, QED,
raw, Proxmox VMA; such disks shipped in a tar, a compressed tar or a zip,
as GCE images, Vagrant boxes and downloaded appliances are, or compressed
whole, as disk.raw.xz; or saved RAM: QEMU/libvirt saves, ELF and kdump
dumps, LiME, VMware .vmem, also inside such archives; all detected by
content), an OCI layout, an OCI archive (podman save --format
oci-archive, BuildKit's type=oci), a docker/podman save tarball or a
skopeo/podman dir: directory (docker-dir), a block device holding an image
(an LVM logical volume such as /dev/pve/vm-100-disk-0, a ZFS zvol, a disk:
only when named here, never when found in a directory or named by an
image), or a directory. In a directory every image is scanned, libvirt,
Proxmox and VMware store layouts are grouped into VMs with per-VM
timelines, and each backing file is read once however many overlays share
it. Images are opened read-only.

The files an image names (backing and data files, extents, parents) are
opened only if they are regular files inside the image's directory, or the
scanned directory, or a --backing-root DIR; any other name is refused and
reported as an error of that image. Disks found inside container layers
and archives never open files of this host. A disk image stored as a file
in a guest's filesystem (a host's /var/lib/libvirt/images/*.qcow2, a raw
disk that a partition table or a filesystem starts), or saved guest RAM
(/var/lib/libvirt/qemu/save/*.save, a guest-memory dump), is also
scanned as a target of its own, its names resolved in that filesystem
(--no-nested-images turns this off). Processes' cores and swap areas in
a guest are scanned again for key schedules and DER keys (the memory
rules), unless --no-decode.

Exit codes: 0 no finding at or above --fail-on; 1 findings at or above it;
2 incomplete (a target, view or backing file could not be read completely,
or the run reached --max-time: the report says "complete": false and why),
a usage error, or no target could be read; 3 incomplete and findings at or
above --fail-on; 130 interrupted (the report is still written, marked
incomplete).`, stdout)
	rf := addReportFlags(fs, "also run memory-structure rules (AES key schedules, DER keys) on disk views; always on for memory views")
	noProgress := fs.Bool("no-progress", false, "no progress display")
	showProgress := fs.Bool("progress", false, "show progress when standard error is not a terminal too: a plain line every 5 seconds (on a terminal there is a bar)")
	noRollback := fs.Bool("no-rollback", false, "skip the rollback-risk analysis (what reverting to a snapshot or backing file would bring back)")
	noDedupe := fs.Bool("no-dedupe", false, "scan every view in full instead of shared bytes once (slower; for measurements)")
	roots := addBackingRoots(fs)
	maxInflate := fs.String("max-inflate", fmt.Sprintf("%dG", ova.DefaultMaxInflate>>30), "stop inflating the gzip-compressed disks of an OVA, a compressed tarball of disks (a GCE image, a Vagrant box), the deflated disks of a zip or a disk compressed whole (disk.raw.xz) after `SIZE` bytes (all its disks together, e.g. 16G); a disk cut there makes the run incomplete")
	targets, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	inflate, err := parseSize(*maxInflate)
	if err != nil {
		return exitUsage, usagef("--max-inflate: %v", err)
	}
	if err := roots.check(); err != nil {
		return exitUsage, err
	}
	if len(targets) == 0 {
		return exitUsage, usagef("no target given")
	}
	threshold, known, err := rf.check()
	if err != nil {
		return exitUsage, err
	}
	ctx, cancel := scanner.WithMaxTime(ctx, rf.maxTime)
	defer cancel()
	// Before the scan: the report may not overwrite a target or land in a
	// scanned directory; once the targets are open, before any byte is
	// scanned, nor any file they name (scanner.Options.Opened); and when
	// the report is written, nor any file the run read.
	out, err := checkOutput(rf.output, append(rf.readFiles(), targets...))
	if err != nil {
		return exitUsage, err
	}
	engine, err := rf.engine()
	if err != nil {
		return exitUsage, err
	}
	var prog io.Writer
	style := scanner.ProgressOptions{Plain: !isTerminal(stderr)}
	if !*noProgress && (*showProgress || !style.Plain) {
		prog = stderr
	}
	// Container images (OCI layouts and archives, docker/podman save
	// tarballs) go to the registry scanner, everything else to the disk
	// scanner.
	var disks, images []string
	for _, t := range targets {
		if registry.IsContainerSource(t) {
			images = append(images, t)
		} else {
			disks = append(disks, t)
		}
	}
	var reps []*report.Report
	var scanErr error
	if len(disks) > 0 || len(images) == 0 {
		sc := scanner.New(scanner.Options{
			Engine: engine, MemoryRulesEverywhere: rf.memRules, Progress: prog, ProgressStyle: style,
			Version: version, NoDedupe: *noDedupe, FailOn: rf.failOn, NoRollback: *noRollback,
			BackingRoots: *roots, MaxInflate: inflate, Opened: out.Refuse,
			NoDowngrade:    rf.noDowngrade,
			NoDecode:       rf.noDecode,
			NoNestedImages: rf.noNested,
			DisableRules:   rf.derived,
		})
		rep, err := sc.Scan(ctx, disks)
		if rep == nil {
			return exitUsage, err
		}
		reps, scanErr = append(reps, rep), err
	}
	if len(images) > 0 && scanErr == nil {
		rs, err := registry.New(registry.Options{Engine: engine, Version: version, FailOn: rf.failOn, MemoryRules: rf.memRules,
			NoDowngrade: rf.noDowngrade, NoDecode: rf.noDecode, NoNestedImages: rf.noNested, DisableRules: rf.derived})
		if err != nil {
			return exitUsage, usagef("%v", err)
		}
		crep, err := rs.ScanLocal(ctx, images)
		if crep != nil {
			reps = append(reps, crep)
		}
		scanErr = err
	}
	if len(reps) == 0 {
		return exitUsage, scanErr
	}
	rep := reps[0]
	if len(reps) > 1 {
		rep = report.Merge(reps...)
	}
	rep.Command = "scan"
	if known != nil {
		report.SuppressBaseline(rep, known)
	}
	return finishReport("scan", rep, rf, out, threshold, scanErr, nil, stdout, stderr)
}

// loadRules reads the built-in rules and the --rules files.
func loadRules(ruleFiles []string) (detectors.Config, error) {
	c, err := detectors.LoadRules(ruleFiles)
	if err != nil {
		return c, usagef("--rules: %v", err)
	}
	return c, nil
}

// buildEngine builds the engine of the rules with the --disable-rule IDs
// turned off; an ID no rule has is a usage error.
func buildEngine(c detectors.Config, disable []string, workers int) (*detectors.Engine, error) {
	if id, ok := c.UnknownRule(disable); ok {
		return nil, usagef("--disable-rule: no rule %q (see 'imgaudit rules')", id)
	}
	e, err := c.NewEngine(disable, workers)
	if err != nil {
		return nil, usagef("--rules: %v", err)
	}
	return e, nil
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0 && !strings.EqualFold(os.Getenv("TERM"), "dumb")
}
