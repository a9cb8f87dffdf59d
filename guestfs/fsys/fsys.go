// Package fsys is the one small interface that every guest filesystem
// package (guestfs/ext4, and the XFS, btrfs, NTFS, FAT and ISO 9660
// packages) gives package guestfs. guestfs then only detects and
// dispatches, and the scanner, rollback and provenance code never branch
// on the filesystem type.
//
// A filesystem package opens its filesystem on an io.ReaderAt whose byte 0
// is the filesystem's first byte (a partition or a logical volume), walks
// it to list paths with the byte runs that hold their data, and says
// whether a byte that no file covers is allocated or free.
package fsys

import (
	"context"
	"io"
	"io/fs"
	"strings"
)

// Location states, as the report shows them.
const (
	StateAllocated = "allocated"
	StateFree      = "free"
	StateUnknown   = "unknown"
	// StateDeletedRecord: the bytes belong to a deleted file whose record
	// is still intact (an NTFS MFT record without its in-use flag), so its
	// name is known although the space is free.
	StateDeletedRecord = "deleted-record"
)

// Run says that Len bytes at filesystem offset Off hold the file's bytes
// from FileOff on.
type Run struct {
	Off     int64 // byte offset from the filesystem's first byte
	Len     int64
	FileOff int64 // the file offset of the run's first byte
	// Unwritten marks preallocated space that reads as zeros: like the
	// slack past Size, it is reported free.
	Unwritten bool
	// Compressed marks stored bytes that are the file's data compressed
	// (btrfs, NTFS): FileOff is then the offset of the extent's first
	// decompressed byte, and offsets inside do not map one to one.
	Compressed bool
	// Codec names a compressed run's compression where the package knows
	// it, for the scanner's decoding: "zlib", "lzo", "zstd" (btrfs: each
	// run is one compressed extent), "lznt1" (NTFS: the runs of a stream
	// together, in compression units, which only the file reader decodes).
	Codec string
	// Inline marks data kept inside filesystem metadata: NTFS resident
	// $DATA in an MFT record, a btrfs inline extent in a tree leaf, ext4
	// inline data in an inode.
	Inline bool
}

// Entry is one directory, regular file or symlink that a walk visits.
type Entry struct {
	// Path is absolute and "/"-separated; the root is "/". It is "" for
	// an entry whose path would be longer than MaxPath bytes: the entry
	// is listed, its runs kept, without a path.
	Path string
	Mode fs.FileMode // the type bits matter: directory, regular, symlink
	Size int64       // the logical size; bytes of its runs past it are slack
	Runs []Run
	// Deleted marks an entry recovered from an intact record of a
	// deleted file: its runs are reported StateDeletedRecord.
	Deleted bool
	// ID identifies a regular file across its names (hard links), where
	// the filesystem has them: its inode number (ext4, XFS, UFS2), its
	// subvolume and inode (btrfs), its MFT record (NTFS). Zero where the
	// walk does not say.
	ID [2]uint64
	// Link marks a further name of the regular file whose entry with the
	// same ID carries the runs: it has no runs of its own. A walk gives
	// it after or before that entry, in directory order.
	Link bool
}

// FS is one opened filesystem. Implementations are safe for concurrent
// use once opened.
type FS interface {
	// Kind names the filesystem as the report shows it: "ext4", "xfs",
	// "btrfs", "ntfs", "vfat", "iso9660".
	Kind() string
	// Walk visits every directory, regular file and symlink, each
	// directory before its entries, and a file with several hard links
	// once with its runs, and under each other name as a Link entry (so
	// that a finding in it can name every path that reaches it: a key
	// hard-linked into a test directory is still the one in /etc). An error returned by fn stops the walk and is returned. Walks
	// bound their work (entries, depth, bytes of metadata read) and stop
	// when ctx is done. fn must not keep e.Runs after it returns: a walk
	// may reuse its array for the next entry. A walk that skipped what it
	// could not read returns a *PartialError.
	Walk(ctx context.Context, fn func(Entry) error) error
	// State says whether the byte at off, which no walked run covers, is
	// allocated (metadata, orphaned data) or free, or StateUnknown where
	// the filesystem cannot tell.
	State(off int64) string
}

// Reader is implemented by filesystems whose files can be read by path:
// rollback and package provenance read credentials files and package
// records through it.
type Reader interface {
	// Open opens a regular file by absolute path, following symlinks
	// inside the filesystem (never outside it).
	Open(path string) (File, error)
	// ReadDir lists a directory, without "." and "..".
	ReadDir(path string) ([]fs.DirEntry, error)
}

// CompressedRunReader is implemented by filesystems whose compressed
// runs only a file reader can decode, a stream's runs together (NTFS's
// compression units). It reads a file's bytes from the runs a walk gave
// for it: that is how the data of a deleted file, which no path opens, is
// decoded.
type CompressedRunReader interface {
	OpenCompressedRuns(runs []Run, size int64) (File, error)
}

// File is an opened regular file of a guest filesystem.
type File interface {
	io.ReaderAt
	Size() int64
}

// Driver probes for and opens one kind of filesystem.
type Driver struct {
	Name string
	// Probe reports whether head, the filesystem's first bytes (a little
	// over 64 KiB, enough for a superblock there, or fewer on a smaller
	// device), looks like this filesystem.
	Probe func(head []byte) bool
	// Open opens the filesystem on r, of size bytes. name ("p1", "disk",
	// "vg0/root") is for errors and notes. Notes say what is partial.
	Open func(ctx context.Context, r io.ReaderAt, size int64, name string) (fs FS, notes []string, err error)
}

// PartialError is what Walk returns when it visited every entry it could
// read but skipped parts it could not (an unreadable directory, a corrupt
// inode): the entries it gave are valid, and Notes say, briefly, what is
// missing. Any other error from Walk means the walk failed.
type PartialError struct {
	Notes []string
}

func (e *PartialError) Error() string {
	return "walk incomplete: " + strings.Join(e.Notes, "; ")
}
