package report

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
)

// ImageInfo is what `imgaudit info` says of one image before any scan:
// its format, backing chain and views, with the same Backing and View as
// a scan's Target.
type ImageInfo struct {
	Path        string            `json:"path"`
	Format      string            `json:"format,omitempty"`
	VirtualSize int64             `json:"virtual_size"`
	Backing     []Backing         `json:"backing"`
	Attrs       map[string]string `json:"attrs,omitempty"`
	Views       []InfoView        `json:"views"`
	// UnreferencedBytes is the non-zero data of the unreferenced views:
	// host bytes that no table references.
	UnreferencedBytes int64    `json:"unreferenced_bytes"`
	Errors            []string `json:"errors"`
}

// InfoView is a View as `imgaudit info` lists it. Nothing was scanned, so
// its JSON form has no scanned_bytes: the field here hides View's.
type InfoView struct {
	View
	ScannedBytes struct{} `json:"scanned_bytes,omitzero"`
}

// WriteInfoJSON writes the images as `imgaudit info --format json` does:
// {"images": [...]}.
func WriteInfoJSON(w io.Writer, images []ImageInfo) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"images": images})
}

// WriteInfoTable writes one image as `imgaudit info` shows it.
func WriteInfoTable(w io.Writer, ii ImageInfo) {
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
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(ii.Attrs)) {
			parts = append(parts, k+"="+ii.Attrs[k])
		}
		fmt.Fprintf(w, "details:       %s\n", strings.Join(parts, " "))
	}
	snaps := 0
	for _, v := range ii.Views {
		if v.Kind == "snapshot" { // model.KindSnapshot
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
