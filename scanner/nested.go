package scanner

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"sync"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/memory/elfcore"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/formats/ova"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
	"github.com/imgaudit/imgaudit/report"
)

// Disk images stored as files in a guest's filesystem: a hypervisor
// host's /var/lib/libvirt/images, a build machine's packer output, an
// appliance downloaded into a home. The raw scan reads such a file's
// bytes, but not as a disk: a compressed qcow2's clusters and a
// stream-optimized VMDK's grains are deflate streams no magic number
// announces, so what they hold was never seen, and what was seen has the
// host's path, not the inner guest's. Each one is scanned again as a
// target of its own (ScanReaders), read in place through the guest's
// filesystem; the names it writes (backing files, extents) resolve in
// that same filesystem, never on the host.

const (
	// maxNestedDepth is how many levels of images inside images are
	// opened: an image in an image in a target, no deeper.
	maxNestedDepth = 2
	// maxNestedImages bounds the images one scan opens at one level; the
	// rest are still scanned as the files' raw bytes.
	maxNestedImages = 64
	// maxImagePlaces bounds the places with a disk format's magic number
	// that one view looks up (a hostile filesystem can put one at every
	// sector); maxNamedInNotes the paths a note lists.
	maxImagePlaces  = 65536
	maxNamedInNotes = 8
)

// nestedImagesOn reports whether this scan opens the disk images it
// finds in its targets' filesystems.
func (s *Scanner) nestedImagesOn() bool { return !s.opts.NoNestedImages }

// imageSignatures are the magic numbers of the disk and memory image
// formats nestedFormat accepts, for the raw scan to note where files
// start: a file is probed only where one was found, so that a guest of
// many files costs nothing.
func imageSignatures() []detectors.Signature {
	return append([]detectors.Signature{
		{Magic: []byte("QFI\xfb")},                          // qcow2
		{Magic: []byte("KDMV")},                             // VMDK sparse extent
		{Magic: []byte("COWD")},                             // VMDK ESX sparse extent
		{Magic: []byte("\xbe\xba\xfe\xca\x00\x00\x00\x00")}, // VMDK seSparse
		{Magic: []byte("vhdxfile")},                         // VHDX
		{Magic: []byte("conectix")},                         // dynamic VHD
		{Magic: []byte("<<< ")},                             // VDI: its pre-header's text ("<<< Oracle VM VirtualBox Disk Image >>>"); Probe checks the signature at 0x40
		{Magic: []byte("WithoutFreeSpace")},                 // Parallels
		{Magic: []byte("WithouFreSpacExt")},                 // Parallels (format extension)
		{Magic: []byte("QED\x00")},                          // QED
		{Magic: []byte("# Disk DescriptorFile")},            // VMDK text descriptor
		{Magic: []byte("VMA\x00")},                          // Proxmox backup
	}, append(rawDiskSignatures(), memorySignatures()...)...)
}

// rawDiskSignatures find raw disk images (no magic number of their own)
// by what they hold: a GPT's header, or a volume's superblock (ext2/3/4's
// magic in its sector 2, XFS, NTFS, an LVM2 label, a LUKS header), at
// the disk's start (a VM's disk without a table, a Proxmox container's
// volume) or at a partition's: a hit anywhere in a file has that file
// probed, and its head (a partition table) decides (probeNested). Not
// an MBR's boot signature: at byte 510 of each sector, a cache line the
// probe does not otherwise touch, it cost make bench's ext4 image 5-13 %
// of a --no-decode scan's CPU; an MBR disk is found by its partitions'
// filesystems. Hits inside files that are no disk cost a lookup each.
func rawDiskSignatures() []detectors.Signature {
	return []detectors.Signature{
		{Magic: []byte("EFI PART")},
		{At: 56, Magic: []byte{0x53, 0xef}},
		{Magic: []byte("XFSB")},
		{At: 3, Magic: []byte("NTFS    ")},
		{Magic: []byte("LABELONE")},
		{Magic: []byte("LUKS\xba\xbe")},
	}
}

