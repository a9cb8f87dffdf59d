package scanner

import (
	"context"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
)

// Describe opens the image at path and says what `imgaudit info` shows of
// it: format, backing chain, views with their allocated bytes, and the
// non-zero bytes that no table references. It reads allocation maps, not
// the views' data. The error is formats.Open's, or the context's; the
// ImageInfo is filled as far as it got.
func Describe(ctx context.Context, path string, opts model.Options) (report.ImageInfo, error) {
	ii := report.ImageInfo{Path: path, Backing: []report.Backing{}, Views: []report.InfoView{}, Errors: []string{}}
	im, err := formats.Open(ctx, path, opts)
	if err != nil {
		return ii, err
	}
	defer im.Close()
	ii.Format, ii.VirtualSize, ii.Attrs = im.Format, im.VirtualSize, im.Attrs
	ii.Backing = append(ii.Backing, reportBacking(im)...)
	ii.Errors = append(ii.Errors, imageErrors(im)...)
	for _, v := range im.Views {
		iv := report.InfoView{View: reportView(v)}
		if v.Disk != nil {
			n, err := model.AllocatedBytes(ctx, v.Disk)
			if err != nil {
				if ctx.Err() != nil {
					return ii, ctx.Err()
				}
				iv.Error = err.Error()
			}
			iv.AllocatedBytes = n
			if v.Kind == model.KindUnreferenced {
				ii.UnreferencedBytes += n
			}
		}
		ii.Views = append(ii.Views, iv)
	}
	return ii, nil
}

// reportBacking is an image's backing chain in the report's form.
func reportBacking(im *model.Image) []report.Backing {
	var out []report.Backing
	for _, b := range im.Backing {
		rb := report.Backing{Name: b.Name, Path: b.Path, Format: b.Format}
		if b.Err != nil {
			rb.Error = b.Err.Error()
		}
		out = append(out, rb)
	}
	return out
}

// imageErrors are an image's own errors as the report lists them.
func imageErrors(im *model.Image) []string {
	var out []string
	for _, e := range im.Errors {
		out = append(out, e.Error())
	}
	return out
}

// reportView is what the report says of a view before it is read: its
// identity, size, date, notes and attributes.
func reportView(v model.View) report.View {
	rv := report.View{ID: v.ID, Kind: string(v.Kind), Name: v.Name, Notes: v.Notes, Attrs: v.Attrs}
	if v.Disk != nil {
		rv.Size = v.Disk.Size()
	}
	if !v.Created.IsZero() {
		c := v.Created.UTC()
		rv.Created = &c
	}
	return rv
}
