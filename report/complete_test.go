package report

import (
	"reflect"
	"testing"
)

func TestCheckComplete(t *testing.T) {
	viewErr := "web.qcow2: offset 4096 (0x1000): L2 table beyond end of file"
	tests := []struct {
		name       string
		r          Report
		complete   bool
		reason     string
		wantReason []Incomplete
	}{
		{
			name:     "all read",
			r:        Report{Complete: true, Targets: []Target{{Path: "a.img", Format: "raw", Errors: []string{}}}},
			complete: true,
		},
		{
			name: "unattributed filesystem is not incomplete",
			r: Report{Complete: true, Targets: []Target{{Path: "a.img", Format: "raw", Unattributed: []string{"xfs on p1"},
				Partitions: []Partition{{Name: "p1", FS: "xfs"}}}}},
			complete: true,
		},
		{
			name: "missing target",
			r: Report{Complete: true, Targets: []Target{{Path: "a.img", Format: "raw"},
				{Path: "missing.qcow2", Errors: []string{"stat missing.qcow2: no such file or directory"}}}},
			reason:     "1 of 2 targets could not be read completely",
			wantReason: []Incomplete{{Target: "missing.qcow2", Reason: "stat missing.qcow2: no such file or directory"}},
		},
		{
			name: "view error names its view",
			r: Report{Complete: true, Targets: []Target{{Path: "web.qcow2", Format: "qcow2",
				Views:  []View{{ID: "web.qcow2#current"}, {ID: "web.qcow2#snapshot:a", Error: viewErr}},
				Errors: []string{"web.qcow2#snapshot:a: " + viewErr}}}},
			reason:     "1 of 1 targets could not be read completely",
			wantReason: []Incomplete{{Target: "web.qcow2", View: "web.qcow2#snapshot:a", Reason: "web.qcow2#snapshot:a: " + viewErr}},
		},
		{
			name: "interruption and a target error; idempotent",
			r: Report{IncompleteReasons: []Incomplete{{Reason: "interrupted: context canceled"}, {Target: "old", Reason: "stale"}},
				Targets: []Target{{Path: "b.vmdk", Errors: []string{"vmdk: b.vmdk: offset 0: bad magic"}}}},
			reason: "interrupted: context canceled; 1 of 1 targets could not be read completely",
			wantReason: []Incomplete{{Reason: "interrupted: context canceled"},
				{Target: "b.vmdk", Reason: "vmdk: b.vmdk: offset 0: bad magic"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 {
				CheckComplete(&tc.r)
				if tc.r.Complete != tc.complete || tc.r.IncompleteReason != tc.reason || !reflect.DeepEqual(tc.r.IncompleteReasons, tc.wantReason) {
					t.Fatalf("complete=%v reason=%q reasons=%+v; want %v %q %+v", tc.r.Complete, tc.r.IncompleteReason,
						tc.r.IncompleteReasons, tc.complete, tc.reason, tc.wantReason)
				}
			}
		})
	}
}

// A merged report is incomplete when an input's target failed, even if
// that input was written before incomplete_reasons existed and says
// "complete".
func TestMergeChecksCompleteness(t *testing.T) {
	a := &Report{SchemaVersion: 1, Complete: true, Targets: []Target{{Path: "a.qcow2", Format: "qcow2"}},
		Skipped: []Skipped{{Path: "notes.txt", Reason: "not an image: text"}}}
	b := &Report{SchemaVersion: 1, Complete: true, Targets: []Target{{Path: "b.qcow2", Errors: []string{"stat b.qcow2: permission denied"}}}}
	m := Merge(a, b)
	if m.Complete || len(m.IncompleteReasons) != 1 || m.IncompleteReasons[0].Target != "b.qcow2" || len(m.Skipped) != 1 {
		t.Fatalf("merged: complete=%v reasons=%+v skipped=%+v", m.Complete, m.IncompleteReasons, m.Skipped)
	}
}