// memorySignatures are the magic numbers of the memory image formats
// nestedFormat accepts.
func memorySignatures() []detectors.Signature {
	return append(coreSignatures(), []detectors.Signature{
		// Saved RAM: a libvirt save (virsh save, managedsave: a
		// hypervisor host's /var/lib/libvirt/qemu/save), a QEMU migration
		// stream, kdump and makedumpfile's flat format, LiME, VMware's
		// suspend and snapshot state (its four magics), VirtualBox's .sav;
		// and guest-memory dumps (coreSignatures).
		{Magic: []byte("LibvirtQemudSave")},
		{Magic: []byte("LibvirtQemudPart")},
		{Magic: []byte("QEVM\x00\x00\x00\x03")},
		{Magic: []byte("KDUMP   ")},
		{Magic: []byte("makedumpfile\x00\x00\x00\x00")},
		{Magic: []byte("EMiL\x01\x00\x00\x00")},
		{Magic: []byte("\xd0\xbe\xd0\xbe")},
		{Magic: []byte("\xd1\xba\xd1\xba")},
		{Magic: []byte("\xd2\xbe\xd2\xbe")},
		{Magic: []byte("\xd3\xbe\xd3\xbe")},
		{Magic: []byte("\x7fVirtualBox SavedState ")},
	}...)
}

// coreSignatures are an ELF core's first bytes (e_type 4, in either byte
// order, OS ABI 0): a guest-memory dump as QEMU writes it (virsh dump
// --memory-only), or a process's core, which the decode pass scans again
// with the memory rules (decoder.files).
func coreSignatures() []detectors.Signature {
	return []detectors.Signature{
		{Magic: []byte("\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00")},
		{Magic: []byte("\x7fELF\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x00")},
		{Magic: []byte("\x7fELF\x02\x02\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04")},
	}
}

// nestedFormat says whether a guest file is opened as a disk or memory
// image: one that a magic number at its start recognises (memory: saved
// RAM, a guest-memory dump), or a VMDK text descriptor (a split disk's
// extents are read through it); an OVA (a downloaded appliance); a
// Proxmox backup (.vma, and .vma.zst or .vma.gz by its name, as vzdump
// writes them); a disk compressed whole, a tar or a zip of disks (probed
// only at deep places: probeNested). Not raw, nor a fixed VHD, known only
// by its footer.
func nestedFormat(m formats.Match) bool {
	switch m.Kind {
	case formats.FormatDisk:
		return m.Confidence == formats.Magic || m.Confidence == formats.Layout && (m.Name == "vmdk" || m.Name == "compressed" || m.Name == "raw" && rawDiskEvidence(m.Evidence))
	case formats.FormatMemory:
		return m.Confidence == formats.Magic // not a .vmem, known by its name only
	case formats.FormatArchive:
		return m.Name == "vma" || m.Name == "ova" || m.Name == "tar" || m.Name == "zip"
	}
	return false
}

// rawDiskEvidence says which raw files are opened as VM disks: those a
// partition table or a VM's volume starts (a filesystem the guest reads
// on its own, a PV, LUKS). Not a FAT (EFI system partition images that
// packages ship), an ISO 9660 image (an installer), squashfs (a snap, which
// the decode pass reads) or swap (scanned as bytes).
func rawDiskEvidence(e string) bool {
	switch e {
	case "gpt", "mbr", "ext2", "ext3", "ext4", "xfs", "btrfs", "ntfs", "lvm2", "luks":
		return true
	}
	return false
}

// minRawDisk is the smallest raw file opened as a disk (a filesystem
// needs more than a few blocks; smaller ones are fixtures).
const minRawDisk = 1 << 20

// archiveOfDisks reports a tar or zip of disks or a disk compressed
// whole, which probeNested accepts at deep places only.
func archiveOfDisks(m formats.Match) bool {
	switch m.Name {
	case "tar", "zip", "compressed":
		return true
	}
	return false
}

