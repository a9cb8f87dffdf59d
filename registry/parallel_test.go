package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/imgaudit/imgaudit/decode"
	"github.com/imgaudit/imgaudit/detectors"
	"github.com/imgaudit/imgaudit/internal/testutil"
	"github.com/imgaudit/imgaudit/report"
)

// distinctKeyIDs is n distinct AWS access key IDs from the from-th, one a
// line.
func distinctKeyIDs(from, n int) string {
	const digits = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b strings.Builder
	for i := from; i < from+n; i++ {
		id := []byte("AKIA0000000000000000")
		for k, v := 19, i; k >= 4; k, v = k-1, v>>5 {
			id[k] = digits[v&31]
		}
		b.Write(id)
		b.WriteByte('\n')
	}
	return b.String()
}

// TestScanWholeOverflow: a worker keeps at most maxJobMatches matches of a
// file; past them it keeps none and says so, and the walk scans the file
// again (applyWhole), with the walk's own limits, as it would have.
func TestScanWholeOverflow(t *testing.T) {
	s := newScanner(t, Options{})
	fs := s.newFileScanner(&blobResult{}, s.scanBuffer())
	for _, n := range []int{10, maxJobMatches / 2, maxJobMatches * 2, 50000} {
		b := []byte(distinctKeyIDs(1<<20, n))
		want := len(s.opts.Engine.FindAll(b, s.scanOpts()))
		j := &fileJob{p: "/keys", b: b}
		fs.scanWhole(context.Background(), j, &decode.Scratch{})
		overflow := want > maxJobMatches
		if want < n*9/10 {
			t.Fatalf("%d key IDs make %d matches", n, want)
		}
		if j.overflow != overflow || j.err != nil {
			t.Errorf("%d matches: overflow %v, err %v; want overflow %v", want, j.overflow, j.err, overflow)
		}
		if overflow && len(j.matches) != 0 {
			t.Errorf("%d matches: %d kept past the overflow", want, len(j.matches))
		}
		if !overflow && len(j.matches) != want {
			t.Errorf("%d matches: %d kept", want, len(j.matches))
		}
	}
}

// TestJobTakesWithinPipelineCap: a job keeps at most maxJobMatches
// matches, and the jobs of one pipeline at most maxPendingMatches
// together, whatever the number of jobs; what an applied or overflowed
// job gives back, another may take.
func TestJobTakesWithinPipelineCap(t *testing.T) {
	var pending atomic.Int64
	jobs := make([]*fileJob, 2*maxPendingMatches/maxJobMatches)
	took := make([]int, len(jobs))
	for i := range jobs {
		jobs[i] = &fileJob{pending: &pending}
		for jobs[i].take() {
			took[i]++
		}
	}
	total := 0
	for i, n := range took {
		total += n
		if n > maxJobMatches || n != jobs[i].kept {
			t.Errorf("job %d took %d (kept %d), over its cap %d", i, n, jobs[i].kept, maxJobMatches)
		}
	}
	if total != maxPendingMatches || pending.Load() != maxPendingMatches {
		t.Errorf("the jobs took %d, pending %d; want the pipeline's cap %d", total, pending.Load(), maxPendingMatches)
	}
	first := jobs[0]
	first.giveBack(first.kept)
	last := jobs[len(jobs)-1]
	n := 0
	for last.take() {
		n++
	}
	if n != took[0] || pending.Load() != maxPendingMatches {
		t.Errorf("after the first job gave back %d, the last took %d (pending %d)", took[0], n, pending.Load())
	}
}

