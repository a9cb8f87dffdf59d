// Package downgrade decides, from what is known about the places that hold
// a finding's secret, whether the finding is public material (severity
// info) or lowered by its path, and explains every change in the
// finding's reasons. It does no I/O: the scanner finds which package
// installed each file and whether the file is unmodified, and passes
// that here.
//
// The rules (docs/report.md, "Downgrades"):
//
//   - Package provenance. A secret inside a file that a package installed
//     and whose digest still equals the recorded one is public: the same
//     bytes are on every machine that installed the package. A secret
//     public in one place of a machine is public in every place of that
//     machine (other views, free blocks, other files): an upgraded
//     library's old blocks raise no alarm. A machine is a VM of a store,
//     or one target. The finding becomes info when every machine holding
//     it proves it public; when only some do, its severity is kept and a
//     reason names them.
//   - A file a package installed whose digest differs (an edited conffile,
//     a replaced binary) keeps the full severity, and a reason says so.
//   - Path context. When every file holding the secret is one that no
//     package owns and that lies in a test or documentation directory,
//     the finding is lowered (never below low, never hidden). Locations
//     without a file (free blocks, slack, unreferenced clusters, RAM)
//     neither allow nor prevent this; a live file elsewhere prevents it.
package downgrade

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/imgaudit/imgaudit/report"
)

// LocationFacts is what the scanner learned about the file holding one
// location of a finding.
type LocationFacts struct {
	// Owners are the packages that record the file, each with Modified
	// set from a comparison of digests; empty when no package owns it (or
	// no package records could be read there).
	Owners []report.Provenance
}

// Apply sets f's severity, reasons and provenance. facts[i] describes
// f.Locations[i] (missing entries mean nothing is known); machine maps a
// location's target to the machine it belongs to ("" = the target
// itself).
func Apply(f *report.Finding, facts []LocationFacts, machine func(target string) string) {
	if machine == nil {
		machine = func(string) string { return "" }
	}
	machineOf := func(l report.Location) string {
		if m := machine(l.Target); m != "" {
			return m
		}
		return l.Target
	}
	var (
		public     = map[string]bool{} // machines that prove it public
		machines   []string
		unmodified []report.Provenance // proofs, in location order
		modified   []report.Provenance
		proved     = make([]bool, len(f.Locations))
	)
	for i, l := range f.Locations {
		m := machineOf(l)
		if !slices.Contains(machines, m) {
			machines = append(machines, m)
		}
		if i >= len(facts) {
			continue
		}
		for _, o := range facts[i].Owners {
			if !slices.Contains(f.Provenance, o) {
				f.Provenance = append(f.Provenance, o)
			}
			if o.Modified {
				modified = appendNew(modified, o)
				continue
			}
			unmodified = appendNew(unmodified, o)
			public[m] = true
			proved[i] = true
		}
	}
	from := f.Severity
	switch {
	case len(public) > 0 && len(public) == len(machines):
		f.Severity = report.SeverityInfo
		f.Reasons = append(f.Reasons, report.Reason{
			Code: report.ReasonPackageFileUnmodified, From: from, To: report.SeverityInfo,
			Text: "shipped by " + packageFiles(unmodified) + ", unmodified since installed (" + digests(unmodified) +
				" matches the package's record): the same bytes are on every machine that installed it",
		})
		if n := len(proved) - countTrue(proved); n > 0 {
			f.Reasons = append(f.Reasons, report.Reason{
				Code: report.ReasonPublicByPropagation,
				Text: fmt.Sprintf("%s (%s) %s the same public bytes", plural(n, "other location"), otherExposures(f, proved), pluralVerb(n)),
			})
		}
		return
	case len(public) > 0:
		var pub, not []string
		for _, m := range machines {
			if public[m] {
				pub = append(pub, m)
			} else {
				not = append(not, m)
			}
		}
		f.Reasons = append(f.Reasons, report.Reason{
			Code: report.ReasonPublicInSomeTargets,
			Text: "public in " + strings.Join(pub, ", ") + " (shipped by " + packageFiles(unmodified) + ", unmodified), but " +
				strings.Join(not, ", ") + " holds it outside any unmodified package file: severity kept",
		})
	}
	if len(modified) > 0 {
		f.Reasons = append(f.Reasons, report.Reason{
			Code: report.ReasonPackageFileModified,
			Text: "in " + packageFiles(modified) + ", " + modifiedHow(modified) + ": may hold a local secret, severity kept",
		})
	}
	if len(public) > 0 || len(modified) > 0 {
		return
	}
	pathContext(f, facts)
}

