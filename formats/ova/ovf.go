package ova

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"strconv"
)

// Bounds on the OVF descriptor.
const (
	maxOVFSize  = 8 << 20
	maxOVFFiles = 4096
)

// Envelope is the part of an OVF descriptor (DMTF DSP0243) imgaudit needs:
// the file references and the virtual disks.
type Envelope struct {
	Files []File
	Disks []DiskRef
}

// File is an ovf:References/File element.
type File struct {
	ID          string
	Href        string
	Size        int64  // bytes as stored (compressed size when compressed); -1 if absent
	Compression string // "", "identity" or "gzip"
	ChunkSize   int64  // > 0: stored as Href.000000000, Href.000000001, ...
}

// DiskRef is a DiskSection/Disk element.
type DiskRef struct {
	DiskID   string
	FileRef  string
	Capacity int64 // bytes, -1 if unknown
	Format   string
}

type xmlEnvelope struct {
	References struct {
		Files []struct {
			ID          string `xml:"id,attr"`
			Href        string `xml:"href,attr"`
			Size        string `xml:"size,attr"`
			Compression string `xml:"compression,attr"`
			ChunkSize   string `xml:"chunkSize,attr"`
		} `xml:"File"`
	} `xml:"References"`
	DiskSections []struct {
		Disks []struct {
			DiskID   string `xml:"diskId,attr"`
			FileRef  string `xml:"fileRef,attr"`
			Capacity string `xml:"capacity,attr"`
			Units    string `xml:"capacityAllocationUnits,attr"`
			Format   string `xml:"format,attr"`
		} `xml:"Disk"`
	} `xml:"DiskSection"`
}

// ParseOVF parses an OVF descriptor. Element and attribute names match in
// any namespace, so OVF 1.x and 2.x both parse.
func ParseOVF(b []byte) (*Envelope, error) {
	if len(b) > maxOVFSize {
		return nil, fmt.Errorf("OVF descriptor larger than %d bytes", maxOVFSize)
	}
	var x xmlEnvelope
	dec := xml.NewDecoder(bytes.NewReader(b))
	dec.Strict = true
	if err := dec.Decode(&x); err != nil {
		return nil, fmt.Errorf("OVF descriptor: %w", err)
	}
	if len(x.References.Files) > maxOVFFiles {
		return nil, fmt.Errorf("OVF lists %d files, more than %d", len(x.References.Files), maxOVFFiles)
	}
	env := &Envelope{}
	for _, f := range x.References.Files {
		if f.Href == "" {
			return nil, errors.New("OVF File element without href")
		}
		size, err := optInt(f.Size)
		if err != nil {
			return nil, fmt.Errorf("OVF file %.80q: size: %w", f.Href, err)
		}
		chunk, err := optInt(f.ChunkSize)
		if err != nil {
			return nil, fmt.Errorf("OVF file %.80q: chunkSize: %w", f.Href, err)
		}
		switch f.Compression {
		case "", "identity", "gzip":
		default:
			return nil, fmt.Errorf("OVF file %.80q: unsupported compression %.40q", f.Href, f.Compression)
		}
		env.Files = append(env.Files, File{ID: f.ID, Href: f.Href, Size: size, Compression: f.Compression, ChunkSize: max(chunk, 0)})
	}
	for _, ds := range x.DiskSections {
		for _, d := range ds.Disks {
			if len(env.Disks) >= maxOVFFiles {
				return nil, fmt.Errorf("OVF lists more than %d disks", maxOVFFiles)
			}
			c, err := optInt(d.Capacity)
			if err == nil && c > 0 {
				mul, ok := units(d.Units)
				if !ok || c > (1<<62)/mul {
					c = -1
				} else {
					c *= mul
				}
			} else {
				c = -1
			}
			env.Disks = append(env.Disks, DiskRef{DiskID: d.DiskID, FileRef: d.FileRef, Capacity: c, Format: d.Format})
		}
	}
	return env, nil
}

func optInt(s string) (int64, error) {
	if s == "" {
		return -1, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return -1, fmt.Errorf("invalid number %.30q", s)
	}
	return v, nil
}

// units parses capacityAllocationUnits such as "byte * 2^30".
func units(s string) (int64, bool) {
	if s == "" || s == "byte" {
		return 1, true
	}
	var base, exp int64
	if n, _ := fmt.Sscanf(s, "byte * %d^%d", &base, &exp); n == 2 && base == 2 && exp >= 0 && exp <= 60 {
		return 1 << exp, true
	}
	return 0, false
}
