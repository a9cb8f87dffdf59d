package scanner

import (
	"context"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/report"
	"github.com/imgaudit/imgaudit/rollback"
)

// rollbackRisks diffs each older disk view of each target (snapshots,
// backing files, backups) against its current state and returns what a
// rollback would bring back. Notes go to the targets' views.
func (s *Scanner) rollbackRisks(ctx context.Context, ts []*target) ([]report.Finding, error) {
	var out []report.Finding
	for _, t := range ts {
		var cur *viewState
		var others []rollback.ViewFS
		for _, v := range t.views {
			switch v.view.Kind {
			case model.KindCurrent:
				if cur == nil {
					cur = v
				}
			case model.KindSnapshot, model.KindBacking:
				others = append(others, viewFS(ctx, v))
			}
		}
		if cur == nil || len(others) == 0 {
			continue
		}
		fs, notes, err := rollback.AnalyzeFS(ctx, t.path, viewFS(ctx, cur), others)
		if err != nil {
			return out, err
		}
		cur.notes = append(cur.notes, notes...)
		byID := map[string]*viewState{}
		for _, v := range t.views {
			byID[v.view.ID] = v
		}
		for i := range fs {
			// The view's own class: a backing view that holds a store
			// snapshot's state is a snapshot, as for every other finding.
			for j := range fs[i].Locations {
				l := &fs[i].Locations[j]
				if v := byID[l.View]; v != nil {
					l.Exposure = v.exposureOf(*l)
				}
			}
			fs[i].Exposure = nil
			report.RecomputeExposure(&fs[i])
		}
		out = append(out, fs...)
	}
	return out, nil
}

func viewFS(ctx context.Context, v *viewState) rollback.ViewFS {
	fi := v.filesystem(ctx)
	if fi == nil || fi.m == nil {
		var err error
		if fi != nil {
			err = fi.err
		}
		return rollback.ViewFS{View: v.view, Err: err}
	}
	return rollback.ViewFSFromMap(v.view, fi.m)
}
