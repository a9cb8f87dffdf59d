package rollback

import (
	"context"
	"fmt"

	"github.com/imgaudit/imgaudit/formats/model"
	"github.com/imgaudit/imgaudit/guestfs"
	"github.com/imgaudit/imgaudit/report"
)

// analyzeViews opens the filesystems of current and others with
// guestfs.Analyze, as the scanner does, and runs AnalyzeFS on them.
func analyzeViews(ctx context.Context, target string, current model.View, others []model.View) ([]report.Finding, []string, error) {
	open := func(v model.View) ViewFS {
		if v.Disk == nil {
			return ViewFS{View: v, Err: fmt.Errorf("the view has no disk")}
		}
		m, err := guestfs.Analyze(ctx, v.Disk)
		if err != nil {
			return ViewFS{View: v, Err: err}
		}
		return ViewFSFromMap(v, m)
	}
	cur := open(current)
	var rest []ViewFS
	for _, v := range others {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		if !isRollbackTarget(v.Kind) {
			continue
		}
		if cur.Err != nil {
			rest = append(rest, ViewFS{View: v}) // not opened: skipped below
			continue
		}
		rest = append(rest, open(v))
	}
	return AnalyzeFS(ctx, target, cur, rest)
}