// spools reports a format whose reader may write what it holds to
// temporary files: an archive of disks or an OVA (its compressed disks,
// within --max-inflate), a Proxmox backup vzdump compressed (its stored
// blocks), a libvirt save with a compressed payload (up to 64 GiB).
// nestedImages scans such images one at a time, so that the temporary
// disk a scan uses stays within one of them.
func spools(m formats.Match) bool {
	return archiveOfDisks(m) || m.Name == "ova" || m.Name == "vma" || m.Name == "libvirt-save"
}

// compressedBackup reports a name vzdump gives a compressed Proxmox
// backup: the vma reader streams those (formats.Probe knows them by name
// and compression magic).
func compressedBackup(name string) bool {
	n := strings.ToLower(name)
	return strings.HasSuffix(n, ".vma.zst") || strings.HasSuffix(n, ".vma.gz")
}

// probeNested recognises a guest file's format for nestedFormat. At a
// shallow place (imagePlace), a tar is only asked whether it is an OVA
// (its first members name an .ovf: a few headers read), not whether its
// members are disks, and no archive or compressed file is asked what it
// holds: a guest holds many tars (Go's test data), and probing each one's
// members (and each zip's) cost a Debian server install's scan 7 % of its
// CPU. A file at a deep place holds an image's magic number: every format
// is asked, tars, zips and disks compressed whole included.
func probeNested(head []byte, f io.ReaderAt, size int64, name string, deep bool) formats.Match {
	if !deep && len(head) >= 262 && string(head[257:262]) == "ustar" {
		if ova.Probe(head, f, size) {
			return formats.Match{Name: "ova", Kind: formats.FormatArchive, Confidence: formats.Layout}
		}
		return formats.Match{}
	}
	m := formats.Probe(head, f, size, name)
	if !deep && archiveOfDisks(m) {
		return formats.Match{} // a shallow place: only OVAs and backups
	}
	if m.Name == "raw" && (size < minRawDisk || iso9660(f, size)) {
		return formats.Match{} // an installer's ISO has an MBR for USB sticks (isohybrid)
	}
	if m.Name == "elf-core" {
		// A process's core (a crash, Go's test data) is no guest's RAM.
		if segs, err := elfcore.Segments(name, f, size); err == nil && !elfcore.GuestPhysical(segs) {
			return formats.Match{}
		}
	}
	return m
}

// iso9660 reports an ISO 9660 primary volume descriptor at sector 16.
func iso9660(f io.ReaderAt, size int64) bool {
	var b [6]byte
	if size < 0x8006 {
		return false
	}
	if _, err := f.ReadAt(b[:], 0x8000); err != nil {
		return false
	}
	return string(b[1:6]) == "CD001"
}

// rawGuestFile is a raw disk stored in a guest file, with the file's data
// ranges (formats/raw.DataRanger): its holes, which the guest's
// filesystem knows, are not read as zeros and scanned. Where the outer
// view lends its bytes (a mapped raw image: detectors.Slicer), so does
// the file (formats/raw.Lender), through its runs there: a range inside
// one run is the outer mapping's, without the copies of a read through
// the guest's filesystem.
type rawGuestFile struct {
	fsys.File
	data  [][2]int64
	runs  []guestfs.GuestRun // sorted by FileOff
	outer detectors.Slicer   // nil: nothing is lent
}

func (f rawGuestFile) DataRanges() ([][2]int64, bool) { return f.data, true }

func (f rawGuestFile) Slice(off int64, n int) ([]byte, bool) {
	if f.outer == nil || n <= 0 {
		return nil, false
	}
	i, _ := slices.BinarySearchFunc(f.runs, off+1, func(r guestfs.GuestRun, t int64) int { return cmp.Compare(r.FileOff, t) })
	if i == 0 {
		return nil, false
	}
	r := f.runs[i-1]
	if off < r.FileOff || off-r.FileOff > r.Len-int64(n) {
		return nil, false
	}
	return f.outer.Slice(r.Off+off-r.FileOff, n)
}