// pathContext lowers f when every file holding it, under every name, is
// a test file or documentation that no package owns. A secret inside an
// archive is in the file that is the archive's member: under a test
// directory when the archive is, or when a member on the way is
// (node_modules/ssh2/test/fixtures/id_rsa in a yarn cache zip).
func pathContext(f *report.Finding, facts []LocationFacts) {
	levels, code, where, files := 0, "", "", 0
	for i, l := range f.Locations {
		if !hasFile(l) {
			continue
		}
		if i < len(facts) && len(facts[i].Owners) > 0 {
			return // a package file: provenance decides, not the path
		}
		if len(l.Decoded) == 0 && decodedIn(f.Locations, l) {
			// The raw scan saw a member an archive stores uncompressed
			// (a zip's small files) in the archive's own bytes; the
			// decoded location names that member, and judges for both.
			continue
		}
		c, n, w := locationContext(l)
		if n == 0 {
			return // a file outside test and documentation directories
		}
		files++
		if levels == 0 || n < levels {
			levels, code, where = n, c, w
		}
	}
	if levels == 0 {
		return // no file holds it: free blocks and the like rely on propagation
	}
	from := f.Severity
	to := report.LowerSeverity(from, levels)
	kind := "a test directory"
	if code == report.ReasonDocumentationPath {
		kind = "documentation or examples"
	}
	if files > 1 {
		where += fmt.Sprintf(", and %s", plural(files-1, "more file"))
	}
	r := report.Reason{
		Code: code,
		Text: fmt.Sprintf("every file holding it is under %s (%s) that no package owns: lowered %s", kind, where, plural(levels, "level")),
	}
	if to != from {
		r.From, r.To = from, to
	} else {
		r.Text += " (already at " + from + ")"
	}
	f.Severity = to
	f.Reasons = append(f.Reasons, r)
}

// decodedIn reports whether locs hold a decoded location inside the same
// file as raw location l.
func decodedIn(locs []report.Location, l report.Location) bool {
	return slices.ContainsFunc(locs, func(d report.Location) bool {
		return len(d.Decoded) > 0 && d.Target == l.Target && d.View == l.View && d.Partition == l.Partition && d.Path == l.Path && hasFile(d)
	})
}

// locationContext is the test or documentation context of the file that
// holds location l: the reason code, the levels it lowers (0 for none)
// and where, for the reason's text. The file on the filesystem is in one
// when every name it has is (a key in /etc hard-linked into testdata/
// is still the one in /etc); the secret, when that file or an archive
// member on the way to it is: the largest lowering counts, as for the
// directories of one path.
func locationContext(l report.Location) (code string, levels int, where string) {
	if l.LinksOmitted == 0 {
		for _, name := range l.Names() {
			c, n, dir := PathContext(name)
			if n == 0 {
				levels = 0
				break
			}
			if levels == 0 || n < levels {
				code, levels, where = c, n, dir+" in "+name
			}
		}
	}
	for _, st := range l.Decoded {
		if st.Member == "" {
			continue
		}
		if c, n, dir := PathContext(st.Member); n > levels {
			code, levels, where = c, n, dir+" in "+l.Path+", member "+st.Member
		}
	}
	return code, levels, where
}

// hasFile reports whether the location is inside a file's data: a path
// and allocated bytes. Slack past a file's end is free space, whatever
// the file is.
func hasFile(l report.Location) bool {
	return l.Path != "" && l.State == report.StateAllocated
}

