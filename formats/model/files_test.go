package model

import (
	"context"
	"errors"
	"iter"
	"slices"
	"testing"
)

// failingDisk's extent listing fails after its extents.
type failingDisk struct{ FileDisk }

func (d *failingDisk) Extents(ctx context.Context) iter.Seq2[Extent, error] {
	return func(yield func(Extent, error) bool) {
		for e := range d.Allocd.Seq(ctx) {
			if !yield(e, nil) {
				return
			}
		}
		yield(Extent{}, errors.New("broken table"))
	}
}

func TestImageFiles(t *testing.T) {
	extents := ExtentList{
		{Offset: 0, Length: 512, Source: SourceData, File: "/img/disk-s001.vmdk"},
		{Offset: 512, Length: 512, Source: SourceData, File: "/img/disk-s002.vmdk"},
		{Offset: 1024, Length: 512, Source: SourceData, File: "/img/disk-s001.vmdk"},
		{Offset: 1536, Length: 512, Source: SourceZero},
		{Offset: 2048, Length: 512, Source: SourceData, File: "/img/base.qcow2"},
	}
	im := &Image{Path: "/img/disk.vmdk", Backing: []BackingLink{{Name: "base.qcow2", Path: "/img/base.qcow2"}}}
	for _, tc := range []struct {
		name string
		disk Disk
		want []string // nil: an error
	}{
		{"extents in several files", &FileDisk{Len: 4096, Allocd: extents},
			[]string{"/img/disk.vmdk", "/img/base.qcow2", "/img/disk-s001.vmdk", "/img/disk-s002.vmdk"}},
		{"no extents", &FileDisk{Len: 4096}, []string{"/img/disk.vmdk", "/img/base.qcow2"}},
		{"extent error", &failingDisk{FileDisk{Len: 4096, Allocd: extents}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := im.Files(context.Background(), View{ID: "disk.vmdk#current", Disk: tc.disk})
			if tc.want == nil {
				if err == nil {
					t.Fatalf("Files = %v, want an error", got)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("Files = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
