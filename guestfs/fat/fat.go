// Package fat reads FAT12, FAT16 and FAT32 filesystems for package guestfs:
// the paths of files and directories with the clusters that hold them, and
// whether a cluster is allocated in the FAT.
package fat

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// FAT is read by a small parser of our own: go-diskfs's fat32 package gives a
// file tree but not the cluster chains behind it, and has no FAT12/16 reader
// with locations. We read the first FAT copy, follow each file's chain and
// index its clusters.

const (
	maxFATBytes   = 64 << 20 // a FAT32 of 16M clusters
	maxFATDirSize = 16 << 20
)

// FS is an opened FAT filesystem. It is safe for concurrent use.
type FS struct {
	r           io.ReaderAt
	size        int64
	bps         int64 // bytes per sector
	clusterSize int64
	fatType     int // 12, 16, 32
	fatOff      int64
	rootDirOff  int64 // FAT12/16 fixed root directory
	rootDirSize int64
	rootCluster uint32 // FAT32
	dataOff     int64  // byte offset of cluster 2
	clusters    uint32 // data clusters (numbered 2..clusters+1)
	fat         []byte
}

// Open reads the boot sector and the first FAT of the filesystem in
// r[0:size).
func Open(r io.ReaderAt, size int64) (*FS, error) {
	b := make([]byte, 512)
	if err := fsys.ReadFull(r, b, 0); err != nil {
		return nil, err
	}
	le := binary.LittleEndian
	f := &FS{r: r, size: size}
	f.bps = int64(le.Uint16(b[11:]))
	spc := int64(b[13])
	rsvd := int64(le.Uint16(b[14:]))
	nfats := int64(b[16])
	rootEnt := int64(le.Uint16(b[17:]))
	tot := int64(le.Uint16(b[19:]))
	if tot == 0 {
		tot = int64(le.Uint32(b[32:]))
	}
	fatSz := int64(le.Uint16(b[22:]))
	if fatSz == 0 {
		fatSz = int64(le.Uint32(b[36:]))
	}
	if f.bps < 512 || f.bps > 4096 || f.bps&(f.bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 || rsvd == 0 || nfats == 0 || fatSz == 0 {
		return nil, fmt.Errorf("vfat: bad BPB")
	}
	f.clusterSize = f.bps * spc
	rootSecs := (rootEnt*32 + f.bps - 1) / f.bps
	firstData := rsvd + nfats*fatSz + rootSecs
	if tot*f.bps > size || firstData >= tot {
		return nil, fmt.Errorf("vfat: %d sectors do not fit the %d-byte partition", tot, size)
	}
	f.clusters = uint32((tot - firstData) / spc)
	switch {
	case f.clusters < 4085:
		f.fatType = 12
	case f.clusters < 65525:
		f.fatType = 16
	default:
		f.fatType = 32
		f.rootCluster = le.Uint32(b[44:])
	}
	f.fatOff = rsvd * f.bps
	f.rootDirOff = (rsvd + nfats*fatSz) * f.bps
	f.rootDirSize = rootSecs * f.bps
	f.dataOff = firstData * f.bps
	need := (int64(f.clusters) + 2) * int64(f.fatType) / 8
	if need+2 > fatSz*f.bps {
		return nil, fmt.Errorf("vfat: FAT of %d bytes too small for %d clusters", fatSz*f.bps, f.clusters)
	}
	if need > maxFATBytes {
		return nil, fmt.Errorf("vfat: FAT of %d bytes: %w", need, errTooBig)
	}
	f.fat = make([]byte, need+2)
	if err := fsys.ReadFull(r, f.fat, f.fatOff); err != nil {
		return nil, fmt.Errorf("vfat: read FAT: %w", err)
	}
	return f, nil
}

var errTooBig = fmt.Errorf("too big")

// next returns the FAT entry of cluster c.
func (f *FS) next(c uint32) uint32 {
	le := binary.LittleEndian
	switch f.fatType {
	case 12:
		o := int(c) * 3 / 2
		v := uint32(le.Uint16(f.fat[o:]))
		if c&1 != 0 {
			return v >> 4
		}
		return v & 0xFFF
	case 16:
		return uint32(le.Uint16(f.fat[2*c:]))
	}
	return le.Uint32(f.fat[4*c:]) & 0x0FFFFFFF
}

func (f *FS) valid(c uint32) bool { return c >= 2 && c < f.clusters+2 }

// chain follows a cluster chain, bounded by the cluster count (so a cycle
// ends it), by maxLen and by the walk's budget of steps, and returns its
// clusters. cut says that the budget ran out before the chain ended.
func (f *FS) chain(start uint32, maxLen int64, budget *int64) (out []uint32, cut bool) {
	for c := start; f.valid(c) && int64(len(out)) < maxLen && len(out) <= int(f.clusters); c = f.next(c) {
		if *budget <= 0 {
			return out, true
		}
		*budget--
		out = append(out, c)
	}
	return out, false
}

// chainBudget is the number of chain steps one walk may take. In a
// consistent FAT each cluster is on one chain at most, so a walk follows
// each once: the budget is the cluster count twice over, plus room for the
// odd cross-link fsck would repair. A hostile FAT whose directory entries
// all name one long chain (a thousand entries on a chain of 100,000
// clusters took a second, and a 16 MiB directory holds half a million)
// stops here.
func (f *FS) chainBudget() int64 { return 2*int64(f.clusters) + 1<<16 }

func (f *FS) clusterOff(c uint32) int64 { return f.dataOff + int64(c-2)*f.clusterSize }

type fatEntry struct {
	name    string
	dir     bool
	cluster uint32
	size    int64
}

// parseFATDir parses the entries of a directory held in raw bytes.
func parseFATDir(b []byte) []fatEntry {
	var out []fatEntry
	var lfn []uint16
	var lfnSum byte
	for i := 0; i+32 <= len(b); i += 32 {
		e := b[i : i+32]
		if e[0] == 0 {
			break
		}
		if e[0] == 0xE5 {
			lfn = nil
			continue
		}
		attr := e[11]
		if attr&0x3F == 0x0F { // long name part
			ord := int(e[0] & 0x1F)
			if e[0]&0x40 != 0 {
				lfn = make([]uint16, ord*13)
				lfnSum = e[13]
			}
			if ord == 0 || ord*13 > len(lfn) || e[13] != lfnSum {
				lfn = nil
				continue
			}
			pos := (ord - 1) * 13
			for j, o := range []int{1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30} {
				lfn[pos+j] = binary.LittleEndian.Uint16(e[o:])
			}
			continue
		}
		if attr&0x08 != 0 { // volume label
			lfn = nil
			continue
		}
		name := ""
		if lfn != nil && shortSum(e[:11]) == lfnSum {
			n := len(lfn)
			for j, c := range lfn {
				if c == 0 {
					n = j
					break
				}
			}
			name = string(utf16.Decode(lfn[:n]))
		}
		lfn = nil
		if name == "" {
			name = shortName(e)
		}
		le := binary.LittleEndian
		out = append(out, fatEntry{
			name:    name,
			dir:     attr&0x10 != 0,
			cluster: uint32(le.Uint16(e[20:]))<<16 | uint32(le.Uint16(e[26:])),
			size:    int64(le.Uint32(e[28:])),
		})
	}
	return out
}

func shortSum(n []byte) byte {
	var s byte
	for _, c := range n {
		s = (s>>1 | s<<7) + c
	}
	return s
}

func shortName(e []byte) string {
	base := strings.TrimRight(string(e[0:8]), " ")
	ext := strings.TrimRight(string(e[8:11]), " ")
	if e[0] == 0x05 {
		base = "\xe5" + base[1:]
	}
	if e[12]&0x08 != 0 {
		base = strings.ToLower(base)
	}
	if e[12]&0x10 != 0 {
		ext = strings.ToLower(ext)
	}
	if ext != "" {
		return base + "." + ext
	}
	return base
}

// Walk visits every directory and file with the runs of its cluster
// chain. Deleted entries (0xE5) are skipped: their clusters are free in the
// FAT, which is what State reports.
func (f *FS) Walk(ctx context.Context, fn func(fsys.Entry) error) error {
	type dir struct {
		path  string
		clust uint32 // 0: the FAT12/16 fixed root
		depth int
	}
	var notes []string
	visited := map[uint32]bool{}
	budget := f.size // directory bytes read, at most the filesystem's size
	steps := f.chainBudget()
	unmapped := 0 // entries whose chains the step budget cut
	// The root directory: a fixed region on FAT12/16, a chain on FAT32.
	stack := []dir{{"/", f.rootCluster, 0}}
	if f.fatType != 32 {
		stack[0].clust = 0
	}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		var raw []byte
		if d.clust == 0 {
			root := fsys.Entry{Path: "/", Mode: fs.ModeDir | 0o755, Size: f.rootDirSize}
			if f.rootDirSize > 0 {
				root.Runs = []fsys.Run{{Off: f.rootDirOff, Len: f.rootDirSize}}
			}
			if err := fn(root); err != nil {
				return err
			}
			raw = make([]byte, f.rootDirSize)
			if err := fsys.ReadFull(f.r, raw, f.rootDirOff); err != nil {
				return fmt.Errorf("vfat: root directory at offset %d: %w", f.rootDirOff, err)
			}
		} else {
			if visited[d.clust] {
				continue
			}
			visited[d.clust] = true
			ch, cut := f.chain(d.clust, maxFATDirSize/f.clusterSize, &steps)
			if cut {
				unmapped++
			}
			dirBytes := int64(len(ch)) * f.clusterSize
			if err := fn(fsys.Entry{Path: d.path, Mode: fs.ModeDir | 0o755, Size: dirBytes, Runs: f.runs(ch)}); err != nil {
				return err
			}
			if budget < dirBytes {
				notes = append(notes, "directory bytes exceed the partition; walk stopped")
				break
			}
			budget -= dirBytes
			raw = make([]byte, 0, dirBytes)
			buf := make([]byte, f.clusterSize)
			for _, c := range ch {
				if err := fsys.ReadFull(f.r, buf, f.clusterOff(c)); err != nil {
					return fmt.Errorf("vfat: directory %q at offset %d: %w", d.path, f.clusterOff(c), err)
				}
				raw = append(raw, buf...)
			}
		}
		for _, e := range parseFATDir(raw) {
			if !fsys.ValidName(e.name) {
				continue
			}
			p := fsys.Join(d.path, e.name)
			if e.dir {
				if f.valid(e.cluster) && d.depth <= maxDepth {
					stack = append(stack, dir{p, e.cluster, d.depth + 1})
				}
				continue
			}
			ent := fsys.Entry{Path: p, Mode: 0o644, Size: e.size}
			if e.size > 0 && f.valid(e.cluster) {
				ch, cut := f.chain(e.cluster, (e.size+f.clusterSize-1)/f.clusterSize+1, &steps)
				if cut {
					unmapped++
				}
				ent.Runs = f.runs(ch)
			}
			if err := fn(ent); err != nil {
				return err
			}
		}
	}
	if unmapped > 0 {
		notes = append(notes, fmt.Sprintf("vfat: cross-linked cluster chains: the walk's %d chain steps (twice the filesystem's %d clusters) ran out, and %d chains were cut or not followed",
			f.chainBudget(), f.clusters, unmapped))
	}
	if len(notes) > 0 {
		return &fsys.PartialError{Notes: notes}
	}
	return nil
}