func (f rawGuestFile) Release(b []byte) {
	if rl, ok := f.outer.(interface{ Release([]byte) }); ok {
		rl.Release(b)
	}
}

// newRawGuestFile reads a raw disk stored at path in partition of v's
// guest filesystem m; false when m cannot say where its data is.
func newRawGuestFile(v *viewState, m *guestfs.Map, f fsys.File, partition, path string) (rawGuestFile, bool) {
	data, ok := m.FileData(partition, path)
	if !ok {
		return rawGuestFile{}, false
	}
	g := rawGuestFile{File: f, data: data}
	if s, ok := v.view.Disk.(detectors.Slicer); ok {
		if runs, ok := m.FileRuns(partition, path); ok {
			g.runs, g.outer = runs, s
		}
	}
	return g, true
}

// imagePlace is a guest offset where a file may start that nestedImages
// opens. deep: the file holds an image's magic number (the raw scan saw
// it at a sector's start, or the decode pass in its decoded bytes), so it
// is probed for every format, a tar or zip of disks or a disk compressed
// whole included; else it is a tar file or a compressed Proxmox backup
// the decode pass listed, probed only as an OVA or a backup (asking every
// tar whether its members are disks cost a Debian server's scan 7 %).
type imagePlace struct {
	off  int64
	deep bool
}

// imageOffsets lists, for current view v, the guest offsets where the raw
// scan found a disk or memory format's magic number: in v's own pass, or
// in another current view's over the same physical bytes at the same
// offset (two overlays of one base), since each byte is scanned once;
// where the decode pass found a file whose decoded bytes hold an image;
// and where it found a tar file (an OVA, perhaps) or a compressed Proxmox
// backup to start.
func imageOffsets(v *viewState, hits map[*viewState]*sigHits) []imagePlace {
	deep := slices.Clone(v.imageArchives)
	if h := hits[v]; h != nil {
		deep = append(deep, h.images...)
	}
	for w, h := range hits {
		if w == v || w.view.Kind != model.KindCurrent {
			continue
		}
		for _, g := range h.images {
			p, ok := posOf(w, g)
			if q, ok2 := posOf(v, g); ok && ok2 && p == q {
				deep = append(deep, g)
			}
		}
	}
	isDeep := map[int64]bool{}
	for _, g := range v.archiveStarts {
		isDeep[g] = false
	}
	for _, g := range deep {
		isDeep[g] = true
	}
	out := make([]imagePlace, 0, len(isDeep))
	for g, d := range isDeep {
		out = append(out, imagePlace{g, d})
	}
	// The archives the decode pass left undecoded first (they must get
	// their slots), then deep places (a file found both ways is probed
	// deep), each by offset.
	rank := func(p imagePlace) int {
		switch {
		case v.leftToNested[p.off]:
			return 0
		case p.deep:
			return 1
		}
		return 2
	}
	slices.SortFunc(out, func(a, b imagePlace) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.off, b.off))
	})
	return out
}

