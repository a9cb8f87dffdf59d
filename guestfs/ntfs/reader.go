package ntfs

import (
	"bytes"
	"fmt"
	"io/fs"
	"strings"

	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

// This file makes *FS an fsys.Reader over the live records. Names match
// exactly, else without regard to case (as Windows opens them); "name:stream"
// opens an alternate data stream. Reparse points (NTFS symlinks and
// junctions) are not followed.

// lookup resolves p to a live record and the stream named after a ':' in
// its last component ("" for the file's data).
func (f *FS) lookup(p string) (int, string, error) {
	cur := recRoot
	parts := strings.Split(p, "/")
	for k, c := range parts {
		if c == "" || c == "." {
			continue
		}
		streamName := ""
		next := f.child(cur, c)
		if next < 0 && k == len(parts)-1 {
			if i := strings.IndexByte(c, ':'); i > 0 {
				next, streamName = f.child(cur, c[:i]), c[i+1:]
			}
		}
		if next < 0 {
			return 0, "", &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		cur = next
		if k == len(parts)-1 {
			return cur, streamName, nil
		}
	}
	return cur, "", nil
}

// child finds the live entry named name in directory dir.
func (f *FS) child(dir int, name string) int {
	if dir >= len(f.firstChild) || f.recs[dir].flags&recDir == 0 {
		return -1
	}
	folded := -1
	for c := f.firstChild[dir]; c >= 0; c = f.next[c] {
		r := &f.recs[c]
		if r.flags&recInUse == 0 {
			continue
		}
		if r.name == name {
			return int(c)
		}
		if folded < 0 && strings.EqualFold(r.name, name) {
			folded = int(c)
		}
	}
	for _, l := range f.links[int32(dir)] {
		if l.name == name {
			return int(l.rec)
		}
		if folded < 0 && strings.EqualFold(l.name, name) {
			folded = int(l.rec)
		}
	}
	return folded
}

// Open opens a file's data (or "path:stream", an alternate data stream).
// Resident data is read from its MFT record with the update sequence
// fixups applied; a compressed stream is decoded one compression unit
// at a time (LZNT1).
func (f *FS) Open(p string) (fsys.File, error) {
	i, sn, err := f.lookup(p)
	if err != nil {
		return nil, err
	}
	r := &f.recs[i]
	if r.flags&recDir != 0 && sn == "" {
		return nil, fmt.Errorf("ntfs: %s: not a regular file", p)
	}
	s := r.stream(sn)
	if s == nil {
		if sn != "" {
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		}
		return bytes.NewReader(nil), nil
	}
	if s.resident {
		b, err := f.residentValue(int64(i), s)
		if err != nil {
			return nil, fmt.Errorf("ntfs: %s: %s: %w", f.name, p, err)
		}
		return bytes.NewReader(b), nil
	}
	if s.compressed {
		c, err := f.newCompressedStream(s, s.runs)
		if err != nil {
			return nil, fmt.Errorf("ntfs: %s: %s: %w", f.name, p, err)
		}
		return c, nil
	}
	runs := f.entryRuns(nil, s.runs, s.zeroFrom(), false, nil)
	return fsys.NewRunFile(f.r, s.size, runs), nil
}

// residentValue reads record no again, fixes it up and returns the
// resident value of s.
func (f *FS) residentValue(no int64, s *stream) ([]byte, error) {
	buf, err := f.readRecordAt(f.mft, no*f.recordSize)
	if err != nil {
		return nil, fmt.Errorf("record %d: %w", no, err)
	}
	if s.valOff+s.valLen > len(buf) {
		return nil, fmt.Errorf("record %d: resident value at %d+%d: %w", no, s.valOff, s.valLen, errCorrupt)
	}
	return buf[s.valOff : s.valOff+s.valLen], nil
}

// ReadDir lists the live entries of directory p, without "." and "..".
func (f *FS) ReadDir(p string) ([]fs.DirEntry, error) {
	i, sn, err := f.lookup(p)
	if err != nil {
		return nil, err
	}
	if sn != "" || f.recs[i].flags&recDir == 0 {
		return nil, fmt.Errorf("ntfs: %s: not a directory", p)
	}
	var out []fs.DirEntry
	for c := f.firstChild[i]; c >= 0; c = f.next[c] {
		r := &f.recs[c]
		if r.flags&recInUse == 0 {
			continue
		}
		info := fsys.FileInfo{FileName: r.name, FileMode: 0o644}
		if r.flags&recDir != 0 {
			info.FileMode = fs.ModeDir | 0o755
		} else if s := r.stream(""); s != nil {
			info.FileSize = s.size
		}
		out = append(out, dirEntry(r.name, info))
	}
	for _, l := range f.links[int32(i)] {
		r := &f.recs[l.rec]
		info := fsys.FileInfo{FileName: l.name, FileMode: 0o644}
		if s := r.stream(""); s != nil {
			info.FileSize = s.size
		}
		out = append(out, dirEntry(l.name, info))
	}
	return out, nil
}

func dirEntry(name string, info fsys.FileInfo) fsys.DirEntry {
	return fsys.DirEntry{EntryName: name, EntryType: info.FileMode.Type(), Stat: func() (fs.FileInfo, error) { return info, nil }}
}

var (
	_ fsys.FS     = (*FS)(nil)
	_ fsys.Reader = (*FS)(nil)
)
