package model

import (
	"context"
	"slices"
)

// Files lists the host files that reading view v of im reads: the image,
// its backing chain, and every file v's extents lie in (VMDK extents,
// qcow2 data files). Whatever writes a view out (extract) must write over
// none of them.
func (im *Image) Files(ctx context.Context, v View) ([]string, error) {
	files := []string{im.Path}
	for _, b := range im.Backing {
		files = append(files, b.Path)
	}
	for e, err := range v.Disk.Extents(ctx) {
		if err != nil {
			return nil, err
		}
		if e.File != "" && !slices.Contains(files, e.File) {
			files = append(files, e.File)
		}
	}
	return files, nil
}
