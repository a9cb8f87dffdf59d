package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/internal/outfile"
)

func cmdExtract(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("extract", "extract IMAGE --view ID -o FILE",
		`Write the bytes of one view of IMAGE to FILE, as a raw image of the view's
size. Only allocated extents are written; holes stay holes, so FILE is sparse.
Use 'imgaudit info IMAGE' to list view IDs. With -o -, the bytes go to
standard output (zeros included). The image itself is opened read-only and
FILE may not be the image or one of its backing files.`, stdout)
	viewID := fs.String("view", "", "`ID` of the view to extract (default: the current view)")
	outPath := fs.String("o", "", "output `FILE`, or - for standard output (required)")
	fs.StringVar(outPath, "output", "", "same as -o")
	roots := addBackingRoots(fs)
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if err := roots.check(); err != nil {
		return exitUsage, err
	}
	if len(pos) != 1 {
		return exitUsage, usagef("need exactly one IMAGE, got %d", len(pos))
	}
	if *outPath == "" {
		return exitUsage, usagef("-o FILE is required")
	}
	opts, names := roots.optionsLogged(pos[0], model.Options{BlockDevice: true})
	im, err := formats.Open(ctx, pos[0], opts)
	if err != nil {
		return exitUsage, err
	}
	defer im.Close()
	var v model.View
	var ok bool
	if *viewID == "" {
		v, ok = im.Current()
	} else {
		v, ok = im.View(*viewID)
	}
	if !ok {
		fmt.Fprintf(stderr, "views of %s:\n", pos[0])
		for _, v := range im.Views {
			fmt.Fprintf(stderr, "  %s\n", v.ID)
		}
		return exitUsage, usagef("no view %q in %s", *viewID, pos[0])
	}
	if *outPath == "-" {
		if err := formats.WriteStream(ctx, stdout, v.Disk); err != nil {
			return exitUsage, err
		}
		return incomplete(im, v, stderr)
	}
	inputs, err := im.Files(ctx, v)
	if err != nil {
		return exitUsage, fmt.Errorf("extract %s: %w", v.ID, err)
	}
	// And every other file the image was allowed to open, read or not
	// (a Parallels DiskDescriptor.xml, a backing file it could not read).
	inputs = append(inputs, names.Allowed()...)
	out, err := checkOutput(*outPath, inputs)
	if err != nil {
		return exitUsage, err
	}
	err = out.Write(inputs, func(f *os.File) error {
		if out.Stream() { // a pipe or /dev/null: no holes to seek over
			return formats.WriteStream(ctx, f, v.Disk)
		}
		return formats.WriteSparse(ctx, f, v.Disk)
	})
	var refused *outfile.Refused
	switch {
	case errors.As(err, &refused):
		return exitUsage, err
	case err != nil:
		return exitUsage, fmt.Errorf("extract %s: %w", v.ID, err)
	}
	return incomplete(im, v, stderr)
}

// incomplete fails an extract whose image had errors (a backing file not
// followed reads as zeros): the bytes are written, but they may not be
// what the guest sees, and a script must not take them for that.
func incomplete(im *model.Image, v model.View, stderr io.Writer) (int, error) {
	if len(im.Errors) == 0 {
		return exitOK, nil
	}
	for _, e := range im.Errors {
		fmt.Fprintf(stderr, "imgaudit extract: %v\n", e)
	}
	return exitUsage, fmt.Errorf("%s written, but the image is incomplete (errors above): its bytes may differ from what the guest sees", v.ID)
}
