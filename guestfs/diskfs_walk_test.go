package guestfs

import (
	"context"
	"fmt"
	"io"
	iofs "io/fs"
	"path"
	"strings"
	"testing"

	diskext4 "github.com/diskfs/go-diskfs/filesystem/ext4"
	diskiso "github.com/diskfs/go-diskfs/filesystem/iso9660"

	"github.com/imgaudit/imgaudit/guestfs/ext4"
	"github.com/imgaudit/imgaudit/guestfs/internal/diskfsio"
	"github.com/imgaudit/imgaudit/guestfs/iso9660"
)

// go-diskfs's ext4 walk is the reference for package ext4's: see
// TestDiskfsWalkMatchesOwnWalk.

// maxDiskfsDirSize keeps go-diskfs, which reads a directory whole into
// memory, away from absurd directories.
const maxDiskfsDirSize = 64 << 20

// diskfsExtWalk walks the tree with go-diskfs's ext4 reader and reports
// each entry with its inode number (StatT.Ino), which joins it to our block
// maps. It refuses directory cycles itself: go-diskfs does not.
func diskfsExtWalk(ctx context.Context, e *ext4.FS, sec io.ReaderAt, size int64, fn func(string, uint32, iofs.FileMode) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("go-diskfs ext4 panicked: %v", r)
		}
	}()
	fsys, err := diskext4.Read(diskfsio.ReadOnly(sec, size), size, 0, 512)
	if err != nil {
		return fmt.Errorf("go-diskfs ext4: %w", err)
	}
	if err := fn("/", 2, iofs.ModeDir); err != nil {
		return err
	}
	type frame struct {
		rel   string // go-diskfs wants paths relative to the root: "." or "etc/ssh"
		depth int
	}
	visited := map[uint32]bool{2: true}
	stack := []frame{{".", 0}}
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		fr := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		ents, err := fsys.ReadDir(fr.rel)
		if err != nil {
			return fmt.Errorf("go-diskfs ext4: read directory %q: %w", fr.rel, err)
		}
		var subdirs []frame
		for _, d := range ents {
			name := d.Name()
			if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
				continue
			}
			info, err := d.Info()
			if err != nil {
				return err
			}
			st, ok := info.Sys().(*diskext4.StatT)
			if !ok || st == nil || st.Ino == 0 {
				return fmt.Errorf("go-diskfs ext4: no inode number for %q", name)
			}
			rel := path.Join(fr.rel, name)
			mode := d.Type()
			if err := fn("/"+rel, st.Ino, mode); err != nil {
				return err
			}
			if mode.IsDir() && !visited[st.Ino] && fr.depth < 2048 {
				visited[st.Ino] = true
				in, err := e.Inode(st.Ino)
				if err != nil || in.Size > maxDiskfsDirSize {
					return fmt.Errorf("go-diskfs ext4: directory %q not read", rel)
				}
				subdirs = append(subdirs, frame{rel, fr.depth + 1})
			}
		}
		for i := len(subdirs) - 1; i >= 0; i-- {
			stack = append(stack, subdirs[i])
		}
	}
	return nil
}

// diskfsISOTree lists an ISO 9660 tree with go-diskfs, the reference for
// package iso9660: path -> [byte offset of the first extent, size, is
// directory].
func diskfsISOTree(t *testing.T, r io.ReaderAt, size int64) map[string][3]int64 {
	t.Helper()
	fsys, err := diskiso.Read(diskfsio.ReadOnly(r, size), size, 0, iso9660.Block)
	if err != nil {
		t.Fatalf("go-diskfs: %v", err)
	}
	out := map[string][3]int64{}
	var walk func(rel string)
	walk = func(rel string) {
		ents, err := fsys.ReadDir(rel)
		if err != nil {
			t.Logf("go-diskfs: %s: %v", rel, err)
			return
		}
		for _, d := range ents {
			info, err := d.Info()
			if err != nil {
				t.Fatalf("go-diskfs: %s: %v", d.Name(), err)
			}
			st := info.Sys().(*diskiso.StatT)
			p := path.Join(rel, d.Name())
			dir := int64(0)
			if d.IsDir() {
				dir = 1
				walk(p)
			}
			out["/"+p] = [3]int64{int64(st.Location) * iso9660.Block, info.Size(), dir}
		}
	}
	walk(".")
	return out
}
