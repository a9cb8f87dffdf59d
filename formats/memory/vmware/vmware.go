// Package vmware reads VMware memory: a raw .vmem file, laid out in guest
// physical order except where the snapshot/suspend file (.vmsn/.vmss) next
// to it remaps regions, and a .vmsn/.vmss that embeds the memory itself.
//
// The .vmss/.vmsn layout (as read by Volatility's vmware layer):
// {u32 magic, u32 version, u32 groupCount}, then groups {name[64], u64
// tagsOffset, u64 size}; the "memory" group's tags give regionsCount and,
// per region i, regionPPN[i] (guest page), regionPageNum[i] (page in the
// .vmem) and regionSize[i] (pages); a "Memory" tag may embed the memory.
package vmware

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/memory/memdisk"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Magics of .vmss/.vmsn files.
var magics = []uint32{0xbed2bed2, 0xbad1bad1, 0xbed0bed0, 0xbed3bed3}

const (
	pageSize   = 4096
	maxGroups  = 1024
	maxTags    = 1 << 20
	maxRegions = 1 << 16
	maxAddr    = int64(1) << 52
)

// Probe reports whether head is a .vmss/.vmsn file.
func Probe(head []byte, _ io.ReaderAt, _ int64) bool {
	if len(head) < 12 {
		return false
	}
	m := binary.LittleEndian.Uint32(head)
	for _, x := range magics {
		if m == x {
			return binary.LittleEndian.Uint32(head[8:]) <= maxGroups
		}
	}
	return false
}

// Region maps pages of the memory file to guest-physical pages.
type Region struct {
	Phys, FileOff, Len int64
}

// State is what a .vmss/.vmsn says about memory.
type State struct {
	Regions []Region
	// Embedded is the file offset of memory stored in the state file, -1
	// if none; EmbeddedLen its length.
	Embedded, EmbeddedLen int64
}

type tagKey struct {
	name string
	idx  [2]uint32
}

// ParseState reads the memory group of a .vmss/.vmsn.
func ParseState(ctx context.Context, name string, r io.ReaderAt, size int64) (*State, error) {
	le := binary.LittleEndian
	var h [12]byte
	if _, err := r.ReadAt(h[:], 0); err != nil {
		return nil, model.Wrapf(err, name, 0, "read VMware state header")
	}
	if !Probe(h[:], nil, 0) {
		return nil, model.Errorf(name, 0, "not a VMware .vmss/.vmsn file")
	}
	version := le.Uint32(h[4:])
	groups := int(le.Uint32(h[8:]))
	memTags := int64(-1)
	g := make([]byte, 80)
	for i := range groups {
		off := int64(12 + 80*i)
		if _, err := r.ReadAt(g, off); err != nil {
			return nil, model.Wrapf(err, name, off, "read group %d", i)
		}
		n := strings.TrimRight(string(g[:64]), "\x00")
		if n == "memory" {
			memTags = int64(le.Uint64(g[64:]))
		}
	}
	st := &State{Embedded: -1}
	if memTags < 0 {
		return st, nil
	}
	if memTags >= size {
		return nil, model.Errorf(name, memTags, "memory group past the end of the file")
	}
	ints := map[tagKey]int64{}
	off := memTags
	buf := make([]byte, 2+255+8+24)
	for n := 0; ; n++ {
		if n >= maxTags {
			return nil, model.Errorf(name, off, "more than %d tags", maxTags)
		}
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		k, _ := r.ReadAt(buf, off)
		if k < 2 {
			return nil, model.Errorf(name, off, "tag list truncated")
		}
		flags, nameLen := buf[0], int(buf[1])
		if flags == 0 && nameLen == 0 {
			break
		}
		nIdx := int(flags>>6) & 3
		hdr := 2 + nameLen + 4*nIdx
		if k < hdr {
			return nil, model.Errorf(name, off, "tag truncated")
		}
		key := tagKey{name: string(buf[2 : 2+nameLen])}
		for i := 0; i < nIdx && i < 2; i++ {
			key.idx[i] = le.Uint32(buf[2+nameLen+4*i:])
		}
		dl := int(flags & 0x3f)
		if dl == 62 || dl == 63 {
			w := 4
			if version != 0 {
				w = 8
			}
			if k < hdr+2*w {
				return nil, model.Errorf(name, off, "tag %q truncated", key.name)
			}
			var dataSize, memSize int64
			if w == 4 {
				dataSize, memSize = int64(le.Uint32(buf[hdr:])), int64(le.Uint32(buf[hdr+4:]))
			} else {
				dataSize, memSize = int64(le.Uint64(buf[hdr:])), int64(le.Uint64(buf[hdr+8:]))
			}
			data := off + int64(hdr+2*w+2)
			if dataSize < 0 || dataSize > size-data {
				return nil, model.Errorf(name, off, "tag %q of %d bytes runs past the end", key.name, dataSize)
			}
			if key.name == "Memory" {
				if dataSize != memSize {
					return nil, model.Wrapf(model.ErrUnsupported, name, off, "compressed embedded memory")
				}
				st.Embedded, st.EmbeddedLen = data, dataSize
			}
			off = data + dataSize
			continue
		}
		if dl > 8 {
			// Not an integer: skip it.
			off += int64(hdr + dl)
			continue
		}
		if k < hdr+dl {
			return nil, model.Errorf(name, off, "tag %q truncated", key.name)
		}
		var v uint64
		for i := dl - 1; i >= 0; i-- {
			v = v<<8 | uint64(buf[hdr+i])
		}
		if len(ints) < maxTags {
			ints[key] = int64(v)
		}
		off += int64(hdr + dl)
	}
	cnt := ints[tagKey{name: "regionsCount"}]
	if cnt < 0 || cnt > maxRegions {
		return nil, model.Errorf(name, memTags, "%d memory regions", cnt)
	}
	for i := range cnt {
		idx := [2]uint32{uint32(i)}
		ppn, okP := ints[tagKey{"regionPPN", idx}]
		pn, okN := ints[tagKey{"regionPageNum", idx}]
		sz, okS := ints[tagKey{"regionSize", idx}]
		if !okP || !okN || !okS || ppn < 0 || pn < 0 || sz <= 0 || ppn > maxAddr/pageSize || pn > maxAddr/pageSize || sz > maxAddr/pageSize {
			return nil, model.Errorf(name, memTags, "memory region %d incomplete or out of range", i)
		}
		st.Regions = append(st.Regions, Region{Phys: ppn * pageSize, FileOff: pn * pageSize, Len: sz * pageSize})
	}
	return st, nil
}

