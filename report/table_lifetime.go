package report

import (
	"cmp"
	"slices"
	"strings"
	"unicode/utf8"
)

// rollback prints rollback-risk findings per image, most severe first.
func (t *tableWriter) rollback(fs []*Finding) {
	if len(fs) == 0 {
		return
	}
	byTarget := map[string][]*Finding{}
	var order []string
	for _, f := range fs {
		tg := ""
		if len(f.Locations) > 0 {
			tg = f.Locations[0].Target
		}
		if byTarget[tg] == nil {
			order = append(order, tg)
		}
		byTarget[tg] = append(byTarget[tg], f)
	}
	t.printf("\nROLLBACK RISK (%d)\n  what reverting to an older snapshot, backing file or backup would bring back\n", len(fs))
	for _, tg := range order {
		list := byTarget[tg]
		slices.SortStableFunc(list, func(a, b *Finding) int { return cmp.Compare(SeverityRank(a.Severity), SeverityRank(b.Severity)) })
		t.printf("\n  %s\n", clean(tg))
		for _, f := range list {
			view := ""
			if len(f.Locations) > 0 {
				view = f.Locations[0].View
			}
			t.printf("    %-8s %-28s %s\n", strings.ToUpper(f.Severity), clean(f.Rule), clean(view))
			t.printf("             %s\n", clean(f.Description))
			t.printf("             fingerprint %s\n", clean(f.Fingerprint))
			t.remediation("             ", t.rm.remediate(f))
		}
	}
}

// sharedIdentity prints secrets and identities found in more than one VM.
func (t *tableWriter) sharedIdentity(r *Report) {
	if len(r.SharedIdentity) == 0 {
		return
	}
	t.printf("\nSHARED IDENTITY (%d)\n  the same key or machine identity in several VMs: clones that share one identity\n", len(r.SharedIdentity))
	for _, s := range r.SharedIdentity {
		t.printf("  %-14s %s  in %d VMs: %s\n", clean(s.Kind), clean(s.Preview), len(s.VMs), clean(strings.Join(s.VMs, ", ")))
		if s.KeyFingerprint != "" {
			t.printf("  %-14s key %s\n", "", clean(s.KeyFingerprint))
		}
		if len(s.Paths) > 0 {
			t.printf("  %-14s at %s\n", "", clean(strings.Join(s.Paths, ", ")))
		}
	}
}

// timelines prints each VM's timeline as a matrix: secrets as rows, points
// in time as columns, oldest first.
func (t *tableWriter) timelines(r *Report) {
	shown := 0
	for _, tl := range r.Timelines {
		if len(tl.Secrets) > 0 && len(tl.Points) > 1 {
			shown++
		}
	}
	if shown == 0 {
		return
	}
	t.printf("\nTIMELINE\n  x = a file holds the secret at that point, r = only residue (free blocks, unreferenced clusters), . = absent;\n  columns are oldest first, \"now\" is the current state\n")
	for _, tl := range r.Timelines {
		if len(tl.Secrets) == 0 || len(tl.Points) < 2 {
			continue
		}
		labels := make([]string, len(tl.Points))
		col := map[string]int{}
		for i, p := range tl.Points {
			l := clean(p.Label)
			if utf8.RuneCountInString(l) > 14 {
				l = string([]rune(l)[:13]) + "…"
			}
			labels[i] = l
			col[p.View] = i
		}
		rowLabels := make([]string, len(tl.Secrets))
		width := 0
		// Previews that two rows share ("AES-256 key (32 bytes)" for every
		// key schedule in RAM) cannot tell the rows apart.
		alike := map[string]int{}
		for _, s := range tl.Secrets {
			alike[s.Rule+"\x00"+s.Preview]++
		}
		for i, s := range tl.Secrets {
			id := s.Preview
			if (strings.HasPrefix(id, "-----") || alike[s.Rule+"\x00"+s.Preview] > 1) && len(s.Fingerprint) > 19 {
				id = s.Fingerprint[:19] + "…" // key previews are all alike
			}
			l := clean(s.Rule + " " + id)
			if utf8.RuneCountInString(l) > 48 {
				l = string([]rune(l)[:47]) + "…"
			}
			rowLabels[i] = l
			width = max(width, utf8.RuneCountInString(l))
		}
		t.printf("\n  VM %s\n  %s", clean(tl.VM), strings.Repeat(" ", width))
		for _, l := range labels {
			t.printf("  %s", l)
		}
		t.printf("\n")
		for i, s := range tl.Secrets {
			marks := timelineMarks(s, col, len(tl.Points))
			t.printf("  %s%s", rowLabels[i], strings.Repeat(" ", width-utf8.RuneCountInString(rowLabels[i])))
			for c, l := range labels {
				mark := marks[c]
				n := utf8.RuneCountInString(l)
				pad := (n - 1) / 2
				t.printf("  %s%s%s", strings.Repeat(" ", pad), mark, strings.Repeat(" ", n-1-pad))
			}
			t.printf("\n")
		}
	}
}

// Timeline marks: a file holds the secret, only residue holds it, absent.
const (
	markFile    = "x"
	markResidue = "r"
	markAbsent  = "."
)

// timelineMarks returns one mark per column for a row.
func timelineMarks(row TimelineRow, col map[string]int, n int) []string {
	marks := make([]string, n)
	for i := range marks {
		marks[i] = markAbsent
	}
	for _, v := range row.Present {
		if c, ok := col[v]; ok {
			marks[c] = markFile
		}
	}
	for _, v := range row.Residue {
		if c, ok := col[v]; ok {
			marks[c] = markResidue
		}
	}
	return marks
}