// TestScanWholeDecodes: a worker decodes a compressed file it scans (the
// gzip tool's), keeping what decoding found for the walk to apply, when
// the file's matches, raw and decoded, stay within maxJobMatches; past
// them it keeps no decoding (the walk decodes the file again). Either
// way it holds nothing at the gate once done.
func TestScanWholeDecodes(t *testing.T) {
	testutil.RequireTool(t, "gzip")
	s := newScanner(t, Options{})
	fs := s.newFileScanner(&blobResult{}, s.scanBuffer())
	for _, n := range []int{10, maxJobMatches / 2, maxJobMatches + 500} {
		p := filepath.Join(t.TempDir(), "keys.txt")
		if err := os.WriteFile(p, []byte(distinctKeyIDs(1<<20, n)), 0o644); err != nil {
			t.Fatal(err)
		}
		testutil.Run(t, "gzip", "-n", p)
		b, err := os.ReadFile(p + ".gz")
		if err != nil {
			t.Fatal(err)
		}
		j := &fileJob{p: "/keys.txt.gz", b: b}
		fs.scanWhole(context.Background(), j, &decode.Scratch{})
		if j.overflow || j.err != nil {
			t.Fatalf("%d keys: overflow %v, err %v", n, j.overflow, j.err)
		}
		if over := n > maxJobMatches; over != (j.decoded == nil) {
			t.Errorf("%d keys: decoding kept %v, want %v", n, j.decoded != nil, !over)
		}
		if d := j.decoded; d != nil && (len(d.hits) < n*9/10 || d.res.Leaves != 1 || d.res.Decoded != int64(21*n)) {
			t.Errorf("%d keys: %d decoded hits, %d leaves, %d bytes decoded", n, len(d.hits), d.res.Leaves, d.res.Decoded)
		}
		if st := s.gate.Stats(); st.Held != 0 {
			t.Errorf("%d keys: the gate holds %d bytes after the job", n, st.Held)
		}
	}
}

