package ufs

import (
	"fmt"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs/fsys"
)

const (
	// maxRunsPerFile bounds one file's runs: a million runs is far beyond
	// any real file and keeps hostile block maps from eating memory.
	maxRunsPerFile = 1 << 20
)

// blockMapper collects one inode's runs under budgets.
type blockMapper struct {
	f       *FS
	in      *inode
	nblocks int64 // logical blocks the size covers
	out     []fsys.Run
	budget  *readBudget
	mapped  int64    // fragments mapped
	bufs    [][]byte // one indirect block buffer per level
}

// runs returns the runs of in's data (holes left out, contiguous blocks
// coalesced), appended to buf, reading its indirect blocks within budget.
// A short symlink and a snapshot file have none. On error the runs mapped
// so far come with it.
func (f *FS) runs(in *inode, buf []fsys.Run, budget *readBudget) ([]fsys.Run, error) {
	if f.inlineSymlink(in) || f.isSnapshot(in) || in.size == 0 {
		return buf, nil
	}
	bs := f.sb.bsize
	m := blockMapper{f: f, in: in, nblocks: (in.size + bs - 1) / bs, out: buf, budget: budget}
	for lbn := int64(0); lbn < min(numDirect, m.nblocks); lbn++ {
		if err := m.add(lbn, in.direct[lbn], m.blockLen(lbn)); err != nil {
			return m.out, err
		}
	}
	// Each indirect level covers nindir times the blocks of the one above.
	first, span := int64(numDirect), f.sb.nindir
	for level := 1; level <= numIndirect && first < m.nblocks; level++ {
		if err := m.indirectBlock(in.indir[level-1], level, first); err != nil {
			return m.out, err
		}
		first += span
		span *= f.sb.nindir
	}
	return m.out, nil
}

// blockLen is the size of logical block lbn: a whole block, but for a
// small file's last block, which holds only the fragments its size needs.
func (m *blockMapper) blockLen(lbn int64) int64 {
	bs, fs := m.f.sb.bsize, m.f.sb.fsize
	if lbn >= numDirect || lbn < m.nblocks-1 || m.in.size%bs == 0 {
		return bs
	}
	return (m.in.size%bs + fs - 1) / fs * fs
}

// indirectBlock maps the blocks that the indirect block at fragment addr,
// of level (1 single, 2 double, 3 triple), covers from logical block
// first.
func (m *blockMapper) indirectBlock(addr int64, level int, first int64) error {
	f := m.f
	if addr == 0 {
		return nil // a hole over everything it would cover
	}
	off, err := m.checkAddr(addr, f.sb.bsize)
	if err != nil {
		return err
	}
	if err := m.budget.spend(f, off, f.sb.bsize); err != nil {
		return fmt.Errorf("ufs2: inode %d: indirect blocks: %w", m.in.ino, err)
	}
	for len(m.bufs) < level {
		m.bufs = append(m.bufs, make([]byte, f.sb.bsize))
	}
	b := m.bufs[level-1]
	if err := f.read(b, off); err != nil {
		return fmt.Errorf("ufs2: inode %d: indirect block: %w", m.in.ino, err)
	}
	span := int64(1) // logical blocks each address covers
	for range level - 1 {
		span *= f.sb.nindir
	}
	for i := range f.sb.nindir {
		lbn := first + i*span
		if lbn >= m.nblocks {
			break
		}
		ptr := int64(le.Uint64(b[8*i:]))
		if level == 1 {
			err = m.add(lbn, ptr, f.sb.bsize)
		} else {
			err = m.indirectBlock(ptr, level-1, lbn)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// checkAddr checks that n bytes at fragment addr lie inside the
// filesystem and inside one block (a block is never split), and returns
// their byte offset.
func (m *blockMapper) checkAddr(addr, n int64) (int64, error) {
	sb := &m.f.sb
	frags := n / sb.fsize
	if addr < 0 || addr > sb.size-frags || addr%sb.frag+frags > sb.frag {
		return 0, model.Errorf(m.f.name, m.in.off, "ufs2: inode %d maps %d fragments at %d: outside the filesystem or across a block", m.in.ino, frags, addr)
	}
	return addr * sb.fsize, nil
}

// add maps logical block lbn to n bytes at fragment addr (0: a hole).
func (m *blockMapper) add(lbn, addr, n int64) error {
	if addr == 0 {
		return nil
	}
	f := m.f
	off, err := m.checkAddr(addr, n)
	if err != nil {
		return err
	}
	// No real file maps more fragments than the filesystem has; a
	// hostile map that reuses the same blocks stops here.
	if m.mapped += n / f.sb.fsize; m.mapped > f.sb.size {
		return model.Errorf(f.name, m.in.off, "ufs2: inode %d maps more fragments than the filesystem has", m.in.ino)
	}
	fileOff := lbn * f.sb.bsize
	if k := len(m.out) - 1; k >= 0 && m.out[k].Off+m.out[k].Len == off && m.out[k].FileOff+m.out[k].Len == fileOff {
		m.out[k].Len += n
		return nil
	}
	if len(m.out) >= maxRunsPerFile {
		return model.Errorf(f.name, m.in.off, "ufs2: inode %d has more than %d runs", m.in.ino, maxRunsPerFile)
	}
	m.out = append(m.out, fsys.Run{Off: off, Len: n, FileOff: fileOff})
	return nil
}