// Directories whose files are test data or documentation, by the number
// of severity levels a finding there is lowered. test/ and tests/ hold
// test code, and also an app's test configuration (a .env with real
// credentials): one level, as Go's *_test.go files (test code by the
// language's definition). testdata/, fixtures/ and examples/ hold sample
// data by name, /usr/share/doc/ documentation: two levels. Names match
// whole directory components, case-insensitively; a __pycache__ copy of a
// file in such a directory is inside it too.
var (
	testDirs      = map[string]int{"test": 1, "tests": 1, "testdata": 2, "fixtures": 2}
	docDirs       = map[string]int{"examples": 2}
	docRoots      = []string{"/usr/share/doc/", "/usr/local/share/doc/"}
	testFileLevel = 1 // *_test.go
)

// PathContext says whether guest path p is in a test or documentation
// directory: the reason code (report.ReasonTestPath or
// report.ReasonDocumentationPath), how many levels a finding there is
// lowered, and the directory that decided it ("tests/"). levels is 0 when
// p is in neither.
func PathContext(p string) (code string, levels int, dir string) {
	p = path.Clean("/" + p)
	for _, root := range docRoots {
		if strings.HasPrefix(p, root) {
			return report.ReasonDocumentationPath, 2, root
		}
	}
	if strings.HasSuffix(p, "_test.go") {
		code, levels, dir = report.ReasonTestPath, testFileLevel, "*_test.go"
	}
	parts := strings.Split(strings.Trim(path.Dir(p), "/"), "/")
	for _, c := range parts {
		lc := strings.ToLower(c)
		if n := testDirs[lc]; n > levels {
			code, levels, dir = report.ReasonTestPath, n, c+"/"
		}
		if n := docDirs[lc]; n > levels {
			code, levels, dir = report.ReasonDocumentationPath, n, c+"/"
		}
	}
	return code, levels, dir
}

func appendNew(list []report.Provenance, p report.Provenance) []report.Provenance {
	if slices.ContainsFunc(list, func(x report.Provenance) bool {
		return x.Path == p.Path && x.Package == p.Package && x.Target == p.Target
	}) {
		return list
	}
	return append(list, p)
}

// packageFiles names the first package file and counts the rest:
// "libgnutls30 3.7.9-2 (dpkg) in /usr/lib/libgnutls.so.30, and 2 more package files".
func packageFiles(ps []report.Provenance) string {
	p := ps[0]
	s := fmt.Sprintf("%s %s (%s) in %s", p.Package, p.Version, p.Manager, p.Path)
	if p.Source != "" {
		s = fmt.Sprintf("%s %s (%s) in %s, compiled to %s", p.Package, p.Version, p.Manager, p.Source, p.Path)
	}
	if len(ps) > 1 {
		s += ", and " + plural(len(ps)-1, "more package file")
	}
	return s
}

// digests names the digest algorithms compared: "md5", "md5, sha256".
func digests(ps []report.Provenance) string {
	var algos []string
	for _, p := range ps {
		if !slices.Contains(algos, p.Digest) {
			algos = append(algos, p.Digest)
		}
	}
	return strings.Join(algos, ", ")
}

// modifiedHow says why files count as modified: their digests differ,
// or the package recorded none to compare.
func modifiedHow(ps []report.Provenance) string {
	var algos []string
	unchecked := false
	for _, p := range ps {
		if p.Digest == "" {
			unchecked = true
		} else if !slices.Contains(algos, p.Digest) {
			algos = append(algos, p.Digest)
		}
	}
	var parts []string
	if len(algos) > 0 {
		parts = append(parts, "modified since installed ("+strings.Join(algos, ", ")+" differs from the package's record)")
	}
	if unchecked {
		parts = append(parts, "with no digest recorded to prove it unmodified")
	}
	return strings.Join(parts, "; or ")
}

// otherExposures lists the exposure classes of the locations not proved
// by a package file: "deleted, snapshot".
func otherExposures(f *report.Finding, proved []bool) string {
	var out []string
	for i, l := range f.Locations {
		if !proved[i] && l.Exposure != "" && !slices.Contains(out, l.Exposure) {
			out = append(out, l.Exposure)
		}
	}
	slices.SortFunc(out, func(a, b string) int { return report.ExposureRank(a) - report.ExposureRank(b) })
	if len(out) == 0 {
		return "unknown"
	}
	return strings.Join(out, ", ")
}

func countTrue(b []bool) int {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return n
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func pluralVerb(n int) string {
	if n == 1 {
		return "holds"
	}
	return "hold"
}
