package scanner

import (
	"reflect"
	"testing"
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