// nestedImages lists the disk images stored as regular files in the
// current views of ts, as targets of a scan one level down; what it
// leaves out is said in the views' notes. A file is looked at only where
// the raw scan found a disk format's magic number or the decode pass a
// tar file's start (imageOffsets): the filesystem's index names the file
// there, which is opened by its path and probed.
func (s *Scanner) nestedImages(ctx context.Context, ts []*target, hits map[*viewState]*sigHits) []Reader {
	if !s.nestedImagesOn() {
		return nil
	}
	var out []Reader
	var over int
	head := make([]byte, formats.HeadLen)
	reads := &nestedReads{by: map[string]map[string]int{}}
	for v, h := range hits {
		if h.imagesDropped > 0 {
			v.notes = append(v.notes, fmt.Sprintf("%d magic numbers of disk or memory images not followed: over the %d a view keeps", h.imagesDropped, maxSignatureHits))
		}
	}
	for _, t := range ts {
		for _, v := range t.views {
			if v.view.Kind != model.KindCurrent || v.view.Disk == nil || t.plainData() || v.err != nil && len(v.leftToNested) == 0 || ctx.Err() != nil {
				continue
			}
			offs := imageOffsets(v, hits)
			if len(offs) == 0 {
				continue
			}
			fi := v.filesystem(ctx)
			if fi == nil || fi.m == nil {
				if len(v.leftToNested) > 0 {
					v.fail(fmt.Errorf("%d archives of disk images in its filesystem neither decoded nor opened: its files could not be listed again", len(v.leftToNested)))
				}
				continue
			}
			var found []Reader
			var deep, unmapped []string
			seen := map[string]bool{}
			if len(offs) > maxImagePlaces {
				v.notes = append(v.notes, fmt.Sprintf("%d places where a disk or memory image's magic number starts a sector not looked at: over the %d a view looks up", len(offs)-maxImagePlaces, maxImagePlaces))
				offs = offs[:maxImagePlaces]
			}
			for _, pl := range offs {
				loc := fi.m.Locate(pl.off)
				key := loc.Partition + ":" + loc.Path
				if loc.State != report.StateAllocated || loc.Path == "" || seen[key] {
					continue
				}
				seen[key] = true
				files := fi.m.Files(loc.Partition)
				if files == nil {
					continue
				}
				f, err := files.Open(loc.Path)
				if err != nil {
					continue
				}
				n, _ := f.ReadAt(head[:min(int64(len(head)), f.Size())], 0)
				m := probeNested(head[:n], f, f.Size(), loc.Path, pl.deep)
				if !nestedFormat(m) {
					continue
				}
				where := partPrefix(loc.Partition) + loc.Path
				if s.depth >= maxNestedDepth {
					deep = append(deep, where)
					continue
				}
				if len(out)+len(found) >= maxNestedImages {
					over++
					continue
				}
				in := &report.Containment{Target: t.path, View: v.view.ID, Partition: loc.Partition, Path: loc.Path}
				prefix := v.view.ID + ":" + partPrefix(loc.Partition)
				var r io.ReaderAt = f
				if m.Name == "raw" {
					// Only where the filesystem says which bytes are
					// data: a sparse disk's holes would be read as zeros
					// and scanned (a terabyte of them, for a hostile
					// guest's file).
					g, ok := newRawGuestFile(v, fi.m, f, loc.Partition, loc.Path)
					if !ok {
						unmapped = append(unmapped, where)
						continue
					}
					r = g
				}
				found = append(found, Reader{Name: v.view.ID + ":" + where, R: r, Size: f.Size(), Inside: in, alone: spools(m),
					Opener: &guestOpener{files: files, prefix: prefix, log: s.opts.Names, owner: v.view.ID + ":" + where, reads: reads}})
			}
			// The decode pass left these to the image readers: one not
			// opened was read by neither, so the view is incomplete.
			var lost []string
			for g := range v.leftToNested {
				loc := fi.m.Locate(g)
				if !slices.ContainsFunc(found, func(r Reader) bool {
					return r.Inside.Partition == loc.Partition && r.Inside.Path == loc.Path
				}) {
					lost = append(lost, partPrefix(loc.Partition)+loc.Path)
				}
			}
			if len(lost) > 0 {
				slices.Sort(lost)
				v.fail(fmt.Errorf("%d archives of disk images in its filesystem neither decoded nor opened (over the %d images a scan opens, or no longer readable): %s", len(lost), maxNestedImages, namedInNote(lost)))
			}
			if len(found) > 0 {
				v.notes = append(v.notes, fmt.Sprintf("%d disk or memory images in its filesystem opened with their formats' readers: each a target of its own, or part of one that reads it (a base, an extent)", len(found)))
			}
			out = append(out, found...)
			if over > 0 {
				v.notes = append(v.notes, fmt.Sprintf("%d disk or memory images in its filesystem not opened: over the %d a scan opens (scanned as the files' bytes)", over, maxNestedImages))
				over = 0
			}
			if len(deep) > 0 {
				v.notes = append(v.notes, fmt.Sprintf("%d disk or memory images in its filesystem not opened: %d levels of images inside images already (scanned as the files' bytes): %s", len(deep), s.depth, namedInNote(deep)))
			}
			if len(unmapped) > 0 {
				v.notes = append(v.notes, fmt.Sprintf("%d raw disk images in its filesystem not opened: the filesystem's index does not say which of their bytes are data (compressed or inline data, an index cut at its caps), so their holes would be scanned as zeros (scanned as the files' bytes): %s", len(unmapped), namedInNote(unmapped)))
			}
		}
	}
	return out
}

