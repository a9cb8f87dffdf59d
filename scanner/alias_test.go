package scanner

import (
	"testing"

	"github.com/imgaudit/imgaudit/formats/model"
)

// TestAliasedRecords checks how a view whose guest ranges repeat one host
// range is held, planned and counted: one record, its first and last
// repetitions scanned, and a hit anywhere in it attributed to every
// repetition, listing at most the limit.
func TestAliasedRecords(t *testing.T) {
	const L = 4096
	data := func(off, host int64) model.Extent {
		return model.Extent{Offset: off, Length: L, Source: model.SourceData, File: "h", FileOffset: host, FileLength: L}
	}
	tests := []struct {
		name       string
		ext        []model.Extent
		wantRecs   int
		wantRanges []span // planned, with a margin of 1024
		hit        int64  // guest offset of a 16-byte hit
		limit      int
		wantListed int
		wantMore   int64
	}{
		{
			name:       "one host block read 1000 times",
			ext:        repeatExt(data, 0, 7*L, 1000),
			wantRecs:   1,
			wantRanges: []span{{0, L}, {1000*L - 1024, 1000 * L}},
			hit:        500*L + 100, limit: 10, wantListed: 10, wantMore: 990,
		},
		{
			name:       "a hit crossing into the next repetition",
			ext:        repeatExt(data, 0, 7*L, 4),
			wantRecs:   1,
			wantRanges: []span{{0, L}, {4*L - 1024, 4 * L}},
			// Repetitions 0..2 continue into a repetition; the last
			// continues into a hole: its bytes differ.
			hit: L - 8, limit: 100, wantListed: 3, wantMore: 0,
		},
		{
			name:     "aliases that are not back to back stay records",
			ext:      []model.Extent{data(0, 7*L), data(L, 9*L), data(2*L, 7*L)},
			wantRecs: 3,
			// The third is the first again: only its tail is new.
			wantRanges: []span{{0, 2 * L}, {3*L - 1024, 3 * L}},
			hit:        100, limit: 10, wantListed: 2, wantMore: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := &viewState{t: &target{}, view: model.View{ID: "v#current", Kind: model.KindCurrent, Disk: noDisk{1 << 30}}, dedupe: true}
			for _, e := range tt.ext {
				if n := len(v.ext) - 1; n >= 0 && repeats(v.ext[n], v.reps[n], e) {
					v.reps[n]++
					continue
				}
				v.ext, v.files, v.reps = append(v.ext, e), append(v.files, e.File), append(v.reps, 1)
			}
			if len(v.ext) != tt.wantRecs {
				t.Fatalf("%d records, want %d", len(v.ext), tt.wantRecs)
			}
			if got := newPlanner(1024).plan(v); !equalSpans(got, tt.wantRanges) {
				t.Errorf("planned %v, want %v", got, tt.wantRanges)
			}
			idx := buildIndex([]*viewState{v})
			got, more := idx.where(v, tt.hit, 16, tt.limit)
			if len(got) != tt.wantListed || more != tt.wantMore {
				t.Errorf("where: %d listed, %d more; want %d and %d", len(got), more, tt.wantListed, tt.wantMore)
			}
			if len(got) > 0 && (got[0].v != v || got[0].g != tt.hit) {
				t.Errorf("first place %d, want the hit's own %d", got[0].g, tt.hit)
			}
			seen := map[int64]bool{}
			for _, p := range got {
				if seen[p.g] {
					t.Errorf("place %d listed twice", p.g)
				}
				seen[p.g] = true
			}
		})
	}
}

func repeatExt(mk func(off, host int64) model.Extent, off, host int64, n int) []model.Extent {
	var out []model.Extent
	for i := range n {
		out = append(out, mk(off+int64(i)*4096, host))
	}
	return out
}

func equalSpans(a, b []span) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