// maxDepth bounds directory nesting.
const maxDepth = 256

// Kind is "vfat".
func (f *FS) Kind() string { return "vfat" }

// State: the boot sector, FATs and fixed root directory are allocated; a
// cluster is free when its FAT entry is 0.
func (f *FS) State(off int64) string {
	if off < 0 {
		return fsys.StateUnknown
	}
	if off < f.dataOff {
		return fsys.StateAllocated // boot sector, FATs, fixed root directory
	}
	c := uint32((off-f.dataOff)/f.clusterSize) + 2
	if !f.valid(c) {
		return fsys.StateFree // past the last cluster
	}
	if f.next(c) == 0 {
		return fsys.StateFree
	}
	return fsys.StateAllocated
}

// runs turns a chain into runs of consecutive clusters.
func (f *FS) runs(ch []uint32) []fsys.Run {
	var out []fsys.Run
	var fileOff int64
	for i := 0; i < len(ch); {
		j := i + 1
		for j < len(ch) && ch[j] == ch[j-1]+1 {
			j++
		}
		n := int64(j-i) * f.clusterSize
		out = append(out, fsys.Run{Off: f.clusterOff(ch[i]), Len: n, FileOff: fileOff})
		fileOff += n
		i = j
	}
	return out
}

// Probe reports a FAT boot sector: signature, a jump, and a sane BPB.
func Probe(b []byte) bool {
	if len(b) < 512 || binary.LittleEndian.Uint16(b[510:]) != 0xAA55 {
		return false
	}
	if b[0] != 0xEB && b[0] != 0xE9 {
		return false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	spc := b[13]
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || spc == 0 || spc&(spc-1) != 0 {
		return false
	}
	if binary.LittleEndian.Uint16(b[14:]) == 0 || b[16] == 0 {
		return false // no reserved sectors or no FAT
	}
	return bytes.HasPrefix(b[54:], []byte("FAT")) || bytes.HasPrefix(b[82:], []byte("FAT32")) ||
		binary.LittleEndian.Uint16(b[22:]) != 0 || binary.LittleEndian.Uint32(b[36:]) != 0
}

// Driver is the fsys driver of FAT12/16/32.
func Driver() fsys.Driver {
	return fsys.Driver{
		Name:  "vfat",
		Probe: Probe,
		Open: func(_ context.Context, r io.ReaderAt, size int64, _ string) (fsys.FS, []string, error) {
			f, err := Open(r, size)
			if err != nil {
				return nil, nil, err
			}
			return f, nil, nil
		},
	}
}
