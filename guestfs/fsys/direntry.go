package fsys

import (
	"io/fs"
	"time"
)

// DirEntry is an fs.DirEntry that filesystem packages return from ReadDir.
type DirEntry struct {
	EntryName string
	EntryType fs.FileMode // type bits only
	// Stat, when set, gives Info (it reads the inode); without it Info
	// reports the name and type with size 0.
	Stat func() (fs.FileInfo, error)
}

func (d DirEntry) Name() string      { return d.EntryName }
func (d DirEntry) IsDir() bool       { return d.EntryType.IsDir() }
func (d DirEntry) Type() fs.FileMode { return d.EntryType.Type() }

func (d DirEntry) Info() (fs.FileInfo, error) {
	if d.Stat != nil {
		return d.Stat()
	}
	return FileInfo{FileName: d.EntryName, FileMode: d.EntryType}, nil
}

// FileInfo is an fs.FileInfo of a guest file. Guest times are not kept:
// ModTime is the zero time.
type FileInfo struct {
	FileName string
	FileSize int64
	FileMode fs.FileMode
}

func (i FileInfo) Name() string       { return i.FileName }
func (i FileInfo) Size() int64        { return i.FileSize }
func (i FileInfo) Mode() fs.FileMode  { return i.FileMode }
func (i FileInfo) ModTime() time.Time { return time.Time{} }
func (i FileInfo) IsDir() bool        { return i.FileMode.IsDir() }
func (i FileInfo) Sys() any           { return nil }
