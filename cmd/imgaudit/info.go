package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/imgaudit/imgaudit/formats"
	"github.com/imgaudit/imgaudit/formats/model"
)

type infoImage struct {
	Path              string            `json:"path"`
	Format            string            `json:"format,omitempty"`
	VirtualSize       int64             `json:"virtual_size"`
	Backing           []infoBacking     `json:"backing"`
	Attrs             map[string]string `json:"attrs,omitempty"`
	Views             []infoView        `json:"views"`
	UnreferencedBytes int64             `json:"unreferenced_bytes"`
	Errors            []string          `json:"errors"`
}

type infoBacking struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	Format string `json:"format,omitempty"`
	Error  string `json:"error,omitempty"`
}

type infoView struct {
	ID             string            `json:"id"`
	Kind           string            `json:"kind"`
	Name           string            `json:"name"`
	Created        *time.Time        `json:"created,omitempty"`
	Size           int64             `json:"size"`
	AllocatedBytes int64             `json:"allocated_bytes"`
	Notes          []string          `json:"notes,omitempty"`
	Attrs          map[string]string `json:"attrs,omitempty"`
	Error          string            `json:"error,omitempty"`
}

func cmdInfo(ctx context.Context, args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlagSet("info", "info [--format table|json] IMAGE...",
		`Show each image's format, virtual size, backing chain, internal snapshots
(name, date, vm state size) and every view imgaudit will scan, with its ID
(for 'extract --view'), kind and allocated bytes, plus the bytes of
non-zero data that no table references. The files an image names are
opened only inside its own directory or a --backing-root DIR.`, stdout)
	format := fs.String("format", "table", "output `FORMAT`: table or json")
	noBacking := fs.Bool("no-backing", false, "do not open backing files")
	roots := addBackingRoots(fs)
	paths, err := parseInterspersed(fs, args)
	if err != nil {
		return exitUsage, err
	}
	if err := roots.check(); err != nil {
		return exitUsage, err
	}
	if len(paths) == 0 {
		return exitUsage, usagef("no image given")
	}
	if *format != "table" && *format != "json" {
		return exitUsage, usagef("--format must be table or json, not %q", *format)
	}
	var out []infoImage
	failed := 0
	for _, p := range paths {
		ii, err := describe(ctx, p, roots.options(p, formats.Options{NoBacking: *noBacking}))
		if err != nil {
			if ctx.Err() != nil {
				return exitInterrupted, ctx.Err()
			}
			failed++
			ii.Errors = append(ii.Errors, err.Error())
			fmt.Fprintf(stderr, "imgaudit info: %v\n", err)
		}
		out = append(out, ii)
	}
	if *format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(map[string]any{"images": out}); err != nil {
			return exitUsage, err
		}
	} else {
		for i, ii := range out {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			writeInfoTable(stdout, ii)
		}
	}
	switch {
	case failed == len(paths):
		return exitUsage, nil
	case failed > 0:
		return exitFindings, nil
	}
	return exitOK, nil
}

func describe(ctx context.Context, path string, opts formats.Options) (infoImage, error) {
	ii := infoImage{Path: path, Backing: []infoBacking{}, Views: []infoView{}, Errors: []string{}}
	im, err := formats.Open(ctx, path, opts)
	if err != nil {
		return ii, err
	}
	defer im.Close()
	ii.Format, ii.VirtualSize, ii.Attrs = im.Format, im.VirtualSize, im.Attrs
	for _, b := range im.Backing {
		ib := infoBacking{Name: b.Name, Path: b.Path, Format: b.Format}
		if b.Err != nil {
			ib.Error = b.Err.Error()
		}
		ii.Backing = append(ii.Backing, ib)
	}
	for _, e := range im.Errors {
		ii.Errors = append(ii.Errors, e.Error())
	}
	for _, v := range im.Views {
		iv := infoView{ID: v.ID, Kind: string(v.Kind), Name: v.Name, Notes: v.Notes, Attrs: v.Attrs}
		if !v.Created.IsZero() {
			t := v.Created.UTC()
			iv.Created = &t
		}
		if v.Disk != nil {
			iv.Size = v.Disk.Size()
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

func writeInfoTable(w io.Writer, ii infoImage) {
	fmt.Fprintf(w, "image:         %s\n", ii.Path)
	if ii.Format == "" {
		for _, e := range ii.Errors {
			fmt.Fprintf(w, "error:         %s\n", e)
		}
		return
	}
	fmt.Fprintf(w, "format:        %s\n", ii.Format)
	fmt.Fprintf(w, "virtual size:  %s (%d bytes)\n", humanBytes(ii.VirtualSize), ii.VirtualSize)
	if len(ii.Backing) > 0 {
		fmt.Fprintf(w, "backing chain:")
		for _, b := range ii.Backing {
			s := " <- " + b.Name
			if b.Format != "" {
				s += " (" + b.Format + ")"
			}
			if b.Error != "" {
				s += " [NOT OPENED]" // the error itself is among the errors below
			}
			fmt.Fprint(w, s)
		}
		fmt.Fprintln(w)
	}
	if len(ii.Attrs) > 0 {
		fmt.Fprintf(w, "details:       %s\n", joinAttrs(ii.Attrs))
	}
	snaps := 0
	for _, v := range ii.Views {
		if v.Kind == string(model.KindSnapshot) {
			snaps++
		}
	}
	if snaps > 0 {
		fmt.Fprintf(w, "snapshots:     %d\n", snaps)
	}
	fmt.Fprintf(w, "unreferenced:  %s of non-zero data that no table references\n", humanBytes(ii.UnreferencedBytes))
	fmt.Fprintln(w, "views:")
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "  ID\tKIND\tCREATED\tSIZE\tALLOCATED\tNOTES")
	for _, v := range ii.Views {
		created := "-"
		if v.Created != nil {
			created = v.Created.Format("2006-01-02 15:04:05")
		}
		notes := ""
		if s, ok := v.Attrs["vm_state_size"]; ok && s != "0" {
			notes = "vm state " + s + " bytes"
		}
		for _, n := range v.Notes {
			if notes != "" {
				notes += "; "
			}
			notes += n
		}
		if v.Error != "" {
			notes += " ERROR: " + v.Error
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", v.ID, v.Kind, created, humanBytes(v.Size), humanBytes(v.AllocatedBytes), notes)
	}
	tw.Flush()
	for _, e := range ii.Errors {
		fmt.Fprintf(w, "error:         %s\n", e)
	}
}
