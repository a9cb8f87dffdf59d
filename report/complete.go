package report

import (
	"fmt"
	"slices"
	"strings"
)

// Incomplete is one reason a run did not read everything it was asked to:
// a target that could not be opened, a view, backing file or table that
// could not be read to the end, or an interruption (no target).
type Incomplete struct {
	Target string `json:"target,omitempty"`
	View   string `json:"view,omitempty"`
	Reason string `json:"reason"`
}

// Skipped is a file of a scanned directory that was not scanned, and why:
// "not an image: text", "symlink to a file outside the scanned directory".
// Files that could not be read are not skipped: they are targets with
// errors, and make the run incomplete.
type Skipped struct {
	Path   string `json:"path"`
	Reason string `json:"reason"`
}

// CheckComplete applies the completeness rule of docs/report.md: a run is
// complete only when every target was opened and every view, backing link
// and table of it was read to the end. Every target error (targets[].errors
// holds the target's own errors and those of its views and backing links)
// becomes an entry of IncompleteReasons, and makes the run incomplete. An
// unattributed filesystem is not incomplete reading: its bytes were
// scanned. Entries without a target (an interruption) are kept; entries of
// targets are recomputed, so calling it twice changes nothing.
// IncompleteReason becomes the one-line summary of the list.
func CheckComplete(r *Report) {
	var runLevel, perTarget []Incomplete
	for _, x := range r.IncompleteReasons {
		if x.Target == "" && !slices.Contains(runLevel, x) {
			runLevel = append(runLevel, x)
		}
	}
	failed := 0
	for _, t := range r.Targets {
		if len(t.Errors) > 0 {
			failed++
		}
		for _, e := range t.Errors {
			perTarget = append(perTarget, Incomplete{Target: t.Path, View: viewOfError(t, e), Reason: e})
		}
	}
	r.IncompleteReasons = append(runLevel, perTarget...)
	if len(r.IncompleteReasons) == 0 {
		return
	}
	r.Complete = false
	var parts []string
	for _, x := range runLevel {
		parts = append(parts, x.Reason)
	}
	if failed > 0 {
		parts = append(parts, fmt.Sprintf("%d of %d targets could not be read completely", failed, len(r.Targets)))
	}
	r.IncompleteReason = strings.Join(parts, "; ")
}

// MarkIncomplete records a reason that concerns the run rather than one
// target, such as an interruption ("interrupted: context canceled").
func MarkIncomplete(r *Report, reason string) {
	r.Complete = false
	x := Incomplete{Reason: reason}
	if !slices.Contains(r.IncompleteReasons, x) {
		r.IncompleteReasons = append([]Incomplete{x}, r.IncompleteReasons...)
	}
	CheckComplete(r)
}

// viewOfError returns the ID of the view a target error is about: target
// errors of views end with the view's own error.
func viewOfError(t Target, e string) string {
	if i := viewIndexOfError(t, e); i >= 0 {
		return t.Views[i].ID
	}
	return ""
}

// viewIndexOfError is viewOfError's index in t.Views, or -1.
func viewIndexOfError(t Target, e string) int {
	for i, v := range t.Views {
		if v.Error != "" && strings.HasSuffix(e, v.Error) {
			return i
		}
	}
	return -1
}

// backingOfError returns the index in t.Backing of the backing link whose
// error a target error is (the readers put the same error in both), or -1.
func backingOfError(t Target, e string) int {
	for i, b := range t.Backing {
		if b.Error != "" && (e == b.Error || strings.HasSuffix(e, ": "+b.Error)) {
			return i
		}
	}
	return -1
}