// regionDisk maps regions of a memory file (at base in r, n bytes long).
// A region past the end of the file is noted, and cut names the first
// (View.Incomplete: the memory was not read in full).
func regionDisk(name string, r io.ReaderAt, base, n int64, regions []Region) (d *memdisk.Disk, notes []string, cut error, err error) {
	if len(regions) == 0 {
		notes = append(notes, "no region table: memory file taken as guest-physical from 0")
		regions = []Region{{0, 0, n}}
	}
	sort.Slice(regions, func(i, j int) bool { return regions[i].Phys < regions[j].Phys })
	var pieces []memdisk.Piece
	var end int64
	for _, rg := range regions {
		l := rg.Len
		if rg.FileOff >= n {
			notes = append(notes, fmt.Sprintf("region at physical 0x%x lies past the end of the memory file", rg.Phys))
			if cut == nil {
				cut = model.Errorf(name, base+n, "truncated memory file: the region at physical 0x%x (%d bytes at memory offset 0x%x) lies past its end", rg.Phys, l, rg.FileOff)
			}
			continue
		}
		if rg.FileOff+l > n {
			notes = append(notes, fmt.Sprintf("region at physical 0x%x cut at the end of the memory file", rg.Phys))
			if cut == nil {
				cut = model.Errorf(name, base+n, "truncated memory file: the region at physical 0x%x (%d bytes at memory offset 0x%x) is cut at its end, %d bytes missing", rg.Phys, l, rg.FileOff, rg.FileOff+l-n)
			}
			l = n - rg.FileOff
		}
		if rg.Phys < end {
			return nil, nil, nil, model.Errorf(name, -1, "memory regions overlap at physical 0x%x", rg.Phys)
		}
		pieces = memdisk.SplitRun(pieces, rg.Phys, base+rg.FileOff, l)
		end = rg.Phys + l
	}
	d, err = memdisk.New(name, r, end, pieces, nil, nil)
	return d, notes, cut, err
}

// Open opens a .vmem (with its .vmss/.vmsn sibling when present) or a
// .vmss/.vmsn (its embedded memory, else its .vmem sibling).
func Open(ctx context.Context, path string, opts model.Options) (*model.Image, error) {
	return hostfile.OpenImage(ctx, "vmware", path, opts, New)
}

