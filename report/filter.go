package report

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// ParseSeverityList parses a comma-separated list of severities (as
// --severity takes it, like Trivy's): "critical,high". Names are
// case-insensitive; an unknown one is an error.
func ParseSeverityList(s string) ([]string, error) {
	var out []string
	for _, p := range strings.Split(s, ",") {
		p = strings.ToLower(strings.TrimSpace(p))
		if p == "" {
			continue
		}
		if !slices.Contains(severityNames(), p) {
			return nil, fmt.Errorf("unknown severity %q (want a comma list of %s)", p, strings.Join(severityNames(), ", "))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("empty severity list")
	}
	return out, nil
}

// ShowSeverities returns the report to write when only the given
// severities are to be shown: a copy of r without the other findings,
// counted in Summary.HiddenBySeverity. r itself is not modified, so the
// --fail-on gate still judges every finding of r. An empty list shows
// everything (r itself is returned).
func ShowSeverities(r *Report, show []string) *Report {
	if len(show) == 0 {
		return r
	}
	out := *r
	if out.Judged == nil {
		if v, err := Gate(r, r.FailOn); err == nil {
			out.Judged = &v
		}
	}
	out.Findings = make([]Finding, 0, len(r.Findings))
	hidden := 0
	for _, f := range r.Findings {
		if slices.Contains(show, f.Severity) {
			out.Findings = append(out.Findings, f)
		} else {
			hidden++
		}
	}
	out.Summary.HiddenBySeverity += hidden
	Summarize(&out)
	return &out
}

// DefaultIgnoreFile is read from the working directory when no ignore
// file is named.
const DefaultIgnoreFile = ".imgauditignore"

// IgnoreList holds accepted fingerprints, each with the reason it was
// accepted.
type IgnoreList map[string]string

// LoadIgnoreFiles reads the named ignore files; with none named, it reads
// DefaultIgnoreFile from the working directory when that exists.
func LoadIgnoreFiles(paths []string) (IgnoreList, error) {
	if len(paths) == 0 {
		l, err := ReadIgnoreFile(DefaultIgnoreFile)
		if errors.Is(err, fs.ErrNotExist) {
			return IgnoreList{}, nil
		}
		return l, err
	}
	all := IgnoreList{}
	for _, p := range paths {
		l, err := ReadIgnoreFile(p)
		if err != nil {
			return nil, err
		}
		for k, v := range l {
			all[k] = v
		}
	}
	return all, nil
}

// ReadIgnoreFile reads an ignore file: one accepted fingerprint per line,
// each with a comment saying why (`sha256:<64 hex> # rotated 2026-11-02,
// image retired`). Blank lines and lines that are only a comment are
// skipped. A fingerprint without a comment is an error: an accepted
// secret nobody can say why was accepted cannot be reviewed.
func ReadIgnoreFile(path string) (IgnoreList, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("ignore file: %w", err)
	}
	defer f.Close()
	l, err := parseIgnore(f)
	if err != nil {
		return nil, fmt.Errorf("ignore file %s: %w", path, err)
	}
	return l, nil
}

func parseIgnore(r io.Reader) (IgnoreList, error) {
	l := IgnoreList{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fp, why, _ := strings.Cut(line, "#")
		fp, why = strings.ToLower(strings.TrimSpace(fp)), strings.TrimSpace(why)
		if !validFingerprint(fp) {
			return nil, fmt.Errorf("line %d: %q is not a fingerprint (sha256: and 64 hex digits)", n, clean(fp))
		}
		if why == "" {
			return nil, fmt.Errorf("line %d: %s has no comment: say why it is accepted (%s # why)", n, fp, fp)
		}
		l[fp] = why
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

func validFingerprint(s string) bool {
	hex, ok := strings.CutPrefix(s, "sha256:")
	if !ok || len(hex) != 64 {
		return false
	}
	for _, c := range hex {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// Ignore drops the findings whose fingerprint l lists, counting them in
// Summary.Ignored. Like --baseline, ignored findings do not decide the
// exit code.
func Ignore(r *Report, l IgnoreList) {
	if len(l) == 0 {
		return
	}
	kept := r.Findings[:0]
	for _, f := range r.Findings {
		if _, ok := l[f.Fingerprint]; ok {
			r.Summary.Ignored++
			continue
		}
		kept = append(kept, f)
	}
	r.Findings = kept
	Summarize(r)
}