// namedInNote lists paths for a note, the first maxNamedInNotes of them.
func namedInNote(paths []string) string {
	if len(paths) <= maxNamedInNotes {
		return strings.Join(paths, ", ")
	}
	return strings.Join(paths[:maxNamedInNotes], ", ") + fmt.Sprintf(" and %d more", len(paths)-maxNamedInNotes)
}

// partPrefix is a partition's name and a colon, "" for none.
func partPrefix(p string) string {
	if p == "" {
		return ""
	}
	return p + ":"
}

// scanNested scans the disk images stored in ts's guest filesystems, and
// merges their report into rep. An image that another one reads (its
// base, an extent of a split VMDK) is that image's, not a target of its
// own, as in a directory scan; of two that read each other, the later
// stays.
func (s *Scanner) scanNested(ctx context.Context, rs []Reader, rep *report.Report, lim report.Limits) *report.Report {
	opts := s.opts
	opts.Progress, opts.Opened = nil, nil
	var together []Reader
	var alone [][]Reader
	for _, r := range rs {
		if r.alone {
			alone = append(alone, []Reader{r})
		} else {
			together = append(together, r)
		}
	}
	reports := []*report.Report{rep}
	// The images that may read each other together, then each archive on
	// its own: its temporary files are gone before the next one opens.
	for _, group := range append([][]Reader{together}, alone...) {
		if len(group) == 0 {
			continue
		}
		sub := &Scanner{opts: opts, depth: s.depth + 1}
		inner, err := sub.scan(ctx, func() ([]*target, []report.Skipped, []walked) {
			return readByNone(sub.openReaders(ctx, group)), nil, nil
		})
		if inner == nil {
			inner = &report.Report{}
			report.MarkIncomplete(inner, fmt.Sprintf("disk images inside the targets' filesystems: %v", err))
		}
		reports = append(reports, inner)
	}
	merged := report.Merge(reports...)
	merged.Summary.Truncated = &report.Truncation{Limits: lim}
	report.Summarize(merged) // counts the cuts again, under this scan's limits
	return merged
}

// nestedReads records which images of one scan level read which guest
// files (by the names paths get in views), through their guestOpeners.
type nestedReads struct {
	mu sync.Mutex
	by map[string]map[string]int // path -> the images (Reader.Name) that hold it open, and how often
}

// add records that owner opened path, until the returned release is
// called (once): an image reads what it keeps open (a base, an extent),
// not what it opened to look at and closed (a VDI's parent candidates).
func (r *nestedReads) add(path, owner string) (release func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.by[path] == nil {
		r.by[path] = map[string]int{}
	}
	r.by[path][owner]++
	return sync.OnceFunc(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.by[path][owner]--; r.by[path][owner] <= 0 {
			delete(r.by[path], owner)
		}
	})
}

// readers returns the images that hold path open, in name order.
func (r *nestedReads) readers(path string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.by[path]))
	for owner := range r.by[path] {
		out = append(out, owner)
	}
	slices.Sort(out)
	return out
}

