package ext4

import (
	"encoding/binary"
	"fmt"
)

// Mtime is the low 32 bits of regular file p's modification time in
// seconds since 1970 (i_mtime), as CPython's .pyc headers record it.
func (f *FS) Mtime(p string) (uint32, error) {
	in, err := f.regularInode(p)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint32(in.raw[0x10:]), nil
}

// Readlink returns the target of symlink p (the last component is not
// followed; the directories above it are).
func (f *FS) Readlink(p string) (string, error) {
	ino, err := f.LookupNoFollow(p)
	if err != nil {
		return "", err
	}
	in, err := f.Inode(ino)
	if err != nil {
		return "", err
	}
	if in.Mode&0xF000 != 0xA000 {
		return "", fmt.Errorf("ext4: %s: not a symlink", p)
	}
	b, err := f.readAll(in, 4096)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// ReadInodeFile reads regular file inode ino (found in a directory
// listing) of at most limit bytes, without resolving its path again.
func (f *FS) ReadInodeFile(ino uint32, limit int64) ([]byte, error) {
	in, err := f.Inode(ino)
	if err != nil {
		return nil, err
	}
	if in.Mode&0xF000 != 0x8000 {
		return nil, fmt.Errorf("ext4: inode %d: not a regular file", ino)
	}
	return f.readAll(in, limit)
}