// New reads the VMware file that r holds, size bytes, named name: a .vmem
// or a .vmss/.vmsn, as name's ending says. The sibling files are found by
// name next to it through opts.Opener (none when it is nil), under the
// same policy as the files an image names: regular files only.
func New(ctx context.Context, r io.ReaderAt, size int64, name string, opts model.Options) (*model.Image, error) {
	siblings := opts.Opener
	if siblings == nil {
		siblings = hostfile.Sealed{}
	}
	path := name
	ext := strings.ToLower(filepath.Ext(path))
	stem := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	im := &model.Image{Path: path, Format: "vmware-memory"}
	var st *State
	var notes []string
	var sf io.ReaderAt  // the state file
	var sfOwn io.Closer // sf when a sibling opened here
	var sfSize int64
	statePath := ""
	if ext == ".vmss" || ext == ".vmsn" {
		sf, sfSize, statePath = r, size, path
	} else {
		for _, e := range []string{".vmss", ".vmsn"} {
			f, p, err := siblings.Open(path, stem+e)
			if err == nil {
				if fi, err := f.Stat(); err == nil {
					sf, sfOwn, sfSize, statePath = f, f, fi.Size(), p
					break
				}
				f.Close()
			}
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				notes = append(notes, fmt.Sprintf("%s not read: %v", stem+e, err))
			}
		}
	}
	closeState := func() {
		if sfOwn != nil {
			sfOwn.Close()
		}
	}
	// The state file's bytes besides its memory (device state, the
	// checkpoint) are a view of their own; before, nothing read them.
	var stateV *model.View
	if sf != nil {
		var err error
		st, err = ParseState(ctx, statePath, sf, sfSize)
		if err != nil {
			closeState()
			return nil, err
		}
		if sfOwn != nil {
			im.AddCloser(sfOwn)
		}
		v := stateView(im.Path, statePath, sf, sfSize, st.Embedded, st.EmbeddedLen)
		stateV = &v
		if st.Embedded >= 0 {
			d, n, cut, err := regionDisk(statePath, sf, st.Embedded, st.EmbeddedLen, st.Regions)
			if err != nil {
				im.Close()
				return nil, err
			}
			notes = append(notes, "memory embedded in "+filepath.Base(statePath))
			return withState(finish(im, d, append(notes, n...), cut), stateV), nil
		}
		notes = append(notes, "region table from "+filepath.Base(statePath))
	} else {
		notes = append(notes, "no .vmss/.vmsn next to the .vmem")
	}
	mf, memSize, memPath := r, size, path
	if statePath == path {
		f, p, err := siblings.Open(path, stem+".vmem")
		if errors.Is(err, fs.ErrNotExist) && (st == nil || len(st.Regions) == 0) {
			// A powered-off snapshot: its state file holds no memory and no
			// .vmem goes with it: only the state file to scan.
			im.Attrs = map[string]string{"memory": "none (snapshot of a powered-off VM)"}
			return withState(im, stateV), nil
		}
		if err != nil {
			im.Close()
			return nil, fmt.Errorf("vmware: memory file: %w", err)
		}
		fi, err := f.Stat()
		if err != nil {
			f.Close()
			im.Close()
			return nil, err
		}
		im.AddCloser(f)
		mf, memSize, memPath = f, fi.Size(), p
	}
	var regions []Region
	if st != nil {
		regions = st.Regions
	}
	d, n, cut, err := regionDisk(memPath, mf, 0, memSize, regions)
	if err != nil {
		im.Close()
		return nil, err
	}
	return withState(finish(im, d, append(notes, n...), cut), stateV), nil
}

// stateView is the state file's bytes (size of them, at statePath) but
// its embedded memory (skipLen bytes at skip; skip -1: none), at their
// own offsets: a view of the image at path.
func stateView(path, statePath string, r io.ReaderAt, size, skip, skipLen int64) model.View {
	var ext model.ExtentList
	add := func(lo, hi int64) {
		if hi > lo {
			ext = append(ext, model.Extent{Offset: lo, Length: hi - lo, Source: model.SourceData, File: statePath, FileOffset: lo, FileLength: hi - lo})
		}
	}
	if skip >= 0 {
		end := size // a length past the file (or overflowing) ends there
		if skipLen >= 0 && skip < size && skipLen < size-skip {
			end = skip + skipLen
		}
		add(0, min(skip, size))
		add(end, size)
	} else {
		add(0, size)
	}
	return model.View{ID: model.ViewID(path, model.KindMemory, "state"), Kind: model.KindMemory, Name: "state",
		Disk:  &model.FileDisk{R: r, Name: statePath, Len: size, Allocd: ext},
		Notes: []string{"the bytes of " + filepath.Base(statePath) + " besides its memory (device state, the checkpoint), scanned as they are; offsets are the file's"}}
}

// withState adds the state file's view, when there is one.
func withState(im *model.Image, v *model.View) *model.Image {
	if v != nil && len(v.Disk.(*model.FileDisk).Allocd) > 0 {
		im.Views = append(im.Views, *v)
	}
	return im
}

func finish(im *model.Image, d *memdisk.Disk, notes []string, cut error) *model.Image {
	im.VirtualSize = d.Size()
	im.Views = []model.View{{ID: model.ViewID(im.Path, model.KindMemory, ""), Kind: model.KindMemory, Name: "memory", Disk: d,
		Notes: append([]string{"offsets are guest-physical addresses"}, notes...), Incomplete: cut}}
	return im
}
