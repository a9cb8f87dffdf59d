package scanner

import (
	"sync"
	"sync/atomic"

	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/report"
)

// Limiter applies a scan's limits (report.Limits) to its findings as the
// matches arrive, so that memory and the report stay bounded whatever the
// input: at most FindingsPerRulePerView findings per rule, view and
// severity (a cut never hides a more severe finding of the rule), at most
// LocationsPerFinding locations each, and at most FindingsPerScan
// findings and LocationsPerScan locations in all (an input that fills
// many rules at once). The scanner's views and the registry's layers
// share it; a view is any comparable value that tells the views of one
// scan apart. It is safe for concurrent use.
type Limiter struct {
	limits report.Limits
	engine *detectors.Engine
	mu     sync.Mutex
	kept   map[limitKey]int
	// findings and locations count what the whole scan keeps.
	findings, locations int
	// full counts the keys of kept at their limit, plus one once
	// findings is: while it is 0, as in most scans, Enough answers
	// without the lock or a map lookup. The detectors ask it for every
	// rule at the start of every chunk, and a registry layer's files are
	// chunks of their own: 177 rules times 60,000 files were 12 % of a
	// one-layer scan's CPU (2026-12-07).
	full atomic.Int64
}

type limitKey struct {
	view any
	rule string
	sev  detectors.Severity
}

// NewLimiter returns the Limiter of limits, whose zero fields take
// DefaultLimits'; e says the rules' severities (Enough).
func NewLimiter(limits report.Limits, e *detectors.Engine) *Limiter {
	if limits.FindingsPerRulePerView <= 0 {
		limits.FindingsPerRulePerView = DefaultLimits().FindingsPerRulePerView
	}
	if limits.LocationsPerFinding <= 0 {
		limits.LocationsPerFinding = DefaultLimits().LocationsPerFinding
	}
	if limits.FindingsPerScan <= 0 {
		limits.FindingsPerScan = DefaultLimits().FindingsPerScan
	}
	if limits.LocationsPerScan <= 0 {
		limits.LocationsPerScan = DefaultLimits().LocationsPerScan
	}
	return &Limiter{limits: limits, engine: e, kept: map[limitKey]int{}}
}

// Limits returns the limits in force.
func (l *Limiter) Limits() report.Limits { return l.limits }

// Admit reports whether a new finding of rule at severity sev may be kept
// in view, and counts it if so.
func (l *Limiter) Admit(view any, rule string, sev detectors.Severity) bool {
	k := limitKey{view, rule, sev}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.kept[k] >= l.limits.FindingsPerRulePerView || l.findings >= l.limits.FindingsPerScan {
		return false
	}
	l.kept[k]++
	l.findings++
	if l.kept[k] == l.limits.FindingsPerRulePerView {
		l.full.Add(1)
	}
	if l.findings == l.limits.FindingsPerScan {
		l.full.Add(1)
	}
	return true
}

// Enough reports whether rule already has the limit of findings at its
// highest severity in view: no later match of it could be kept, so the
// detectors need not validate its hits there (detectors.ScanOptions.Enough;
// they count them instead).
func (l *Limiter) Enough(view any, rule string) bool {
	if l.full.Load() == 0 {
		return false
	}
	sev, ok := l.engine.RuleSeverity(rule)
	if !ok {
		return false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kept[limitKey{view, rule, sev}] >= l.limits.FindingsPerRulePerView || l.findings >= l.limits.FindingsPerScan
}

// KeepLocation reports whether finding f, which lists have locations, may
// list one more; when it may not, the place is counted in
// f.LocationsTruncated.
func (l *Limiter) KeepLocation(f *report.Finding, have int) bool {
	if have < l.limits.LocationsPerFinding {
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.locations < l.limits.LocationsPerScan {
			l.locations++
			return true
		}
	}
	f.LocationsTruncated++
	return false
}

// Cuts counts what the scan of one view cut, by rule: the matches a full
// rule could not keep (Limiter.Admit), the keyword hits the detectors left
// unvalidated (detectors.ScanOptions.Skipped).
type Cuts struct {
	dropped, notValidated map[string]int64
}

// Drop counts a match of rule that was not kept.
func (c *Cuts) Drop(rule string) { c.DropN(rule, 1) }

// DropN counts n matches of rule that were not kept.
func (c *Cuts) DropN(rule string, n int64) {
	if c.dropped == nil {
		c.dropped = map[string]int64{}
	}
	c.dropped[rule] += n
}

// Skipped counts the hits the detectors left unvalidated.
func (c *Cuts) Skipped(sk detectors.Skip) {
	if c.notValidated == nil {
		c.notValidated = map[string]int64{}
	}
	c.notValidated[sk.RuleID] += int64(sk.Hits)
}

// Truncation is the view's report of its cuts; nil when nothing was cut.
func (c *Cuts) Truncation() *report.ViewTruncation {
	if len(c.dropped) == 0 && len(c.notValidated) == 0 {
		return nil
	}
	return &report.ViewTruncation{MatchesDropped: c.dropped, HitsNotValidated: c.notValidated}
}
