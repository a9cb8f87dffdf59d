// Package stores recognises where VM images live – a libvirt tree, a
// Proxmox storage, a VMware folder – and groups the files into VMs: their
// top-level disks, memory files, backups, snapshots and configuration, so
// that a scan can be reported per VM and every backing or parent file is
// read once, through the chain of the disks above it.
//
// Discovery only reads small things: directory entries, configuration
// files (domain/snapshot XML, .vmx, .vmsd, qemu-server .conf, all size
// capped) and image headers (qcow2 backing name, VMDK descriptor). It
// never writes.
package stores

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/imgaudit/imgaudit/formats/hostfile"
	"github.com/imgaudit/imgaudit/formats/model"
)

// Store is what Discover found under a directory.
type Store struct {
	Kind  string // "libvirt", "proxmox", "vmware", "plain"
	Root  string // absolute
	VMs   []VM
	Loose []string // files matching no layout: still scanned as plain targets
	// Backing lists the files reached only as a backing/parent of a
	// reported disk (each once, however many children share it); they are
	// not targets of their own.
	Backing []string
	// Notes are facts about the discovery (a file skipped, an XML that did
	// not parse); they never contain file contents.
	Notes []string
}

// VM is one virtual machine of a store.
type VM struct {
	Name      string
	ID        string         // libvirt UUID, Proxmox VMID, VMware uuid.bios (or the name)
	Disks     []string       // top-level disk images (overlays), in order
	Backing   []string       // backing/parent files of Disks, nearest first, each once
	Memory    []MemoryFile   // saved RAM: managed save, snapshot memory, .vmem/.vmss
	Backups   []string       // vzdump archives, oldest first (see BackupTime)
	Snapshots []SnapshotInfo // in creation order
	Config    string         // .vmx / domain XML / qemu-server conf
	// Metadata lists the other files discovery read for this VM (libvirt
	// snapshot XMLs, a VMware .vmsd): like Config, they are scanned as
	// plain data (a snapshot XML holds the whole domain XML, VNC
	// passwords included).
	Metadata []string
}

// MemoryFile is a file holding saved guest RAM.
type MemoryFile struct {
	Path     string
	Snapshot string    // "" = managed save / suspend / current
	Created  time.Time // snapshot time, else the file's modification time
}

// SnapshotInfo is one snapshot of a VM.
type SnapshotInfo struct {
	Name        string
	Created     time.Time
	Parent      string
	Disks       []string // files holding the disk state at the snapshot (see the layouts)
	Memory      string   // memory/state file of the snapshot, "" if none
	Description string
}

// Bounds on what discovery walks and reads.
const (
	maxFiles      = 100000
	maxDepth      = 8
	maxConfigSize = 4 << 20
)

// Discover walks dir (at most maxDepth levels, maxFiles files, regular
// files only, symlinks not followed) and groups what it finds.
func Discover(ctx context.Context, dir string) (*Store, error) {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return nil, fmt.Errorf("stores: %w", err)
	}
	if root, err = filepath.Abs(root); err != nil {
		return nil, fmt.Errorf("stores: %w", err)
	}
	st, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("stores: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("stores: %s is not a directory", dir)
	}
	names, err := hostfile.NewRoots(root)
	if err != nil {
		return nil, fmt.Errorf("stores: %w", err)
	}
	s := &scan{root: root, names: names, claimed: map[string]bool{}, links: map[string]links{}}
	if err := s.walk(ctx); err != nil {
		return nil, err
	}
	s.readImageLinks(ctx)
	store := &Store{Root: root}
	switch {
	case s.any(func(p string) bool { return strings.EqualFold(filepath.Ext(p), ".vmx") }):
		store.Kind = "vmware"
		s.vmware(ctx, store)
	case s.isProxmox():
		store.Kind = "proxmox"
		s.proxmox(ctx, store)
	case s.isLibvirt():
		store.Kind = "libvirt"
		s.libvirt(ctx, store)
	default:
		store.Kind = "plain"
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.finish(store)
	return store, nil
}