// TestParallelFilesMatchSequential: a layer's small files scanned on
// workers (parallel.go) give the report a walk that scans every file
// itself gives (--workers 1), finding for finding, location for location,
// with the same notes, bytes and digests. The layer, tarred by the real
// tar, holds 400 small files with and without secrets (some repeated);
// two files of more matches than a worker keeps (maxJobMatches: the walk
// scans them again), and a gzip'd one (the walk decodes it again); 12
// files of 3,000, more than the pipeline's jobs keep together; a
// gzip'd file, a tar.gz and a zip holding secrets (decoded on workers); a
// 5 MiB file (scanned by the walk); a qcow2 of 2 MiB (a disk, spooled or
// read in place); this machine's dpkg status (a package-record file); and
// one path three times (tar -r: each later entry replaces the one before,
// the last two adjacent). It is scanned with the default limits and with
// limits small enough to cut, read in place and gzip'd.
func TestParallelFilesMatchSequential(t *testing.T) {
	testutil.RequireTool(t, "tar", "gzip", "zip", "qemu-img", "qemu-io")
	root := filepath.Join(t.TempDir(), "root")
	write := func(p, s string) {
		t.Helper()
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	shared := npmToken(t)
	for i := range 400 {
		switch i % 4 {
		case 0:
			write(fmt.Sprintf("srv/app/%03d/.env", i), "NPM_TOKEN="+npmToken(t)+"\n")
		case 1:
			write(fmt.Sprintf("srv/app/%03d/config.txt", i), "NPM_TOKEN="+shared+"\n")
		case 2:
			write(fmt.Sprintf("srv/app/%03d/README", i), strings.Repeat("nothing secret here\n", i))
		case 3:
			write(fmt.Sprintf("srv/app/%03d/empty", i), "")
		}
	}
	write("root/notes.txt", "NPM_TOKEN="+npmToken(t)+"\n")
	// Files of more matches than a worker keeps: the walk scans them
	// again itself.
	for i := range 2 {
		write(fmt.Sprintf("srv/keys%d.txt", i), distinctKeyIDs(1<<20+i*10000, maxJobMatches+1000))
	}
	// A gzip'd file of more decoded matches than a worker keeps: the
	// walk decodes it again itself (gzip'd below).
	write("srv/keys.log", distinctKeyIDs(1<<21, maxJobMatches+1000))
	// Files each within a job's cap, more of them than the pipeline
	// holds at once (maxPendingMatches): those past it overflow, and the
	// walk scans them again.
	for i := range 12 {
		write(fmt.Sprintf("srv/dense/%02d.txt", i), distinctKeyIDs(1<<22+i*4000, 3000))
	}
	write("srv/big.log", strings.Repeat("x", 5<<20)+"\nNPM_TOKEN="+npmToken(t)+"\n")
	status, err := os.ReadFile("/var/lib/dpkg/status")
	if err != nil {
		t.Fatal(err)
	}
	write("var/lib/dpkg/status", string(status))
	testutil.Bash(t, root, `
mkdir -p var/log home/dev disk
gzip srv/keys.log
printf 'NPM_TOKEN=`+npmToken(t)+`\n' > var/log/app.log && gzip var/log/app.log
mkdir -p /tmp/$$.b && printf 'NPM_TOKEN=`+npmToken(t)+`\n' > /tmp/$$.b/token && tar -C /tmp/$$.b -czf home/dev/backup.tar.gz token
printf 'NPM_TOKEN=`+npmToken(t)+`\n' > /tmp/$$.b/z && (cd /tmp/$$.b && zip -q ../$$.zip z) && mv /tmp/$$.zip home/dev/old.zip && rm -rf /tmp/$$.b
qemu-img create -q -f qcow2 disk/vm.qcow2 8M && qemu-io -f qcow2 -c "write -q -P 0x41 1M 1M" disk/vm.qcow2
`)
	tarPath := filepath.Join(t.TempDir(), "layer.tar")
	testutil.Run(t, "tar", "-C", root, "-cf", tarPath, ".")
	// The same path again, later in the layer, twice in a row: each entry
	// replaces the one before, the second while the first may still be
	// on a worker.
	for range 2 {
		write("root/notes.txt", "NPM_TOKEN="+npmToken(t)+"\n")
		testutil.Run(t, "tar", "-C", root, "-rf", tarPath, "./root/notes.txt")
	}
	tarBytes, err := os.ReadFile(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	plain := static.NewLayer(tarBytes, types.OCIUncompressedLayer)
	gzipped, err := tarball.LayerFromFile(tarPath) // compressed as a registry serves it
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		layer  v1.Layer
		limits report.Limits
	}{
		{"in place", plain, report.Limits{}},
		{"in place, limits that cut", plain, report.Limits{FindingsPerRulePerView: 20, LocationsPerFinding: 3}},
		{"gzip", gzipped, report.Limits{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := writeSource(t, "oci-layout", imageOf(t, tc.layer))
			var reports [2]*report.Report
			for i, workers := range []int{1, 4} {
				e, err := detectors.NewEngine(detectors.Builtin(), detectors.EngineOptions{Workers: workers})
				if err != nil {
					t.Fatal(err)
				}
				rep, err := newScanner(t, Options{Engine: e, Limits: tc.limits}).ScanLocal(context.Background(), []string{src})
				if err != nil {
					t.Fatal(err)
				}
				reports[i] = rep
			}
			seq, par := reports[0], reports[1]
			want := 100
			if tc.limits.FindingsPerRulePerView > 0 {
				want = tc.limits.FindingsPerRulePerView
			}
			if len(seq.Findings) < want {
				t.Fatalf("%d findings: the layer's secrets were not found", len(seq.Findings))
			}
			if tc.limits.FindingsPerRulePerView == 0 && !reportHasDecoded(seq) {
				t.Fatal("no decoded finding: the compressed files were not decoded")
			}
			cut := tc.limits.FindingsPerRulePerView > 0
			if a, b := findingsOf(t, seq, cut), findingsOf(t, par, cut); a != b {
				t.Errorf("findings differ:\n--workers 1: %.2000s\n--workers 4: %.2000s", a, b)
			}
			for i := range seq.Targets {
				for j := range seq.Targets[i].Views {
					sv, pv := seq.Targets[i].Views[j], par.Targets[i].Views[j]
					// With limits that cut, which hits go unvalidated and
					// which are dropped after validation depends on timing
					// (Limiter.Enough is a hint), as in a disk view's scan.
					sv.Truncated, pv.Truncated = nil, nil
					if a, b := jsonOf(t, sv), jsonOf(t, pv); a != b {
						t.Errorf("view %s differs:\n--workers 1: %s\n--workers 4: %s", sv.ID, a, b)
					}
				}
			}
		})
	}
}

// findingsOf is a report's findings as JSON; with cut, only their rules
// and fingerprints: once a rule has its limit of findings, a hit of it is
// left unvalidated or validated and dropped depending on timing
// (Limiter.Enough is a hint), and a validated one may add a location to a
// finding kept before, as in a disk view's parallel scan.
func findingsOf(t *testing.T, r *report.Report, cut bool) string {
	if !cut {
		return jsonOf(t, r.Findings)
	}
	var keys []string
	for _, f := range r.Findings {
		keys = append(keys, f.Rule+" "+f.Fingerprint)
	}
	return strings.Join(keys, "\n")
}

func jsonOf(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func reportHasDecoded(r *report.Report) bool {
	for _, f := range r.Findings {
		for _, l := range f.Locations {
			if len(l.Decoded) > 0 {
				return true
			}
		}
	}
	return false
}
