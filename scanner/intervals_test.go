package scanner

import (
	"reflect"
	"slices"
	"testing"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs"
)

func TestSpanSet(t *testing.T) {
	tests := []struct {
		name     string
		add      []span
		q        span
		want     []span
		wantSpan []span
	}{
		{"empty", nil, span{0, 10}, []span{{0, 10}}, nil},
		{"covered", []span{{0, 10}}, span{2, 8}, nil, []span{{0, 10}}},
		{"holes", []span{{2, 4}, {6, 8}}, span{0, 10}, []span{{0, 2}, {4, 6}, {8, 10}}, []span{{2, 4}, {6, 8}}},
		{"merge adjacent", []span{{0, 4}, {4, 8}}, span{0, 10}, []span{{8, 10}}, []span{{0, 8}}},
		{"merge overlap", []span{{5, 9}, {0, 6}, {20, 30}, {8, 21}}, span{0, 40}, []span{{30, 40}}, []span{{0, 30}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ss spanSet
			for _, a := range tt.add {
				ss.add(a.start, a.end)
			}
			if got := ss.missing(tt.q.start, tt.q.end); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("missing = %v, want %v", got, tt.want)
			}
			if !reflect.DeepEqual(ss.s, tt.wantSpan) {
				t.Errorf("set = %v, want %v", ss.s, tt.wantSpan)
			}
		})
	}
}

// TestAllocatedIn: the parts of an area's runs (unsorted, overlapping,
// as a hostile filesystem may give them) that a view's data extents
// cover, sorted and disjoint, joined where they meet.
func TestAllocatedIn(t *testing.T) {
	ext := []model.Extent{{Offset: 0, Length: 100}, {Offset: 100, Length: 50}, {Offset: 300, Length: 100}, {Offset: 1000, Length: 10}}
	for _, c := range []struct {
		name string
		runs []guestfs.GuestRun
		want []detectors.Range
	}{
		{"none", nil, nil},
		{"inside one extent", []guestfs.GuestRun{{Off: 10, Len: 20}}, []detectors.Range{{Start: 10, End: 30}}},
		{"across two adjacent extents: one range", []guestfs.GuestRun{{Off: 90, Len: 20}}, []detectors.Range{{Start: 90, End: 110}}},
		{"across a hole", []guestfs.GuestRun{{Off: 140, Len: 200}}, []detectors.Range{{Start: 140, End: 150}, {Start: 300, End: 340}}},
		{"in a hole only", []guestfs.GuestRun{{Off: 500, Len: 400}}, nil},
		{"unsorted and overlapping", []guestfs.GuestRun{{Off: 1000, Len: 50}, {Off: 320, Len: 30}, {Off: 310, Len: 20}, {Off: 0, Len: 5}},
			[]detectors.Range{{Start: 0, End: 5}, {Start: 310, End: 350}, {Start: 1000, End: 1010}}},
		{"past every extent", []guestfs.GuestRun{{Off: 5000, Len: 10}}, nil},
	} {
		if got := allocatedIn(c.runs, ext); !slices.Equal(got, c.want) {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}