// readByNone drops the targets that another kept target reads, closing
// them: the later of two that read each other stays. A target whose
// opening failed is kept, with its error.
func readByNone(ts []*target) []*target {
	kept := map[string]bool{}
	for _, t := range ts {
		kept[t.path] = true
	}
	for changed := true; changed; {
		changed = false
		for _, t := range ts {
			o, ok := t.src.Opener.(*guestOpener)
			if !kept[t.path] || !ok {
				continue
			}
			for _, by := range o.reads.readers(t.path) {
				if by != t.path && kept[by] {
					kept[t.path], changed = false, true
					break
				}
			}
		}
	}
	var out []*target
	for _, t := range ts {
		if kept[t.path] {
			out = append(out, t)
		} else if t.img != nil {
			t.img.Close()
		}
	}
	return out
}

// guestOpener resolves the names a disk image stored in a guest
// filesystem writes (backing files, extents, parents) in that same
// filesystem: an absolute name from its root, a relative one from the
// naming file's directory, as QEMU would on that guest. Nothing resolves
// on the host. Paths it returns start with prefix (the view and
// partition), as the image's own name does.
type guestOpener struct {
	files  *guestfs.Files // nil: the partition has no filesystem to read
	prefix string
	log    interface{ Add(model.NameUse) }
	// owner is the image this opener serves, and reads records what it
	// opened for it.
	owner string
	reads *nestedReads
}

var _ model.Opener = (*guestOpener)(nil)

func (o *guestOpener) resolve(from, name string) (model.NameUse, string, error) {
	u := model.NameUse{From: from, Name: name}
	if name == "" || strings.ContainsRune(name, 0) {
		u.Err = &model.RefusedError{Name: name, Err: model.ErrBadName}
		return u, "", u.Err
	}
	dir := path.Dir(strings.TrimPrefix(from, o.prefix))
	p := path.Clean(name)
	if !path.IsAbs(p) {
		p = path.Join(dir, name)
	}
	u.Path = o.prefix + p
	return u, p, nil
}

func (o *guestOpener) add(u model.NameUse) {
	if o.log != nil {
		o.log.Add(u)
	}
}

// Resolve implements model.Opener.
func (o *guestOpener) Resolve(from, name string) (string, error) {
	f, p, err := o.Open(from, name)
	if f != nil {
		f.Close()
	}
	return p, err
}

// Open implements model.Opener: the guest file name names, read in place.
func (o *guestOpener) Open(from, name string) (model.File, string, error) {
	u, p, err := o.resolve(from, name)
	var gf fsys.File
	if err == nil {
		if o.files == nil {
			err = fmt.Errorf("%s: %w", u.Path, fs.ErrNotExist)
		} else if gf, err = o.files.Open(p); err != nil {
			err = fmt.Errorf("%s, in the guest filesystem that holds the image: %w", u.Path, err)
		}
		u.Err, u.Opened = err, err == nil
	}
	o.add(u)
	if err != nil {
		return nil, "", err
	}
	return guestFile{gf, path.Base(p), o.reads.add(u.Path, o.owner)}, u.Path, nil
}

// List implements model.Opener: the regular files directly in dir.
func (o *guestOpener) List(from, dir string) ([]string, error) {
	u, p, err := o.resolve(from, dir)
	o.add(u)
	if err != nil {
		return nil, err
	}
	if o.files == nil {
		return nil, fmt.Errorf("%s: %w", u.Path, fs.ErrNotExist)
	}
	ents, err := o.files.ReadDir(p)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.Type().IsRegular() {
			out = append(out, e.Name())
		}
	}
	slices.Sort(out)
	return out, nil
}

// guestFile is a guest file as a model.File.
type guestFile struct {
	fsys.File
	name    string
	release func() // ends the owner's hold on the file (nestedReads.add)
}

func (f guestFile) Close() error {
	f.release()
	return nil
}
func (f guestFile) Stat() (fs.FileInfo, error) { return model.NewFileInfo(f.name, f.Size()), nil }
