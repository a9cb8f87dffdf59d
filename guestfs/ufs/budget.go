package ufs

import "github.com/imgaudit/imgaudit/formats/model"

// readBudget bounds the bytes of metadata (indirect blocks, directory
// blocks) that one walk or lookup reads: a real filesystem's are read
// about once, so no more than the device holds, twice over (a
// directory's indirect blocks are read for its runs and for its entries).
// Hostile block maps that point many times at the same blocks stop here.
// It belongs to one walk or lookup: FS itself holds no mutable state.
type readBudget struct {
	left int64
}

func (f *FS) newReadBudget() *readBudget { return &readBudget{left: 2 * f.size} }

// spend takes n bytes read at off from the budget.
func (b *readBudget) spend(f *FS, off, n int64) error {
	if n > b.left {
		return model.Errorf(f.name, off, "ufs2: more than %d bytes of metadata read: stopped", 2*f.size)
	}
	b.left -= n
	return nil
}