// scan is the state of one discovery.
type scan struct {
	root string
	// names resolves the names image headers write: regular files inside
	// the tree only.
	names   model.Opener
	files   []string         // every regular file, sorted
	links   map[string]links // image headers, by path
	parents map[string]string
	// children counts, for each file, the images naming it as backing,
	// parent or extent: such files are never top-level.
	children map[string]int
	claimed  map[string]bool
	notes    []string
}

func (s *scan) note(format string, args ...any) {
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

func (s *scan) walk(ctx context.Context) error {
	err := filepath.WalkDir(s.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			s.note("%s: %v", p, err)
			if d != nil && d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(s.root, p)
		if d.IsDir() {
			if rel != "." && strings.Count(rel, string(filepath.Separator)) >= maxDepth {
				s.note("%s: deeper than %d levels, not searched", p, maxDepth)
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if len(s.files) >= maxFiles {
			s.note("more than %d files; the rest are not searched", maxFiles)
			return fs.SkipAll
		}
		s.files = append(s.files, p)
		return nil
	})
	if err != nil {
		return fmt.Errorf("stores: walk %s: %w", s.root, err)
	}
	sort.Strings(s.files)
	return nil
}

// readImageLinks reads the header of every file that may be a disk image
// and records which files are backing, parent or extent of another.
func (s *scan) readImageLinks(ctx context.Context) {
	s.parents = map[string]string{}
	s.children = map[string]int{}
	for _, p := range s.files {
		if ctx.Err() != nil {
			return
		}
		if isConfigName(p) {
			continue
		}
		l := readLinks(p)
		if !l.isImage {
			continue
		}
		s.links[p] = l
		if b, ok := resolveLinked(s.names, p, l.backing); ok && b != p {
			s.parents[p] = b
			s.children[b]++
		}
		for _, e := range l.extents {
			if x, ok := resolveLinked(s.names, p, e); ok && x != p {
				s.children[x]++
				s.claimed[x] = true // part of the disk p, read through it
			}
		}
	}
}

// isConfigName says whether a file is a known text configuration file,
// never an image.
func isConfigName(p string) bool {
	switch strings.ToLower(filepath.Ext(p)) {
	case ".xml", ".vmx", ".vmsd", ".vmxf", ".conf", ".log", ".nvram":
		return true
	}
	return false
}

// topOf reports whether p is a top-level image: no other image names it as
// backing, parent or extent.
func (s *scan) topOf(p string) bool { return s.children[p] == 0 }

// chain returns the backing files of p, nearest first (cycle-safe).
func (s *scan) chain(p string) []string {
	var out []string
	seen := map[string]bool{p: true}
	for b, ok := s.parents[p]; ok && !seen[b]; b, ok = s.parents[b] {
		seen[b] = true
		out = append(out, b)
	}
	return out
}

// tops returns the top-level images above p (p itself if it is one).
func (s *scan) tops(p string) []string {
	if s.topOf(p) {
		return []string{p}
	}
	var out []string
	for _, f := range s.files {
		if f != p && s.topOf(f) && slices.Contains(s.chain(f), p) {
			out = append(out, f)
		}
	}
	return out
}

// addDisk adds a disk to a VM, replacing a stale name of a backing file by
// the one overlay above it (a domain XML written before an external
// snapshot), and claims the disk and its chain.
func (s *scan) addDisk(vm *VM, p string) {
	if t := s.tops(p); len(t) == 1 {
		p = t[0]
	}
	if slices.Contains(vm.Disks, p) {
		return
	}
	vm.Disks = append(vm.Disks, p)
	s.claimed[p] = true
	for _, b := range s.chain(p) {
		if !slices.Contains(vm.Backing, b) {
			vm.Backing = append(vm.Backing, b)
		}
		s.claimed[b] = true
	}
}

func (s *scan) any(f func(string) bool) bool { return slices.ContainsFunc(s.files, f) }

// readConfig reads a small text file, refusing large ones and anything
// but a regular file.
func (s *scan) readConfig(p string) ([]byte, bool) {
	f, err := hostfile.OpenRegular(p)
	if err != nil {
		s.note("%s: %v", p, err)
		return nil, false
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		s.note("%s: %v", p, err)
		return nil, false
	}
	if st.Size() > maxConfigSize {
		s.note("%s: %d bytes, larger than the %d-byte limit for configuration files; ignored", p, st.Size(), maxConfigSize)
		return nil, false
	}
	b, err := io.ReadAll(io.LimitReader(f, maxConfigSize+1))
	if err != nil {
		s.note("%s: %v", p, err)
		return nil, false
	}
	if len(b) > maxConfigSize {
		s.note("%s: grew past the %d-byte limit for configuration files while read; ignored", p, maxConfigSize)
		return nil, false
	}
	return b, true
}

// finish sorts out what nobody claimed: top-level images become VMs of
// their own (grouped by name), everything else is Loose; backing files of
// claimed disks go to Backing.
func (s *scan) finish(store *Store) {
	byName := map[string]int{}
	for i, vm := range store.VMs {
		byName[vm.Name] = i
		for _, b := range vm.Backing {
			if !slices.Contains(store.Backing, b) {
				store.Backing = append(store.Backing, b)
			}
		}
	}
	for _, p := range s.files {
		if s.claimed[p] {
			continue
		}
		_, isImage := s.links[p]
		switch {
		case !isImage:
			store.Loose = append(store.Loose, p)
			s.claimed[p] = true
		case s.topOf(p) && len(s.chain(p)) > 0:
			// An overlay no configuration names: a VM of its own, grouped
			// with other disks of the same name stem.
			name := imageStem(p)
			i, ok := byName[name]
			if !ok {
				store.VMs = append(store.VMs, VM{Name: name, ID: name})
				i = len(store.VMs) - 1
				byName[name] = i
			}
			s.addDisk(&store.VMs[i], p)
			for _, b := range store.VMs[i].Backing {
				if !slices.Contains(store.Backing, b) {
					store.Backing = append(store.Backing, b)
				}
			}
		}
	}
	// Images not yet claimed are neither overlays nor reached as backing:
	// plain targets, unless an overlay's chain reaches them.
	for _, p := range s.files {
		if !s.claimed[p] {
			store.Loose = append(store.Loose, p)
		}
	}
	sort.Strings(store.Loose)
	store.Notes = append(store.Notes, s.notes...)
}

// imageStem is a file name without its extensions and disk-number suffix
// ("web01-disk1.qcow2" → "web01").
func imageStem(p string) string {
	b := filepath.Base(p)
	if i := strings.IndexByte(b, '.'); i > 0 {
		b = b[:i]
	}
	for _, suf := range []string{"-disk", "_disk"} {
		if i := strings.LastIndex(b, suf); i > 0 && strings.Trim(b[i+len(suf):], "0123456789") == "" {
			b = b[:i]
		}
	}
	return b
}

// under maps a path named in a configuration file (often absolute, from
// the host the store came from) to a discovered file: the path itself when
// it is inside the root, else the longest matching path suffix, else a
// unique base name.
func (s *scan) under(name, relDir string) (string, bool) {
	if name == "" {
		return "", false
	}
	if !filepath.IsAbs(name) {
		name = filepath.Join(relDir, name)
	}
	name = filepath.Clean(name)
	if slices.Contains(s.files, name) {
		return name, true
	}
	parts := strings.Split(name, string(filepath.Separator))
	for k := 1; k < len(parts); k++ {
		suffix := string(filepath.Separator) + filepath.Join(parts[k:]...)
		var hits []string
		for _, f := range s.files {
			if strings.HasSuffix(f, suffix) {
				hits = append(hits, f)
			}
		}
		if len(hits) == 1 {
			return hits[0], true
		}
		if len(hits) > 1 {
			return "", false
		}
	}
	return "", false
}

func mtime(p string) time.Time {
	st, err := os.Stat(p)
	if err != nil {
		return time.Time{}
	}
	return st.ModTime().UTC()
}
